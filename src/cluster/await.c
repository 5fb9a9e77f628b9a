/*
 * await.c - waiting until a bucket's records say something (replicas run,
 * replicas are gone, a spec says why it failed), without polling: a watch
 * of the bucket keeps a copy of every record, and the predicate is
 * evaluated after each change (and once a second, since "alive" depends on
 * the clock). A watch is a JetStream consumer, which a stream with a copy
 * on a dead server sometimes places there: one that cannot start, or does
 * not deliver the current records within 2 s, is replaced by a read of the
 * bucket every second.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "base/err_internal.h"
#include "cluster/ops.h"
#include "platform/clock.h"

#define WATCH_GRACE_NS 2000000000LL /* a watch's first values come within this */

struct await {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    json_t *records;
    bool initial; /* every record present at the start was delivered */
};

static void on_change(void *arg, const char *key, const void *val, size_t len, uint64_t rev,
                      bool deleted)
{
    struct await *a = arg;
    json_t *rec = NULL;

    (void)rev;
    if (key && !deleted) {
        rec = json_loadb(val, len, 0, NULL);
        if (!json_is_object(rec)) {
            json_decref(rec);
            rec = NULL;
        }
    }
    pthread_mutex_lock(&a->lock);
    if (key == NULL)
        a->initial = true;
    else if (rec)
        json_object_set_new(a->records, key, rec);
    else
        json_object_del(a->records, key);
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

/* read_one keeps a record read from the bucket if its key matches keys (a
 * subject pattern of tokens and '*', or NULL for all) */
struct filter {
    const char *keys;
    json_t *into;
};

static bool matches(const char *pattern, const char *key)
{
    while (pattern && *pattern) {
        const char *pe = strchr(pattern, '.'), *ke = strchr(key, '.');
        size_t pl = pe ? (size_t)(pe - pattern) : strlen(pattern);
        size_t kl = ke ? (size_t)(ke - key) : strlen(key);

        if (!(pl == 1 && pattern[0] == '*') && !(pl == 1 && pattern[0] == '>') &&
            (pl != kl || strncmp(pattern, key, pl) != 0))
            return false;
        if (pl == 1 && pattern[0] == '>')
            return true;
        if ((pe == NULL) != (ke == NULL))
            return false;
        if (pe == NULL)
            return true;
        pattern = pe + 1;
        key = ke + 1;
    }
    return true;
}

static void read_one(void *arg, const char *key, json_t *o, uint64_t rev)
{
    struct filter *fl = arg;

    (void)rev;
    if (matches(fl->keys, key))
        json_object_set(fl->into, key, o);
}

static struct timespec monotonic_ts(int64_t ns)
{
    return (struct timespec){(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
}

sage_err sage__await_kv(struct sage__nio_kv *kv, const char *keys, sage__await_pred pred, void *arg,
                        int64_t timeout_ms)
{
    struct await a;
    struct sage__nio_watch *w = NULL;
    pthread_condattr_t ca;
    int64_t start = sage__now_ns(), end = sage__after_ms(start, timeout_ms);
    sage_err r = SAGE_OK, err = SAGE_OK;
    bool read_now = false;

    memset(&a, 0, sizeof a);
    pthread_mutex_init(&a.lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a.cond, &ca);
    pthread_condattr_destroy(&ca);
    if ((a.records = json_object()) == NULL) {
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        goto out;
    }
    if (sage__nio_kv_watch(kv, keys, on_change, &a, &w) != SAGE_OK)
        w = NULL; /* read the bucket every tick instead (below) */
    pthread_mutex_lock(&a.lock);
    for (;;) {
        int64_t now;
        struct timespec tick;

        if (!a.initial && (w == NULL || sage__now_ns() - start > WATCH_GRACE_NS)) {
            /* no watch, or one that does not deliver (its consumer placed
             * on a dead server): read the records themselves */
            json_t *fresh = json_object();
            struct filter fl = {keys, fresh};

            pthread_mutex_unlock(&a.lock);
            r = fresh ? sage__kv_each(kv, read_one, &fl) : SAGE_ENOMEM;
            pthread_mutex_lock(&a.lock);
            if (r == SAGE_OK && !a.initial) {
                json_decref(a.records);
                a.records = fresh;
                fresh = NULL;
                read_now = true;
            }
            json_decref(fresh);
        }
        if (a.initial || read_now) {
            int v = pred(arg, a.records, sage__wall_ms(), &err);

            read_now = false;
            if (v != 0) {
                r = v > 0 ? SAGE_OK : err;
                break;
            }
        }
        now = sage__now_ns();
        if (now >= end) {
            r = SAGE_SETERR(SAGE_ETIMEDOUT, "not done within %lld ms", (long long)timeout_ms);
            break;
        }
        /* re-evaluate at least every second: liveness ages */
        tick = monotonic_ts(now + 1000000000 < end ? now + 1000000000 : end);
        pthread_cond_timedwait(&a.cond, &a.lock, &tick);
    }
    pthread_mutex_unlock(&a.lock);
out:
    sage__nio_kv_unwatch(w);
    json_decref(a.records);
    pthread_cond_destroy(&a.cond);
    pthread_mutex_destroy(&a.lock);
    return r;
}
