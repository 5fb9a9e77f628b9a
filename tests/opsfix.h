/*
 * opsfix.h - the fixture of the cluster operations' tests: real
 * nats-server clusters (natsfix_th.h), the real `sagesvc` binary
 * (SAGESVC_BIN, a compile definition) running hosts, deployers and
 * replicas in the case's process group, their logs in the servers'
 * directory, and readings of the cluster's state through the public API.
 * Every function here fails the case (th_fail) when something it needs fails.
 */
#ifndef SAGE_TEST_OPSFIX_H
#define SAGE_TEST_OPSFIX_H

#include <stdint.h>
#include <sys/types.h>

#include "harness.h"
#include "natsfix_th.h"
#include "sage/cluster.h"
#include "sage/manager.h"

/* sleep_ms sleeps ms (negative checks only: "nothing happens meanwhile") */
void sleep_ms(int ms);

/* run starts SAGESVC_BIN with args (NULL-terminated), its output going to
 * LOG.log in the servers' directory (finish shows them all when
 * SAGE_TEST_VERBOSE is set) */
pid_t run(struct natsfix *f, const char *log, ...);

/* log_has tells whether LOG.log contains text */
int log_has(struct natsfix *f, const char *log, const char *text);

/* wait_log waits up to ms for LOG.log to contain text */
void wait_log(struct natsfix *f, const char *log, const char *text, int ms);

/* dump_logs shows the logs of the processes run so far, on stderr */
void dump_logs(struct natsfix *f);

/* finish stops the servers, after showing the processes' logs when
 * SAGE_TEST_VERBOSE is set */
void finish(struct natsfix *f);

/* What the host records (live hosts only) say of service svc of the case. */
struct look {
    const char *ns, *svc;
    int hosts_alive;
    int replicas;      /* listed for ns.svc, on live hosts */
    int running;
    int failed;
    int unhealthy;     /* not answering its host's probes */
    int pids[8];       /* of running replicas */
    int on_host[4];    /* running replicas per host index (ids "h0".."h3") */
    uint32_t restarts; /* the highest restart count seen */
    double reserved_cpus;
    uint64_t reserved_memory;
};

/* look reads the host records (retrying a JetStream cluster's first
 * timeouts) */
struct look look(const sage_nats_conf *nc, const char *svc);

/* look_host adds one host's figures to the struct look at arg (a
 * sage_cluster_hosts callback: ns and svc set, the rest zeroed) */
void look_host(void *arg, const sage_cluster_host_info *h);

/* WAIT_FOR polls the cluster state (into `l`) until cond holds, or fails
 * the case after ms milliseconds */
#define WAIT_FOR(nc, svc, l, cond, ms)                                                         \
    do {                                                                                       \
        double end_ = th_now_ms() + (ms);                                                      \
        for (;;) {                                                                             \
            l = look(nc, svc);                                                                 \
            if (cond)                                                                          \
                break;                                                                         \
            if (th_now_ms() > end_)                                                            \
                th_fail(__FILE__, __LINE__, "waited %d ms for %s (replicas %d, running %d, "   \
                        "failed %d, hosts %d)", (int)(ms), #cond, l.replicas, l.running,       \
                        l.failed, l.hosts_alive);                                              \
            sleep_ms(50);                                                                      \
        }                                                                                      \
    } while (0)

/* What svc's deployment says. */
struct dep {
    int found;
    char status[16];
    char reason[256];
    uint32_t placed[4]; /* per host index, by the ids "h0".."h3" */
    uint32_t running;   /* as the live hosts say */
};

/* deployment reads svc's deployment (found 0 if there is none) */
struct dep deployment(const sage_nats_conf *nc, const char *svc);

/* wait_status waits up to ms for svc's deployment to have status */
struct dep wait_status(const sage_nats_conf *nc, const char *svc, const char *status, int ms);

/* host_id: "PREFIX-hI", unique per case */
const char *host_id(int i);

/* start_host runs `sagesvc host` (log hostI, host id host_id(i)) on server
 * `server` (-1: all of them) offering cpus (and memory, may be NULL), and
 * waits until its record says it is up */
pid_t start_host(struct natsfix *f, int i, int server, const char *cpus, const char *memory);

/* stop_host stops a host with SIGTERM and waits for its exit (status 0) */
void stop_host(pid_t pid);

/* one_host starts one server (nc: its configuration) and one host on it
 * offering cpus */
pid_t one_host(struct natsfix *f, sage_nats_conf *nc, const char *cpus);

/* undeploy_finish undeploys kv, then stops the host and the servers */
void undeploy_finish(struct natsfix *f, const sage_nats_conf *nc, pid_t host);

/* config writes a configuration with one service kv into buf: replicas
 * replicas of cpus CPUs (and memory), lifetime, max_restarts, and extra
 * lines of its cluster section (indented 6, may be NULL) */
void config(char *buf, size_t cap, struct natsfix *f, int replicas, const char *cpus,
            const char *memory, const char *lifetime, int max_restarts, const char *extra);

/* config_file writes text to DIR/app.yaml, its path into path */
void config_file(char *path, size_t cap, struct natsfix *f, const char *text);

/* deploy deploys text through the library, waiting wait_ms for replicas */
sage_err deploy(struct natsfix *f, const char *text, int64_t wait_ms);

/* DEPLOY_OK deploys, showing the hosts' logs if that fails */
#define DEPLOY_OK(f, text, wait_ms)                   \
    do {                                              \
        sage_err r_ = deploy((f), (text), (wait_ms)); \
        if (r_ != SAGE_OK)                            \
            dump_logs(f);                             \
        ASSERT_OK(r_);                                \
    } while (0)

/* call_kv puts a key through a fresh manager connected to server first:
 * the outcome */
sage_err call_kv(struct natsfix *f, int first, int value);

/* exit_code: a wait status as a shell would show it */
int exit_code(int status);

#endif
