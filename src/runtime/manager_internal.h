/* manager_internal.h - the manager, its futures, connections and timers. */
#ifndef SAGE_RUNTIME_MANAGER_INTERNAL_H
#define SAGE_RUNTIME_MANAGER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/task_internal.h"
#include "sage/manager.h"

/* Future states (low bits of sage_future.state); WAITERS marks a sleeper. */
#define FS_FREE 0u
#define FS_PENDING 1u
#define FS_COMPLETING 2u
#define FS_DONE 3u
#define FS_MASK 3u
#define FS_WAITERS 4u

/* Callback states */
#define CB_NONE 0u
#define CB_SET 1u
#define CB_FIRED 2u

#define FUT_CHUNK 4096u

/*
 * A future is a slot of its manager's table; its request id is
 * (generation << 32) | index, so an answer finds its slot in O(1) and an
 * answer for an earlier use of the slot (a late one) does not match.
 */
struct sage_future {
    sage_manager *m;
    _Atomic uint32_t state;
    _Atomic uint32_t cb_state;
    _Atomic uint32_t gen;
    uint32_t index;
    _Atomic uint32_t next_free; /* free list link: index + 1, 0 = end */
    uint64_t id;
    sage_arena *arena; /* own memory: the answer, a retry's request copy */
    sage_arena *dest;  /* where the result is decoded (a sync caller's arena) */
    sage_err err;
    const char *errmsg;
    sage_value result;
    sage_future_fn cb;
    void *cb_arg;
    uint64_t conn_serial; /* the connection the request went out on */
    char service[SAGE_NAME_MAX + 1];
    int64_t deadline_ns;         /* whole call; -1: none */
    int64_t attempt_deadline_ns; /* this attempt; -1: none */
    _Atomic uint32_t attempt;    /* number of the attempt in flight (timers read it) */
    uint32_t retries_left;
    int64_t backoff_ns;
    bool idempotent;
    bool retry_wait; /* waiting out a backoff before the next attempt */
    bool remote;     /* answered over the cluster, not through our response queue */
    const void *req_bytes; /* encoded request, kept for retries */
    size_t req_len;
};

/* A cached connection to a service. */
struct sage__conn {
    char name[SAGE_NAME_MAX + 1];
    uint64_t serial;
    sage_transport transport;
    sage_queue *q;          /* shm: the opened request queue */
    struct sage__lep *lep;  /* local: the task's queue */
    void *remote;           /* nats: cluster.c's subject state */
    int32_t pid;
    uint64_t pid_start;
    int pidfd;              /* watched for the owner's death; -1 if none */
    uint32_t queue_timeout_ms;
    size_t max_request;
    char where[160];        /* queue or subject name, for lookups */
    _Atomic int refs;       /* the cache's one, plus one per send in progress */
    _Atomic int dead;
    _Atomic int64_t last_used_ns;
    struct sage__conn *next;
};

struct sage__timers; /* timers.c */

struct sage_manager {
    char ns[SAGE_NAME_MAX + 1];
    sage_env *env;
    double timeout, retry_backoff, idle_close;
    uint32_t retries;
    size_t max_response;
    uint32_t max_pending;
    const void *cluster_opts;
    void *cluster; /* cluster.c's client state */

    sage_queue *rq; /* our response queue */
    char rq_name[SAGE_QUEUE_NAME_MAX + 1];
    pthread_t resp_thread;
    _Atomic int closing;
    _Atomic int64_t resp_wake_at; /* when the response thread will look next */
    /* who drains the response queue (see manager.c, "caller-runs") */
    _Atomic uint32_t rx;          /* 0 free, 1 taken: the drain token */
    _Atomic uint32_t rx_want;     /* synchronous callers waiting for answers */
    _Atomic uint32_t rx_seq;      /* bumped when the token is given back */
    _Atomic uint32_t rx_sleepers; /* callers asleep waiting for the token */
    _Atomic uint32_t aside_seq;   /* the response thread sleeps aside on it */
    _Atomic int64_t rx_last_sync; /* when a synchronous caller last drained (coarse clock) */
    _Atomic int resp_draining;    /* the response thread holds the token */

    /* futures */
    pthread_mutex_t grow_lock;
    struct sage_future **chunks; /* max_chunks entries, filled as it grows */
    _Atomic uint32_t nchunks;
    uint32_t max_chunks;
    _Atomic uint64_t free_head; /* (tag << 32) | (index + 1) */

    struct sage__timers *timers;

    /* connections */
    pthread_mutex_t conn_lock;
    struct sage__conn *conns;
    uint64_t conn_serial;
    int64_t last_sweep_ns;
    int epfd;   /* watch thread: pidfds of serving processes; -1: no thread */
    int wakefd; /* eventfd that stops the watch thread */
    pthread_t watch_thread;

    /* figures; calls pending are n_calls - n_completed (manager.c, pending) */
    _Atomic uint64_t n_calls, n_completed, n_errors, n_timeouts, n_retries, n_late, n_malformed;
};

/* ---- pending.c: the future table */
sage_err sage__fut_alloc(sage_manager *m, struct sage_future **fp);
void sage__fut_release(struct sage_future *f);
struct sage_future *sage__fut_lookup(sage_manager *m, uint64_t id);
/* sage__fut_foreach calls fn for every slot (any state). */
void sage__fut_foreach(sage_manager *m, void (*fn)(struct sage_future *f, void *arg), void *arg);
void sage__fut_free_all(sage_manager *m);

/* ---- future.c */
/* sage__fut_claim moves a pending future to COMPLETING: true if we won it
 * (only the winner may touch its result fields and must then complete it). */
bool sage__fut_claim(struct sage_future *f);
/* sage__fut_complete finishes a claimed future: stores the outcome, wakes
 * waiters, runs the callback. f must not be touched afterwards. */
void sage__fut_complete(struct sage_future *f, sage_err err, const char *msg);

/* ---- timers.c */
/* sage__timer_stale_fn says whether an entry no longer matters (its call
 * completed, or moved on to a later attempt). Called under the timers'
 * lock: it must not call back into the timers. */
typedef bool (*sage__timer_stale_fn)(void *arg, uint32_t index, uint32_t gen, uint32_t attempt);
sage_err sage__timers_new(struct sage__timers **tp, sage__timer_stale_fn stale, void *arg);
void sage__timers_free(struct sage__timers *t);
/* sage__timers_add schedules (index, gen, attempt) at deadline_ns; span is
 * the timeout it came from (entries of one span expire in order). */
void sage__timers_add(struct sage__timers *t, uint32_t index, uint32_t gen, uint32_t attempt,
                      int64_t deadline_ns, int64_t span_ns);
/* sage__timers_trim drops stale entries from the head of each span (cheap),
 * or everywhere when they pile up beyond four times live (pending calls). */
void sage__timers_trim(struct sage__timers *t, uint64_t live);
/* sage__timers_footprint returns the entries the FIFOs can hold without
 * growing, and stores those they hold in *entries (if not NULL). */
size_t sage__timers_footprint(struct sage__timers *t, size_t *entries);
/* sage__timers_next returns the earliest deadline, or -1 if none. */
int64_t sage__timers_next(struct sage__timers *t);
/* sage__timers_expire pops every entry due at now, calling fn for each. */
void sage__timers_expire(struct sage__timers *t, int64_t now,
                         void (*fn)(void *arg, uint32_t index, uint32_t gen, uint32_t attempt),
                         void *arg);

/* ---- conn.c */
/* sage__conn_get returns a counted reference to the connection to service,
 * resolving and caching it if needed. */
sage_err sage__conn_get(sage_manager *m, const char *service, struct sage__conn **cp);
void sage__conn_put(sage_manager *m, struct sage__conn *c);
/* sage__conn_kill marks c dead: it leaves the cache, and pending calls that
 * went through it fail with err (or retry). */
void sage__conn_kill(sage_manager *m, struct sage__conn *c, sage_err err, const char *why);
/* sage__conn_sweep closes connections idle past idle_close. */
void sage__conn_sweep(sage_manager *m, int64_t now);
void sage__conn_free_all(sage_manager *m);
/* sage__conn_transmit sends encoded bytes through c, waiting up to
 * timeout_ms for room. *deadp says whether the failure shows c dead (its
 * service stopped or its process died: SAGE_EUNAVAILABLE); the caller then
 * settles its own call first and kills c after, so that the kill's sweep of
 * c's pending calls does not also fail (or retry) that call. */
sage_err sage__conn_transmit(sage_manager *m, struct sage__conn *c, const void *data, size_t len,
                             int timeout_ms, bool *deadp);
/* sage__conn_send encodes req (stamped with sent_ns just now) and transmits
 * it, waiting for room up to c's queue_timeout or deadline_ns; with copyp,
 * keeps a copy of the bytes in copy_arena for retries. *deadp as above. */
sage_err sage__conn_send(sage_manager *m, struct sage__conn *c, const sage__req *req,
                         int64_t deadline_ns, const void **copyp, size_t *lenp,
                         sage_arena *copy_arena, bool *deadp);

/* ---- watch.c: the owner-death watcher */
sage_err sage__watch_add(sage_manager *m, struct sage__conn *c);
void sage__watch_stop(sage_manager *m);

/* ---- cluster/client.c: the manager's NATS route */
sage_err sage__cluster_client_new(sage_manager *m);
void sage__cluster_client_free(sage_manager *m);
sage_err sage__cluster_resolve(sage_manager *m, const char *service, struct sage__conn *c);
sage_err sage__cluster_send(sage_manager *m, struct sage__conn *c, const void *data, size_t len);
void sage__cluster_conn_free(struct sage__conn *c);
const char *sage__cluster_reply_to(sage_manager *m, uint64_t id, char *buf, size_t cap);

/* ---- manager.c */
/* sage__mgr_fail_conn fails (or retries) every pending call sent through
 * the connection with that serial. */
void sage__mgr_fail_conn(sage_manager *m, uint64_t serial, sage_err err, const char *why);
/* sage__mgr_fail_remote fails (or retries) every pending call sent over
 * the cluster: its answer cannot arrive on a lost connection. */
void sage__mgr_fail_remote(sage_manager *m, sage_err err, const char *why);
/* sage__mgr_fail_id fails (or retries) the pending call with that id. */
void sage__mgr_fail_id(sage_manager *m, uint64_t id, sage_err err, const char *why);
/* sage__mgr_on_response completes the call an encoded answer is for (any
 * thread; answers of transports other than the response queue). */
void sage__mgr_on_response(sage_manager *m, const void *data, size_t len);

#endif
