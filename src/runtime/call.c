/*
 * call.c - serving one request: the sage_call a method sees, the default
 * handling (middleware around the method), and the bookkeeping after.
 *
 * Design notes
 * - A call and its arena are pooled per task: decoding a request and
 *   building its answer allocate from the arena, which is reset (keeping its
 *   largest chunk) when the call is reused, so a warm task serves calls
 *   without malloc.
 * - Every request is answered exactly once, by sage__call_run, whatever
 *   happened: the deadline passed, middleware refused, the method is
 *   unknown, or the method failed.
 * - Middleware runs like an onion: before_call hooks in order; if hook k
 *   refuses, hooks k+1.. and the method are skipped; after_call hooks of
 *   every hook whose before_call ran go in reverse order.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "runtime/dedupe.h"
#include "runtime/task_internal.h"
#include "value/arena.h"

struct sage_call *sage__call_get(struct sage_task *t)
{
    struct sage_call *c;

    pthread_mutex_lock(&t->plock);
    c = t->free_calls;
    if (c)
        t->free_calls = c->next;
    pthread_mutex_unlock(&t->plock);
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c == NULL)
            return NULL;
        if (sage_arena_new(&c->arena, 4096) != SAGE_OK) {
            free(c);
            return NULL;
        }
        c->task = t;
    } else {
        sage_arena_reset(c->arena);
    }
    c->method = NULL;
    c->status = SAGE_OK;
    c->errmsg = NULL;
    c->result = sage_nil();
    c->ran = 0;
    c->mw_log_start = NULL;
    c->remember = false;
    c->tp_held = false;
    c->next = NULL;
    return c;
}

void sage__call_put(struct sage_call *c)
{
    struct sage_task *t = c->task;

    if (c->tp_held) { /* the values it borrowed go back to the transport */
        t->ops->release(t->server, &c->tp);
        c->tp_held = false;
    }
    pthread_mutex_lock(&t->plock);
    c->next = t->free_calls;
    t->free_calls = c;
    pthread_mutex_unlock(&t->plock);
}

void sage__call_free_pool(struct sage_task *t)
{
    struct sage_call *c, *n;

    pthread_mutex_lock(&t->plock);
    c = t->free_calls;
    t->free_calls = NULL;
    pthread_mutex_unlock(&t->plock);
    for (; c; c = n) {
        n = c->next;
        sage_arena_free(c->arena);
        free(c);
    }
}

static int cmp_method(const char *name, size_t len, const struct sage__method *m)
{
    size_t n = len < m->len ? len : m->len;
    int d = memcmp(name, m->name, n);

    return d ? d : (len > m->len) - (len < m->len);
}

struct sage__method *sage__method_find(struct sage_task *t, const char *name, size_t len)
{
    size_t lo = 0, hi = t->nmethods;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int d = cmp_method(name, len, &t->methods[mid]);

        if (d == 0)
            return &t->methods[mid];
        if (d < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ------------------------------------------------------------- accessors */

const char *sage_call_service(const sage_call *c)
{
    return c->service;
}

const char *sage_call_method(const sage_call *c)
{
    return c->method_name;
}

const sage_value *sage_call_args(const sage_call *c)
{
    return &c->req.args;
}

const sage_value *sage_call_kwargs(const sage_call *c)
{
    return &c->req.kwargs;
}

uint64_t sage_call_id(const sage_call *c)
{
    return c->req.id;
}

const char *sage_call_caller(const sage_call *c)
{
    return c->reply_to;
}

bool sage_call_idempotent(const sage_call *c)
{
    return (c->req.flags & SAGE__REQ_IDEMPOTENT) != 0;
}

int64_t sage_call_remaining_ms(const sage_call *c)
{
    if (c->deadline_ns < 0)
        return -1;
    return (c->deadline_ns - sage__now_ns()) / 1000000;
}

sage_err sage_call_unpack(const sage_call *c, const char *fmt, ...)
{
    va_list ap;
    sage_err r;

    va_start(ap, fmt);
    r = sage_vunpack(&c->req.args, fmt, ap);
    va_end(ap);
    return r;
}

sage_arena *sage_call_arena(sage_call *c)
{
    return c->arena;
}

sage_err sage_call_result(sage_call *c, const sage_value *v)
{
    if (v == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_call_result: value is NULL");
    c->result = *v;
    return SAGE_OK;
}

sage_err sage_call_resultf(sage_call *c, const char *fmt, ...)
{
    va_list ap;
    sage_value v;
    sage_err r;

    va_start(ap, fmt);
    r = sage_vpack(&v, c->arena, fmt, ap);
    va_end(ap);
    if (r == SAGE_OK)
        c->result = v;
    return r;
}

static void set_error(sage_call *c, sage_err code, const char *msg)
{
    c->status = code;
    c->errmsg = sage__arena_strndup(c->arena, msg, strlen(msg));
}

sage_err sage_call_error(sage_call *c, sage_err code, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    set_error(c, code == SAGE_OK ? SAGE_EHANDLER : code, buf);
    return c->status;
}

const sage_value *sage_call_result_value(const sage_call *c)
{
    return &c->result;
}

sage_err sage_call_status(const sage_call *c, const char **msgp)
{
    if (msgp)
        *msgp = c->errmsg ? c->errmsg : (c->status ? sage_strerror(c->status) : "");
    return c->status;
}

/* ------------------------------------------------------------- handling */

/* finish_error settles an error return: a message from sage_call_error, or
 * the thread's detail, or the code's text. */
static void finish_error(sage_call *c, sage_err r)
{
    if (r == SAGE_OK)
        return;
    if (c->status == r && c->errmsg)
        return; /* sage_call_error said it all */
    set_error(c, r, sage_errdetail()[0] ? sage_errdetail() : sage_strerror(r));
}

sage_err sage_call_default(sage_call *c)
{
    struct sage_task *t = c->task;
    size_t ran = 0;
    sage_err r = SAGE_OK;

    for (; ran < t->nmw; ran++) {
        const sage_middleware *mw = t->mw[ran];

        if (mw->before_call == NULL)
            continue;
        sage__clearerr();
        r = mw->before_call(mw->arg, c);
        if (r != SAGE_OK) {
            finish_error(c, r);
            atomic_fetch_add_explicit(&t->fig->rejected, 1, memory_order_relaxed);
            ran++; /* its own after_call still runs */
            break;
        }
    }
    if (r == SAGE_OK) {
        if (c->method == NULL) {
            r = sage_call_error(c, SAGE_ENOMETHOD, "service '%s' has no method '%s'", t->name,
                                c->method_name);
        } else {
            sage__clearerr();
            c->ran = 1;
            r = c->method->fn(t->svc_state, c);
            finish_error(c, r);
        }
    }
    while (ran-- > 0)
        if (t->mw[ran]->after_call)
            t->mw[ran]->after_call(t->mw[ran]->arg, c);
    return c->status;
}

static void account(struct sage_task *t, sage_call *c, int64_t start_ns)
{
    int64_t took = sage__now_ns() - start_ns;
    struct sage__method *m = c->method;

    if (m) {
        /* typical run time, an EWMA weighting the newest run by 1/8 */
        int64_t e = atomic_load_explicit(&m->ewma_ns, memory_order_relaxed);

        atomic_store_explicit(&m->ewma_ns, e < 0 ? took : e + (took - e) / 8,
                              memory_order_relaxed);
    }
    sage__fig_count(t->fig, m ? m->stats : NULL, took, c->status);
    atomic_store_explicit(&t->fig->last_activity_ns, sage__wall_coarse_ns(), memory_order_relaxed);
}

/* reply_resp builds c's answer */
static void reply_resp(const struct sage_call *c, sage__resp *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->id = c->req.id;
    resp->ok = c->status == SAGE_OK;
    resp->result = resp->ok ? c->result : sage_nil();
    resp->err_code = (int32_t)c->status;
    if (!resp->ok) {
        resp->err_msg = c->errmsg ? c->errmsg : sage_strerror(c->status);
        resp->err_msg_len = strlen(resp->err_msg);
    }
}

/* remember records c's encoded answer (NULL: forgets c) in the task's
 * dedupe store: the transport's, shared by the replicas, or its own */
static void remember(struct sage_task *t, const struct sage_call *c, const void *bytes, size_t len)
{
    if (t->shared_dedupe)
        t->ops->dedupe_finish(t->server, c->reply_to, c->req.id, bytes, len);
    else
        sage__dedupe_finish(t->dedupe, c->reply_to, c->req.id, bytes, len);
}

void sage__reply_send(struct sage_call *c)
{
    struct sage_task *t = c->task;
    sage__resp resp;
    size_t size, len;
    void *buf;

    reply_resp(c, &resp);
    if (!c->remember) {
        t->ops->reply(t->server, &c->tp, c->reply_to, &resp, NULL, 0);
        return;
    }
    /* dedupe: the encoded answer is remembered, then sent as it is */
    c->remember = false;
    size = sage__wire_resp_size(&resp);
    buf = size ? sage_arena_alloc(c->arena, size) : NULL;
    if (buf == NULL || sage__wire_resp_encode(&resp, buf, size, &len) != SAGE_OK) {
        remember(t, c, NULL, 0); /* forget it */
        t->ops->reply(t->server, &c->tp, c->reply_to, &resp, NULL, 0);
        return;
    }
    remember(t, c, buf, len);
    t->ops->reply(t->server, &c->tp, c->reply_to, NULL, buf, len);
}

/* seen handles a repeat of a remembered call; true if c needs no run */
static bool seen(struct sage_call *c)
{
    struct sage_task *t = c->task;
    void *bytes = NULL;
    size_t len = 0;
    enum sage__tp_seen st;

    if ((t->dedupe == NULL && !t->shared_dedupe) || c->status != SAGE_OK || c->reply_to == NULL ||
        c->reply_to[0] == '\0')
        return false;
    st = t->shared_dedupe ? t->ops->dedupe_begin(t->server, c->reply_to, c->req.id,
                                                  c->req.timeout_ms, &bytes, &len)
                          : sage__dedupe_begin(t->dedupe, c->reply_to, c->req.id, &bytes, &len);
    switch (st) {
    case SAGE__TP_SEEN_NEW:
        c->remember = true;
        return false;
    case SAGE__TP_SEEN_DONE:
        /* the same answer again */
        t->ops->reply(t->server, &c->tp, c->reply_to, NULL, bytes, len);
        free(bytes);
        return true;
    case SAGE__TP_SEEN_RUNNING:
    default:
        return true; /* the first one answers */
    }
}

/* release_slot returns c to the pool: its slot is free for the next call */
static void release_slot(struct sage_task *t, struct sage_call *c)
{
    sage__call_put(c);
    atomic_fetch_sub_explicit(&t->running, 1, memory_order_seq_cst);
    sage__listener_room(t);
}

/* serve runs c's handling (unless it is already answered, or expired) and
 * counts it; the answer is then in c */
static void serve(struct sage_task *t, struct sage_call *c)
{
    int64_t start = sage__now_ns();

    atomic_fetch_add_explicit(&t->fig->in_flight, 1, memory_order_relaxed);
    if (c->status != SAGE_OK) {
        /* answered before it ran (a malformed request): just send that */
    } else if (c->deadline_ns >= 0 && start > c->deadline_ns) {
        /* the caller has given up: do not run work nobody waits for */
        sage_call_error(c, SAGE_ETIMEDOUT,
                        "deadline passed %.3f ms before '%s' could run (queued %.3f ms)",
                        (start - c->deadline_ns) / 1e6, c->method_name,
                        (start - c->recv_ns) / 1e6);
        atomic_fetch_add_explicit(&t->fig->expired, 1, memory_order_relaxed);
    } else if (t->kind && t->kind->handle) {
        sage_err r;

        sage__clearerr();
        r = t->kind->handle(t->kind->arg, t->svc_state, c);
        finish_error(c, r);
    } else {
        sage_call_default(c);
    }
    /* count before answering: a caller that reads status after its answer
     * finds its own call counted */
    account(t, c, start);
    atomic_fetch_sub_explicit(&t->fig->in_flight, 1, memory_order_relaxed);
}

void sage__call_run(struct sage_call *c)
{
    struct sage_task *t = c->task;

    if (seen(c)) {
        release_slot(t, c);
        return;
    }
    serve(t, c);
    sage__reply_send(c);
    release_slot(t, c);
}

sage_err sage__call_direct(struct sage_call *c, sage_arena *arena, sage_value *result)
{
    struct sage_task *t = c->task;
    sage_err r;

    serve(t, c);
    r = c->status;
    if (r == SAGE_OK && result) {
        *result = sage_nil();
        if (arena && (r = sage_value_copy(result, arena, &c->result)) != SAGE_OK)
            r = SAGE_SETERR(r, "copying the answer: %s", sage_errdetail());
    } else if (r != SAGE_OK) {
        SAGE_SETERR(r, "%s", c->errmsg ? c->errmsg : sage_strerror(r));
    }
    release_slot(t, c);
    return r;
}
