/* natsfix.c - start, kill and stop real nats-server clusters for tests. */
#include "natsfix.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "sage/cluster.h"

#define NATS_SERVER "/usr/sbin/nats-server"

static int available(void)
{
    return access(NATS_SERVER, X_OK) == 0 || access("/usr/bin/nats-server", X_OK) == 0;
}

static const char *server_path(void)
{
    return access(NATS_SERVER, X_OK) == 0 ? NATS_SERVER : "/usr/bin/nats-server";
}

/* free_port asks the kernel for an unused port on 127.0.0.1 */
static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        th_fail(__FILE__, __LINE__, "cannot find a free port: %s", strerror(errno));
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int accepts(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void write_conf(struct natsfix *f, int i)
{
    char path[256];
    FILE *c;

    snprintf(path, sizeof path, "%s/s%d.conf", f->dir, i);
    c = fopen(path, "w");
    if (c == NULL)
        th_fail(__FILE__, __LINE__, "cannot write %s", path);
    fprintf(c, "server_name: s%d\nlisten: 127.0.0.1:%d\n", i, f->port[i]);
    fprintf(c, "jetstream { store_dir: \"%s/js%d\" }\n", f->dir, i);
    if (f->auth[0]) {
        char user[64], pass[64];

        sscanf(f->auth, "%63[^:]:%63s", user, pass);
        fprintf(c, "authorization { user: \"%s\", password: \"%s\" }\n", user, pass);
    }
    if (f->n > 1) {
        fprintf(c, "cluster {\n  name: sagetest\n  listen: 127.0.0.1:%d\n  routes: [\n",
                f->cport[i]);
        for (int k = 0; k < f->n; k++)
            if (k != i)
                fprintf(c, "    nats-route://127.0.0.1:%d\n", f->cport[k]);
        fprintf(c, "  ]\n}\n");
    }
    fclose(c);
}

static void launch(struct natsfix *f, int i)
{
    char conf[256], log[256];
    pid_t pid;

    snprintf(conf, sizeof conf, "%s/s%d.conf", f->dir, i);
    snprintf(log, sizeof log, "%s/s%d.log", f->dir, i);
    pid = fork();
    if (pid == 0) {
        FILE *out = freopen(log, "a", stdout);

        (void)out;
        dup2(STDOUT_FILENO, STDERR_FILENO);
        execl(server_path(), "nats-server", "-c", conf, (char *)NULL);
        _exit(127);
    }
    f->pid[i] = pid;
}

static void wait_up(struct natsfix *f, int i)
{
    for (int k = 0; k < 1500; k++) {
        int status;

        if (accepts(f->port[i]))
            return;
        if (waitpid(f->pid[i], &status, WNOHANG) == f->pid[i])
            th_fail(__FILE__, __LINE__, "nats-server %d exited at start (see %s/s%d.log)", i,
                    f->dir, i);
        usleep(10000);
    }
    th_fail(__FILE__, __LINE__, "nats-server %d did not come up in 15 s", i);
}

void natsfix_start(struct natsfix *f, int n, const char *auth)
{
    memset(f, 0, sizeof *f);
    if (!sage_cluster_supported())
        th_skip("cluster support is not built in (SAGE_WITH_NATS=OFF)");
    if (!available())
        th_skip("nats-server is not installed");
    if (n < 1 || n > NATSFIX_MAX)
        th_fail(__FILE__, __LINE__, "natsfix: bad server count %d", n);
    f->n = n;
    snprintf(f->auth, sizeof f->auth, "%s", auth ? auth : "");
    snprintf(f->dir, sizeof f->dir, "/tmp/sagesvc-nats-%s", th_prefix());
    mkdir(f->dir, 0700);
    for (int i = 0; i < n; i++) {
        f->port[i] = free_port();
        f->cport[i] = free_port();
        snprintf(f->url[i], sizeof f->url[i], "nats://127.0.0.1:%d", f->port[i]);
        f->urls[i] = f->url[i];
    }
    for (int i = 0; i < n; i++) {
        write_conf(f, i);
        launch(f, i);
    }
    for (int i = 0; i < n; i++)
        wait_up(f, i);
    /* routes form and the JetStream meta group elects a leader: give the
     * cluster a moment (there is no client-visible "formed" signal) */
    if (n > 1)
        usleep(1500000);
}

void natsfix_kill(struct natsfix *f, int i)
{
    if (f->pid[i] > 0) {
        kill(f->pid[i], SIGKILL);
        waitpid(f->pid[i], NULL, 0);
        f->pid[i] = 0;
    }
}

void natsfix_restart(struct natsfix *f, int i)
{
    natsfix_kill(f, i);
    launch(f, i);
    wait_up(f, i);
}

void natsfix_stop(struct natsfix *f)
{
    char cmd[256];

    for (int i = 0; i < f->n; i++)
        if (f->pid[i] > 0) {
            kill(f->pid[i], SIGTERM);
            if (th_wait_child(f->pid[i], 5000) == -1)
                kill(f->pid[i], SIGKILL);
            f->pid[i] = 0;
        }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "natsfix: could not remove %s\n", f->dir);
}

void natsfix_conf(struct natsfix *f, sage_nats_conf *c, int first)
{
    static _Thread_local const char *order[NATSFIX_MAX];
    int k = 0;

    memset(c, 0, sizeof *c);
    if (first >= 0)
        order[k++] = f->urls[first];
    for (int i = 0; i < f->n; i++)
        if (i != first)
            order[k++] = f->urls[i];
    c->servers = order;
    c->nservers = (size_t)f->n;
    c->reconnect_max = -1;
    c->reconnect_wait_ms = 200;
    if (f->auth[0]) {
        static _Thread_local char user[64], pass[64];

        sscanf(f->auth, "%63[^:]:%63s", user, pass);
        c->user = user;
        c->password = pass;
    }
}

sage_manager *natsfix_manager(struct natsfix *f, int first, double timeout, sage_nats_conf *nc,
                              sage_cluster_opts *co)
{
    sage_manager_opts mo;
    sage_manager *m;

    natsfix_conf(f, nc, first);
    memset(co, 0, sizeof *co);
    co->nats = nc;
    sage_manager_opts_init(&mo);
    mo.ns = th_prefix();
    mo.timeout_ms = (int64_t)(timeout * 1000);
    mo.cluster = co;
    ASSERT_OK(sage_manager_new(&m, &mo));
    return m;
}
