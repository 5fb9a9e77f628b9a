/*
 * request.c - making calls: asynchronous, synchronous (an asynchronous call
 * plus a wait: one path), and the resends of retried calls.
 *
 * Design notes
 * - A synchronous call without retries needs no timer entry: its waiter
 *   enforces its own deadline (the future's CAS decides who completes it).
 *   Asynchronous and retried calls get one.
 * - All fields other threads read are written before the future is
 *   published PENDING with release ordering, before the request is sent:
 *   the answer may be completed by another thread before send returns.
 * - A call marked idempotent keeps a copy of its request (values in the
 *   future's arena) for its next attempts.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "base/name.h"
#include "platform/clock.h"
#include "runtime/manager_internal.h"
#include "value/arena.h"

/* copy_req deep-copies r into a */
static sage__req *copy_req(sage_arena *a, const sage__req *r)
{
    sage__req *q = sage_arena_alloc(a, sizeof *q);

    if (q == NULL)
        return NULL;
    *q = *r;
    q->service = sage__arena_strndup(a, r->service, r->service_len);
    q->method = sage__arena_strndup(a, r->method, r->method_len);
    if (q->service == NULL || q->method == NULL || sage_value_copy(&q->args, a, &r->args) != SAGE_OK ||
        sage_value_copy(&q->kwargs, a, &r->kwargs) != SAGE_OK)
        return NULL;
    return q;
}

/* run_direct runs an asynchronous call's method on this thread, when its
 * service is a task of this process that takes direct calls now
 * (direct.c); its future, never published PENDING, is then finished by the
 * completion thread, which runs its callbacks. false if it did not run. */
static bool run_direct(sage_manager *m, struct sage__conn *c, struct sage_future *f,
                       const sage__req *req)
{
    sage_err err = SAGE_OK;

    f->result = sage_nil();
    if (!sage__direct_call(c->direct, req, f->deadline_ns, f->arena, &f->result, &err))
        return false;
    sage__conn_put(m, c);
    f->err = err;
    f->errmsg = err == SAGE_OK ? NULL
                               : sage__arena_strndup(f->arena, sage_errdetail(),
                                                     strlen(sage_errdetail()));
    /* ours alone until now: straight to COMPLETING, as a claimed answer */
    atomic_store_explicit(&f->state, FS_GEN(f->id >> 32) | FS_COMPLETING, memory_order_release);
    if (!sage__mgr_post_finish(m, f->id))
        sage__mgr_finish_claimed(f);
    return true;
}

/* send_attempt sends an attempt of f: to one replica for a hedged call
 * (not the one the previous attempt went to), else the usual way */
static sage_err send_attempt(sage_manager *m, struct sage__conn *c, struct sage_future *f,
                             const sage__req *req, int timeout_cap_ms)
{
    uint32_t chosen = SAGE__TP_NONE;
    sage_err r;

    if (!f->hedged || c->ops->send_to == NULL)
        return sage__conn_send(m, c, req, f->deadline_ns, timeout_cap_ms);
    r = sage__conn_send_to(m, c, req, f->deadline_ns, timeout_cap_ms,
                           atomic_load_explicit(&f->replica, memory_order_relaxed), &chosen);
    atomic_store_explicit(&f->replica, chosen, memory_order_relaxed);
    return r;
}

/* arm_hedge sets f's hedge timer for attempt, at at (if before its deadline) */
static void arm_hedge(struct sage_future *f, uint32_t attempt, int64_t at)
{
    sage_manager *m = f->m;

    if (f->deadline_ns >= 0 && at >= f->deadline_ns)
        return;
    sage__timers_add(m->timers, f->index, (uint32_t)(f->id >> 32), attempt | SAGE__HEDGE_TIMER,
                     at, -1);
    sage__mgr_poke_if_later(m, at);
}

void sage__mgr_hedge(struct sage_future *f, uint32_t attempt)
{
    sage_manager *m = f->m;
    struct sage__conn *c = NULL;
    int64_t now = sage__now_ns();
    uint32_t chosen;
    sage__req req;

    if ((atomic_load_explicit(&f->state, memory_order_acquire) & FS_MASK) != FS_PENDING ||
        atomic_load_explicit(&f->attempt, memory_order_relaxed) != attempt)
        return; /* answered, or a retry took over */
    if (f->deadline_ns >= 0 && now >= f->deadline_ns)
        return;
    if (sage__conn_get(m, f->service, &c) != SAGE_OK)
        return; /* nowhere to send it: the first attempt stands alone */
    if (c->ops->send_to != NULL) {
        req = *f->retry_req;
        req.sent_ns = (uint64_t)sage__wall_ns();
        if (f->deadline_ns >= 0)
            req.timeout_ms = (uint32_t)((f->deadline_ns - now + 999999) / 1000000);
        if (sage__conn_send_to(m, c, &req, f->deadline_ns, 0,
                               atomic_load_explicit(&f->replica, memory_order_relaxed),
                               &chosen) == SAGE_OK) {
            atomic_store_explicit(&f->replica, chosen, memory_order_relaxed);
            atomic_fetch_add_explicit(&m->n_hedges, 1, memory_order_relaxed);
        }
    }
    sage__conn_put(m, c);
}

/* start: the part of call and call_sync they share: find the destination,
 * publish the future, send. On failure nothing remains of the call. */
static sage_err start(sage_future **fp, bool *via_inboxp, sage_manager *m, const sage_request *rq,
                      sage_arena *dest, bool timer)
{
    int64_t timeout_ms = rq->timeout_ms != 0 ? rq->timeout_ms : m->timeout_ms;
    int64_t hedge_ms = rq->hedge_after_ms != 0 ? rq->hedge_after_ms : m->hedge_after_ms;
    struct sage__conn *c = NULL;
    struct sage_future *f = NULL;
    int64_t now = sage__now_ns(), span = -1;
    size_t service_len;
    char why[512];
    bool owned;
    sage__req req;
    sage_err r;

    if (rq->service == NULL || rq->method == NULL || (rq->args == NULL && rq->nargs) ||
        (rq->kwargs == NULL && rq->nkwargs))
        return SAGE_SETERR(SAGE_EINVAL, "call: invalid request (service, method, args, kwargs)");
    for (size_t i = 0; i < rq->nkwargs; i++)
        if (rq->kwargs[i].key.type != SAGE_STR)
            return SAGE_SETERR(SAGE_EBADARGS, "kwargs[%zu]: key must be a string", i);
    if ((r = sage__check_name(rq->method, "method", 1)) != SAGE_OK)
        return r;
    if (atomic_load_explicit(&m->closing, memory_order_acquire))
        return SAGE_SETERR(SAGE_ECLOSED, "the manager is closing");
    if ((r = sage__conn_get(m, rq->service, &c)) != SAGE_OK)
        return r;
    if ((r = sage__fut_alloc(m, &f)) != SAGE_OK) {
        sage__conn_put(m, c);
        return r;
    }
    service_len = strlen(rq->service); /* checked by conn_get: at most 64 bytes */
    memcpy(f->service, rq->service, service_len + 1);
    f->dest = dest;
    f->async = timer; /* sage_manager_call's */
    f->tp_kind = (uint8_t)c->info.transport;
    f->remote = c->ops->remote;
    f->via_inbox = c->info.via_inbox;
    if (via_inboxp) /* read here: once sent, a resend may rewrite it */
        *via_inboxp = f->via_inbox;
    f->conn_serial = c->serial;
    /* the caller says so, or the service declared the method idempotent */
    f->idempotent = rq->idempotent || sage__tp_listed(c->info.idempotent, rq->method);
    f->retries_left = f->idempotent ? (rq->retries > 0 ? (uint32_t)rq->retries : m->retries) : 0;
    f->backoff_ns = m->retry_backoff_ms * 1000000;
    f->hedged = f->idempotent && hedge_ms > 0 && c->ops->send_to != NULL &&
                (timeout_ms <= 0 || hedge_ms < timeout_ms);
    f->hedge_ns = f->hedged ? hedge_ms * 1000000 : 0;
    if (timeout_ms > 0) {
        f->deadline_ns = now + timeout_ms * 1000000;
        span = timeout_ms * 1000000 / (int64_t)(f->retries_left + 1);
        f->attempt_deadline_ns = now + span;
    }
    memset(&req, 0, sizeof req);
    req.id = f->id;
    req.service = rq->service;
    req.service_len = service_len;
    req.method = rq->method;
    req.method_len = strlen(rq->method);
    req.args = sage_array(rq->args, rq->nargs);
    req.kwargs = sage_map(rq->kwargs, rq->nkwargs);
    req.timeout_ms = span > 0 ? (uint32_t)((span + 999999) / 1000000) : 0;
    req.flags = f->idempotent ? SAGE__REQ_IDEMPOTENT : 0;
    req.sent_ns = (uint64_t)sage__wall_ns(); /* the service counts how long it travelled */
    if ((f->retries_left || f->hedged) && (f->retry_req = copy_req(f->arena, &req)) == NULL) {
        sage__fut_unref(f);
        sage__conn_put(m, c);
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory copying a request for its retries");
    }
    atomic_fetch_add_explicit(&m->n_calls, 1, memory_order_relaxed);
    /* a call that may be retried takes the queue: retries live there */
    if (timer && c->direct && f->retries_left == 0 && run_direct(m, c, f, &req)) {
        *fp = f;
        return SAGE_OK;
    }
    /* publish: another thread may complete the call before send returns,
     * or retry it (a lost connection, its attempt timer), writing f's
     * retry fields: what is read of f after this is read before it */
    {
        bool arm = (timer || f->retries_left) && f->attempt_deadline_ns >= 0;
        int64_t attempt_deadline = f->attempt_deadline_ns;
        uint32_t index = f->index, gen = (uint32_t)(f->id >> 32);

        atomic_store_explicit(&f->state, FS_GEN(gen) | FS_PENDING, memory_order_release);
        if (arm) {
            sage__timers_add(m->timers, index, gen, 0, attempt_deadline, span);
            sage__mgr_poke_if_later(m, attempt_deadline);
        }
        r = send_attempt(m, c, f, &req, -1);
    }
    if (r == SAGE_OK) {
        sage__conn_put(m, c);
        if (f->hedged)
            arm_hedge(f, 0, now + f->hedge_ns);
        *fp = f;
        return SAGE_OK;
    }
    /* releasing the destination may run code that records details of its
     * own: the send's is the one the caller gets */
    snprintf(why, sizeof why, "%s", sage_errdetail());
    sage__conn_put(m, c);
    owned = sage__fut_claim(f);
    if (owned && sage__mgr_schedule_retry(f, r)) {
        *fp = f; /* the next attempt follows after its backoff */
        return SAGE_OK;
    }
    if (owned) { /* not sent: no future, no callback (the async contract) */
        atomic_fetch_sub_explicit(&m->n_calls, 1, memory_order_relaxed); /* never made */
        sage__fut_unref(f); /* nobody else can see it: the slot is free again */
    } else {
        /* its deadline or its service's death beat us to it: made and
         * completed; the caller gets the send's error all the same */
        while (!sage_future_done(f))
            sage_future_wait(f, -1);
        sage__fut_unref(f);
    }
    return SAGE_SETERR(r, "%s", why);
}

void sage__mgr_resend(struct sage_future *f)
{
    sage_manager *m = f->m;
    struct sage__conn *c = NULL;
    int64_t now = sage__now_ns(), span = -1;
    uint64_t id = f->id;
    uint32_t attempt = atomic_load_explicit(&f->attempt, memory_order_relaxed);
    sage__req req;
    sage_err r;

    f->retry_wait = false;
    if ((r = sage__conn_get(m, f->service, &c)) != SAGE_OK) {
        if (!sage__mgr_schedule_retry(f, r))
            sage__fut_complete(f, r, sage_errdetail());
        return;
    }
    f->conn_serial = c->serial;
    f->tp_kind = (uint8_t)c->info.transport;
    f->remote = c->ops->remote;
    f->via_inbox = c->info.via_inbox;
    if (f->deadline_ns >= 0) {
        span = (f->deadline_ns - now) / (int64_t)(f->retries_left + 1);
        f->attempt_deadline_ns = now + span;
        sage__timers_add(m->timers, f->index, (uint32_t)(id >> 32), attempt,
                         f->attempt_deadline_ns, span);
    }
    req = *f->retry_req;
    req.sent_ns = (uint64_t)sage__wall_ns(); /* this attempt's: the service counts its wait */
    if (span > 0)
        req.timeout_ms = (uint32_t)((span + 999999) / 1000000);
    /* a reference keeps f (and the request in its arena) alive through the
     * send: once PENDING, another thread may complete it at any moment */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    atomic_store_explicit(&f->state,
                          (atomic_load(&f->state) & ~FS_MASK) | FS_PENDING, memory_order_release);
    /* no wait for room: this is the completion thread */
    r = send_attempt(m, c, f, &req, 0);
    if (r == SAGE_OK && f->hedged)
        arm_hedge(f, attempt, now + f->hedge_ns);
    if (r != SAGE_OK) { /* unless its deadline timer or an answer got there first */
        char why[512];

        snprintf(why, sizeof why, "%s", sage_errdetail());
        sage__conn_put(m, c);
        sage__mgr_fail_id(m, id, r, why);
    } else {
        sage__conn_put(m, c);
    }
    sage__fut_unref(f);
}

sage_err sage_manager_call(sage_future **fp, sage_manager *m, const sage_request *req)
{
    if (fp == NULL || m == NULL || req == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_manager_call: invalid argument");
    return start(fp, NULL, m, req, NULL, true);
}

/* direct runs rq on this thread when its service is a task of this
 * process that takes direct calls now (direct.c); true if it did, with
 * the outcome in *rp (and *result) */
static bool direct(sage_manager *m, const sage_request *rq, int64_t timeout_ms, sage_arena *arena,
                   sage_value *result, sage_err *rp)
{
    struct sage__conn *c = NULL;
    int64_t now, deadline = -1;
    sage__req req;
    sage_err r;
    bool ran;

    if (rq->service == NULL || rq->method == NULL || (rq->args == NULL && rq->nargs) ||
        (rq->kwargs == NULL && rq->nkwargs) || atomic_load_explicit(&m->closing, memory_order_acquire))
        return false; /* start() says what is wrong */
    for (size_t i = 0; i < rq->nkwargs; i++)
        if (rq->kwargs[i].key.type != SAGE_STR)
            return false;
    if ((r = sage__check_name(rq->method, "method", 1)) != SAGE_OK ||
        (r = sage__conn_get(m, rq->service, &c)) != SAGE_OK) {
        *rp = r; /* start() would find the same: resolve once */
        return true;
    }
    if (c->direct == NULL ||
        ((rq->idempotent || sage__tp_listed(c->info.idempotent, rq->method)) &&
         (rq->retries > 0 || m->retries > 0))) { /* retries live in the queue's path */
        sage__conn_put(m, c);
        return false;
    }
    now = sage__now_ns();
    if (timeout_ms > 0)
        deadline = now + timeout_ms * 1000000;
    memset(&req, 0, sizeof req);
    req.id = 0;
    req.service = rq->service;
    req.service_len = strlen(rq->service);
    req.method = rq->method;
    req.method_len = strlen(rq->method);
    req.args = sage_array(rq->args, rq->nargs);
    req.kwargs = sage_map(rq->kwargs, rq->nkwargs);
    req.timeout_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : 0;
    req.flags = rq->idempotent ? SAGE__REQ_IDEMPOTENT : 0;
    req.sent_ns = 0; /* run here: its deadline is given as it is */
    ran = sage__direct_call(c->direct, &req, deadline, arena, result, rp) != 0;
    sage__conn_put(m, c);
    if (!ran)
        return false;
    atomic_fetch_add_explicit(&m->n_calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->n_completed, 1, memory_order_relaxed);
    if (*rp == SAGE_OK && deadline >= 0 && sage__now_ns() > deadline) {
        /* it ran, but longer than its caller waits: a late answer */
        atomic_fetch_add_explicit(&m->n_late, 1, memory_order_relaxed);
        *rp = SAGE_SETERR(SAGE_ETIMEDOUT, "no answer from '%s' within %.3f s", rq->service,
                          timeout_ms / 1e3);
    }
    if (*rp != SAGE_OK) {
        atomic_fetch_add_explicit(&m->n_errors, 1, memory_order_relaxed);
        if (*rp == SAGE_ETIMEDOUT)
            atomic_fetch_add_explicit(&m->n_timeouts, 1, memory_order_relaxed);
    }
    return true;
}

sage_err sage_manager_call_sync(sage_value *result, sage_manager *m, const sage_request *req,
                                sage_arena *arena)
{
    int64_t timeout_ms;
    sage_future *f = NULL;
    const sage_value *v;
    bool via_inbox = false;
    sage_err r;

    if (m == NULL || req == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_manager_call_sync: invalid argument");
    timeout_ms = req->timeout_ms != 0 ? req->timeout_ms : m->timeout_ms;
    if (direct(m, req, timeout_ms, arena, result, &r))
        return r;
    r = start(&f, &via_inbox, m, req, arena, false);
    if (r != SAGE_OK)
        return r;
    if (via_inbox) /* its answer comes through the inbox: drain it ourselves */
        sage__mgr_sync_drain(m, f, f->deadline_ns);
    else
        sage_future_wait(f, timeout_ms > 0 ? (timeout_ms > INT32_MAX ? INT32_MAX : (int)timeout_ms)
                                           : -1);
    if (!sage_future_done(f)) {
        char msg[160];

        snprintf(msg, sizeof msg, "no answer from '%s' within %.3f s", req->service,
                 timeout_ms / 1e3);
        /* the answer may race us; the CAS decides */
        if (sage__fut_claim(f))
            sage__fut_complete(f, SAGE_ETIMEDOUT, msg);
        while (!sage_future_done(f))
            sage_future_wait(f, -1); /* a retry or completion in progress */
    }
    r = sage_future_result(&v, f);
    if (r == SAGE_OK && result)
        *result = *v; /* the result is in the caller's arena already */
    sage_future_free(f);
    return r;
}

sage_err sage_manager_callf(sage_value *result, sage_manager *m, sage_arena *arena,
                            const char *service, const char *method, const char *fmt, ...)
{
    sage_arena *tmp = NULL;
    sage_request rq;
    sage_value args;
    va_list ap;
    sage_err r;

    if (fmt == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_manager_callf: fmt is NULL");
    if ((r = sage_arena_new(&tmp, 0)) != SAGE_OK)
        return r;
    va_start(ap, fmt);
    r = sage_vpack(&args, tmp, fmt, ap);
    va_end(ap);
    if (r == SAGE_OK && args.type != SAGE_ARRAY)
        r = SAGE_SETERR(SAGE_EINVAL, "sage_manager_callf: format must describe an array");
    if (r == SAGE_OK) {
        memset(&rq, 0, sizeof rq);
        rq.service = service;
        rq.method = method;
        rq.args = args.as.array.items;
        rq.nargs = args.as.array.len;
        r = sage_manager_call_sync(result, m, &rq, arena);
    }
    sage_arena_free(tmp);
    return r;
}
