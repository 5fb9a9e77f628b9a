/*
 * task.c - a task's life: new, start, stop, free, status.
 *
 * Design notes
 * - Lifecycle calls serialise on t->life; t->state is also atomic so status
 *   and callers read it without the lock.
 * - Start order: registry entry (claims the name), service state, request
 *   queue, then the listener. Any failure undoes what was done, in reverse.
 * - Stop order: refuse new calls (state STOPPING, queue closed: senders get
 *   SAGE_ECLOSED, which callers report as SAGE_EUNAVAILABLE), let the
 *   listener answer everything queued, let workers finish, then destroy the
 *   state and leave the registry. A shm task's final figures are copied to
 *   the heap so status still reads after stop.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "platform/proc.h"
#include "runtime/dedupe.h"
#include "transport/names.h"
#include "runtime/task_internal.h"
#include "cluster/cluster_internal.h"

#define DEFAULT_MAX_REQUEST (1u << 20)
#define TYPICAL_REQUEST 256 /* bytes per request when sizing a ring */

const char *sage_transport_name(sage_transport t)
{
    switch (t) {
    case SAGE_TRANSPORT_LOCAL:
        return "local";
    case SAGE_TRANSPORT_SHM:
        return "shm";
    case SAGE_TRANSPORT_NATS:
        return "nats";
    }
    return "unknown";
}

sage_err sage_transport_parse(const char *name, sage_transport *out)
{
    static const sage_transport all[] = {SAGE_TRANSPORT_LOCAL, SAGE_TRANSPORT_SHM,
                                         SAGE_TRANSPORT_NATS};

    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, sage_transport_name(all[i])) == 0) {
            *out = all[i];
            return SAGE_OK;
        }
    return SAGE_SETERR(SAGE_EINVAL, "unknown transport '%s' (local, shm or nats)",
                       name ? name : "(null)");
}

const char *sage_state_name(sage_state s)
{
    static const char *const names[] = {"created", "starting", "running", "degraded",
                                        "stopping", "stopped", "failed"};

    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

void sage_task_opts_init(sage_task_opts *o)
{
    memset(o, 0, sizeof *o);
    o->transport = SAGE_TRANSPORT_LOCAL;
    o->max_workers = 10;
    o->queue_timeout = 30;
    o->request_queue_size = 10000;
    o->max_request = DEFAULT_MAX_REQUEST;
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
    if (!(o->queue_timeout >= 0 && o->queue_timeout <= 86400))
        return SAGE_SETERR(SAGE_EINVAL, "queue_timeout %g out of range 0..86400 s",
                           o->queue_timeout);
    if (o->max_request < 64 || o->max_request > (256u << 20))
        return SAGE_SETERR(SAGE_EINVAL, "max_request %zu out of range 64..256 MiB", o->max_request);
    if ((unsigned)o->transport > SAGE_TRANSPORT_NATS)
        return SAGE_SETERR(SAGE_EINVAL, "unknown transport %d", (int)o->transport);
    for (size_t i = 0; i < o->nmiddleware; i++)
        if (o->middleware[i] == NULL)
            return SAGE_SETERR(SAGE_EINVAL, "middleware %zu is NULL", i);
    return SAGE_OK;
}

sage_err sage_task_new(sage_task **tp, const sage_service *svc, const sage_task_opts *opts)
{
    sage_task_opts defaults;
    struct sage_task *t;
    const char *name, *ns;
    size_t n = 0;
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
    while (svc->methods[n].name)
        n++;
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    t->svc = svc;
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->ns, sizeof t->ns, "%s", ns);
    t->transport = opts->transport;
    t->max_workers = opts->max_workers;
    t->queue_timeout = opts->queue_timeout;
    t->request_queue_size = opts->request_queue_size;
    t->max_request = opts->max_request;
    t->kind = opts->kind;
    t->transport_opts = opts->transport_opts;
    t->config = sage_nil();
    t->methods = calloc(n ? n : 1, sizeof *t->methods);
    t->mw = calloc(opts->nmiddleware ? opts->nmiddleware : 1, sizeof *t->mw);
    if (t->methods == NULL || t->mw == NULL || sage_arena_new(&t->config_arena, 0) != SAGE_OK) {
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const sage_method *m = &svc->methods[i];

        if (m->fn == NULL) {
            r = SAGE_SETERR(SAGE_EINVAL, "service '%s': method '%s' has no function", t->name,
                            m->name);
            goto fail;
        }
        if ((r = sage__check_name(m->name, "method", 1)) != SAGE_OK)
            goto fail;
        t->methods[i].name = m->name;
        t->methods[i].len = strlen(m->name);
        t->methods[i].fn = m->fn;
        atomic_store(&t->methods[i].ewma_ns, -1); /* not seen yet: a worker runs it */
    }
    qsort(t->methods, n, sizeof *t->methods, cmp_methods);
    for (size_t i = 1; i < n; i++)
        if (strcmp(t->methods[i - 1].name, t->methods[i].name) == 0) {
            r = SAGE_SETERR(SAGE_EINVAL, "service '%s': method '%s' appears twice", t->name,
                            t->methods[i].name);
            goto fail;
        }
    t->nmethods = n;
    for (size_t i = 0; i < opts->nmiddleware; i++)
        t->mw[i] = opts->middleware[i];
    t->nmw = opts->nmiddleware;
    if (opts->config && (r = sage_value_copy(t->config_arena, &t->config, opts->config)) != SAGE_OK)
        goto fail;
    pthread_mutex_init(&t->life, NULL);
    pthread_mutex_init(&t->wlock, NULL);
    pthread_cond_init(&t->wcond, NULL);
    pthread_cond_init(&t->room, NULL);
    pthread_mutex_init(&t->plock, NULL);
    atomic_store(&t->state, SAGE_STATE_CREATED);
    *tp = t;
    return SAGE_OK;
fail:
    free(t->methods);
    free(t->mw);
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
    sage__reg_set_drop(t->reg, buf);
}

/* queue_opts sizes the request ring: the message bound is the configured
 * request count; the bytes hold that many typical requests, and at least
 * two of the largest. */
static void queue_opts(const struct sage_task *t, sage_queue_opts *o, unsigned flags)
{
    uint64_t bytes = (uint64_t)t->request_queue_size * TYPICAL_REQUEST;
    uint64_t least = 2 * ((uint64_t)t->max_request + 64);

    sage_queue_opts_init(o);
    o->capacity = bytes > least ? bytes : least;
    if (o->capacity > (1ull << 30))
        o->capacity = 1ull << 30;
    o->max_msg = t->max_request;
    o->max_msgs = t->request_queue_size;
    o->flags = flags;
}

static void fill_reg_identity(struct sage_task *t)
{
    struct sage__reg *reg = t->reg;

    reg->transport = (uint32_t)t->transport;
    reg->max_workers = t->max_workers;
    reg->request_queue_size = t->request_queue_size;
    reg->queue_timeout_ms = (uint32_t)(t->queue_timeout * 1000);
    reg->max_request = t->max_request;
    reg->nmethods = t->nmethods < SAGE__REG_METHODS ? (uint32_t)t->nmethods : SAGE__REG_METHODS;
    for (uint32_t i = 0; i < reg->nmethods; i++) {
        snprintf(reg->methods[i].name, sizeof reg->methods[i].name, "%s", t->methods[i].name);
        t->methods[i].stats = &reg->methods[i];
    }
}

static sage_err open_registry(struct sage_task *t)
{
    sage_err r;

    if (t->transport == SAGE_TRANSPORT_SHM) {
        r = sage__reg_create(&t->reg, t->ns, t->name);
        if (r != SAGE_OK)
            return r;
        t->reg_heap = false;
    } else {
        if (t->reg_heap)
            free(t->reg); /* figures of an earlier run */
        t->reg = calloc(1, sizeof *t->reg);
        if (t->reg == NULL)
            return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        t->reg_heap = true;
        snprintf(t->reg->name, sizeof t->reg->name, "%s", t->name);
        snprintf(t->reg->ns, sizeof t->reg->ns, "%s", t->ns);
        t->reg->pid = sage__pid();
        t->reg->pid_start = sage__pid_start_time(t->reg->pid);
        t->reg->started_ns = sage__wall_ns();
        t->reg->started_mono_ns = sage__now_ns();
    }
    fill_reg_identity(t);
    if (!t->reg_heap)
        sage__reg_publish(t->reg);
    return SAGE_OK;
}

/* close_registry leaves the registry; a shm entry's figures move to the heap */
static void close_registry(struct sage_task *t)
{
    struct sage__reg *copy;

    if (t->reg == NULL || t->reg_heap)
        return;
    copy = malloc(sizeof *copy);
    if (copy)
        memcpy(copy, t->reg, sizeof *copy); /* the entry is ours alone now */
    for (size_t i = 0; i < t->nmethods; i++)
        t->methods[i].stats = copy && i < SAGE__REG_METHODS ? &copy->methods[i] : NULL;
    sage__reg_destroy(t->reg, t->ns, t->name);
    t->reg = copy;
    t->reg_heap = true;
}

static sage_err open_queue(struct sage_task *t)
{
    sage_queue_opts o;
    sage_err r;

    if (t->transport == SAGE_TRANSPORT_LOCAL) {
        queue_opts(t, &o, 0);
        t->lep = calloc(1, sizeof *t->lep);
        if (t->lep == NULL)
            return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        r = sage_queue_open(&t->rq, NULL, &o);
        if (r != SAGE_OK) {
            free(t->lep);
            t->lep = NULL;
            return r;
        }
        atomic_store(&t->lep->refs, 1);
        t->lep->q = t->rq;
        t->lep->queue_timeout_ms = (uint32_t)(t->queue_timeout * 1000);
        t->lep->max_request = t->max_request;
        return SAGE_OK;
    }
    if (t->transport == SAGE_TRANSPORT_SHM) {
        queue_opts(t, &o, SAGE_QUEUE_CREATE | SAGE_QUEUE_EXCL);
        sage_queue_unlink(t->reg->queue); /* a leftover of a dead owner, if any */
        return sage_queue_open(&t->rq, t->reg->queue, &o);
    }
    return sage__cluster_serve_start(t); /* SAGE_TRANSPORT_NATS */
}

static void close_queue(struct sage_task *t)
{
    if (t->cluster) {
        sage__cluster_serve_stop(t);
        return;
    }
    if (t->lep) {
        sage__lep_unref(t->lep); /* frees the queue once callers let go */
        t->lep = NULL;
    } else if (t->rq) {
        sage_queue_free(t->rq);
        sage_queue_unlink(t->reg->queue);
    }
    t->rq = NULL;
}

static void set_state(struct sage_task *t, sage_state s)
{
    atomic_store_explicit(&t->state, s, memory_order_release);
    if (t->reg)
        atomic_store_explicit(&t->reg->state, s, memory_order_release);
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
    if ((r = open_registry(t)) != SAGE_OK)
        goto out;
    set_state(t, SAGE_STATE_STARTING);
    t->svc_state = NULL;
    if (t->svc->create) {
        sage__clearerr();
        r = t->svc->create(&t->svc_state, &t->config);
        if (r != SAGE_OK) {
            r = SAGE_SETERR(r, "service '%s' failed to start: %s", t->name,
                            sage_errdetail()[0] ? sage_errdetail() : sage_strerror(r));
            goto undo_registry;
        }
    }
    if ((r = open_queue(t)) != SAGE_OK)
        goto undo_state;
    if ((r = sage__replies_new(&t->replies)) != SAGE_OK)
        goto undo_queue;
    if (t->svc->dedupe && (r = sage__dedupe_new(&t->dedupe, t->svc->dedupe)) != SAGE_OK)
        goto undo_replies;
    t->last_heartbeat_ns = sage__wall_ns();
    atomic_store_explicit(&t->reg->heartbeat_ns, t->last_heartbeat_ns, memory_order_relaxed);
    set_state(t, SAGE_STATE_RUNNING);
    /* over NATS the subscription threads are the listener */
    if (t->transport != SAGE_TRANSPORT_NATS && (r = sage__listener_start(t)) != SAGE_OK)
        goto undo_replies;
    pthread_mutex_unlock(&t->life);
    return SAGE_OK;

undo_replies:
    sage__dedupe_free(t->dedupe);
    t->dedupe = NULL;
    sage__replies_free(t->replies);
    t->replies = NULL;
undo_queue:
    close_queue(t);
undo_state:
    if (t->svc->destroy)
        t->svc->destroy(t->svc_state);
    t->svc_state = NULL;
undo_registry:
    set_state(t, SAGE_STATE_FAILED);
    close_registry(t);
out:
    pthread_mutex_unlock(&t->life);
    return r;
}

sage_err sage_task_stop(sage_task *t)
{
    int s;

    if (t == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_task_stop: t is NULL");
    pthread_mutex_lock(&t->life);
    s = atomic_load(&t->state);
    if (s != SAGE_STATE_RUNNING && s != SAGE_STATE_DEGRADED && s != SAGE_STATE_FAILED) {
        pthread_mutex_unlock(&t->life);
        return SAGE_OK; /* not running: nothing to do */
    }
    if (t->rq == NULL && t->cluster == NULL) { /* failed before it ran */
        pthread_mutex_unlock(&t->life);
        return SAGE_OK;
    }
    set_state(t, SAGE_STATE_STOPPING);
    atomic_store_explicit(&t->draining, 1, memory_order_release);
    if (t->cluster) /* stop taking calls; those received are answered */
        sage__cluster_serve_stop(t);
    else
        sage_queue_close(t->rq);
    pthread_mutex_lock(&t->wlock); /* a listener waiting for a free slot */
    pthread_cond_signal(&t->room);
    pthread_mutex_unlock(&t->wlock);
    sage__listener_join(t);
    sage__workers_stop(t);
    if (t->svc->destroy)
        t->svc->destroy(t->svc_state);
    t->svc_state = NULL;
    sage__replies_free(t->replies);
    t->replies = NULL;
    sage__dedupe_free(t->dedupe);
    t->dedupe = NULL;
    close_queue(t);
    atomic_store_explicit(&t->draining, 0, memory_order_relaxed);
    set_state(t, SAGE_STATE_STOPPED);
    close_registry(t);
    sage__call_free_pool(t);
    pthread_mutex_unlock(&t->life);
    return SAGE_OK;
}

void sage_task_free(sage_task *t)
{
    if (t == NULL)
        return;
    sage_task_stop(t);
    if (t->reg_heap)
        free(t->reg);
    else
        close_registry(t);
    pthread_mutex_destroy(&t->life);
    pthread_mutex_destroy(&t->wlock);
    pthread_cond_destroy(&t->wcond);
    pthread_cond_destroy(&t->room);
    pthread_mutex_destroy(&t->plock);
    sage_arena_free(t->config_arena);
    free(t->methods);
    free(t->mw);
    free(t);
}

sage_err sage_task_status(sage_task *t, sage_status *st)
{
    sage_queue_stats qs;
    bool have_qs;

    if (t == NULL || st == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_task_status: invalid argument");
    pthread_mutex_lock(&t->life);
    have_qs = t->rq && sage_queue_stats_read(t->rq, &qs) == SAGE_OK;
    if (t->reg) {
        sage__reg_status(t->reg, have_qs ? qs.depth_msgs : 0, st);
        if (have_qs)
            st->queue_full = qs.full_events;
    } else {
        memset(st, 0, sizeof *st);
        snprintf(st->name, sizeof st->name, "%s", t->name);
        snprintf(st->ns, sizeof st->ns, "%s", t->ns);
        st->pid = sage__pid();
        st->owner_alive = 1;
        st->max_workers = t->max_workers;
        st->request_queue_size = t->request_queue_size;
        st->queue_timeout = t->queue_timeout;
    }
    st->transport = t->transport;
    st->state = (sage_state)atomic_load(&t->state);
    if (st->state != SAGE_STATE_RUNNING && st->state != SAGE_STATE_DEGRADED)
        st->uptime_s = 0;
    pthread_mutex_unlock(&t->life);
    return SAGE_OK;
}

struct sage__lep *sage__task_lep(struct sage_task *t)
{
    struct sage__lep *ep = NULL;
    int s = atomic_load_explicit(&t->state, memory_order_acquire);

    if (s != SAGE_STATE_RUNNING && s != SAGE_STATE_DEGRADED)
        return NULL;
    pthread_mutex_lock(&t->life);
    if (t->lep)
        ep = sage__lep_ref(t->lep);
    pthread_mutex_unlock(&t->life);
    return ep;
}

struct sage__lep *sage__lep_ref(struct sage__lep *ep)
{
    atomic_fetch_add_explicit(&ep->refs, 1, memory_order_relaxed);
    return ep;
}

void sage__lep_unref(struct sage__lep *ep)
{
    if (ep && atomic_fetch_sub_explicit(&ep->refs, 1, memory_order_acq_rel) == 1) {
        sage_queue_free(ep->q);
        free(ep);
    }
}
