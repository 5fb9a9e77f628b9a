/*
 * queue_demo.c - two processes talk through named sage_queues.
 *
 * The parent creates two queues ("ping" and "pong"), forks a child that
 * answers every ping, measures round trips, then streams messages one way
 * and reports the rate. Every message carries a sequence number that the
 * receiver checks, so the demo also shows that nothing is lost or reordered.
 */
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sage/queue.h"

static char ping_name[64], pong_name[64];

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void pin(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set); /* best effort */
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void die(const char *what, sage_err e)
{
    fprintf(stderr, "queue_demo: %s: %s (%s)\n", what, sage_strerror(e), sage_errdetail());
    sage_queue_unlink(ping_name);
    sage_queue_unlink(pong_name);
    exit(1);
}

struct stream_check {
    uint64_t next; /* next sequence number expected */
    uint64_t bad;  /* messages out of order */
    uint64_t done; /* the empty end-of-stream message arrived */
};

static void on_message(void *arg, const void *data, size_t len)
{
    struct stream_check *c = arg;
    uint64_t seq;

    if (len == 0) {
        c->done = 1;
        return;
    }
    memcpy(&seq, data, sizeof seq);
    if (len < sizeof seq || seq != c->next)
        c->bad++;
    c->next = seq + 1;
}

/* The child: answer pings, then receive streams until told to stop. */
static int child(int cpu)
{
    sage_queue *ping, *pong;
    static char buf[65536];
    size_t len;
    sage_err e;

    pin(cpu);
    if ((e = sage_queue_open(&ping, ping_name, NULL)) != SAGE_OK ||
        (e = sage_queue_open(&pong, pong_name, NULL)) != SAGE_OK)
        die("child: open", e);
    /* phase 1: echo until an empty message */
    for (;;) {
        if ((e = sage_queue_recv(&len, ping, buf, sizeof buf, 10000)) != SAGE_OK)
            die("child: recv", e);
        if (len == 0)
            break;
        if ((e = sage_queue_send(pong, buf, len, 10000)) != SAGE_OK)
            die("child: send", e);
    }
    /* phase 2: streams, received in batches (the consumer's fast path);
     * each ends with an empty message and is answered with its tally */
    for (;;) {
        struct stream_check c = {0, 0, 0};
        size_t n;

        while (!c.done)
            if ((e = sage_queue_drain(&n, ping, on_message, &c, 0, 10000)) != SAGE_OK)
                die("child: drain", e);
        if (c.next == 0)
            break; /* an empty stream: we are done */
        if ((e = sage_queue_send(pong, &c, sizeof c, 10000)) != SAGE_OK)
            die("child: send", e);
    }
    sage_queue_close(ping);
    sage_queue_close(pong);
    return 0;
}

static void stream(sage_queue *ping, sage_queue *pong, size_t size, uint64_t count)
{
    static char msg[65536];
    struct stream_check c;
    size_t len;
    double t0, dt;
    sage_err e;

    memset(msg, 'x', size);
    t0 = now_us();
    for (uint64_t i = 0; i < count; i++) {
        memcpy(msg, &i, sizeof i);
        if ((e = sage_queue_send(ping, msg, size, 10000)) != SAGE_OK)
            die("send", e);
    }
    if ((e = sage_queue_send(ping, msg, 0, 10000)) != SAGE_OK)
        die("send", e);
    if ((e = sage_queue_recv(&len, pong, &c, sizeof c, 10000)) != SAGE_OK)
        die("recv", e);
    dt = now_us() - t0;
    printf("  one-way %6zu B x %8llu: %7.2f M msgs/s  %6.2f GB/s   received %llu, out of order %llu\n",
           size, (unsigned long long)count, count / dt, count * size / dt / 1e3,
           (unsigned long long)c.next, (unsigned long long)c.bad);
}

int main(int argc, char **argv)
{
    enum { ROUNDS = 100000 };
    sage_queue_opts o;
    sage_queue *ping, *pong;
    double *rtt;
    char buf[64] = {0};
    size_t len;
    sage_err e;
    int pid, status, cpus = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 2 : 1;

    (void)argc;
    (void)argv;
    snprintf(ping_name, sizeof ping_name, "demo.%d.ping", (int)getpid());
    snprintf(pong_name, sizeof pong_name, "demo.%d.pong", (int)getpid());
    sage_queue_opts_init(&o);
    o.flags = SAGE_QUEUE_CREATE | SAGE_QUEUE_EXCL;
    o.capacity = 4u << 20;
    o.max_msg = 65536;
    if ((e = sage_queue_open(&ping, ping_name, &o)) != SAGE_OK ||
        (e = sage_queue_open(&pong, pong_name, &o)) != SAGE_OK)
        die("create", e);
    printf("sage_queue demo: process %d created /dev/shm/sage.q.%s and .%s (4 MiB rings)\n",
           (int)getpid(), ping_name, pong_name);
    fflush(stdout); /* or the child would print our buffered lines again */
    pid = fork();
    if (pid == 0)
        return child(cpus - 1);
    pin(0);
    printf("  forked process %d to answer; pinned to CPUs 0 and %d\n", pid, cpus - 1);

    rtt = malloc(ROUNDS * sizeof *rtt);
    for (int i = 0; i < ROUNDS; i++) {
        double t0 = now_us();

        if ((e = sage_queue_send(ping, buf, sizeof buf, 10000)) != SAGE_OK)
            die("send", e);
        if ((e = sage_queue_recv(&len, pong, buf, sizeof buf, 10000)) != SAGE_OK)
            die("recv", e);
        rtt[i] = now_us() - t0;
    }
    qsort(rtt, ROUNDS, sizeof *rtt, cmp_double);
    printf("  ping-pong 64 B x %d: round trip median %.2f us, p99 %.2f us\n", ROUNDS,
           rtt[ROUNDS / 2], rtt[ROUNDS * 99 / 100]);
    free(rtt);
    if ((e = sage_queue_send(ping, buf, 0, 10000)) != SAGE_OK) /* end of phase 1 */
        die("send", e);

    stream(ping, pong, 64, 5000000);
    stream(ping, pong, 4096, 500000);
    stream(ping, pong, 65536, 50000);
    sage_queue_send(ping, buf, 0, 10000); /* an empty stream: done */

    waitpid(pid, &status, 0);
    {
        sage_queue_stats st;

        sage_queue_stats_read(&st, ping);
        printf("  queue stats: %llu messages in, %llu out, %llu wake-ups, %llu full events\n",
               (unsigned long long)st.msgs_in, (unsigned long long)st.msgs_out,
               (unsigned long long)st.wakeups, (unsigned long long)st.full_events);
    }
    sage_queue_close(ping);
    sage_queue_close(pong);
    sage_queue_unlink(ping_name);
    sage_queue_unlink(pong_name);
    printf("  done: child exited with status %d, queues removed\n",
           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
