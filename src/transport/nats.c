/*
 * nats.c - the transport between machines, on NATS: the caller's side, and
 * the table of operations (the serving side is nats_serve.c).
 *
 * Design notes
 * - One subscription per client, on "<inbox>.*". Each call is published
 *   with the reply subject "<inbox>.<request id>" (also the envelope's
 *   reply-to), so the server's "no responders" status, which carries no
 *   envelope, still names the call it belongs to.
 * - Answers go to the runtime through on_answer, on the subscription's
 *   thread; a lost connection fails every call waiting for an answer
 *   (on_event), since core NATS keeps nothing for absent subscribers.
 * - A service is resolved once per destination from its record in the
 *   service bucket: absent means SAGE_ENOSERVICE at once; a record marked
 *   failed (its supervisor gave up), or a bucket that cannot be read, means
 *   SAGE_EUNAVAILABLE (with the reason).
 * - Hedged calls (send_to) go to one replica at a time, on its own subject
 *   (nats_inst.h): the destination learns its replicas from $SRV.PING
 *   answers, which come back on "<inbox>.p<destination serial>".
 */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "transport/nats_inst.h"
#include "transport/nats_serve.h"
#include "transport/natskv.h"
#include "transport/transport.h"

#define DEFAULT_PUBLISH_WAIT_MS 5000

struct sage__tp_client {
    struct sage__tp_client_conf conf;
    char ns[SAGE_NAME_MAX + 1];
    struct sage__nio *nio;
    struct sage__nio_sub *inbox_sub;
    pthread_mutex_t kv_lock;
    struct sage__nio_kv *svc_kv;
    char inbox[128];
    pthread_mutex_t dest_lock; /* dests, and their tables' use by pongs */
    struct sage__tp_dest *dests;
};

struct sage__tp_dest {
    struct sage__tp_client *c;
    char service[SAGE_NAME_MAX + 1];
    char subject[SAGE_ADDRESS_MAX + 1];
    bool durable;
    uint64_t serial;
    struct sage__ninst *inst; /* its replicas, for hedged calls (plain delivery) */
    struct sage__tp_dest *next;
};

/* on_pong: a $SRV.PING answer for the destination with that serial */
static void on_pong(struct sage__tp_client *c, uint64_t serial, const void *data, size_t len)
{
    pthread_mutex_lock(&c->dest_lock);
    for (struct sage__tp_dest *d = c->dests; d; d = d->next)
        if (d->serial == serial && d->inst)
            sage__ninst_pong(d->inst, data, len, sage__wall_ms());
    pthread_mutex_unlock(&c->dest_lock);
}

static void on_inbox(void *arg, struct sage__nio_msg *msg)
{
    struct sage__tp_client *c = arg;
    size_t len;
    const void *data = sage__nio_msg_data(msg, &len);
    const char *last = strrchr(sage__nio_msg_subject(msg), '.');

    if (last && last[1] == 'p') {
        if (!sage__nio_msg_no_responders(msg))
            on_pong(c, strtoull(last + 2, NULL, 10), data, len);
        return;
    }
    if (sage__nio_msg_no_responders(msg)) {
        const char *dot = strrchr(sage__nio_msg_subject(msg), '.');
        struct sage__tp_event ev = {SAGE__TP_NOBODY, dot ? strtoull(dot + 1, NULL, 10) : 0,
                                    SAGE_EUNAVAILABLE, "no replica of the service is running"};

        c->conf.on_event(c->conf.arg, SAGE_TRANSPORT_NATS, &ev);
        return;
    }
    c->conf.on_answer(c->conf.arg, data, len);
}

/* on_conn_event: answers published while the connection is down are lost,
 * so the calls waiting for one fail now rather than at their timeout;
 * idempotent ones are retried */
static void on_conn_event(void *arg, enum sage__nio_event ev, const char *url)
{
    struct sage__tp_client *c = arg;
    struct sage__tp_event e = {SAGE__TP_FAIL_ALL, 0, SAGE_ECONNECT, NULL};

    (void)url;
    if (ev == SAGE__NIO_DISCONNECTED)
        e.why = "the connection to NATS was lost: the call may or may not have run";
    else if (ev == SAGE__NIO_CLOSED)
        e.why = "the connection to NATS is closed";
    else
        return;
    c->conf.on_event(c->conf.arg, SAGE_TRANSPORT_NATS, &e);
}

static sage_err client_open(struct sage__tp_client **cp, const struct sage__tp_client_conf *conf)
{
    struct sage__tp_client *c;
    struct sage__nio_opts no;
    char name[64], subject[160];
    sage_err r;

    if (conf->cluster == NULL)
        return SAGE_ENOTSUP; /* no cluster configured: not an error, nothing to open */
    if ((c = calloc(1, sizeof *c)) == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    c->conf = *conf;
    snprintf(c->ns, sizeof c->ns, "%s", conf->ns);
    c->conf.ns = c->ns;
    snprintf(name, sizeof name, "sagesvc manager %d", (int)getpid());
    memset(&no, 0, sizeof no);
    no.conf = conf->cluster->nats;
    no.name = name;
    no.on_event = on_conn_event;
    no.arg = c;
    pthread_mutex_init(&c->kv_lock, NULL);
    pthread_mutex_init(&c->dest_lock, NULL);
    if ((r = sage__nio_connect(&c->nio, &no)) != SAGE_OK)
        goto fail;
    if ((r = sage__nio_inbox(c->nio, c->inbox, sizeof c->inbox)) != SAGE_OK)
        goto fail;
    snprintf(subject, sizeof subject, "%s.*", c->inbox);
    if ((r = sage__nio_subscribe(c->nio, subject, NULL, on_inbox, c, &c->inbox_sub)) != SAGE_OK)
        goto fail;
    *cp = c;
    return SAGE_OK;
fail:
    sage__nio_close(c->nio);
    pthread_mutex_destroy(&c->kv_lock);
    pthread_mutex_destroy(&c->dest_lock);
    free(c);
    return r;
}

static void client_close(struct sage__tp_client *c)
{
    if (c == NULL)
        return;
    sage__nio_unsubscribe(c->inbox_sub); /* no answer is delivered after this */
    sage__nio_kv_close(c->svc_kv);
    sage__nio_close(c->nio); /* nor any event */
    pthread_mutex_destroy(&c->kv_lock);
    pthread_mutex_destroy(&c->dest_lock);
    free(c);
}

/* record reads the service's record: SAGE_ENOSERVICE if there is none,
 * SAGE_EUNAVAILABLE (with the reason) if the registry cannot be read. A
 * direct get first: any server with a copy answers, even while the
 * bucket's servers elect a leader; then through the bucket, which tells a
 * bucket that does not exist (nothing was ever deployed) from one that
 * cannot be read now. */
static sage_err record(struct sage__tp_client *c, const char *key, json_t **op)
{
    void *val = NULL;
    size_t len = 0;
    json_t *o;
    sage_err r = sage__nio_kv_get_direct(c->nio, SAGE__SERVICES_BUCKET, key, &val, &len);

    if (r == SAGE_ENOTSUP) {
        pthread_mutex_lock(&c->kv_lock);
        r = c->svc_kv ? SAGE_OK : sage__nio_kv_open(c->nio, SAGE__SERVICES_BUCKET, NULL, &c->svc_kv);
        if (r == SAGE_OK)
            r = sage__nio_kv_get(c->svc_kv, key, &val, &len, NULL);
        pthread_mutex_unlock(&c->kv_lock);
    }
    if (r == SAGE_ENOENT)
        return SAGE_ENOSERVICE; /* the caller's message says where it looked */
    if (r != SAGE_OK) {
        char why[512];

        snprintf(why, sizeof why, "%s", sage_errdetail());
        return SAGE_SETERR(SAGE_EUNAVAILABLE,
                           "cannot read the service registry (bucket %s) for '%s': %s (%s)",
                           SAGE__SERVICES_BUCKET, key, why, sage_errname(r));
    }
    o = json_loadb(val, len, 0, NULL);
    free(val);
    if (!json_is_object(o)) {
        json_decref(o);
        return SAGE_SETERR(SAGE_EPROTO, "the service record of '%s' is not a JSON object", key);
    }
    *op = o;
    return SAGE_OK;
}

static sage_err resolve(struct sage__tp_client *c, const char *service, uint64_t serial,
                        struct sage__tp_dest **dp, struct sage__tp_dest_info *info)
{
    struct sage__tp_dest *d;
    json_t *o = NULL, *v;
    char key[160];
    sage_err r;

    sage__nats_key(key, sizeof key, c->ns, service);
    if ((r = record(c, key, &o)) != SAGE_OK)
        return r;
    if (json_is_true(json_object_get(o, "failed"))) {
        json_t *why = json_object_get(o, "reason");

        r = SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s' failed: %s", service,
                        json_is_string(why) ? json_string_value(why) : "its replicas kept dying");
        json_decref(o);
        return r;
    }
    if ((d = calloc(1, sizeof *d)) == NULL) {
        json_decref(o);
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    }
    d->c = c;
    snprintf(d->service, sizeof d->service, "%s", service);
    d->durable = json_is_true(json_object_get(o, "durable"));
    snprintf(d->subject, sizeof d->subject, "%s", sage__jstr(o, "subject"));
    if (d->subject[0] == '\0')
        snprintf(d->subject, sizeof d->subject, "sage.%s.%s.%s", c->ns,
                 d->durable ? "durable" : "svc", service);
    memset(info, 0, sizeof *info);
    info->transport = SAGE_TRANSPORT_NATS;
    snprintf(info->address, sizeof info->address, "%s", d->subject);
    v = json_object_get(o, "max_request");
    info->max_request = json_is_integer(v) ? (size_t)json_integer_value(v) : (1u << 20);
    v = json_object_get(o, "queue_timeout_ms");
    info->queue_timeout_ms = json_is_integer(v) ? (int64_t)json_integer_value(v) : 30000;
    info->via_inbox = false;
    snprintf(info->idempotent, sizeof info->idempotent, "%s", sage__jstr(o, "idempotent"));
    json_decref(o);
    d->serial = serial;
    if (!d->durable && (r = sage__ninst_new(&d->inst, c->ns, service)) != SAGE_OK) {
        free(d);
        return r;
    }
    pthread_mutex_lock(&c->dest_lock);
    d->next = c->dests;
    c->dests = d;
    pthread_mutex_unlock(&c->dest_lock);
    *dp = d;
    return SAGE_OK;
}

/* publish sends req to subject (the reply subject names the call, for
 * the no-responders status) */
static sage_err publish(struct sage__tp_dest *d, const char *subject, const sage__req *req,
                        int timeout_ms)
{
    struct sage__tp_client *c = d->c;
    sage__req r = *req;
    char reply[192];
    const void *buf;
    size_t len;
    sage_err e;

    snprintf(reply, sizeof reply, "%s.%" PRIu64, c->inbox, req->id);
    r.reply_to = reply;
    r.reply_to_len = strlen(reply);
    if ((e = sage__tp_encode_req(&r, &buf, &len)) != SAGE_OK)
        return e;
    if (d->durable) { /* stored by the stream before we return: none is lost */
        char stream[200], msg_id[224];
        int wait = timeout_ms > 0 ? timeout_ms : DEFAULT_PUBLISH_WAIT_MS;

        /* the acknowledgement is waited for at most the call's time
         * (timeout_ms: the smaller of the service's queue_timeout and the
         * call's remaining time), and at most this attempt's (the
         * envelope's timeout_ms: a retry of an idempotent call follows it;
         * a resend passes timeout_ms 0, no wait for room) */
        if (req->timeout_ms > 0 && req->timeout_ms < (uint32_t)wait)
            wait = (int)req->timeout_ms;
        sage__stream_name(stream, sizeof stream, c->ns, d->service);
        /* the call and this attempt (its send time): the stream drops a
         * repeat of a publish whose acknowledgement was lost, not a retry */
        snprintf(msg_id, sizeof msg_id, "%s.%" PRIu64, reply, req->sent_ns);
        e = sage__nio_js_publish(c->nio, stream, subject, msg_id, buf, len, wait);
    } else { /* the reply subject names the call, for the no-responders status */
        e = sage__nio_publish(c->nio, subject, reply, buf, len, NULL, 0);
    }
    if (e != SAGE_OK)
        return SAGE_SETERR(e, "service '%s': %s", d->service, sage_errdetail());
    return SAGE_OK;
}

static sage_err send(struct sage__tp_dest *d, const sage__req *req, int timeout_ms, bool *stalep)
{
    *stalep = false;
    return publish(d, d->subject, req, timeout_ms);
}

/* ask_replicas sends $SRV.PING.NAME, its answers to on_pong (rate limited) */
static void ask_replicas(struct sage__tp_dest *d, int64_t now_ms)
{
    char subject[128], reply[192];

    if (!sage__ninst_due(d->inst, now_ms))
        return;
    snprintf(subject, sizeof subject, "$SRV.PING.%s", d->service);
    snprintf(reply, sizeof reply, "%s.p%" PRIu64, d->c->inbox, d->serial);
    sage__nio_publish(d->c->nio, subject, reply, NULL, 0, NULL, 0); /* a lost ask: the next */
}

static sage_err send_to(struct sage__tp_dest *d, const sage__req *req, int timeout_ms,
                        uint32_t avoid, uint32_t *chosen, bool *stalep)
{
    char subject[SAGE_ADDRESS_MAX + 1];
    int64_t now = sage__wall_ms();

    *stalep = false;
    *chosen = SAGE__TP_NONE;
    if (d->inst == NULL) /* durable: the stream hands it out; no replica of choice */
        return publish(d, d->subject, req, timeout_ms);
    if (avoid != SAGE__TP_NONE) /* the previous attempt's went unanswered */
        sage__ninst_suspect(d->inst, avoid, now);
    ask_replicas(d, now);
    *chosen = sage__ninst_pick(d->inst, avoid, now, subject, sizeof subject);
    return publish(d, *chosen == SAGE__TP_NONE ? d->subject : subject, req, timeout_ms);
}

static void dest_close(struct sage__tp_dest *d)
{
    struct sage__tp_client *c = d->c;

    pthread_mutex_lock(&c->dest_lock);
    for (struct sage__tp_dest **p = &c->dests; *p; p = &(*p)->next)
        if (*p == d) {
            *p = d->next;
            break;
        }
    pthread_mutex_unlock(&c->dest_lock);
    sage__ninst_free(d->inst);
    free(d);
}

const struct sage__tp_ops sage__tp_nats = {
    .name = "nats",
    .kind = SAGE_TRANSPORT_NATS,
    .remote = true,
    .client_open = client_open,
    .client_close = client_close,
    .resolve = resolve,
    .send = send,
    .send_to = send_to,
    .dest_close = dest_close,
    .serve_open = sage__nats_serve_open,
    .ready = sage__nats_ready,
    .tick = sage__nats_tick,
    .quiesce = sage__nats_quiesce,
    .reply = sage__nats_reply,
    .release = sage__nats_release,
    .dedupe_begin = sage__nats_dedupe_begin,
    .dedupe_finish = sage__nats_dedupe_finish,
    .serve_close = sage__nats_serve_close,
};
