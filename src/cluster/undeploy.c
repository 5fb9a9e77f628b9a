/*
 * undeploy.c - sage_cluster_undeploy: removing a deployed service.
 *
 * Design notes
 * - Order: the spec first (hosts stop its replicas when they see it gone),
 *   then the reservations (hosts would drop them too, a moment later), then
 *   - once no host lists a replica of it - the service record, so that
 *   callers get SAGE_ENOSERVICE rather than a record that a replica still
 *   starting would write again.
 * - The spec is deleted with a compare-and-delete on the revision read, so
 *   a newer deployment of the same name (made meanwhile) is never removed.
 */
#include <stdio.h>
#include <string.h>

#include "base/err_internal.h"
#include "cluster/ops.h"
#include "transport/names.h"

struct gone {
    const char *deploy;
    char where[256];
};

static int replicas_gone(void *arg, const json_t *hosts, int64_t now_ms, sage_err *errp)
{
    struct gone *g = arg;
    const char *hid;
    json_t *rec;

    (void)errp;
    json_object_foreach((json_t *)hosts, hid, rec) {
        size_t i;
        json_t *rep;

        if (!sage__hostrec_alive(rec, now_ms))
            continue;
        json_array_foreach(json_object_get(rec, "replicas"), i, rep)
            if (strcmp(sage__jstr(rep, "deploy"), g->deploy) == 0) {
                snprintf(g->where, sizeof g->where, "host %s, pid %lld, %s", hid,
                         (long long)sage__jint(rep, "pid"), sage__jstr(rep, "state"));
                return 0;
            }
    }
    return 1;
}

/* delete_spec deletes key if it still is deployment deploy */
static sage_err delete_spec(struct sage__ops *o, const char *key, const char *deploy, uint64_t rev)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        json_t *cur = NULL;
        sage_err r = sage__nio_kv_delete_rev(o->deploy, key, rev);
        bool same;

        if (r != SAGE_EBUSY)
            return r;
        /* changed since read (a host marked it failed?): same deployment? */
        r = sage__kv_get_json(o->deploy, key, &cur, &rev);
        if (r == SAGE_ENOENT)
            return SAGE_OK;
        if (r != SAGE_OK)
            return r;
        same = strcmp(sage__jstr(cur, "id"), deploy) == 0;
        json_decref(cur);
        if (!same)
            return SAGE_OK; /* a newer deployment: not ours to remove */
    }
    return SAGE_SETERR(SAGE_EBUSY, "deployment '%s' kept changing", key);
}

sage_err sage__undeploy_spec(struct sage__ops *o, const char *key, const json_t *spec, uint64_t rev,
                             int64_t wait_ms)
{
    struct gone g;
    sage_err r, w = SAGE_OK;

    memset(&g, 0, sizeof g);
    g.deploy = sage__jstr(spec, "id");
    if ((r = delete_spec(o, key, g.deploy, rev)) != SAGE_OK)
        return r;
    sage__hostrec_release_all(o->hosts, key, g.deploy, json_object_get(spec, "placement"));
    if (wait_ms > 0) {
        w = sage__await_kv(o->hosts, NULL, replicas_gone, &g, wait_ms);
        if (w == SAGE_ETIMEDOUT)
            w = SAGE_SETERR(w,
                            "'%s' undeployed, but a replica still ran after %lld ms (%s); its host "
                            "stops it",
                            key, (long long)wait_ms, g.where);
        else if (w != SAGE_OK)
            return w;
    }
    if (w != SAGE_OK) { /* what follows may record details of its own */
        char why[512];

        snprintf(why, sizeof why, "%s", sage_errdetail());
        sage__service_remove(o, sage__jstr(spec, "ns"), sage__jstr(spec, "name"),
                             json_is_true(json_object_get(spec, "durable")));
        return SAGE_SETERR(w, "%s", why);
    }
    sage__service_remove(o, sage__jstr(spec, "ns"), sage__jstr(spec, "name"),
                         json_is_true(json_object_get(spec, "durable")));
    return w;
}

sage_err sage_cluster_undeploy(const sage_nats_conf *nats, const char *ns, const char *name,
                               int64_t wait_ms)
{
    struct sage__ops o;
    json_t *spec = NULL;
    char key[160];
    uint64_t rev = 0;
    sage_err r;

    if ((r = sage__check_name(ns, "namespace", 0)) != SAGE_OK ||
        (r = sage__check_name(name, "service", 0)) != SAGE_OK)
        return r;
    if ((r = sage__ops_open(&o, nats, "sagesvc undeploy", NULL, NULL)) != SAGE_OK)
        return r;
    sage__nats_key(key, sizeof key, ns, name);
    r = sage__kv_get_json(o.deploy, key, &spec, &rev);
    if (r == SAGE_ENOENT)
        r = SAGE_SETERR(SAGE_ENOSERVICE, "service '%s' is not deployed in namespace '%s'", name,
                        ns);
    else if (r == SAGE_OK)
        r = sage__undeploy_spec(&o, key, spec, rev, wait_ms);
    json_decref(spec);
    sage__ops_close(&o);
    return r;
}
