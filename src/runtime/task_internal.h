/* task_internal.h - the task, its calls, and what the manager reaches of it. */
#ifndef SAGE_RUNTIME_TASK_INTERNAL_H
#define SAGE_RUNTIME_TASK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "transport/shm_reg.h"
#include "sage/queue.h"
#include "sage/task.h"
#include "wire/wire.h"

struct sage__replies; /* reply.c */

/*
 * A local task's request queue as callers in this process hold it: counted
 * references, so a manager's cached connection stays valid after the task
 * stopped (sends then fail with SAGE_ECLOSED) until the manager lets go.
 */
struct sage__lep {
    _Atomic int refs;
    sage_queue *q;
    uint32_t queue_timeout_ms;
    size_t max_request;
};

/* sage__lep_ref / _unref: the last reference closes and frees the queue. */
struct sage__lep *sage__lep_ref(struct sage__lep *ep);
void sage__lep_unref(struct sage__lep *ep);

/* One method of the task: its entry in the service's table, its figures. */
struct sage__method {
    const char *name;
    size_t len;
    sage_method_fn fn;
    struct sage__reg_method *stats; /* NULL past SAGE__REG_METHODS */
    _Atomic int64_t ewma_ns;        /* typical run time: decides inline or worker */
};

/* A request in service, from decode to answer. Pooled per task. */
struct sage_call {
    struct sage_task *task;
    sage_arena *arena; /* request and answer memory, reset on reuse */
    sage__req req;
    char *service; /* NUL-terminated copies of req's names */
    char *method_name;
    char *reply_to;
    struct sage__method *method; /* NULL: unknown method */
    int64_t recv_ns;             /* monotonic */
    int64_t deadline_ns;         /* monotonic; -1: none */
    sage_err status;
    const char *errmsg; /* in arena; NULL: none */
    sage_value result;
    int ran;      /* the method ran (for after_call hooks) */
    int64_t *mw_log_start; /* the logging middleware's start time */
    bool remember; /* dedupe: record this call's answer */
    struct sage_call *next;
};

struct sage_task {
    const sage_service *svc;
    char name[SAGE_NAME_MAX + 1];
    char ns[SAGE_NAME_MAX + 1];
    sage_transport transport;
    uint32_t max_workers;
    double queue_timeout;
    uint32_t request_queue_size;
    size_t max_request;
    sage_arena *config_arena; /* the copy of opts->config */
    sage_value config;
    const sage_middleware **mw;
    size_t nmw;
    const sage_task_kind *kind;
    const void *transport_opts;
    struct sage__method *methods; /* sorted by name */
    size_t nmethods;

    pthread_mutex_t life; /* start/stop/free */
    _Atomic int state;    /* sage_state */
    void *svc_state;
    sage_queue *rq;           /* the request queue */
    struct sage__lep *lep;    /* local transport: rq as callers hold it */
    struct sage__reg *reg;    /* figures: the shm registry entry, or heap */
    bool reg_heap;
    void *cluster;            /* transport nats: cluster.c's state */
    pthread_t listener;
    bool listener_started;
    struct sage__replies *replies;
    struct sage__dedupe *dedupe; /* the service asked for it */
    int64_t last_heartbeat_ns;
    pthread_cond_t room;            /* a call finished: the listener may read */
    _Atomic int listener_waiting;
    _Atomic int draining;           /* stopping: answer what is queued */
    struct sage_call *batch_head, *batch_tail; /* listener: collected, to dispatch */

    /* workers: a queue of calls, taken by up to max_workers threads */
    pthread_mutex_t wlock;
    pthread_cond_t wcond;
    struct sage_call *work_head, *work_tail;
    uint32_t nworkers, idle_workers;
    bool wstop;
    pthread_t *worker_threads;
    _Atomic uint32_t running; /* calls being served, inline or on workers */

    /* pooled calls */
    pthread_mutex_t plock;
    struct sage_call *free_calls;
};

/* ---- call.c */

/* sage__call_get takes a pooled call (arena reset); NULL on OOM. */
struct sage_call *sage__call_get(struct sage_task *t);
/* sage__call_put returns a call to its task's pool. */
void sage__call_put(struct sage_call *c);
/* sage__call_free_pool frees the pool at task stop. */
void sage__call_free_pool(struct sage_task *t);
/* sage__call_run serves c: deadline check, handling, answer, figures; then
 * returns c to the pool. Runs on the listener or a worker. */
void sage__call_run(struct sage_call *c);
/* sage__method_find looks a method up by name; NULL if none. */
struct sage__method *sage__method_find(struct sage_task *t, const char *name, size_t len);

/* ---- listener.c */
sage_err sage__listener_start(struct sage_task *t);
void sage__listener_join(struct sage_task *t);
/* sage__task_request handles one request's bytes (decode, dispatch);
 * transports that do not use a sage_queue (NATS) call it. */
void sage__task_request(struct sage_task *t, const void *data, size_t len);

/* sage__task_request_sync handles one request's bytes and returns once it
 * is answered (durable delivery acknowledges only then). */
void sage__task_request_sync(struct sage_task *t, const void *data, size_t len);
/* sage__listener_wait_free blocks until fewer than max_workers calls run
 * (or the task stops): a transport thread's backpressure. */
void sage__listener_wait_free(struct sage_task *t);
/* sage__listener_room tells a listener waiting for a free slot that a call
 * finished (called by sage__call_run). */
void sage__listener_room(struct sage_task *t);

/* ---- workers.c */
/* sage__workers_submit hands c to a worker, starting one if none is idle and
 * fewer than max_workers exist. Returns false if no worker could be had. */
bool sage__workers_submit(struct sage_task *t, struct sage_call *c);
/* sage__workers_stop lets workers finish queued calls, then joins them. */
void sage__workers_stop(struct sage_task *t);

/* ---- reply.c */
sage_err sage__replies_new(struct sage__replies **rp);
void sage__replies_free(struct sage__replies *r);
/* sage__reply_send encodes and sends c's answer to its caller. */
void sage__reply_send(struct sage_call *c);
/* sage__reply_send_bytes sends an already encoded answer to c's caller. */
void sage__reply_send_bytes(struct sage_call *c, const void *bytes, size_t len);
/* sage__call_remember records c's encoded answer for dedupe, if asked. */
void sage__call_remember(struct sage_call *c, const void *bytes, size_t len);

/* ---- task.c */
/* sage__task_lep returns a new reference to a running local task's request
 * queue, or NULL if it is not a running local task. */
struct sage__lep *sage__task_lep(struct sage_task *t);
/* sage__env_lep finds name in e and, if it is a running local task, returns
 * a new reference to its request queue (else NULL); *tp is the task found,
 * if any (borrowed: a task is unregistered before it is freed). */
struct sage__lep *sage__env_lep(sage_env *e, const char *name, sage_task **tp);
/* sage__task_drop records a request dropped unanswered. */
void sage__task_drop(struct sage_task *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
