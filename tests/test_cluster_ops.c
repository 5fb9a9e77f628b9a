/*
 * test_cluster_ops.c - hosts, deployments, supervision and leases, against
 * real nats-server clusters and the real `sagesvc` binary (SAGESVC_BIN):
 * `sagesvc host` processes run the replicas (`sagesvc replica`, serving the
 * built-in kv service), in the case's process group.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "natsfix_th.h"
#include "sage/cluster.h"
#include "sage/manager.h"

#ifndef SAGESVC_BIN
#error "SAGESVC_BIN must name the sagesvc binary"
#endif

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* run starts SAGESVC_BIN with args (NULL-terminated), its output going to
 * LOG.log in the servers' directory (finish shows them all when
 * SAGE_TEST_VERBOSE is set) */
static pid_t run(struct natsfix *f, const char *log, ...)
{
    const char *argv[32];
    va_list ap;
    int n = 0;
    pid_t pid;

    argv[n++] = SAGESVC_BIN;
    va_start(ap, log);
    while (n < 31 && (argv[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    argv[n] = NULL;
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        char path[256];
        int fd;

        snprintf(path, sizeof path, "%s/%s.log", f->dir, log);
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        execv(SAGESVC_BIN, (char **)argv);
        _exit(127);
    }
    return pid;
}

/* log_has tells whether LOG.log contains text */
static int log_has(struct natsfix *f, const char *log, const char *text)
{
    char path[256], buf[8192];
    size_t n;
    FILE *in;

    snprintf(path, sizeof path, "%s/%s.log", f->dir, log);
    if ((in = fopen(path, "r")) == NULL)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, in);
    buf[n] = '\0';
    fclose(in);
    return strstr(buf, text) != NULL;
}

/* wait_log waits up to ms for LOG.log to contain text */
static void wait_log(struct natsfix *f, const char *log, const char *text, int ms)
{
    double end = th_now_ms() + ms;

    while (!log_has(f, log, text)) {
        if (th_now_ms() > end)
            th_fail(__FILE__, __LINE__, "waited %d ms for '%s' in %s.log", ms, text, log);
        sleep_ms(20);
    }
}

/* dump_logs shows the logs of the processes run so far, on stderr */
static void dump_logs(struct natsfix *f)
{
    char cmd[300];

    snprintf(cmd, sizeof cmd, "tail -n +1 %s/*.log >&2", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "(no logs)\n");
}

/* finish stops the servers, after showing the processes' logs when
 * SAGE_TEST_VERBOSE is set */
static void finish(struct natsfix *f)
{
    if (getenv("SAGE_TEST_VERBOSE"))
        dump_logs(f);
    natsfix_stop(f);
}

/* ------------------------------------------------------- reading state */

struct look {
    const char *ns, *svc;
    int hosts_alive;
    int replicas;      /* listed for ns.svc, on live hosts */
    int running;
    int failed;
    int pids[8];       /* of running replicas */
    uint32_t restarts; /* the highest restart count seen */
    double reserved_cpus;
    uint64_t reserved_memory;
};

static void on_host(void *arg, const sage_cluster_host_info *h)
{
    struct look *l = arg;

    if (!h->alive)
        return;
    l->hosts_alive++;
    l->reserved_cpus += h->reserved_cpus;
    l->reserved_memory += h->reserved_memory;
    for (size_t i = 0; i < h->nreplicas; i++) {
        const sage_cluster_replica_info *r = &h->replicas[i];

        if (strcmp(r->ns, l->ns) != 0 || strcmp(r->service, l->svc) != 0)
            continue;
        l->replicas++;
        if (r->restarts > l->restarts)
            l->restarts = r->restarts;
        if (strcmp(r->state, "failed") == 0)
            l->failed++;
        if (strcmp(r->state, "running") == 0 && l->running < 8)
            l->pids[l->running++] = r->pid;
    }
}

static struct look look(const sage_nats_conf *nc, const char *svc)
{
    struct look l;
    sage_err r;

    /* a JetStream cluster just formed may time out a request or two */
    for (int attempt = 0;; attempt++) {
        memset(&l, 0, sizeof l);
        l.ns = th_prefix();
        l.svc = svc;
        r = sage_cluster_hosts(nc, on_host, &l);
        if (r != SAGE_ETIMEDOUT || attempt == 5)
            break;
    }
    ASSERT_OK(r);
    return l;
}

/* WAIT_FOR polls the cluster state (into `l`) until cond holds, or fails
 * the case after ms milliseconds */
#define WAIT_FOR(nc, svc, l, cond, ms)                                                         \
    do {                                                                                       \
        double end_ = th_now_ms() + (ms);                                                      \
        for (;;) {                                                                             \
            l = look(nc, svc);                                                                 \
            if (cond)                                                                          \
                break;                                                                         \
            if (th_now_ms() > end_)                                                            \
                th_fail(__FILE__, __LINE__, "waited %d ms for %s (replicas %d, running %d, "   \
                        "failed %d, hosts %d)", (int)(ms), #cond, l.replicas, l.running,       \
                        l.failed, l.hosts_alive);                                              \
            sleep_ms(50);                                                                      \
        }                                                                                      \
    } while (0)

struct dep {
    int found;
    char status[16];
    char reason[256];
    uint32_t placed[4]; /* per host index, by the ids "h0".."h3" */
};

static void on_dep(void *arg, const sage_cluster_deployment *d)
{
    struct dep *x = arg;

    x->found = 1;
    snprintf(x->status, sizeof x->status, "%s", d->status);
    snprintf(x->reason, sizeof x->reason, "%s", d->reason);
    for (size_t i = 0; i < d->nplacement; i++) {
        const char *h = d->placement[i].host;
        size_t n = strlen(h);

        if (n >= 2 && h[n - 2] == 'h' && h[n - 1] >= '0' && h[n - 1] <= '3')
            x->placed[h[n - 1] - '0'] = d->placement[i].count;
    }
}

static struct dep deployment(const sage_nats_conf *nc, const char *svc)
{
    struct dep x;
    sage_err r;

    memset(&x, 0, sizeof x);
    r = sage_cluster_deployments(nc, th_prefix(), svc, on_dep, &x);
    if (r != SAGE_ENOSERVICE)
        ASSERT_OK(r);
    return x;
}

/* wait_status waits up to ms for svc's deployment to have status */
static struct dep wait_status(const sage_nats_conf *nc, const char *svc, const char *status,
                              int ms)
{
    struct dep d;

    for (double end = th_now_ms() + ms;; sleep_ms(50)) {
        d = deployment(nc, svc);
        if (strcmp(d.status, status) == 0)
            return d;
        ASSERT_LE(th_now_ms(), end);
    }
}

/* ------------------------------------------------------------ fixtures */

/* host_id: "PREFIX-hI", unique per case */
static const char *host_id(int i)
{
    static char ids[4][64];

    snprintf(ids[i], sizeof ids[i], "%s-h%d", th_prefix(), i);
    return ids[i];
}

/* start_host runs `sagesvc host` (host id host_id(i)) on server `server`
 * offering cpus, and waits until its record says it is up */
static pid_t start_host(struct natsfix *f, int i, int server, const char *cpus,
                        const char *memory)
{
    sage_nats_conf nc;
    char log[16];
    pid_t pid;
    struct look l;

    snprintf(log, sizeof log, "host%d", i);
    /* without memory, the list ends where "--memory" would be */
    pid = run(f, log, "host", "--nats", f->url[server], "--id", host_id(i), "--cpus", cpus,
              memory ? "--memory" : NULL, memory, (char *)NULL);
    natsfix_conf(f, &nc, server);
    WAIT_FOR(&nc, "-", l, l.hosts_alive > i, 10000);
    return pid;
}

static void stop_host(pid_t pid)
{
    kill(pid, SIGTERM);
    ASSERT_EQ(th_wait_child(pid, 15000), 0);
}

/* one_host starts one server (nc: its configuration) and one host on it
 * offering cpus */
static pid_t one_host(struct natsfix *f, sage_nats_conf *nc, const char *cpus)
{
    natsfix_start(f, 1, NULL);
    natsfix_conf(f, nc, 0);
    return start_host(f, 0, 0, cpus, NULL);
}

/* undeploy_finish undeploys kv, then stops the host and the servers */
static void undeploy_finish(struct natsfix *f, const sage_nats_conf *nc, pid_t host)
{
    ASSERT_OK(sage_cluster_undeploy(nc, th_prefix(), "kv", 10000));
    stop_host(host);
    finish(f);
}

/* config writes a configuration with one service kv into buf */
static void config(char *buf, size_t cap, struct natsfix *f, int replicas, const char *cpus,
                   const char *memory, const char *lifetime, int max_restarts)
{
    size_t len = (size_t)snprintf(buf, cap,
                                  "namespace: %s\ntransport: nats\nnats:\n  servers: [",
                                  th_prefix());

    for (int i = 0; i < f->n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", f->url[i]);
    len += (size_t)snprintf(buf + len, cap - len,
                            "]\nservices:\n  - name: kv\n    plugin: kv\n    cluster:\n"
                            "      replicas: %d\n      resources: {CPU: %s%s%s}\n"
                            "      lifetime: %s\n      max_restarts: %d\n",
                            replicas, cpus, memory ? ", memory: " : "", memory ? memory : "",
                            lifetime, max_restarts);
    ASSERT_TRUE(len < cap);
}

static void config_file(char *path, size_t cap, struct natsfix *f, const char *text)
{
    FILE *out;

    snprintf(path, cap, "%s/app.yaml", f->dir);
    out = fopen(path, "w");
    ASSERT_TRUE(out != NULL);
    fputs(text, out);
    fclose(out);
}

static sage_err deploy(struct natsfix *f, const char *text, int wait_ms)
{
    sage_nats_conf nc;
    sage_cluster_deploy_opts o;

    natsfix_conf(f, &nc, -1);
    sage_cluster_deploy_opts_init(&o);
    o.nats = &nc;
    o.config_text = text;
    o.config_len = strlen(text);
    o.wait_ms = wait_ms;
    return sage_cluster_deploy(&o);
}

/* DEPLOY_OK deploys, showing the hosts' logs if that fails */
#define DEPLOY_OK(f, text, wait_ms)                   \
    do {                                              \
        sage_err r_ = deploy((f), (text), (wait_ms)); \
        if (r_ != SAGE_OK)                            \
            dump_logs(f);                             \
        ASSERT_OK(r_);                                \
    } while (0)

/* call_kv puts a key through a fresh manager: the outcome */
static sage_err call_kv(struct natsfix *f, int first, int value)
{
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_manager *m = natsfix_manager(f, first, 10, &nc, &co);
    sage_arena *a;
    sage_value res;
    sage_err r;

    ASSERT_OK(sage_arena_new(&a, 0));
    /* each replica has its own store: a put, answered, is the proof */
    r = sage_manager_callf(&res, m, a, "kv", "put", "[s i]", "k", value);
    sage_arena_free(a);
    sage_manager_free(m);
    return r;
}

static int exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

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
    config(text, sizeof text, &f, 1, "1", NULL, "detached", 2);
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
    config(text, sizeof text, &f, 2, "1", NULL, "detached", 0);
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
    config(text, sizeof text, &f, 1, "1", NULL, "detached", 0);
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
    config(text, sizeof text, &f, 1, "1", NULL, "detached", 1);
    ASSERT_ERR(deploy(&f, text, 5000), SAGE_EUNAVAILABLE);
    host = start_host(&f, 0, 0, "2", "512MiB");
    /* three replicas of one CPU on two CPUs */
    config(text, sizeof text, &f, 3, "1", NULL, "detached", 1);
    ASSERT_ERR(deploy(&f, text, 5000), SAGE_EBUSY);
    ASSERT_TRUE(strstr(sage_errdetail(), "asks for 3 replicas of 1 CPU") != NULL);
    ASSERT_TRUE(strstr(sage_errdetail(), "only 2 fit") != NULL);
    ASSERT_TRUE(strstr(sage_errdetail(), "2 of 2 CPUs free") != NULL);
    /* one replica of 3 CPUs */
    config(text, sizeof text, &f, 1, "3", NULL, "detached", 1);
    ASSERT_ERR(deploy(&f, text, 5000), SAGE_EBUSY);
    /* memory: 1 GiB asked, 512 MiB offered */
    config(text, sizeof text, &f, 1, "1", "1GiB", "detached", 1);
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
    config(text, sizeof text, &f, 3, "1", NULL, "detached", 1);
    config_file(path, sizeof path, &f, text);
    cli = run(&f, "deploy", "deploy", path, (char *)NULL);
    ASSERT_EQ(exit_code(th_wait_child(cli, 20000)), 1);
    /* what fits is then accepted: two replicas use both CPUs */
    config(text, sizeof text, &f, 2, "1", "256MiB", "detached", 1);
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
    config(text, sizeof text, &f, 2, "1", NULL, "detached", 1);
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
    pid_t host, cli;
    double t0;

    host = one_host(&f, &nc, "4");
    config(text, sizeof text, &f, 2, "1", NULL, "owned", 1);
    config_file(path, sizeof path, &f, text);
    cli = run(&f, "deploy", "deploy", path, (char *)NULL);
    wait_log(&f, "deploy", "holding 1 owned service", 20000);
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 2);
    ASSERT_OK(call_kv(&f, 0, 7));
    ASSERT_EQ(waitpid(cli, NULL, WNOHANG), 0); /* holding the lease */
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
    config(text, sizeof text, &f, 2, "1.5", NULL, "detached", 1);
    DEPLOY_OK(&f, text, 15000);
    ASSERT_ERR(deploy(&f, text, 15000), SAGE_EEXIST); /* deployed already */
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 2);
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
    config(text, sizeof text, &f, 2, "1", NULL, "detached", 1);
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
