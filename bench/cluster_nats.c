/*
 * cluster_nats.c - the nats impl of "sage-bench cluster": raw nats.c
 * request/reply, the peer sagesvc's NATS transport is measured against.
 * The only file of sage-bench that includes <nats/nats.h>.
 *
 * Equal work: requests and answers carry sagesvc's own MessagePack
 * envelope (call_wire.c), so the responder decodes the request, runs the
 * method (call_echo) and encodes the answer, and the caller encodes each
 * request and decodes and checks each answer, as the runtime does: the
 * same bytes on the wire, the same codec work, only the runtime's
 * machinery (futures, tasks, connections, timers) is missing. The
 * envelope's reply_to is a string of the length sagesvc's has; it is
 * informational here (NATS's reply subject routes the answer).
 *
 * Threads, as sagesvc's: both connections send ASAP (no write coalescing);
 * the responder answers on its queue subscription's nats.c thread (the
 * task's serving thread over NATS); the sync caller is
 * natsConnection_Request (nats.c's request mux: one wildcard inbox
 * subscription, its thread wakes the caller); the async caller publishes
 * requests with the reply subject "<inbox>.<id>" and takes the answers on
 * one "<inbox>.*" subscription, as sagesvc's client does.
 *
 * Design notes. In the async case the calling thread issues and the
 * subscription's thread completes. Each call's id goes into slot[id &
 * mask] (release) before its request is published; the answer's thread
 * takes it back with a CAS (acq_rel), so an answer counts only for a call
 * outstanding, and only once. The window (2 x window slots, a power of
 * two) never holds two outstanding ids of the same slot. The window's own
 * counters are call_window.c's.
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "call_wire.h"
#include "cluster.h"

#define FLUSH_MS 2000
/* sagesvc's envelope reply_to is "<inbox>.<request id>" (ids of up to 14
 * digits in these runs) and its request also carries sent_ns (9 bytes):
 * the raw request's reply_to is 9 bytes longer instead, so both requests
 * have the same length */
#define REPLY_TO_DIGITS (14 + 9)

struct responder {
    natsConnection *nc;
    struct call_wire *w; /* the subscription thread's */
    _Atomic uint64_t errors;
};

struct caller {
    natsConnection *nc;
    const char *subject;
    struct call_wire *w;  /* the calling thread's */
    struct call_wire *rw; /* async: the answers' subscription thread's */
    char inbox[64];
    uint64_t next_id;
    _Atomic uint64_t *slot; /* async: the id outstanding at id & mask, 0 if none */
    uint64_t mask;
    struct call_window win;
};

static int nfail(const char *what, natsStatus s)
{
    const char *text = nats_GetLastError(NULL);

    fprintf(stderr, "sage-bench: cluster: nats: %s: %s%s%s\n", what, natsStatus_GetText(s),
            text && text[0] ? ": " : "", text ? text : "");
    return -1;
}

/* connect: send ASAP, no reconnection (a dead server fails the run) */
static int connect_to(natsConnection **ncp, const char *url, const char *name)
{
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);

    if (s == NATS_OK)
        s = natsOptions_SetURL(o, url);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, name);
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(o, true);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, FLUSH_MS);
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(o, false);
    if (s == NATS_OK)
        s = natsConnection_Connect(ncp, o);
    natsOptions_Destroy(o);
    return s == NATS_OK ? 0 : nfail(url, s);
}

static void disconnect(natsConnection *nc)
{
    if (nc == NULL)
        return;
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
}

/* drain ends sub's deliveries: once it returns no callback of sub runs */
static void drain(natsSubscription *sub)
{
    if (sub == NULL)
        return;
    if (natsSubscription_Drain(sub) == NATS_OK)
        natsSubscription_WaitForDrainCompletion(sub, FLUSH_MS);
    else
        natsSubscription_Unsubscribe(sub);
}

/* --------------------------------------------------------------- responder */

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    struct responder *p = closure;
    const char *reply = natsMsg_GetReply(msg);
    const void *out;
    size_t outlen;
    natsStatus s;

    (void)sub;
    if (reply == NULL || call_wire_serve(p->w, natsMsg_GetData(msg),
                                         (size_t)natsMsg_GetDataLength(msg), &out, &outlen) != 0) {
        if (atomic_fetch_add(&p->errors, 1) == 0)
            fprintf(stderr, "sage-bench: cluster: nats: a request the responder cannot serve\n");
    } else if ((s = natsConnection_Publish(nc, reply, out, (int)outlen)) != NATS_OK) {
        if (atomic_fetch_add(&p->errors, 1) == 0)
            nfail("publish an answer", s);
    }
    natsMsg_Destroy(msg);
}

static int host(struct call_run *r)
{
    static struct responder p; /* the callback may run until the close */
    natsSubscription *sub = NULL;
    natsStatus s;
    int rc = -1;

    if (call_gate_wait(&r->ctl->go, "go from the parent") != 0)
        return -1;
    if (call_wire_new(&p.w, "") != 0 || connect_to(&p.nc, r->url, "sage-bench responder") != 0)
        goto out;
    s = natsConnection_QueueSubscribe(&sub, p.nc, r->subject, CLUSTER_QUEUE_GROUP, on_request,
                                      &p);
    /* as sagesvc's serving subscription: a burst is never a slow consumer */
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (s == NATS_OK) /* the subscription is live at the server */
        s = natsConnection_FlushTimeout(p.nc, FLUSH_MS);
    if (s != NATS_OK) {
        nfail(r->subject, s);
        goto out;
    }
    bench_gate_open(&r->ctl->ready);
    /* serve until the caller is done; its whole run is bounded */
    rc = bench_gate_wait(&r->ctl->done, CLUSTER_RUN_TIMEOUT_S * 1000);
    drain(sub);
    if (atomic_load(&p.errors) != 0) {
        fprintf(stderr, "sage-bench: cluster: nats: the responder failed %llu requests\n",
                (unsigned long long)atomic_load(&p.errors));
        rc = -1;
    }
out:
    natsSubscription_Destroy(sub);
    disconnect(p.nc);
    call_wire_free(p.w);
    return rc;
}

/* ------------------------------------------------------------------- sync */

static int sync_once(void *arg)
{
    struct caller *c = arg;
    uint64_t id = ++c->next_id, got;
    natsMsg *reply = NULL;
    const void *buf;
    size_t len;
    natsStatus s;
    int rc;

    if (call_wire_request(c->w, id, &buf, &len) != 0)
        return -1;
    s = natsConnection_Request(&reply, c->nc, c->subject, buf, (int)len, CALL_OP_TIMEOUT_MS);
    if (s != NATS_OK)
        return nfail(s == NATS_TIMEOUT ? "request: no answer in time" : "request", s);
    rc = call_wire_response(c->w, natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply),
                            &got);
    natsMsg_Destroy(reply);
    if (rc == 0 && got != id) {
        fprintf(stderr, "sage-bench: cluster: nats: answer %llu to call %llu\n",
                (unsigned long long)got, (unsigned long long)id);
        rc = -1;
    }
    return rc;
}

/* ------------------------------------------------------------------ async */

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    struct caller *c = closure;
    uint64_t id = 0;

    (void)nc;
    (void)sub;
    if (natsMsg_IsNoResponders(msg)) {
        if (atomic_fetch_add(&c->win.errors, 1) == 0)
            fprintf(stderr, "sage-bench: cluster: nats: no responder\n");
        call_window_done(&c->win, false);
    } else if (call_wire_response(c->rw, natsMsg_GetData(msg),
                                  (size_t)natsMsg_GetDataLength(msg), &id) != 0) {
        call_window_done(&c->win, false);
    } else {
        uint64_t want = id;

        /* exactly the calls outstanding complete, each once */
        if (id != 0 && atomic_compare_exchange_strong(&c->slot[id & c->mask], &want, 0)) {
            call_window_done(&c->win, true);
        } else if (atomic_fetch_add(&c->win.errors, 1) == 0) {
            fprintf(stderr, "sage-bench: cluster: nats: an answer to %llu, not outstanding\n",
                    (unsigned long long)id);
        }
    }
    natsMsg_Destroy(msg);
}

static int issue(void *arg)
{
    struct caller *c = arg;
    uint64_t id = ++c->next_id;
    char reply[96];
    const void *buf;
    size_t len;
    natsStatus s;

    if (call_wire_request(c->w, id, &buf, &len) != 0)
        return -1;
    snprintf(reply, sizeof reply, "%s.%llu", c->inbox, (unsigned long long)id);
    atomic_store_explicit(&c->slot[id & c->mask], id, memory_order_release);
    atomic_fetch_add(&c->win.issued, 1);
    s = natsConnection_PublishRequest(c->nc, c->subject, reply, buf, (int)len);
    return s == NATS_OK ? 0 : nfail("publish a request", s);
}

static int async_measure(struct call_run *r, struct caller *c)
{
    natsSubscription *sub = NULL;
    natsInbox *inbox = NULL;
    char pattern[80];
    uint64_t cap = 1;
    natsStatus s;
    int rc = -1;

    while (cap < 2 * (uint64_t)r->par->window)
        cap <<= 1;
    c->slot = calloc(cap, sizeof *c->slot);
    if (c->slot == NULL)
        return -1;
    c->mask = cap - 1;
    s = natsInbox_Create(&inbox);
    if (s == NATS_OK) {
        snprintf(c->inbox, sizeof c->inbox, "%s", (const char *)inbox);
        snprintf(pattern, sizeof pattern, "%s.*", c->inbox);
        s = natsConnection_Subscribe(&sub, c->nc, pattern, on_reply, c);
    }
    if (s == NATS_OK) /* as sagesvc's inbox subscription */
        s = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(c->nc, FLUSH_MS);
    if (s != NATS_OK)
        nfail("inbox subscription", s);
    else
        rc = call_window_measure(r->par, &c->win, issue, c, "cluster", &r->ctl->fig);
    drain(sub); /* no callback runs after it: c may be freed */
    natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
    return rc;
}

static int caller(struct call_run *r)
{
    static struct caller c; /* callbacks may run until the subscription goes */
    char reply_to[96];
    natsInbox *inbox = NULL;
    int rc = -1;

    memset(&c, 0, sizeof c);
    c.subject = r->subject;
    if (call_gate_wait(&r->ctl->go, "go from the parent") != 0 ||
        call_gate_wait(&r->ctl->ready, "ready from the nats responder") != 0)
        goto out;
    if (natsInbox_Create(&inbox) != NATS_OK)
        goto out;
    snprintf(reply_to, sizeof reply_to, "%s.%0*d", (const char *)inbox, REPLY_TO_DIGITS, 0);
    natsInbox_Destroy(inbox);
    if (call_wire_new(&c.w, reply_to) != 0 || call_wire_new(&c.rw, reply_to) != 0 ||
        connect_to(&c.nc, r->url, "sage-bench caller") != 0)
        goto out;
    if (r->kase == CALL_SYNC)
        rc = call_sync_measure(r->par, sync_once, &c, 1, &r->ctl->fig);
    else
        rc = async_measure(r, &c);
out:
    disconnect(c.nc);
    call_wire_free(c.w);
    call_wire_free(c.rw);
    free(c.slot);
    bench_gate_open(&r->ctl->done);
    return rc;
}

/* ---------------------------------------------------------------- helpers */

int cluster_nats_probe(const char *url)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsAccountInfo *ai = NULL;
    jsErrCode jerr = 0;
    natsStatus s;

    if (connect_to(&nc, url, "sage-bench probe") != 0)
        return -1;
    s = natsConnection_JetStream(&js, nc, NULL);
    if (s == NATS_OK)
        s = js_GetAccountInfo(&ai, js, NULL, &jerr);
    if (s != NATS_OK)
        fprintf(stderr, "sage-bench: cluster: %s: no JetStream (%s); sagesvc's NATS transport "
                        "keeps its service records in a JetStream bucket\n",
                url, natsStatus_GetText(s));
    jsAccountInfo_Destroy(ai);
    jsCtx_Destroy(js);
    disconnect(nc);
    return s == NATS_OK ? 0 : -1;
}

void cluster_nats_forget(const char *url, const char *ns, const char *name)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    kvStore *kv = NULL;
    char key[160];
    natsStatus s;

    if (connect_to(&nc, url, "sage-bench cleanup") != 0)
        return;
    snprintf(key, sizeof key, "%s.%s", ns, name);
    s = natsConnection_JetStream(&js, nc, NULL);
    if (s == NATS_OK)
        s = js_KeyValue(&kv, js, "sagesvc_services"); /* sagesvc's registry bucket */
    if (s == NATS_OK)
        s = kvStore_Purge(kv, key, NULL);
    if (s != NATS_OK && s != NATS_NOT_FOUND)
        bench_note("cluster: could not remove the service record %s from %s: %s", key, url,
                   natsStatus_GetText(s));
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    disconnect(nc);
}

const struct call_impl cluster_nats_impl = {
    .name = "nats",
    .two_procs = true,
    .host = host,
    .caller = caller,
};
