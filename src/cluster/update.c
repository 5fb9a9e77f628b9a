/*
 * update.c - changing a deployment in place: its replica count (deploying
 * a changed file, or sage_cluster_scale) and its configuration, without
 * taking the service down.
 *
 * Design notes
 * - More replicas: room is reserved on live hosts first (place.c), then
 *   the spec's placement grows with one compare-and-set. Fewer: the spec
 *   loses replicas from the hosts that are down first, then from those
 *   with the most, and those hosts stop their newest replicas (the ones
 *   not serving yet first) and drop the reservations.
 * - A new configuration - anything a replica would see differently: its
 *   code, service.local, middleware, its config map, the call section -
 *   bumps the spec's generation; each host then replaces its replicas of
 *   older generations one at a time, starting a new one beside them and
 *   stopping an old one once the new one serves (supervise.c), so the
 *   service keeps at least as many replicas serving as it had. The count,
 *   max_restarts, probes and replace_after change without a replacement.
 * - Resources (CPU, memory) and delivery cannot change in place: the
 *   reservations and the service's subjects depend on them.
 * - A compare-and-set that loses (a host moved replicas meanwhile) takes
 *   back what it reserved and starts over from the spec as it is now.
 * - An update is not undone when its replicas fail to start: the old ones
 *   keep serving, and the error says so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "cluster/ops.h"
#include "sage/value.h"
#include "transport/names.h"

#define TRIES 5

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* index_of finds service name's index in c */
static size_t index_of(const sage_config *c, const char *name)
{
    for (size_t i = 0; i < sage_config_nservices(c); i++)
        if (strcmp(sage_config_service(c, i)->name, name) == 0)
            return i;
    return (size_t)-1;
}

/* same_service: would a replica of name serve the same under both
 * configurations? (what a replica reads: its service entry, with the
 * global sections folded in, its config map, the call section) */
static bool same_service(const json_t *a_spec, const json_t *b_spec, const char *name)
{
    const json_t *ya = json_object_get(a_spec, "config_yaml");
    const json_t *yb = json_object_get(b_spec, "config_yaml");
    sage_config *a = NULL, *b = NULL;
    sage_arena *arena = NULL;
    bool same = false;

    if (!json_is_string(ya) || !json_is_string(yb))
        return false;
    if (json_string_length(ya) == json_string_length(yb) &&
        memcmp(json_string_value(ya), json_string_value(yb), json_string_length(ya)) == 0 &&
        strcmp(sage__jstr(a_spec, "config_path"), sage__jstr(b_spec, "config_path")) == 0)
        return true; /* the very same file */
    if (strcmp(sage__jstr(a_spec, "config_path"), sage__jstr(b_spec, "config_path")) != 0)
        return false; /* relative plugin paths are found beside it */
    if (sage_config_parse(&a, json_string_value(ya), json_string_length(ya), NULL) == SAGE_OK &&
        sage_config_parse(&b, json_string_value(yb), json_string_length(yb), NULL) == SAGE_OK &&
        sage_arena_new(&arena, 0) == SAGE_OK) {
        size_t ia = index_of(a, name), ib = index_of(b, name);
        const sage_service_conf *sa = sage_config_service(a, ia), *sb = sage_config_service(b, ib);
        const sage_call_conf *ca = sage_config_call(a), *cb = sage_config_call(b);
        sage_value pa, pb;

        same = sa && sb && same_str(sa->plugin, sb->plugin) && same_str(sa->python, sb->python) &&
               same_str(sa->transport, sb->transport) &&
               sa->local.max_workers == sb->local.max_workers &&
               sa->local.queue_timeout_ms == sb->local.queue_timeout_ms &&
               sa->local.request_queue_size == sb->local.request_queue_size &&
               sa->nmiddleware == sb->nmiddleware && ca->timeout_ms == cb->timeout_ms &&
               ca->retries == cb->retries && ca->retry_backoff_ms == cb->retry_backoff_ms &&
               ca->idle_close_ms == cb->idle_close_ms;
        for (size_t i = 0; same && i < sa->nmiddleware; i++)
            same = strcmp(sa->middleware[i], sb->middleware[i]) == 0;
        if (same)
            same = sage_config_service_params(&pa, a, ia, arena) == SAGE_OK &&
                   sage_config_service_params(&pb, b, ib, arena) == SAGE_OK &&
                   sage_value_equal(&pa, &pb);
    }
    sage_arena_free(arena);
    sage_config_free(a);
    sage_config_free(b);
    return same;
}

/* shrink takes n replicas out of placement (hosts that are down first,
 * then those with the most) */
static void shrink(struct sage__ops *o, json_t *placement, uint32_t n)
{
    json_t *hosts = json_object();
    int64_t now = sage__wall_ms();

    if (hosts) {
        const char *id;
        json_t *count;

        json_object_foreach(placement, id, count) {
            json_t *rec = NULL;

            if (sage__kv_get_json(o->hosts, id, &rec, NULL) == SAGE_OK)
                json_object_set_new(hosts, id, rec);
        }
    }
    while (n > 0) {
        const char *id, *best = NULL;
        json_t *count;
        int64_t best_n = 0;
        bool best_down = false;

        json_object_foreach(placement, id, count) {
            int64_t c = json_integer_value(count);
            bool down = !sage__hostrec_alive(json_object_get(hosts, id), now);

            if (c <= 0)
                continue;
            if (best == NULL || (down && !best_down) ||
                (down == best_down && (c > best_n || (c == best_n && strcmp(id, best) > 0)))) {
                best = id;
                best_n = c;
                best_down = down;
            }
        }
        if (best == NULL)
            break;
        if (best_n > 1)
            json_object_set_new(placement, best, json_integer(best_n - 1));
        else
            json_object_del(placement, best);
        n--;
    }
    json_decref(hosts);
}

/* fixed: what cannot change in place; SAGE_ECONFIG naming it */
static sage_err fixed(const json_t *old, const json_t *want)
{
    const char *name = sage__jstr(old, "name");

    if (sage__jnum(old, "cpus") != sage__jnum(want, "cpus") ||
        sage__jint(old, "memory") != sage__jint(want, "memory"))
        return SAGE_SETERR(SAGE_ECONFIG,
                           "service '%s' is deployed with resources {CPU: %g, memory: %lld}; "
                           "resources cannot change in place: undeploy it and deploy again",
                           name, sage__jnum(old, "cpus"), (long long)sage__jint(old, "memory"));
    if (json_is_true(json_object_get(old, "durable")) !=
        json_is_true(json_object_get(want, "durable")))
        return SAGE_SETERR(SAGE_ECONFIG,
                           "service '%s' is deployed with delivery %s; delivery cannot change in "
                           "place: undeploy it and deploy again",
                           name, json_is_true(json_object_get(old, "durable")) ? "durable"
                                                                              : "at_most_once");
    return SAGE_OK;
}

static const char *const in_place[] = {"config_yaml",      "config_path",       "max_restarts",
                                       "replace_after_ms", "probe_interval_ms", "probe_timeout_ms",
                                       "lifetime",         "owner",             "code"};

sage_err sage__update_spec(struct sage__ops *o, const char *key, const json_t *want,
                           json_t **nextp, bool *changedp)
{
    sage_err r = SAGE_OK;

    *changedp = false;
    for (int attempt = 0; attempt < TRIES; attempt++) {
        json_t *old = NULL, *next = NULL, *placement, *added = json_object();
        uint32_t have, n = (uint32_t)sage__jint(want, "replicas");
        uint64_t rev = 0;
        bool changed = false, newconf, lost_race = false;

        if ((r = sage__kv_get_json(o->deploy, key, &old, &rev)) != SAGE_OK) {
            json_decref(added);
            if (r == SAGE_ENOENT)
                r = SAGE_SETERR(SAGE_ENOSERVICE, "'%s' is not deployed (undeployed meanwhile?)",
                                key);
            return r;
        }
        if ((r = fixed(old, want)) != SAGE_OK || (next = json_deep_copy(old)) == NULL ||
            added == NULL) {
            if (r == SAGE_OK)
                r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
            goto next_try;
        }
        if (strcmp(sage__jstr(old, "status"), "running") != 0) {
            r = SAGE_SETERR(SAGE_ESTATE, "deployment of '%s' is %s: it cannot change now%s%s", key,
                            sage__jstr(old, "status"), sage__jstr(old, "reason")[0] ? ": " : "",
                            sage__jstr(old, "reason"));
            goto next_try;
        }
        newconf = !same_service(old, want, sage__jstr(old, "name"));
        for (size_t i = 0; i < sizeof in_place / sizeof in_place[0]; i++) {
            json_t *v = json_object_get(want, in_place[i]);

            if (v && !json_equal(v, json_object_get(old, in_place[i]))) {
                json_object_set(next, in_place[i], v);
                changed = true;
            }
        }
        if (newconf) {
            json_object_set_new(next, "generation",
                                json_integer(sage__jint(old, "generation") > 0
                                                 ? sage__jint(old, "generation") + 1
                                                 : 2));
            changed = true;
        }
        have = (uint32_t)sage__jint(old, "replicas");
        placement = json_object_get(next, "placement");
        if (!json_is_object(placement)) {
            placement = json_object();
            json_object_set_new(next, "placement", placement);
        }
        if (n > have) {
            r = sage__place_more(o, key, sage__jstr(old, "id"), sage__jnum(old, "cpus"),
                                 (uint64_t)sage__jint(old, "memory"), n - have, placement, added,
                                 true);
            if (r != SAGE_OK)
                goto next_try;
        } else if (n < have) {
            shrink(o, placement, have - n);
        }
        if (n != have) {
            json_object_set_new(next, "replicas", json_integer(n));
            changed = true;
        }
        json_object_set_new(next, "reason", json_string(""));
        if (!changed) {
            *nextp = next;
            next = NULL;
            r = SAGE_OK;
        } else if ((r = sage__kv_put_json(o->deploy, key, next, false, rev, NULL)) == SAGE_OK) {
            /* the hosts that lose replicas drop their reservations at their
             * next record write (hostbeat.c): no one else takes them off */
            *changedp = true;
            *nextp = next;
            next = NULL;
        } else {
            sage__place_undo(o, key, sage__jstr(old, "id"), sage__jnum(old, "cpus"),
                             (uint64_t)sage__jint(old, "memory"), added);
            lost_race = r == SAGE_EBUSY;
        }
    next_try:
        json_decref(old);
        json_decref(next);
        json_decref(added);
        if (!lost_race)
            return r;
        /* someone changed the spec meanwhile: look again */
    }
    return SAGE_SETERR(SAGE_EBUSY, "deployment '%s' kept changing under %d attempts", key, TRIES);
}

/* ---------------------------------------------------------------- waiting */

struct settled {
    const json_t *specs; /* {"id", "name", "replicas", "generation"} each */
    char why[512];
};

/* replicas_settled: every spec has its count of replicas running its
 * generation (or a newer one), and nothing else of it is listed */
static int replicas_settled(void *arg, const json_t *hosts, int64_t now_ms, sage_err *errp)
{
    struct settled *w = arg;
    size_t i;
    json_t *spec;

    json_array_foreach(w->specs, i, spec) {
        int64_t want = sage__jint(spec, "replicas"), gen = sage__jint(spec, "generation");
        struct sage__replica_count n;

        if (gen < 1)
            gen = 1;
        n = sage__replica_count(hosts, sage__jstr(spec, "id"), gen, now_ms);
        if (n.failed > 0 && n.other == 0 && n.running < want) {
            *errp = SAGE_SETERR(SAGE_EUNAVAILABLE,
                                "service '%s': %lld of its %lld replicas of generation %lld failed "
                                "to start (see the hosts' logs)",
                                sage__jstr(spec, "name"), (long long)n.failed, (long long)want,
                                (long long)gen);
            return -1;
        }
        if (n.running != want || n.other > 0) {
            snprintf(w->why, sizeof w->why,
                     "service '%s': %lld of %lld replicas of generation %lld running, %lld others "
                     "listed",
                     sage__jstr(spec, "name"), (long long)n.running, (long long)want,
                     (long long)gen, (long long)n.other);
            return 0;
        }
    }
    return 1;
}

sage_err sage__await_settled(struct sage__ops *o, const json_t *specs, int64_t wait_ms)
{
    struct settled w = {specs, ""};
    sage_err r = sage__await_kv(o->hosts, NULL, replicas_settled, &w, wait_ms);

    if (r == SAGE_ETIMEDOUT)
        return SAGE_SETERR(r, "replicas not all running after %lld ms (%s)", (long long)wait_ms,
                           w.why);
    return r;
}

/* ------------------------------------------------------------------ scale */

sage_err sage_cluster_scale(const sage_nats_conf *nats, const char *ns, const char *name,
                            uint32_t replicas, int64_t wait_ms)
{
    struct sage__ops o;
    json_t *want = NULL, *next = NULL, *list = NULL;
    char key[160];
    bool changed = false;
    sage_err r;

    if ((r = sage__check_name(ns, "namespace", 0)) != SAGE_OK ||
        (r = sage__check_name(name, "service", 0)) != SAGE_OK)
        return r;
    if (replicas < 1 || replicas > 1000)
        return SAGE_SETERR(SAGE_EINVAL, "scale: %u replicas asked for: 1..1000 allowed", replicas);
    if ((r = sage__ops_open(&o, nats, "sagesvc scale", NULL, NULL)) != SAGE_OK)
        return r;
    sage__nats_key(key, sizeof key, ns, name);
    r = sage__kv_get_json(o.deploy, key, &want, NULL);
    if (r == SAGE_ENOENT)
        r = SAGE_SETERR(SAGE_ENOSERVICE, "service '%s' is not deployed in namespace '%s'", name,
                        ns);
    if (r == SAGE_OK) {
        json_object_set_new(want, "replicas", json_integer(replicas));
        r = sage__update_spec(&o, key, want, &next, &changed);
    }
    if (r == SAGE_OK && wait_ms > 0 && (list = json_array()) != NULL) {
        json_array_append(list, next);
        r = sage__await_settled(&o, list, wait_ms);
    }
    json_decref(list);
    json_decref(next);
    json_decref(want);
    sage__ops_close(&o);
    return r;
}
