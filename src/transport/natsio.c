/*
 * natsio.c - the only file that includes <nats/nats.h> (nats.c 3.4).
 *
 * Design notes
 * - Every connection sets send-ASAP: nats.c otherwise holds each write up
 *   to a millisecond to coalesce, which would be most of a call's latency.
 * - Callbacks of subscriptions run on nats.c's per-subscription threads.
 *   Unsubscribing drains: after it returns no callback runs, so the
 *   caller may free what the callback uses (and so it must not be called
 *   from that subscription's own callback).
 * - natsStatus values become sage_err values in one place (map()).
 */
#include "transport/natsio.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/err_internal.h"

struct sage__nio {
    natsConnection *nc;
    jsCtx *js;
    void (*on_event)(void *arg, enum sage__nio_event ev, const char *url);
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool closed; /* the closed callback ran: no callback will follow */
};

struct sage__nio_sub {
    struct sage__nio *n;
    natsSubscription *sub;
    sage__nio_fn fn;
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool complete; /* the last callback has returned */
};

struct sage__nio_msg {
    natsMsg *msg;
};

struct sage__nio_kv {
    kvStore *kv;
    jsCtx *js; /* the connection's, for compare-and-delete */
};

struct sage__nio_watch {
    kvWatcher *w;
    sage__nio_watch_fn fn;
    void *arg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
};

struct sage__nio_pull {
    natsSubscription *sub;
};

static sage_err map(natsStatus s, const char *what)
{
    const char *text = nats_GetLastError(NULL);

    if (text == NULL || text[0] == '\0')
        text = natsStatus_GetText(s);
    switch (s) {
    case NATS_OK:
        return SAGE_OK;
    case NATS_TIMEOUT:
        return SAGE_SETERR(SAGE_ETIMEDOUT, "%s: timed out", what);
    case NATS_NO_RESPONDERS:
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "%s: no responders", what);
    case NATS_NOT_FOUND:
        return SAGE_SETERR(SAGE_ENOENT, "%s: not found", what);
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_NOT_PERMITTED:
        return SAGE_SETERR(SAGE_EAUTH, "%s: %s", what, text);
    case NATS_NO_SERVER:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_STALE_CONNECTION:
        return SAGE_SETERR(SAGE_ECONNECT, "%s: %s", what, text);
    case NATS_NO_MEMORY:
        return SAGE_SETERR(SAGE_ENOMEM, "%s: out of memory", what);
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
        return SAGE_SETERR(SAGE_EINVAL, "%s: %s", what, text);
    case NATS_MAX_PAYLOAD:
        return SAGE_SETERR(SAGE_EMSGSIZE, "%s: message exceeds the server's max payload", what);
    case NATS_SSL_ERROR:
        return SAGE_SETERR(SAGE_ECONFIG, "%s: TLS: %s", what, text);
    default:
        return SAGE_SETERR(SAGE_ESYS, "%s: %s", what, text);
    }
}

/* wait_flag waits until *flag is set, for at most ms; returns *flag. The
 * flag is written under lock, and cond broadcast, by whoever sets it. */
static bool wait_flag(pthread_mutex_t *lock, pthread_cond_t *cond, const bool *flag, int ms)
{
    struct timespec ts;
    bool set;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(lock);
    while (!*flag && pthread_cond_timedwait(cond, lock, &ts) == 0)
        ;
    set = *flag;
    pthread_mutex_unlock(lock);
    return set;
}

/* ------------------------------------------------------------ connection */

static void on_disconnected(natsConnection *nc, void *closure)
{
    struct sage__nio *n = closure;

    (void)nc;
    if (n->on_event)
        n->on_event(n->arg, SAGE__NIO_DISCONNECTED, "");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    struct sage__nio *n = closure;
    char url[256] = "";

    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    if (n->on_event)
        n->on_event(n->arg, SAGE__NIO_RECONNECTED, url);
}

static void on_closed(natsConnection *nc, void *closure)
{
    struct sage__nio *n = closure;

    (void)nc;
    if (n->on_event)
        n->on_event(n->arg, SAGE__NIO_CLOSED, "");
    /* the last callback nats.c makes for a connection: close() waits for it */
    pthread_mutex_lock(&n->lock);
    n->closed = true;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
}

static natsStatus set_options(natsOptions *o, const struct sage__nio_opts *opts,
                              struct sage__nio *n)
{
    const sage_nats_conf *c = opts->conf;
    static const char *const dflt[] = {"nats://127.0.0.1:4222"};
    natsStatus s = NATS_OK;

    if (c && c->nservers)
        s = natsOptions_SetServers(o, (const char **)c->servers, (int)c->nservers);
    else
        s = natsOptions_SetServers(o, (const char **)dflt, 1);
    if (s == NATS_OK && opts->name)
        s = natsOptions_SetName(o, opts->name);
    if (s == NATS_OK && c && c->user)
        s = natsOptions_SetUserInfo(o, c->user, c->password ? c->password : "");
    if (s == NATS_OK && c && c->token)
        s = natsOptions_SetToken(o, c->token);
    if (s == NATS_OK && c && c->creds)
        s = natsOptions_SetUserCredentialsFromFiles(o, c->creds, NULL);
    if (s == NATS_OK && c && (c->tls_ca || c->tls_cert))
        s = natsOptions_SetSecure(o, true);
    if (s == NATS_OK && c && c->tls_ca)
        s = natsOptions_LoadCATrustedCertificates(o, c->tls_ca);
    if (s == NATS_OK && c && c->tls_cert)
        s = natsOptions_LoadCertificatesChain(o, c->tls_cert, c->tls_key);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, c ? c->reconnect_max : 60);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, c ? c->reconnect_wait_ms : 2000);
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(o, true); /* no 1 ms write coalescing */
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(o, on_disconnected, n);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(o, on_reconnected, n);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(o, on_closed, n);
    return s;
}

/* wait_closed waits (bounded) for the closed callback, the last one */
static void wait_closed(struct sage__nio *n)
{
    wait_flag(&n->lock, &n->cond, &n->closed, 10000);
}

sage_err sage__nio_connect(struct sage__nio **np, const struct sage__nio_opts *opts)
{
    struct sage__nio *n = calloc(1, sizeof *n);
    natsOptions *o = NULL;
    natsStatus s;
    sage_err r;

    if (n == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    n->on_event = opts->on_event;
    n->arg = opts->arg;
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->cond, NULL);
    s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = set_options(o, opts, n);
    if (s != NATS_OK) {
        r = map(s, "NATS options");
        if (r == SAGE_ESYS || r == SAGE_EINVAL)
            r = SAGE_SETERR(SAGE_ECONFIG, "NATS options: %s", sage_errdetail());
        goto fail;
    }
    s = natsConnection_Connect(&n->nc, o);
    if (s != NATS_OK) {
        const sage_nats_conf *c = opts->conf;

        r = map(s, "connecting to NATS");
        SAGE_SETERR(r, "connecting to NATS at %s%s: %s",
                    c && c->nservers ? c->servers[0] : "nats://127.0.0.1:4222",
                    c && c->nservers > 1 ? " (and others)" : "", natsStatus_GetText(s));
        goto fail;
    }
    s = natsConnection_JetStream(&n->js, n->nc, NULL);
    if (s != NATS_OK) {
        r = map(s, "JetStream context");
        goto fail;
    }
    natsOptions_Destroy(o);
    *np = n;
    return SAGE_OK;
fail:
    if (n->nc) {
        natsConnection_Close(n->nc);
        wait_closed(n);
        natsConnection_Destroy(n->nc);
    }
    natsOptions_Destroy(o);
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->cond);
    free(n);
    return r;
}

void sage__nio_close(struct sage__nio *n)
{
    if (n == NULL)
        return;
    jsCtx_Destroy(n->js);
    natsConnection_Close(n->nc);
    wait_closed(n); /* callbacks use n and its owner: none may follow */
    natsConnection_Destroy(n->nc);
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->cond);
    free(n);
}

bool sage__nio_connected(struct sage__nio *n)
{
    return natsConnection_Status(n->nc) == NATS_CONN_STATUS_CONNECTED;
}

const char *sage__nio_url(struct sage__nio *n, char *buf, size_t cap)
{
    if (cap == 0)
        return "";
    buf[0] = '\0';
    if (natsConnection_GetConnectedUrl(n->nc, buf, cap) != NATS_OK)
        buf[0] = '\0';
    return buf;
}

sage_err sage__nio_inbox(struct sage__nio *n, char *buf, size_t cap)
{
    natsInbox *in = NULL;
    natsStatus s = natsInbox_Create(&in);

    (void)n;
    if (s != NATS_OK)
        return map(s, "inbox");
    snprintf(buf, cap, "%s", (const char *)in);
    natsInbox_Destroy(in);
    return SAGE_OK;
}

void sage__nio_uid(char *buf, size_t cap)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char raw[22];
    size_t n = cap > 23 ? 22 : cap - 1;

    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        memset(raw, 7, sizeof raw); /* cannot happen on Linux >= 3.17 */
    for (size_t i = 0; i < n; i++)
        buf[i] = alphabet[raw[i] % 62];
    buf[n] = '\0';
}

/* -------------------------------------------------------------- messages */

static void deliver(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    struct sage__nio_sub *s = closure;
    struct sage__nio_msg m = {msg};

    (void)nc;
    (void)sub;
    s->fn(s->arg, &m);
    natsMsg_Destroy(msg);
}

static void on_sub_complete(void *closure)
{
    struct sage__nio_sub *s = closure;

    pthread_mutex_lock(&s->lock);
    s->complete = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void sub_free(struct sage__nio_sub *s)
{
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

sage_err sage__nio_subscribe(struct sage__nio *n, const char *subject, const char *queue,
                             sage__nio_fn fn, void *arg, struct sage__nio_sub **sp)
{
    struct sage__nio_sub *s = calloc(1, sizeof *s);
    natsStatus st;

    if (s == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    s->n = n;
    s->fn = fn;
    s->arg = arg;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (queue)
        st = natsConnection_QueueSubscribe(&s->sub, n->nc, subject, queue, deliver, s);
    else
        st = natsConnection_Subscribe(&s->sub, n->nc, subject, deliver, s);
    if (st != NATS_OK) {
        sub_free(s);
        return map(st, subject);
    }
    natsSubscription_SetOnCompleteCB(s->sub, on_sub_complete, s);
    /* a service's subscription may queue many requests: lift the default
     * pending limits so a burst is never dropped as a slow consumer */
    natsSubscription_SetPendingLimits(s->sub, -1, -1);
    *sp = s;
    return SAGE_OK;
}

void sage__nio_unsubscribe(struct sage__nio_sub *s)
{
    if (s == NULL)
        return;
    /* drain while connected: messages already received are delivered. A
     * drain needs the server, so without one, just unsubscribe. Either way
     * the closure may be freed only once the last callback has returned. */
    if (!sage__nio_connected(s->n) || natsSubscription_Drain(s->sub) != NATS_OK ||
        natsSubscription_WaitForDrainCompletion(s->sub, 10000) != NATS_OK)
        natsSubscription_Unsubscribe(s->sub);
    wait_flag(&s->lock, &s->cond, &s->complete, 10000);
    natsSubscription_Destroy(s->sub);
    sub_free(s);
}

const void *sage__nio_msg_data(const struct sage__nio_msg *m, size_t *lenp)
{
    *lenp = (size_t)natsMsg_GetDataLength(m->msg);
    return natsMsg_GetData(m->msg);
}

const char *sage__nio_msg_subject(const struct sage__nio_msg *m)
{
    return natsMsg_GetSubject(m->msg);
}

const char *sage__nio_msg_reply(const struct sage__nio_msg *m)
{
    return natsMsg_GetReply(m->msg);
}

const char *sage__nio_msg_header(const struct sage__nio_msg *m, const char *key)
{
    const char *v = NULL;

    if (natsMsgHeader_Get(m->msg, key, &v) != NATS_OK)
        return NULL;
    return v;
}

bool sage__nio_msg_no_responders(const struct sage__nio_msg *m)
{
    return natsMsg_IsNoResponders(m->msg);
}

sage_err sage__nio_publish(struct sage__nio *n, const char *subject, const char *reply,
                           const void *data, size_t len, const struct sage__nio_hdr *hdr,
                           size_t nhdr)
{
    natsMsg *msg = NULL;
    natsStatus s;

    if (nhdr == 0) /* the hot path: no message object */
        return map(reply ? natsConnection_PublishRequest(n->nc, subject, reply, data, (int)len)
                         : natsConnection_Publish(n->nc, subject, data, (int)len),
                   subject);
    s = natsMsg_Create(&msg, subject, reply, data, (int)len);
    for (size_t i = 0; s == NATS_OK && i < nhdr; i++)
        s = natsMsgHeader_Set(msg, hdr[i].key, hdr[i].value);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(n->nc, msg);
    natsMsg_Destroy(msg);
    return map(s, subject);
}

sage_err sage__nio_request(struct sage__nio *n, const char *subject, const void *data, size_t len,
                           int timeout_ms, void **outp, size_t *outlenp)
{
    natsMsg *reply = NULL;
    natsStatus s = natsConnection_Request(&reply, n->nc, subject, data, (int)len, timeout_ms);
    void *copy;
    size_t rlen;

    if (s != NATS_OK)
        return map(s, subject);
    if (natsMsg_IsNoResponders(reply)) {
        natsMsg_Destroy(reply);
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "%s: no responders", subject);
    }
    rlen = (size_t)natsMsg_GetDataLength(reply);
    copy = malloc(rlen ? rlen : 1);
    if (copy == NULL) {
        natsMsg_Destroy(reply);
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    }
    memcpy(copy, natsMsg_GetData(reply), rlen);
    natsMsg_Destroy(reply);
    *outp = copy;
    *outlenp = rlen;
    return SAGE_OK;
}

sage_err sage__nio_flush(struct sage__nio *n, int timeout_ms)
{
    return map(natsConnection_FlushTimeout(n->nc, timeout_ms), "flush");
}

/* ------------------------------------------------------ key-value buckets */

sage_err sage__nio_kv_open(struct sage__nio *n, const char *bucket,
                           const struct sage__nio_kv_opts *o, struct sage__nio_kv **kvp)
{
    struct sage__nio_kv *kv = calloc(1, sizeof *kv);
    natsStatus s;

    if (kv == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    s = js_KeyValue(&kv->kv, n->js, bucket);
    if (s == NATS_NOT_FOUND && o) {
        kvConfig cfg;

        kvConfig_Init(&cfg);
        cfg.Bucket = bucket;
        cfg.History = (uint8_t)(o->history > 0 ? o->history : 1);
        cfg.TTL = o->ttl_ms * 1000000; /* nats.c 3.4 wants nanoseconds (the stream's MaxAge) */
        cfg.Replicas = o->replicas > 0 ? o->replicas : 1;
        cfg.StorageType = o->memory ? js_MemoryStorage : js_FileStorage;
        s = js_CreateKeyValue(&kv->kv, n->js, &cfg);
        if (s != NATS_OK) /* created by someone else meanwhile? */
            s = js_KeyValue(&kv->kv, n->js, bucket);
    }
    if (s != NATS_OK) {
        free(kv);
        return map(s, bucket);
    }
    kv->js = n->js;
    *kvp = kv;
    return SAGE_OK;
}

void sage__nio_kv_close(struct sage__nio_kv *kv)
{
    if (kv == NULL)
        return;
    kvStore_Destroy(kv->kv);
    free(kv);
}

sage_err sage__nio_kv_get(struct sage__nio_kv *kv, const char *key, void **valp, size_t *lenp,
                          uint64_t *revp)
{
    kvEntry *e = NULL;
    natsStatus s = kvStore_Get(&e, kv->kv, key);
    void *copy;
    size_t len;

    if (s == NATS_NOT_FOUND)
        return SAGE_SETERR(SAGE_ENOENT, "key '%s' not found", key);
    if (s != NATS_OK)
        return map(s, key);
    if (kvEntry_Operation(e) != kvOp_Put) {
        kvEntry_Destroy(e);
        return SAGE_SETERR(SAGE_ENOENT, "key '%s' was deleted", key);
    }
    len = (size_t)kvEntry_ValueLen(e);
    copy = malloc(len + 1);
    if (copy == NULL) {
        kvEntry_Destroy(e);
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    }
    memcpy(copy, kvEntry_Value(e), len);
    ((char *)copy)[len] = '\0'; /* handy for JSON values */
    if (revp)
        *revp = kvEntry_Revision(e);
    kvEntry_Destroy(e);
    *valp = copy;
    if (lenp)
        *lenp = len;
    return SAGE_OK;
}

sage_err sage__nio_kv_put(struct sage__nio_kv *kv, const char *key, const void *val, size_t len,
                          uint64_t *revp)
{
    uint64_t rev = 0;
    natsStatus s = kvStore_Put(&rev, kv->kv, key, val, (int)len);

    if (s != NATS_OK)
        return map(s, key);
    if (revp)
        *revp = rev;
    return SAGE_OK;
}

sage_err sage__nio_kv_create(struct sage__nio_kv *kv, const char *key, const void *val, size_t len,
                             uint64_t *revp)
{
    uint64_t rev = 0;
    natsStatus s = kvStore_Create(&rev, kv->kv, key, val, (int)len);

    if (s == NATS_OK) {
        if (revp)
            *revp = rev;
        return SAGE_OK;
    }
    {
        kvEntry *e = NULL;

        /* the server says "wrong last sequence" when the key exists */
        if (kvStore_Get(&e, kv->kv, key) == NATS_OK) {
            bool live = kvEntry_Operation(e) == kvOp_Put;

            kvEntry_Destroy(e);
            if (live)
                return SAGE_SETERR(SAGE_EEXIST, "key '%s' exists", key);
        }
    }
    return map(s, key);
}

sage_err sage__nio_kv_update(struct sage__nio_kv *kv, const char *key, const void *val, size_t len,
                             uint64_t rev, uint64_t *revp)
{
    uint64_t nrev = 0;
    natsStatus s = kvStore_Update(&nrev, kv->kv, key, val, (int)len, rev);

    if (s == NATS_OK) {
        if (revp)
            *revp = nrev;
        return SAGE_OK;
    }
    if (s == NATS_ERR) /* the revision moved: someone else wrote first */
        return SAGE_SETERR(SAGE_EBUSY, "key '%s' changed meanwhile", key);
    return map(s, key);
}

sage_err sage__nio_kv_delete(struct sage__nio_kv *kv, const char *key)
{
    natsStatus s = kvStore_Delete(kv->kv, key);

    return s == NATS_NOT_FOUND ? SAGE_OK : map(s, key);
}

sage_err sage__nio_kv_keys(struct sage__nio_kv *kv, void (*fn)(void *arg, const char *key),
                           void *arg)
{
    kvKeysList list;
    natsStatus s;

    memset(&list, 0, sizeof list);
    s = kvStore_Keys(&list, kv->kv, NULL);
    if (s == NATS_NOT_FOUND)
        return SAGE_OK; /* no keys */
    if (s != NATS_OK)
        return map(s, "keys");
    for (int i = 0; i < list.Count; i++)
        fn(arg, list.Keys[i]);
    kvKeysList_Destroy(&list);
    return SAGE_OK;
}

sage_err sage__nio_kv_delete_rev(struct sage__nio_kv *kv, const char *key, uint64_t rev)
{
    /* what kvStore_Delete publishes, plus the stream's expected-last-sequence
     * check on the key's subject (nats.c 3.4 has no delete-if-revision) */
    char subject[512], seq[24];
    natsMsg *msg = NULL;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s;

    snprintf(subject, sizeof subject, "$KV.%s.%s", kvStore_Bucket(kv->kv), key);
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)rev);
    s = natsMsg_Create(&msg, subject, NULL, NULL, 0);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "KV-Operation", "DEL");
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Nats-Expected-Last-Subject-Sequence", seq);
    if (s == NATS_OK)
        s = js_PublishMsg(&pa, kv->js, msg, NULL, &jerr);
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(msg);
    if (s != NATS_OK && jerr == JSStreamWrongLastSequenceErr)
        return SAGE_SETERR(SAGE_EBUSY, "key '%s' changed meanwhile", key);
    return map(s, key);
}

static void *watch_thread(void *arg)
{
    struct sage__nio_watch *w = arg;

    for (;;) {
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, w->w, 60000);

        if (s == NATS_TIMEOUT)
            continue;
        if (s == NATS_ILLEGAL_STATE) /* stopped by sage__nio_kv_unwatch */
            break;
        if (s != NATS_OK) { /* e.g. disconnected: nats.c resumes the watch */
            if (wait_flag(&w->lock, &w->cond, &w->stop, 200)) /* unless stopping */
                break;
            continue;
        }
        if (e == NULL) {
            w->fn(w->arg, NULL, NULL, 0, 0, false);
            continue;
        }
        if (kvEntry_Operation(e) == kvOp_Put)
            w->fn(w->arg, kvEntry_Key(e), kvEntry_Value(e), (size_t)kvEntry_ValueLen(e),
                  kvEntry_Revision(e), false);
        else
            w->fn(w->arg, kvEntry_Key(e), NULL, 0, kvEntry_Revision(e), true);
        kvEntry_Destroy(e);
    }
    return NULL;
}

sage_err sage__nio_kv_watch(struct sage__nio_kv *kv, const char *keys, sage__nio_watch_fn fn,
                            void *arg, struct sage__nio_watch **wp)
{
    struct sage__nio_watch *w = calloc(1, sizeof *w);
    natsStatus s;

    if (w == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    w->fn = fn;
    w->arg = arg;
    s = keys ? kvStore_Watch(&w->w, kv->kv, keys, NULL) : kvStore_WatchAll(&w->w, kv->kv, NULL);
    if (s != NATS_OK) {
        free(w);
        return map(s, "watch");
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, watch_thread, w) != 0) {
        kvWatcher_Destroy(w->w);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w);
        return SAGE_SETERR(SAGE_ESYS, "cannot start a watch thread");
    }
    *wp = w;
    return SAGE_OK;
}

void sage__nio_kv_unwatch(struct sage__nio_watch *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    kvWatcher_Stop(w->w); /* wakes kvWatcher_Next with NATS_ILLEGAL_STATE */
    pthread_join(w->thread, NULL);
    kvWatcher_Destroy(w->w);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}

/* ------------------------------------------------------------ JetStream */

sage_err sage__nio_stream_delete(struct sage__nio *n, const char *name)
{
    jsErrCode jerr = 0;
    natsStatus s = js_DeleteStream(n->js, name, NULL, &jerr);

    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
        return SAGE_OK;
    return map(s, name);
}

sage_err sage__nio_stream_ensure(struct sage__nio *n, const char *name, const char *subject)
{
    jsStreamConfig cfg;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    const char *subjects[1] = {subject};
    natsStatus s;

    if (js_GetStreamInfo(&si, n->js, name, NULL, &jerr) == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return SAGE_OK;
    }
    jsStreamConfig_Init(&cfg);
    cfg.Name = name;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Retention = js_WorkQueuePolicy;
    cfg.Storage = js_FileStorage;
    s = js_AddStream(&si, n->js, &cfg, NULL, &jerr);
    if (s == NATS_OK || jerr == JSStreamNameExistErr) {
        jsStreamInfo_Destroy(si);
        return SAGE_OK;
    }
    return map(s, name);
}

sage_err sage__nio_js_publish(struct sage__nio *n, const char *subject, const void *data,
                              size_t len, int timeout_ms)
{
    jsPubOptions po;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s;

    jsPubOptions_Init(&po);
    po.MaxWait = timeout_ms;
    s = js_Publish(&pa, n->js, subject, data, (int)len, &po, &jerr);
    jsPubAck_Destroy(pa);
    if (s == NATS_NO_RESPONDERS)
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "%s: no stream stores it", subject);
    return map(s, subject);
}

sage_err sage__nio_pull_open(struct sage__nio *n, const char *stream, const char *subject,
                             const char *durable, int64_t ack_wait_ms, struct sage__nio_pull **pp)
{
    struct sage__nio_pull *p = calloc(1, sizeof *p);
    jsSubOptions so;
    jsErrCode jerr = 0;
    natsStatus s;

    if (p == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Config.AckWait = ack_wait_ms * 1000000; /* nanoseconds */
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.MaxAckPending = 65536;
    s = js_PullSubscribe(&p->sub, n->js, subject, durable, NULL, &so, &jerr);
    if (s != NATS_OK) {
        free(p);
        return map(s, durable);
    }
    *pp = p;
    return SAGE_OK;
}

void sage__nio_pull_close(struct sage__nio_pull *p)
{
    if (p == NULL)
        return;
    /* Destroy alone: an explicit Unsubscribe would delete the durable
     * consumer if this subscription created it, and with it the calls
     * waiting for the other replicas */
    natsSubscription_Destroy(p->sub);
    free(p);
}

sage_err sage__nio_pull_fetch(struct sage__nio_pull *p, int max, int timeout_ms, sage__nio_fn fn,
                              void *arg)
{
    natsMsgList list;
    jsErrCode jerr = 0;
    natsStatus s;

    memset(&list, 0, sizeof list);
    s = natsSubscription_Fetch(&list, p->sub, max, timeout_ms, &jerr);
    if (s != NATS_OK)
        return map(s, "fetch");
    for (int i = 0; i < list.Count; i++) {
        struct sage__nio_msg m = {list.Msgs[i]};

        fn(arg, &m);
    }
    natsMsgList_Destroy(&list);
    return SAGE_OK;
}

sage_err sage__nio_msg_ack(struct sage__nio_msg *m)
{
    return map(natsMsg_Ack(m->msg, NULL), "ack");
}
