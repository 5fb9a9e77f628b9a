/* manager_internal.h - the manager, its futures, destinations and timers. */
#ifndef SAGE_RUNTIME_MANAGER_INTERNAL_H
#define SAGE_RUNTIME_MANAGER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/task_internal.h"
#include "sage/manager.h"
#include "transport/transport.h"

/* Future states (low bits of sage_future.state); WAITERS marks a sleeper.
 * The bits above FS_GEN_SHIFT repeat the slot's generation, so a claim
 * through a request id (sage__fut_claim_gen) can never take a later use
 * of the same slot. */
#define FS_FREE 0u
#define FS_PENDING 1u
#define FS_COMPLETING 2u
#define FS_DONE 3u
#define FS_MASK 3u
#define FS_WAITERS 4u
#define FS_GEN_SHIFT 3
#define FS_GEN(gen) ((uint32_t)(gen) << FS_GEN_SHIFT)

/* Callback list state bits (sage_future.cb_state) */
#define CB_LOCK 1u  /* a thread is changing the list */
#define CB_FIRED 2u /* the future completed: callbacks go to the completion thread */
#define CB_QUEUED 4u /* the future waits in the completion thread's queue (once at most) */

#define FUT_CHUNK 4096u
#define FUT_INLINE_CBS 2

struct fut_cb {
    sage_future_fn fn;
    void *arg;
};

/*
 * A future is a slot of its manager's table; its request id is
 * (generation << 32) | index, so an answer finds its slot in O(1) and an
 * answer for an earlier use of the slot (a late one) does not match.
 */
struct sage_future {
    sage_manager *m;
    _Atomic uint32_t state;
    _Atomic uint32_t gen;
    uint32_t index;
    _Atomic uint32_t next_free; /* free list link: index + 1, 0 = end */
    _Atomic uint32_t refs;      /* the user's, plus the completion thread's while queued */
    uint64_t id;
    sage_arena *arena; /* own memory: the answer, a retry's request copy */
    sage_arena *dest;  /* where the result is copied (a sync caller's arena) */
    sage_err err;
    const char *errmsg;
    sage_value result;

    /* callbacks: run on the completion thread, in registration order */
    _Atomic uint32_t cb_state;
    uint32_t ncbs, cbs_run;
    struct fut_cb cbs[FUT_INLINE_CBS];
    struct fut_cb *more; /* beyond FUT_INLINE_CBS, ncbs - FUT_INLINE_CBS of them */
    uint32_t more_cap;
    struct sage_future *cb_next; /* in the manager's callback queue */

    uint64_t conn_serial; /* the destination the request went out to */
    char service[SAGE_NAME_MAX + 1];
    int64_t deadline_ns;         /* whole call; -1: none */
    int64_t attempt_deadline_ns; /* this attempt; -1: none */
    _Atomic uint32_t attempt;    /* number of the attempt in flight (timers read it) */
    uint32_t retries_left;
    int64_t backoff_ns;
    bool idempotent;
    bool retry_wait; /* waiting out a backoff before the next attempt */
    bool via_inbox;  /* its answer comes through the inbox */
    bool async;      /* made by sage_manager_call: its answer is finished by the
                      * completion thread, which runs its callbacks then */
    uint8_t tp_kind; /* the transport it went out on (sage_transport) */
    bool remote;     /* that transport's answers take a network round trip */
    bool hedged;     /* idempotent, with hedge_after: a second attempt goes out early */
    int64_t hedge_ns; /* that early */
    _Atomic uint32_t redirects; /* attempts sent elsewhere after nobody took one */
    _Atomic uint32_t replica; /* where the attempt in flight went (SAGE__TP_NONE: no
                               * replica in particular) */
    sage__req *retry_req; /* a copy of the request in arena, for retries and hedges */
};

/* A timer's attempt number with this bit set is a hedge's, not a deadline's. */
#define SAGE__HEDGE_TIMER 0x80000000u

/* A cached destination: one service as one transport reaches it. */
struct sage__conn {
    char name[SAGE_NAME_MAX + 1];
    uint64_t serial;
    const struct sage__tp_ops *ops;
    struct sage__tp_dest *dest;
    struct sage__tp_dest_info info;
    struct sage__direct *direct; /* a task of this process: its door for direct calls */
    _Atomic int refs;  /* the cache's one, plus one per send in progress */
    _Atomic int stale; /* out of the cache: no new calls */
    _Atomic int64_t last_used_ns;
    struct sage__conn *next;
};

struct sage__timers; /* timers.c */

struct sage_manager {
    char ns[SAGE_NAME_MAX + 1];
    sage_env *env;
    int64_t timeout_ms, retry_backoff_ms, idle_close_ms, hedge_after_ms;
    uint32_t retries;
    size_t max_response;
    uint32_t max_pending;
    sage_cluster_opts cluster_opts; /* a deep copy (cluster_mem), when has_cluster */
    bool has_cluster;
    void *cluster_mem;

    /* transports: one client each (NULL: not open) */
    struct sage__tp_client *clients[SAGE__TP_KINDS];
    /* the inbox: the queue answers arrive in, drained by one thread at a time */
    const struct sage__tp_ops *inbox_ops; /* of the client that owns it; NULL: ours */
    struct sage__tp_client *inbox_client;
    sage_queue *own_inbox; /* a private one, when no client offers one */

    pthread_t resp_thread;
    _Atomic int closing;
    _Atomic int stopping;         /* the completion thread: finish and exit */
    _Atomic int64_t resp_wake_at; /* when the completion thread will look next */
    /* who drains the inbox (see manager.c, "caller-runs") */
    _Atomic uint32_t rx;          /* 0 free, 1 taken: the drain token */
    _Atomic uint32_t rx_want;     /* synchronous callers waiting for answers */
    _Atomic uint32_t rx_seq;      /* bumped when the token is given back */
    _Atomic uint32_t rx_sleepers; /* callers asleep waiting for the token */
    _Atomic uint32_t aside_seq;   /* the completion thread sleeps aside on it */
    _Atomic int64_t rx_last_sync; /* when a synchronous caller last drained (coarse clock) */
    _Atomic int resp_draining;    /* the completion thread holds the token */

    /* futures whose callbacks are due, for the completion thread */
    pthread_mutex_t cb_lock;
    pthread_mutex_t cb_run_lock;  /* held by the thread running callbacks (one at a time) */
    struct sage_future *cb_head, *cb_tail;
    _Atomic int cb_poked; /* a wake is on its way */

    /* futures */
    pthread_mutex_t grow_lock;
    struct sage_future **chunks; /* max_chunks entries, filled as it grows */
    _Atomic uint32_t nchunks;
    uint32_t max_chunks;
    _Atomic uint64_t free_head; /* (tag << 32) | (index + 1) */

    struct sage__timers *timers;

    /* destinations */
    pthread_mutex_t conn_lock;
    struct sage__conn *conns;
    uint64_t conn_serial;

    /* figures; calls pending are n_calls - n_completed (manager.c, pending).
     * Callers count calls, completers the rest: each on its own cache line,
     * so that neither side's counting moves the other's line. */
    _Alignas(64) _Atomic uint64_t n_calls;
    _Alignas(64) _Atomic uint64_t n_completed;
    _Atomic uint64_t n_errors, n_timeouts, n_retries, n_late, n_malformed, n_hedges;
    char pad_[64];
};

/* ---- pending.c: the future table */
sage_err sage__fut_alloc(sage_manager *m, struct sage_future **fp);
/* sage__fut_unref drops one reference; the last returns the slot. */
void sage__fut_unref(struct sage_future *f);
/* sage__fut_try_ref takes a reference to f if it is still the use of its
 * slot of generation gen (a lookup by id, from a thread that holds none). */
bool sage__fut_try_ref(struct sage_future *f, uint32_t gen);
struct sage_future *sage__fut_lookup(sage_manager *m, uint64_t id);
/* sage__fut_foreach calls fn for every slot (any state). */
void sage__fut_foreach(sage_manager *m, void (*fn)(struct sage_future *f, void *arg), void *arg);
void sage__fut_free_all(sage_manager *m);

/* ---- future.c */
/* sage__fut_claim moves a pending future to COMPLETING: true if we won it
 * (only the winner may touch its result fields and must then complete it).
 * For a future the caller holds a reference to. */
bool sage__fut_claim(struct sage_future *f);
/* sage__fut_claim_gen is sage__fut_claim for a future found by id: it
 * wins only while the slot still holds generation gen. */
bool sage__fut_claim_gen(struct sage_future *f, uint32_t gen);
/* sage__fut_complete finishes a claimed future: stores the outcome, wakes
 * waiters, and queues its callbacks for the completion thread. f must not
 * be touched afterwards. */
void sage__fut_complete(struct sage_future *f, sage_err err, const char *msg);
/* sage__fut_run_callbacks runs the callbacks of f not run yet (the
 * completion thread), then drops the queue's reference. */
void sage__fut_run_callbacks(struct sage_future *f);

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

/* ---- conn.c: destinations */
/* sage__conn_get returns a counted reference to the destination of
 * service, resolving and caching it if needed. */
sage_err sage__conn_get(sage_manager *m, const char *service, struct sage__conn **cp);
void sage__conn_put(sage_manager *m, struct sage__conn *c);
/* sage__conn_evict takes c out of the cache: new calls resolve afresh;
 * calls already sent through it are left alone. */
void sage__conn_evict(sage_manager *m, struct sage__conn *c);
/* sage__conn_evict_serial evicts the destination with that serial. */
void sage__conn_evict_serial(sage_manager *m, uint64_t serial);
/* sage__conn_sweep closes destinations idle past idle_close. */
void sage__conn_sweep(sage_manager *m, int64_t now);
void sage__conn_free_all(sage_manager *m);
/* sage__conn_send sends req through c, waiting for room up to c's queue
 * timeout or deadline_ns (-1: none); a destination that must not take new
 * calls any more is evicted. */
sage_err sage__conn_send(sage_manager *m, struct sage__conn *c, const sage__req *req,
                         int64_t deadline_ns, int timeout_cap_ms);
/* sage__conn_send_to is sage__conn_send to one replica, not avoid (the
 * transport's send_to, which c's must have); the replica to *chosen. */
sage_err sage__conn_send_to(sage_manager *m, struct sage__conn *c, const sage__req *req,
                            int64_t deadline_ns, int timeout_cap_ms, uint32_t avoid,
                            uint32_t *chosen);

/* ---- answer.c: how calls end */
/* sage__mgr_on_answer completes the call an encoded answer (or a control
 * record, or a poke) is for; any thread. */
void sage__mgr_on_answer(sage_manager *m, const void *data, size_t len);
/* sage__mgr_on_value completes the call a decoded answer is for (copying
 * its result); any thread. */
void sage__mgr_on_value(sage_manager *m, const sage__resp *resp);
/* sage__mgr_event fails (or retries) the calls an event ends; kind is the
 * transport it came from (for SAGE__TP_FAIL_ALL). */
void sage__mgr_event(sage_manager *m, int kind, const struct sage__tp_event *ev);
/* sage__mgr_fail_id fails (or retries) the pending call with that id. */
void sage__mgr_fail_id(sage_manager *m, uint64_t id, sage_err err, const char *why);
/* sage__mgr_fail_inbox fails (or retries) every call waiting for an
 * answer in the inbox (it was replaced). */
void sage__mgr_fail_inbox(sage_manager *m, sage_err err, const char *why);
/* sage__mgr_finish_claimed finishes a claimed f whose answer it holds
 * (result, err, errmsg): completes it, or schedules its retry. */
void sage__mgr_finish_claimed(struct sage_future *f);
/* sage__mgr_schedule_retry: f is claimed. If a retry is allowed, record
 * it, hand f back (PENDING) and return true; else false (complete f). */
bool sage__mgr_schedule_retry(struct sage_future *f, sage_err err);
/* timers.c callbacks: a deadline or a backoff passed; is an entry stale */
void sage__mgr_on_timer(void *arg, uint32_t index, uint32_t gen, uint32_t attempt);
bool sage__mgr_timer_stale(void *arg, uint32_t index, uint32_t gen, uint32_t attempt);

/* ---- request.c */
/* sage__mgr_resend sends f's next attempt (f claimed; completion thread). */
void sage__mgr_resend(struct sage_future *f);
/* sage__mgr_hedge sends the same request again to another replica, if f
 * (referenced by the caller) still waits for attempt; completion thread. */
void sage__mgr_hedge(struct sage_future *f, uint32_t attempt);

/* ---- opts.c */
/* sage__cluster_opts_copy deep-copies src into *dst, everything it points
 * to in one malloc'd block (*memp, free()). */
sage_err sage__cluster_opts_copy(sage_cluster_opts *dst, void **memp, const sage_cluster_opts *src);

/* sage__task_new_conf is sage_task_new_from_conf with the transport kind
 * given, and (nats not NULL) those NATS settings instead of c's. */
sage_err sage__task_new_conf(sage_task **tp, const sage_service *svc, const sage_config *c,
                             const sage_service_conf *sc, const char *ns, sage_transport kind,
                             const sage_nats_conf *nats);

/* ---- manager.c */
/* sage__mgr_post_finish asks the completion thread (through the inbox) to
 * finish the claimed call id, whose answer is in its future; false if it
 * cannot (then finish it here). */
bool sage__mgr_post_finish(sage_manager *m, uint64_t id);
/* sage__mgr_poke_if_later wakes the completion thread if when_ns is
 * earlier than it plans to look. */
void sage__mgr_poke_if_later(sage_manager *m, int64_t when_ns);
/* sage__mgr_sync_drain: a synchronous caller waits for f by draining the
 * inbox itself (caller-runs), until f completes or deadline_ns (-1: none). */
void sage__mgr_sync_drain(sage_manager *m, struct sage_future *f, int64_t deadline_ns);
/* sage__mgr_client returns m's client of transport kind, opening it on
 * first use; NULL (detail set) if it cannot be had. */
struct sage__tp_client *sage__mgr_client(sage_manager *m, sage_transport kind);
/* sage__mgr_defer queues f (already DONE, a reference taken for the queue)
 * for the completion thread to run its callbacks. */
void sage__mgr_defer(sage_manager *m, struct sage_future *f);

#endif
