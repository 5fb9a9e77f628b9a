/* info.c - sage_cluster_hosts and sage_cluster_deployments: the buckets'
 * records as public structs, for tools and tests. */
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "cluster/ops.h"

/* open_bucket connects and opens bucket without creating it; *kvp stays
 * NULL (and SAGE_OK) when the bucket does not exist yet */
static sage_err open_bucket(struct sage__nio **np, const sage_nats_conf *nats, const char *bucket,
                            struct sage__nio_kv **kvp)
{
    struct sage__nio_opts no;
    sage_err r;

    memset(&no, 0, sizeof no);
    no.conf = nats;
    no.name = "sagesvc info";
    *kvp = NULL;
    if ((r = sage__nio_connect(np, &no)) != SAGE_OK)
        return r;
    r = sage__nio_kv_open(*np, bucket, NULL, kvp);
    if (r == SAGE_ENOENT) {
        *kvp = NULL;
        return SAGE_OK;
    }
    if (r != SAGE_OK) {
        sage__nio_close(*np);
        *np = NULL;
    }
    return r;
}

/* ------------------------------------------------------------------ hosts */

struct hosts_walk {
    sage_cluster_host_fn fn;
    void *arg;
    int64_t now_ms;
};

static void host_one(void *arg, const char *key, json_t *rec, uint64_t rev)
{
    struct hosts_walk *w = arg;
    json_t *reps = json_object_get(rec, "replicas"), *rep;
    size_t n = json_is_array(reps) ? json_array_size(reps) : 0, i;
    sage_cluster_replica_info *ri = calloc(n ? n : 1, sizeof *ri);
    sage_cluster_host_info h;

    (void)rev;
    if (ri == NULL)
        return;
    json_array_foreach(reps, i, rep) {
        ri[i].ns = sage__jstr(rep, "ns");
        ri[i].service = sage__jstr(rep, "service");
        ri[i].deploy = sage__jstr(rep, "deploy");
        ri[i].pid = (int32_t)sage__jint(rep, "pid");
        ri[i].state = sage__jstr(rep, "state");
        ri[i].restarts = (uint32_t)sage__jint(rep, "restarts");
        ri[i].id = sage__jstr(rep, "id");
        ri[i].generation = (uint64_t)sage__jint(rep, "gen");
        ri[i].seen_ms = sage__jint(rep, "seen");
    }
    memset(&h, 0, sizeof h);
    h.id = json_is_string(json_object_get(rec, "id")) ? sage__jstr(rec, "id") : key;
    h.hostname = sage__jstr(rec, "hostname");
    h.pid = (int32_t)sage__jint(rec, "pid");
    h.cpus = sage__jnum(rec, "cpus");
    h.memory = (uint64_t)sage__jint(rec, "memory");
    h.reserved_cpus = sage__jnum(rec, "reserved_cpus");
    h.reserved_memory = (uint64_t)sage__jint(rec, "reserved_memory");
    h.heartbeat_ms = sage__jint(rec, "heartbeat");
    h.alive = sage__hostrec_alive(rec, w->now_ms);
    h.nreplicas = n;
    h.replicas = ri;
    w->fn(w->arg, &h);
    free(ri);
}

sage_err sage_cluster_hosts(const sage_nats_conf *nats, sage_cluster_host_fn fn, void *arg)
{
    struct sage__nio *n = NULL;
    struct sage__nio_kv *kv = NULL;
    struct hosts_walk w = {fn, arg, sage__wall_ms()};
    sage_err r = open_bucket(&n, nats, SAGE__HOSTS_BUCKET, &kv);

    if (r == SAGE_OK && kv)
        r = sage__kv_each(kv, host_one, &w);
    sage__nio_kv_close(kv);
    sage__nio_close(n);
    return r;
}

/* ------------------------------------------------------------ deployments */

struct deploy_walk {
    sage_cluster_deployment_fn fn;
    void *arg;
    const char *ns;
    const char *name;
    size_t seen;
    json_t *running; /* deployment id -> replicas running on live hosts */
    int64_t now_ms;
};

/* count_running counts, per deployment, the replicas a live host says run
 * and answer (a host that is down says nothing true any more) */
static void count_running(void *arg, const char *key, json_t *rec, uint64_t rev)
{
    struct deploy_walk *w = arg;
    size_t i;
    json_t *rep;

    (void)key;
    (void)rev;
    if (!sage__hostrec_alive(rec, w->now_ms))
        return;
    json_array_foreach(json_object_get(rec, "replicas"), i, rep) {
        const char *id = sage__jstr(rep, "deploy");

        if (strcmp(sage__jstr(rep, "state"), "running") == 0 && id[0])
            json_object_set_new(w->running, id, json_integer(sage__jint(w->running, id) + 1));
    }
}

static void deployment_one(void *arg, const char *key, json_t *spec, uint64_t rev)
{
    struct deploy_walk *w = arg;
    json_t *pl = json_object_get(spec, "placement"), *count;
    size_t n = json_is_object(pl) ? json_object_size(pl) : 0, k = 0;
    sage_cluster_placement *p = calloc(n ? n : 1, sizeof *p);
    const json_t *yaml = json_object_get(spec, "config_yaml");
    const char *host;
    sage_cluster_deployment d;

    (void)key;
    (void)rev;
    if (p == NULL)
        return;
    if ((w->ns && strcmp(sage__jstr(spec, "ns"), w->ns) != 0) ||
        (w->name && strcmp(sage__jstr(spec, "name"), w->name) != 0)) {
        free(p);
        return;
    }
    json_object_foreach(pl, host, count) {
        p[k].host = host;
        p[k++].count = json_is_integer(count) ? (uint32_t)json_integer_value(count) : 0;
    }
    memset(&d, 0, sizeof d);
    d.ns = sage__jstr(spec, "ns");
    d.name = sage__jstr(spec, "name");
    d.id = sage__jstr(spec, "id");
    d.replicas = (uint32_t)sage__jint(spec, "replicas");
    d.cpus = sage__jnum(spec, "cpus");
    d.memory = (uint64_t)sage__jint(spec, "memory");
    d.detached = strcmp(sage__jstr(spec, "lifetime"), "detached") == 0;
    d.owner = sage__jstr(spec, "owner");
    d.max_restarts = (uint32_t)sage__jint(spec, "max_restarts");
    d.durable = json_is_true(json_object_get(spec, "durable"));
    d.status = sage__jstr(spec, "status");
    d.reason = sage__jstr(spec, "reason");
    d.config_path = sage__jstr(spec, "config_path");
    d.config_yaml = json_is_string(yaml) ? json_string_value(yaml) : "";
    d.config_len = json_is_string(yaml) ? json_string_length(yaml) : 0;
    d.created_ms = sage__jint(spec, "created");
    d.generation = sage__jint(spec, "generation") > 0 ? (uint64_t)sage__jint(spec, "generation")
                                                       : 1;
    d.running = (uint32_t)sage__jint(w->running, d.id);
    d.nplacement = k;
    d.placement = p;
    w->seen++;
    w->fn(w->arg, &d);
    free(p);
}

sage_err sage_cluster_deployments(const sage_nats_conf *nats, const char *ns, const char *name,
                                  sage_cluster_deployment_fn fn, void *arg)
{
    struct sage__nio *n = NULL;
    struct sage__nio_kv *kv = NULL, *hosts = NULL;
    struct deploy_walk w = {fn, arg, ns, name, 0, json_object(), sage__wall_ms()};
    sage_err r = w.running ? open_bucket(&n, nats, SAGE__DEPLOY_BUCKET, &kv)
                           : SAGE_SETERR(SAGE_ENOMEM, "out of memory");

    /* the counts of running replicas are a reading, best effort: no host
     * bucket (no host ever ran), or one that cannot be read now, counts 0 */
    if (r == SAGE_OK && kv && sage__nio_kv_open(n, SAGE__HOSTS_BUCKET, NULL, &hosts) == SAGE_OK)
        sage__kv_each(hosts, count_running, &w);
    if (r == SAGE_OK && kv) {
        if (ns && name) { /* one key: no listing */
            char key[160];
            json_t *spec = NULL;

            sage__nats_key(key, sizeof key, ns, name);
            r = sage__kv_get_json(kv, key, &spec, NULL);
            if (r == SAGE_OK)
                deployment_one(&w, key, spec, 0);
            else if (r == SAGE_ENOENT)
                r = SAGE_OK;
            json_decref(spec);
        } else {
            r = sage__kv_each(kv, deployment_one, &w);
        }
    }
    sage__nio_kv_close(hosts);
    sage__nio_kv_close(kv);
    sage__nio_close(n);
    json_decref(w.running);
    if (r == SAGE_OK && ns && name && w.seen == 0)
        r = SAGE_SETERR(SAGE_ENOSERVICE, "service '%s' is not deployed in namespace '%s'", name,
                        ns);
    return r;
}
