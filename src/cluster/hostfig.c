/*
 * hostfig.c - sage_cluster_host_figures: the figures of one host's
 * replicas, for the metrics endpoint of `sagesvc host --metrics`.
 *
 * Design notes
 * - The host's record lists its replicas with their instance ids; each is
 *   asked $SRV.STATS.NAME.ID at once, with the reply subject INBOX.INDEX,
 *   and the answers are collected until every one came or the wait ended:
 *   a hung replica costs the wait, not a timeout per replica.
 * - STATS carries what sage_status needs (nats_srv.c): counts, state,
 *   latency histograms in exporter form, overall and per method.
 * - Answers arrive on the subscription's thread and are parsed there into
 *   their slot, under a lock; fn runs on the caller's thread, after.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "cluster/ops.h"
#include "sage/task.h"
#include "platform/clock.h"

struct asked {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    size_t n, answered;
    sage_status *st;     /* per replica */
    bool *got;
};

static sage_state state_of(const char *name)
{
    static const sage_state all[] = {SAGE_STATE_CREATED,  SAGE_STATE_STARTING,
                                     SAGE_STATE_RUNNING,  SAGE_STATE_DEGRADED,
                                     SAGE_STATE_STOPPING, SAGE_STATE_STOPPED,
                                     SAGE_STATE_FAILED};

    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(sage_state_name(all[i]), name) == 0)
            return all[i];
    return SAGE_STATE_FAILED;
}

static void latency_of(const json_t *o, sage_latency *l)
{
    const json_t *le = json_object_get(o, "le");

    l->count = (uint64_t)sage__jint(o, "count");
    l->sum_s = sage__jnum(o, "sum_s");
    for (size_t b = 0; b < SAGE_LATENCY_BUCKETS; b++)
        l->le[b] = (uint64_t)json_integer_value(json_array_get(le, b));
}

static double since(const char *iso)
{
    struct tm tm;
    const char *rest;
    double frac = 0;
    struct timespec now;

    memset(&tm, 0, sizeof tm);
    if ((rest = strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
        return 0;
    if (*rest == '.')
        frac = strtod(rest, NULL);
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)(now.tv_sec - timegm(&tm)) + now.tv_nsec / 1e9 - frac;
}

/* parse fills st from a STATS answer; false if it is not one */
static bool parse(const char *data, size_t len, sage_status *st)
{
    json_t *o = json_loadb(data, len, 0, NULL), *ep, *d, *md, *m;
    const char *name;
    bool ok = json_is_object(o);

    if (ok) {
        md = json_object_get(o, "metadata");
        ep = json_array_get(json_object_get(o, "endpoints"), 0);
        d = json_object_get(ep, "data");
        memset(st, 0, sizeof *st);
        snprintf(st->name, sizeof st->name, "%s", sage__jstr(o, "name"));
        snprintf(st->ns, sizeof st->ns, "%s", sage__jstr(md, "sagesvc.namespace"));
        st->transport = SAGE_TRANSPORT_NATS;
        st->state = state_of(sage__jstr(d, "state"));
        st->pid = atoi(sage__jstr(md, "sagesvc.pid"));
        st->owner_alive = true;
        st->uptime_s = since(sage__jstr(o, "started"));
        st->requests = (uint64_t)sage__jint(ep, "num_requests");
        st->errors = (uint64_t)sage__jint(ep, "num_errors");
        st->in_flight = (uint64_t)sage__jint(d, "in_flight");
        st->expired = (uint64_t)sage__jint(d, "expired");
        st->malformed = (uint64_t)sage__jint(d, "malformed");
        st->rejected = (uint64_t)sage__jint(d, "rejected");
        st->max_workers = (uint32_t)sage__jint(d, "max_workers");
        st->request_queue_size = (uint32_t)sage__jint(d, "request_queue_size");
        snprintf(st->reason, sizeof st->reason, "%s", sage__jstr(d, "reason"));
        latency_of(json_object_get(d, "latency"), &st->latency);
        json_object_foreach(json_object_get(d, "methods"), name, m) {
            sage_method_status *ms;

            if (st->nmethods == SAGE_STATUS_METHODS_MAX)
                break;
            ms = &st->methods[st->nmethods++];
            snprintf(ms->name, sizeof ms->name, "%s", name);
            ms->requests = (uint64_t)sage__jint(m, "requests");
            ms->errors = (uint64_t)sage__jint(m, "errors");
            ms->latency_p50_us = sage__jnum(m, "p50_us");
            ms->latency_p99_us = sage__jnum(m, "p99_us");
            latency_of(json_object_get(m, "latency"), &ms->latency);
        }
        ok = st->name[0] != '\0';
    }
    json_decref(o);
    return ok;
}

/* on_answer runs on the subscription's thread */
static void on_answer(void *arg, struct sage__nio_msg *m)
{
    struct asked *a = arg;
    const char *dot = strrchr(sage__nio_msg_subject(m), '.');
    size_t i = dot ? strtoul(dot + 1, NULL, 10) : (size_t)-1, len;
    const char *data = sage__nio_msg_data(m, &len);
    sage_status *st = malloc(sizeof *st);

    if (st == NULL || i >= a->n || !parse(data, len, st)) {
        free(st);
        return;
    }
    pthread_mutex_lock(&a->lock);
    if (!a->got[i]) {
        a->st[i] = *st;
        a->got[i] = true;
        a->answered++;
        pthread_cond_broadcast(&a->cond);
    }
    pthread_mutex_unlock(&a->lock);
    free(st);
}

struct mine {
    char hostname[256];
    json_t *rec;
};

static void find_mine(void *arg, const char *key, json_t *rec, uint64_t rev)
{
    struct mine *m = arg;

    (void)key;
    (void)rev;
    if (m->rec == NULL && sage__jint(rec, "pid") == getpid() &&
        strcmp(sage__jstr(rec, "hostname"), m->hostname) == 0)
        m->rec = json_incref(rec);
}

sage_err sage_cluster_host_figures(const sage_nats_conf *nats, const char *host_id, int64_t wait_ms,
                                   sage_cluster_figures_fn fn, void *arg)
{
    struct sage__nio_opts no = {nats, "sagesvc host figures", NULL, NULL};
    struct sage__nio *n = NULL;
    struct sage__nio_kv *kv = NULL;
    struct sage__nio_sub *sub = NULL;
    struct asked a;
    struct mine mine = {"", NULL};
    pthread_condattr_t ca;
    json_t *reps, *rep;
    char inbox[128], subject[256], reply[160];
    size_t i;
    sage_err r;

    if (fn == NULL || wait_ms < 0)
        return SAGE_SETERR(SAGE_EINVAL, "sage_cluster_host_figures: invalid argument");
    memset(&a, 0, sizeof a);
    pthread_mutex_init(&a.lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a.cond, &ca);
    pthread_condattr_destroy(&ca);
    if ((r = sage__nio_connect(&n, &no)) != SAGE_OK)
        goto out;
    if ((r = sage__nio_kv_open(n, SAGE__HOSTS_BUCKET, NULL, &kv)) != SAGE_OK) {
        if (r == SAGE_ENOENT)
            r = SAGE_SETERR(SAGE_ENOENT, "no host has ever run (no bucket %s)",
                            SAGE__HOSTS_BUCKET);
        goto out;
    }
    if (host_id) {
        r = sage__kv_get_json(kv, host_id, &mine.rec, NULL);
        if (r == SAGE_ENOENT)
            r = SAGE_SETERR(SAGE_ENOENT, "no host '%s'", host_id);
    } else {
        gethostname(mine.hostname, sizeof mine.hostname - 1);
        r = sage__kv_each(kv, find_mine, &mine);
        if (r == SAGE_OK && mine.rec == NULL)
            r = SAGE_SETERR(SAGE_ENOENT, "this process (pid %d) runs no host", (int)getpid());
    }
    if (r != SAGE_OK)
        goto out;
    reps = json_object_get(mine.rec, "replicas");
    a.n = json_is_array(reps) ? json_array_size(reps) : 0;
    a.st = calloc(a.n ? a.n : 1, sizeof *a.st);
    a.got = calloc(a.n ? a.n : 1, sizeof *a.got);
    if (a.st == NULL || a.got == NULL) {
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        goto out;
    }
    if ((r = sage__nio_inbox(n, inbox, sizeof inbox)) != SAGE_OK)
        goto out;
    snprintf(subject, sizeof subject, "%s.*", inbox);
    if ((r = sage__nio_subscribe(n, subject, NULL, on_answer, &a, &sub)) != SAGE_OK)
        goto out;
    json_array_foreach(reps, i, rep) {
        const char *id = sage__jstr(rep, "id");

        if (id[0] == '\0' || sage__jint(rep, "pid") <= 0)
            continue; /* no process, or it has not said who it is */
        snprintf(subject, sizeof subject, "$SRV.STATS.%s.%s", sage__jstr(rep, "service"), id);
        snprintf(reply, sizeof reply, "%s.%zu", inbox, i);
        sage__nio_publish(n, subject, reply, "", 0, NULL, 0);
    }
    {
        int64_t end = sage__after_ms(sage__now_ns(), wait_ms);
        struct timespec ts = {(time_t)(end / 1000000000), (long)(end % 1000000000)};
        size_t asked = 0;

        json_array_foreach(reps, i, rep)
            asked += sage__jstr(rep, "id")[0] && sage__jint(rep, "pid") > 0;
        pthread_mutex_lock(&a.lock);
        while (a.answered < asked && pthread_cond_timedwait(&a.cond, &a.lock, &ts) == 0)
            ;
        pthread_mutex_unlock(&a.lock);
    }
    sage__nio_unsubscribe(sub); /* no answer is taken after this */
    sub = NULL;
    json_array_foreach(reps, i, rep) {
        sage_cluster_replica_info ri;

        memset(&ri, 0, sizeof ri);
        ri.ns = sage__jstr(rep, "ns");
        ri.service = sage__jstr(rep, "service");
        ri.deploy = sage__jstr(rep, "deploy");
        ri.pid = (int32_t)sage__jint(rep, "pid");
        ri.state = sage__jstr(rep, "state");
        ri.restarts = (uint32_t)sage__jint(rep, "restarts");
        ri.id = sage__jstr(rep, "id");
        ri.generation = (uint64_t)sage__jint(rep, "gen");
        ri.seen_ms = sage__jint(rep, "seen");
        fn(arg, sage__jstr(mine.rec, "id"), &ri, a.got[i] ? &a.st[i] : NULL);
    }
out:
    sage__nio_unsubscribe(sub);
    sage__nio_kv_close(kv);
    sage__nio_close(n);
    json_decref(mine.rec);
    free(a.st);
    free(a.got);
    pthread_cond_destroy(&a.cond);
    pthread_mutex_destroy(&a.lock);
    return r;
}
