/*
 * nats_serve.c - a task served over NATS: the replica side of the cluster.
 *
 * Design notes
 * - Plain delivery: one queue subscription (group "q") on the service's
 *   subject; nats.c calls us on the subscription's thread, which hands the
 *   request to the runtime (on_request, DISPATCH) after waiting for a free
 *   worker slot (wait_room), so nats.c holds further requests in its
 *   pending queue (bounded by request_queue_size: beyond it nats.c drops
 *   them and their callers time out - NATS's own at-most-once).
 * - Each plain replica also listens on its own subject (nats_inst.h), no
 *   queue group, for callers that pick the replica: the attempts of a
 *   hedged call go to different replicas.
 * - Durable delivery: max_workers puller threads each fetch one message at
 *   a time from the service's work-queue stream, have the runtime serve it
 *   to the end (RUN_HERE: its answer is published), and only then
 *   acknowledge it. A replica killed mid-call never acknowledges: the
 *   stream redelivers the call to another replica after ack_wait.
 * - The service record (bucket sagesvc_services, key "NS.NAME") says the
 *   service exists and whether it is durable; it outlives the replicas, so
 *   callers of a service whose replicas all died get SAGE_EUNAVAILABLE, not
 *   SAGE_ENOSERVICE.
 * - Order of a stop (the runtime's): quiesce ends every way a call comes in
 *   (pullers joined, $SRV handlers and the subscription drained: every
 *   request nats.c had received is handed over before it returns); the
 *   runtime's workers then answer every call they took, on this still open
 *   connection; only then does serve_close close it.
 */
#include "transport/nats_serve.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "sage/version.h"
#include "transport/nats_dedupe.h"
#include "transport/nats_inst.h"
#include "transport/nats_srv.h"
#include "transport/natskv.h"

#define DEFAULT_ACK_WAIT_MS 5000
/* How far another machine's wall clock may be off ours: a request whose
 * sent_ns is older than its timeout by more has expired (its caller gave
 * up), however late it reached us (a replica frozen, a redelivery). */
#define CLOCK_SKEW_NS (1000 * 1000000LL)

struct sage__tp_server {
    struct sage__tp_serve_conf conf;
    char ns[SAGE_NAME_MAX + 1];
    char name[SAGE_NAME_MAX + 1];
    struct sage__figures *fig;
    struct sage__nio *nio;
    struct sage__nio_sub *sub;
    struct sage__nio_sub *inst_sub; /* its own subject: hedged calls pick a replica */
    struct sage__srv *srv;
    struct sage__ndedupe *dedupe; /* cluster dedupe, when asked for */
    char subject[160];
    char stream[200];
    char stream_subject[160];
    char id[24];
    bool durable;
    int64_t ack_wait_ms;
    _Atomic int stop;
    pthread_t *pullers;
    struct sage__nio_pull **pulls;
    uint32_t npullers;
};

static void on_event(void *arg, enum sage__nio_event ev, const char *url)
{
    struct sage__tp_server *s = arg;
    char why[256];

    if (ev == SAGE__NIO_DISCONNECTED) {
        sage__fig_set_drop(s->fig, "disconnected from NATS; reconnecting");
    } else if (ev == SAGE__NIO_RECONNECTED) {
        snprintf(why, sizeof why, "reconnected to NATS at %s", url);
        sage__fig_set_drop(s->fig, why);
    }
}

static void on_request(void *arg, struct sage__nio_msg *m)
{
    struct sage__tp_server *s = arg;
    struct sage__tp_req r;

    memset(&r, 0, sizeof r);
    r.bytes = sage__nio_msg_data(m, &r.len);
    r.skew_ns = CLOCK_SKEW_NS;
    r.fallback_reply = sage__nio_msg_reply(m);
    s->conf.wait_room(s->conf.arg); /* backpressure: see the design notes */
    s->conf.on_request(s->conf.arg, &r, SAGE__TP_DISPATCH);
}

static void on_pulled(void *arg, struct sage__nio_msg *m)
{
    struct sage__tp_server *s = arg;
    struct sage__tp_req r;

    memset(&r, 0, sizeof r);
    r.bytes = sage__nio_msg_data(m, &r.len);
    r.skew_ns = CLOCK_SKEW_NS;
    s->conf.on_request(s->conf.arg, &r, SAGE__TP_RUN_HERE); /* answered when this returns */
    sage__nio_msg_ack(m);
}

struct puller_arg {
    struct sage__tp_server *s;
    struct sage__nio_pull *p;
};

static void *puller(void *arg)
{
    struct puller_arg a = *(struct puller_arg *)arg;

    free(arg);
    while (!atomic_load_explicit(&a.s->stop, memory_order_acquire)) {
        sage_err r = sage__nio_pull_fetch(a.p, 1, 500, on_pulled, a.s);

        if (r != SAGE_OK && r != SAGE_ETIMEDOUT && !atomic_load(&a.s->stop)) {
            /* disconnected: nats.c reconnects on its own and has no event
             * a puller could wait on; back off a little */
            struct timespec ts = {0, 100 * 1000000L};

            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static sage_err write_record(struct sage__tp_server *s)
{
    struct sage__nio_kv_opts ko = {.history = 1};
    struct sage__nio_kv *kv = NULL;
    char key[160], val[1280];
    sage_err r;

    r = sage__nio_kv_open(s->nio, SAGE__SERVICES_BUCKET, &ko, &kv);
    if (r != SAGE_OK)
        return SAGE_SETERR(r, "service '%s': cannot open the service registry (is JetStream enabled "
                              "on the NATS server?): %s",
                           s->name, sage_errdetail());
    sage__nats_key(key, sizeof key, s->ns, s->name);
    /* names are [A-Za-z0-9_-]: no JSON escaping needed */
    snprintf(val, sizeof val,
             "{\"ns\":\"%s\",\"name\":\"%s\",\"durable\":%s,\"max_request\":%zu,"
             "\"queue_timeout_ms\":%lld,\"subject\":\"%s\",\"idempotent\":\"%s\","
             "\"version\":\"%s\"}",
             s->ns, s->name, s->durable ? "true" : "false", s->conf.max_request,
             (long long)s->conf.queue_timeout_ms, s->durable ? s->stream_subject : s->subject,
             s->fig->idempotent, SAGE_VERSION_STRING);
    r = sage__nio_kv_put(kv, key, val, strlen(val), NULL);
    sage__nio_kv_close(kv);
    return r;
}

static sage_err start_pullers(struct sage__tp_server *s)
{
    uint32_t n = s->conf.max_workers;
    char durable[200];
    sage_err r;

    snprintf(durable, sizeof durable, "sagesvc_%s_%s", s->ns, s->name);
    r = sage__nio_stream_ensure(s->nio, s->stream, s->stream_subject);
    if (r != SAGE_OK)
        return r;
    s->pullers = calloc(n, sizeof *s->pullers);
    s->pulls = calloc(n, sizeof *s->pulls);
    if (s->pullers == NULL || s->pulls == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        struct puller_arg *a;

        r = sage__nio_pull_open(s->nio, s->stream, s->stream_subject, durable, s->ack_wait_ms,
                                &s->pulls[i]);
        if (r != SAGE_OK)
            return r;
        if ((a = malloc(sizeof *a)) == NULL)
            return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        a->s = s;
        a->p = s->pulls[i];
        if (pthread_create(&s->pullers[i], NULL, puller, a) != 0) {
            free(a);
            return SAGE_SETERR(SAGE_ESYS, "cannot start a puller thread");
        }
        s->npullers++;
    }
    return SAGE_OK;
}

/* stop_taking ends every way a call comes in: pullers joined (their calls
 * answered), discovery handlers and the subscription drained. The pull
 * subscriptions themselves live on until the connection is closed
 * (close_pulls): a fetch answered late (a server that was frozen) still
 * delivers to them, and nats.c does not survive a subscription destroyed
 * while its reader thread delivers to it. What they hold unacknowledged
 * goes to another replica after ack_wait. */
static void stop_taking(struct sage__tp_server *s)
{
    atomic_store_explicit(&s->stop, 1, memory_order_release);
    for (uint32_t i = 0; i < s->npullers; i++)
        pthread_join(s->pullers[i], NULL);
    s->npullers = 0;
    free(s->pullers);
    s->pullers = NULL;
    sage__srv_stop(s->srv);
    s->srv = NULL;
    sage__nio_unsubscribe(s->sub);
    s->sub = NULL;
    sage__nio_unsubscribe(s->inst_sub);
    s->inst_sub = NULL;
}

sage_err sage__nats_serve_open(struct sage__tp_server **sp, const struct sage__tp_serve_conf *conf,
                               struct sage__figures **figp)
{
    const sage_cluster_opts *co = conf->cluster;
    struct sage__tp_server *s = calloc(1, sizeof *s);
    struct sage__nio_opts no;
    char name[200];
    sage_err r;

    if (s == NULL || (s->fig = calloc(1, sizeof *s->fig)) == NULL) {
        free(s);
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    }
    s->conf = *conf;
    snprintf(s->ns, sizeof s->ns, "%s", conf->ns);
    snprintf(s->name, sizeof s->name, "%s", conf->name);
    s->conf.ns = s->ns;
    s->conf.name = s->name;
    s->durable = co && co->durable;
    s->ack_wait_ms = co && co->ack_wait_ms > 0 ? co->ack_wait_ms : DEFAULT_ACK_WAIT_MS;
    sage__fig_init(s->fig, s->ns, s->name, SAGE_TRANSPORT_NATS);
    sage__nio_uid(s->id, sizeof s->id);
    snprintf(s->subject, sizeof s->subject, "sage.%s.svc.%s", s->ns, s->name);
    snprintf(s->stream_subject, sizeof s->stream_subject, "sage.%s.durable.%s", s->ns, s->name);
    sage__stream_name(s->stream, sizeof s->stream, s->ns, s->name);
    snprintf(name, sizeof name, "sagesvc %s.%s replica %s", s->ns, s->name, s->id);
    memset(&no, 0, sizeof no);
    no.conf = co ? co->nats : NULL;
    no.name = name;
    no.on_event = on_event;
    no.arg = s;
    if ((r = sage__nio_connect(&s->nio, &no)) != SAGE_OK) {
        free(s->fig);
        free(s);
        return r;
    }
    *figp = s->fig;
    *sp = s;
    return SAGE_OK;
}

sage_err sage__nats_ready(struct sage__tp_server *s)
{
    const sage_cluster_opts *co = s->conf.cluster;
    sage_err r;

    if (co && co->dedupe && s->dedupe == NULL &&
        (r = sage__ndedupe_open(&s->dedupe, s->nio, s->ns, s->name, co->dedupe_ttl_ms)) != SAGE_OK)
        return r;
    if ((r = write_record(s)) != SAGE_OK)
        return r;
    if (s->durable)
        r = start_pullers(s);
    else
        r = sage__nio_subscribe(s->nio, s->subject, "q", on_request, s, &s->sub);
    if (r == SAGE_OK && !s->durable) {
        char inst[SAGE_ADDRESS_MAX + 1];

        sage__nats_inst_subject(inst, sizeof inst, s->ns, s->name, s->id);
        r = sage__nio_subscribe(s->nio, inst, NULL, on_request, s, &s->inst_sub);
    }
    if (r == SAGE_OK)
        r = sage__srv_start(&s->srv, s->nio, s->fig, s->conf.methods, s->conf.nmethods, s->id,
                            s->durable ? s->stream_subject : s->subject, s->durable);
    /* the subscriptions are live at the server once this round trip is done */
    if (r == SAGE_OK)
        r = sage__nio_flush(s->nio, 2000);
    if (r != SAGE_OK)
        stop_taking(s);
    return r;
}

int sage__nats_tick(struct sage__tp_server *s, int64_t now_ns)
{
    (void)s;
    (void)now_ns;
    return 1000;
}

void sage__nats_quiesce(struct sage__tp_server *s)
{
    stop_taking(s);
}

void sage__nats_reply(struct sage__tp_server *s, const struct sage__tp_req *r,
                      const char *reply_to, const sage__resp *resp, const void *bytes, size_t len)
{
    struct sage__nio_hdr hdr[2];
    const char *to = reply_to && reply_to[0] ? reply_to : r->fallback_reply;
    char code[16], why[256];
    sage_err e;

    if (to == NULL || to[0] == '\0')
        return; /* a one-way call: nobody waits */
    if (resp && (e = sage__tp_encode_resp(resp, &bytes, &len)) != SAGE_OK) {
        snprintf(why, sizeof why, "answer to %s dropped: cannot encode it: %s", to,
                 sage_errdetail());
        sage__fig_set_drop(s->fig, why);
        return;
    }
    if (resp == NULL || resp->ok) {
        e = sage__nio_publish(s->nio, to, NULL, bytes, len, NULL, 0);
    } else {
        /* ADR-32: error answers also carry the error in headers, for tools */
        snprintf(code, sizeof code, "%d", (int)resp->err_code);
        hdr[0] = (struct sage__nio_hdr){"Nats-Service-Error", resp->err_msg ? resp->err_msg : ""};
        hdr[1] = (struct sage__nio_hdr){"Nats-Service-Error-Code", code};
        sage__srv_error(s->srv, resp->err_msg ? resp->err_msg : "");
        e = sage__nio_publish(s->nio, to, NULL, bytes, len, hdr, 2);
    }
    if (e != SAGE_OK) {
        snprintf(why, sizeof why, "answer to %s dropped: %s", to, sage_errdetail());
        sage__fig_set_drop(s->fig, why);
    }
}

enum sage__tp_seen sage__nats_dedupe_begin(struct sage__tp_server *s, const char *caller,
                                           uint64_t id, uint32_t timeout_ms, void **bytesp,
                                           size_t *lenp)
{
    return sage__ndedupe_begin(s->dedupe, caller, id, timeout_ms, bytesp, lenp);
}

void sage__nats_dedupe_finish(struct sage__tp_server *s, const char *caller, uint64_t id,
                              const void *bytes, size_t len)
{
    sage__ndedupe_finish(s->dedupe, caller, id, bytes, len);
}

void sage__nats_release(struct sage__tp_server *s, const struct sage__tp_req *r)
{
    (void)s;
    (void)r;
}

const char *sage__nats_instance_id(const struct sage__tp_server *s)
{
    return s->id;
}

/* close_pulls destroys the pull subscriptions, once the connection is
 * closed (stop_taking says why) */
static void close_pulls(struct sage__tp_server *s)
{
    for (uint32_t i = 0; s->pulls && i < s->conf.max_workers; i++)
        sage__nio_pull_close(s->pulls[i]);
    free(s->pulls);
    s->pulls = NULL;
}

void sage__nats_serve_close(struct sage__tp_server *s)
{
    if (s == NULL)
        return;
    stop_taking(s); /* if quiesce did not run (a failed start) */
    sage__ndedupe_close(s->dedupe);
    sage__nio_close(s->nio);
    close_pulls(s);
    free(s->fig);
    free(s);
}
