/*
 * sage/manager.h - sage_manager: calling services, synchronously or not.
 *
 * A manager finds a service by name (in its sage_env first, then in the
 * host registry, then - when configured - in the cluster), sends the call,
 * and completes a sage_future when the answer comes back on its own response
 * queue. A synchronous call is an asynchronous call plus a wait: one path.
 *
 * Connections to services are cached by name, reused, closed after
 * idle_close seconds unused, and dropped at once when the service's process
 * dies: its pending calls then fail with SAGE_EUNAVAILABLE.
 *
 * Delivery is at most once: a call that timed out may or may not have run.
 * A call marked idempotent may be retried (same request id, so the service
 * can recognise a repeat) when it fails with SAGE_EUNAVAILABLE, SAGE_EFULL,
 * SAGE_ETIMEDOUT or SAGE_ECONNECT; its timeout then covers all attempts,
 * each attempt getting an equal share.
 */
#ifndef SAGE_MANAGER_H
#define SAGE_MANAGER_H

#include <stddef.h>
#include <stdint.h>

#include "sage/err.h"
#include "sage/future.h"
#include "sage/task.h"
#include "sage/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sage_manager sage_manager;

/* Options of a manager; fill with sage_manager_opts_init first. */
typedef struct sage_manager_opts {
    sage_env *env;          /* in-process services; may be NULL; borrowed */
    const char *ns;         /* namespace; default: env's, else "default" */
    double timeout;         /* default call timeout, seconds; default 30 */
    uint32_t retries;       /* default retries of idempotent calls; default 0 */
    double retry_backoff;   /* first retry delay, doubling; default 0.05 s */
    double idle_close;      /* seconds an unused connection is kept; default 60 */
    size_t max_response;    /* largest answer accepted, bytes; default 1 MiB */
    uint32_t max_pending;   /* calls outstanding at once; default 1 << 20 */
    const void *cluster;    /* cluster connection (see sage/cluster.h); NULL: none */
} sage_manager_opts;

/* sage_manager_opts_init fills opts with the defaults. */
void sage_manager_opts_init(sage_manager_opts *opts);

/*
 * sage_manager_new makes a manager: its response queue and the thread that
 * completes futures from it. Thread-safe.
 */
sage_err sage_manager_new(sage_manager **mp, const sage_manager_opts *opts);

/*
 * sage_manager_free completes every pending future with SAGE_ECLOSED
 * (running their callbacks), stops the manager's threads, and frees it,
 * futures included: none may be used afterwards. NULL is ignored. Not from
 * a future's callback.
 */
void sage_manager_free(sage_manager *m);

/* Options of one call; zero-initialise ({0}) for the defaults. */
typedef struct sage_call_opts {
    double timeout;  /* seconds; 0: the manager's default; < 0: no limit */
    int idempotent;  /* non-zero: the call may be retried */
    int retries;     /* retries when idempotent; 0: the manager's default */
} sage_call_opts;

/*
 * sage_manager_call_async sends service.method(args..., **kwargs) and
 * writes a future for its answer to *fp. args[0..nargs) and kwargs (pairs
 * with string keys) are borrowed only during the call. Fails at once with
 * SAGE_ENOSERVICE if no such service is known, SAGE_EUNAVAILABLE if it is
 * stopping or its process died, SAGE_EFULL if its queue stayed full for its
 * queue_timeout, SAGE_EMSGSIZE if the request is too large; then no future
 * is made. Otherwise the future completes exactly once. Thread-safe.
 */
sage_err sage_manager_call_async(sage_manager *m, const char *service, const char *method,
                                 const sage_value *args, size_t nargs, const sage_pair *kwargs,
                                 size_t nkwargs, const sage_call_opts *opts, sage_future **fp);

/*
 * sage_manager_call_sync is call_async then a wait: it returns the call's
 * outcome, and on success decodes the result into arena (the result lives
 * until the arena is reset) and writes it to *result. Both may be NULL to
 * discard the result. The service's error code and message come back as
 * this call's error and detail. Thread-safe; blocks up to the timeout.
 */
sage_err sage_manager_call_sync(sage_manager *m, const char *service, const char *method,
                                const sage_value *args, size_t nargs, const sage_pair *kwargs,
                                size_t nkwargs, const sage_call_opts *opts, sage_arena *arena,
                                sage_value *result);

/*
 * sage_manager_callf is call_sync with the arguments built from a sage_pack
 * format that must describe an array: sage_manager_callf(m, "kv", "put",
 * arena, &res, "[si]", "k", 1). Default call options.
 */
sage_err sage_manager_callf(sage_manager *m, const char *service, const char *method,
                            sage_arena *arena, sage_value *result, const char *fmt, ...);

/* Where a service is reached (the seed's get_service_queue). */
typedef struct sage_endpoint {
    sage_transport transport;
    char queue[160]; /* request queue (local, shm) or subject (nats) */
    int32_t pid;     /* serving process (local, shm), 0 if unknown */
} sage_endpoint;

/* sage_manager_lookup tells where service is reached, opening and caching
 * the connection. SAGE_ENOSERVICE if it is not found. */
sage_err sage_manager_lookup(sage_manager *m, const char *service, sage_endpoint *ep);

/* Figures of a manager. */
typedef struct sage_manager_stats {
    uint64_t calls;       /* calls sent */
    uint64_t completed;   /* futures completed, any outcome */
    uint64_t errors;      /* completed with an error */
    uint64_t timeouts;    /* completed with SAGE_ETIMEDOUT */
    uint64_t retries;     /* attempts beyond the first */
    uint64_t late;        /* answers that came after their future completed: dropped */
    uint64_t malformed;   /* undecodable answers: dropped */
    uint64_t pending;     /* outstanding now */
    uint64_t connections; /* cached connections now */
} sage_manager_stats;

/* sage_manager_stats_read fills *st. Thread-safe. */
sage_err sage_manager_stats_read(sage_manager *m, sage_manager_stats *st);

/* sage_manager_reply_queue returns the name of m's response queue
 * (borrowed). */
const char *sage_manager_reply_queue(const sage_manager *m);

#ifdef __cplusplus
}
#endif
#endif /* SAGE_MANAGER_H */
