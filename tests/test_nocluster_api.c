/*
 * test_nocluster_api.c - the library built without the cluster
 * (SAGE_WITH_NATS=OFF): it says so, every cluster call fails with
 * SAGE_ENOTSUP and a detail that says why, and so do a manager given
 * cluster options and a task with transport nats. Built only then.
 */
#include <string.h>

#include "harness.h"
#include "kv.h"
#include "sage/cluster.h"
#include "sage/manager.h"
#include "sage/task.h"

/* ASSERT_NOT_BUILT: expr fails with SAGE_ENOTSUP, saying why */
#define ASSERT_NOT_BUILT(expr)                                                                     \
    do {                                                                                           \
        ASSERT_ERR(expr, SAGE_ENOTSUP);                                                            \
        if (strstr(sage_errdetail(), "cluster support is not built in") == NULL)                   \
            th_fail(__FILE__, __LINE__, "%s: detail '%s' does not say why", #expr,                 \
                    sage_errdetail());                                                             \
    } while (0)

static void no_instance(void *arg, const sage_cluster_instance *inst)
{
    (void)arg, (void)inst;
}

static void no_host(void *arg, const sage_cluster_host_info *h)
{
    (void)arg, (void)h;
}

static void no_deployment(void *arg, const sage_cluster_deployment *d)
{
    (void)arg, (void)d;
}

static void t_supported(void)
{
    ASSERT_TRUE(!sage_cluster_supported());
}

/* every cluster call refuses */
static void t_cluster_calls(void)
{
    sage_nats_conf nats;
    sage_cluster_lease *lease = NULL;
    sage_cluster_deploy_opts d;
    sage_cluster_host_opts h;
    sage_cluster_replica_opts r;

    sage_nats_conf_init(&nats);
    ASSERT_NOT_BUILT(sage_cluster_discover(&nats, "default", "PING", NULL, 100, no_instance, NULL));
    ASSERT_NOT_BUILT(sage_cluster_hosts(&nats, no_host, NULL));
    ASSERT_NOT_BUILT(sage_cluster_deployments(&nats, "default", NULL, no_deployment, NULL));
    ASSERT_NOT_BUILT(sage_cluster_lease_new(&lease, &nats, NULL, NULL));
    ASSERT_TRUE(lease == NULL);
    sage_cluster_lease_free(NULL);
    sage_cluster_deploy_opts_init(&d);
    d.config_text = "services: []\n";
    d.config_len = strlen(d.config_text);
    ASSERT_NOT_BUILT(sage_cluster_deploy(&d));
    ASSERT_NOT_BUILT(sage_cluster_undeploy(&nats, "default", "kv", 100));
    sage_cluster_host_opts_init(&h);
    ASSERT_NOT_BUILT(sage_cluster_host_run(&h));
    sage_cluster_replica_opts_init(&r);
    ASSERT_NOT_BUILT(sage_cluster_replica_run(&r));
}

/* a manager with cluster options is refused, not made blind to the cluster */
static void t_manager(void)
{
    sage_manager_opts mo;
    sage_cluster_opts co = {0};
    sage_manager *m = NULL;

    sage_manager_opts_init(&mo);
    mo.ns = th_prefix();
    mo.cluster = &co;
    ASSERT_NOT_BUILT(sage_manager_new(&m, &mo));
    ASSERT_TRUE(m == NULL);
    mo.cluster = NULL;
    ASSERT_OK(sage_manager_new(&m, &mo));
    sage_manager_free(m);
}

/* a task with transport nats is refused; over shm it runs */
static void t_task(void)
{
    sage_task_opts o;
    sage_cluster_opts co = {0};
    sage_task *t = NULL;

    sage_task_opts_init(&o);
    o.ns = th_prefix();
    o.transport = SAGE_TRANSPORT_NATS;
    o.cluster = &co;
    ASSERT_ERR(sage_task_new(&t, &sage_example_kv, &o), SAGE_ENOTSUP);
    ASSERT_TRUE(t == NULL);
    o.transport = SAGE_TRANSPORT_SHM;
    o.cluster = NULL;
    ASSERT_OK(sage_task_new(&t, &sage_example_kv, &o));
    ASSERT_OK(sage_task_start(t));
    ASSERT_OK(sage_task_stop(t));
    sage_task_free(t);
}

static const struct th_case cases[] = {
    {"supported", t_supported, 10},
    {"cluster_calls", t_cluster_calls, 10},
    {"manager", t_manager, 10},
    {"task", t_task, 20},
    {0},
};

TH_MAIN(cases)
