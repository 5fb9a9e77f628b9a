/*
 * none.c - the cluster API of a library built without NATS
 * (SAGE_WITH_NATS=OFF): every call says so.
 */
#include <string.h>

#include "base/err_internal.h"
#include "sage/cluster.h"

#define NOT_BUILT(what)                                                                            \
    SAGE_SETERR(SAGE_ENOTSUP, "%s: cluster support is not built in (SAGE_WITH_NATS=OFF)", what)

sage_err sage_cluster_discover(const sage_nats_conf *nats, const char *ns, const char *verb,
                               const char *name, int64_t wait_ms, sage_cluster_instance_fn fn,
                               void *arg)
{
    (void)nats, (void)ns, (void)verb, (void)name, (void)wait_ms, (void)fn, (void)arg;
    return NOT_BUILT("cluster discovery");
}

sage_err sage_cluster_hosts(const sage_nats_conf *nats, sage_cluster_host_fn fn, void *arg)
{
    (void)nats, (void)fn, (void)arg;
    return NOT_BUILT("cluster hosts");
}

sage_err sage_cluster_deployments(const sage_nats_conf *nats, const char *ns, const char *name,
                                  sage_cluster_deployment_fn fn, void *arg)
{
    (void)nats, (void)ns, (void)name, (void)fn, (void)arg;
    return NOT_BUILT("cluster deployments");
}

sage_err sage_cluster_lease_new(sage_cluster_lease **lp, const sage_nats_conf *nats,
                                void (*on_lost)(void *arg), void *arg)
{
    (void)lp, (void)nats, (void)on_lost, (void)arg;
    return NOT_BUILT("cluster leases");
}

const char *sage_cluster_lease_id(const sage_cluster_lease *l)
{
    (void)l;
    return "";
}

void sage_cluster_lease_stop(sage_cluster_lease *l)
{
    (void)l;
}

void sage_cluster_lease_free(sage_cluster_lease *l)
{
    (void)l;
}

void sage_cluster_deploy_opts_init(sage_cluster_deploy_opts *o)
{
    memset(o, 0, sizeof *o);
}

sage_err sage_cluster_deploy(const sage_cluster_deploy_opts *o)
{
    (void)o;
    return NOT_BUILT("deploy");
}

sage_err sage_cluster_undeploy(const sage_nats_conf *nats, const char *ns, const char *name,
                               int64_t wait_ms)
{
    (void)nats, (void)ns, (void)name, (void)wait_ms;
    return NOT_BUILT("undeploy");
}

sage_err sage_cluster_scale(const sage_nats_conf *nats, const char *ns, const char *name,
                            uint32_t replicas, int64_t wait_ms)
{
    (void)nats, (void)ns, (void)name, (void)replicas, (void)wait_ms;
    return NOT_BUILT("scale");
}

sage_err sage_cluster_host_figures(const sage_nats_conf *nats, const char *host_id, int64_t wait_ms,
                                   sage_cluster_figures_fn fn, void *arg)
{
    (void)nats, (void)host_id, (void)wait_ms, (void)fn, (void)arg;
    return NOT_BUILT("host figures");
}

void sage_cluster_host_opts_init(sage_cluster_host_opts *o)
{
    memset(o, 0, sizeof *o);
    o->stop_fd = -1;
}

sage_err sage_cluster_host_run(const sage_cluster_host_opts *o)
{
    (void)o;
    return NOT_BUILT("the host daemon");
}

void sage_cluster_replica_opts_init(sage_cluster_replica_opts *o)
{
    memset(o, 0, sizeof *o);
    o->ready_fd = -1;
    o->stop_fd = -1;
}

sage_err sage_cluster_replica_run(const sage_cluster_replica_opts *o)
{
    (void)o;
    return NOT_BUILT("replicas");
}
