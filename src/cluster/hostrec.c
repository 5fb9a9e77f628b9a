/*
 * hostrec.c - host records in bucket sagesvc_hosts, and the reservations in
 * them.
 *
 * Design notes
 * - A host record has two writers: its host (heartbeat, replicas, every
 *   second) and deployers (reservations). Neither overwrites the other:
 *   both go through sage__hostrec_modify, the read-change-compare-and-set
 *   loop of ops.c (sage__kv_modify) that starts over from a fresh read
 *   whenever the revision moved.
 * - Reservations are kept per service ("NS.NAME" -> {deploy, replicas,
 *   cpus, memory}, totals of all its replicas on the host) and tagged with
 *   the deployment's id, so releasing one is idempotent and never takes
 *   away the reservation of a later deployment of the same name. The
 *   record's reserved_cpus and reserved_memory are their sums, recomputed
 *   at every write.
 */
#include <stdio.h>
#include <string.h>

#include "base/err_internal.h"
#include "cluster/ops.h"

bool sage__hostrec_alive(const json_t *rec, int64_t now_ms)
{
    int64_t hb = sage__jint(rec, "heartbeat");

    return hb > 0 && now_ms - hb <= SAGE__HOST_STALE_MS;
}

struct sage__replica_count sage__replica_count(const json_t *hosts, const char *deploy,
                                               int64_t gen, int64_t now_ms)
{
    struct sage__replica_count n = {0, 0, 0};
    const char *hid;
    json_t *rec;

    json_object_foreach((json_t *)hosts, hid, rec) {
        size_t k;
        json_t *rep;

        if (!sage__hostrec_alive(rec, now_ms))
            continue;
        json_array_foreach(json_object_get(rec, "replicas"), k, rep) {
            const char *st = sage__jstr(rep, "state");
            int64_t rg = sage__jint(rep, "gen");

            if (strcmp(sage__jstr(rep, "deploy"), deploy) != 0)
                continue;
            if (rg < 1)
                rg = 1;
            if (rg >= gen && strcmp(st, "running") == 0)
                n.running++;
            else if (rg >= gen && strcmp(st, "failed") == 0)
                n.failed++;
            else
                n.other++;
        }
    }
    return n;
}

double sage__hostrec_free_cpus(const json_t *rec)
{
    return sage__jnum(rec, "cpus") - sage__jnum(rec, "reserved_cpus");
}

int64_t sage__hostrec_free_memory(const json_t *rec)
{
    return sage__jint(rec, "memory") - sage__jint(rec, "reserved_memory");
}

static json_t *reservations(json_t *rec)
{
    json_t *res = json_object_get(rec, "reservations");

    if (!json_is_object(res)) {
        res = json_object();
        json_object_set_new(rec, "reservations", res);
    }
    return res;
}

void sage__hostrec_totals(json_t *rec)
{
    const char *key;
    json_t *e, *res = reservations(rec);
    double cpus = 0;
    int64_t memory = 0;

    json_object_foreach(res, key, e) {
        cpus += sage__jnum(e, "cpus");
        memory += sage__jint(e, "memory");
    }
    /* sums of binary fractions (0.1 CPU) drift: keep 1e-6 CPU precision */
    cpus = (double)(int64_t)(cpus * 1e6 + 0.5) / 1e6;
    json_object_set_new(rec, "reserved_cpus", json_real(cpus));
    json_object_set_new(rec, "reserved_memory", json_integer(memory));
}

void sage__hostrec_reserve(json_t *rec, const char *key, const char *deploy, double cpus,
                           uint64_t memory)
{
    json_t *res = reservations(rec), *e = json_object_get(res, key);

    if (!json_is_object(e) || strcmp(sage__jstr(e, "deploy"), deploy) != 0) {
        e = json_pack("{s:s, s:i, s:f, s:I}", "deploy", deploy, "replicas", 0, "cpus", 0.0,
                      "memory", (json_int_t)0);
        json_object_set_new(res, key, e);
    }
    json_object_set_new(e, "replicas", json_integer(sage__jint(e, "replicas") + 1));
    json_object_set_new(e, "cpus", json_real(sage__jnum(e, "cpus") + cpus));
    json_object_set_new(e, "memory", json_integer(sage__jint(e, "memory") + (json_int_t)memory));
    json_object_set_new(e, "pending", json_integer(sage__wall_ms()));
}

bool sage__hostrec_unreserve(json_t *rec, const char *key, const char *deploy, uint32_t n,
                             double cpus, uint64_t memory)
{
    json_t *res = reservations(rec), *e = json_object_get(res, key);
    int64_t left;

    if (!json_is_object(e) || strcmp(sage__jstr(e, "deploy"), deploy) != 0 || n == 0)
        return false;
    left = sage__jint(e, "replicas") - (int64_t)n;
    if (left <= 0) {
        json_object_del(res, key);
        return true;
    }
    json_object_set_new(e, "replicas", json_integer(left));
    json_object_set_new(e, "cpus", json_real(cpus * (double)left));
    json_object_set_new(e, "memory", json_integer((json_int_t)(memory * (uint64_t)left)));
    return true;
}

bool sage__hostrec_normalize(json_t *rec, const char *key, const char *host, const json_t *spec,
                             int64_t now_ms)
{
    json_t *res = reservations(rec), *e = json_object_get(res, key);
    uint32_t placed = sage__spec_placed(spec, host);
    double cpus = sage__jnum(spec, "cpus");
    uint64_t memory = (uint64_t)sage__jint(spec, "memory");
    int64_t pending, have;

    if (!json_is_object(e) || strcmp(sage__jstr(e, "deploy"), sage__jstr(spec, "id")) != 0)
        return false;
    pending = sage__jint(e, "pending");
    have = sage__jint(e, "replicas");
    if (have > (int64_t)placed && pending > 0 && now_ms - pending < SAGE__PENDING_MS)
        return false; /* a placer's, not in the spec yet */
    if (placed == 0) {
        json_object_del(res, key);
        return true;
    }
    if (have == (int64_t)placed && pending == 0 &&
        sage__jnum(e, "cpus") == cpus * placed && sage__jint(e, "memory") == (int64_t)(memory * placed))
        return false;
    sage__hostrec_set_reservation(rec, key, sage__jstr(spec, "id"), placed, cpus, memory);
    return true;
}

void sage__hostrec_set_reservation(json_t *rec, const char *key, const char *deploy,
                                   uint32_t replicas, double cpus, uint64_t memory)
{
    json_object_set_new(reservations(rec), key,
                        json_pack("{s:s, s:i, s:f, s:I}", "deploy", deploy, "replicas",
                                  (int)replicas, "cpus", cpus * replicas, "memory",
                                  (json_int_t)(memory * replicas)));
}

bool sage__hostrec_release(json_t *rec, const char *key, const char *deploy)
{
    json_t *res = reservations(rec), *e = json_object_get(res, key);

    if (e == NULL || (deploy && strcmp(sage__jstr(e, "deploy"), deploy) != 0))
        return false;
    json_object_del(res, key);
    return true;
}

/* with_totals: the caller's change, then the reserved totals */
struct totals {
    sage__hostrec_fn fn;
    void *arg;
};

static int with_totals(void *arg, json_t *rec, bool absent, sage_err *errp)
{
    struct totals *t = arg;
    int w = t->fn(t->arg, rec, absent, errp);

    if (w > 0)
        sage__hostrec_totals(rec);
    return w;
}

sage_err sage__hostrec_modify_cached(struct sage__nio_kv *hosts, const char *id,
                                     sage__hostrec_fn fn, void *arg, json_t **cachep,
                                     uint64_t *revp)
{
    struct totals t = {fn, arg};

    return sage__kv_modify(hosts, id, with_totals, &t, cachep, revp);
}

sage_err sage__hostrec_modify(struct sage__nio_kv *hosts, const char *id, sage__hostrec_fn fn,
                              void *arg)
{
    return sage__hostrec_modify_cached(hosts, id, fn, arg, NULL, NULL);
}

struct release {
    const char *key;
    const char *deploy;
};

static int release_fn(void *arg, json_t *rec, bool absent, sage_err *errp)
{
    struct release *rl = arg;

    (void)errp;
    if (absent)
        return 0; /* the host is gone, and its reservations with it */
    return sage__hostrec_release(rec, rl->key, rl->deploy) ? 1 : 0;
}

void sage__hostrec_release_all(struct sage__nio_kv *hosts, const char *key, const char *deploy,
                               const json_t *placement)
{
    struct release rl = {key, deploy};
    const char *host;
    json_t *count;

    /* best effort: a host whose release fails drops the reservation itself
     * when it finds the deployment gone */
    json_object_foreach((json_t *)placement, host, count) {
        (void)count;
        sage__hostrec_modify(hosts, host, release_fn, &rl);
    }
}
