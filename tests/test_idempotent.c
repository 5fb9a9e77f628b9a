/*
 * test_idempotent.c - methods a service declares idempotent (in its table,
 * or by name in its options or YAML) are retried by callers that were not
 * told, in process, over shm and over NATS; other methods are not.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "natsfix_th.h"
#include "sage/config.h"
#include "sage/manager.h"
#include "sage/task.h"
#include "testsvc.h"

static const char *const flaky_only[] = {"flaky"};

static void task_opts(sage_task_opts *o, sage_transport tp)
{
    sage_task_opts_init(o);
    o->transport = tp;
    o->ns = th_prefix();
    o->idempotent = flaky_only;
    o->nidempotent = 1;
}

/* check calls flaky(2) (fails twice per request id, then answers 3) with no
 * idempotent flag: retried since the service declared it; and fail, which
 * it did not declare, is not */
static void check(sage_manager *m)
{
    sage_arena *a;
    sage_value res;
    sage_manager_stats st;

    ASSERT_OK(sage_arena_new(&a, 0));
    ASSERT_OK(sage_manager_callf(&res, m, a, "testsvc", "flaky", "[i]", 2));
    ASSERT_EQ(res.as.i, 3);
    ASSERT_OK(sage_manager_stats_read(&st, m));
    ASSERT_EQ(st.retries, 2);
    ASSERT_ERR(sage_manager_callf(&res, m, a, "testsvc", "fail", "[s]", "x"), SAGE_EHANDLER);
    ASSERT_OK(sage_manager_stats_read(&st, m));
    ASSERT_EQ(st.retries, 2);
    sage_arena_free(a);
}

static void manager_opts(sage_manager_opts *mo)
{
    sage_manager_opts_init(mo);
    mo->ns = th_prefix();
    mo->timeout_ms = 10000;
    mo->retries = 3;
    mo->retry_backoff_ms = 1;
}

static void t_local(void)
{
    sage_task_opts o;
    sage_manager_opts mo;
    sage_task *t;
    sage_env *e;
    sage_manager *m;

    task_opts(&o, SAGE_TRANSPORT_LOCAL);
    ASSERT_OK(sage_task_new(&t, &testsvc, &o));
    ASSERT_OK(sage_task_start(t));
    ASSERT_OK(sage_env_new(&e, th_prefix()));
    ASSERT_OK(sage_env_register(e, NULL, t));
    manager_opts(&mo);
    mo.env = e;
    ASSERT_OK(sage_manager_new(&m, &mo));
    check(m);
    sage_manager_free(m);
    sage_env_unregister(e, "testsvc");
    sage_task_free(t);
    sage_env_free(e);
}

static void t_shm(void)
{
    sage_task_opts o;
    sage_manager_opts mo;
    sage_task *t;
    sage_manager *m;

    task_opts(&o, SAGE_TRANSPORT_SHM);
    ASSERT_OK(sage_task_new(&t, &testsvc, &o));
    ASSERT_OK(sage_task_start(t));
    manager_opts(&mo);
    ASSERT_OK(sage_manager_new(&m, &mo)); /* found in the host registry */
    check(m);
    sage_manager_free(m);
    sage_task_free(t);
}

static void t_nats(void)
{
    struct natsfix f;
    sage_task_opts o;
    sage_manager_opts mo;
    sage_nats_conf nc;
    sage_cluster_opts co = {0};
    sage_task *t;
    sage_manager *m;

    natsfix_start(&f, 1, NULL);
    natsfix_conf(&f, &nc, 0);
    co.nats = &nc;
    task_opts(&o, SAGE_TRANSPORT_NATS);
    o.cluster = &co;
    ASSERT_OK(sage_task_new(&t, &testsvc, &o));
    ASSERT_OK(sage_task_start(t));
    manager_opts(&mo);
    mo.cluster = &co; /* found through the service's record */
    ASSERT_OK(sage_manager_new(&m, &mo));
    check(m);
    sage_manager_free(m);
    sage_task_free(t);
    natsfix_stop(&f);
}

static void t_unknown_method(void)
{
    static const char *const nope[] = {"nope"};
    sage_task_opts o;
    sage_task *t;

    sage_task_opts_init(&o);
    o.idempotent = nope;
    o.nidempotent = 1;
    ASSERT_ERR(sage_task_new(&t, &testsvc, &o), SAGE_EINVAL);
    ASSERT_TRUE(strstr(sage_errdetail(), "idempotent names no method 'nope'") != NULL);
}

/* from YAML: services[].idempotent */
static void t_from_config(void)
{
    static const char yaml[] = "services:\n"
                               "  - name: testsvc\n"
                               "    plugin: none.so\n"
                               "    transport: shm\n"
                               "    idempotent: [flaky]\n";
    sage_config *c;
    sage_task *t;
    sage_manager_opts mo;
    sage_manager *m;

    ASSERT_OK(sage_config_parse(&c, yaml, sizeof yaml - 1, "t.yaml"));
    ASSERT_EQ(sage_config_service(c, 0)->nidempotent, 1);
    ASSERT_STREQ(sage_config_service(c, 0)->idempotent[0], "flaky");
    ASSERT_OK(sage_task_new_from_conf(&t, &testsvc, c, sage_config_service(c, 0), th_prefix()));
    ASSERT_OK(sage_task_start(t));
    manager_opts(&mo);
    ASSERT_OK(sage_manager_new(&m, &mo));
    check(m);
    sage_manager_free(m);
    sage_task_free(t);
    sage_config_free(c);
}

static const struct th_case cases[] = {
    {"local", t_local, 30},
    {"shm", t_shm, 30},
    {"nats", t_nats, 60},
    {"unknown_method", t_unknown_method, 10},
    {"from_config", t_from_config, 30},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
