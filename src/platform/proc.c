/* proc.c - process identity and liveness. */
#include "platform/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Atomic pid_t cached_pid;
static _Atomic uint64_t cached_start;
static _Atomic uint32_t fork_gen;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* read_stat reads the stat file at path (/proc/PID/stat) and returns a
 * pointer just past the ")" that ends the command name (which may itself
 * contain spaces or parens). Only system calls and plain loops: the fork
 * handler uses it. */
static char *read_stat(const char *path, char *buf, size_t cap)
{
    ssize_t n;
    int fd;
    char *p;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p ? p + 1 : NULL;
}

/* parse_stat reads the state (field 3) and the start time (field 22) from
 * p, what read_stat returned; 0 for a field it does not find. */
static void parse_stat(const char *p, char *statep, uint64_t *startp)
{
    int field = 2;

    *statep = 0;
    *startp = 0;
    for (; *p; p++) {
        if (*p != ' ')
            continue;
        field++;
        if (field == 3) {
            *statep = p[1];
        } else if (field == 22) {
            uint64_t v = 0;

            for (p++; *p >= '0' && *p <= '9'; p++)
                v = v * 10 + (uint64_t)(*p - '0');
            *startp = v;
            return;
        }
    }
}

static uint64_t own_start_time(void)
{
    char buf[1024], state;
    char *p = read_stat("/proc/self/stat", buf, sizeof buf);
    uint64_t start = 0;

    if (p)
        parse_stat(p, &state, &start);
    return start;
}

static void after_fork_child(void)
{
    atomic_store_explicit(&cached_pid, getpid(), memory_order_relaxed);
    atomic_store_explicit(&cached_start, own_start_time(), memory_order_relaxed);
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
}

static void init_once(void)
{
    atomic_store_explicit(&cached_start, own_start_time(), memory_order_relaxed);
    atomic_store_explicit(&cached_pid, getpid(), memory_order_relaxed);
    pthread_atfork(NULL, NULL, after_fork_child);
}

pid_t sage__pid(void)
{
    pid_t p = atomic_load_explicit(&cached_pid, memory_order_relaxed);

    if (p == 0) {
        pthread_once(&once, init_once);
        p = atomic_load_explicit(&cached_pid, memory_order_relaxed);
    }
    return p;
}

uint64_t sage__start_time(void)
{
    (void)sage__pid(); /* pthread_once orders init_once's stores before us */
    return atomic_load_explicit(&cached_start, memory_order_relaxed);
}

uint32_t sage__fork_gen(void)
{
    (void)sage__pid();
    return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

bool sage__pid_alive_start(pid_t pid, uint64_t *startp)
{
    char path[64], buf[1024], state;
    char *p;

    *startp = 0;
    if (pid <= 0)
        return false;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return false;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    p = read_stat(path, buf, sizeof buf);
    if (p == NULL)
        return true; /* no /proc: trust kill() */
    parse_stat(p, &state, startp);
    if (state == 'Z' || state == 'X' || state == 'x') {
        *startp = 0;
        return false;
    }
    return true;
}

bool sage__pid_alive(pid_t pid)
{
    uint64_t start;

    return sage__pid_alive_start(pid, &start);
}

uint64_t sage__pid_start_time(pid_t pid)
{
    char path[64], buf[1024], state;
    uint64_t start = 0;
    char *p;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    p = read_stat(path, buf, sizeof buf);
    if (p)
        parse_stat(p, &state, &start);
    return start;
}

int sage__cpu(void)
{
    int c = sched_getcpu();

    return c < 0 ? 0 : c;
}

int sage__ncpu(void)
{
    /* CPUs of the machine, not of this process's affinity: a process pinned
     * to one CPU still has peers running on the others. Read once. */
    static _Atomic int cached;
    int n = atomic_load_explicit(&cached, memory_order_relaxed);

    if (n == 0) {
        long v = sysconf(_SC_NPROCESSORS_ONLN);

        n = v > 0 ? (int)v : 1;
        atomic_store_explicit(&cached, n, memory_order_relaxed);
    }
    return n;
}

void sage__thread_name(const char *name)
{
    char b[16];

    snprintf(b, sizeof b, "%s", name);
    pthread_setname_np(pthread_self(), b); /* a name is a courtesy: failure is harmless */
}
