/*
 * serve.c - a task served over NATS: the replica side of the cluster.
 *
 * Design notes
 * - Plain delivery: one queue subscription (group "q") on the service's
 *   subject; nats.c calls us on the subscription's thread, which plays the
 *   listener's part (decode, then run inline or hand to a worker). When all
 *   max_workers are busy that thread waits for a free slot, so nats.c holds
 *   further requests in its pending queue (bounded by request_queue_size:
 *   beyond it nats.c drops them and their callers time out - NATS's own
 *   at-most-once).
 * - Durable delivery: max_workers puller threads each fetch one message at a
 *   time from the service's work-queue stream, serve it to the end (the
 *   answer is published), and only then acknowledge it. A replica killed
 *   mid-call never acknowledges: the stream redelivers the call to another
 *   replica after ack_wait.
 * - The service record (bucket sagesvc_services, key "NS.NAME") says the
 *   service exists and whether it is durable; it outlives the replicas, so
 *   callers of a service whose replicas all died get SAGE_EUNAVAILABLE, not
 *   SAGE_ENOSERVICE.
 * - Stop: no new calls (pullers joined, subscriptions drained), then the
 *   workers finish the calls they hold, answering on the connection, and
 *   only then does the connection close.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "cluster/cluster_internal.h"
#include "cluster/ops.h"
#include "platform/clock.h"

#define DEFAULT_ACK_WAIT_MS 5000

struct sage__serve {
    struct sage_task *t;
    struct sage__nio *nio;
    struct sage__nio_sub *sub;
    struct sage__srv *srv;
    char subject[160];
    char stream[200];
    char stream_subject[160];
    char id[24];
    int durable;
    int64_t ack_wait_ms;
    _Atomic int stop;
    pthread_t *pullers;
    struct sage__nio_pull **pulls;
    uint32_t npullers;
};

static void on_event(void *arg, enum sage__nio_event ev, const char *url)
{
    struct sage__serve *s = arg;

    if (ev == SAGE__NIO_DISCONNECTED)
        sage__task_drop(s->t, "disconnected from NATS; reconnecting");
    else if (ev == SAGE__NIO_RECONNECTED)
        sage__task_drop(s->t, "reconnected to NATS at %s", url);
}

static void on_request(void *arg, struct sage__nio_msg *m)
{
    struct sage__serve *s = arg;
    size_t len;
    const void *data = sage__nio_msg_data(m, &len);

    sage__listener_wait_free(s->t); /* backpressure: see design notes */
    sage__task_request(s->t, data, len);
}

static void on_pulled(void *arg, struct sage__nio_msg *m)
{
    struct sage__serve *s = arg;
    size_t len;
    const void *data = sage__nio_msg_data(m, &len);

    sage__task_request_sync(s->t, data, len); /* answered when this returns */
    sage__nio_msg_ack(m);
}

static void *puller(void *arg)
{
    struct sage__serve *s = ((void **)arg)[0];
    struct sage__nio_pull *p = ((void **)arg)[1];

    free(arg);
    while (!atomic_load_explicit(&s->stop, memory_order_acquire)) {
        sage_err r = sage__nio_pull_fetch(p, 1, 500, on_pulled, s);

        if (r != SAGE_OK && r != SAGE_ETIMEDOUT && !atomic_load(&s->stop)) {
            struct timespec ts = {0, 100 * 1000000L}; /* disconnected: back off */

            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static sage_err write_record(struct sage__serve *s)
{
    struct sage_task *t = s->t;
    struct sage__nio_kv_opts ko = {1, 0, 0};
    struct sage__nio_kv *kv = NULL;
    char key[160], val[512];
    sage_err r;

    r = sage__nio_kv_open(s->nio, SAGE__SERVICES_BUCKET, &ko, &kv);
    if (r != SAGE_OK)
        return SAGE_SETERR(r, "service '%s': cannot open the service registry (is JetStream enabled "
                              "on the NATS server?): %s",
                           t->name, sage_errdetail());
    sage__spec_key(key, sizeof key, t->ns, t->name);
    /* names are [A-Za-z0-9_-]: no JSON escaping needed */
    snprintf(val, sizeof val,
             "{\"ns\":\"%s\",\"name\":\"%s\",\"durable\":%s,\"max_request\":%zu,"
             "\"queue_timeout_ms\":%u,\"subject\":\"%s\",\"version\":\"%s\"}",
             t->ns, t->name, s->durable ? "true" : "false", t->max_request,
             (unsigned)(t->queue_timeout * 1000), s->durable ? s->stream_subject : s->subject,
             SAGE__VERSION_STRING);
    r = sage__nio_kv_put(kv, key, val, strlen(val), NULL);
    sage__nio_kv_close(kv);
    return r;
}

static sage_err start_pullers(struct sage__serve *s)
{
    struct sage_task *t = s->t;
    char durable[200];
    sage_err r;

    snprintf(durable, sizeof durable, "sagesvc_%s_%s", t->ns, t->name);
    r = sage__nio_stream_ensure(s->nio, s->stream, s->stream_subject);
    if (r != SAGE_OK)
        return r;
    s->pullers = calloc(t->max_workers, sizeof *s->pullers);
    s->pulls = calloc(t->max_workers, sizeof *s->pulls);
    if (s->pullers == NULL || s->pulls == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < t->max_workers; i++) {
        void **arg;

        r = sage__nio_pull_open(s->nio, s->stream, s->stream_subject, durable, s->ack_wait_ms,
                                &s->pulls[i]);
        if (r != SAGE_OK)
            return r;
        arg = malloc(2 * sizeof *arg);
        if (arg == NULL)
            return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        arg[0] = s;
        arg[1] = s->pulls[i];
        if (pthread_create(&s->pullers[i], NULL, puller, arg) != 0) {
            free(arg);
            return SAGE_SETERR(SAGE_ESYS, "cannot start a puller thread");
        }
        s->npullers++;
    }
    return SAGE_OK;
}

/* stop_taking ends every way a call comes in: pullers joined (their calls
 * answered), discovery handlers and the subscription drained */
static void stop_taking(struct sage__serve *s)
{
    atomic_store_explicit(&s->stop, 1, memory_order_release);
    for (uint32_t i = 0; i < s->npullers; i++)
        pthread_join(s->pullers[i], NULL);
    s->npullers = 0;
    for (uint32_t i = 0; s->pulls && i < s->t->max_workers; i++)
        sage__nio_pull_close(s->pulls[i]);
    free(s->pullers);
    free(s->pulls);
    s->pullers = NULL;
    s->pulls = NULL;
    sage__srv_stop(s->srv);
    s->srv = NULL;
    sage__nio_unsubscribe(s->sub);
    s->sub = NULL;
}

static void serve_free(struct sage__serve *s)
{
    stop_taking(s);
    sage__nio_close(s->nio);
    free(s);
}

sage_err sage__cluster_serve_start(struct sage_task *t)
{
    const sage_cluster_opts *co = t->transport_opts;
    struct sage__nio_opts no;
    struct sage__serve *s = calloc(1, sizeof *s);
    char name[200];
    sage_err r;

    if (s == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    s->t = t;
    s->durable = co && co->durable;
    s->ack_wait_ms = co && co->ack_wait_ms > 0 ? co->ack_wait_ms : DEFAULT_ACK_WAIT_MS;
    sage__nio_uid(s->id, sizeof s->id);
    snprintf(s->subject, sizeof s->subject, "sage.%s.svc.%s", t->ns, t->name);
    snprintf(s->stream_subject, sizeof s->stream_subject, "sage.%s.durable.%s", t->ns, t->name);
    sage__stream_name(s->stream, sizeof s->stream, t->ns, t->name);
    snprintf(name, sizeof name, "sagesvc %s.%s replica %s", t->ns, t->name, s->id);
    memset(&no, 0, sizeof no);
    no.conf = co ? co->nats : NULL;
    no.name = name;
    no.on_event = on_event;
    no.arg = s;
    t->cluster = s;
    if ((r = sage__nio_connect(&s->nio, &no)) != SAGE_OK)
        goto fail;
    if ((r = write_record(s)) != SAGE_OK)
        goto fail;
    if (s->durable)
        r = start_pullers(s);
    else
        r = sage__nio_subscribe(s->nio, s->subject, "q", on_request, s, &s->sub);
    if (r != SAGE_OK)
        goto fail;
    if ((r = sage__srv_start(&s->srv, s->nio, t, s->id,
                             s->durable ? s->stream_subject : s->subject, s->durable)) != SAGE_OK)
        goto fail;
    /* the subscriptions are live at the server once this round trip is done */
    if ((r = sage__nio_flush(s->nio, 2000)) != SAGE_OK)
        goto fail;
    return SAGE_OK;
fail:
    t->cluster = NULL;
    serve_free(s);
    return r;
}

void sage__cluster_serve_stop(struct sage_task *t)
{
    struct sage__serve *s = t->cluster;

    if (s == NULL)
        return;
    stop_taking(s);
    /* calls handed to workers answer on this connection (through
     * t->cluster): let them finish before it closes. sage_task_stop stops
     * the workers again later, which then finds none. */
    sage__workers_stop(t);
    serve_free(s);
    t->cluster = NULL;
}

void sage__cluster_reply(struct sage_call *c, const sage__resp *resp)
{
    struct sage__serve *s = c->task->cluster;
    size_t size = sage__wire_resp_size(resp), len;
    void *buf;
    char code[16];
    struct sage__nio_hdr hdr[2];
    sage_err r;

    if (s == NULL)
        return;
    buf = sage_arena_alloc(c->arena, size ? size : 1);
    if (buf == NULL || sage__wire_resp_encode(resp, buf, size, &len) != SAGE_OK) {
        sage__task_drop(c->task, "answer to %s dropped: cannot encode it", c->reply_to);
        return;
    }
    sage__call_remember(c, buf, len);
    if (resp->ok) {
        r = sage__nio_publish(s->nio, c->reply_to, NULL, buf, len, NULL, 0);
    } else {
        /* ADR-32: error answers also carry the error in headers, for tools */
        snprintf(code, sizeof code, "%d", (int)resp->err_code);
        hdr[0] = (struct sage__nio_hdr){"Nats-Service-Error", resp->err_msg ? resp->err_msg : ""};
        hdr[1] = (struct sage__nio_hdr){"Nats-Service-Error-Code", code};
        sage__srv_error(s->srv, resp->err_msg ? resp->err_msg : "");
        r = sage__nio_publish(s->nio, c->reply_to, NULL, buf, len, hdr, 2);
    }
    if (r != SAGE_OK)
        sage__task_drop(c->task, "answer to %s dropped: %s", c->reply_to, sage_errdetail());
}

void sage__cluster_reply_bytes(struct sage_call *c, const void *bytes, size_t len)
{
    struct sage__serve *s = c->task->cluster;

    if (s && sage__nio_publish(s->nio, c->reply_to, NULL, bytes, len, NULL, 0) != SAGE_OK)
        sage__task_drop(c->task, "answer to %s dropped: %s", c->reply_to, sage_errdetail());
}
