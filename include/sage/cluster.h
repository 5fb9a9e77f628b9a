/*
 * sage/cluster.h - services across machines, on NATS.
 *
 * A service in namespace NS is the subject "sage.NS.svc.NAME"; every replica
 * subscribes to it in queue group "q", so NATS spreads calls over replicas
 * and routes around dead ones. Calls carry the same envelope as on one
 * machine (docs/PROTOCOL.md); answers come back on the caller's inbox.
 * Every replica also publishes a service record in the JetStream key-value
 * bucket "sagesvc_services" (key "NS.NAME"), so a caller tells "no such
 * service" (fails at once with SAGE_ENOSERVICE) from "no replica running"
 * (SAGE_EUNAVAILABLE), and learns whether the service is durable. Callers
 * read it from any server holding a copy (a JetStream direct get), so a
 * server's death does not stop new calls; a registry that cannot be read
 * is SAGE_EUNAVAILABLE with the reason, never SAGE_ENOSERVICE.
 *
 * Discovery, health and stats follow the NATS micro-service protocol
 * (ADR-32): replicas answer $SRV.PING, $SRV.INFO and $SRV.STATS, bare, with
 * .NAME, and with .NAME.ID, so standard NATS tooling lists them.
 *
 * Delivery is at most once by default. Durable services (delivery: durable)
 * take calls from a JetStream work-queue stream "SAGE_NS_NAME" and
 * acknowledge them only once answered: a replica that dies mid-call has the
 * call redelivered to another after the ack wait.
 *
 * Use: put a sage_cluster_opts in sage_task_opts.cluster (transport
 * SAGE_TRANSPORT_NATS) or in sage_manager_opts.cluster.
 *
 * Calls waiting for an answer when the caller's connection to NATS is lost
 * fail at once with SAGE_ECONNECT (idempotent ones are retried): answers
 * sent meanwhile are lost. A send on a broken connection is SAGE_ECONNECT
 * too. A durable call waits for the stream's acknowledgement at most its
 * own remaining time, through a new leader's election if need be. Fork: the NATS client's threads do not survive
 * fork(), so a child must not use a task, manager or cluster function its
 * parent created or called before forking; create NATS objects after fork.
 */
#ifndef SAGE_CLUSTER_H
#define SAGE_CLUSTER_H

#include "sage/export.h"

#include <stdbool.h>
#include <stdint.h>

#include "sage/config.h"
#include "sage/err.h"
#include "sage/service.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * sage_cluster_supported tells whether this library was built with cluster
 * support: the NATS transport and the cluster operations (the CMake option
 * SAGE_WITH_NATS, on by default). Without it every sage_cluster_* call
 * fails with SAGE_ENOTSUP, and so do a task with transport nats and a
 * manager given cluster options. Thread-safe, does not block.
 */
SAGE_API bool sage_cluster_supported(void);

/* Cluster options of a task or a manager (copied by whoever takes them).
 * Zero-initialise for the defaults. */
typedef struct sage_cluster_opts {
    const sage_nats_conf *nats; /* servers, credentials, TLS, reconnect; NULL: defaults */
    bool durable;               /* task: take calls from a JetStream stream */
    int64_t ack_wait_ms;        /* durable: redelivery after this long unacknowledged; default 5000 */
    bool dedupe;                /* task: a request id runs once across all replicas (a
                                 * JetStream key-value store of answers; see PROTOCOL.md) */
    int64_t dedupe_ttl_ms;      /* how long answers are kept for repeats; default 600000 */
} sage_cluster_opts;

/* Sizes of the strings of sage_cluster_instance, terminator included. */
#define SAGE_CLUSTER_ID_SIZE 64
#define SAGE_CLUSTER_VERSION_SIZE 32
#define SAGE_CLUSTER_HOST_SIZE 64
#define SAGE_CLUSTER_TIME_SIZE 40
#define SAGE_CLUSTER_ERROR_SIZE 128
/* The NATS subject an instance serves, "sage.<ns>.svc.<name>" or
 * "sage.<ns>.durable.<name>": two names and room for the rest. */
#define SAGE_CLUSTER_SUBJECT_SIZE (2 * SAGE_NAME_MAX + 32)

/* One service instance as discovery sees it ($SRV.PING / $SRV.STATS). */
typedef struct sage_cluster_instance {
    char name[SAGE_NAME_MAX + 1];
    char id[SAGE_CLUSTER_ID_SIZE];
    char version[SAGE_CLUSTER_VERSION_SIZE];
    char ns[SAGE_NAME_MAX + 1];
    char host[SAGE_CLUSTER_HOST_SIZE];
    int32_t pid;
    char subject[SAGE_CLUSTER_SUBJECT_SIZE];
    char started[SAGE_CLUSTER_TIME_SIZE]; /* ISO-8601, UTC (STATS) */
    uint64_t requests;                    /* STATS */
    uint64_t errors;                      /* STATS */
    double average_us;                    /* STATS: average processing time */
    char last_error[SAGE_CLUSTER_ERROR_SIZE];
    bool durable;
} sage_cluster_instance;

typedef void (*sage_cluster_instance_fn)(void *arg, const sage_cluster_instance *inst);

/*
 * sage_cluster_discover sends $SRV.<verb>[.<name>] ("PING", "INFO" or
 * "STATS"; name NULL for all) and reports every answer that arrives within
 * wait_ms to fn, one at a time, on a NATS client thread (no library lock
 * held), before it returns; it always blocks for wait_ms (0 or negative:
 * it returns at once, and answers may be missed). Instances of
 * other namespaces are skipped unless ns is NULL. SAGE_ECONNECT if no
 * server answers.
 */
SAGE_API sage_err sage_cluster_discover(const sage_nats_conf *nats, const char *ns,
                                        const char *verb, const char *name, int64_t wait_ms,
                                        sage_cluster_instance_fn fn, void *arg);

/* ================================================ hosts, deployments, leases
 *
 * Cluster operations keep their state in three JetStream key-value
 * buckets, created by whoever needs them first, each with nats.replicas
 * copies (default min(3, servers): no single server holds them):
 *
 *   sagesvc_hosts   key HOST-ID: what a host offers and runs
 *       {"id", "hostname", "pid", "cpus", "memory", "reserved_cpus",
 *        "reserved_memory", "heartbeat" (wall clock, ms since the epoch),
 *        "reservations": {"NS.NAME": {"deploy", "replicas", "cpus", "memory",
 *                                     "pending" (wall clock, ms: a placer's,
 *                                     maybe not in the spec yet)}},
 *        "replicas": [{"ns", "service", "deploy", "pid", "state", "restarts",
 *                      "id" (instance id), "gen" (generation it runs),
 *                      "seen" (wall clock, ms, it last answered a probe)}]}
 *   sagesvc_deploy  key "NS.NAME": one deployed service
 *       {"ns", "name", "id" (this deployment's unique id), "config_yaml",
 *        "config_path", "code" ("c" or "python"), "replicas", "cpus",
 *        "memory", "lifetime" ("owned" or "detached"), "owner" (lease id, ""
 *        when detached), "max_restarts", "durable", "generation" (1, then
 *        one more per new configuration), "replace_after_ms",
 *        "probe_interval_ms", "probe_timeout_ms", "placement": {HOST-ID:
 *        count}, "status" ("placing", "running" or "failed"), "reason",
 *        "created" (wall clock, ms)}
 *   sagesvc_leases  key LEASE-ID: {"pid", "hostname", "created"} of the
 *       owner; entries expire 15 s after their last write (bucket TTL)
 *
 * A host writes its record every second; one whose heartbeat is more than
 * 5 s old is down: nothing is placed on it, and once it has been silent
 * for a deployment's replace_after its replicas are placed on other hosts.
 * Every writer of a host record (the host, deployers) reads it, changes it
 * and writes it back only if its revision is unchanged (compare-and-set),
 * so reservations are never lost or counted twice. Clocks of hosts and
 * deployers must agree within a second or so (NTP).
 */

/* A replica as its host reports it; strings borrowed for the callback.
 * "unhealthy": it serves, but left its host's last probe unanswered (its
 * host kills and restarts it after the service's probe_timeout). */
typedef struct sage_cluster_replica_info {
    const char *ns;
    const char *service;
    const char *deploy;  /* id of the deployment it belongs to */
    int32_t pid;         /* 0 while waiting to restart or failed */
    const char *state;   /* "starting", "running", "unhealthy", "backoff", "stopping",
                          * "failed" */
    uint32_t restarts;   /* restarts so far */
    const char *id;      /* its instance id ($SRV.PING.NAME.ID), "" until it serves */
    uint64_t generation; /* of the deployment's configuration it was started with */
    int64_t seen_ms;     /* wall clock it last answered its host (0: never) */
} sage_cluster_replica_info;

/* A host as its record says; strings and arrays borrowed for the callback. */
typedef struct sage_cluster_host_info {
    const char *id;
    const char *hostname;
    int32_t pid;             /* of its `sagesvc host` process */
    double cpus;             /* offered */
    uint64_t memory;         /* offered, bytes */
    double reserved_cpus;    /* reserved by deployments */
    uint64_t reserved_memory;
    int64_t heartbeat_ms;    /* wall clock of its last write */
    bool alive;              /* heartbeat at most 5 s old */
    size_t nreplicas;
    const sage_cluster_replica_info *replicas;
} sage_cluster_host_info;

typedef void (*sage_cluster_host_fn)(void *arg, const sage_cluster_host_info *h);

/*
 * sage_cluster_hosts reads every host record and calls fn for each (in key
 * order, on the calling thread). No hosts is not an error. SAGE_ECONNECT if
 * no server answers; SAGE_EPROTO never (a record that is not valid JSON is
 * skipped). Thread-safe; blocks for a few round trips.
 */
SAGE_API sage_err sage_cluster_hosts(const sage_nats_conf *nats, sage_cluster_host_fn fn, void *arg);

/* Where a deployment's replicas go: count replicas on host. */
typedef struct sage_cluster_placement {
    const char *host;
    uint32_t count;
} sage_cluster_placement;

/* A deployed service as its spec says; strings borrowed for the callback. */
typedef struct sage_cluster_deployment {
    const char *ns;
    const char *name;
    const char *id;          /* unique per deployment */
    uint32_t replicas;
    double cpus;             /* per replica */
    uint64_t memory;         /* per replica, bytes */
    bool detached;           /* false: owned by the lease named owner */
    const char *owner;       /* lease id, or "" */
    uint32_t max_restarts;
    bool durable;
    const char *status;      /* "placing", "running" or "failed" */
    const char *reason;      /* why it failed, or "" */
    const char *config_path; /* the deployer's configuration file, or "" */
    const char *config_yaml; /* its full text, config_len bytes */
    size_t config_len;
    int64_t created_ms;      /* wall clock */
    size_t nplacement;
    const sage_cluster_placement *placement;
    uint64_t generation;     /* its configuration's version: 1, then one more per change */
    uint32_t running;        /* replicas that run and answer their hosts, as the live
                              * hosts' records say now (what runs, not what was asked;
                              * 0 when those records cannot be read) */
} sage_cluster_deployment;

typedef void (*sage_cluster_deployment_fn)(void *arg, const sage_cluster_deployment *d);

/*
 * sage_cluster_deployments calls fn for every deployed service of namespace
 * ns (NULL: all namespaces) named name (NULL: all), on the calling thread.
 * With both ns and name given and no such deployment, SAGE_ENOSERVICE.
 * Thread-safe; blocks for a few round trips.
 */
SAGE_API sage_err sage_cluster_deployments(const sage_nats_conf *nats, const char *ns, const char *name,
                                  sage_cluster_deployment_fn fn, void *arg);

/* ------------------------------------------------------------------ leases */

/* sage_cluster_lease: a key in sagesvc_leases kept alive by its owner. */
typedef struct sage_cluster_lease sage_cluster_lease;

/*
 * sage_cluster_lease_new creates a lease with a fresh unique id and starts
 * a thread that refreshes it every second; unrefreshed, it lapses 15 s after
 * its last write, and hosts then remove every replica the lease owns. If a
 * refresh finds the lease gone (NATS unreachable for 15 s), the lease is lost
 * for good: on_lost (may be NULL) runs once, on the lease's thread, with no
 * library lock held. SAGE_ECONNECT if no server answers. Thread-safe.
 */
SAGE_API sage_err sage_cluster_lease_new(sage_cluster_lease **lp, const sage_nats_conf *nats,
                                void (*on_lost)(void *arg), void *arg);

/* sage_cluster_lease_id returns the lease's id (borrowed, 22 characters of
 * [A-Za-z0-9]). Thread-safe. */
SAGE_API const char *sage_cluster_lease_id(const sage_cluster_lease *l);

/*
 * sage_cluster_lease_stop stops refreshing l and deletes its key, so hosts
 * remove the replicas it owns within a second or so. Stopping a stopped
 * lease does nothing. Blocks for a round trip; not from on_lost.
 */
SAGE_API void sage_cluster_lease_stop(sage_cluster_lease *l);

/* sage_cluster_lease_free stops l if needed and frees it. NULL is ignored. */
SAGE_API void sage_cluster_lease_free(sage_cluster_lease *l);

/* ------------------------------------------------------------- deployments */

/* Options of sage_cluster_deploy; fill with sage_cluster_deploy_opts_init. */
typedef struct sage_cluster_deploy_opts {
    const sage_nats_conf *nats;      /* NULL: the configuration's nats section */
    const char *config_text;         /* the YAML configuration (required)... */
    size_t config_len;               /* ...of this many bytes */
    const char *config_path;         /* its file, absolute: labels errors, and replicas
                                      * find relative plugin paths beside it; may be NULL */
    const char *ns;                  /* NULL: the configuration's namespace */
    const char *const *services;     /* names to deploy; NULL: every service whose
                                      * transport is nats */
    size_t nservices;
    const sage_cluster_lease *lease; /* owner of the owned services (required if any) */
    int64_t wait_ms;                 /* wait for every replica to run; 0 or negative:
                                      * return once placed; default 30000 */
} sage_cluster_deploy_opts;

/* sage_cluster_deploy_opts_init fills o with the defaults. */
SAGE_API void sage_cluster_deploy_opts_init(sage_cluster_deploy_opts *o);

/*
 * sage_cluster_deploy validates the configuration, then, service by
 * service, writes its spec and places its replicas (service.cluster
 * .replicas) on live hosts with room for its resources (CPU, memory), as
 * evenly as it can (the host with the fewest replicas of that service
 * first, then the most free CPUs), reserving each with a compare-and-set on
 * the host's record. With wait_ms > 0 it then waits until every replica
 * runs. All or nothing: on any failure every service this call deployed is
 * removed again. A service deployed already (detached, or owned by
 * o->lease) is changed in place instead: its replica count (more are
 * placed, or some stopped), its settings, and, when anything its replicas
 * would serve differently changed, a new generation of its configuration
 * that hosts roll out one replica at a time, each new one serving before
 * an old one stops; such a change is not undone on a failure. Fails with
 * SAGE_ECONFIG (bad configuration, no service to deploy, or resources or
 * delivery changed for a deployed service), SAGE_EINVAL (owned services
 * but no lease), SAGE_EEXIST (deployed and owned by another deployer),
 * SAGE_EUNAVAILABLE (no live host), SAGE_EBUSY (the replicas do not fit:
 * the detail lists what was asked and what each host has free),
 * SAGE_ETIMEDOUT (replicas not running within wait_ms) or
 * SAGE_EUNAVAILABLE (a service failed while starting: its reason). o and
 * what it points to are borrowed during the call (the lease must outlive
 * the owned services). Thread-safe; blocks.
 */
SAGE_API sage_err sage_cluster_deploy(const sage_cluster_deploy_opts *o);

/*
 * sage_cluster_undeploy removes service name of namespace ns: its spec,
 * its hosts' reservations, then (once its replicas stopped, waiting up to
 * wait_ms) its service record, so callers get SAGE_ENOSERVICE, and its
 * work-queue stream if durable (calls still queued there are dropped).
 * SAGE_ENOSERVICE if it is not deployed; SAGE_ETIMEDOUT if replicas still
 * ran after wait_ms (they are removed all the same: their hosts stop them).
 * Thread-safe; blocks.
 */
SAGE_API sage_err sage_cluster_undeploy(const sage_nats_conf *nats, const char *ns,
                                        const char *name, int64_t wait_ms);

/*
 * sage_cluster_scale changes the replica count of the deployed service
 * name of namespace ns to replicas (1..1000) in place: more are placed on
 * live hosts with room (SAGE_EBUSY, and nothing changes, when they do not
 * fit), or the newest are stopped (those on hosts that are down first).
 * With wait_ms > 0 it waits until exactly that many run (SAGE_ETIMEDOUT;
 * the change stays). SAGE_ENOSERVICE if it is not deployed, SAGE_ESTATE if
 * it failed or is still being placed. Thread-safe; blocks.
 */
SAGE_API sage_err sage_cluster_scale(const sage_nats_conf *nats, const char *ns, const char *name,
                                     uint32_t replicas, int64_t wait_ms);

/* ------------------------------------------------------------------- hosts */

/* Options of sage_cluster_host_run; fill with sage_cluster_host_opts_init. */
typedef struct sage_cluster_host_opts {
    const sage_nats_conf *nats;      /* NULL: nats://127.0.0.1:4222 */
    const char *id;                  /* host id, [A-Za-z0-9_-]{1,64}; NULL: the
                                      * hostname, other characters made '-' */
    double cpus;                     /* CPUs offered; 0: those online */
    uint64_t memory;                 /* bytes offered; 0: the physical memory */
    const char *const *replica_argv; /* argv prefix that starts a replica, NULL-
                                      * terminated: {"/usr/bin/sagesvc", "replica", NULL} */
    const char *const *python_argv;  /* the same for a Python service (python: in its
                                      * configuration); NULL: {"python3", "-m", "sagesvc",
                                      * "replica", NULL} */
    int stop_fd;                     /* readable (or hung up): stop; -1: none */
    void (*log)(void *arg, const char *line); /* events, one line each, on the
                                               * host's thread; NULL: stderr */
    void *arg;
} sage_cluster_host_opts;

/* sage_cluster_host_opts_init fills o with the defaults (stop_fd -1). */
SAGE_API void sage_cluster_host_opts_init(sage_cluster_host_opts *o);

/*
 * sage_cluster_host_run is the host daemon, on the calling thread until
 * stop_fd becomes readable. It publishes the host's record every second,
 * watches sagesvc_deploy and runs the replicas placed on this host as child
 * processes (in its process group), with python_argv for a Python service
 * and replica_argv for a C one (a replica writes "R", its instance id and a
 * newline on --ready-fd once it serves, as sage_cluster_replica_run does;
 * "R" alone serves too, but cannot be probed):
 *
 *   REPLICA_ARGV... --nats URL[,URL...] --ns NS --service NAME
 *                   --ready-fd 3 --host-pid PID [--creds F] [--tls-ca F]
 *                   [--tls-cert F --tls-key F]
 *
 * (user, password and token travel in the environment variables
 * SAGESVC_NATS_USER, SAGESVC_NATS_PASSWORD and SAGESVC_NATS_TOKEN, never on
 * a command line). A replica that exits unasked is restarted after a
 * backoff (100 ms, doubling, at most 5 s) until it has been restarted
 * max_restarts times; the next exit gives it up, and when no replica of the
 * service lives anywhere any more, the deployment and the service record
 * are marked failed, so callers fail fast with SAGE_EUNAVAILABLE. It pings
 * each serving replica every probe_interval ($SRV.PING.NAME.ID): one that
 * leaves a ping unanswered is "unhealthy", one silent for probe_timeout is
 * killed (SIGKILL) and restarted as above. Replicas no longer placed here
 * (undeployed, scaled down, moved away, or owned by a lease that lapsed)
 * are stopped (SIGTERM, SIGKILL after 5 s) and their reservations released;
 * those of an older generation are replaced one at a time, a new one
 * serving before an old one stops. The live host with the smallest id
 * places the replicas of hosts silent for their replace_after on other
 * hosts with room. On stop, every replica is stopped and the host's record
 * deleted, which releases its reservations. Returns SAGE_OK when stopped; SAGE_EINVAL for
 * bad options, SAGE_ECONNECT if NATS cannot be reached at start (later
 * outages are ridden out: nats.c reconnects, forever), SAGE_EEXIST if a
 * live host already has the id. o and everything it points to are
 * borrowed until it returns. Blocks; one host per process.
 */
SAGE_API sage_err sage_cluster_host_run(const sage_cluster_host_opts *o);

/* A replica of host host and its figures (st NULL when it did not answer;
 * a sage_status of sage/task.h); borrowed for the callback. */
struct sage_status;
typedef void (*sage_cluster_figures_fn)(void *arg, const char *host,
                                        const sage_cluster_replica_info *r,
                                        const struct sage_status *st);

/*
 * sage_cluster_host_figures asks every replica the record of host host_id
 * lists (NULL: the host this process runs, found by its pid and hostname)
 * for its figures ($SRV.STATS.NAME.ID), all at once, waits up to wait_ms
 * for the answers, then calls fn once per replica on the calling thread,
 * st NULL for one that did not answer (hung, or no process). For a metrics
 * endpoint of the host (`sagesvc host --metrics`): st carries the counts,
 * state and latency histograms a task's own status has. SAGE_ENOENT when
 * there is no such host. Thread-safe; blocks up to wait_ms and a few
 * round trips.
 */
SAGE_API sage_err sage_cluster_host_figures(const sage_nats_conf *nats, const char *host_id,
                                            int64_t wait_ms, sage_cluster_figures_fn fn, void *arg);

/* ---------------------------------------------------------------- replicas */

/* sage_service_resolve_fn finds the code of service entry sc of
 * configuration c and writes its table to *svcp (valid until the replica
 * returns), or fails with the reason as detail. */
typedef sage_err (*sage_service_resolve_fn)(void *arg, const sage_config *c,
                                            const sage_service_conf *sc,
                                            const sage_service **svcp);

/* Options of sage_cluster_replica_run; fill with sage_cluster_replica_opts_init. */
typedef struct sage_cluster_replica_opts {
    const sage_nats_conf *nats;      /* how this machine reaches NATS (required) */
    const char *ns;                  /* the deployed service (required) */
    const char *service;
    sage_service_resolve_fn resolve; /* its code (required) */
    void *arg;
    int ready_fd; /* "R<instance id>\n" is written here once it serves; -1: none */
    int stop_fd;  /* readable (or hung up): stop (required) */
} sage_cluster_replica_opts;

/* sage_cluster_replica_opts_init fills o with the defaults (no descriptors). */
SAGE_API void sage_cluster_replica_opts_init(sage_cluster_replica_opts *o);

/*
 * sage_cluster_replica_run serves one replica of the deployed service
 * ns.service until stop_fd becomes readable: it reads the deployment (its
 * configuration's full text), finds the service's code through resolve,
 * and serves it over NATS with the deployment's settings and o->nats, then
 * stops as a task stops (every call taken is answered). Once it serves it
 * writes "R", its instance id and a newline to ready_fd (its host probes
 * it by that id). This is what a host's replica process runs. SAGE_ENOSERVICE if ns.service is not
 * deployed, SAGE_ECONFIG if its configuration cannot be used, resolve's
 * error, or the task's. Blocks; o is borrowed until it returns.
 */
SAGE_API sage_err sage_cluster_replica_run(const sage_cluster_replica_opts *o);

#ifdef __cplusplus
}
#endif
#endif /* SAGE_CLUSTER_H */
