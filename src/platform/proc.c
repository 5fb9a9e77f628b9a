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
static _Atomic uint32_t fork_gen;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void after_fork_child(void)
{
    atomic_store_explicit(&cached_pid, getpid(), memory_order_relaxed);
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
}

static void init_once(void)
{
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

uint32_t sage__fork_gen(void)
{
    (void)sage__pid();
    return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

/* read_stat reads /proc/PID/stat and returns a pointer just past the ")"
 * that ends the command name (which may itself contain spaces or parens). */
static char *read_stat(pid_t pid, char *buf, size_t cap)
{
    char path[64];
    ssize_t n;
    int fd;
    char *p;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
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

bool sage__pid_alive(pid_t pid)
{
    char buf[1024];
    char *p;

    if (pid <= 0)
        return false;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return false;
    p = read_stat(pid, buf, sizeof buf);
    if (p == NULL)
        return true; /* no /proc: trust kill() */
    while (*p == ' ')
        p++;
    return !(*p == 'Z' || *p == 'X' || *p == 'x');
}

uint64_t sage__pid_start_time(pid_t pid)
{
    char buf[1024];
    char *p = read_stat(pid, buf, sizeof buf);
    unsigned long long v = 0;
    int field = 2; /* p points after field 2 (comm) */

    if (p == NULL)
        return 0;
    while (*p && field < 22) {
        if (*p == ' ') {
            field++;
            if (field == 22) {
                v = strtoull(p + 1, NULL, 10);
                break;
            }
        }
        p++;
    }
    return v;
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
