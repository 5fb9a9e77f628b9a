/*
 * cluster_server.c - the private nats-server of "sage-bench cluster", from
 * the fixture the tests use too (tests/fixture/natsfix.h): one server on
 * 127.0.0.1, JetStream on (sagesvc's NATS transport keeps its service
 * records in a JetStream key-value bucket), its store and log in a fresh
 * directory under /tmp, ready once its /healthz says so.
 *
 * Placement: the server is not pinned. It inherits the parent's affinity
 * (every CPU the benchmark may use) and its Go scheduler floats over them,
 * sharing each with the pinned caller or host. Both impls see the same.
 *
 * Design notes. The benchmark's own signal handler (bench_proc.c) kills the
 * children it spawned and removes the named objects it knows; a server and
 * a directory tree are neither, so this file chains a handler in front of
 * it that calls natsfix_abort (system calls only: async-signal-safe), then
 * the previous handler. The main flow changes the fixture only with those
 * signals blocked.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "bench_util.h"
#include "cluster.h"
#include "natsfix.h"

static struct {
    struct natsfix f;
    bool started;
    bool handlers; /* ours are installed */
    bool died;     /* it exited unasked */
    struct sigaction old[3];
} srv;

static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};

static void on_signal(int sig)
{
    int saved = errno;

    for (int i = 0; i < 3; i++) {
        if (sigs[i] == sig && !(srv.old[i].sa_flags & SA_SIGINFO) &&
            srv.old[i].sa_handler != SIG_DFL && srv.old[i].sa_handler != SIG_IGN) {
            /* the benchmark's handler kills its children first (so none
             * reports the server's death), then re-raises sig, which stays
             * pending while this handler runs (sa_mask blocks it): the
             * process ends when we return */
            srv.old[i].sa_handler(sig);
            if (srv.started)
                natsfix_abort(&srv.f);
            errno = saved;
            return;
        }
    }
    if (srv.started)
        natsfix_abort(&srv.f);
    signal(sig, SIG_DFL);
    raise(sig);
    errno = saved;
}

static void block(sigset_t *old)
{
    sigset_t s;

    sigemptyset(&s);
    for (int i = 0; i < 3; i++)
        sigaddset(&s, sigs[i]);
    sigprocmask(SIG_BLOCK, &s, old);
}

static void install(void)
{
    struct sigaction sa;

    if (srv.handlers)
        return;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask); /* one cleanup at a time */
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &sa, &srv.old[i]);
    srv.handlers = true;
}

const char *cluster_server_path(void)
{
    return natsfix_server_path();
}

int cluster_server_start(const char *path, char *url, size_t cap)
{
    char err[512];
    sigset_t old;
    int r;

    (void)path; /* the fixture finds the same binary */
    install();
    block(&old);
    r = natsfix_open(&srv.f, 1, NULL, NULL, err, sizeof err);
    srv.started = r == 0;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        fprintf(stderr, "sage-bench: cluster: %s\n", err);
        return -1;
    }
    snprintf(url, cap, "%s", srv.f.url[0]);
    return 0;
}

bool cluster_server_alive(void)
{
    if (srv.died)
        return false;
    if (!srv.started || natsfix_alive(&srv.f, 0))
        return true;
    srv.died = true;
    fprintf(stderr, "sage-bench: cluster: nats-server died; see its log:\n");
    natsfix_show_log(&srv.f, 0, stderr);
    return false;
}

void cluster_server_stop(void)
{
    sigset_t old;

    if (!srv.started)
        return;
    block(&old);
    natsfix_close(&srv.f);
    srv.started = false;
    sigprocmask(SIG_SETMASK, &old, NULL);
}
