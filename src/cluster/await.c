/*
 * await.c - waiting until the host records say something (replicas run,
 * replicas are gone), without polling: a watch of sagesvc_hosts keeps a
 * copy of every record, and the predicate is evaluated after each change
 * (and once a second, since "alive" depends on the clock).
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "base/err_internal.h"
#include "cluster/ops.h"

struct await {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    json_t *hosts;
    bool initial; /* every record present at the start was delivered */
    uint64_t changes;
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
        json_object_set_new(a->hosts, key, rec);
    else
        json_object_del(a->hosts, key);
    a->changes++;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

sage_err sage__await_hosts(struct sage__ops *o, sage__hosts_pred pred, void *arg, int timeout_ms)
{
    struct await a;
    struct sage__nio_watch *w = NULL;
    pthread_condattr_t ca;
    struct timespec end, now;
    sage_err r = SAGE_OK, err = SAGE_OK;

    memset(&a, 0, sizeof a);
    pthread_mutex_init(&a.lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a.cond, &ca);
    pthread_condattr_destroy(&ca);
    if ((a.hosts = json_object()) == NULL) {
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        goto out;
    }
    if ((r = sage__nio_kv_watch(o->hosts, NULL, on_change, &a, &w)) != SAGE_OK)
        goto out;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += timeout_ms / 1000;
    end.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&a.lock);
    for (;;) {
        struct timespec tick;
        int v;

        if (a.initial) {
            v = pred(arg, a.hosts, sage__wall_ms(), &err);
            if (v != 0) {
                r = v > 0 ? SAGE_OK : err;
                break;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec)) {
            r = SAGE_SETERR(SAGE_ETIMEDOUT, "not done within %d ms", timeout_ms);
            break;
        }
        tick = now;
        tick.tv_sec += 1; /* re-evaluate at least every second: liveness ages */
        if (tick.tv_sec > end.tv_sec || (tick.tv_sec == end.tv_sec && tick.tv_nsec > end.tv_nsec))
            tick = end;
        pthread_cond_timedwait(&a.cond, &a.lock, &tick);
    }
    pthread_mutex_unlock(&a.lock);
out:
    sage__nio_kv_unwatch(w);
    json_decref(a.hosts);
    pthread_cond_destroy(&a.cond);
    pthread_mutex_destroy(&a.lock);
    return r;
}
