/*
 * hostspecs.c - what a host should run: the deployment specs it watches,
 * the owner leases it checks, and the groups of replicas it derives.
 *
 * Design notes
 * - The watch callback runs on the watch's thread: it only queues the
 *   change (under h->lock) and pokes the eventfd; the host's thread applies
 *   queued changes to its cache (a JSON object "NS.NAME" -> {"spec", "rev"})
 *   in revision order, and rereads the whole bucket after a reconnect and
 *   every 5 s in case a change was missed (a watch whose consumer was lost
 *   while the JetStream cluster changed leaders, say).
 * - The cache decides what to run; before a deployment is deleted (its
 *   owner's lease lapsed, or its deployer left it half placed) it is
 *   deleted with a compare-and-delete on the revision the host saw, so a
 *   redeployment of the name is never hit. Whichever host notices first
 *   does it, once a second.
 * - A removed deployment's service record (and durable stream) goes with
 *   its last replica on this host, unless a new deployment of the name
 *   exists by then.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "cluster/host.h"
#include "platform/clock.h"

#define MS 1000000LL

/* ------------------------------------------------------------ the watch */

void sage__host_on_watch(void *arg, const char *key, const void *val, size_t len, uint64_t rev,
                         bool deleted)
{
    struct sage__host *h = arg;
    struct sage__change *c;

    if (key == NULL)
        return; /* end of the initial values: nothing to do */
    c = calloc(1, sizeof *c);
    if (c == NULL || (c->key = strdup(key)) == NULL) {
        free(c);
        pthread_mutex_lock(&h->lock);
        h->resync = true; /* lost a change: reread everything */
        pthread_mutex_unlock(&h->lock);
        sage__host_wake(h);
        return;
    }
    c->rev = rev;
    if (!deleted) {
        c->spec = json_loadb(val, len, 0, NULL);
        if (!json_is_object(c->spec)) { /* not ours: treat as absent */
            json_decref(c->spec);
            c->spec = NULL;
        }
    }
    pthread_mutex_lock(&h->lock);
    *h->tail = c;
    h->tail = &c->next;
    pthread_mutex_unlock(&h->lock);
    sage__host_wake(h);
}

void sage__host_on_event(void *arg, enum sage__nio_event ev, const char *url)
{
    struct sage__host *h = arg;

    (void)url;
    if (ev != SAGE__NIO_RECONNECTED)
        return;
    pthread_mutex_lock(&h->lock);
    h->resync = true;
    h->probe_grace = true; /* probes unanswered meanwhile say nothing of replicas */
    pthread_mutex_unlock(&h->lock);
    sage__host_wake(h);
}

static void cache_set(struct sage__host *h, const char *key, json_t *spec, uint64_t rev)
{
    json_t *e = json_object_get(h->cache, key);

    if (e && (uint64_t)sage__jint(e, "rev") > rev)
        return; /* older than what we have */
    if (spec)
        json_object_set_new(h->cache, key, json_pack("{s:O, s:I}", "spec", spec, "rev",
                                                     (json_int_t)rev));
    else
        json_object_del(h->cache, key);
    h->cache_changed = true;
}

static void resync_one(void *arg, const char *key, json_t *o, uint64_t rev)
{
    json_t *fresh = arg;

    json_object_set_new(fresh, key, json_pack("{s:O, s:I}", "spec", o, "rev", (json_int_t)rev));
}

/* applies queued watch changes (and a full reread when due) */
void sage__host_take_changes(struct sage__host *h)
{
    struct sage__change *list, *c;
    bool resync;
    uint64_t n;

    if (read(h->wake_fd, &n, sizeof n) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&h->lock);
    list = h->changes;
    h->changes = NULL;
    h->tail = &h->changes;
    resync = h->resync;
    h->resync = false;
    pthread_mutex_unlock(&h->lock);
    if (resync || sage__now_ns() >= h->next_resync_ns) {
        json_t *fresh = json_object();

        if (fresh && sage__kv_each(h->ops.deploy, resync_one, fresh) == SAGE_OK) {
            json_decref(h->cache);
            h->cache = fresh;
            h->cache_changed = true;
        } else {
            json_decref(fresh);
        }
        h->next_resync_ns = sage__now_ns() + SAGE__RESYNC_MS * MS;
    }
    while ((c = list) != NULL) {
        list = c->next;
        cache_set(h, c->key, c->spec, c->rev);
        json_decref(c->spec);
        free(c->key);
        free(c);
    }
}

struct sage__group *sage__host_find_group(struct sage__host *h, const char *key,
                                          const char *deploy)
{
    for (struct sage__group *g = h->groups; g; g = g->next)
        if (strcmp(g->key, key) == 0 && (deploy == NULL || strcmp(g->deploy, deploy) == 0))
            return g;
    return NULL;
}

/* ------------------------------------------------------------- reconcile */

struct lease_seen {
    char id[64];
    bool alive;
};

/* lease_alive reads an owner's lease once per pass (cached in seen[]) */
static bool lease_alive(struct sage__host *h, const char *id, struct lease_seen *seen, size_t *n,
                        size_t cap)
{
    void *val = NULL;
    size_t len;
    sage_err r;

    for (size_t i = 0; i < *n; i++)
        if (strcmp(seen[i].id, id) == 0)
            return seen[i].alive;
    r = sage__nio_kv_get(h->ops.leases, id, &val, &len, NULL);
    free(val);
    if (*n < cap) {
        snprintf(seen[*n].id, sizeof seen[*n].id, "%s", id);
        seen[(*n)++].alive = r != SAGE_ENOENT; /* unsure counts as alive */
    }
    return r != SAGE_ENOENT;
}

/* drop_dead deletes deployments whose owner lease lapsed or whose deployer
 * died while placing them */
static void drop_dead(struct sage__host *h, int64_t now_ms)
{
    struct lease_seen seen[32];
    size_t nseen = 0;
    const char *key;
    json_t *e, *tmp;

    json_object_foreach_safe(h->cache, tmp, key, e) {
        json_t *spec = json_object_get(e, "spec");
        const char *owner = sage__jstr(spec, "owner");
        const char *why = NULL;
        sage_err r;

        if (owner[0] && !lease_alive(h, owner, seen, &nseen, 32))
            why = "its owner's lease lapsed";
        else if (sage__spec_abandoned(spec, now_ms))
            why = "its deployer left it half placed";
        if (why == NULL)
            continue;
        r = sage__nio_kv_delete_rev(h->ops.deploy, key, (uint64_t)sage__jint(e, "rev"));
        if (r == SAGE_OK) {
            sage__host_log(h, "%s: removed: %s", key, why);
            json_object_del(h->cache, key);
        } /* EBUSY: changed since; the watch brings the news, the next pass retries */
    }
}

/* settings takes what a deployment may change in place: its generation
 * (the configuration's version: a new one replaces the replicas, rolling),
 * max_restarts and the probes */
static void settings(struct sage__host *h, struct sage__group *g, const json_t *spec)
{
    int64_t gen = sage__jint(spec, "generation");
    const json_t *v;

    if (gen < 1)
        gen = 1;
    if ((uint64_t)gen > g->gen && g->gen > 0) {
        sage__host_log(h, "%s: generation %lld: a new configuration; replacing the replicas",
                       g->key, (long long)gen);
        for (size_t i = 0; i < g->nslots; i++) /* a new configuration, a new chance */
            if (g->slots[i].state == SAGE__SLOT_FAILED)
                g->slots[i].state = SAGE__SLOT_DONE;
    }
    g->gen = (uint64_t)gen;
    g->max_restarts = (uint32_t)sage__jint(spec, "max_restarts");
    v = json_object_get(spec, "probe_interval_ms");
    g->probe_interval_ms = json_is_integer(v) ? json_integer_value(v) : SAGE__PROBE_INTERVAL_MS;
    v = json_object_get(spec, "probe_timeout_ms");
    g->probe_timeout_ms = json_is_integer(v) ? json_integer_value(v) : SAGE__PROBE_TIMEOUT_MS;
}

static struct sage__group *new_group(struct sage__host *h, const char *key, const json_t *spec)
{
    struct sage__group *g = calloc(1, sizeof *g);

    if (g == NULL)
        return NULL;
    snprintf(g->key, sizeof g->key, "%s", key);
    snprintf(g->ns, sizeof g->ns, "%s", sage__jstr(spec, "ns"));
    snprintf(g->name, sizeof g->name, "%s", sage__jstr(spec, "name"));
    snprintf(g->deploy, sizeof g->deploy, "%s", sage__jstr(spec, "id"));
    g->max_restarts = (uint32_t)sage__jint(spec, "max_restarts");
    g->cpus = sage__jnum(spec, "cpus");
    g->memory = (uint64_t)sage__jint(spec, "memory");
    g->durable = json_is_true(json_object_get(spec, "durable"));
    g->python = strcmp(sage__jstr(spec, "code"), "python") == 0;
    g->need_reservation = true;
    g->next = h->groups;
    h->groups = g;
    sage__host_log(h, "%s: deployment %s places %u replica%s here", key, g->deploy,
                   sage__spec_placed(spec, h->id), sage__spec_placed(spec, h->id) == 1 ? "" : "s");
    return g;
}

void sage__host_reconcile(struct sage__host *h)
{
    int64_t now_ms = sage__wall_ms();
    const char *key;
    json_t *e;

    drop_dead(h, now_ms);
    for (struct sage__group *g = h->groups; g; g = g->next) {
        json_t *spec = json_object_get(json_object_get(h->cache, g->key), "spec");

        if (spec == NULL || strcmp(sage__jstr(spec, "id"), g->deploy) != 0) {
            g->want = 0; /* undeployed, or replaced by a new deployment */
            g->runnable = false;
            g->gone = spec == NULL;
        }
    }
    json_object_foreach(h->cache, key, e) {
        json_t *spec = json_object_get(e, "spec");
        const char *status = sage__jstr(spec, "status");
        uint32_t want = sage__spec_placed(spec, h->id);
        struct sage__group *g = sage__host_find_group(h, key, sage__jstr(spec, "id"));

        if (strcmp(status, "placing") == 0)
            continue;
        if (g == NULL && want > 0 && strcmp(status, "running") == 0)
            g = new_group(h, key, spec);
        if (g == NULL)
            continue;
        g->want = want;
        g->runnable = strcmp(status, "running") == 0;
        g->gone = false;
        settings(h, g, spec);
    }
    for (struct sage__group *g = h->groups; g; g = g->next)
        sage__group_apply(h, g);
}

/* frees groups with nothing left; a removed deployment's service record
 * (and stream) goes with its last replica here */
void sage__host_reap_groups(struct sage__host *h)
{
    for (struct sage__group **gp = &h->groups; *gp;) {
        struct sage__group *g = *gp;
        bool empty = g->want == 0;

        for (size_t i = 0; empty && i < g->nslots; i++)
            empty = g->slots[i].state == SAGE__SLOT_DONE;
        if (!empty) {
            gp = &g->next;
            continue;
        }
        if (g->gone && json_object_get(h->cache, g->key) == NULL)
            sage__service_remove(&h->ops, g->ns, g->name, g->durable);
        sage__host_log(h, "%s: all replicas of deployment %s stopped", g->key, g->deploy);
        *gp = g->next;
        free(g->slots);
        free(g);
        h->dirty = true;
    }
}

