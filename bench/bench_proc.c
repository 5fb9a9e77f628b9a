/*
 * bench_proc.c - the supervision half of bench_util.h: children forked for
 * a run, the named objects a run creates, and the signal handler that
 * removes both when the benchmark is interrupted.
 *
 * Design notes. The signal handler reads two small static registries (live
 * children, named objects); the main flow changes them only with the
 * handled signals blocked, so the handler never sees a half-written entry,
 * and the handler itself uses async-signal-safe calls only (kill, waitpid,
 * unlink, mq_unlink, write). SIGCHLD stays blocked in the parent so that
 * bench_reap can sleep in sigtimedwait: it waits for its children without
 * waking up periodically on the CPUs being measured.
 */
#include "bench_util.h"

#include <errno.h>
#include <mqueue.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sage/queue.h"

#define MAX_KIDS 8
#define MAX_RES 32
#define RES_NAME_MAX 128
#define REAP_GRACE_S 5

/* ------------------------------------------------------- registries */

struct res {
    volatile sig_atomic_t used;
    enum bench_res_kind kind;
    char name[RES_NAME_MAX];
};

static pid_t kids[MAX_KIDS];
static struct res res[MAX_RES];

/* block_signals blocks the signals whose handler reads the registries and
 * stores the previous mask in old. */
static void block_signals(sigset_t *old)
{
    sigset_t s;

    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGHUP);
    sigprocmask(SIG_BLOCK, &s, old);
}

static void kid_forget(pid_t pid)
{
    sigset_t old;

    block_signals(&old);
    for (int i = 0; i < MAX_KIDS; i++)
        if (kids[i] == pid)
            kids[i] = 0;
    sigprocmask(SIG_SETMASK, &old, NULL);
}

/* remove_raw removes one object with async-signal-safe calls only. */
static void remove_raw(const struct res *r)
{
    static const char shm_prefix[] = "/dev/shm/sage.q."; /* documented in sage/queue.h */
    char path[sizeof shm_prefix + RES_NAME_MAX];

    switch (r->kind) {
    case BENCH_RES_SAGE_QUEUE:
        memcpy(path, shm_prefix, sizeof shm_prefix - 1);
        memcpy(path + sizeof shm_prefix - 1, r->name, strlen(r->name) + 1);
        unlink(path);
        break;
    case BENCH_RES_MQ:
        mq_unlink(r->name);
        break;
    case BENCH_RES_FILE:
        unlink(r->name);
        break;
    }
}

int bench_res_add(enum bench_res_kind kind, const char *name)
{
    sigset_t old;
    int h = -1;

    if (strlen(name) >= RES_NAME_MAX) {
        fprintf(stderr, "sage-bench: object name '%s' too long\n", name);
        return -1;
    }
    block_signals(&old);
    for (int i = 0; i < MAX_RES; i++) {
        if (!res[i].used) {
            res[i].kind = kind;
            strcpy(res[i].name, name);
            res[i].used = 1;
            h = i;
            break;
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (h < 0)
        fprintf(stderr, "sage-bench: too many named objects\n");
    return h;
}

void bench_res_remove(int h)
{
    sigset_t old;

    if (h < 0 || h >= MAX_RES || !res[h].used)
        return;
    /* the public calls in the normal path, the raw ones in the handler */
    switch (res[h].kind) {
    case BENCH_RES_SAGE_QUEUE:
        sage_queue_unlink(res[h].name);
        break;
    case BENCH_RES_MQ:
        mq_unlink(res[h].name);
        break;
    case BENCH_RES_FILE:
        unlink(res[h].name);
        break;
    }
    block_signals(&old);
    res[h].used = 0;
    sigprocmask(SIG_SETMASK, &old, NULL);
}

void bench_res_remove_all(void)
{
    for (int i = 0; i < MAX_RES; i++)
        bench_res_remove(i);
}

static void on_signal(int sig)
{
    static const char msg[] = "sage-bench: interrupted; children killed, objects removed\n";

    for (int i = 0; i < MAX_KIDS; i++)
        if (kids[i] > 0)
            kill(kids[i], SIGKILL);
    for (int i = 0; i < MAX_KIDS; i++)
        if (kids[i] > 0)
            waitpid(kids[i], NULL, 0);
    for (int i = 0; i < MAX_RES; i++)
        if (res[i].used)
            remove_raw(&res[i]);
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
        /* nothing more to do in a handler */
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void bench_install_signals(void)
{
    struct sigaction sa;
    sigset_t chld;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask); /* one cleanup at a time */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
}

/* ------------------------------------------------------- child processes */

pid_t bench_spawn(int cpu, int timeout_s, bench_child_fn fn, void *arg, int index)
{
    pid_t parent = getpid();
    sigset_t old, none;
    pid_t pid;
    int slot = -1;

    /* nothing buffered may be written twice by parent and child */
    fflush(stdout);
    fflush(stderr);
    /* bench_reap sleeps in sigtimedwait, which needs SIGCHLD blocked */
    sigemptyset(&none);
    sigaddset(&none, SIGCHLD);
    sigprocmask(SIG_BLOCK, &none, NULL);
    block_signals(&old);
    for (int i = 0; i < MAX_KIDS && slot < 0; i++)
        if (kids[i] == 0)
            slot = i;
    if (slot < 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        fprintf(stderr, "sage-bench: too many children\n");
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        fprintf(stderr, "sage-bench: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid > 0) {
        kids[slot] = pid;
        sigprocmask(SIG_SETMASK, &old, NULL);
        return pid;
    }

    /* child: plain signal dispositions, nothing blocked, and no life
     * beyond the parent's or the run's time bound */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGALRM, SIG_DFL);
    signal(SIGPIPE, SIG_IGN); /* a dead peer shows as EPIPE, reported */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(3);
    if (bench_pin(cpu) != 0)
        _exit(3);
    alarm((unsigned)timeout_s);
    _exit(fn(arg, index) == 0 ? 0 : 1);
}

/* describe prints how child index pid ended, if not with status 0; returns
 * 0 for a clean exit. */
static int describe(const char *label, int index, pid_t pid, int st, bool killed_by_us)
{
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (killed_by_us)
        return -1; /* its peer's failure was reported */
    if (WIFEXITED(st))
        fprintf(stderr, "sage-bench: %s: side %c (pid %d) failed (exit %d)\n", label, 'A' + index,
                (int)pid, WEXITSTATUS(st));
    else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
        fprintf(stderr, "sage-bench: %s: side %c (pid %d) wedged: killed at its time bound\n",
                label, 'A' + index, (int)pid);
    else if (WIFSIGNALED(st))
        fprintf(stderr, "sage-bench: %s: side %c (pid %d) killed by signal %d (%s)\n", label,
                'A' + index, (int)pid, WTERMSIG(st), strsignal(WTERMSIG(st)));
    return -1;
}

int bench_reap(const pid_t *pids, int n, int timeout_s, const char *label)
{
    bool done[MAX_KIDS] = {false}, killed[MAX_KIDS] = {false};
    int64_t deadline = bench_now_ns() + (int64_t)timeout_s * 1000000000;
    int left = n, rc = 0;
    sigset_t chld;

    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    while (left > 0) {
        bool failed_now = false;

        for (int i = 0; i < n; i++) {
            int st;

            if (!done[i] && pids[i] <= 0) { /* never started */
                done[i] = true;
                left--;
                rc = -1;
                failed_now = true;
            }
            if (done[i] || waitpid(pids[i], &st, WNOHANG) != pids[i])
                continue;
            done[i] = true;
            left--;
            kid_forget(pids[i]);
            if (describe(label, i, pids[i], st, killed[i]) != 0) {
                rc = -1;
                failed_now = true;
            }
        }
        if (left == 0)
            break;
        if (failed_now || bench_now_ns() >= deadline) {
            if (!failed_now)
                fprintf(stderr, "sage-bench: %s: still running after %d s, killed\n", label,
                        timeout_s);
            for (int i = 0; i < n; i++) {
                if (!done[i] && !killed[i]) {
                    kill(pids[i], SIGKILL);
                    killed[i] = true;
                }
            }
            rc = -1;
            deadline = bench_now_ns() + (int64_t)REAP_GRACE_S * 1000000000;
            continue;
        }
        {
            int64_t wait = deadline - bench_now_ns();
            struct timespec ts = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};

            sigtimedwait(&chld, NULL, &ts);
        }
    }
    return rc;
}
