/*
 * nats_srv.c - the NATS micro-service protocol (ADR-32) for served tasks.
 *
 * A replica answers $SRV.PING, $SRV.INFO and $SRV.STATS (bare, .NAME, and
 * .NAME.ID) with JSON of types io.nats.micro.v1.{ping,info,stats}_response.
 * Its one endpoint, "call", is the service's subject in queue group "q";
 * sagesvc's own facts (namespace, host, pid, delivery, methods) travel in
 * metadata, per-method figures in the endpoint's "data".
 *
 * The handlers read the task's figures block directly (lock-free atomics):
 * the task's own status call would take its lifecycle lock, which a
 * stopping task holds while it drains these very subscriptions.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "sage/version.h"
#include "transport/nats_srv.h"
#include "transport/natskv.h"

#define NSUBS 9

struct sage__srv {
    struct sage__nio *nio;
    const struct sage__figures *fig;
    char methods[1024]; /* comma-separated */
    char id[24];
    char subject[160];
    char host[64];
    bool durable;
    struct sage__nio_sub *subs[NSUBS];
    pthread_mutex_t lock; /* last_error */
    char last_error[128];
};

static void iso8601(int64_t wall_ns, char *buf, size_t cap)
{
    time_t sec = (time_t)(wall_ns / 1000000000);
    struct tm tm;
    char base[32];

    gmtime_r(&sec, &tm);
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%09lldZ", base, (long long)(wall_ns % 1000000000));
}

static json_t *metadata(const struct sage__srv *s)
{
    char pid[16];
    json_t *md = json_object();

    snprintf(pid, sizeof pid, "%d", (int)getpid());
    json_object_set_new(md, "sagesvc.namespace", json_string(s->fig->ns));
    json_object_set_new(md, "sagesvc.host", json_string(s->host));
    json_object_set_new(md, "sagesvc.pid", json_string(pid));
    json_object_set_new(md, "sagesvc.delivery", json_string(s->durable ? "durable" : "at_most_once"));
    json_object_set_new(md, "sagesvc.methods", json_string(s->methods));
    json_object_set_new(md, "sagesvc.idempotent", json_string(s->fig->idempotent));
    return md;
}

static json_t *base(const struct sage__srv *s, const char *type)
{
    json_t *o = json_object();

    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "name", json_string(s->fig->name));
    json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "version", json_string(SAGE_VERSION_STRING));
    json_object_set_new(o, "metadata", metadata(s));
    return o;
}

static json_t *endpoint(const struct sage__srv *s)
{
    json_t *e = json_object(), *md = json_object();

    json_object_set_new(e, "name", json_string("call"));
    json_object_set_new(e, "subject", json_string(s->subject));
    json_object_set_new(e, "queue_group", json_string("q"));
    json_object_set_new(md, "format", json_string("sagesvc envelope v1 (MessagePack)"));
    json_object_set_new(e, "metadata", md);
    return e;
}

/* latency: a histogram in exporter form, for a Prometheus exporter that
 * reads STATS (the bucket bounds are sage_latency_bounds, in order) */
static json_t *latency(const sage_latency *l)
{
    json_t *o = json_object(), *le = json_array();

    json_object_set_new(o, "count", json_integer((json_int_t)l->count));
    json_object_set_new(o, "sum_s", json_real(l->sum_s));
    for (size_t b = 0; b < SAGE_LATENCY_BUCKETS; b++)
        json_array_append_new(le, json_integer((json_int_t)l->le[b]));
    json_object_set_new(o, "le", le);
    return o;
}

static json_t *stats(struct sage__srv *s)
{
    json_t *o = base(s, "io.nats.micro.v1.stats_response"), *eps = json_array();
    json_t *e = endpoint(s), *data = json_object(), *per = json_object();
    sage_status st;
    char started[48];
    int64_t total_ns;

    sage__fig_status(s->fig, 0, 0, &st);
    total_ns = (int64_t)(st.latency.sum_s * 1e9);
    json_object_set_new(e, "num_requests", json_integer((json_int_t)st.requests));
    json_object_set_new(e, "num_errors", json_integer((json_int_t)st.errors));
    pthread_mutex_lock(&s->lock);
    json_object_set_new(e, "last_error", json_string(s->last_error));
    pthread_mutex_unlock(&s->lock);
    json_object_set_new(e, "processing_time", json_integer(total_ns));
    json_object_set_new(e, "average_processing_time",
                        json_integer(st.requests ? total_ns / (int64_t)st.requests : 0));
    for (size_t i = 0; i < st.nmethods; i++) {
        json_t *m = json_object();

        json_object_set_new(m, "requests", json_integer((json_int_t)st.methods[i].requests));
        json_object_set_new(m, "errors", json_integer((json_int_t)st.methods[i].errors));
        json_object_set_new(m, "p50_us", json_real(st.methods[i].latency_p50_us));
        json_object_set_new(m, "p99_us", json_real(st.methods[i].latency_p99_us));
        json_object_set_new(m, "latency", latency(&st.methods[i].latency));
        json_object_set_new(per, st.methods[i].name, m);
    }
    json_object_set_new(data, "methods", per);
    json_object_set_new(data, "latency", latency(&st.latency));
    json_object_set_new(data, "in_flight", json_integer((json_int_t)st.in_flight));
    json_object_set_new(data, "expired", json_integer((json_int_t)st.expired));
    json_object_set_new(data, "malformed", json_integer((json_int_t)st.malformed));
    json_object_set_new(data, "rejected", json_integer((json_int_t)st.rejected));
    json_object_set_new(data, "max_workers", json_integer((json_int_t)st.max_workers));
    json_object_set_new(data, "request_queue_size",
                        json_integer((json_int_t)st.request_queue_size));
    json_object_set_new(data, "state", json_string(sage_state_name(st.state)));
    json_object_set_new(data, "reason", json_string(st.reason));
    json_object_set_new(e, "data", data);
    json_array_append_new(eps, e);
    json_object_set_new(o, "endpoints", eps);
    iso8601(s->fig->started_ns, started, sizeof started);
    json_object_set_new(o, "started", json_string(started));
    return o;
}

static void on_srv(void *arg, struct sage__nio_msg *m)
{
    struct sage__srv *s = arg;
    const char *subject = sage__nio_msg_subject(m), *reply = sage__nio_msg_reply(m);
    json_t *o;
    char *text;

    if (reply == NULL)
        return;
    if (strncmp(subject, "$SRV.PING", 9) == 0) {
        o = base(s, "io.nats.micro.v1.ping_response");
    } else if (strncmp(subject, "$SRV.INFO", 9) == 0) {
        json_t *eps = json_array();

        o = base(s, "io.nats.micro.v1.info_response");
        json_object_set_new(o, "description",
                            json_string("a sagesvc service (calls: MessagePack envelope)"));
        json_array_append_new(eps, endpoint(s));
        json_object_set_new(o, "endpoints", eps);
    } else {
        o = stats(s);
    }
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text) {
        sage__nio_publish(s->nio, reply, NULL, text, strlen(text), NULL, 0);
        free(text);
    }
}

sage_err sage__srv_start(struct sage__srv **sp, struct sage__nio *n,
                         const struct sage__figures *fig, const char *const *methods,
                         size_t nmethods, const char *id, const char *subject, bool durable)
{
    static const char *const verbs[] = {"PING", "INFO", "STATS"};
    struct sage__srv *s = calloc(1, sizeof *s);
    int k = 0;
    sage_err r = SAGE_OK;

    if (s == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    s->nio = n;
    s->fig = fig;
    s->durable = durable;
    for (size_t i = 0, off = 0; i < nmethods && off < sizeof s->methods; i++)
        off += (size_t)snprintf(s->methods + off, sizeof s->methods - off, "%s%s", i ? "," : "",
                                methods[i]);
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->subject, sizeof s->subject, "%s", subject);
    if (gethostname(s->host, sizeof s->host) != 0)
        snprintf(s->host, sizeof s->host, "unknown");
    s->host[sizeof s->host - 1] = '\0';
    pthread_mutex_init(&s->lock, NULL);
    for (int v = 0; v < 3 && r == SAGE_OK; v++) {
        char subj[3][200];

        snprintf(subj[0], sizeof subj[0], "$SRV.%s", verbs[v]);
        snprintf(subj[1], sizeof subj[1], "$SRV.%s.%s", verbs[v], fig->name);
        snprintf(subj[2], sizeof subj[2], "$SRV.%s.%s.%s", verbs[v], fig->name, id);
        for (int i = 0; i < 3 && r == SAGE_OK; i++)
            r = sage__nio_subscribe(n, subj[i], NULL, on_srv, s, &s->subs[k++]);
    }
    if (r != SAGE_OK) {
        sage__srv_stop(s);
        return r;
    }
    *sp = s;
    return SAGE_OK;
}

void sage__srv_stop(struct sage__srv *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < NSUBS; i++)
        sage__nio_unsubscribe(s->subs[i]);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void sage__srv_error(struct sage__srv *s, const char *msg)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    snprintf(s->last_error, sizeof s->last_error, "%s", msg);
    pthread_mutex_unlock(&s->lock);
}

