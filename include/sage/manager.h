/*
 * sage/manager.h - sage_manager: calling services, synchronously or not.
 *
 * A manager finds a service by name (in its sage_env first, then in the
 * host registry, then - when configured - in the cluster), sends the call,
 * and completes a sage_future when the answer comes back. A synchronous
 * call is an asynchronous call plus a wait: one path.
 *
 * Destinations are cached by name, reused, and closed after idle_close_ms
 * unused. A service that stops refuses new calls (SAGE_EUNAVAILABLE) and
 * answers those it took; when a serving process dies, its calls fail with
 * SAGE_EUNAVAILABLE once every answer it sent has been read.
 *
 * Threads: every function here is thread-safe. Each manager has one
 * completion thread, on which every callback of its futures runs
 * (sage/future.h).
 *
 * Delivery is at most once: a call that timed out may or may not have run.
 * A call marked idempotent may be retried (same request id, so the service
 * can recognise a repeat) when it fails with SAGE_EUNAVAILABLE, SAGE_EFULL,
 * SAGE_ETIMEDOUT or SAGE_ECONNECT; its timeout then covers all attempts,
 * each attempt getting an equal share.
 */
#ifndef SAGE_MANAGER_H
#define SAGE_MANAGER_H

#include "sage/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sage/cluster.h"
#include "sage/err.h"
#include "sage/future.h"
#include "sage/task.h"
#include "sage/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sage_manager sage_manager;

/* Options of a manager; fill with sage_manager_opts_init first. Everything
 * is copied by sage_manager_new but env, which must outlive the manager. */
typedef struct sage_manager_opts {
    sage_env *env;              /* in-process services; may be NULL; borrowed */
    const char *ns;             /* namespace; default: env's, else "default" */
    int64_t timeout_ms;         /* default call timeout; default 30000; < 0: none */
    uint32_t retries;           /* default retries of idempotent calls; default 0 */
    int64_t retry_backoff_ms;   /* first retry delay, doubling; default 50 */
    int64_t idle_close_ms;      /* how long an unused destination is kept; default 60000 */
    int64_t hedge_after_ms;     /* default hedge delay of idempotent calls; default 0: none */
    size_t max_response;        /* largest answer accepted, bytes; default 1 MiB */
    uint32_t max_pending;       /* calls outstanding at once; default 1 << 20 */
    const sage_cluster_opts *cluster; /* the cluster to call into; NULL: none */
} sage_manager_opts;

/* sage_manager_opts_init fills opts with the defaults (those of a
 * configuration's service.call section). */
SAGE_API void sage_manager_opts_init(sage_manager_opts *opts);

/* sage_manager_opts_from_conf sets o's namespace and call defaults from c
 * (its service.call section); c must outlive o's use. The cluster stays
 * the caller's to set. */
SAGE_API void sage_manager_opts_from_conf(sage_manager_opts *o, const sage_config *c);

/*
 * sage_manager_new makes a manager: its transports' connections, its reply
 * queue and its completion thread, and writes it to *mp on success.
 * SAGE_EINVAL for options out of range, SAGE_ECONNECT if a cluster is
 * configured and no NATS server answers, SAGE_ENOTSUP if one is configured
 * but the library has no cluster support (sage_cluster_supported).
 */
SAGE_API sage_err sage_manager_new(sage_manager **mp, const sage_manager_opts *opts);

/*
 * sage_manager_free completes every pending future with SAGE_ECLOSED, runs
 * every callback still due (on the completion thread), stops the manager's
 * threads, and frees it, futures included: none may be used afterwards.
 * NULL is ignored. Blocks; not from a callback, not while other threads
 * use m.
 */
SAGE_API void sage_manager_free(sage_manager *m);

/* One call: the service, the method and its arguments, and how to call it.
 * Zero-initialise for the defaults:
 *   sage_request rq = {.service = "kv", .method = "get", .args = a, .nargs = 1}; */
typedef struct sage_request {
    const char *service;
    const char *method;
    const sage_value *args;   /* positional arguments; borrowed during the call */
    size_t nargs;
    const sage_pair *kwargs;  /* keyword arguments (string keys); borrowed */
    size_t nkwargs;
    int64_t timeout_ms;       /* 0: the manager's default; < 0: no limit */
    bool idempotent;          /* the call may run more than once: retries allowed (a
                               * method the service declared idempotent is, unasked) */
    uint32_t retries;         /* retries when idempotent; 0: the manager's default */
    int64_t hedge_after_ms;   /* idempotent calls to a replicated service: with no answer
                               * by then, the same request goes to another replica too,
                               * the first answer wins; 0: the manager's default; < 0: no */
} sage_request;

/*
 * sage_manager_call sends req and writes a future for its answer to *fp.
 * Fails at once with SAGE_ENOSERVICE if no such service is known,
 * SAGE_EUNAVAILABLE if it is stopping or its process died, SAGE_EFULL if
 * its queue stayed full for its queue timeout, SAGE_EMSGSIZE if the request
 * is too large; then no future is made and no callback runs. Otherwise the
 * future completes exactly once. Blocks only while the service's queue is
 * full.
 */
SAGE_API sage_err sage_manager_call(sage_future **fp, sage_manager *m, const sage_request *req);

/*
 * sage_manager_call_sync is sage_manager_call then a wait: it returns the
 * call's outcome, and on success writes the result to *result, its memory
 * in arena (valid until the arena is reset). result and arena may both be
 * NULL to discard the result. The service's error code and message come
 * back as this call's error and detail. Blocks up to the call's timeout.
 */
SAGE_API sage_err sage_manager_call_sync(sage_value *result, sage_manager *m,
                                         const sage_request *req, sage_arena *arena);

/*
 * sage_manager_poll does on the calling thread what the completion thread
 * does with answers: it takes those waiting in m's inbox (answers from
 * other processes and over NATS, and the news of calls completed in this
 * process), completes their calls, and runs the callbacks that are due
 * before it returns. If none is waiting it waits up to timeout_ms for some
 * (0: not at all; negative: no limit); it may return sooner, with none,
 * when another thread was taking them meanwhile (the caller's among them,
 * perhaps). *countp (may be NULL) gets the number of records taken (the
 * empty one a thread leaves to wake the completion thread counts). A
 * thread that keeps calling and polls takes its answers without a wake-up
 * of the completion thread, which steps aside from the inbox while threads
 * poll (as it does for sync callers). The callbacks of a manager still run
 * one at a time; inside this call they may run on the calling thread, so
 * call it holding no lock a callback takes. SAGE_OK, or SAGE_EINVAL for a
 * NULL m. Thread-safe; blocks up to timeout_ms.
 */
SAGE_API sage_err sage_manager_poll(size_t *countp, sage_manager *m, int timeout_ms);

/*
 * sage_manager_callf is call_sync with the arguments built from a sage_pack
 * format that must describe an array, and default call options:
 *   sage_manager_callf(&res, m, arena, "kv", "put", "[si]", "k", 1);
 */
SAGE_API sage_err sage_manager_callf(sage_value *result, sage_manager *m, sage_arena *arena,
                                     const char *service, const char *method, const char *fmt,
                                     ...);

/* Where a service is reached. */
typedef struct sage_endpoint {
    sage_transport transport;
    char address[SAGE_ADDRESS_MAX + 1]; /* request queue (shm), subject (nats), "(in-process)" */
    int32_t pid;                        /* serving process (local, shm), 0 if unknown */
} sage_endpoint;

/* sage_manager_lookup tells where service is reached, opening and caching
 * its destination. SAGE_ENOSERVICE if it is not found. */
SAGE_API sage_err sage_manager_lookup(sage_endpoint *ep, sage_manager *m, const char *service);

/* Figures of a manager. */
typedef struct sage_manager_stats {
    uint64_t calls;       /* calls sent */
    uint64_t completed;   /* futures completed, any outcome */
    uint64_t errors;      /* completed with an error */
    uint64_t timeouts;    /* completed with SAGE_ETIMEDOUT */
    uint64_t retries;     /* attempts beyond the first */
    uint64_t late;        /* answers that came after their future completed: dropped */
    uint64_t malformed;   /* undecodable answers: dropped */
    uint64_t hedges;      /* hedged attempts sent (their losing answers count as late) */
    uint64_t pending;     /* outstanding now */
    uint64_t connections; /* cached destinations now */
} sage_manager_stats;

/* sage_manager_stats_read fills *st with m's figures. */
SAGE_API sage_err sage_manager_stats_read(sage_manager_stats *st, sage_manager *m);

/* sage_manager_ns returns m's namespace (borrowed). */
SAGE_API const char *sage_manager_ns(const sage_manager *m);

#ifdef __cplusplus
}
#endif
#endif /* SAGE_MANAGER_H */
