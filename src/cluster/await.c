/*
 * await.c - waiting until a bucket's records say something (replicas run,
 * replicas are gone, a spec says why it failed), without polling: a watch
 * of the bucket keeps a copy of every record, and the predicate is
 * evaluated after each change (and once a second, since "alive" depends on
 * the clock).
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "base/err_internal.h"
#include "cluster/ops.h"
#include "platform/clock.h"

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

static struct timespec monotonic_ts(int64_t ns)
{
    return (struct timespec){(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
}

sage_err sage__await_kv(struct sage__nio_kv *kv, const char *keys, sage__await_pred pred,
                        void *arg, int timeout_ms)
{
    struct await a;
    struct sage__nio_watch *w = NULL;
    pthread_condattr_t ca;
    int64_t end = sage__now_ns() + (int64_t)timeout_ms * 1000000;
    sage_err r = SAGE_OK, err = SAGE_OK;

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
    if ((r = sage__nio_kv_watch(kv, keys, on_change, &a, &w)) != SAGE_OK)
        goto out;
    pthread_mutex_lock(&a.lock);
    for (;;) {
        int64_t now;
        struct timespec tick;

        if (a.initial) {
            int v = pred(arg, a.records, sage__wall_ms(), &err);

            if (v != 0) {
                r = v > 0 ? SAGE_OK : err;
                break;
            }
        }
        now = sage__now_ns();
        if (now >= end) {
            r = SAGE_SETERR(SAGE_ETIMEDOUT, "not done within %d ms", timeout_ms);
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
