/*
 * hostbeat.c - the host's own record: written every second (the
 * heartbeat) and whenever a replica changes state, through the
 * compare-and-set loop of hostrec.c; and giving a service up.
 *
 * Design notes
 * - Invariant: a reservation exists only while its deployment's spec does
 *   (deployers write the spec first, then reserve). So the host drops any
 *   reservation whose spec is gone or belongs to another deployment id;
 *   the cache may lag, so absence is confirmed in the bucket first.
 * - A host that finds its record gone (or restarts) reserves again for the
 *   replicas placed on it, even beyond what it offers: they were placed.
 * - A reservation follows its spec's placement on this host (the spec may
 *   have moved replicas elsewhere while this host was down, or changed
 *   their count), except for a while after a placer made it: its spec may
 *   not say so yet (sage__hostrec_normalize).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "cluster/host.h"
#include "platform/clock.h"

/* ------------------------------------------------------------- the record */

static json_t *replicas_json(struct sage__host *h)
{
    json_t *a = json_array();

    for (struct sage__group *g = h->groups; a && g; g = g->next)
        for (size_t i = 0; i < g->nslots; i++) {
            struct sage__slot *s = &g->slots[i];

            if (s->state == SAGE__SLOT_DONE)
                continue;
            json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:i, s:s, s:i, s:s, s:I, s:I}",
                                               "ns", g->ns, "service", g->name, "deploy",
                                               g->deploy, "pid", (int)s->child.pid, "state",
                                               sage__slot_state_name(s->state), "restarts",
                                               (int)s->restarts, "id", s->id, "gen",
                                               (json_int_t)s->gen, "seen",
                                               (json_int_t)s->seen_ms));
        }
    return a;
}

/* keep_reservation: may the reservation of key by deploy stay? */
static bool keep_reservation(struct sage__host *h, const char *key, const char *deploy)
{
    struct sage__group *g = sage__host_find_group(h, key, deploy);
    json_t *e = json_object_get(h->cache, key), *spec = NULL;
    bool keep;
    sage_err r;

    if (g && g->want > 0)
        return true;
    if (e && strcmp(sage__jstr(json_object_get(e, "spec"), "id"), deploy) == 0)
        return true;
    /* the cache may lag: ask the bucket before letting go */
    r = sage__kv_get_json(h->ops.deploy, key, &spec, NULL);
    if (r != SAGE_OK)
        return r != SAGE_ENOENT && r != SAGE_EPROTO; /* unsure: keep */
    keep = strcmp(sage__jstr(spec, "id"), deploy) == 0 &&
           !sage__spec_abandoned(spec, sage__wall_ms());
    json_decref(spec);
    return keep;
}

static int record_fn(void *arg, json_t *rec, bool absent, sage_err *errp)
{
    struct sage__host *h = arg;
    json_t *res = json_object_get(rec, "reservations"), *e, *copy;
    const char *key;

    (void)errp;
    h->released[0] = '\0'; /* this attempt's; logged once written */
    json_object_set_new(rec, "id", json_string(h->id));
    json_object_set_new(rec, "hostname", json_string(h->hostname));
    json_object_set_new(rec, "pid", json_integer(getpid()));
    json_object_set_new(rec, "cpus", json_real(h->cpus));
    json_object_set_new(rec, "memory", json_integer((json_int_t)h->memory));
    json_object_set_new(rec, "heartbeat", json_integer(sage__wall_ms()));
    json_object_set_new(rec, "replicas", replicas_json(h));
    copy = json_is_object(res) ? json_copy(res) : NULL; /* iterate a copy: we delete */
    json_object_foreach(copy, key, e) {
        json_t *spec = json_object_get(json_object_get(h->cache, key), "spec");

        if (!keep_reservation(h, key, sage__jstr(e, "deploy"))) {
            size_t len = strlen(h->released);

            sage__hostrec_release(rec, key, sage__jstr(e, "deploy"));
            snprintf(h->released + len, sizeof h->released - len, "%s%s", len ? ", " : "", key);
        } else if (spec && strcmp(sage__jstr(spec, "status"), "running") == 0) {
            /* what the spec places here now: it may have moved replicas
             * elsewhere (this host was down) or changed their count */
            sage__hostrec_normalize(rec, key, h->id, spec, sage__wall_ms());
        }
    }
    json_decref(copy);
    for (struct sage__group *g = h->groups; g; g = g->next) {
        json_t *cur = json_object_get(json_object_get(rec, "reservations"), g->key);

        if (g->want == 0 || !(g->need_reservation || absent))
            continue;
        if (!json_is_object(cur) || strcmp(sage__jstr(cur, "deploy"), g->deploy) != 0)
            sage__hostrec_set_reservation(rec, g->key, g->deploy, g->want, g->cpus, g->memory);
    }
    return 1;
}

sage_err sage__host_write_record(struct sage__host *h)
{
    sage_err r = sage__hostrec_modify_cached(h->ops.hosts, h->id, record_fn, h, &h->last,
                                             &h->last_rev);

    h->dirty = false; /* on failure too: the next heartbeat tries again */
    if (r != SAGE_OK)
        h->writable_since_ns = 0; /* relocate.c judges no host while we cannot write */
    else if (h->writable_since_ns == 0)
        h->writable_since_ns = sage__now_ns();
    if (r != SAGE_OK) {
        if (!h->record_failing) /* once per outage, not every second */
            sage__host_log(h, "cannot write the host record (retrying every second): %s",
                           sage_errdetail());
        h->record_failing = true;
        return r;
    }
    if (h->record_failing)
        sage__host_log(h, "host record written again");
    h->record_failing = false;
    if (h->released[0])
        sage__host_log(h, "released the reservations of %s (deployment gone)", h->released);
    for (struct sage__group *g = h->groups; g; g = g->next)
        g->need_reservation = false;
    return SAGE_OK;
}

/* ------------------------------------------------------------ giving up */

struct census {
    const char *deploy;
    int live;
    int64_t now_ms;
};

static void count_live(void *arg, const char *key, json_t *rec, uint64_t rev)
{
    struct census *c = arg;
    size_t i;
    json_t *rep;

    (void)key;
    (void)rev;
    if (!sage__hostrec_alive(rec, c->now_ms))
        return;
    json_array_foreach(json_object_get(rec, "replicas"), i, rep) {
        const char *st = sage__jstr(rep, "state");

        if (strcmp(sage__jstr(rep, "deploy"), c->deploy) == 0 &&
            (strcmp(st, "starting") == 0 || strcmp(st, "running") == 0 ||
             strcmp(st, "unhealthy") == 0 || strcmp(st, "backoff") == 0))
            c->live++;
    }
}

void sage__host_gave_up(struct sage__host *h, struct sage__group *g, const char *reason)
{
    struct census c = {g->deploy, 0, sage__wall_ms()};
    sage_err r;

    /* our record first, so that two hosts giving up at once each see the
     * other's failed replica: at least one of them marks the service */
    sage__host_write_record(h);
    if (sage__kv_each(h->ops.hosts, count_live, &c) != SAGE_OK) {
        sage__host_log(h, "%s: cannot read the host records: %s", g->key, sage_errdetail());
        return;
    }
    if (c.live > 0) {
        sage__host_log(h, "%s: %d other replica%s still live: the service stays up", g->key,
                       c.live, c.live == 1 ? "" : "s");
        return;
    }
    r = sage__spec_mark_failed(&h->ops, g->key, g->deploy, reason);
    if (r == SAGE_OK)
        sage__host_log(h, "%s: marked failed: callers now get EUNAVAILABLE", g->key);
    else
        sage__host_log(h, "%s: cannot mark it failed: %s", g->key, sage_errdetail());
    g->runnable = false;
}

