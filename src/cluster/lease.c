/*
 * lease.c - sage_cluster_lease: a key in sagesvc_leases (entries expire
 * 15 s after their last write) that its owner rewrites every second.
 *
 * Design notes
 * - Refreshes are compare-and-set on the revision of the last refresh: once
 *   the key expired (the owner was cut off for 15 s) a refresh fails
 *   instead of bringing the lease back to life, because hosts may have
 *   removed the owned replicas already. The lease is then lost for good
 *   (on_lost). A refresh that finds another revision re-reads the key: its
 *   previous refresh was stored though its answer was lost (a server died).
 * - A refresh that fails for another reason (disconnected, or the bucket's
 *   servers electing a leader, which takes seconds after one died) is
 *   retried at the next tick; nats.c reconnects meanwhile. The TTL is well
 *   above such an election, so a lease outlives a server's death.
 * - The refresh thread sleeps on a condition variable, so stop wakes it at
 *   once.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "cluster/ops.h"

struct sage_cluster_lease {
    struct sage__nio *nio;
    struct sage__nio_kv *kv;
    char id[24];
    char value[256];
    uint64_t rev;
    void (*on_lost)(void *arg);
    void *arg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    bool stop;           /* guarded by lock */
    bool stopped;        /* stop has run (owner's thread only) */
    bool lost;
};

/* resync: a refresh found another revision than its last. Only the owner
 * writes its key, so when the key is still there, a refresh whose answer
 * was lost (its server died after storing it) got there: carry on from its
 * revision. Gone (expired): SAGE_ENOENT. */
static sage_err resync(struct sage_cluster_lease *l)
{
    void *val = NULL;
    size_t len = 0;
    uint64_t rev = 0;
    sage_err r = sage__nio_kv_get(l->kv, l->id, &val, &len, &rev);

    if (r == SAGE_OK && (len != strlen(l->value) || memcmp(val, l->value, len) != 0))
        r = SAGE_EBUSY; /* not what we wrote: not ours any more */
    free(val);
    if (r == SAGE_OK)
        l->rev = rev;
    return r;
}

static void *refresher(void *arg)
{
    struct sage_cluster_lease *l = arg;
    struct timespec next;

    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&l->lock);
    while (!l->stop) {
        sage_err r;

        next.tv_nsec += SAGE__LEASE_REFRESH_MS * 1000000L;
        next.tv_sec += next.tv_nsec / 1000000000L;
        next.tv_nsec %= 1000000000L;
        while (!l->stop && pthread_cond_timedwait(&l->cond, &l->lock, &next) == 0)
            ;
        if (l->stop)
            break;
        pthread_mutex_unlock(&l->lock);
        r = sage__nio_kv_update(l->kv, l->id, l->value, strlen(l->value), l->rev, &l->rev);
        if (r == SAGE_EBUSY)
            r = resync(l);
        pthread_mutex_lock(&l->lock);
        if (r == SAGE_EBUSY || r == SAGE_ENOENT) {
            l->lost = true;
            break;
        }
    }
    pthread_mutex_unlock(&l->lock);
    if (l->lost && l->on_lost)
        l->on_lost(l->arg);
    return NULL;
}

sage_err sage_cluster_lease_new(sage_cluster_lease **lp, const sage_nats_conf *nats,
                                void (*on_lost)(void *arg), void *arg)
{
    static const struct sage__nio_kv_opts ko = {.history = 1, .ttl_ms = SAGE__LEASE_TTL_MS};
    struct sage_cluster_lease *l = calloc(1, sizeof *l);
    struct sage__nio_opts no;
    pthread_condattr_t ca;
    char host[128] = "";
    sage_err r;

    if (l == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    l->on_lost = on_lost;
    l->arg = arg;
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    sage__nio_uid(l->id, sizeof l->id);
    gethostname(host, sizeof host - 1);
    snprintf(l->value, sizeof l->value, "{\"pid\":%d,\"hostname\":\"%.100s\",\"created\":%lld}",
             (int)getpid(), host, (long long)sage__wall_ms());
    memset(&no, 0, sizeof no);
    no.conf = nats;
    no.name = "sagesvc lease";
    if ((r = sage__nio_connect(&l->nio, &no)) != SAGE_OK)
        goto fail;
    if ((r = sage__nio_kv_open(l->nio, SAGE__LEASES_BUCKET, &ko, &l->kv)) != SAGE_OK)
        goto fail;
    if ((r = sage__nio_kv_create(l->kv, l->id, l->value, strlen(l->value), &l->rev)) != SAGE_OK)
        goto fail;
    if (pthread_create(&l->thread, NULL, refresher, l) != 0) {
        sage__nio_kv_delete(l->kv, l->id);
        r = SAGE_SETERR(SAGE_ESYS, "cannot start the lease's thread");
        goto fail;
    }
    *lp = l;
    return SAGE_OK;
fail:
    sage__nio_kv_close(l->kv);
    sage__nio_close(l->nio);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    free(l);
    return r;
}

const char *sage_cluster_lease_id(const sage_cluster_lease *l)
{
    return l->id;
}

void sage_cluster_lease_stop(sage_cluster_lease *l)
{
    if (l == NULL || l->stopped)
        return;
    pthread_mutex_lock(&l->lock);
    l->stop = true;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    l->stopped = true;
    if (!l->lost)
        sage__nio_kv_delete(l->kv, l->id);
}

void sage_cluster_lease_free(sage_cluster_lease *l)
{
    if (l == NULL)
        return;
    sage_cluster_lease_stop(l);
    sage__nio_kv_close(l->kv);
    sage__nio_close(l->nio);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
    free(l);
}
