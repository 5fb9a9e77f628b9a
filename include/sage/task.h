/*
 * sage/task.h - sage_task, one running instance of a service.
 *
 * A task owns its service's state, a request queue, one listener thread that
 * drains the queue in batches, and up to max_workers threads that run
 * methods (short methods run on the listener itself while a worker slot is
 * free: no hand-off). Every request gets an answer: a result, or an error
 * for an unknown method, bad arguments, a failed handler, a full queue, or
 * a caller that gave up before the request could run.
 *
 * Transports:
 * - SAGE_TRANSPORT_LOCAL: an in-process queue; callers in this process find
 *   the task through a sage_env.
 * - SAGE_TRANSPORT_SHM: a named shared-memory queue; the task also enters
 *   the host registry, so any process of the same user on this machine can
 *   call it by name (and read its status).
 */
#ifndef SAGE_TASK_H
#define SAGE_TASK_H

#include "sage/export.h"

#include <stddef.h>
#include <stdint.h>

#include "sage/cluster.h"
#include "sage/config.h"
#include "sage/err.h"
#include "sage/service.h"
#include "sage/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sage_task sage_task;

typedef enum sage_transport {
    SAGE_TRANSPORT_LOCAL = 0,
    SAGE_TRANSPORT_SHM = 1,
    SAGE_TRANSPORT_NATS = 2,
} sage_transport;

/* sage_transport_name: "local", "shm" or "nats". */
SAGE_API const char *sage_transport_name(sage_transport t);

/* sage_transport_parse turns a name into a transport; SAGE_EINVAL if none. */
SAGE_API sage_err sage_transport_parse(sage_transport *out, const char *name);

/* Options of a task; fill with sage_task_opts_init first. Everything is
 * copied by sage_task_new but the middleware hooks and the task kind, which
 * must outlive the task. */
typedef struct sage_task_opts {
    const char *name;             /* registered name; default: the service's own */
    const char *ns;               /* namespace; default "default" */
    sage_transport transport;     /* default SAGE_TRANSPORT_LOCAL */
    uint32_t max_workers;         /* threads running methods; default 10 */
    int64_t queue_timeout_ms;     /* how long a caller waits for room; default 30000 */
    uint32_t request_queue_size;  /* requests the queue holds; default 10000 */
    size_t max_request;           /* largest request in bytes; default 1 MiB */
    double error_threshold;       /* degraded while this share of calls fails (see
                                   * sage_status); default 0.5; 0: never */
    const sage_value *config;     /* given to the service's create; copied */
    const sage_middleware *const *middleware; /* chain, in order: the array is copied,
                                               * the hooks are borrowed */
    size_t nmiddleware;
    const char *const *idempotent; /* methods that may run more than once, beyond those
                                    * whose table entry says SAGE_METHOD_IDEMPOTENT:
                                    * callers then retry (and hedge) them without being
                                    * told; names are checked and copied */
    size_t nidempotent;
    const sage_task_kind *kind;   /* custom request handling; NULL: default; borrowed */
    const sage_cluster_opts *cluster; /* transport nats: where and how; copied */
} sage_task_opts;

/* sage_task_opts_init fills opts with the defaults (those of a
 * configuration's service.local section). */
SAGE_API void sage_task_opts_init(sage_task_opts *opts);

/*
 * sage_task_new_from_conf is sage_task_new with the options of service
 * entry sc of configuration c: its name, transport, service.local settings,
 * middleware (built-in ones, by name), its `config:` map, and for transport
 * nats c's nats section and sc's delivery. ns NULL means c's namespace.
 * SAGE_ECONFIG (detail with file and line) for an unknown middleware;
 * otherwise as sage_task_new. c and sc are borrowed during the call.
 */
SAGE_API sage_err sage_task_new_from_conf(sage_task **tp, const sage_service *svc,
                                          const sage_config *c, const sage_service_conf *sc,
                                          const char *ns);

/*
 * sage_task_new makes a task for svc, not yet running, and writes it to *tp.
 * svc must outlive the task. SAGE_EINVAL for bad options or a malformed
 * service table (detail says which). Thread-safe.
 */
SAGE_API sage_err sage_task_new(sage_task **tp, const sage_service *svc, const sage_task_opts *opts);

/*
 * sage_task_start creates the service's state, opens the request queue,
 * registers the task (host-wide for SHM) and starts its threads. Starting a
 * running task does nothing and returns SAGE_OK. SAGE_EEXIST if a live
 * process already serves that name on this host; the create function's
 * error if it fails. Blocks until the task accepts calls.
 */
SAGE_API sage_err sage_task_start(sage_task *t);

/*
 * sage_task_stop stops accepting calls (new callers get SAGE_EUNAVAILABLE),
 * answers every request already queued, waits for calls in flight, then
 * stops the threads, destroys the state and leaves the registry. Stopping a
 * task that is not running does nothing. Blocks; not from a method.
 */
SAGE_API sage_err sage_task_stop(sage_task *t);

/* sage_task_free stops t if needed and frees it. NULL is ignored. */
SAGE_API void sage_task_free(sage_task *t);

/* sage_task_name returns the name t serves under (borrowed). */
SAGE_API const char *sage_task_name(const sage_task *t);

/* Lifecycle states, as status reports them. */
typedef enum sage_state {
    SAGE_STATE_CREATED = 0,
    SAGE_STATE_STARTING,
    SAGE_STATE_RUNNING,
    SAGE_STATE_DEGRADED, /* running, but failing or falling behind */
    SAGE_STATE_STOPPING,
    SAGE_STATE_STOPPED,
    SAGE_STATE_FAILED,
} sage_state;

/* sage_state_name: "created", "running", ... */
SAGE_API const char *sage_state_name(sage_state s);

/* SAGE_ADDRESS_MAX: the longest address of a service (a request queue's
 * name, a NATS subject), in bytes. */
#define SAGE_ADDRESS_MAX 255

/* SAGE_STATUS_METHODS_MAX: methods a status reports figures of. */
#define SAGE_STATUS_METHODS_MAX 32

/* Latency histogram bounds for exporters (Prometheus "le"), in seconds:
 * 1 us .. 10 s in 1-2.5-5 steps. */
#define SAGE_LATENCY_BUCKETS 22
SAGE_API extern const double sage_latency_bounds[SAGE_LATENCY_BUCKETS];

/* A latency distribution in exporter form. */
typedef struct sage_latency {
    uint64_t count;                           /* calls measured */
    double sum_s;                             /* their total run time */
    uint64_t le[SAGE_LATENCY_BUCKETS];        /* cumulative: calls <= bound */
} sage_latency;

/* Figures of one method of a task. */
typedef struct sage_method_status {
    char name[SAGE_NAME_MAX + 1];
    uint64_t requests;
    uint64_t errors;
    double latency_p50_us;
    double latency_p99_us;
    sage_latency latency;
} sage_method_status;

/*
 * Health figures of a task. state is what the task set (created, running,
 * stopping, stopped, failed), with two readings on top: failed when its
 * process is gone, and degraded while it runs but over the last 10 seconds
 * at least 10 calls were answered and at least error_threshold of them
 * failed on the service's side, or while its request queue has stayed full
 * for longer than its queue timeout. Calls that failed by the caller's own
 * fault (no such method, bad arguments, rejected, malformed, too large) are
 * not counted either way. It leaves degraded as soon as neither holds.
 * reason says why.
 */
typedef struct sage_status {
    char name[SAGE_NAME_MAX + 1];
    char ns[SAGE_NAME_MAX + 1];
    sage_transport transport;
    sage_state state;
    int32_t pid;             /* owning process */
    bool owner_alive;        /* that process lives */
    double uptime_s;         /* since start */
    uint64_t requests;       /* answered, successfully or not */
    uint64_t errors;         /* answered with an error */
    uint64_t in_flight;      /* running now */
    uint64_t queue_depth;    /* waiting in the request queue */
    uint64_t expired;        /* dropped because the caller had given up */
    uint64_t malformed;      /* undecodable requests (answered or dropped) */
    uint64_t rejected;       /* refused by middleware */
    uint64_t queue_full;     /* times a caller found the queue full */
    uint64_t dropped;        /* requests dropped unanswered (see last_drop) */
    double latency_p50_us;   /* method run time, all methods */
    double latency_p99_us;
    sage_latency latency;    /* the same, for exporters */
    int64_t last_activity_ns; /* wall clock of the last call, 0 if none */
    int64_t heartbeat_ns;    /* wall clock the listener last proved alive */
    uint32_t max_workers;
    uint32_t request_queue_size;
    int64_t queue_timeout_ms;
    char reason[SAGE_REASON_MAX + 1];    /* why the state is what it is (degraded, failed),
                                          * or "" */
    char last_drop[SAGE_REASON_MAX + 1]; /* why the last request was dropped unanswered */
    size_t nmethods;
    sage_method_status methods[SAGE_STATUS_METHODS_MAX];
} sage_status;

/* sage_task_status fills *st from t. Thread-safe; does not block (but for
 * a moment while t starts or stops). */
SAGE_API sage_err sage_task_status(sage_status *st, sage_task *t);

/* ---------------------------------------------------------- environment */

/*
 * sage_env: the in-process registry of services (an environment): it maps
 * service names to tasks, so a manager built on it calls them directly.
 * Tasks stay owned by the caller; the environment only refers to them.
 */
typedef struct sage_env sage_env;

/* sage_env_new makes an empty environment for namespace ns (NULL:
 * "default"). */
SAGE_API sage_err sage_env_new(sage_env **ep, const char *ns);

/* sage_env_free frees e; tasks still registered are not touched. */
SAGE_API void sage_env_free(sage_env *e);

/* sage_env_register maps name (NULL: the task's name) to t. SAGE_EEXIST if
 * the name is taken. Thread-safe. */
SAGE_API sage_err sage_env_register(sage_env *e, const char *name, sage_task *t);

/* sage_env_unregister removes name; SAGE_ENOENT if absent. Thread-safe. */
SAGE_API sage_err sage_env_unregister(sage_env *e, const char *name);

/* sage_env_find returns the task registered as name, or NULL (borrowed). */
SAGE_API sage_task *sage_env_find(sage_env *e, const char *name);

/* sage_env_ns returns e's namespace (borrowed). */
SAGE_API const char *sage_env_ns(const sage_env *e);

/* ----------------------------------------------------- host registry */

/* One service seen in the host registry. */
typedef struct sage_host_entry {
    char name[SAGE_NAME_MAX + 1];
    char ns[SAGE_NAME_MAX + 1];
    char queue[SAGE_ADDRESS_MAX + 1]; /* its request queue's name */
    int32_t pid;        /* owning process */
    bool owner_alive;
    sage_state state;
    int64_t started_ns; /* wall clock */
    int64_t heartbeat_ns;
} sage_host_entry;

/* Callback of sage_host_list, once per entry, on the calling thread. */
typedef void (*sage_host_list_fn)(void *arg, const sage_host_entry *e);

/*
 * sage_host_list reports every service of this user in the host registry
 * (all namespaces when ns is NULL). Entries of dead owners are reported
 * with owner_alive false and, when clean is true, removed (with their
 * queues) afterwards. A file under this user's registry names that is not
 * this user's (another owner, writable by others, a link) is skipped.
 */
SAGE_API sage_err sage_host_list(const char *ns, bool clean, sage_host_list_fn fn, void *arg);

/* sage_host_status reads a host-registered service's status from any
 * process of the same user. SAGE_ENOSERVICE if there is no such service,
 * SAGE_EPERM (naming the file and its owner) if its registry entry is not
 * this user's. */
SAGE_API sage_err sage_host_status(sage_status *st, const char *ns, const char *name);

#ifdef __cplusplus
}
#endif
#endif /* SAGE_TASK_H */
