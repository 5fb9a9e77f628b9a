/*
 * shm.c - the transport between processes of one machine: a named request
 * queue per service, a named reply queue (the inbox) per caller, and the
 * host registry that maps a service's name to who serves it.
 *
 * Design notes
 * - Caller side. A client owns its inbox, "UID.NS.reply.PID.NONCE": every
 *   serving process writes answers straight into it, and the runtime drains
 *   it. A destination is a service found in the registry: its request queue
 *   (whose name the caller derives itself, never reading it from the entry)
 *   and its serving process, watched through a pidfd. Nothing of another
 *   user is trusted: the entry and every queue must pass the owner checks
 *   of platform/shm.c, and a refusal is SAGE_EPERM with nothing sent. When that process
 *   dies, the watcher puts a control record in the inbox: it lands behind
 *   every answer the process sent, so the runtime reads them all before it
 *   fails the calls left. A request queue shut down (its service stopping)
 *   refuses new calls only; the calls already in it are answered.
 * - Serving side. serve_open takes the name in the registry, creates the
 *   request queue, and only then publishes the entry. The runtime's
 *   listener drains the queue; tick sweeps the cache of callers' queues
 *   (releasing those of departed callers) and notes whether the request
 *   queue stays full (health). quiesce shuts the request queue down: new
 *   sends fail, what is queued is still drained. serve_close removes the
 *   queue and the entry.
 * - An inbox found corrupt (a peer of the same user scribbled on it) is
 *   replaced by a fresh one under a new name; the old one is shut down and
 *   unlinked at once but stays mapped until the client closes, so a sender
 *   or poster that loaded it just before fails cleanly (closed). Records
 *   posted to it then are lost: the runtime fails every call that waited
 *   for the old inbox when it resets it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "platform/proc.h"
#include "transport/names.h"
#include "transport/shm_reg.h"
#include "transport/shm_reply.h"
#include "transport/shm_watch.h"
#include "transport/transport.h"

#define TYPICAL_REQUEST 256 /* bytes per request when sizing a ring */
#define MAX_RETIRED 8       /* inbox replacements before the client gives up */

/* An inbox and its name. Replaced whole, never changed: senders and
 * posters load the current one without a lock, and a replaced one stays
 * valid (shut down) until the client closes. */
struct inbox {
    sage_queue *q;
    char name[SAGE_QUEUE_NAME_MAX + 1];
};

struct sage__tp_client {
    struct sage__tp_client_conf conf;
    char ns[SAGE_NAME_MAX + 1];
    _Atomic(struct inbox *) inbox;
    struct inbox *retired[MAX_RETIRED]; /* the drainer's alone */
    size_t nretired;
    struct sage__watch *watch;
};

struct sage__tp_dest {
    struct sage__tp_client *c;
    uint64_t serial;
    sage_queue *q;
    char service[SAGE_NAME_MAX + 1];
};

struct sage__tp_server {
    struct sage__reg *reg;
    sage_queue *q;
    char queue[SAGE__NAME_BUF];
    char ns[SAGE_NAME_MAX + 1];
    char name[SAGE_NAME_MAX + 1];
    struct sage__replies *replies;
    uint64_t full_events; /* the queue's count at the last tick */
};

/* ------------------------------------------------------------ the inbox */

/* stale_inbox removes name if it is an inbox ("UID.NS.reply.PID.NONCE")
 * whose process is gone */
static bool stale_inbox(void *arg, const char *name)
{
    const char *r = strstr(name, ".reply.");
    int pid = r ? atoi(r + 7) : 0;

    (void)arg;
    if (pid > 0 && pid != sage__pid() && !sage__pid_alive(pid))
        sage_queue_unlink(name); /* only this user's own files, never another's */
    return true;
}

/* clean_stale_inboxes removes the inboxes this user's dead processes left
 * behind: a caller that dies cannot remove its own, and nobody else knows
 * it. */
static void clean_stale_inboxes(void)
{
    char prefix[32];

    snprintf(prefix, sizeof prefix, "%u.", (unsigned)geteuid());
    sage_queue_list(prefix, stale_inbox, NULL);
}

static sage_err open_inbox(struct sage__tp_client *c, struct inbox **ip)
{
    struct inbox *in = calloc(1, sizeof *in);
    sage_queue_opts o;
    size_t cap = 4 * c->conf.max_response;
    sage_err r;

    if (in == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    sage_queue_opts_init(&o);
    o.flags = SAGE_QUEUE_CREATE | SAGE_QUEUE_EXCL | SAGE_QUEUE_LAZY;
    o.max_msg = c->conf.max_response;
    o.capacity = cap > (4u << 20) ? cap : (4u << 20);
    sage__reply_queue_name(in->name, sizeof in->name, c->ns);
    r = sage_queue_open(&in->q, in->name, &o);
    if (r != SAGE_OK) {
        r = SAGE_SETERR(r, "cannot create the reply queue '%s': %s", in->name, sage_errdetail());
        free(in);
        return r;
    }
    *ip = in;
    return SAGE_OK;
}

static void close_inbox(struct inbox *in)
{
    sage_queue_close(in->q);
    free(in);
}

static struct inbox *current(struct sage__tp_client *c)
{
    return atomic_load_explicit(&c->inbox, memory_order_acquire);
}

/* on_death: a serving process exited; its calls fail behind its answers */
static void on_death(void *arg, uint64_t serial, int32_t pid)
{
    struct sage__tp_client *c = arg;
    struct sage__tp_event ev;
    struct sage__tp_ctl ctl;
    char why[128];
    size_t len;

    snprintf(why, sizeof why, "the service's process (pid %d) died", (int)pid);
    ev = (struct sage__tp_event){SAGE__TP_FAIL_DEST, serial, SAGE_EUNAVAILABLE, why};
    len = sage__tp_ctl_make(&ctl, &ev);
    /* the inbox is full only if nobody drains it: then the runtime's own
     * timeouts end those calls; the event is worth a short wait, no more */
    sage_queue_send(current(c)->q, &ctl, len, 100);
}

/* ------------------------------------------------------------ caller side */

static sage_err client_open(struct sage__tp_client **cp, const struct sage__tp_client_conf *conf)
{
    struct sage__tp_client *c = calloc(1, sizeof *c);
    struct inbox *in = NULL;
    sage_err r;

    if (c == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    c->conf = *conf;
    snprintf(c->ns, sizeof c->ns, "%s", conf->ns);
    c->conf.ns = c->ns;
    c->conf.cluster = NULL;
    clean_stale_inboxes();
    if ((r = open_inbox(c, &in)) != SAGE_OK)
        goto fail;
    atomic_init(&c->inbox, in);
    if ((r = sage__watch_new(&c->watch, on_death, c)) != SAGE_OK)
        goto fail;
    *cp = c;
    return SAGE_OK;
fail:
    if (in) {
        sage_queue_unlink(in->name);
        close_inbox(in);
    }
    free(c);
    return r;
}

static void client_close(struct sage__tp_client *c)
{
    struct inbox *in;

    if (c == NULL)
        return;
    sage__watch_free(c->watch); /* no death is reported after this */
    in = current(c);
    /* shut down: serving processes see that the caller went away and let go
     * of the queue at their next sweep */
    sage_queue_shutdown(in->q);
    sage_queue_unlink(in->name);
    close_inbox(in);
    for (size_t i = 0; i < c->nretired; i++)
        close_inbox(c->retired[i]);
    free(c);
}

static sage_queue *client_inbox(struct sage__tp_client *c)
{
    return current(c)->q;
}

static sage_err client_inbox_reset(struct sage__tp_client *c)
{
    struct inbox *old = current(c), *in = NULL;
    sage_err r;

    if (c->nretired == MAX_RETIRED)
        return SAGE_SETERR(SAGE_EPROTO, "the reply queue was found corrupt %d times: giving up",
                           MAX_RETIRED);
    if ((r = open_inbox(c, &in)) != SAGE_OK)
        return r;
    atomic_store_explicit(&c->inbox, in, memory_order_release);
    sage_queue_shutdown(old->q); /* whoever still answers there learns we left */
    sage_queue_unlink(old->name);
    c->retired[c->nretired++] = old;
    return SAGE_OK;
}

static sage_err client_post(struct sage__tp_client *c, const void *data, size_t len)
{
    return sage_queue_send(current(c)->q, data, len, 0);
}

static sage_err resolve(struct sage__tp_client *c, const char *service, uint64_t serial,
                        struct sage__tp_dest **dp, struct sage__tp_dest_info *info)
{
    struct sage__reg *reg = NULL;
    struct sage__tp_dest *d = NULL;
    char why[128];
    sage_state state;
    sage_err r = sage__reg_open(&reg, c->ns, service);

    if (r != SAGE_OK)
        return r;
    if (!sage__fig_owner_alive(&reg->fig)) {
        r = SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s': its process (pid %d) died", service,
                        (int)reg->fig.pid);
        goto out;
    }
    state = sage__fig_health(&reg->fig, sage__wall_ns(), why, sizeof why);
    if (state != SAGE_STATE_RUNNING && state != SAGE_STATE_DEGRADED) {
        r = SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s' is %s%s%s", service,
                        sage_state_name(state), why[0] ? ": " : "", why);
        goto out;
    }
    if ((d = calloc(1, sizeof *d)) == NULL) {
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        goto out;
    }
    d->c = c;
    d->serial = serial;
    snprintf(d->service, sizeof d->service, "%s", service);
    memset(info, 0, sizeof *info);
    info->transport = SAGE_TRANSPORT_SHM;
    sage__req_queue_name(info->address, sizeof info->address, c->ns, service);
    info->pid = reg->fig.pid;
    info->queue_timeout_ms = reg->fig.queue_timeout_ms;
    info->max_request = reg->fig.max_request;
    info->via_inbox = true;
    snprintf(info->idempotent, sizeof info->idempotent, "%.*s",
             (int)sizeof reg->fig.idempotent - 1, reg->fig.idempotent); /* another's: bounded */
    r = sage_queue_open(&d->q, info->address, NULL);
    if (r == SAGE_EPERM) { /* another user's planted file: a refusal, nothing is sent */
        r = SAGE_SETERR(SAGE_EPERM, "service '%s': refusing its request queue: %s", service,
                        sage_errdetail());
        goto out;
    }
    if (r != SAGE_OK) {
        r = SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s': cannot open its queue: %s", service,
                        sage_errdetail());
        goto out;
    }
    if (reg->fig.pid != sage__pid() &&
        (r = sage__watch_add(c->watch, serial, reg->fig.pid, reg->fig.pid_start)) != SAGE_OK) {
        r = SAGE_SETERR(r, "service '%s': its process (pid %d) died", service, (int)reg->fig.pid);
        goto out;
    }
    *dp = d;
    d = NULL;
out:
    if (d) {
        sage_queue_close(d->q);
        free(d);
    }
    sage__reg_close(reg);
    return r;
}

static sage_err attach(struct sage__tp_client *c, struct sage__tp_server *s, uint64_t serial,
                       struct sage__tp_dest **dp, struct sage__tp_dest_info *info)
{
    return resolve(c, s->name, serial, dp, info);
}

static sage_err send(struct sage__tp_dest *d, const sage__req *req, int timeout_ms, bool *stalep)
{
    sage__req r = *req;
    const void *buf;
    size_t len = 0;
    sage_err e;

    *stalep = false;
    r.reply_to = current(d->c)->name;
    r.reply_to_len = strlen(r.reply_to);
    if ((e = sage__tp_encode_req(&r, &buf, &len)) != SAGE_OK)
        return e;
    e = sage_queue_send(d->q, buf, len, timeout_ms);
    switch (e) {
    case SAGE_OK:
        return SAGE_OK;
    case SAGE_EMSGSIZE:
        return SAGE_SETERR(SAGE_EMSGSIZE, "request of %zu bytes exceeds service '%s''s largest",
                           len, d->service);
    case SAGE_EFULL:
        return SAGE_SETERR(SAGE_EFULL, "service '%s': request queue full for %d ms", d->service,
                           timeout_ms);
    case SAGE_ECLOSED:
        *stalep = true;
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s' is stopping", d->service);
    case SAGE_EUNAVAILABLE:
        *stalep = true;
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s': its process died", d->service);
    default:
        *stalep = true;
        return SAGE_SETERR(e, "service '%s': %s", d->service, sage_errdetail());
    }
}

static void dest_close(struct sage__tp_dest *d)
{
    if (d == NULL)
        return;
    sage__watch_remove(d->c->watch, d->serial);
    sage_queue_close(d->q);
    free(d);
}

/* ------------------------------------------------------------ serving side */

/* queue_opts sizes the request ring: the message bound is the configured
 * request count; the bytes hold that many typical requests, and at least
 * two of the largest. */
static void queue_opts(const struct sage__tp_serve_conf *conf, sage_queue_opts *o)
{
    uint64_t bytes = (uint64_t)conf->request_queue_size * TYPICAL_REQUEST;
    uint64_t least = 2 * ((uint64_t)conf->max_request + 64);

    sage_queue_opts_init(o);
    o->capacity = bytes > least ? bytes : least;
    if (o->capacity > (1ull << 30))
        o->capacity = 1ull << 30;
    o->max_msg = conf->max_request;
    o->max_msgs = conf->request_queue_size;
    o->flags = SAGE_QUEUE_CREATE | SAGE_QUEUE_EXCL;
}

static sage_err serve_open(struct sage__tp_server **sp, const struct sage__tp_serve_conf *conf,
                           struct sage__figures **figp)
{
    struct sage__tp_server *s = calloc(1, sizeof *s);
    sage_queue_opts o;
    sage_err r;

    if (s == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    snprintf(s->ns, sizeof s->ns, "%s", conf->ns);
    snprintf(s->name, sizeof s->name, "%s", conf->name);
    sage__req_queue_name(s->queue, sizeof s->queue, conf->ns, conf->name);
    if ((r = sage__reg_create(&s->reg, conf->ns, conf->name)) != SAGE_OK) {
        free(s);
        return r;
    }
    queue_opts(conf, &o);
    sage_queue_unlink(s->queue); /* a leftover of a dead owner, if any */
    if ((r = sage_queue_open(&s->q, s->queue, &o)) != SAGE_OK ||
        (r = sage__replies_new(&s->replies, &s->reg->fig)) != SAGE_OK) {
        sage_queue_close(s->q);
        sage_queue_unlink(s->queue);
        sage__reg_destroy(s->reg, s->ns, s->name);
        free(s);
        return r;
    }
    *figp = &s->reg->fig;
    *sp = s;
    return SAGE_OK;
}

static sage_err ready(struct sage__tp_server *s)
{
    sage__reg_publish(s->reg); /* magic last, with release ordering */
    return SAGE_OK;
}

static sage_queue *serve_queue(struct sage__tp_server *s)
{
    return s->q;
}

static sage_err unwrap(struct sage__tp_server *s, const void *data, size_t len,
                       struct sage__tp_req *out)
{
    (void)s;
    memset(out, 0, sizeof *out);
    out->bytes = data;
    out->len = len;
    out->skew_ns = 0; /* one machine, one clock */
    return SAGE_OK;
}

static int tick(struct sage__tp_server *s, int64_t now_ns)
{
    sage_queue_stats st;
    struct sage__figures *f = &s->reg->fig;

    if (sage_queue_stats_read(&st, s->q) == SAGE_OK) {
        bool full = st.max_msgs ? st.depth_msgs >= st.max_msgs
                                : st.depth_bytes + st.max_msg + 64 > st.capacity;

        /* full now and callers kept finding it full since the last tick */
        if (full && st.full_events > s->full_events) {
            if (atomic_load_explicit(&f->full_since_ns, memory_order_relaxed) == 0)
                atomic_store_explicit(&f->full_since_ns, sage__wall_ns(), memory_order_relaxed);
        } else {
            atomic_store_explicit(&f->full_since_ns, 0, memory_order_relaxed);
        }
        s->full_events = st.full_events;
    }
    return sage__replies_sweep(s->replies, now_ns) ? sage__replies_sweep_ms() : 1000;
}

static void quiesce(struct sage__tp_server *s)
{
    sage_queue_shutdown(s->q); /* new sends fail; what is queued is still drained */
}

static void reply(struct sage__tp_server *s, const struct sage__tp_req *r, const char *reply_to,
                  const sage__resp *resp, const void *bytes, size_t len)
{
    (void)r;
    if (reply_to == NULL || reply_to[0] == '\0')
        return; /* a one-way call: nobody waits */
    sage__replies_send(s->replies, reply_to, resp ? resp->id : 0, resp, bytes, len);
}

static void release(struct sage__tp_server *s, const struct sage__tp_req *r)
{
    (void)s;
    (void)r;
}

static void serve_close(struct sage__tp_server *s)
{
    if (s == NULL)
        return;
    sage__replies_free(s->replies);
    sage_queue_close(s->q);
    sage_queue_unlink(s->queue);
    sage__reg_destroy(s->reg, s->ns, s->name);
    free(s);
}

const struct sage__tp_ops sage__tp_shm = {
    .name = "shm",
    .kind = SAGE_TRANSPORT_SHM,
    .client_open = client_open,
    .client_close = client_close,
    .client_inbox = client_inbox,
    .client_inbox_reset = client_inbox_reset,
    .client_post = client_post,
    .resolve = resolve,
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
