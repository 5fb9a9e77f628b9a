/*
 * natsfix_th.h - the nats-server fixture (fixture/natsfix.h) for test
 * cases: failures end the case (th_fail), a missing nats-server skips it
 * (th_skip), stores and logs live in /tmp/sagesvc-nats-PREFIX, which the
 * harness removes after the case whatever its outcome, as it kills the
 * case's process group (the servers with it). Without cluster support in
 * the library (SAGE_WITH_NATS=OFF), natsfix_start skips the case.
 *
 *   struct natsfix f;
 *   natsfix_start(&f, 3, NULL);          // or with "user:password"
 *   ... f.url[i] is "nats://127.0.0.1:PORT" of server i ...
 *   natsfix_kill(&f, 1);                  // SIGKILL one server
 *   natsfix_restart(&f, 1);               // and start it again
 *   natsfix_stop(&f);
 */
#ifndef SAGE_TEST_NATSFIX_TH_H
#define SAGE_TEST_NATSFIX_TH_H

#include "natsfix.h"
#include "sage/cluster.h"
#include "sage/config.h"
#include "sage/manager.h"

/* natsfix_start starts n (1..NATSFIX_MAX) servers, routed into a cluster
 * when n > 1, JetStream on; auth "user:password" or NULL. Skips the case
 * if nats-server is not installed, fails it if they are not ready (a
 * JetStream meta leader elected) within 15 s. */
void natsfix_start(struct natsfix *f, int n, const char *auth);

/* natsfix_restart starts server i again on its ports and store (after a
 * kill) and waits until it is ready; fails the case if it is not. */
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
