/*
 * place.c - choosing hosts for a deployment's replicas and reserving room
 * on them.
 *
 * Design notes
 * - One replica at a time: pick a host from a snapshot of all records,
 *   reserve on it with a compare-and-set (hostrec_modify re-checks the fit
 *   on the fresh record), and update the snapshot from what was written.
 *   When a reservation no longer fits (another deployer was faster) the
 *   fresh record replaces the snapshot's and the pick starts over; so no
 *   host is ever over-committed and the snapshot is read only once.
 * - Spreading: the host with the fewest replicas of this deployment first,
 *   then the most free CPUs, then the smallest id (deterministic).
 * - All or nothing: when a replica finds no room, every reservation made so
 *   far is released and the caller gets SAGE_EBUSY with what was asked and
 *   what each host has free.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/err_internal.h"
#include "cluster/ops.h"

#define CPU_EPSILON 1e-9

struct place {
    const char *key, *deploy;
    double cpus;
    uint64_t memory;
    json_t *hosts;     /* snapshot: HOST-ID -> record */
    json_t *placement; /* HOST-ID -> count */
    json_t *added;     /* HOST-ID -> count reserved by this pass */
    int64_t now_ms;
};

static void snap(void *arg, const char *key, json_t *o, uint64_t rev)
{
    (void)rev;
    json_object_set(arg, key, o);
}

static bool fits(const struct place *p, const json_t *rec)
{
    return sage__hostrec_free_cpus(rec) + CPU_EPSILON >= p->cpus &&
           (p->memory == 0 || sage__hostrec_free_memory(rec) >= (int64_t)p->memory);
}

/* pick returns the best live host with room, or NULL */
static const char *pick(struct place *p)
{
    const char *id, *best = NULL;
    json_t *rec;
    int64_t best_n = 0;
    double best_free = 0;

    json_object_foreach(p->hosts, id, rec) {
        int64_t n = sage__jint(p->placement, id);
        double free_cpus = sage__hostrec_free_cpus(rec);

        if (!sage__hostrec_alive(rec, p->now_ms) || !fits(p, rec))
            continue;
        if (best == NULL || n < best_n || (n == best_n && free_cpus > best_free + CPU_EPSILON) ||
            (n == best_n && free_cpus > best_free - CPU_EPSILON && strcmp(id, best) < 0)) {
            best = id;
            best_n = n;
            best_free = free_cpus;
        }
    }
    return best;
}

struct reserve {
    struct place *p;
    json_t *fresh; /* the record as written, or as found when it did not fit */
    bool done;
};

static int reserve_fn(void *arg, json_t *rec, bool absent, sage_err *errp)
{
    struct reserve *rs = arg;

    (void)errp;
    json_decref(rs->fresh);
    rs->fresh = NULL;
    rs->done = false;
    if (absent)
        return 0; /* the host left: forget it */
    if (!sage__hostrec_alive(rec, sage__wall_ms()) || !fits(rs->p, rec)) {
        rs->fresh = json_deep_copy(rec);
        return 0;
    }
    sage__hostrec_reserve(rec, rs->p->key, rs->p->deploy, rs->p->cpus, rs->p->memory);
    sage__hostrec_totals(rec);
    rs->fresh = json_deep_copy(rec);
    rs->done = true;
    return 1;
}

static void fmt_bytes(char *buf, size_t cap, int64_t b)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;

    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

/* no_room records the refusal: what was asked, what each host has free */
static sage_err no_room(const struct place *p, uint32_t replicas, uint32_t placed)
{
    char text[1024], mem[32], fmem[32];
    size_t len = 0;
    const char *id;
    json_t *rec;
    int live = 0;

    fmt_bytes(mem, sizeof mem, (int64_t)p->memory);
    json_object_foreach(p->hosts, id, rec) {
        bool alive = sage__hostrec_alive(rec, p->now_ms);

        if (len >= sizeof text - 1)
            break;
        /* what is free without this deployment's own reservations, which
         * are about to be released */
        int64_t mine = sage__jint(p->added, id);

        live += alive;
        fmt_bytes(fmem, sizeof fmem, sage__hostrec_free_memory(rec) + mine * (int64_t)p->memory);
        len += (size_t)snprintf(text + len, sizeof text - len, "%s%s: %s", len ? "; " : "", id,
                                alive ? "" : "down");
        if (alive && len < sizeof text)
            len += (size_t)snprintf(text + len, sizeof text - len, "%g of %g CPUs free, %s free",
                                    sage__hostrec_free_cpus(rec) + (double)mine * p->cpus,
                                    sage__jnum(rec, "cpus"), fmem);
    }
    if (live == 0)
        return SAGE_SETERR(SAGE_EUNAVAILABLE,
                           "cannot place '%s': no host is up (run `sagesvc host` on the nodes)%s%s",
                           p->key, len ? "; known hosts: " : "", text);
    return SAGE_SETERR(SAGE_EBUSY,
                       "cannot place '%s': it asks for %" PRIu32 " replicas of %g CPU%s%s%s each, "
                       "and only %" PRIu32 " fit; free now: %s",
                       p->key, replicas, p->cpus, p->cpus == 1 ? "" : "s",
                       p->memory ? " and " : "", p->memory ? mem : "", placed, text);
}

/* unreserve_fn takes back u->n replicas of a reservation */
struct unreserve {
    const char *key, *deploy;
    uint32_t n;
    double cpus;
    uint64_t memory;
};

static int unreserve_fn(void *arg, json_t *rec, bool absent, sage_err *errp)
{
    struct unreserve *u = arg;

    (void)errp;
    if (absent)
        return 0;
    return sage__hostrec_unreserve(rec, u->key, u->deploy, u->n, u->cpus, u->memory) ? 1 : 0;
}

void sage__place_undo(struct sage__ops *o, const char *key, const char *deploy, double cpus,
                      uint64_t memory, const json_t *added)
{
    const char *host;
    json_t *count;

    /* best effort: a host drops a reservation its spec does not place once
     * it is no longer pending */
    json_object_foreach((json_t *)added, host, count) {
        struct unreserve u = {key, deploy, (uint32_t)json_integer_value(count), cpus, memory};

        sage__hostrec_modify(o->hosts, host, unreserve_fn, &u);
    }
}

sage_err sage__place_more(struct sage__ops *o, const char *key, const char *deploy, double cpus,
                          uint64_t memory, uint32_t n, json_t *placement, json_t *added, bool all)
{
    struct place p;
    struct reserve rs = {&p, NULL, false};
    uint32_t placed = 0;
    sage_err r = SAGE_OK;

    memset(&p, 0, sizeof p);
    p.key = key;
    p.deploy = deploy;
    p.cpus = cpus;
    p.memory = memory;
    p.hosts = json_object();
    p.placement = placement;
    p.added = added;
    if (p.hosts == NULL) {
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        goto out;
    }
    if ((r = sage__kv_each(o->hosts, snap, p.hosts)) != SAGE_OK)
        goto out;
    p.now_ms = sage__wall_ms();
    while (placed < n) {
        const char *id = pick(&p);
        char host[128];

        if (id == NULL) {
            if (all)
                r = no_room(&p, n, placed);
            break;
        }
        snprintf(host, sizeof host, "%s", id);
        if ((r = sage__hostrec_modify(o->hosts, host, reserve_fn, &rs)) != SAGE_OK)
            break;
        if (rs.fresh)
            json_object_set(p.hosts, host, rs.fresh);
        else
            json_object_del(p.hosts, host);
        if (rs.done) {
            json_object_set_new(placement, host, json_integer(sage__jint(placement, host) + 1));
            json_object_set_new(added, host, json_integer(sage__jint(added, host) + 1));
            placed++;
        }
    }
    if (r != SAGE_OK) {
        char detail[1200];

        snprintf(detail, sizeof detail, "%s", sage_errdetail());
        sage__place_undo(o, key, deploy, cpus, memory, added);
        r = SAGE_SETERR(r, "%s", detail);
    }
out:
    json_decref(rs.fresh);
    json_decref(p.hosts);
    return r;
}

sage_err sage__place(struct sage__ops *o, json_t *spec)
{
    json_t *placement = json_object(), *added = json_object();
    char key[160];
    sage_err r;

    if (placement == NULL || added == NULL) {
        json_decref(placement);
        json_decref(added);
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    }
    sage__nats_key(key, sizeof key, sage__jstr(spec, "ns"), sage__jstr(spec, "name"));
    r = sage__place_more(o, key, sage__jstr(spec, "id"), sage__jnum(spec, "cpus"),
                         (uint64_t)sage__jint(spec, "memory"),
                         (uint32_t)sage__jint(spec, "replicas"), placement, added, true);
    if (r == SAGE_OK)
        json_object_set(spec, "placement", placement);
    json_decref(placement);
    json_decref(added);
    return r;
}
