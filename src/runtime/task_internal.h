/* task_internal.h - the task, its calls, and what the manager reaches of it. */
#ifndef SAGE_RUNTIME_TASK_INTERNAL_H
#define SAGE_RUNTIME_TASK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sage/cluster.h"
#include "sage/queue.h"
#include "sage/task.h"
#include "transport/transport.h"
#include "wire/wire.h"

/* One method of the task: its entry in the service's table, its figures. */
struct sage__method {
    const char *name;
    size_t len;
    sage_method_fn fn;
    unsigned flags;                 /* SAGE_METHOD_* */
    struct sage__fig_method *stats; /* NULL past SAGE__FIG_METHODS */
    _Atomic int64_t ewma_ns;        /* typical run time: decides inline or worker */
};

/* A request in service, from decode to answer. Pooled per task. */
struct sage_call {
    struct sage_task *task;
    sage_arena *arena; /* request and answer memory, reset on reuse */
    sage__req req;
    struct sage__tp_req tp; /* as the transport handed it in (ticket) */
    bool tp_held;           /* the transport wants it released */
    char *service;          /* NUL-terminated copies of req's names */
    char *method_name;
    char *reply_to;
    struct sage__method *method; /* NULL: unknown method */
    int64_t recv_ns;             /* monotonic */
    int64_t deadline_ns;         /* monotonic; -1: none */
    sage_err status;
    const char *errmsg; /* in arena; NULL: none */
    sage_value result;
    int ran;               /* the method ran (for after_call hooks) */
    int64_t *mw_log_start; /* the logging middleware's start time */
    bool remember;         /* dedupe: record this call's answer */
    struct sage_call *next;
};

/* A task's door for direct calls (direct.c). */
struct sage__direct {
    pthread_mutex_t lock;
    _Atomic int refs;
    bool accepting;
    struct sage_task *t; /* NULL once the task stopped */
};

struct sage_task {
    const sage_service *svc;
    char name[SAGE_NAME_MAX + 1];
    char ns[SAGE_NAME_MAX + 1];
    sage_transport transport;
    const struct sage__tp_ops *ops;
    uint32_t max_workers;
    int64_t queue_timeout_ms;
    uint32_t request_queue_size;
    size_t max_request;
    double error_threshold;
    sage_arena *config_arena; /* the copy of opts->config */
    sage_value config;
    const sage_middleware **mw;
    size_t nmw;
    const sage_task_kind *kind;
    sage_cluster_opts cluster_opts; /* a deep copy (cluster_mem), when has_cluster */
    bool has_cluster;
    void *cluster_mem;
    struct sage__method *methods; /* sorted by name */
    const char **method_names;    /* the same, for the transport */
    size_t nmethods;

    pthread_mutex_t life; /* start/stop/free */
    _Atomic int state;    /* sage_state */
    void *svc_state;
    struct sage__tp_server *server;
    struct sage__figures *fig;      /* the server's while it runs, else fig_heap */
    struct sage__figures *fig_heap; /* before the first start and after a stop */
    pthread_mutex_t srv_lock;       /* server users: environments attaching */
    pthread_cond_t srv_cond;
    uint32_t srv_users;
    pthread_t listener;
    bool listener_started;
    _Atomic int listener_done;
    struct sage__dedupe *dedupe; /* the service asked for it */
    bool shared_dedupe;          /* the transport's store, across replicas (cluster dedupe) */
    struct sage__direct *direct; /* the door for direct calls */
    int64_t last_heartbeat_ns;
    pthread_cond_t room; /* a call finished: the listener may read */
    _Atomic int listener_waiting;
    _Atomic int draining;                     /* stopping: answer what is queued */
    struct sage_call *batch_head, *batch_tail; /* listener: collected, to dispatch */

    /* workers: a queue of calls, taken by up to max_workers threads */
    pthread_mutex_t wlock;
    pthread_cond_t wcond;
    pthread_cond_t wdone; /* a worker exited (bounded stop) */
    struct sage_call *work_head, *work_tail;
    uint32_t nworkers, idle_workers, queued;
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
/* sage__call_put returns a call to its task's pool (releasing what the
 * transport handed in). */
void sage__call_put(struct sage_call *c);
/* sage__call_free_pool frees the pool at task stop. */
void sage__call_free_pool(struct sage_task *t);
/* sage__call_run serves c: deadline check, handling, answer, figures; then
 * returns c to the pool. Runs on the listener or a worker. */
void sage__call_run(struct sage_call *c);
/* sage__method_find looks a method up by name; NULL if none. */
struct sage__method *sage__method_find(struct sage_task *t, const char *name, size_t len);
/* sage__reply_send sends c's answer to its caller. */
void sage__reply_send(struct sage_call *c);
/* sage__call_direct serves c (which holds a running slot) on this thread
 * and gives its answer back instead of sending it: SAGE_OK with the result
 * copied into arena, or the error with its message as the detail. Returns
 * c to the pool. */
sage_err sage__call_direct(struct sage_call *c, sage_arena *arena, sage_value *result);

/* ---- direct.c: direct calls (see its design notes) */
sage_err sage__direct_new(struct sage__direct **dp, struct sage_task *t);
struct sage__direct *sage__direct_ref(struct sage__direct *d);
void sage__direct_unref(struct sage__direct *d);
/* sage__direct_attach opens the door to t (t runs); sage__direct_open
 * (false) closes it (t stops). */
void sage__direct_attach(struct sage__direct *d, struct sage_task *t);
void sage__direct_open(struct sage__direct *d, bool open);
/* sage__direct_call runs req on this thread if it may now: 1 with the
 * answer (*result in arena, or *errp with the detail), 0 if it may not
 * (send it the usual way). */
int sage__direct_call(struct sage__direct *d, const sage__req *req, int64_t deadline_ns,
                      sage_arena *arena, sage_value *result, sage_err *errp);

/* ---- listener.c */
sage_err sage__listener_start(struct sage_task *t);
/* sage__listener_join waits up to timeout_ms for the listener to finish
 * draining; false if it did not (it is then left behind, detached). */
bool sage__listener_join(struct sage_task *t, int64_t timeout_ms);
/* callbacks of push transports (sage__tp_serve_conf) */
void sage__task_wait_room(void *arg);
void sage__task_on_request(void *arg, const struct sage__tp_req *r, enum sage__tp_mode mode);
/* sage__listener_room tells a listener waiting for a free slot that a call
 * finished (called by sage__call_run). */
void sage__listener_room(struct sage_task *t);

/* ---- workers.c */
/* sage__workers_submit hands c to a worker, starting one if every worker
 * has work already and fewer than max_workers exist. Returns false if no
 * worker could be had. */
bool sage__workers_submit(struct sage_task *t, struct sage_call *c);
/* sage__workers_stop lets workers finish queued calls, then joins them. */
void sage__workers_stop(struct sage_task *t);

/* ---- task.c */
/* sage__task_server returns a running task's server and transport, taking
 * a use of it (sage__task_server_put gives it back); false if the task
 * does not run. */
bool sage__task_server(struct sage_task *t, struct sage__tp_server **sp, sage_transport *kindp);
void sage__task_server_put(struct sage_task *t);
/* sage__env_server looks name up in e: 0 if absent, 1 if registered but
 * not running, 2 if running, with a use of its server taken (*sp, *kindp,
 * *tp: give it back with sage__task_server_put(*tp)) and a reference to its
 * door for direct calls (*dp). */
int sage__env_server(sage_env *e, const char *name, struct sage__tp_server **sp,
                     sage_transport *kindp, sage_task **tp, struct sage__direct **dp);
/* sage__task_drop records a request dropped unanswered. */
void sage__task_drop(struct sage_task *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
