/*
 * task.c - a task's life: new, start, stop, free, status.
 *
 * Design notes
 * - Lifecycle calls serialise on t->life; t->state is also atomic so status
 *   and callers read it without the lock.
 * - Start order: the transport's server (which claims the name), the
 *   service's state, the figures' identity, then the threads, and only then
 *   is the service made visible (ready). Any failure undoes what was done,
 *   in reverse.
 * - Stop order ("stopped" means: no new work taken, every taken call
 *   answered, then the transport closed; never the other way round): state
 *   STOPPING; quiesce the transport (new calls are refused; a push
 *   transport has handed over everything it received when this returns);
 *   the listener drains what is queued and exits; workers finish and
 *   answer every call they hold; the service's state is destroyed; the
 *   figures are copied to the heap (status still reads after stop); the
 *   server is closed. The listener's drain is bounded by queue_timeout: a
 *   queue that cannot be drained (corrupt) fails the stop with the reason
 *   instead of hanging it, and the server is then left as it is.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err_internal.h"
#include "base/name.h"
#include "platform/clock.h"
#include "platform/proc.h"
#include "runtime/dedupe.h"
#include "runtime/manager_internal.h"
#include "runtime/task_internal.h"

#define DEFAULT_MAX_REQUEST (1u << 20)
#define MIN_STOP_WAIT_MS 1000

const char *sage_state_name(sage_state s)
{
    static const char *const names[] = {"created", "starting", "running", "degraded",
                                        "stopping", "stopped", "failed"};

    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

void sage_task_opts_init(sage_task_opts *o)
{
    sage_local_conf lc;

    sage_local_conf_init(&lc); /* the defaults live in one place */
    memset(o, 0, sizeof *o);
    o->transport = SAGE__TP_DEFAULT;
    o->max_workers = lc.max_workers;
    o->queue_timeout_ms = lc.queue_timeout_ms;
    o->request_queue_size = lc.request_queue_size;
    o->max_request = DEFAULT_MAX_REQUEST;
    o->error_threshold = lc.error_threshold;
}

static int cmp_methods(const void *a, const void *b)
{
    const struct sage__method *x = a, *y = b;

    return strcmp(x->name, y->name);
}

static sage_err check_opts(const sage_service *svc, const sage_task_opts *o)
{
    if (svc == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_task_new: service is NULL");
    if (svc->abi != SAGE_SERVICE_ABI)
        return SAGE_SETERR(SAGE_EVERSION, "service table has ABI %d, this library speaks %d",
                           svc->abi, SAGE_SERVICE_ABI);
    if (svc->methods == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "service '%s' has no method table",
                           svc->name ? svc->name : "?");
    if (o->max_workers < 1 || o->max_workers > 1024)
        return SAGE_SETERR(SAGE_EINVAL, "max_workers %u out of range 1..1024", o->max_workers);
    if (o->request_queue_size < 1 || o->request_queue_size > 8388607)
        return SAGE_SETERR(SAGE_EINVAL, "request_queue_size %u out of range 1..8388607",
                           o->request_queue_size);
    if (o->queue_timeout_ms < 0 || o->queue_timeout_ms > 86400000)
        return SAGE_SETERR(SAGE_EINVAL, "queue_timeout_ms %lld out of range 0..86400000",
                           (long long)o->queue_timeout_ms);
    if (o->max_request < 64 || o->max_request > (256u << 20))
        return SAGE_SETERR(SAGE_EINVAL, "max_request %zu out of range 64..256 MiB", o->max_request);
    if (!(o->error_threshold >= 0 && o->error_threshold <= 1))
        return SAGE_SETERR(SAGE_EINVAL, "error_threshold %g out of range 0..1", o->error_threshold);
    if ((unsigned)o->transport >= SAGE__TP_KINDS)
        return SAGE_SETERR(SAGE_EINVAL, "unknown transport %d", (int)o->transport);
    if (sage__tp_for(o->transport) == NULL)
        return SAGE_SETERR(SAGE_ENOTSUP, "transport %s is not built into this library",
                           sage_transport_name(o->transport));
    for (size_t i = 0; i < o->nmiddleware; i++)
        if (o->middleware[i] == NULL)
            return SAGE_SETERR(SAGE_EINVAL, "middleware %zu is NULL", i);
    if (o->nidempotent && o->idempotent == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "nidempotent is %zu but idempotent is NULL",
                           o->nidempotent);
    return SAGE_OK;
}

/* methods_new fills t's sorted method table from the service's */
static sage_err methods_new(struct sage_task *t, const sage_service *svc)
{
    size_t n = 0;
    sage_err r;

    while (svc->methods[n].name)
        n++;
    t->methods = calloc(n ? n : 1, sizeof *t->methods);
    t->method_names = calloc(n ? n : 1, sizeof *t->method_names);
    if (t->methods == NULL || t->method_names == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const sage_method *m = &svc->methods[i];

        if (m->fn == NULL)
            return SAGE_SETERR(SAGE_EINVAL, "service '%s': method '%s' has no function", t->name,
                               m->name);
        if ((r = sage__check_name(m->name, "method", 1)) != SAGE_OK)
            return r;
        t->methods[i].name = m->name;
        t->methods[i].len = strlen(m->name);
        t->methods[i].fn = m->fn;
        t->methods[i].flags = m->flags;
        atomic_store(&t->methods[i].ewma_ns, -1); /* not seen yet: a worker runs it */
    }
    qsort(t->methods, n, sizeof *t->methods, cmp_methods);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(t->methods[i - 1].name, t->methods[i].name) == 0)
            return SAGE_SETERR(SAGE_EINVAL, "service '%s': method '%s' appears twice", t->name,
                               t->methods[i].name);
        t->method_names[i] = t->methods[i].name;
    }
    t->nmethods = n;
    return SAGE_OK;
}

/* mark_idempotent marks the methods opts names idempotent; an unknown name
 * is an error */
static sage_err mark_idempotent(struct sage_task *t, const sage_task_opts *o)
{
    for (size_t i = 0; i < o->nidempotent; i++) {
        const char *name = o->idempotent[i];
        struct sage__method *m = name ? sage__method_find(t, name, strlen(name)) : NULL;

        if (m == NULL)
            return SAGE_SETERR(SAGE_EINVAL, "service '%s': idempotent names no method '%s'",
                               t->name, name ? name : "(null)");
        m->flags |= SAGE_METHOD_IDEMPOTENT;
    }
    return SAGE_OK;
}

sage_err sage_task_new(sage_task **tp, const sage_service *svc, const sage_task_opts *opts)
{
    sage_task_opts defaults;
    struct sage_task *t;
    const char *name, *ns;
    sage_err r;

    if (tp == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_task_new: tp is NULL");
    if (opts == NULL) {
        sage_task_opts_init(&defaults);
        opts = &defaults;
    }
    if ((r = check_opts(svc, opts)) != SAGE_OK)
        return r;
    name = opts->name ? opts->name : svc->name;
    ns = opts->ns ? opts->ns : "default";
    if ((r = sage__check_name(name, "service", 0)) != SAGE_OK ||
        (r = sage__check_name(ns, "namespace", 0)) != SAGE_OK)
        return r;
    if (sage__tp_for(opts->transport)->remote && opts->cluster == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "service '%s': transport %s needs cluster options",
                           name, sage_transport_name(opts->transport));
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    t->svc = svc;
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->ns, sizeof t->ns, "%s", ns);
    t->transport = opts->transport;
    t->ops = sage__tp_for(opts->transport);
    t->max_workers = opts->max_workers;
    t->queue_timeout_ms = opts->queue_timeout_ms;
    t->request_queue_size = opts->request_queue_size;
    t->max_request = opts->max_request;
    t->error_threshold = opts->error_threshold;
    t->kind = opts->kind;
    t->config = sage_nil();
    t->mw = calloc(opts->nmiddleware ? opts->nmiddleware : 1, sizeof *t->mw);
    t->fig_heap = calloc(1, sizeof *t->fig_heap);
    if (t->mw == NULL || t->fig_heap == NULL || sage_arena_new(&t->config_arena, 0) != SAGE_OK) {
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        goto fail;
    }
    if ((r = methods_new(t, svc)) != SAGE_OK || (r = mark_idempotent(t, opts)) != SAGE_OK ||
        (r = sage__direct_new(&t->direct, t)) != SAGE_OK)
        goto fail;
    for (size_t i = 0; i < opts->nmiddleware; i++)
        t->mw[i] = opts->middleware[i];
    t->nmw = opts->nmiddleware;
    if (opts->config && (r = sage_value_copy(&t->config, t->config_arena, opts->config)) != SAGE_OK)
        goto fail;
    if (opts->cluster) {
        if ((r = sage__cluster_opts_copy(&t->cluster_opts, &t->cluster_mem, opts->cluster)) !=
            SAGE_OK)
            goto fail;
        t->has_cluster = true;
    }
    sage__fig_init(t->fig_heap, t->ns, t->name, t->transport);
    t->fig_heap->pid = 0; /* not running: nobody owns it */
    t->fig = t->fig_heap;
    pthread_mutex_init(&t->life, NULL);
    pthread_mutex_init(&t->wlock, NULL);
    pthread_cond_init(&t->wcond, NULL);
    pthread_cond_init(&t->wdone, NULL);
    pthread_cond_init(&t->room, NULL);
    pthread_mutex_init(&t->plock, NULL);
    pthread_mutex_init(&t->srv_lock, NULL);
    pthread_cond_init(&t->srv_cond, NULL);
    atomic_store(&t->state, SAGE_STATE_CREATED);
    *tp = t;
    return SAGE_OK;
fail:
    sage__direct_unref(t->direct);
    free(t->methods);
    free(t->method_names);
    free(t->mw);
    free(t->fig_heap);
    free(t->cluster_mem);
    sage_arena_free(t->config_arena);
    free(t);
    return r;
}

const char *sage_task_name(const sage_task *t)
{
    return t ? t->name : "";
}

void sage__task_drop(struct sage_task *t, const char *fmt, ...)
{
    char buf[128];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sage__fig_set_drop(t->fig, buf);
}

/* fill_identity writes what the figures say of the task (before ready) */
static void fill_identity(struct sage_task *t)
{
    struct sage__figures *f = t->fig;

    f->max_workers = t->max_workers;
    f->request_queue_size = t->request_queue_size;
    f->queue_timeout_ms = (uint32_t)t->queue_timeout_ms;
    f->max_request = t->max_request;
    f->error_threshold_ppm = (uint32_t)(t->error_threshold * 1e6);
    f->nmethods = t->nmethods < SAGE__FIG_METHODS ? (uint32_t)t->nmethods : SAGE__FIG_METHODS;
    for (uint32_t i = 0; i < f->nmethods; i++)
        snprintf(f->methods[i].name, sizeof f->methods[i].name, "%s", t->methods[i].name);
    f->idempotent[0] = '\0';
    for (size_t i = 0, at = 0; i < t->nmethods; i++) {
        size_t len = t->methods[i].len;

        if (!(t->methods[i].flags & SAGE_METHOD_IDEMPOTENT))
            continue;
        if (at + len + 2 > sizeof f->idempotent)
            break; /* callers then take the rest as not idempotent: safe */
        if (at)
            f->idempotent[at++] = ',';
        memcpy(f->idempotent + at, t->methods[i].name, len + 1);
        at += len;
    }
    for (size_t i = 0; i < t->nmethods; i++)
        t->methods[i].stats = i < SAGE__FIG_METHODS ? &f->methods[i] : NULL;
}

static void set_state(struct sage_task *t, sage_state s, const char *reason)
{
    atomic_store_explicit(&t->state, s, memory_order_release);
    sage__fig_set_state(t->fig, s, reason);
}

/* keep_figures copies the server's figures to the heap before it closes */
static void keep_figures(struct sage_task *t)
{
    if (t->fig == t->fig_heap)
        return;
    memcpy(t->fig_heap, t->fig, sizeof *t->fig_heap);
    t->fig = t->fig_heap;
    for (size_t i = 0; i < t->nmethods; i++)
        t->methods[i].stats = i < SAGE__FIG_METHODS ? &t->fig_heap->methods[i] : NULL;
}

/* wait_running waits (a little) for a running call to finish: the last
 * direct calls of a stopping task, which announce their end on t->room */
static void wait_running(struct sage_task *t)
{
    struct timespec ts;

    pthread_mutex_lock(&t->wlock);
    atomic_store_explicit(&t->listener_waiting, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&t->running, memory_order_seq_cst) != 0) {
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&t->room, &t->wlock, &ts);
    }
    atomic_store_explicit(&t->listener_waiting, 0, memory_order_relaxed);
    pthread_mutex_unlock(&t->wlock);
}

static sage_err open_server(struct sage_task *t)
{
    struct sage__tp_serve_conf conf;
    struct sage__figures *fig = NULL;
    sage_err r;

    memset(&conf, 0, sizeof conf);
    conf.ns = t->ns;
    conf.name = t->name;
    conf.methods = t->method_names;
    conf.nmethods = t->nmethods;
    conf.max_workers = t->max_workers;
    conf.request_queue_size = t->request_queue_size;
    conf.max_request = t->max_request;
    conf.queue_timeout_ms = t->queue_timeout_ms;
    conf.cluster = t->has_cluster ? &t->cluster_opts : NULL;
    conf.arg = t;
    conf.wait_room = sage__task_wait_room;
    conf.on_request = sage__task_on_request;
    if ((r = t->ops->serve_open(&t->server, &conf, &fig)) != SAGE_OK)
        return r;
    t->fig = fig;
    fill_identity(t);
    t->shared_dedupe = t->has_cluster && t->cluster_opts.dedupe && t->ops->dedupe_begin != NULL;
    return SAGE_OK;
}

static void close_server(struct sage_task *t)
{
    keep_figures(t);
    t->ops->serve_close(t->server);
    t->server = NULL;
}

sage_err sage_task_start(sage_task *t)
{
    sage_err r;
    int s;

    if (t == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_task_start: t is NULL");
    pthread_mutex_lock(&t->life);
    s = atomic_load(&t->state);
    if (s == SAGE_STATE_RUNNING || s == SAGE_STATE_DEGRADED) {
        pthread_mutex_unlock(&t->life);
        return SAGE_OK; /* starting twice is harmless */
    }
    if (t->server != NULL) { /* a stop that gave up left it behind */
        pthread_mutex_unlock(&t->life);
        return SAGE_SETERR(SAGE_ESTATE, "service '%s' did not stop cleanly; it cannot start again",
                           t->name);
    }
    if ((r = open_server(t)) != SAGE_OK)
        goto out;
    set_state(t, SAGE_STATE_STARTING, "");
    t->svc_state = NULL;
    if (t->svc->create) {
        sage__clearerr();
        r = t->svc->create(&t->svc_state, &t->config);
        if (r != SAGE_OK) {
            r = SAGE_SETERR(r, "service '%s' failed to start: %s", t->name,
                            sage_errdetail()[0] ? sage_errdetail() : sage_strerror(r));
            goto undo_server;
        }
    }
    if (t->svc->dedupe && (r = sage__dedupe_new(&t->dedupe, t->svc->dedupe)) != SAGE_OK)
        goto undo_state;
    t->last_heartbeat_ns = sage__wall_ns();
    atomic_store_explicit(&t->fig->heartbeat_ns, t->last_heartbeat_ns, memory_order_relaxed);
    set_state(t, SAGE_STATE_RUNNING, "");
    if (t->ops->serve_queue && t->ops->serve_queue(t->server) &&
        (r = sage__listener_start(t)) != SAGE_OK)
        goto undo_dedupe;
    if ((r = t->ops->ready(t->server)) != SAGE_OK)
        goto undo_listener;
    sage__direct_attach(t->direct, t);
    pthread_mutex_unlock(&t->life);
    return SAGE_OK;

undo_listener:
    atomic_store_explicit(&t->draining, 1, memory_order_release);
    t->ops->quiesce(t->server);
    sage__listener_join(t, 60000);
    sage__workers_stop(t);
    atomic_store_explicit(&t->draining, 0, memory_order_relaxed);
undo_dedupe:
    sage__dedupe_free(t->dedupe);
    t->dedupe = NULL;
undo_state:
    if (t->svc->destroy)
        t->svc->destroy(t->svc_state);
    t->svc_state = NULL;
undo_server:
    set_state(t, SAGE_STATE_FAILED, sage_errdetail());
    close_server(t);
    sage__call_free_pool(t);
out:
    pthread_mutex_unlock(&t->life);
    return r;
}

sage_err sage_task_stop(sage_task *t)
{
    char failed_why[sizeof(((sage_status *)0)->reason)] = "";
    int64_t wait_ms;
    sage_err r = SAGE_OK;
    int s;

    if (t == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_task_stop: t is NULL");
    pthread_mutex_lock(&t->life);
    s = atomic_load(&t->state);
    if (t->server == NULL ||
        (s != SAGE_STATE_RUNNING && s != SAGE_STATE_DEGRADED && s != SAGE_STATE_FAILED)) {
        pthread_mutex_unlock(&t->life);
        return SAGE_OK; /* not running: nothing to do */
    }
    if (s == SAGE_STATE_FAILED) /* its failure's reason outlives the stop */
        sage__fig_health(t->fig, sage__wall_ns(), failed_why, sizeof failed_why);
    sage__direct_open(t->direct, false); /* no new direct calls */
    set_state(t, SAGE_STATE_STOPPING, "stopping: answering the calls it took");
    atomic_store_explicit(&t->draining, 1, memory_order_release);
    t->ops->quiesce(t->server); /* no new calls; those taken stay answerable */
    pthread_mutex_lock(&t->wlock); /* a listener waiting for a free slot */
    pthread_cond_signal(&t->room);
    pthread_mutex_unlock(&t->wlock);
    wait_ms = t->queue_timeout_ms > MIN_STOP_WAIT_MS ? t->queue_timeout_ms : MIN_STOP_WAIT_MS;
    if (!sage__listener_join(t, wait_ms)) {
        char why[160];

        snprintf(why, sizeof why, "stop gave up: its request queue could not be drained in %.1f s",
                 wait_ms / 1e3);
        set_state(t, SAGE_STATE_FAILED, why);
        pthread_mutex_unlock(&t->life);
        return SAGE_SETERR(SAGE_ETIMEDOUT, "service '%s': %s", t->name, why);
    }
    sage__workers_stop(t); /* every call taken is answered */
    while (atomic_load_explicit(&t->running, memory_order_acquire) != 0)
        wait_running(t); /* direct calls on their callers' threads */
    if (t->svc->destroy)
        t->svc->destroy(t->svc_state);
    t->svc_state = NULL;
    sage__dedupe_free(t->dedupe);
    t->dedupe = NULL;
    /* environments attaching to it finish first */
    pthread_mutex_lock(&t->srv_lock);
    while (t->srv_users)
        pthread_cond_wait(&t->srv_cond, &t->srv_lock);
    pthread_mutex_unlock(&t->srv_lock);
    if (s == SAGE_STATE_FAILED)
        set_state(t, SAGE_STATE_FAILED, failed_why);
    else
        set_state(t, SAGE_STATE_STOPPED, "");
    close_server(t);
    atomic_store_explicit(&t->draining, 0, memory_order_relaxed);
    sage__call_free_pool(t);
    pthread_mutex_unlock(&t->life);
    return r;
}

void sage_task_free(sage_task *t)
{
    if (t == NULL)
        return;
    sage_task_stop(t);
    if (t->server != NULL)
        return; /* a stop that gave up: a thread may still use all of it */
    pthread_mutex_destroy(&t->life);
    pthread_mutex_destroy(&t->wlock);
    pthread_cond_destroy(&t->wcond);
    pthread_cond_destroy(&t->wdone);
    pthread_cond_destroy(&t->room);
    pthread_mutex_destroy(&t->plock);
    pthread_mutex_destroy(&t->srv_lock);
    pthread_cond_destroy(&t->srv_cond);
    sage__direct_unref(t->direct);
    sage_arena_free(t->config_arena);
    free(t->fig_heap);
    free(t->cluster_mem);
    free(t->methods);
    free(t->method_names);
    free(t->mw);
    free(t);
}

sage_err sage_task_status(sage_status *st, sage_task *t)
{
    sage_queue *q;
    sage_queue_stats qs;
    bool have_qs = false;

    if (t == NULL || st == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_task_status: invalid argument");
    pthread_mutex_lock(&t->life);
    if (t->server && t->ops->serve_queue && (q = t->ops->serve_queue(t->server)) != NULL)
        have_qs = sage_queue_stats_read(&qs, q) == SAGE_OK;
    sage__fig_status(t->fig, have_qs ? qs.depth_msgs : 0, have_qs ? qs.full_events : 0, st);
    st->transport = t->transport;
    st->max_workers = t->max_workers;
    st->request_queue_size = t->request_queue_size;
    st->queue_timeout_ms = t->queue_timeout_ms;
    if (t->server == NULL) { /* its figures are a copy: this process speaks for it */
        st->pid = sage__pid();
        st->owner_alive = true;
        st->state = (sage_state)atomic_load(&t->state);
        st->uptime_s = 0;
    }
    pthread_mutex_unlock(&t->life);
    return SAGE_OK;
}

bool sage__task_server(struct sage_task *t, struct sage__tp_server **sp, sage_transport *kindp)
{
    int s = atomic_load_explicit(&t->state, memory_order_acquire);
    bool ok = false;

    if (s != SAGE_STATE_RUNNING && s != SAGE_STATE_DEGRADED)
        return false;
    pthread_mutex_lock(&t->srv_lock);
    s = atomic_load_explicit(&t->state, memory_order_acquire);
    if ((s == SAGE_STATE_RUNNING || s == SAGE_STATE_DEGRADED) && t->server) {
        t->srv_users++;
        *sp = t->server;
        *kindp = t->transport;
        ok = true;
    }
    pthread_mutex_unlock(&t->srv_lock);
    return ok;
}

void sage__task_server_put(struct sage_task *t)
{
    pthread_mutex_lock(&t->srv_lock);
    if (--t->srv_users == 0)
        pthread_cond_broadcast(&t->srv_cond);
    pthread_mutex_unlock(&t->srv_lock);
}
