/* opsfix.c - the cluster operations' test fixture (opsfix.h). */
#include "opsfix.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SAGESVC_BIN
#error "SAGESVC_BIN must name the sagesvc binary"
#endif

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

pid_t run(struct natsfix *f, const char *log, ...)
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

int log_has(struct natsfix *f, const char *log, const char *text)
{
    char path[256], *buf;
    size_t n, cap = 1 << 20;
    FILE *in;
    int found;

    snprintf(path, sizeof path, "%s/%s.log", f->dir, log);
    if ((in = fopen(path, "r")) == NULL)
        return 0;
    buf = malloc(cap);
    ASSERT_TRUE(buf != NULL);
    n = fread(buf, 1, cap - 1, in);
    buf[n] = '\0';
    fclose(in);
    found = strstr(buf, text) != NULL;
    free(buf);
    return found;
}

void wait_log(struct natsfix *f, const char *log, const char *text, int ms)
{
    double end = th_now_ms() + ms;

    while (!log_has(f, log, text)) {
        if (th_now_ms() > end)
            th_fail(__FILE__, __LINE__, "waited %d ms for '%s' in %s.log", ms, text, log);
        sleep_ms(20);
    }
}

void dump_logs(struct natsfix *f)
{
    char cmd[300];

    snprintf(cmd, sizeof cmd, "tail -n +1 %s/*.log >&2", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "(no logs)\n");
}

void finish(struct natsfix *f)
{
    if (getenv("SAGE_TEST_VERBOSE"))
        dump_logs(f);
    natsfix_stop(f);
}


void look_host(void *arg, const sage_cluster_host_info *h)
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
        if (strcmp(r->state, "unhealthy") == 0)
            l->unhealthy++;
        if (strcmp(r->state, "running") == 0 && l->running < 8) {
            size_t n = strlen(h->id);

            l->pids[l->running++] = r->pid;
            if (n >= 2 && h->id[n - 2] == 'h' && h->id[n - 1] >= '0' && h->id[n - 1] <= '3')
                l->on_host[h->id[n - 1] - '0']++;
        }
    }
}

struct look look(const sage_nats_conf *nc, const char *svc)
{
    struct look l;
    sage_err r;

    /* a JetStream cluster just formed may time out a request or two */
    for (int attempt = 0;; attempt++) {
        memset(&l, 0, sizeof l);
        l.ns = th_prefix();
        l.svc = svc;
        r = sage_cluster_hosts(nc, look_host, &l);
        if (r != SAGE_ETIMEDOUT || attempt == 5)
            break;
    }
    ASSERT_OK(r);
    return l;
}



static void on_dep(void *arg, const sage_cluster_deployment *d)
{
    struct dep *x = arg;

    x->found = 1;
    snprintf(x->status, sizeof x->status, "%s", d->status);
    snprintf(x->reason, sizeof x->reason, "%s", d->reason);
    x->running = d->running;
    for (size_t i = 0; i < d->nplacement; i++) {
        const char *h = d->placement[i].host;
        size_t n = strlen(h);

        if (n >= 2 && h[n - 2] == 'h' && h[n - 1] >= '0' && h[n - 1] <= '3')
            x->placed[h[n - 1] - '0'] = d->placement[i].count;
    }
}

struct dep deployment(const sage_nats_conf *nc, const char *svc)
{
    struct dep x;
    sage_err r;

    memset(&x, 0, sizeof x);
    r = sage_cluster_deployments(nc, th_prefix(), svc, on_dep, &x);
    if (r != SAGE_ENOSERVICE)
        ASSERT_OK(r);
    return x;
}

struct dep wait_status(const sage_nats_conf *nc, const char *svc, const char *status,
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

const char *host_id(int i)
{
    static char ids[4][64];

    snprintf(ids[i], sizeof ids[i], "%s-h%d", th_prefix(), i);
    return ids[i];
}

pid_t start_host(struct natsfix *f, int i, int server, const char *cpus,
                        const char *memory)
{
    sage_nats_conf nc;
    char log[16], urls[NATSFIX_MAX * 64];
    pid_t pid;
    struct look l;

    snprintf(log, sizeof log, "host%d", i);
    /* without memory, the list ends where "--memory" would be */
    if (server >= 0) {
        snprintf(urls, sizeof urls, "%s", f->url[server]);
    } else {
        urls[0] = '\0';
        for (int k = 0; k < f->n; k++)
            snprintf(urls + strlen(urls), sizeof urls - strlen(urls), "%s%s", k ? "," : "",
                     f->url[k]);
    }
    pid = run(f, log, "host", "--nats", urls, "--id", host_id(i), "--cpus", cpus,
              memory ? "--memory" : NULL, memory, (char *)NULL);
    natsfix_conf(f, &nc, server);
    WAIT_FOR(&nc, "-", l, l.hosts_alive > i, 10000);
    return pid;
}

void stop_host(pid_t pid)
{
    kill(pid, SIGTERM);
    ASSERT_EQ(th_wait_child(pid, 15000), 0);
}

pid_t one_host(struct natsfix *f, sage_nats_conf *nc, const char *cpus)
{
    natsfix_start(f, 1, NULL);
    natsfix_conf(f, nc, 0);
    return start_host(f, 0, 0, cpus, NULL);
}

void undeploy_finish(struct natsfix *f, const sage_nats_conf *nc, pid_t host)
{
    ASSERT_OK(sage_cluster_undeploy(nc, th_prefix(), "kv", 10000));
    stop_host(host);
    finish(f);
}

void config(char *buf, size_t cap, struct natsfix *f, int replicas, const char *cpus,
                   const char *memory, const char *lifetime, int max_restarts, const char *extra)
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
    if (extra && len < cap)
        len += (size_t)snprintf(buf + len, cap - len, "%s", extra);
    ASSERT_TRUE(len < cap);
}

void config_file(char *path, size_t cap, struct natsfix *f, const char *text)
{
    FILE *out;

    snprintf(path, cap, "%s/app.yaml", f->dir);
    out = fopen(path, "w");
    ASSERT_TRUE(out != NULL);
    fputs(text, out);
    fclose(out);
}

sage_err deploy(struct natsfix *f, const char *text, int64_t wait_ms)
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


sage_err call_kv(struct natsfix *f, int first, int value)
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

int exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

