/*
 * natsfix.h - real nats-server processes for tests.
 *
 * natsfix_start launches n nats-server processes on 127.0.0.1 (free ports),
 * routed into one cluster, JetStream on, each with its own store under a
 * temporary directory, and waits until they accept clients and the cluster
 * has formed; without nats-server installed it skips the case. The harness
 * kills the case's process group at its end, so servers never outlive a
 * case; natsfix_stop also removes the stores.
 *
 *   struct natsfix f;
 *   natsfix_start(&f, 3, NULL);          // or with "user:password"
 *   ... f.url[i] is "nats://127.0.0.1:PORT" of server i ...
 *   natsfix_kill(&f, 1);                  // SIGKILL one server
 *   natsfix_stop(&f);
 */
#ifndef SAGE_TEST_NATSFIX_H
#define SAGE_TEST_NATSFIX_H

#include <sys/types.h>

#include "sage/cluster.h"
#include "sage/config.h"
#include "sage/manager.h"

#define NATSFIX_MAX 5

struct natsfix {
    int n;
    pid_t pid[NATSFIX_MAX];
    int port[NATSFIX_MAX];
    int cport[NATSFIX_MAX];
    char url[NATSFIX_MAX][64];
    const char *urls[NATSFIX_MAX]; /* for sage_nats_conf.servers */
    char dir[128];                 /* stores and logs */
    char auth[128];                /* "user:password" or "" */
};

/* natsfix_start starts n (1..NATSFIX_MAX) servers; auth "user:password" or
 * NULL. Skips the case (th_skip) if the library has no cluster support
 * (SAGE_WITH_NATS=OFF) or nats-server is not installed, fails it (th_fail)
 * if they do not come up within 15 s. */
void natsfix_start(struct natsfix *f, int n, const char *auth);

/* natsfix_kill SIGKILLs server i and reaps it. */
void natsfix_kill(struct natsfix *f, int i);

/* natsfix_restart starts server i again on its ports (after a kill). */
void natsfix_restart(struct natsfix *f, int i);

/* natsfix_stop stops every server and removes the stores. */
void natsfix_stop(struct natsfix *f);

/* natsfix_conf fills c with all servers' URLs and fast reconnects
 * (0.2 s wait, forever); first, if >= 0, puts that server first. */
void natsfix_conf(struct natsfix *f, sage_nats_conf *c, int first);

/* natsfix_manager makes a manager of the case's namespace (th_prefix())
 * calling over f's servers (natsfix_conf with first), with the default
 * call timeout in seconds; nc and co are filled and must outlive it. */
sage_manager *natsfix_manager(struct natsfix *f, int first, double timeout, sage_nats_conf *nc,
                              sage_cluster_opts *co);

#endif
