/*
 * client.c - a manager's route to services on NATS.
 *
 * Design notes
 * - One subscription per manager, on "<inbox>.*". Each call is published
 *   with the reply subject "<inbox>.<request id>" (also the envelope's
 *   reply-to), so the server's "no responders" status, which carries no
 *   envelope, still names the call it belongs to.
 * - Answers complete futures through the same code as the shm response
 *   queue (sage__mgr_on_response), on the subscription's thread.
 * - A service is resolved once per connection from its record in the
 *   service registry bucket: absent means SAGE_ENOSERVICE at once; a
 *   record marked failed (its supervisor gave up) means SAGE_EUNAVAILABLE.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "cluster/cluster_internal.h"
#include "cluster/ops.h"

struct sage__client {
    struct sage__nio *nio;
    struct sage__nio_sub *inbox_sub;
    pthread_mutex_t kv_lock;
    struct sage__nio_kv *svc_kv;
    char inbox[128];
};

struct sage__remote {
    char subject[160];
    int durable;
};

static void on_inbox(void *arg, struct sage__nio_msg *msg)
{
    sage_manager *m = arg;
    size_t len;
    const void *data = sage__nio_msg_data(msg, &len);

    if (sage__nio_msg_no_responders(msg)) {
        const char *dot = strrchr(sage__nio_msg_subject(msg), '.');
        uint64_t id = dot ? strtoull(dot + 1, NULL, 10) : 0;

        sage__mgr_fail_id(m, id, SAGE_EUNAVAILABLE, "no replica of the service is running");
        return;
    }
    sage__mgr_on_response(m, data, len);
}

/* on_conn_event: answers published while the connection is down are lost
 * (core NATS keeps nothing for absent subscribers), so the calls waiting
 * for one fail now rather than at their timeout; idempotent ones retry. */
static void on_conn_event(void *arg, enum sage__nio_event ev, const char *url)
{
    sage_manager *m = arg;

    (void)url;
    if (ev == SAGE__NIO_DISCONNECTED)
        sage__mgr_fail_remote(m, SAGE_ECONNECT,
                              "the connection to NATS was lost: the call may or may not have run");
    else if (ev == SAGE__NIO_CLOSED)
        sage__mgr_fail_remote(m, SAGE_ECONNECT, "the connection to NATS is closed");
}

sage_err sage__cluster_client_new(sage_manager *m)
{
    const sage_cluster_opts *co = m->cluster_opts;
    struct sage__client *c = calloc(1, sizeof *c);
    struct sage__nio_opts no;
    char name[64], subject[160];
    sage_err r;

    if (c == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    snprintf(name, sizeof name, "sagesvc manager %d", (int)getpid());
    memset(&no, 0, sizeof no);
    no.conf = co->nats;
    no.name = name;
    no.on_event = on_conn_event;
    no.arg = m;
    pthread_mutex_init(&c->kv_lock, NULL);
    if ((r = sage__nio_connect(&c->nio, &no)) != SAGE_OK)
        goto fail;
    if ((r = sage__nio_inbox(c->nio, c->inbox, sizeof c->inbox)) != SAGE_OK)
        goto fail;
    snprintf(subject, sizeof subject, "%s.*", c->inbox);
    if ((r = sage__nio_subscribe(c->nio, subject, NULL, on_inbox, m, &c->inbox_sub)) != SAGE_OK)
        goto fail;
    m->cluster = c;
    return SAGE_OK;
fail:
    sage__nio_close(c->nio);
    pthread_mutex_destroy(&c->kv_lock);
    free(c);
    return r;
}

void sage__cluster_client_free(sage_manager *m)
{
    struct sage__client *c = m->cluster;

    if (c == NULL)
        return;
    sage__nio_unsubscribe(c->inbox_sub);
    sage__nio_kv_close(c->svc_kv);
    sage__nio_close(c->nio);
    pthread_mutex_destroy(&c->kv_lock);
    free(c);
    m->cluster = NULL;
}

const char *sage__cluster_reply_to(sage_manager *m, uint64_t id, char *buf, size_t cap)
{
    struct sage__client *c = m->cluster;

    snprintf(buf, cap, "%s.%" PRIu64, c->inbox, id);
    return buf;
}

/* record reads the service's registry record; SAGE_ENOSERVICE if none */
static sage_err record(struct sage__client *c, const char *key, json_t **op)
{
    sage_err r;

    pthread_mutex_lock(&c->kv_lock);
    if (c->svc_kv == NULL) /* the bucket appears with the first replica */
        sage__nio_kv_open(c->nio, SAGE__SERVICES_BUCKET, NULL, &c->svc_kv);
    r = c->svc_kv ? sage__kv_get_json(c->svc_kv, key, op, NULL) : SAGE_ENOENT;
    pthread_mutex_unlock(&c->kv_lock);
    return r == SAGE_ENOENT ? SAGE_ENOSERVICE : r;
}

sage_err sage__cluster_resolve(sage_manager *m, const char *service, struct sage__conn *conn)
{
    struct sage__client *c = m->cluster;
    struct sage__remote *rem;
    json_t *o = NULL, *v;
    char key[160];
    sage_err r;

    sage__spec_key(key, sizeof key, m->ns, service);
    r = record(c, key, &o);
    if (r != SAGE_OK)
        return r;
    if (json_is_true(json_object_get(o, "failed"))) {
        json_t *why = json_object_get(o, "reason");

        r = SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s' failed: %s", service,
                        json_is_string(why) ? json_string_value(why) : "its replicas kept dying");
        json_decref(o);
        return r;
    }
    rem = calloc(1, sizeof *rem);
    if (rem == NULL) {
        json_decref(o);
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    }
    snprintf(rem->subject, sizeof rem->subject, "%s", sage__jstr(o, "subject"));
    rem->durable = json_is_true(json_object_get(o, "durable"));
    if (rem->subject[0] == '\0')
        snprintf(rem->subject, sizeof rem->subject, "sage.%s.%s.%s", m->ns,
                 rem->durable ? "durable" : "svc", service);
    v = json_object_get(o, "max_request");
    conn->max_request = json_is_integer(v) ? (size_t)json_integer_value(v) : (1u << 20);
    v = json_object_get(o, "queue_timeout_ms");
    conn->queue_timeout_ms = json_is_integer(v) ? (uint32_t)json_integer_value(v) : 30000;
    json_decref(o);
    conn->transport = SAGE_TRANSPORT_NATS;
    conn->remote = rem;
    snprintf(conn->where, sizeof conn->where, "%s", rem->subject);
    return SAGE_OK;
}

sage_err sage__cluster_send(sage_manager *m, struct sage__conn *conn, const void *data, size_t len)
{
    struct sage__client *c = m->cluster;
    struct sage__remote *rem = conn->remote;
    char reply[160];
    uint64_t id;
    int kind;
    sage_err r;

    if (c == NULL || rem == NULL)
        return SAGE_SETERR(SAGE_ENOTSUP, "no cluster connection");
    if (rem->durable) /* stored by the stream before we return: none is lost */
        return sage__nio_js_publish(c->nio, rem->subject, data, len,
                                    (int)(conn->queue_timeout_ms ? conn->queue_timeout_ms : 5000));
    /* the reply subject names the call, for the no-responders status */
    if ((r = sage__wire_peek(data, len, &kind, &id)) != SAGE_OK)
        return r;
    sage__cluster_reply_to(m, id, reply, sizeof reply);
    return sage__nio_publish(c->nio, rem->subject, reply, data, len, NULL, 0);
}

void sage__cluster_conn_free(struct sage__conn *conn)
{
    free(conn->remote);
    conn->remote = NULL;
}
