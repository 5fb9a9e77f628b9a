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

#define DIRECT_GET_WAIT_MS 2000 /* a read of a record: any copy answers at once */
#define WRITE_RETRY_MS 2000     /* writes wait this long for a stream's new leader */
#define PUBLISH_ATTEMPT_MS 2000 /* a durable publish's wait for its acknowledgement, per try */
#define KEYS_WAIT_MS 2000       /* a bucket's key listing */
#define WATCH_WAIT_MS 2000      /* a watch's start (its consumer), per try */
#define WATCH_TRIES 3

struct sage__nio {
    natsConnection *nc;
    jsCtx *js;
    int replicas; /* nats.replicas: copies of what we create; 0: min(3, servers) */
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

static const char *last_error(natsStatus s);

static sage_err map(natsStatus s, const char *what)
{
    const char *text = last_error(s);

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
    case NATS_NOT_YET_CONNECTED:
    case NATS_IO_ERROR: /* a write on a socket the server closed: a broken connection */
        return SAGE_SETERR(SAGE_ECONNECT, "%s: %s", what, text);
    case NATS_INSUFFICIENT_BUFFER: /* publishing while reconnecting, the buffer full */
        return SAGE_SETERR(SAGE_ECONNECT,
                           "%s: the connection to NATS is down and its reconnect buffer is full",
                           what);
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

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* last_error: nats.c's text of the last error, without its "(file.c:123): "
 * prefix, or the status's text */
static const char *last_error(natsStatus s)
{
    const char *text = nats_GetLastError(NULL), *p;

    if (text == NULL || text[0] == '\0')
        return natsStatus_GetText(s);
    if (text[0] == '(' && (p = strstr(text, "): ")) != NULL)
        return p + 3;
    return text;
}

/* write_again: a write that no server took stored nothing, so it may be
 * sent again; a stream's servers take no writes for a moment while they
 * elect a leader (after its copies changed, or a server died). Waits 50 ms
 * and says true while WRITE_RETRY_MS since start_ms have not passed. No
 * event tells a client that a leader was elected. */
static bool write_again(int64_t start_ms)
{
    struct timespec ts = {0, 50 * 1000000L};

    if (mono_ms() - start_ms >= WRITE_RETRY_MS)
        return false;
    nanosleep(&ts, NULL);
    return true;
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
    n->replicas = opts->conf ? opts->conf->replicas : 0;
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

/* ------------------------------------------------------------ replicas
 *
 * Every bucket and stream we create gets nats.replicas copies, or, by
 * default, as many as the cluster allows up to 3: created with 3, then 2,
 * then 1 when the servers refuse (fewer servers, or no cluster at all). A
 * bucket or stream found with fewer copies is raised the same way, and a
 * bucket's TTL set to ours: the servers allow both on a live stream. Best
 * effort: one that cannot be changed is used as it is.
 */

/* candidates writes the replica counts to try, best first; returns how many */
static int candidates(const struct sage__nio *n, int want, int out[3])
{
    if (want <= 0)
        want = n->replicas;
    if (want > 0) {
        out[0] = want;
        return 1;
    }
    out[0] = 3;
    out[1] = 2;
    out[2] = 1;
    return 3;
}

/* adjust raises stream name's copies (and sets its MaxAge to max_age_ns,
 * when >= 0) as described above */
static void adjust(struct sage__nio *n, const char *name, int want, int64_t max_age_ns)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    int cand[3], nc = candidates(n, want, cand);
    bool clustered, explicit_count = nc == 1;

    if (js_GetStreamInfo(&si, n->js, name, NULL, &jerr) != NATS_OK || si->Config == NULL) {
        jsStreamInfo_Destroy(si);
        return;
    }
    clustered = si->Cluster && si->Cluster->Name && si->Cluster->Name[0];
    for (int i = 0; i < nc; i++) {
        jsStreamInfo *upd = NULL;
        int64_t cur = si->Config->Replicas, age = si->Config->MaxAge;
        bool more = cand[i] > cur && clustered && (explicit_count || cur == 1);
        bool fewer = explicit_count && cand[i] < cur;

        if (!more && !fewer && (max_age_ns < 0 || age == max_age_ns))
            break; /* as it should be (or as good as this cluster allows) */
        if (more || fewer)
            si->Config->Replicas = cand[i];
        if (max_age_ns >= 0)
            si->Config->MaxAge = max_age_ns;
        if (js_UpdateStream(&upd, n->js, si->Config, NULL, &jerr) == NATS_OK) {
            jsStreamInfo_Destroy(upd);
            break;
        }
        si->Config->Replicas = cur;
        si->Config->MaxAge = age;
        if (i + 1 == nc && max_age_ns >= 0 && age != max_age_ns) {
            jsStreamInfo *upd2 = NULL; /* the copies cannot change: the TTL still can */

            si->Config->MaxAge = max_age_ns;
            if (js_UpdateStream(&upd2, n->js, si->Config, NULL, &jerr) == NATS_OK)
                jsStreamInfo_Destroy(upd2);
        }
    }
    jsStreamInfo_Destroy(si);
}

sage_err sage__nio_kv_open(struct sage__nio *n, const char *bucket,
                           const struct sage__nio_kv_opts *o, struct sage__nio_kv **kvp)
{
    struct sage__nio_kv *kv = calloc(1, sizeof *kv);
    char why[256] = "";
    natsStatus s;

    if (kv == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    s = js_KeyValue(&kv->kv, n->js, bucket);
    if (s == NATS_NOT_FOUND && o) {
        int cand[3], nc = candidates(n, o->replicas, cand);
        kvConfig cfg;

        kvConfig_Init(&cfg);
        cfg.Bucket = bucket;
        cfg.History = (uint8_t)(o->history > 0 ? o->history : 1);
        cfg.TTL = o->ttl_ms * 1000000; /* nats.c 3.4 wants nanoseconds (the stream's MaxAge) */
        cfg.StorageType = o->memory ? js_MemoryStorage : js_FileStorage;
        for (int i = 0; i < nc; i++) {
            natsStatus got;

            cfg.Replicas = cand[i];
            if ((s = js_CreateKeyValue(&kv->kv, n->js, &cfg)) == NATS_OK)
                break;
            snprintf(why, sizeof why, "%s", last_error(s));
            if ((got = js_KeyValue(&kv->kv, n->js, bucket)) == NATS_OK) {
                s = got; /* created by someone else meanwhile */
                break;
            }
        }
        if (s != NATS_OK) {
            free(kv);
            if (nc == 1)
                return SAGE_SETERR(SAGE_ECONFIG,
                                   "cannot create bucket %s with %d copies (nats.replicas): %s",
                                   bucket, cand[0], why);
            return SAGE_SETERR(SAGE_ESYS, "cannot create bucket %s: %s", bucket, why);
        }
    } else if (s == NATS_OK && o) {
        char stream[160];

        snprintf(stream, sizeof stream, "KV_%s", bucket);
        adjust(n, stream, o->replicas, o->ttl_ms > 0 ? o->ttl_ms * 1000000 : -1);
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

sage_err sage__nio_kv_get_direct(struct sage__nio *n, const char *bucket, const char *key,
                                 void **valp, size_t *lenp)
{
    char stream[160], subject[512];
    jsDirectGetMsgOptions dg;
    jsOptions jo;
    natsMsg *msg = NULL;
    const char *op = NULL;
    natsStatus s;
    size_t len;
    char *copy;

    snprintf(stream, sizeof stream, "KV_%s", bucket);
    snprintf(subject, sizeof subject, "$KV.%s.%s", bucket, key);
    jsDirectGetMsgOptions_Init(&dg);
    dg.LastBySubject = subject;
    jsOptions_Init(&jo);
    jo.Wait = DIRECT_GET_WAIT_MS;
    s = js_DirectGetMsg(&msg, n->js, stream, &jo, &dg);
    if (s == NATS_NOT_FOUND)
        return SAGE_SETERR(SAGE_ENOENT, "key '%s' not found", key);
    if (s == NATS_NO_RESPONDERS) /* no such bucket, or no direct gets on it */
        return SAGE_SETERR(SAGE_ENOTSUP, "%s: no direct answer", bucket);
    if (s != NATS_OK)
        return map(s, key);
    if (natsMsgHeader_Get(msg, "KV-Operation", &op) == NATS_OK && op &&
        (strcmp(op, "DEL") == 0 || strcmp(op, "PURGE") == 0)) {
        natsMsg_Destroy(msg);
        return SAGE_SETERR(SAGE_ENOENT, "key '%s' was deleted", key);
    }
    len = (size_t)natsMsg_GetDataLength(msg);
    if ((copy = malloc(len + 1)) == NULL) {
        natsMsg_Destroy(msg);
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    }
    memcpy(copy, natsMsg_GetData(msg), len);
    copy[len] = '\0';
    natsMsg_Destroy(msg);
    *valp = copy;
    *lenp = len;
    return SAGE_OK;
}

sage_err sage__nio_kv_put(struct sage__nio_kv *kv, const char *key, const void *val, size_t len,
                          uint64_t *revp)
{
    uint64_t rev = 0;
    int64_t t0 = mono_ms();
    natsStatus s;

    do
        s = kvStore_Put(&rev, kv->kv, key, val, (int)len);
    while (s == NATS_NO_RESPONDERS && write_again(t0));

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
    int64_t t0 = mono_ms();
    natsStatus s;

    do
        s = kvStore_Create(&rev, kv->kv, key, val, (int)len);
    while (s == NATS_NO_RESPONDERS && write_again(t0));

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
    int64_t t0 = mono_ms();
    natsStatus s;

    do
        s = kvStore_Update(&nrev, kv->kv, key, val, (int)len, rev);
    while (s == NATS_NO_RESPONDERS && write_again(t0));

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
    int64_t t0 = mono_ms();
    natsStatus s;

    do
        s = kvStore_Delete(kv->kv, key);
    while (s == NATS_NO_RESPONDERS && write_again(t0));

    return s == NATS_NOT_FOUND ? SAGE_OK : map(s, key);
}

sage_err sage__nio_kv_keys(struct sage__nio_kv *kv, void (*fn)(void *arg, const char *key),
                           void *arg)
{
    /* the stream's subjects, from its leader: kvStore_Keys would make a
     * consumer, which a stream with a copy on a dead server places there
     * now and then (and the request times out), long after the death */
    const char *bucket = kvStore_Bucket(kv->kv);
    char stream[160], filter[160];
    size_t plen;
    jsOptions jo;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s;

    snprintf(stream, sizeof stream, "KV_%s", bucket);
    plen = (size_t)snprintf(filter, sizeof filter, "$KV.%s.", bucket);
    snprintf(filter + plen, sizeof filter - plen, ">");
    jsOptions_Init(&jo);
    jo.Wait = KEYS_WAIT_MS;
    jo.Stream.Info.SubjectsFilter = filter;
    s = js_GetStreamInfo(&si, kv->js, stream, &jo, &jerr);
    if (s != NATS_OK)
        return map(s, "keys");
    for (int i = 0; si->State.Subjects && i < si->State.Subjects->Count; i++) {
        const char *subj = si->State.Subjects->List[i].Subject;

        if (subj && strncmp(subj, filter, plen) == 0 && si->State.Subjects->List[i].Msgs > 0)
            fn(arg, subj + plen); /* deleted ones too: their tombstone; a read tells */
    }
    jsStreamInfo_Destroy(si);
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
    for (int64_t t0 = mono_ms(); s == NATS_OK;) {
        s = js_PublishMsg(&pa, kv->js, msg, NULL, &jerr);
        jsPubAck_Destroy(pa);
        pa = NULL;
        if (s != NATS_NO_RESPONDERS || !write_again(t0))
            break;
        s = NATS_OK;
    }
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
    /* a watch is a consumer, which a stream with a copy on a dead server
     * places there now and then: its creation times out; try again */
    for (int t = 0; t < WATCH_TRIES; t++) {
        kvWatchOptions wo;

        kvWatchOptions_Init(&wo);
        wo.Timeout = WATCH_WAIT_MS;
        s = keys ? kvStore_Watch(&w->w, kv->kv, keys, &wo) : kvStore_WatchAll(&w->w, kv->kv, &wo);
        if (s != NATS_TIMEOUT)
            break;
    }
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

sage_err sage__nio_stream_info(struct sage__nio *n, const char *name, int *replicasp, char *leader,
                               size_t cap)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, n->js, name, NULL, &jerr);

    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        jsStreamInfo_Destroy(si);
        return SAGE_SETERR(SAGE_ENOENT, "no stream %s", name);
    }
    if (s != NATS_OK)
        return map(s, name);
    *replicasp = si->Config ? (int)si->Config->Replicas : 0;
    snprintf(leader, cap, "%s",
             si->Cluster && si->Cluster->Leader ? si->Cluster->Leader : "");
    jsStreamInfo_Destroy(si);
    return SAGE_OK;
}

sage_err sage__nio_stream_ensure(struct sage__nio *n, const char *name, const char *subject)
{
    jsStreamConfig cfg;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    const char *subjects[1] = {subject};
    int cand[3], nc = candidates(n, 0, cand);
    natsStatus s = NATS_ERR;

    if (js_GetStreamInfo(&si, n->js, name, NULL, &jerr) == NATS_OK) {
        jsStreamInfo_Destroy(si);
        adjust(n, name, 0, -1);
        return SAGE_OK;
    }
    jsStreamConfig_Init(&cfg);
    cfg.Name = name;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Retention = js_WorkQueuePolicy;
    cfg.Storage = js_FileStorage;
    for (int i = 0; i < nc; i++) {
        si = NULL;
        jerr = 0;
        cfg.Replicas = cand[i];
        s = js_AddStream(&si, n->js, &cfg, NULL, &jerr);
        jsStreamInfo_Destroy(si);
        if (s == NATS_OK || jerr == JSStreamNameExistErr)
            return SAGE_OK;
    }
    return map(s, name);
}

sage_err sage__nio_js_publish(struct sage__nio *n, const char *stream, const char *subject,
                              const char *msg_id, const void *data, size_t len, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;

    for (;;) {
        jsPubOptions po;
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        int64_t left = end - mono_ms();
        natsStatus s;

        jsPubOptions_Init(&po);
        /* a bounded wait per attempt: while the stream elects a leader, a
         * publish that reached a follower is never answered; the same
         * message id makes a resend of a stored one a duplicate the stream
         * drops */
        po.MaxWait = left > PUBLISH_ATTEMPT_MS ? PUBLISH_ATTEMPT_MS : (left > 0 ? left : 1);
        po.MsgId = msg_id;
        s = js_Publish(&pa, n->js, subject, data, (int)len, &po, &jerr);
        jsPubAck_Destroy(pa);
        if (s == NATS_TIMEOUT && msg_id && mono_ms() < end)
            continue;
        if (s != NATS_NO_RESPONDERS)
            return map(s, subject);
        /* nobody took it, so nothing is stored: the stream is gone, or its
         * servers are electing a new leader (seconds after one died). Ask
         * which; wait out an election while the call has time. No event
         * tells a client that a leader was elected: retry every 100 ms. */
        {
            jsOptions jo;
            jsStreamInfo *si = NULL;

            jsOptions_Init(&jo);
            jo.Wait = left > 1000 ? 1000 : (left > 0 ? left : 1);
            jerr = 0;
            s = js_GetStreamInfo(&si, n->js, stream, &jo, &jerr);
            jsStreamInfo_Destroy(si);
            if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
                return SAGE_SETERR(SAGE_EUNAVAILABLE,
                                   "%s: no stream stores it (stream %s does not exist)", subject,
                                   stream);
        }
        if (mono_ms() + 100 >= end)
            return SAGE_SETERR(SAGE_EUNAVAILABLE,
                               "%s: stream %s did not take the call within %d ms (its servers "
                               "have no leader for it)",
                               subject, stream, timeout_ms);
        {
            struct timespec ts = {0, 100 * 1000000L};

            nanosleep(&ts, NULL);
        }
    }
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
