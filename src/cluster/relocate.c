/*
 * relocate.c - replicas lost with their host are placed again, on other
 * hosts with room (as Ray restarts the actors of a dead node).
 *
 * Design notes
 * - When: a host whose heartbeat is older than the deployment's
 *   replace_after (service.cluster, at least 5 s, the time after which a
 *   host counts as down), or that has no record any more, has lost its
 *   replicas of that deployment.
 * - Who: one host acts, the live one with the smallest id, so that two
 *   hosts never place the same lost replicas twice over; and only once its
 *   own record writes have succeeded for replace_after without a break. A
 *   host that cannot write cannot tell a dead host from a bucket it cannot
 *   reach (while a JetStream server is lost, its buckets take no writes for
 *   seconds, and every heartbeat looks old).
 * - The records come from a watch of the bucket (its own thread), not from
 *   requests on the host's thread, which must go on writing its heartbeat
 *   whatever the bucket does; a silence is confirmed by a fresh read of the
 *   silent host's record before anything moves.
 * - How: reserve on live hosts with room (place.c, as many as fit), then
 *   one compare-and-set of the spec moves the lost host's count to them.
 *   If the spec changed meanwhile the reservations are taken back and the
 *   next pass looks again. Replicas that fit nowhere stay placed on the
 *   lost host (they run if it comes back) and the host says so once.
 * - A lost host that comes back finds itself out of the placement: it runs
 *   nothing of the deployment any more and drops its reservation
 *   (hostbeat.c), so no replica runs twice beyond the deployment's count.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err_internal.h"
#include "cluster/host.h"
#include "platform/clock.h"

#define MS 1000000LL
#define CHECK_MS 1000 /* how often the lost hosts are looked for */

static int64_t replace_after_ms(const json_t *spec)
{
    const json_t *v = json_object_get(spec, "replace_after_ms");

    return json_is_integer(v) ? json_integer_value(v) : SAGE__REPLACE_AFTER_MS;
}

/* silent_since: the wall clock host id was last heard of: its heartbeat,
 * or, once its record is gone (a host that stopped removes it), when this
 * host first found it gone */
static int64_t silent_since(struct sage__host *h, const json_t *hosts, const char *id,
                            int64_t wall)
{
    const json_t *rec = json_object_get(hosts, id);
    int64_t t;

    if (rec)
        return sage__jint(rec, "heartbeat");
    if ((t = sage__jint(h->missing, id)) == 0) {
        t = wall;
        json_object_set_new(h->missing, id, json_integer(t));
    }
    return t;
}

/* lost_count counts spec's replicas on hosts silent for its replace_after
 * (moving them from placement to lost, both HOST-ID: count) */
static uint32_t lost_count(struct sage__host *h, const json_t *hosts, json_t *placement,
                           json_t *lost, int64_t wall, int64_t after_ms)
{
    const char *id;
    json_t *count, *tmp;
    uint32_t n = 0;

    json_object_foreach_safe(placement, tmp, id, count) {
        if (wall - silent_since(h, hosts, id, wall) <= after_ms)
            continue;
        n += (uint32_t)json_integer_value(count);
        json_object_set(lost, id, count);
        json_object_del(placement, id);
    }
    return n;
}

/* still_lost re-reads the records of the hosts judged lost (a direct read,
 * not the watch's view): none may have written meanwhile */
static bool still_lost(struct sage__host *h, const json_t *lost, int64_t after_ms)
{
    const char *id;
    json_t *count;

    json_object_foreach((json_t *)lost, id, count) {
        json_t *rec = NULL;
        sage_err r = sage__kv_get_json(h->ops.hosts, id, &rec, NULL);
        bool silent = r == SAGE_ENOENT ||
                      (r == SAGE_OK && sage__wall_ms() - sage__jint(rec, "heartbeat") > after_ms);

        json_decref(rec);
        if (!silent)
            return false;
    }
    return true;
}

/* relocate_one places spec's lost replicas (cache entry e, of key) */
static void relocate_one(struct sage__host *h, const char *key, json_t *e, const json_t *hosts,
                         int64_t wall)
{
    json_t *spec = json_object_get(e, "spec");
    json_t *placement = json_deep_copy(json_object_get(spec, "placement"));
    json_t *lost = json_object(), *added = json_object(), *fresh = NULL, *count;
    const char *deploy = sage__jstr(spec, "id"), *id;
    double cpus = sage__jnum(spec, "cpus");
    uint64_t memory = (uint64_t)sage__jint(spec, "memory");
    char where[512] = "", from[256] = "";
    uint32_t nlost, placed = 0, left;
    sage_err r;

    if (placement == NULL || lost == NULL || added == NULL)
        goto out;
    nlost = lost_count(h, hosts, placement, lost, wall, replace_after_ms(spec));
    if (nlost == 0 || !still_lost(h, lost, replace_after_ms(spec)))
        goto out;
    r = sage__place_more(&h->ops, key, deploy, cpus, memory, nlost, placement, added, false);
    if (r != SAGE_OK) {
        sage__host_log(h, "%s: cannot place its lost replicas again: %s", key, sage_errdetail());
        goto out;
    }
    json_object_foreach(added, id, count) {
        size_t len = strlen(where);

        placed += (uint32_t)json_integer_value(count);
        snprintf(where + len, sizeof where - len, "%s%s (%lld)", len ? ", " : "", id,
                 (long long)json_integer_value(count));
    }
    /* what fits nowhere stays where it was: it runs if its host comes back */
    left = nlost - placed;
    json_object_foreach(lost, id, count) {
        size_t len = strlen(from);
        uint32_t keep = left < (uint32_t)json_integer_value(count)
                            ? left
                            : (uint32_t)json_integer_value(count);

        snprintf(from + len, sizeof from - len, "%s%s", len ? ", " : "", id);
        if (keep > 0)
            json_object_set_new(placement, id, json_integer(keep));
        left -= keep;
    }
    if (placed == 0) {
        if (!json_is_true(json_object_get(e, "noroom")))
            sage__host_log(h, "%s: %u replica%s lost with host %s, and no live host has room "
                              "for them (they stay placed there)",
                           key, nlost, nlost == 1 ? "" : "s", from);
        json_object_set_new(e, "noroom", json_true());
        goto out;
    }
    if ((fresh = json_deep_copy(spec)) == NULL) {
        sage__place_undo(&h->ops, key, deploy, cpus, memory, added);
        goto out;
    }
    json_object_set(fresh, "placement", placement);
    r = sage__kv_put_json(h->ops.deploy, key, fresh, false, (uint64_t)sage__jint(e, "rev"), NULL);
    if (r != SAGE_OK) { /* changed meanwhile: the next pass looks again */
        sage__place_undo(&h->ops, key, deploy, cpus, memory, added);
        goto out;
    }
    sage__host_log(h, "%s: %u replica%s lost with host %s (silent over %.1f s): placed again on "
                      "%s%s",
                   key, placed, placed == 1 ? "" : "s", from, replace_after_ms(spec) / 1e3, where,
                   placed < nlost ? "; no room for the rest" : "");
out:
    json_decref(fresh);
    json_decref(placement);
    json_decref(lost);
    json_decref(added);
}

/* ------------------------------------------------- the view of the hosts */

/* view_thread keeps the watch of the host records alive: a watch is a
 * JetStream consumer, which a stream with a copy on a dead server places
 * there now and then, and then delivers nothing. This host's own record
 * changes every second, so a view silent for 5 s has a broken watch (or a
 * bucket that takes no writes): it starts another, at most every 10 s. On
 * its own thread: the host's thread never waits for the bucket. */
static void *view_thread(void *arg)
{
    struct sage__host *h = arg;
    int64_t restarted = sage__now_ns();
    struct timespec ts;

    pthread_mutex_lock(&h->lock);
    while (!h->view_stop) {
        int64_t now = sage__now_ns() + 1000 * MS;

        ts = (struct timespec){(time_t)(now / 1000000000), (long)(now % 1000000000)};
        pthread_cond_timedwait(&h->view_cond, &h->lock, &ts);
        now = sage__now_ns();
        if (h->view_stop || now - h->hosts_view_at <= 5000 * MS || now - restarted < 10000 * MS)
            continue;
        restarted = now;
        pthread_mutex_unlock(&h->lock);
        sage__nio_kv_unwatch(h->hosts_watch);
        h->hosts_watch = NULL;
        sage__nio_kv_watch(h->ops.hosts, NULL, sage__host_on_hostrec, h, &h->hosts_watch);
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

sage_err sage__host_view_start(struct sage__host *h)
{
    pthread_condattr_t ca;
    sage_err r;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->view_cond, &ca);
    pthread_condattr_destroy(&ca);
    h->view_cond_ready = true;
    h->hosts_view_at = sage__now_ns();
    if ((r = sage__nio_kv_watch(h->ops.hosts, NULL, sage__host_on_hostrec, h, &h->hosts_watch)) !=
        SAGE_OK)
        return r;
    if (pthread_create(&h->view_tid, NULL, view_thread, h) != 0) {
        sage__nio_kv_unwatch(h->hosts_watch);
        h->hosts_watch = NULL;
        return SAGE_SETERR(SAGE_ESYS, "host: cannot start a thread");
    }
    h->view_running = true;
    return SAGE_OK;
}

void sage__host_view_stop(struct sage__host *h)
{
    if (h->view_running) {
        pthread_mutex_lock(&h->lock);
        h->view_stop = true;
        pthread_cond_broadcast(&h->view_cond);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->view_tid, NULL);
        h->view_running = false;
    }
    sage__nio_kv_unwatch(h->hosts_watch);
    h->hosts_watch = NULL;
}

void sage__host_on_hostrec(void *arg, const char *key, const void *val, size_t len, uint64_t rev,
                           bool deleted)
{
    struct sage__host *h = arg;
    json_t *rec = NULL;

    (void)rev;
    if (key == NULL)
        return; /* the initial values are in */
    if (!deleted && (rec = json_loadb(val, len, 0, NULL)) != NULL && !json_is_object(rec)) {
        json_decref(rec);
        rec = NULL;
    }
    pthread_mutex_lock(&h->lock);
    if (rec)
        json_object_set_new(h->hosts_view, key, rec);
    else
        json_object_del(h->hosts_view, key);
    h->hosts_view_at = sage__now_ns();
    pthread_mutex_unlock(&h->lock);
}

void sage__host_relocate(struct sage__host *h)
{
    int64_t now = sage__now_ns(), wall, writable_ms, view_at;
    const char *key, *id, *first = NULL;
    json_t *hosts, *e, *rec;

    if (now < h->next_lost_check_ns)
        return;
    h->next_lost_check_ns = now + CHECK_MS * MS;
    if (h->writable_since_ns == 0)
        return;
    writable_ms = (now - h->writable_since_ns) / MS;
    /* the records as the watch keeps them: no request on this thread, which
     * must keep writing its own heartbeat. A view that stopped changing
     * (our own record changes every second) is no view of the others. */
    pthread_mutex_lock(&h->lock);
    view_at = h->hosts_view_at;
    hosts = json_deep_copy(h->hosts_view);
    pthread_mutex_unlock(&h->lock);
    if (hosts == NULL || now - view_at > 3000 * MS)
        goto out;
    wall = sage__wall_ms();
    json_object_foreach(hosts, id, rec) {
        json_object_del(h->missing, id); /* back, or never gone */
        if (sage__hostrec_alive(rec, wall) && (first == NULL || strcmp(id, first) < 0))
            first = id;
    }
    if (first == NULL || strcmp(first, h->id) != 0)
        goto out; /* another host's job */
    json_object_foreach(h->cache, key, e) {
        json_t *spec = json_object_get(e, "spec");

        if (strcmp(sage__jstr(spec, "status"), "running") != 0 ||
            writable_ms < replace_after_ms(spec))
            continue;
        relocate_one(h, key, e, hosts, wall);
    }
out:
    json_decref(hosts);
}
