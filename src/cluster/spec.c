/*
 * spec.c - deployment specs in bucket sagesvc_deploy, and the service
 * record's "failed" mark in sagesvc_services.
 */
#include <stdio.h>
#include <string.h>

#include "base/err_internal.h"
#include "cluster/ops.h"

uint32_t sage__spec_placed(const json_t *spec, const char *host)
{
    const json_t *p = json_object_get(spec, "placement");
    int64_t n = sage__jint(p, host);

    return n > 0 ? (uint32_t)n : 0;
}

bool sage__spec_abandoned(const json_t *spec, int64_t now_ms)
{
    return strcmp(sage__jstr(spec, "status"), "placing") == 0 &&
           now_ms - sage__jint(spec, "created") > SAGE__PLACING_STALE_MS;
}

/* mark_record marks the service record failed, keeping what else it says
 * (a record that never was, because no replica ever started, is made) */
static sage_err mark_record(struct sage__ops *o, const char *key, const json_t *spec,
                            const char *reason)
{
    json_t *rec = NULL;
    sage_err r = sage__kv_get_json(o->services, key, &rec, NULL);

    if (r != SAGE_OK) {
        rec = json_pack("{s:s, s:s, s:b}", "ns", sage__jstr(spec, "ns"), "name",
                        sage__jstr(spec, "name"), "durable",
                        json_is_true(json_object_get(spec, "durable")));
        if (rec == NULL)
            return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    }
    json_object_set_new(rec, "failed", json_true());
    json_object_set_new(rec, "reason", json_string(reason));
    r = sage__kv_put_json(o->services, key, rec, false, 0, NULL);
    json_decref(rec);
    return r;
}

struct mark {
    const char *deploy, *reason;
    json_t *spec; /* as last changed */
};

static int mark_fn(void *arg, json_t *spec, bool absent, sage_err *errp)
{
    struct mark *m = arg;

    (void)errp;
    json_decref(m->spec);
    m->spec = NULL;
    if (absent || strcmp(sage__jstr(spec, "id"), m->deploy) != 0)
        return 0; /* undeployed meanwhile, or a later deployment of the name */
    json_object_set_new(spec, "status", json_string("failed"));
    json_object_set_new(spec, "reason", json_string(m->reason));
    m->spec = json_incref(spec);
    return 1;
}

sage_err sage__spec_mark_failed(struct sage__ops *o, const char *key, const char *deploy,
                                const char *reason)
{
    struct mark m = {deploy, reason, NULL};
    sage_err r = sage__kv_modify(o->deploy, key, mark_fn, &m, NULL, NULL);

    if (r == SAGE_OK && m.spec)
        r = mark_record(o, key, m.spec, reason);
    json_decref(m.spec);
    return r;
}

void sage__service_remove(struct sage__ops *o, const char *ns, const char *name, bool durable)
{
    char key[160];
    json_t *spec = NULL;

    sage__nats_key(key, sizeof key, ns, name);
    if (sage__kv_get_json(o->deploy, key, &spec, NULL) != SAGE_ENOENT) {
        json_decref(spec); /* deployed again meanwhile (or unsure): keep */
        return;
    }
    sage__nio_kv_delete(o->services, key);
    if (durable) {
        char stream[200];

        sage__stream_name(stream, sizeof stream, ns, name);
        sage__nio_stream_delete(o->nio, stream);
    }
}
