/*
 * test_cluster_ha.c - the cluster under faults, against a real 3-server
 * nats-server cluster, real `sagesvc host` daemons and real replicas
 * (SAGESVC_BIN): a server dies, a host dies, a replica hangs, a deployment
 * changes while it serves.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "opsfix.h"
#include "transport/natsio.h"
#include "transport/natskv.h"

/* ------------------------------------------------------------- callers */

/* A thread calling one service over and over until told to stop. */
struct caller {
    struct natsfix *f;
    int server;       /* the NATS server it talks to */
    const char *svc;
    bool fresh;       /* a new manager (a new caller) for every call */
    bool plain;       /* not idempotent: no retries (at most once) */
    const char *method;
    pthread_t thread;
    _Atomic int stop;
    int ok, failed;
    double longest_ms; /* the slowest call, answered or not */
    char last_error[256];
};

/* A caller's patience: a stream whose leader died takes a new one in about
 * 5-7 s here; under a sanitizer, with another test beside it on two CPUs,
 * once more than 20 s (it then answered again, calls after it were fine). */
#ifdef SAGE_SANITIZED
#define CALLER_TIMEOUT_MS 40000
#else
#define CALLER_TIMEOUT_MS 20000
#endif

static void *caller_main(void *arg)
{
    struct caller *c = arg;
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_manager *m = NULL;
    sage_request rq = {.service = c->svc, .method = c->method, .timeout_ms = CALLER_TIMEOUT_MS,
                       .idempotent = !c->plain, .retries = c->plain ? 0 : 10};

    while (!atomic_load(&c->stop)) {
        sage_err e;

        double t0;

        if (m == NULL)
            m = natsfix_manager(c->f, c->server, 20, &nc, &co);
        t0 = th_now_ms();
        e = sage_manager_call_sync(NULL, m, &rq, NULL);
        if (th_now_ms() - t0 > c->longest_ms)
            c->longest_ms = th_now_ms() - t0;
        if (e == SAGE_OK) {
            c->ok++;
        } else {
            c->failed++;
            snprintf(c->last_error, sizeof c->last_error, "%s: %s", sage_errname(e),
                     sage_errdetail());
        }
        if (c->fresh) {
            sage_manager_free(m);
            m = NULL;
        }
        usleep(20000); /* pace: a few dozen calls a second */
    }
    sage_manager_free(m);
    return NULL;
}

static void caller_start(struct caller *c, struct natsfix *f, int server, const char *svc,
                         const char *method, bool fresh, bool plain)
{
    memset(c, 0, sizeof *c);
    c->method = method;
    c->f = f;
    c->server = server;
    c->svc = svc;
    c->fresh = fresh;
    c->plain = plain;
    ASSERT_EQ(pthread_create(&c->thread, NULL, caller_main, c), 0);
}

static void caller_stop(struct caller *c, const char *what)
{
    atomic_store(&c->stop, 1);
    pthread_join(c->thread, NULL);
    printf("  %s: %d calls answered, %d failed, the slowest took %.0f ms%s%s\n", what, c->ok,
           c->failed, c->longest_ms, c->failed ? "; last: " : "", c->last_error);
}

/* ------------------------------------------------------------- reading */

/* hosts_fresh counts the live hosts whose heartbeat is after since_ms */
struct fresh {
    int64_t since_ms;
    int n;
};

static void on_fresh(void *arg, const sage_cluster_host_info *h)
{
    struct fresh *fr = arg;

    if (h->alive && h->heartbeat_ms > fr->since_ms && strstr(h->id, th_prefix()) == h->id)
        fr->n++;
}

static int hosts_fresh(const sage_nats_conf *nc, int64_t since_ms)
{
    struct fresh fr = {since_ms, 0};

    if (sage_cluster_hosts(nc, on_fresh, &fr) != SAGE_OK)
        return -1;
    return fr.n;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* leader_of returns the index of the server leading stream, or -1 */
static int leader_of(struct natsfix *f, struct sage__nio *n, const char *stream)
{
    char leader[64] = "";
    int copies = 0;

    if (sage__nio_stream_info(n, stream, &copies, leader, sizeof leader) != SAGE_OK)
        return -1;
    for (int i = 0; i < f->n; i++)
        if (strcmp(leader, f->name[i]) == 0)
            return i;
    return -1;
}

/* ---------------------------------------------------------------- cases */

/* the server that leads the cluster's state dies: new and existing callers
 * keep calling, the hosts keep reporting, an owned deployment whose
 * deployer lives stays, durable calls continue */
static void t_server_dies(void)
{
    static const char *const streams[] = {"KV_sagesvc_services", "KV_sagesvc_hosts",
                                          "KV_sagesvc_deploy", "KV_sagesvc_leases"};
    struct natsfix f;
    sage_nats_conf nc;
    struct sage__nio_opts no;
    struct sage__nio *n;
    struct caller existing, fresh, durable;
    struct look l;
    char text[2048], path[256], dstream[128];
    pid_t host[3], deployer, list;
    int votes[3] = {0, 0, 0}, victim = 0, survivor, got = 0;
    int64_t killed_ms;
    double end;

    natsfix_start(&f, 3, NULL);
    for (int i = 0; i < 3; i++)
        host[i] = start_host(&f, i, -1, "4", NULL);
    snprintf(text, sizeof text,
             "namespace: %s\ntransport: nats\nnats:\n  servers: [%s, %s, %s]\n"
             "  reconnect: {wait: 0.2}\n"
             "services:\n"
             "  - name: kv\n    plugin: kv\n    cluster: {replicas: 3, lifetime: owned}\n"
             "  - name: dkv\n    plugin: kv\n"
             "    cluster: {replicas: 3, lifetime: detached, delivery: durable}\n",
             th_prefix(), f.url[0], f.url[1], f.url[2]);
    config_file(path, sizeof path, &f, text);
    deployer = run(&f, "deploy", "deploy", path, (char *)NULL);
    wait_log(&f, "deploy", "holding 1 owned service", 30000);
    natsfix_conf(&f, &nc, -1);
    WAIT_FOR(&nc, "kv", l, l.running == 3, 10000);
    WAIT_FOR(&nc, "dkv", l, l.running == 3, 10000);

    /* the victim: the server leading most of the cluster's state */
    memset(&no, 0, sizeof no);
    no.conf = &nc;
    ASSERT_OK(sage__nio_connect(&n, &no));
    snprintf(dstream, sizeof dstream, "SAGE_%s_dkv", th_prefix());
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        int k = leader_of(&f, n, streams[i]);

        if (k >= 0)
            votes[k]++;
    }
    if (leader_of(&f, n, dstream) >= 0)
        votes[leader_of(&f, n, dstream)]++;
    for (int i = 1; i < 3; i++)
        if (votes[i] > votes[victim])
            victim = i;
    ASSERT_TRUE(votes[victim] > 0);
    sage__nio_close(n);
    survivor = (victim + 1) % 3;
    printf("  killing server s%d, which leads %d of the %d streams\n", victim, votes[victim],
           (int)(sizeof streams / sizeof streams[0]) + 1);

    caller_start(&existing, &f, survivor, "kv", "size", false, false);
    caller_start(&fresh, &f, (victim + 2) % 3, "kv", "size", true, false);
    caller_start(&durable, &f, survivor, "dkv", "size", false, false);
    sleep_ms(500); /* calls flow before */
    killed_ms = wall_ms();
    natsfix_kill(&f, victim);

    /* hosts keep reporting: every one writes its record again */
    natsfix_conf(&f, &nc, survivor);
    for (end = th_now_ms() + 30000; (got = hosts_fresh(&nc, killed_ms + 1000)) != 3;) {
        if (th_now_ms() > end)
            dump_logs(&f);
        ASSERT_LE(th_now_ms(), end);
        sleep_ms(200);
    }
    list = run(&f, "list", "host", "--list", "--nats", f.url[survivor], (char *)NULL);
    ASSERT_EQ(exit_code(th_wait_child(list, 20000)), 0);
    /* past a lease's life (15 s) since the kill: the owned deployment stays */
    while (wall_ms() < killed_ms + 17000)
        sleep_ms(200);
    caller_stop(&existing, "existing caller");
    caller_stop(&fresh, "new callers");
    caller_stop(&durable, "durable calls");
    ASSERT_EQ(existing.failed, 0);
    ASSERT_EQ(fresh.failed, 0);
    ASSERT_EQ(durable.failed, 0);
    ASSERT_LE(20, existing.ok);
    ASSERT_LE(20, fresh.ok);
    ASSERT_LE(20, durable.ok);
    ASSERT_STREQ(deployment(&nc, "kv").status, "running");
    l = look(&nc, "kv");
    if (l.running != 3)
        dump_logs(&f);
    ASSERT_EQ(l.running, 3);
    ASSERT_EQ(waitpid(deployer, NULL, WNOHANG), 0); /* still holding its lease */
    ASSERT_TRUE(!log_has(&f, "deploy", "lease was lost"));
    for (int i = 0; i < 3; i++) { /* a server's death is no host's: nothing moved */
        char log[16];

        snprintf(log, sizeof log, "host%d", i);
        ASSERT_TRUE(!log_has(&f, log, "placed again"));
        ASSERT_TRUE(!log_has(&f, log, "answered no probe"));
    }

    kill(deployer, SIGTERM);
    ASSERT_EQ(exit_code(th_wait_child(deployer, 20000)), 0);
    if (sage_cluster_undeploy(&nc, th_prefix(), "dkv", 10000) != SAGE_OK) {
        printf("  undeploy: %s\n", sage_errdetail());
        dump_logs(&f);
        ASSERT_TRUE(0);
    }
    for (int i = 0; i < 3; i++)
        stop_host(host[i]);
    finish(&f);
}


/* a replica that hangs (SIGSTOP) is seen unhealthy within a probe or two
 * (status --cluster and ls --cluster list it so, from its host's record),
 * then killed and started again after its probe_timeout; calls then reach
 * only replicas that answer */
static void t_hung_replica(void)
{
    struct natsfix f;
    sage_nats_conf nc;
    struct look l;
    char text[2048];
    pid_t host, cli;
    int stopped, other;
    double t0;

    host = one_host(&f, &nc, "4");
    config(text, sizeof text, &f, 2, "1", NULL, "detached", 3,
           "      probe_interval: 0.2\n      probe_timeout: 4\n");
    DEPLOY_OK(&f, text, 15000);
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 2);
    stopped = l.pids[0];
    other = l.pids[1];
    ASSERT_EQ(kill(stopped, SIGSTOP), 0);
    t0 = th_now_ms();
    WAIT_FOR(&nc, "kv", l, l.unhealthy == 1, 5000);
    printf("  unhealthy after %.0f ms\n", th_now_ms() - t0);
    ASSERT_LE(th_now_ms() - t0, 1500); /* a probe or two, not the timeout */
    ASSERT_EQ(l.running, 1);
    ASSERT_EQ(l.pids[0], other);
    /* status --cluster shows it, unhealthy, though it answers nothing */
    cli = run(&f, "status", "status", "--cluster", "--nats", f.url[0], "-n", th_prefix(), "kv",
              "--json", (char *)NULL);
    ASSERT_EQ(exit_code(th_wait_child(cli, 20000)), 0);
    ASSERT_TRUE(log_has(&f, "status", "\"state\": \"unhealthy\""));
    ASSERT_TRUE(log_has(&f, "status", "\"answered\": false"));
    ASSERT_TRUE(log_has(&f, "status", "\"host_id\": \"") );
    cli = run(&f, "ls", "ls", "--cluster", "--nats", f.url[0], "-n", th_prefix(), "--json",
              (char *)NULL);
    ASSERT_EQ(exit_code(th_wait_child(cli, 20000)), 0);
    ASSERT_TRUE(log_has(&f, "ls", "\"heartbeat_age_s\""));
    ASSERT_TRUE(log_has(&f, "ls", host_id(0)));
    /* killed after 4 s of silence, started again after its backoff */
    WAIT_FOR(&nc, "kv", l, l.running == 2 && l.unhealthy == 0, 12000);
    printf("  running again after %.0f ms\n", th_now_ms() - t0);
    ASSERT_LE(3900, th_now_ms() - t0);
    ASSERT_TRUE(l.pids[0] != stopped && l.pids[1] != stopped);
    ASSERT_EQ(l.restarts, 1);
    ASSERT_TRUE(kill(stopped, 0) != 0); /* gone */
    ASSERT_TRUE(log_has(&f, "host0", "answered no probe"));
    for (int i = 0; i < 20; i++) /* every call answered: none reaches a hung one */
        ASSERT_OK(call_kv(&f, 0, i));
    undeploy_finish(&f, &nc, host);
}


/* a host dies: once it counts as down (5 s) the listings say 2 of 3 run;
 * once it has been silent for replace_after (12 s) its replicas run on the
 * other hosts; when it comes back, it runs none of them, and its old
 * reservation goes */
static void t_host_lost(void)
{
    struct natsfix f;
    sage_nats_conf nc;
    struct look l;
    struct dep d;
    char text[2048];
    pid_t host[3], cli;
    double t0;

    natsfix_start(&f, 1, NULL);
    natsfix_conf(&f, &nc, 0);
    for (int i = 0; i < 3; i++)
        host[i] = start_host(&f, i, 0, "2", NULL);
    config(text, sizeof text, &f, 3, "1", NULL, "detached", 3, "      replace_after: 12\n");
    DEPLOY_OK(&f, text, 15000);
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 3);
    ASSERT_EQ(l.on_host[0] * 100 + l.on_host[1] * 10 + l.on_host[2], 111);
    kill(host[2], SIGKILL); /* its replicas die with it (SIGTERM from the kernel) */
    ASSERT_TRUE(th_wait_child(host[2], 5000) >= 0);
    t0 = th_now_ms();
    /* once it counts as down (5 s), listings say what runs: 2 of 3, and
     * its replicas unknown */
    for (double end = th_now_ms() + 8000; deployment(&nc, "kv").running != 2; sleep_ms(100))
        ASSERT_LE(th_now_ms(), end);
    cli = run(&f, "list", "host", "--list", "--nats", f.url[0], (char *)NULL);
    ASSERT_EQ(exit_code(th_wait_child(cli, 20000)), 0);
    cli = run(&f, "dlist", "deploy", "--list", "-n", th_prefix(), "--nats", f.url[0],
              (char *)NULL);
    ASSERT_EQ(exit_code(th_wait_child(cli, 20000)), 0);
    /* before replace_after, counted from its last heartbeat (up to 1 s
     * before the kill): nothing moved yet */
    ASSERT_LE(th_now_ms() - t0, 10500);
    ASSERT_TRUE(log_has(&f, "list", "DOWN"));
    ASSERT_TRUE(log_has(&f, "list", "unknown (host down)"));
    ASSERT_TRUE(log_has(&f, "dlist", "kv: 2 of 3 replicas running"));
    WAIT_FOR(&nc, "kv", l, l.running == 3 && l.on_host[2] == 0, 25000);
    printf("  3 replicas run again %.0f ms after the host died\n", th_now_ms() - t0);
    ASSERT_LE(10900, th_now_ms() - t0); /* not before replace_after (from its last heartbeat) */
    d = deployment(&nc, "kv");
    ASSERT_EQ(d.placed[2], 0);
    ASSERT_EQ(d.placed[0] + d.placed[1], 3);
    ASSERT_EQ(l.reserved_cpus * 1000, 3000);
    for (int i = 0; i < 10; i++)
        ASSERT_OK(call_kv(&f, 0, i));
    /* it comes back: nothing runs twice, its stale reservation goes */
    host[2] = start_host(&f, 2, 0, "2", NULL);
    WAIT_FOR(&nc, "kv", l, l.hosts_alive == 3 && l.reserved_cpus * 1000 == 3000, 10000);
    sleep_ms(2500); /* a few of its heartbeats and reconciliations: it starts nothing */
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 3);
    ASSERT_EQ(l.replicas, 3);
    ASSERT_EQ(l.on_host[2], 0);
    ASSERT_EQ(l.reserved_cpus * 1000, 3000);
    ASSERT_TRUE(log_has(&f, "host0", "placed again on"));
    ASSERT_OK(sage_cluster_undeploy(&nc, th_prefix(), "kv", 10000));
    for (int i = 0; i < 3; i++)
        stop_host(host[i]);
    finish(&f);
}


/* ------------------------------------------------ changes in place */

/* A thread watching how many replicas of kv run, by the host records. */
struct watcher {
    sage_nats_conf nc;
    pthread_t thread;
    _Atomic int stop;
    int min_running; /* the fewest seen running at once */
    int samples;
};

static void *watcher_main(void *arg)
{
    struct watcher *w = arg;

    while (!atomic_load(&w->stop)) {
        struct look l;

        memset(&l, 0, sizeof l);
        l.ns = th_prefix();
        l.svc = "kv";
        if (sage_cluster_hosts(&w->nc, look_host, &l) == SAGE_OK) {
            if (w->samples == 0 || l.running < w->min_running)
                w->min_running = l.running;
            w->samples++;
        }
        usleep(50000);
    }
    return NULL;
}

/* replacements_after_serving counts the old replicas LOG says were
 * stopped for a new one, failing the case if that new one did not serve
 * (its "serves" line earlier in the log) when the old one stopped */
static int replacements_after_serving(struct natsfix *f, const char *log)
{
    char path[256], *text = malloc(1 << 20);
    const char *p;
    size_t n;
    int count = 0;
    FILE *in;

    ASSERT_TRUE(text != NULL);
    snprintf(path, sizeof path, "%s/%s.log", f->dir, log);
    ASSERT_TRUE((in = fopen(path, "r")) != NULL);
    n = fread(text, 1, (1 << 20) - 1, in);
    text[n] = '\0';
    fclose(in);
    for (p = text; (p = strstr(p, ") replaces it")) != NULL; p++) {
        const char *line = p, *by;
        char serves[64], *at;
        int pid;

        while (line > text && line[-1] != '\n')
            line--;
        by = strstr(line, "stops; pid ");
        ASSERT_TRUE(by != NULL && by < p);
        pid = atoi(by + strlen("stops; pid "));
        snprintf(serves, sizeof serves, "replica pid %d serves", pid);
        at = strstr(text, serves);
        if (at == NULL || at > line)
            th_fail(__FILE__, __LINE__, "%s: an old replica stopped before pid %d served", log,
                    pid);
        count++;
    }
    free(text);
    return count;
}

static bool same_pids(const struct look *a, const struct look *b)
{
    int found = 0;

    for (int i = 0; i < a->running; i++)
        for (int k = 0; k < b->running; k++)
            found += a->pids[i] == b->pids[k];
    return found == a->running;
}

/* relay_config writes a configuration of service kv served by the relay
 * test plugin (method echo), whose factory takes start_delay seconds */
static void relay_config(char *text, size_t cap, struct natsfix *f, int replicas,
                         double start_delay)
{
    char extra[128];
    size_t len;
    char *plugin;

    snprintf(extra, sizeof extra, "    config: {start_delay: %g}\n", start_delay);
    config(text, cap, f, replicas, "1", NULL, "detached", 3, NULL);
    plugin = strstr(text, "plugin: kv\n");
    ASSERT_TRUE(plugin != NULL);
    len = strlen("plugin: " SAGE_TEST_PLUGINS "/relay.so");
    ASSERT_TRUE(strlen(text) + len + strlen(extra) < cap);
    memmove(plugin + len, plugin + strlen("plugin: kv"), strlen(plugin + strlen("plugin: kv")) + 1);
    memcpy(plugin, "plugin: " SAGE_TEST_PLUGINS "/relay.so", len);
    strcat(text, extra);
}

/* scaling up and down keeps the replicas that run; a new configuration
 * replaces every replica, one at a time, never with fewer serving, and no
 * call is lost meanwhile; an unchanged file changes nothing; resources
 * cannot change in place */
static void t_scale_and_roll(void)
{
    struct natsfix f;
    sage_nats_conf nc;
    struct look l, before;
    struct watcher w;
    struct caller c;
    char text[2048], path[256];
    pid_t host[2], cli;

    natsfix_start(&f, 1, NULL);
    natsfix_conf(&f, &nc, 0);
    for (int i = 0; i < 2; i++)
        host[i] = start_host(&f, i, 0, "4", NULL);
    relay_config(text, sizeof text, &f, 2, 0);
    DEPLOY_OK(&f, text, 15000);
    before = look(&nc, "kv");
    ASSERT_EQ(before.running, 2);
    caller_start(&c, &f, 0, "kv", "echo", false, true);

    /* scale up: the two keep running, two more join */
    ASSERT_OK(sage_cluster_scale(&nc, th_prefix(), "kv", 4, 15000));
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 4);
    ASSERT_TRUE(same_pids(&before, &l));
    ASSERT_EQ(deployment(&nc, "kv").placed[0] + deployment(&nc, "kv").placed[1], 4);
    /* scale down by the command line: 3 run, none restarted */
    before = l;
    cli = run(&f, "scale", "scale", "-n", th_prefix(), "--nats", f.url[0], "kv", "3",
              (char *)NULL);
    ASSERT_EQ(exit_code(th_wait_child(cli, 20000)), 0);
    ASSERT_TRUE(log_has(&f, "scale", "kv: 3 of 3 replicas running"));
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 3);
    ASSERT_TRUE(same_pids(&l, &before));
    WAIT_FOR(&nc, "kv", l, l.reserved_cpus * 1000 == 3000, 5000); /* at the hosts' next write */

    /* the same file again: nothing changes (3 still, as scaled) */
    relay_config(text, sizeof text, &f, 3, 0);
    before = l;
    DEPLOY_OK(&f, text, 15000);
    l = look(&nc, "kv");
    ASSERT_TRUE(same_pids(&before, &l) && l.running == 3);

    /* a new configuration, whose replicas take 1.5 s to start: rolled out,
     * each old replica stopping only once its replacement serves */
    memset(&w, 0, sizeof w);
    natsfix_conf(&f, &w.nc, 0);
    ASSERT_EQ(pthread_create(&w.thread, NULL, watcher_main, &w), 0);
    relay_config(text, sizeof text, &f, 3, 1.5);
    DEPLOY_OK(&f, text, 40000);
    atomic_store(&w.stop, 1);
    pthread_join(w.thread, NULL);
    l = look(&nc, "kv");
    printf("  rolled out: %d samples, at least %d replicas running throughout\n", w.samples,
           w.min_running);
    ASSERT_EQ(l.running, 3);
    for (int i = 0; i < l.running; i++)
        for (int k = 0; k < before.running; k++)
            ASSERT_NE(l.pids[i], before.pids[k]); /* every one replaced */
    ASSERT_LE(2, w.min_running); /* at least N-1 */
    ASSERT_LE(10, w.samples);
    ASSERT_EQ(replacements_after_serving(&f, "host0") + replacements_after_serving(&f, "host1"),
              3);
    caller_stop(&c, "calls while scaling and rolling out");
    ASSERT_EQ(c.failed, 0);
    ASSERT_LE(20, c.ok);

    /* only the count changed in the file: a scale, no replacement */
    before = l;
    relay_config(text, sizeof text, &f, 4, 1.5);
    DEPLOY_OK(&f, text, 15000);
    l = look(&nc, "kv");
    ASSERT_EQ(l.running, 4);
    ASSERT_TRUE(same_pids(&before, &l));
    /* resources cannot change in place */
    config(text, sizeof text, &f, 4, "2", NULL, "detached", 3, NULL);
    ASSERT_ERR(deploy(&f, text, 15000), SAGE_ECONFIG);
    ASSERT_TRUE(strstr(sage_errdetail(), "resources") != NULL);
    /* deploy --list says what runs */
    config_file(path, sizeof path, &f, text);
    cli = run(&f, "list", "deploy", "--list", "-n", th_prefix(), "--nats", f.url[0],
              (char *)NULL);
    ASSERT_EQ(exit_code(th_wait_child(cli, 20000)), 0);
    ASSERT_TRUE(log_has(&f, "list", "kv: 4 of 4 replicas running"));
    ASSERT_TRUE(log_has(&f, "list", "generation 2"));
    ASSERT_OK(sage_cluster_undeploy(&nc, th_prefix(), "kv", 10000));
    for (int i = 0; i < 2; i++)
        stop_host(host[i]);
    finish(&f);
}

/* ------------------------------------------------------------- metrics */

/* http_get fetches url ("http://127.0.0.1:PORT/PATH") into buf; the body's
 * length, or -1 */
static int http_get(const char *url, char *buf, size_t cap)
{
    struct sockaddr_in a;
    char req[256];
    int port = 0, fd, got = 0, n;
    const char *path = "/";
    char *body;

    if (sscanf(url, "http://127.0.0.1:%d", &port) != 1)
        return -1;
    if ((path = strchr(url + 7, '/')) == NULL)
        path = "/";
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        return -1;
    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        close(fd);
        return -1;
    }
    while ((size_t)got < cap - 1 && (n = (int)read(fd, buf + got, cap - 1 - (size_t)got)) > 0)
        got += n;
    close(fd);
    buf[got] = '\0';
    if (strstr(buf, " 200 ") == NULL || (body = strstr(buf, "\r\n\r\n")) == NULL)
        return -1;
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return (int)strlen(buf);
}

/* count_lines counts the lines of text that start with prefix and end with
 * " value" */
static int count_lines(const char *text, const char *prefix, const char *value)
{
    int n = 0;

    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p), vl = strlen(value);

        if (strncmp(p, prefix, strlen(prefix)) == 0 && len > vl + 1 && p[len - vl - 1] == ' ' &&
            strncmp(p + len - vl, value, vl) == 0)
            n++;
    }
    return n;
}

/* sum_lines adds up the values of the lines of text starting with prefix */
static long sum_lines(const char *text, const char *prefix)
{
    long sum = 0;

    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        const char *end = strchr(p, '\n'), *sp;

        if (strncmp(p, prefix, strlen(prefix)) != 0)
            continue;
        for (sp = end ? end : p + strlen(p); sp > p && sp[-1] != ' '; sp--)
            ;
        sum += strtol(sp, NULL, 10);
    }
    return sum;
}

/* `sagesvc host --metrics` serves its replicas' figures, labelled by host
 * and replica, valid for promtool; a replica that does not answer is up 0 */
static void t_host_metrics(void)
{
    struct natsfix f;
    sage_nats_conf nc;
    struct look l;
    char text[2048], url[256] = "", prefix[256], path[300], cmd[600];
    char *body = malloc(1 << 20);
    pid_t host;
    FILE *out;

    ASSERT_TRUE(body != NULL);
    natsfix_start(&f, 1, NULL);
    natsfix_conf(&f, &nc, 0);
    host = run(&f, "host0", "host", "--nats", f.url[0], "--id", host_id(0), "--cpus", "4",
               "--metrics", "127.0.0.1:0", (char *)NULL);
    wait_log(&f, "host0", "metrics: http://", 10000);
    {
        char logp[256], line[512];
        FILE *in;

        snprintf(logp, sizeof logp, "%s/host0.log", f.dir);
        ASSERT_TRUE((in = fopen(logp, "r")) != NULL);
        while (fgets(line, sizeof line, in))
            if (sscanf(line, "metrics: %255s", url) == 1)
                break;
        fclose(in);
    }
    ASSERT_TRUE(url[0] != '\0');
    WAIT_FOR(&nc, "kv", l, l.hosts_alive == 1, 10000);
    /* nothing deployed: a valid, empty exposition */
    ASSERT_LE(0, http_get(url, body, 1 << 20));
    config(text, sizeof text, &f, 2, "1", NULL, "detached", 3, NULL);
    DEPLOY_OK(&f, text, 15000);
    for (int i = 0; i < 5; i++)
        ASSERT_OK(call_kv(&f, 0, i));
    {
        sage_nats_conf c2;
        sage_cluster_opts co;
        sage_manager *m = natsfix_manager(&f, 0, 5, &c2, &co);

        ASSERT_ERR(sage_manager_callf(NULL, m, NULL, "kv", "nosuch", "[]"), SAGE_ENOMETHOD);
        sage_manager_free(m);
    }
    ASSERT_LE(1, http_get(url, body, 1 << 20));
    snprintf(prefix, sizeof prefix, "sagesvc_up{namespace=\"%s\",service=\"kv\",host=\"%s\",replica=\"",
             th_prefix(), host_id(0));
    ASSERT_EQ(count_lines(body, prefix, "1"), 2);
    snprintf(prefix, sizeof prefix, "sagesvc_service_requests_total{namespace=\"%s\",service=\"kv\",host=", th_prefix());
    ASSERT_EQ(sum_lines(body, prefix), 6); /* 5 puts and the unknown method */
    ASSERT_TRUE(strstr(body, "sagesvc_call_duration_seconds_bucket{") != NULL);
    ASSERT_TRUE(strstr(body, ",method=\"put\"") != NULL);
    snprintf(path, sizeof path, "%s/metrics.txt", f.dir);
    ASSERT_TRUE((out = fopen(path, "w")) != NULL);
    fputs(body, out);
    fclose(out);
    if (access("/usr/bin/promtool", X_OK) == 0) {
        snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
        ASSERT_EQ(system(cmd), 0);
    } else {
        printf("  promtool not installed: the format is not checked\n");
    }
    /* a replica that answers nothing: up 0, no other series */
    l = look(&nc, "kv");
    ASSERT_EQ(kill(l.pids[0], SIGSTOP), 0);
    ASSERT_LE(1, http_get(url, body, 1 << 20));
    ASSERT_EQ(kill(l.pids[0], SIGCONT), 0);
    snprintf(prefix, sizeof prefix, "sagesvc_up{namespace=\"%s\",service=\"kv\",host=\"%s\",replica=\"",
             th_prefix(), host_id(0));
    ASSERT_EQ(count_lines(body, prefix, "1"), 1);
    ASSERT_EQ(count_lines(body, prefix, "0"), 1);
    free(body);
    undeploy_finish(&f, &nc, host);
}

/* a host's nats.replicas reaches its replicas: the durable stream a
 * replica creates gets that many copies, not the default three */
static void t_replica_copies(void)
{
    struct natsfix f;
    sage_nats_conf nc;
    struct sage__nio_opts no;
    struct sage__nio *n;
    struct look l;
    char text[2048], path[256], stream[128], leader[64];
    int copies = 0;
    pid_t host;

    natsfix_start(&f, 3, NULL);
    snprintf(text, sizeof text, "nats:\n  servers: [%s, %s, %s]\n  replicas: 2\n", f.url[0],
             f.url[1], f.url[2]);
    config_file(path, sizeof path, &f, text);
    host = run(&f, "host0", "host", "--config", path, "--id", host_id(0), "--cpus", "4",
               (char *)NULL);
    natsfix_conf(&f, &nc, -1);
    WAIT_FOR(&nc, "-", l, l.hosts_alive > 0, 10000);
    snprintf(text, sizeof text,
             "namespace: %s\ntransport: nats\n"
             "services:\n  - name: dkv\n    plugin: kv\n"
             "    cluster: {replicas: 1, lifetime: detached, delivery: durable}\n",
             th_prefix());
    DEPLOY_OK(&f, text, 15000);
    WAIT_FOR(&nc, "dkv", l, l.running == 1, 10000);
    memset(&no, 0, sizeof no);
    no.conf = &nc;
    ASSERT_OK(sage__nio_connect(&n, &no));
    snprintf(stream, sizeof stream, "SAGE_%s_dkv", th_prefix());
    ASSERT_OK(sage__nio_stream_info(n, stream, &copies, leader, sizeof leader));
    sage__nio_close(n);
    ASSERT_EQ(copies, 2);
    ASSERT_OK(sage_cluster_undeploy(&nc, th_prefix(), "dkv", 10000));
    stop_host(host);
    finish(&f);
}

static const struct th_case cases[] = {
    {"server_dies", t_server_dies, 120},
    {"hung_replica", t_hung_replica, 60},
    {"host_lost", t_host_lost, 90},
    {"scale_and_roll", t_scale_and_roll, 120},
    {"host_metrics", t_host_metrics, 60},
    {"replica_copies", t_replica_copies, 60},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
