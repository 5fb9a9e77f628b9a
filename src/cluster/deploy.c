/*
 * deploy.c - sage_cluster_deploy: specs written, replicas placed, and
 * (optionally) waited for.
 *
 * Design notes
 * - Per service: create the spec (status "placing"; create fails if the
 *   name is deployed already), reserve room on hosts (place.c), then set the
 *   placement and status "running" with a compare-and-set. The spec exists
 *   before any reservation for it, which lets hosts drop reservations whose
 *   spec is gone without racing a deployer.
 * - Hosts start replicas only for "running" specs, so a half-placed
 *   deployment never runs anything.
 * - All or nothing: a failure removes every service this call deployed
 *   (undeploy.c's path, replicas and service records included).
 * - A service deployed already is changed in place (update.c) when this
 *   deployer may: its count, its configuration (rolled out replica by
 *   replica), its settings. Such a change is not undone on a failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "cluster/ops.h"
#include "transport/names.h"

void sage_cluster_deploy_opts_init(sage_cluster_deploy_opts *o)
{
    memset(o, 0, sizeof *o);
    o->wait_ms = 30000;
}

static json_t *make_spec(const sage_cluster_deploy_opts *o, const sage_service_conf *sc,
                         const char *ns)
{
    const sage_cluster_conf *c = &sc->cluster;
    char id[24];
    json_t *yaml = json_stringn(o->config_text, o->config_len);

    if (yaml == NULL)
        return NULL;
    sage__nio_uid(id, sizeof id);
    return json_pack("{s:s, s:s, s:s, s:o, s:s, s:i, s:f, s:I, s:s, s:s, s:i, s:b, s:{}, s:s, "
                     "s:s, s:I, s:s, s:I, s:I, s:I, s:I}",
                     "ns", ns, "name", sc->name, "id", id, "config_yaml", yaml, "config_path",
                     o->config_path ? o->config_path : "", "replicas", (int)c->replicas, "cpus",
                     c->cpus, "memory", (json_int_t)c->memory, "lifetime",
                     c->detached ? "detached" : "owned", "owner",
                     c->detached ? "" : sage_cluster_lease_id(o->lease), "max_restarts",
                     (int)c->max_restarts, "durable", c->durable, "placement", "status",
                     "placing", "reason", "", "created", (json_int_t)sage__wall_ms(), "code",
                     sc->python ? "python" : "c", "generation", (json_int_t)1,
                     "replace_after_ms", (json_int_t)c->replace_after_ms, "probe_interval_ms",
                     (json_int_t)c->probe_interval_ms, "probe_timeout_ms",
                     (json_int_t)c->probe_timeout_ms);
}

/* stale_spec: an existing spec that hosts are about to remove anyway (its
 * lease lapsed, or it was abandoned half placed) may be taken over */
static bool stale_spec(struct sage__ops *ops, const json_t *spec)
{
    const char *owner = sage__jstr(spec, "owner");
    void *val = NULL;
    size_t len;

    if (sage__spec_abandoned(spec, sage__wall_ms()))
        return true;
    if (owner[0] && sage__nio_kv_get(ops->leases, owner, &val, &len, NULL) == SAGE_ENOENT)
        return true;
    free(val);
    return false;
}

/* create_spec writes spec under key unless a live deployment has it:
 * then SAGE_EEXIST, with that deployment in *livep (the caller's) */
static sage_err create_spec(struct sage__ops *ops, const char *key, const json_t *spec,
                            uint64_t *revp, json_t **livep)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        json_t *old = NULL;
        uint64_t rev = 0;
        sage_err r = sage__kv_put_json(ops->deploy, key, spec, true, 0, revp);

        if (r != SAGE_EEXIST)
            return r;
        if ((r = sage__kv_get_json(ops->deploy, key, &old, &rev)) != SAGE_OK) {
            if (r == SAGE_ENOENT || r == SAGE_EPROTO)
                continue; /* gone meanwhile (or garbage we may not delete): try again */
            return r;
        }
        if (!stale_spec(ops, old) && strcmp(sage__jstr(old, "status"), "failed") != 0) {
            *livep = old;
            return SAGE_EEXIST;
        }
        /* its owner is gone, or it failed: finish the hosts' job and take
         * the name */
        sage__undeploy_spec(ops, key, old, rev, 0);
        json_decref(old);
    }
    return SAGE_SETERR(SAGE_EBUSY, "deployment '%s' kept changing", key);
}

/* updatable: may this deployer change the live deployment old in place?
 * A detached one, yes; an owned one only if it owns it (another deployer
 * holding it would remove it when it stops). */
static sage_err updatable(const json_t *old, const sage_cluster_deploy_opts *o)
{
    const char *owner = sage__jstr(old, "owner");

    if (owner[0] == '\0' || (o->lease && strcmp(owner, sage_cluster_lease_id(o->lease)) == 0))
        return SAGE_OK;
    return SAGE_SETERR(SAGE_EEXIST,
                       "service '%s' is already deployed in namespace '%s', owned by another "
                       "deployer (deployment %s, lease %s): stop that one, or undeploy it first",
                       sage__jstr(old, "name"), sage__jstr(old, "ns"), sage__jstr(old, "id"),
                       owner);
}

static sage_err deploy_one(struct sage__ops *ops, const sage_cluster_deploy_opts *o,
                           const sage_service_conf *sc, const char *ns, json_t *done,
                           json_t *updated)
{
    char key[160];
    json_t *spec = make_spec(o, sc, ns), *live = NULL, *next = NULL;
    uint64_t rev = 0;
    bool changed = false;
    sage_err r;

    if (spec == NULL)
        return SAGE_SETERR(SAGE_ECONFIG, "%s: the configuration is not valid UTF-8",
                           o->config_path ? o->config_path : "configuration");
    sage__nats_key(key, sizeof key, ns, sc->name);
    r = create_spec(ops, key, spec, &rev, &live);
    if (r == SAGE_EEXIST) { /* deployed already: change it in place */
        if ((r = updatable(live, o)) == SAGE_OK &&
            (r = sage__update_spec(ops, key, spec, &next, &changed)) == SAGE_OK) {
            json_object_set_new(next, "changed", json_boolean(changed));
            json_array_append(updated, next);
        }
        goto out;
    }
    if (r != SAGE_OK)
        goto out;
    if ((r = sage__place(ops, spec)) != SAGE_OK) {
        char detail[1200];

        snprintf(detail, sizeof detail, "%s", sage_errdetail());
        sage__nio_kv_delete_rev(ops->deploy, key, rev);
        r = SAGE_SETERR(r, "%s", detail);
        goto out;
    }
    json_object_set_new(spec, "status", json_string("running"));
    r = sage__kv_put_json(ops->deploy, key, spec, false, rev, &rev);
    if (r != SAGE_OK) {
        char why[512];

        /* a host judged it dead meanwhile (its lease lapsed?) */
        snprintf(why, sizeof why, "%s", sage_errdetail());
        r = SAGE_SETERR(r, "deployment of '%s' was changed by someone else while placing: %s",
                        key, why);
        sage__hostrec_release_all(ops->hosts, key, sage__jstr(spec, "id"),
                                  json_object_get(spec, "placement"));
        goto out;
    }
    json_object_set_new(spec, "rev", json_integer((json_int_t)rev));
    json_array_append(done, spec);
out:
    json_decref(live);
    json_decref(next);
    json_decref(spec);
    return r;
}

/* ------------------------------------------------------------- waiting */

struct running {
    json_t *specs; /* deployed this call */
    char why[512];
};

static int all_running(void *arg, const json_t *hosts, int64_t now_ms, sage_err *errp)
{
    struct running *w = arg;
    size_t i;
    json_t *spec;

    json_array_foreach(w->specs, i, spec) {
        int64_t want = sage__jint(spec, "replicas");
        struct sage__replica_count n = sage__replica_count(hosts, sage__jstr(spec, "id"), 0, now_ms);

        if (n.failed > 0 && n.failed + n.running >= want && n.running == 0) {
            *errp = SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s' failed while starting",
                                sage__jstr(spec, "name"));
            return -1;
        }
        if (n.running < want) {
            snprintf(w->why, sizeof w->why, "service '%s': %lld of %lld replicas running",
                     sage__jstr(spec, "name"), (long long)n.running, (long long)want);
            return 0;
        }
    }
    return 1;
}

/* has_reason: a spec deployed by this call says why it failed (w->why) */
static int has_reason(void *arg, const json_t *specs, int64_t now_ms, sage_err *errp)
{
    struct running *w = arg;
    size_t i;
    json_t *spec;

    (void)now_ms;
    (void)errp;
    json_array_foreach(w->specs, i, spec) {
        char key[160];
        const json_t *cur;

        sage__nats_key(key, sizeof key, sage__jstr(spec, "ns"), sage__jstr(spec, "name"));
        cur = json_object_get(specs, key);
        if (sage__jstr(cur, "reason")[0]) {
            snprintf(w->why, sizeof w->why, "service '%s': %s", sage__jstr(spec, "name"),
                     sage__jstr(cur, "reason"));
            return 1;
        }
    }
    return 0;
}

static sage_err await_running(struct sage__ops *ops, json_t *specs, const char *ns, int64_t wait_ms)
{
    struct running w = {specs, ""};
    char keys[80];
    sage_err r = sage__await_kv(ops->hosts, NULL, all_running, &w, wait_ms);

    if (r == SAGE_ETIMEDOUT)
        return SAGE_SETERR(r, "replicas not all running after %lld ms (%s)", (long long)wait_ms,
                           w.why);
    if (r == SAGE_EUNAVAILABLE) {
        /* the host marks the spec failed, with the reason, a few round
         * trips after its record says so: watch the specs for it (a loaded
         * host may take more than a second; this wait ends when it comes) */
        snprintf(keys, sizeof keys, "%s.*", ns);
        if (sage__await_kv(ops->deploy, keys, has_reason, &w, 3000) == SAGE_OK)
            return SAGE_SETERR(r, "%s", w.why);
        return SAGE_SETERR(r, "a service's replicas failed while starting (see the host's log)");
    }
    return r;
}

/* ----------------------------------------------------------- selecting */

static sage_err select_services(const sage_cluster_deploy_opts *o, const sage_config *cfg,
                                const sage_service_conf ***listp, size_t *np)
{
    size_t n = o->services ? o->nservices : sage_config_nservices(cfg), k = 0;
    const sage_service_conf **list = calloc(n ? n : 1, sizeof *list);
    const char *file = o->config_path ? o->config_path : "configuration";

    if (list == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const sage_service_conf *sc;

        if (o->services) {
            sc = sage_config_find(cfg, o->services[i]);
            if (sc == NULL) {
                free(list);
                return SAGE_SETERR(SAGE_ECONFIG, "%s lists no service '%s'", file,
                                   o->services[i]);
            }
            if (strcmp(sc->transport, "nats") != 0) {
                free(list);
                return SAGE_SETERR(SAGE_ECONFIG,
                                   "%s:%d: service '%s' has transport %s: only transport nats "
                                   "services can be deployed to the cluster",
                                   file, sc->line, sc->name, sc->transport);
            }
        } else {
            sc = sage_config_service(cfg, i);
            if (strcmp(sc->transport, "nats") != 0)
                continue;
        }
        if (!sc->cluster.detached && o->lease == NULL) {
            free(list);
            return SAGE_SETERR(SAGE_EINVAL,
                               "service '%s' has lifetime owned: deploying it needs a lease "
                               "(sage_cluster_lease_new)",
                               sc->name);
        }
        list[k++] = sc;
    }
    if (k == 0) {
        free(list);
        return SAGE_SETERR(SAGE_ECONFIG,
                           "%s: no service has transport nats, so none can be deployed (set "
                           "`transport: nats` at the top or on a service)",
                           file);
    }
    *listp = list;
    *np = k;
    return SAGE_OK;
}

/* rollback removes what this call deployed */
static void rollback(struct sage__ops *ops, json_t *done)
{
    size_t i;
    json_t *spec;

    json_array_foreach(done, i, spec) {
        char key[160];

        sage__nats_key(key, sizeof key, sage__jstr(spec, "ns"), sage__jstr(spec, "name"));
        sage__undeploy_spec(ops, key, spec, (uint64_t)sage__jint(spec, "rev"), 5000);
    }
}

sage_err sage_cluster_deploy(const sage_cluster_deploy_opts *o)
{
    sage_config *cfg = NULL;
    const sage_service_conf **list = NULL;
    size_t n = 0;
    struct sage__ops ops;
    json_t *done = NULL, *updated = NULL;
    const char *ns;
    char saved[1400];
    sage_err r;

    memset(&ops, 0, sizeof ops);
    if (o == NULL || o->config_text == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "deploy: no configuration given");
    if ((r = sage_config_parse(&cfg, o->config_text, o->config_len, o->config_path)) != SAGE_OK)
        return r;
    ns = o->ns ? o->ns : sage_config_namespace(cfg);
    if ((r = sage__check_name(ns, "namespace", 0)) != SAGE_OK)
        goto out;
    if ((r = select_services(o, cfg, &list, &n)) != SAGE_OK)
        goto out;
    if ((r = sage__ops_open(&ops, o->nats ? o->nats : sage_config_nats(cfg), "sagesvc deploy",
                            NULL, NULL)) != SAGE_OK)
        goto out;
    if ((done = json_array()) == NULL || (updated = json_array()) == NULL) {
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n && r == SAGE_OK; i++)
        r = deploy_one(&ops, o, list[i], ns, done, updated);
    if (r == SAGE_OK && o->wait_ms > 0)
        r = await_running(&ops, done, ns, o->wait_ms);
    /* updates are not undone: their old replicas serve until new ones do */
    if (r == SAGE_OK && o->wait_ms > 0 && json_array_size(updated) > 0)
        r = sage__await_settled(&ops, updated, o->wait_ms);
    if (r != SAGE_OK) {
        snprintf(saved, sizeof saved, "%s", sage_errdetail());
        rollback(&ops, done);
        r = SAGE_SETERR(r, "%s", saved);
    }
out:
    json_decref(done);
    json_decref(updated);
    sage__ops_close(&ops);
    free(list);
    sage_config_free(cfg);
    return r;
}
