/*
 * local.c - the in-process transport: calls between threads of one
 * process, with no encoding at all.
 *
 * Design notes
 * - A request is a message object: the caller deep-copies the request's
 *   values into the message's own arena and puts one pointer to it in the
 *   task's private ring (the ring gives the same bound, backpressure and
 *   wake-ups as a shared one). The task's listener unwraps the pointer and
 *   runs the call on the values as they are; the answer's value goes back
 *   through the caller's on_value callback, which copies what it keeps.
 *   Nothing is encoded to MessagePack and decoded again.
 * - Messages are pooled per task (the core), their arenas reset on reuse,
 *   so a warm path does no malloc.
 * - Lifetimes. The core (ring and pool) is counted: the server holds one
 *   reference and every destination one, so a caller's cached destination
 *   stays valid after the task stopped (sends then fail: the ring is shut
 *   down). A message holds a reference to its caller's client, so an answer
 *   that comes after the caller's manager closed finds the client, sees it
 *   closed, and is dropped. client_close waits until no on_value callback
 *   runs (busy count), so none runs after it returns.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "transport/transport.h"
#include "value/arena.h"

#define POOL_MAX 2048    /* messages kept for reuse per task: about a window of calls */
#define MSG_ARENA 1024   /* first chunk of a message's arena */

struct sage__tp_client {
    struct sage__tp_client_conf conf;
    char id[48]; /* "local.PID.N": names the caller (dedupe keys, logs) */
    _Atomic int refs;   /* the runtime's, plus one per message in flight */
    _Atomic int closed;
    _Atomic int busy;   /* on_value callbacks running */
};

struct lmsg {
    sage_arena *arena;
    sage__req req;
    struct sage__tp_client *client; /* a reference */
    struct lmsg *next;
};

struct core {
    _Atomic int refs;
    sage_queue *q; /* records: one struct lmsg pointer each */
    int64_t queue_timeout_ms;
    size_t max_request;
    pthread_mutex_t lock; /* the pool */
    struct lmsg *pool;
    uint32_t npool;
};

struct sage__tp_server {
    struct core *core;
    struct sage__figures *fig;
};

struct sage__tp_dest {
    struct sage__tp_client *client;
    struct core *core;
    char service[SAGE_NAME_MAX + 1];
};

/* ------------------------------------------------------------ messages */

static void client_unref(struct sage__tp_client *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        free(c);
}

static void msg_free(struct lmsg *m)
{
    sage_arena_free(m->arena);
    free(m);
}

static struct lmsg *msg_get(struct core *k)
{
    struct lmsg *m;

    pthread_mutex_lock(&k->lock);
    m = k->pool;
    if (m) {
        k->pool = m->next;
        k->npool--;
    }
    pthread_mutex_unlock(&k->lock);
    if (m) {
        sage_arena_reset(m->arena);
        return m;
    }
    m = calloc(1, sizeof *m);
    if (m == NULL || sage_arena_new(&m->arena, MSG_ARENA) != SAGE_OK) {
        free(m);
        return NULL;
    }
    return m;
}

static void msg_put(struct core *k, struct lmsg *m)
{
    client_unref(m->client);
    m->client = NULL;
    pthread_mutex_lock(&k->lock);
    if (k->npool < POOL_MAX) {
        m->next = k->pool;
        k->pool = m;
        k->npool++;
        m = NULL;
    }
    pthread_mutex_unlock(&k->lock);
    if (m)
        msg_free(m);
}

static void core_unref(struct core *k)
{
    struct lmsg *m, *n;
    const void *data;

    if (k == NULL || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* messages nobody will take any more (a task that never drained them) */
    for (;;) {
        struct lmsg *left = NULL;
        size_t len = 0;

        if (sage_queue_recv(&len, k->q, &left, sizeof left, 0) != SAGE_OK || len != sizeof left)
            break;
        data = left;
        client_unref(((struct lmsg *)data)->client);
        msg_free(left);
    }
    sage_queue_close(k->q);
    for (m = k->pool; m; m = n) {
        n = m->next;
        msg_free(m);
    }
    pthread_mutex_destroy(&k->lock);
    free(k);
}

/* copy_str copies n bytes into a, NUL-terminated; "" for none */
static const char *copy_str(sage_arena *a, const char *s, size_t n)
{
    char *d = sage_arena_alloc(a, n + 1);

    if (d == NULL)
        return NULL;
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* copy_req deep-copies r into m's arena; the caller is named by from */
static sage_err copy_req(struct lmsg *m, const sage__req *r, const char *from)
{
    sage__req *q = &m->req;
    sage_err e;

    *q = *r;
    q->service = copy_str(m->arena, r->service ? r->service : "", r->service_len);
    q->method = copy_str(m->arena, r->method ? r->method : "", r->method_len);
    q->reply_to_len = strlen(from);
    q->reply_to = copy_str(m->arena, from, q->reply_to_len);
    if (q->service == NULL || q->method == NULL || q->reply_to == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory copying a request");
    if ((e = sage_value_copy(&q->args, m->arena, &r->args)) != SAGE_OK ||
        (e = sage_value_copy(&q->kwargs, m->arena, &r->kwargs)) != SAGE_OK)
        return e;
    if (q->args.type == SAGE_NIL)
        q->args = sage_array(NULL, 0);
    if (q->kwargs.type == SAGE_NIL)
        q->kwargs = sage_map(NULL, 0);
    return SAGE_OK;
}

/* ------------------------------------------------------------ caller side */

static _Atomic unsigned long long next_client = 1;

static sage_err client_open(struct sage__tp_client **cp, const struct sage__tp_client_conf *conf)
{
    struct sage__tp_client *c = calloc(1, sizeof *c);

    if (c == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    c->conf = *conf;
    c->conf.ns = NULL; /* not kept: nothing here needs it */
    c->conf.cluster = NULL;
    snprintf(c->id, sizeof c->id, "local.%d.%llu", (int)getpid(),
             (unsigned long long)atomic_fetch_add(&next_client, 1));
    atomic_init(&c->refs, 1);
    *cp = c;
    return SAGE_OK;
}

static void client_close(struct sage__tp_client *c)
{
    if (c == NULL)
        return;
    /* seq_cst pairs with reply's: either it sees closed, or we see it busy */
    atomic_store_explicit(&c->closed, 1, memory_order_seq_cst);
    while (atomic_load_explicit(&c->busy, memory_order_seq_cst) != 0)
        sched_yield(); /* an on_value in progress: a copy and a completion */
    client_unref(c);
}

static sage_err attach(struct sage__tp_client *c, struct sage__tp_server *s, uint64_t serial,
                       struct sage__tp_dest **dp, struct sage__tp_dest_info *info)
{
    struct sage__tp_dest *d = calloc(1, sizeof *d);

    (void)serial;
    if (d == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    d->client = c;
    d->core = s->core;
    atomic_fetch_add_explicit(&s->core->refs, 1, memory_order_relaxed);
    snprintf(d->service, sizeof d->service, "%.*s", SAGE_NAME_MAX, s->fig->name);
    memset(info, 0, sizeof *info);
    info->transport = SAGE_TRANSPORT_LOCAL;
    snprintf(info->address, sizeof info->address, "(in-process)");
    info->pid = s->fig->pid;
    info->queue_timeout_ms = s->core->queue_timeout_ms;
    info->max_request = s->core->max_request;
    info->via_inbox = false;
    snprintf(info->idempotent, sizeof info->idempotent, "%s", s->fig->idempotent);
    *dp = d;
    return SAGE_OK;
}

static sage_err send(struct sage__tp_dest *d, const sage__req *req, int timeout_ms, bool *stalep)
{
    struct core *k = d->core;
    struct lmsg *m = msg_get(k);
    sage_err r;

    *stalep = false;
    if (m == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    if ((r = copy_req(m, req, d->client->id)) != SAGE_OK) {
        msg_put(k, m);
        return r;
    }
    m->client = d->client;
    atomic_fetch_add_explicit(&d->client->refs, 1, memory_order_relaxed);
    r = sage_queue_send(k->q, &m, sizeof m, timeout_ms);
    if (r == SAGE_OK)
        return SAGE_OK;
    msg_put(k, m);
    switch (r) {
    case SAGE_EFULL:
        return SAGE_SETERR(SAGE_EFULL, "service '%s': request queue full for %d ms", d->service,
                           timeout_ms);
    case SAGE_ECLOSED:
        *stalep = true;
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s' is stopping", d->service);
    default:
        return r;
    }
}

static void dest_close(struct sage__tp_dest *d)
{
    if (d == NULL)
        return;
    core_unref(d->core);
    free(d);
}

/* ------------------------------------------------------------ serving side */

static sage_err serve_open(struct sage__tp_server **sp, const struct sage__tp_serve_conf *conf,
                           struct sage__figures **figp)
{
    struct sage__tp_server *s = calloc(1, sizeof *s);
    struct core *k = calloc(1, sizeof *k);
    sage_queue_opts qo;
    sage_err r;

    if (s == NULL || k == NULL || (s->fig = calloc(1, sizeof *s->fig)) == NULL) {
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        goto fail;
    }
    sage_queue_opts_init(&qo);
    qo.max_msg = sizeof(struct lmsg *);
    qo.max_msgs = conf->request_queue_size;
    qo.capacity = (size_t)conf->request_queue_size * 16 + 64; /* a record: header + pointer */
    if ((r = sage_queue_open(&k->q, NULL, &qo)) != SAGE_OK)
        goto fail;
    atomic_init(&k->refs, 1);
    k->queue_timeout_ms = conf->queue_timeout_ms;
    k->max_request = conf->max_request;
    pthread_mutex_init(&k->lock, NULL);
    s->core = k;
    sage__fig_init(s->fig, conf->ns, conf->name, SAGE_TRANSPORT_LOCAL);
    *figp = s->fig;
    *sp = s;
    return SAGE_OK;
fail:
    if (s)
        free(s->fig);
    free(s);
    free(k);
    return r;
}

static sage_err ready(struct sage__tp_server *s)
{
    (void)s;
    return SAGE_OK;
}

static sage_queue *serve_queue(struct sage__tp_server *s)
{
    return s->core->q;
}

static sage_err unwrap(struct sage__tp_server *s, const void *data, size_t len,
                       struct sage__tp_req *out)
{
    struct lmsg *m;

    (void)s;
    if (len != sizeof m)
        return SAGE_SETERR(SAGE_EPROTO, "in-process request of %zu bytes", len);
    memcpy(&m, data, sizeof m);
    memset(out, 0, sizeof *out);
    out->req = &m->req;
    out->ticket = m;
    out->skew_ns = 0;
    return SAGE_OK;
}

static int tick(struct sage__tp_server *s, int64_t now_ns)
{
    (void)s;
    (void)now_ns;
    return 1000;
}

static void quiesce(struct sage__tp_server *s)
{
    sage_queue_shutdown(s->core->q); /* new sends fail; what is queued is still drained */
}

static void reply(struct sage__tp_server *s, const struct sage__tp_req *r, const char *reply_to,
                  const sage__resp *resp, const void *bytes, size_t len)
{
    struct lmsg *m = r->ticket;
    struct sage__tp_client *c = m->client;
    sage__resp decoded;

    (void)reply_to;
    if (resp == NULL) { /* an answer remembered as bytes */
        if (sage__wire_resp_decode(bytes, len, m->arena, &decoded) != SAGE_OK) {
            sage__fig_set_drop(s->fig, "a remembered answer could not be decoded");
            return;
        }
        resp = &decoded;
    }
    atomic_fetch_add_explicit(&c->busy, 1, memory_order_seq_cst);
    if (!atomic_load_explicit(&c->closed, memory_order_seq_cst))
        c->conf.on_value(c->conf.arg, resp);
    atomic_fetch_sub_explicit(&c->busy, 1, memory_order_release);
}

static void release(struct sage__tp_server *s, const struct sage__tp_req *r)
{
    msg_put(s->core, r->ticket);
}

static void serve_close(struct sage__tp_server *s)
{
    if (s == NULL)
        return;
    core_unref(s->core);
    free(s->fig);
    free(s);
}

const struct sage__tp_ops sage__tp_local = {
    .name = "local",
    .kind = SAGE_TRANSPORT_LOCAL,
    .client_open = client_open,
    .client_close = client_close,
    .attach = attach,
    .send = send,
    .dest_close = dest_close,
    .serve_open = serve_open,
    .ready = ready,
    .serve_queue = serve_queue,
    .unwrap = unwrap,
    .tick = tick,
    .quiesce = quiesce,
    .reply = reply,
    .release = release,
    .serve_close = serve_close,
};
