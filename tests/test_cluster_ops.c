/*
 * test_cluster_ops.c - hosts, deployments, supervision and leases, against
 * real nats-server clusters and the real `sagesvc` binary (SAGESVC_BIN):
 * `sagesvc host` processes run the replicas (`sagesvc replica`, serving the
 * built-in kv service), in the case's process group.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "opsfix.h"

/* ------------------------------------------------------------- cases */

/* a killed replica is restarted (100 ms, then 200 ms later) until
 * max_restarts restarts happened; the next death gives up: the service is
 * marked failed and calls fail fast with EUNAVAILABLE */
static void t_supervise_restart_give_up(void)
{
    struct natsfix f;
    sage_nats_conf nc;
    struct look l;
    struct dep d;
    char text[1024];
    pid_t host;
    int last;
    double t0;
    sage_err r;

    host = one_host(&f, &nc, "2");
    config(text, sizeof text, &f, 1, "1", NULL, "detached", 2, NULL);
    DEPLOY_OK(&f, text, 15000);
    ASSERT_OK(call_kv(&f, 0, 1));
    WAIT_FOR(&nc, "kv", l, l.running == 1, 10000);
    ASSERT_EQ(l.restarts, 0);
    last = l.pids[0];
    for (int kill_no = 0; kill_no < 3; kill_no++) {
        ASSERT_OK(call_kv(&f, 0, 10 + kill_no)); /* this replica serves */
        t0 = th_now_ms();
        ASSERT_EQ(kill(last, SIGKILL), 0);
        if (kill_no == 2)
            break;
        /* restarted after the backoff: 100 ms, then 200 ms */
        WAIT_FOR(&nc, "kv", l, l.running == 1 && l.pids[0] != last, 10000);
        ASSERT_LE(90.0 * (1 << kill_no), th_now_ms() - t0);
        ASSERT_EQ(l.restarts, kill_no + 1);
        last = l.pids[0];
    }
    /* gave up: the slot failed, the deployment and the service too */
    WAIT_FOR(&nc, "kv", l, l.failed == 1, 10000);
    ASSERT_EQ(l.running, 0);
    ASSERT_EQ(l.restarts, 2);
    d = wait_status(&nc, "kv", "failed", 5000);
    ASSERT_TRUE(strstr(d.reason, "max_restarts 2") != NULL);
    t0 = th_now_ms();
    r = call_kv(&f, 0, 99);
    ASSERT_ERR(r, SAGE_EUNAVAILABLE);
    ASSERT_LE(th_now_ms() - t0, 5000); /* fast: not the 10 s call timeout */
    /* no restart happens any more */
    sleep_ms(600);
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 0);
    undeploy_finish(&f, &nc, host);
}

/* with max_restarts 0 a replica's first death gives it up; the service
 * fails only once no replica of it is left */
static void t_give_up_needs_all_replicas(void)
{
    struct natsfix f;
    sage_nats_conf nc;
    struct look l;
    char text[1024];
    pid_t host;
    int survivor;

    host = one_host(&f, &nc, "2");
    config(text, sizeof text, &f, 2, "1", NULL, "detached", 0, NULL);
    DEPLOY_OK(&f, text, 15000);
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 2);
    survivor = l.pids[1];
    ASSERT_EQ(kill(l.pids[0], SIGKILL), 0);
    WAIT_FOR(&nc, "kv", l, l.failed == 1, 10000);
    ASSERT_EQ(l.running, 1);
    ASSERT_EQ(l.pids[0], survivor);
    ASSERT_STREQ(deployment(&nc, "kv").status, "running");
    ASSERT_OK(call_kv(&f, 0, 1)); /* the other replica still serves */
    ASSERT_EQ(kill(survivor, SIGKILL), 0);
    WAIT_FOR(&nc, "kv", l, l.failed == 2, 10000);
    wait_status(&nc, "kv", "failed", 5000);
    ASSERT_ERR(call_kv(&f, 0, 2), SAGE_EUNAVAILABLE);
    undeploy_finish(&f, &nc, host);
}

/* replicas that die at start fail the deployment: deploy waits, says why
 * (the reason the host gave), and removes what it deployed */
static void t_deploy_fails_starting(void)
{
    struct natsfix f;
    sage_nats_conf nc;
    char text[1024], *plugin;
    pid_t host;

    host = one_host(&f, &nc, "2");
    config(text, sizeof text, &f, 1, "1", NULL, "detached", 0, NULL);
    plugin = strstr(text, "plugin: kv");
    ASSERT_TRUE(plugin != NULL);
    memcpy(plugin, "plugin: /x", 10); /* no such plugin: the replica exits at once */
    ASSERT_ERR(deploy(&f, text, 15000), SAGE_EUNAVAILABLE);
    printf("  deploy: %s\n", sage_errdetail());
    ASSERT_TRUE(strstr(sage_errdetail(), "service 'kv': its replica on host") != NULL);
    ASSERT_TRUE(strstr(sage_errdetail(), "gave up") != NULL);
    ASSERT_EQ(deployment(&nc, "kv").found, 0);
    stop_host(host);
    finish(&f);
}

/* replicas that do not fit are refused, with what was asked and what is
 * free, and nothing stays reserved or deployed */
static void t_deploy_refused(void)
{
    struct natsfix f;
    sage_nats_conf nc;
    struct look l;
    struct dep d;
    char text[1024], path[256];
    pid_t host, cli;

    natsfix_start(&f, 1, NULL);
    natsfix_conf(&f, &nc, 0);
    /* no host at all */
    config(text, sizeof text, &f, 1, "1", NULL, "detached", 1, NULL);
    ASSERT_ERR(deploy(&f, text, 5000), SAGE_EUNAVAILABLE);
    host = start_host(&f, 0, 0, "2", "512MiB");
    /* three replicas of one CPU on two CPUs */
    config(text, sizeof text, &f, 3, "1", NULL, "detached", 1, NULL);
    ASSERT_ERR(deploy(&f, text, 5000), SAGE_EBUSY);
    ASSERT_TRUE(strstr(sage_errdetail(), "asks for 3 replicas of 1 CPU") != NULL);
    ASSERT_TRUE(strstr(sage_errdetail(), "only 2 fit") != NULL);
    ASSERT_TRUE(strstr(sage_errdetail(), "2 of 2 CPUs free") != NULL);
    /* one replica of 3 CPUs */
    config(text, sizeof text, &f, 1, "3", NULL, "detached", 1, NULL);
    ASSERT_ERR(deploy(&f, text, 5000), SAGE_EBUSY);
    /* memory: 1 GiB asked, 512 MiB offered */
    config(text, sizeof text, &f, 1, "1", "1GiB", "detached", 1, NULL);
    ASSERT_ERR(deploy(&f, text, 5000), SAGE_EBUSY);
    ASSERT_TRUE(strstr(sage_errdetail(), "1.0 GiB") != NULL);
    /* nothing reserved, nothing deployed, nothing running */
    l = look(&nc, "kv");
    ASSERT_EQ(l.reserved_cpus * 1000, 0);
    ASSERT_EQ(l.reserved_memory, 0);
    ASSERT_EQ(l.replicas, 0);
    d = deployment(&nc, "kv");
    ASSERT_EQ(d.found, 0);
    /* the command line says so too, with exit status 1 */
    config(text, sizeof text, &f, 3, "1", NULL, "detached", 1, NULL);
    config_file(path, sizeof path, &f, text);
    cli = run(&f, "deploy", "deploy", path, (char *)NULL);
    ASSERT_EQ(exit_code(th_wait_child(cli, 20000)), 1);
    /* what fits is then accepted: two replicas use both CPUs */
    config(text, sizeof text, &f, 2, "1", "256MiB", "detached", 1, NULL);
    DEPLOY_OK(&f, text, 15000);
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 2);
    ASSERT_EQ(l.reserved_cpus * 1000, 2000);
    ASSERT_EQ(l.reserved_memory, 512u << 20);
    undeploy_finish(&f, &nc, host);
}

/* a detached deployment outlives `sagesvc deploy`, which returns at once */
static void t_detached_survives(void)
{
    struct natsfix f;
    sage_nats_conf nc;
    struct look l, after;
    char text[1024], path[256];
    pid_t host, cli;

    host = one_host(&f, &nc, "4");
    config(text, sizeof text, &f, 2, "1", NULL, "detached", 1, NULL);
    config_file(path, sizeof path, &f, text);
    cli = run(&f, "deploy", "deploy", path, (char *)NULL);
    ASSERT_EQ(exit_code(th_wait_child(cli, 30000)), 0); /* the deployer is gone */
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 2);
    ASSERT_OK(call_kv(&f, 0, 5));
    /* longer than a lease lives unrefreshed, and a host's check after it */
    sleep_ms(16500);
    after = look(&nc, "kv");
    ASSERT_EQ(after.running, 2);
    ASSERT_TRUE((after.pids[0] == l.pids[0] && after.pids[1] == l.pids[1]) ||
                (after.pids[0] == l.pids[1] && after.pids[1] == l.pids[0]));
    ASSERT_OK(call_kv(&f, 0, 6));
    undeploy_finish(&f, &nc, host);
}

/* owned replicas go when their deployer dies (its lease lapses) and when
 * it is stopped (it undeploys them itself) */
static void t_owned_removed_with_deployer(void)
{
    struct natsfix f;
    sage_nats_conf nc;
    struct look l;
    char text[1024], path[256];
    pid_t host, cli, other;
    double t0;

    host = one_host(&f, &nc, "4");
    config(text, sizeof text, &f, 2, "1", NULL, "owned", 1, NULL);
    config_file(path, sizeof path, &f, text);
    cli = run(&f, "deploy", "deploy", path, (char *)NULL);
    wait_log(&f, "deploy", "holding 1 owned service", 20000);
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 2);
    ASSERT_OK(call_kv(&f, 0, 7));
    ASSERT_EQ(waitpid(cli, NULL, WNOHANG), 0); /* holding the lease */
    /* another deployer may not change what this one owns */
    other = run(&f, "deploy-other", "deploy", path, (char *)NULL);
    ASSERT_EQ(exit_code(th_wait_child(other, 30000)), 1);
    ASSERT_TRUE(log_has(&f, "deploy-other", "owned by another deployer"));
    t0 = th_now_ms();
    kill(cli, SIGKILL);
    ASSERT_EQ(exit_code(th_wait_child(cli, 5000)), 128 + SIGKILL);
    /* the lease lapses 15 s after its last refresh; hosts look every second */
    WAIT_FOR(&nc, "kv", l, l.replicas == 0 && l.reserved_cpus == 0, 25000);
    ASSERT_LE(13500, th_now_ms() - t0); /* not before the lease could lapse */
    ASSERT_EQ(deployment(&nc, "kv").found, 0);
    ASSERT_ERR(call_kv(&f, 0, 8), SAGE_ENOSERVICE); /* the record went too */
    /* a deployer stopped by a signal removes them at once */
    cli = run(&f, "deploy2", "deploy", path, (char *)NULL);
    wait_log(&f, "deploy2", "holding 1 owned service", 20000);
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 2);
    kill(cli, SIGTERM);
    ASSERT_EQ(exit_code(th_wait_child(cli, 15000)), 0);
    l = look(&nc, "kv");
    ASSERT_EQ(l.replicas, 0); /* gone when it exits: no lease lapse waited for */
    ASSERT_EQ(deployment(&nc, "kv").found, 0);
    ASSERT_TRUE(log_has(&f, "deploy2", "kv: undeployed")); /* it did it itself */
    stop_host(host);
    finish(&f);
}

/* undeploy stops the replicas, frees the reservations, removes the
 * deployment and the service */
static void t_undeploy_removes(void)
{
    struct natsfix f;
    sage_nats_conf nc;
    struct look l;
    char text[1024];
    pid_t host, cli;
    int pids[2];

    host = one_host(&f, &nc, "4");
    config(text, sizeof text, &f, 2, "1.5", NULL, "detached", 1, NULL);
    DEPLOY_OK(&f, text, 15000);
    DEPLOY_OK(&f, text, 15000); /* deployed already, unchanged: nothing happens */
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 2);
    ASSERT_EQ(l.restarts, 0);
    ASSERT_EQ(l.reserved_cpus * 10, 30);
    pids[0] = l.pids[0];
    pids[1] = l.pids[1];
    ASSERT_OK(call_kv(&f, 0, 11));
    ASSERT_OK(sage_cluster_undeploy(&nc, th_prefix(), "kv", 10000));
    l = look(&nc, "kv");
    ASSERT_EQ(l.replicas, 0);
    ASSERT_EQ(l.reserved_cpus * 1000, 0);
    ASSERT_EQ(kill(pids[0], 0) == 0 || kill(pids[1], 0) == 0, 0); /* processes gone */
    ASSERT_EQ(deployment(&nc, "kv").found, 0);
    ASSERT_ERR(call_kv(&f, 0, 12), SAGE_ENOSERVICE);
    ASSERT_ERR(sage_cluster_undeploy(&nc, th_prefix(), "kv", 1000), SAGE_ENOSERVICE);
    /* the command line: exit status 3 for a service not deployed */
    cli = run(&f, "undeploy", "undeploy", "--nats", f.url[0], "-n", th_prefix(), "kv",
              (char *)NULL);
    ASSERT_EQ(exit_code(th_wait_child(cli, 20000)), 3);
    /* and the name can be deployed again */
    DEPLOY_OK(&f, text, 15000);
    ASSERT_OK(call_kv(&f, 0, 13));
    cli = run(&f, "undeploy", "undeploy", "--nats", f.url[0], "-n", th_prefix(), "kv",
              (char *)NULL);
    ASSERT_EQ(exit_code(th_wait_child(cli, 20000)), 0);
    ASSERT_EQ(look(&nc, "kv").replicas, 0);
    stop_host(host);
    finish(&f);
}

/* ADR-32 STATS of every replica of kv: pid -> requests */
struct stats {
    int pids[8];
    uint64_t requests[8];
    int n;
};

static void on_stats(void *arg, const sage_cluster_instance *inst)
{
    struct stats *s = arg;

    if (s->n < 8 && strcmp(inst->name, "kv") == 0) {
        s->pids[s->n] = inst->pid;
        s->requests[s->n++] = inst->requests;
    }
}

/* two hosts on different servers of a 3-server cluster each run a replica
 * of one deployment, and calls from the third server reach both */
static void t_two_hosts_three_servers(void)
{
    struct natsfix f;
    sage_nats_conf nc, nc2;
    sage_cluster_opts co;
    sage_manager *m;
    sage_arena *a;
    sage_value res;
    struct look l;
    struct dep d;
    struct stats st;
    char text[1024];
    pid_t h0, h1;

    natsfix_start(&f, 3, NULL);
    natsfix_conf(&f, &nc, 2);
    h0 = start_host(&f, 0, 0, "1", NULL);
    h1 = start_host(&f, 1, 1, "1", NULL);
    config(text, sizeof text, &f, 2, "1", NULL, "detached", 1, NULL);
    DEPLOY_OK(&f, text, 20000);
    d = deployment(&nc, "kv");
    ASSERT_EQ(d.placed[0], 1); /* one CPU each: one replica on each host */
    ASSERT_EQ(d.placed[1], 1);
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 2);
    m = natsfix_manager(&f, 2, 10, &nc2, &co);
    ASSERT_OK(sage_arena_new(&a, 0));
    for (int i = 0; i < 200; i++) {
        ASSERT_OK(sage_manager_callf(&res, m, a, "kv", "put", "[s i]", "k", i));
        sage_arena_reset(a);
    }
    memset(&st, 0, sizeof st);
    ASSERT_OK(sage_cluster_discover(&nc, th_prefix(), "STATS", "kv", 1000, on_stats, &st));
    ASSERT_EQ(st.n, 2);
    for (int i = 0; i < 2; i++) {
        ASSERT_TRUE(st.pids[i] == l.pids[0] || st.pids[i] == l.pids[1]);
        ASSERT_TRUE(st.requests[i] > 0); /* both replicas took calls */
    }
    ASSERT_NE(st.pids[0], st.pids[1]);
    ASSERT_EQ(st.requests[0] + st.requests[1], 200);
    sage_arena_free(a);
    sage_manager_free(m);
    ASSERT_OK(sage_cluster_undeploy(&nc, th_prefix(), "kv", 10000));
    stop_host(h0);
    stop_host(h1);
    finish(&f);
}

static const struct th_case cases[] = {
    {"supervise_restart_give_up", t_supervise_restart_give_up, 60},
    {"give_up_needs_all_replicas", t_give_up_needs_all_replicas, 60},
    {"deploy_refused", t_deploy_refused, 60},
    {"deploy_fails_starting", t_deploy_fails_starting, 60},
    {"detached_survives", t_detached_survives, 60},
    {"owned_removed_with_deployer", t_owned_removed_with_deployer, 90},
    {"undeploy_removes", t_undeploy_removes, 60},
    {"two_hosts_three_servers", t_two_hosts_three_servers, 60},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
