/* harness.c - runs test cases isolated, bounded in time, and cleans up. */
#include "harness.h"

#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SKIP_STATUS 77

/* LeakSanitizer's entry point, present only in ASan builds. A case ends
 * with _exit, which skips the exit-time leak check, so run it by hand. */
void __lsan_do_leak_check(void) __attribute__((weak));

static char prefix[64];

const char *th_prefix(void)
{
    return prefix;
}

const char *th_name(const char *base)
{
    static _Thread_local char bufs[8][256];
    static _Thread_local unsigned k;
    char *b = bufs[k++ % 8];

    snprintf(b, sizeof bufs[0], "%s.%s", prefix, base);
    return b;
}

double th_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void th_skip(const char *why)
{
    fprintf(stderr, "  skipped: %s\n", why);
    fflush(stderr);
    _exit(SKIP_STATUS);
}

void th_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "  FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

int th_serve_child(const sage_service *svc, sage_transport transport,
                   const sage_cluster_opts *co)
{
    int ready[2], pid;
    char c;

    ASSERT_EQ(pipe(ready), 0);
    pid = fork();
    if (pid == 0) {
        sage_task_opts o;
        sage_task *t;

        sage_task_opts_init(&o);
        o.transport = transport;
        o.ns = th_prefix();
        o.cluster = co;
        ASSERT_OK(sage_task_new(&t, svc, &o));
        ASSERT_OK(sage_task_start(t));
        ASSERT_EQ(write(ready[1], "R", 1), 1);
        for (;;)
            pause();
    }
    ASSERT_TRUE(pid > 0);
    ASSERT_EQ(read(ready[0], &c, 1), 1);
    close(ready[0]);
    close(ready[1]);
    return pid;
}

void th_stop_child(int pid)
{
    int st = 0;

    if (kill(pid, SIGSTOP) != 0)
        th_fail(__FILE__, __LINE__, "kill(%d, SIGSTOP): %s", pid, strerror(errno));
    /* SIGSTOP cannot be caught or ignored: this returns promptly */
    while (waitpid(pid, &st, WUNTRACED) < 0 && errno == EINTR)
        ;
    if (!WIFSTOPPED(st))
        th_fail(__FILE__, __LINE__, "child %d did not stop (status 0x%x)", pid, st);
}

int th_wait_child(int pid, int timeout_ms)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    int status = 0;

    if (fd >= 0) {
        struct pollfd p = {fd, POLLIN, 0};
        int r;

        do
            r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        close(fd);
        if (r == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

void th_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void th_backoff(unsigned attempt)
{
    /* 0.1 ms while the condition is likely to come soon, then longer */
    long us = attempt < 10 ? 100 : attempt < 100 ? 1000 : 10000;
    struct timespec ts = {0, us * 1000};

    nanosleep(&ts, NULL);
}

static void rm_file(const char *path)
{
    unlink(path);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* cleanup removes with rm every entry of dir whose name starts with lead
 * and contains pfx: the case's /dev/shm entries ("" lead) and its
 * /tmp/sagesvc-* directories (NATS stores) */
static void cleanup(const char *dir, const char *lead, const char *pfx, void (*rm)(const char *))
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, lead, strlen(lead)) == 0 && strstr(e->d_name, pfx)) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            rm(path);
        }
    }
    closedir(d);
}

static bool selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return true;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

int th_run(const struct th_case *cases, int argc, char **argv)
{
    int failed = 0, passed = 0, skipped = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; cases[i].name; i++) {
        const struct th_case *c = &cases[i];
        double t0;
        int pid, status;

        if (!selected(c->name, argc, argv))
            continue;
        snprintf(prefix, sizeof prefix, "t%dx%d", (int)getpid(), i);
        printf("[ RUN  ] %s\n", c->name);
        fflush(stdout);
        fflush(stderr);
        t0 = th_now_ms();
        pid = fork();
        if (pid == 0) {
            setpgid(0, 0);
            alarm((unsigned)c->timeout_s + 5); /* backstop if the runner dies */
            c->fn();
            fflush(stdout);
            fflush(stderr);
            if (__lsan_do_leak_check)
                __lsan_do_leak_check(); /* reports and exits non-zero on a leak */
            _exit(0);
        }
        setpgid(pid, pid);
        status = th_wait_child(pid, c->timeout_s * 1000);
        kill(-pid, SIGKILL); /* whatever the case left running */
        cleanup("/dev/shm", "", prefix, rm_file);
        cleanup("/tmp", "sagesvc-", prefix, rm_tree);
        if (status == -1) {
            printf("[ FAIL ] %s: timed out after %d s\n", c->name, c->timeout_s);
            failed++;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            printf("[  OK  ] %s (%.0f ms)\n", c->name, th_now_ms() - t0);
            passed++;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP_STATUS) {
            printf("[ SKIP ] %s\n", c->name);
            skipped++;
        } else {
            if (WIFSIGNALED(status))
                printf("[ FAIL ] %s: killed by signal %d\n", c->name, WTERMSIG(status));
            else
                printf("[ FAIL ] %s: exit status %d\n", c->name, WEXITSTATUS(status));
            failed++;
        }
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    if (failed)
        return 1;
    return passed == 0 && skipped > 0 ? SKIP_STATUS : 0;
}
