/* test_queue_mp.c - sage_queue across processes: volume, crashes, peers that die. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "opts.h"
#include "platform/proc.h"
#include "queue/queue_internal.h"
#include "sage/queue.h"

#ifdef SAGE_SANITIZED
#define SCALE 4 /* sanitizers are slower: same coverage, fewer repetitions */
#else
#define SCALE 1
#endif

/*
 * A message: [producer id u32][seq u32][len u32][sum u32][body...]. The body
 * is a function of (id, seq), and sum covers the header fields and body, so
 * a torn, shifted or stale record cannot pass.
 */
#define HDR 16

static uint32_t body_seed(uint32_t id, uint32_t seq)
{
    return id * 0x9e3779b1u ^ seq * 0x85ebca77u;
}

static size_t make_msg(uint8_t *m, uint32_t id, uint32_t seq, size_t len)
{
    uint32_t x = body_seed(id, seq), sum;

    if (len < HDR)
        len = HDR;
    for (size_t i = HDR; i < len; i++)
        m[i] = (uint8_t)(x + i * 31u);
    sum = x ^ (uint32_t)len * 2654435761u;
    memcpy(m, &id, 4);
    memcpy(m + 4, &seq, 4);
    memcpy(m + 8, &(uint32_t){(uint32_t)len}, 4);
    memcpy(m + 12, &sum, 4);
    return len;
}

/* check_msg returns the producer id, or fails the case on any corruption. */
static uint32_t check_msg(const uint8_t *m, size_t len, uint32_t *seqp)
{
    uint32_t id, seq, l, sum, x;

    ASSERT_TRUE(len >= HDR);
    memcpy(&id, m, 4);
    memcpy(&seq, m + 4, 4);
    memcpy(&l, m + 8, 4);
    memcpy(&sum, m + 12, 4);
    ASSERT_EQ(l, len);
    x = body_seed(id, seq);
    ASSERT_EQ(sum, x ^ (uint32_t)len * 2654435761u);
    for (size_t i = HDR; i < len; i++)
        if (m[i] != (uint8_t)(x + i * 31u))
            th_fail(__FILE__, __LINE__, "message %u/%u corrupt at byte %zu", id, seq, i);
    *seqp = seq;
    return id;
}

/* sizes: mostly small, some medium, a few large; every size class shows up */
static size_t pick_size(uint32_t seq, uint32_t id)
{
    uint32_t r = (seq * 2654435761u) ^ (id * 40503u);

    if (r % 1000 == 0)
        return HDR + r % 16000;
    if (r % 50 == 0)
        return HDR + r % 2000;
    return HDR + r % 112;
}

/* make_queue creates queue base; producers 0: the default */
static sage_queue *make_queue(const char *base, size_t cap, size_t max_msg, uint32_t producers)
{
    sage_queue_opts o = QUEUE_OPTS(.flags = SAGE_QUEUE_CREATE | SAGE_QUEUE_EXCL, .capacity = cap,
                                   .max_msg = max_msg, .max_producers = producers);
    sage_queue *q = NULL;

    ASSERT_OK(sage_queue_open(&q, th_name(base), &o));
    return q;
}

/* msgs_in: messages committed to q so far */
static uint64_t msgs_in(sage_queue *q)
{
    sage_queue_stats st;

    ASSERT_OK(sage_queue_stats_read(&st, q));
    return st.msgs_in;
}

/* WAIT_SENDER_PARKED: until a sender of q (any process) sleeps, waiting for room */
#define WAIT_SENDER_PARKED(q) ASSERT_WAIT(atomic_load(&(q)->hdr->space_waiters) != 0, 5000)

static sage_queue *open_queue(const char *base)
{
    sage_queue *q = NULL;

    ASSERT_OK(sage_queue_open(&q, th_name(base), NULL));
    return q;
}

struct prod {
    const char *base;
    uint32_t id;
    uint32_t n;
};

static void *prod_thread(void *p)
{
    struct prod *a = p;
    sage_queue *q = open_queue(a->base);
    uint8_t m[16100];

    for (uint32_t i = 0; i < a->n; i++)
        ASSERT_OK(sage_queue_send(q, m, make_msg(m, a->id, i, pick_size(i, a->id)), 10000));
    sage_queue_close(q);
    return NULL;
}

/* a producer process with nthreads threads, ids base_id.. */
static int spawn_producer(const char *base, uint32_t base_id, int nthreads, uint32_t n)
{
    int pid = fork();

    if (pid == 0) {
        pthread_t th[8];
        struct prod a[8];

        for (int t = 0; t < nthreads; t++) {
            a[t] = (struct prod){base, base_id + (uint32_t)t, n};
            pthread_create(&th[t], NULL, prod_thread, &a[t]);
        }
        for (int t = 0; t < nthreads; t++)
            pthread_join(th[t], NULL);
        _exit(0);
    }
    return pid;
}

struct tally {
    uint32_t next[64];
    uint64_t total;
};

static void tally_cb(void *arg, const void *data, size_t len)
{
    struct tally *t = arg;
    uint32_t seq, id = check_msg(data, len, &seq);

    ASSERT_TRUE(id < 64);
    if (seq != t->next[id])
        th_fail(__FILE__, __LINE__, "producer %u: got seq %u, expected %u (lost, duplicated or reordered)",
                id, seq, t->next[id]);
    t->next[id]++;
    t->total++;
}

/* ------------------------------------------------------------------ cases */

/* 3 processes x 2 threads move 10 million messages of mixed sizes. */
static void t_ten_million(void)
{
    enum { PROCS = 3, THREADS = 2 };
    const uint32_t per = 10000000u / (PROCS * THREADS) / SCALE;
    sage_queue *q = make_queue("m", 1 << 20, 16100, 0);
    struct tally t = {{0}, 0};
    int pids[PROCS];
    sage_queue_stats st;

    for (int p = 0; p < PROCS; p++)
        pids[p] = spawn_producer("m", (uint32_t)(p * THREADS), THREADS, per);
    while (t.total < (uint64_t)per * PROCS * THREADS) {
        size_t n;

        ASSERT_OK(sage_queue_drain(&n, q, tally_cb, &t, 0, 20000));
    }
    for (int p = 0; p < PROCS; p++)
        ASSERT_EQ(th_wait_child(pids[p], 20000), 0);
    for (int i = 0; i < PROCS * THREADS; i++)
        ASSERT_EQ(t.next[i], per);
    ASSERT_OK(sage_queue_stats_read(&st, q));
    ASSERT_EQ(st.msgs_in, (uint64_t)per * PROCS * THREADS);
    ASSERT_EQ(st.msgs_out, st.msgs_in);
    ASSERT_EQ(st.bytes_out, st.bytes_in);
    ASSERT_EQ(st.depth_msgs, 0);
    ASSERT_EQ(st.recovered, 0);
    {
        size_t len;
        uint8_t b[16];

        ASSERT_ERR(sage_queue_recv(&len, q, b, sizeof b, 0), SAGE_ETIMEDOUT);
    }
    sage_queue_close(q);
}

/* a ring exactly full is drained in one batch, and the next lap is intact */
static void t_full_ring_one_batch(void)
{
    sage_queue *q = make_queue("fr", 4096, 1000, 0);
    struct tally t = {{0}, 0};
    uint8_t m[64];
    uint32_t seq = 0;
    size_t n;

    for (int lap = 0; lap < 50; lap++) {
        int k = 0;

        /* 56-byte messages: 64-byte records, 64 of them fill 4096 exactly */
        while (sage_queue_send(q, m, make_msg(m, 1, seq, 56), 0) == SAGE_OK) {
            seq++;
            k++;
        }
        ASSERT_EQ(k, 64);
        ASSERT_OK(sage_queue_drain(&n, q, tally_cb, &t, 0, 0));
        ASSERT_EQ(n, 64);
    }
    ASSERT_EQ(t.next[1], seq);
    sage_queue_close(q);
}

/* stop a producer between claim and commit, SIGKILL it: the consumer skips
 * the dead claim promptly and every other message arrives */
static void t_kill_between_claim_and_commit(void)
{
    sage_queue *q = make_queue("k", 1 << 16, 16100, 0);
    struct tally t = {{0}, 0};
    int sync[2], victim, other;
    char c;
    sage_queue_stats st;
    double t0;

    ASSERT_EQ(pipe(sync), 0);
    victim = fork();
    if (victim == 0) {
        sage_queue *p = open_queue("k");
        uint8_t m[64];
        void *buf;

        for (uint32_t i = 0; i < 10; i++)
            ASSERT_OK(sage_queue_send(p, m, make_msg(m, 5, i, 40), 0));
        ASSERT_OK(sage_queue_claim(&buf, p, 40, 0));
        make_msg(buf, 5, 10, 20); /* half written */
        ASSERT_EQ(write(sync[1], "x", 1), 1);
        pause();
        _exit(0);
    }
    close(sync[1]); /* a child that fails first: EOF, not a hang */
    ASSERT_EQ(read(sync[0], &c, 1), 1);
    other = spawn_producer("k", 0, 2, 1000);
    ASSERT_WAIT(msgs_in(q) > 10, 5000); /* other's messages are queued behind the stuck claim */
    kill(victim, SIGKILL); /* not reaped yet: a zombie must count as dead */
    t0 = th_now_ms();
    while (t.total < 10 + 2000) {
        size_t n;

        ASSERT_OK(sage_queue_drain(&n, q, tally_cb, &t, 0, 5000));
    }
    ASSERT_LE(th_now_ms() - t0, 1000); /* promptly, not after seconds */
    ASSERT_EQ(t.next[5], 10);
    ASSERT_EQ(t.next[0], 1000);
    ASSERT_EQ(t.next[1], 1000);
    ASSERT_OK(sage_queue_stats_read(&st, q));
    ASSERT_EQ(st.recovered, 1);
    ASSERT_EQ(th_wait_child(other, 10000), 0);
    ASSERT_KILLED(th_wait_child(victim, 5000), SIGKILL);
    sage_queue_close(q);
}

static int hook_fd = -1;

static void stop_after_claim(void)
{
    if (hook_fd >= 0 && write(hook_fd, "x", 1) == 1)
        pause();
}

/* spawn_stopped_in_claim forks producer 5, which sends `before` messages
 * of len bytes to base and then stops for good right after winning the
 * claim of one more, before the record is even marked in progress (the
 * narrowest window a crash can hit). Returns its pid once it is there. */
static int spawn_stopped_in_claim(const char *base, uint32_t before, size_t len)
{
    int sync[2], pid;
    char c;

    ASSERT_EQ(pipe(sync), 0);
    pid = fork();
    if (pid == 0) {
        sage_queue *p = open_queue(base);
        uint8_t m[1100];

        for (uint32_t i = 0; i < before; i++)
            ASSERT_OK(sage_queue_send(p, m, make_msg(m, 5, i, len), 0));
        hook_fd = sync[1];
        sage__sq_hook_after_claim = stop_after_claim;
        sage_queue_send(p, m, make_msg(m, 5, before, len), 0);
        _exit(0);
    }
    close(sync[1]); /* a child that fails first: EOF, not a hang */
    ASSERT_EQ(read(sync[0], &c, 1), 1);
    close(sync[0]);
    return pid;
}

/* the narrowest window: dead right after winning the claim, before the
 * record is even marked in progress (found through the producer's slot) */
static void t_kill_in_claim_window(void)
{
    sage_queue *q = make_queue("z", 1 << 16, 16100, 0);
    struct tally t = {{0}, 0};
    int victim = spawn_stopped_in_claim("z", 10, 48), other;
    sage_queue_stats st;

    other = spawn_producer("z", 0, 1, 500);
    kill(victim, SIGKILL);
    while (t.total < 10 + 500) {
        size_t n;

        ASSERT_OK(sage_queue_drain(&n, q, tally_cb, &t, 0, 5000));
    }
    ASSERT_EQ(t.next[5], 10);
    ASSERT_EQ(t.next[0], 500);
    ASSERT_OK(sage_queue_stats_read(&st, q));
    ASSERT_EQ(st.recovered, 1);
    ASSERT_EQ(th_wait_child(other, 10000), 0);
    ASSERT_KILLED(th_wait_child(victim, 5000), SIGKILL);
    sage_queue_close(q);
}

/* a dead claim of the largest message, whose length is not a multiple of 8,
 * is skipped as one record (its SKIP covers the alignment too) */
static void t_kill_max_size_claim(void)
{
    sage_queue *q = make_queue("mx", 1 << 16, 1001, 0);
    struct tally t = {{0}, 0};
    int victim = spawn_stopped_in_claim("mx", 0, 1001);
    uint8_t m[1100];
    size_t n;

    kill(victim, SIGKILL);
    ASSERT_OK(sage_queue_send(q, m, make_msg(m, 1, 0, 1001), 0));
    ASSERT_OK(sage_queue_drain(&n, q, tally_cb, &t, 0, 5000));
    ASSERT_EQ(t.next[1], 1);
    ASSERT_KILLED(th_wait_child(victim, 5000), SIGKILL);
    sage_queue_close(q);
}

/* the same window when the claim wraps: padding written, record not */
static void t_kill_in_claim_window_wrapping(void)
{
    sage_queue *q = make_queue("zw", 4096, 1000, 0);
    struct tally t = {{0}, 0};
    int victim;
    uint8_t m[1100];
    size_t n;

    /* move the ring's end close: 3 records of 1000 bytes, consumed */
    for (uint32_t i = 0; i < 3; i++)
        ASSERT_OK(sage_queue_send(q, m, make_msg(m, 1, i, 1000), 0));
    ASSERT_OK(sage_queue_drain(&n, q, tally_cb, &t, 0, 0));
    victim = spawn_stopped_in_claim("zw", 0, 1000); /* wraps: pad + record */
    kill(victim, SIGKILL);
    for (uint32_t i = 3; i < 6; i++)
        ASSERT_OK(sage_queue_send(q, m, make_msg(m, 1, i, 500), 1000));
    while (t.next[1] < 6)
        ASSERT_OK(sage_queue_drain(&n, q, tally_cb, &t, 0, 5000));
    ASSERT_EQ(t.next[5], 0);
    ASSERT_KILLED(th_wait_child(victim, 5000), SIGKILL);
    sage_queue_close(q);
}

/* producers SIGKILLed at random moments under load: whatever a killed
 * producer got through is intact and in order, everyone else's all arrives */
static void t_kill_under_load(void)
{
    enum { ROUNDS = 12 };
    sage_queue *q = make_queue("l", 1 << 18, 16100, 0);
    struct tally t = {{0}, 0};
    int steady = spawn_producer("l", 0, 2, 200000 / SCALE);
    uint64_t want_steady = 2 * (200000 / SCALE);
    sage_queue_stats st;

    for (int r = 0; r < ROUNDS / (SCALE > 1 ? 2 : 1); r++) {
        uint32_t id = (uint32_t)(10 + r * 2);
        int victim = spawn_producer("l", id, 2, 1u << 30);
        double t0 = th_now_ms(), until;

        /* the victim's window opens once it sends: its process takes a
         * while to start (long under a sanitizer), and meanwhile steady may
         * be done and the queue empty for a while (a drain then times out:
         * nothing wrong with the queue, which is what tally_cb checks) */
        while (t.next[id] == 0 && t.next[id + 1] == 0) {
            size_t n;
            sage_err e = sage_queue_drain(&n, q, tally_cb, &t, 0, 100);

            ASSERT_TRUE(e == SAGE_OK || e == SAGE_ETIMEDOUT);
            if (th_now_ms() - t0 > 10000)
                th_fail(__FILE__, __LINE__, "round %d: the victim sent nothing in 10 s", r);
        }
        until = th_now_ms() + 20 + (r * 7) % 30;
        while (th_now_ms() < until) {
            size_t n;
            sage_err e = sage_queue_drain(&n, q, tally_cb, &t, 0, 100);

            /* nothing for 100 ms is possible: the steady producer may be
             * done and the victim not started yet on a loaded machine */
            if (e != SAGE_OK && e != SAGE_ETIMEDOUT)
                th_fail(__FILE__, __LINE__, "drain: %s (%s)", sage_errname(e), sage_errdetail());
        }
        kill(victim, SIGKILL);
        ASSERT_KILLED(th_wait_child(victim, 5000), SIGKILL);
    }
    while (t.next[0] + (uint64_t)t.next[1] < want_steady) {
        size_t n;

        ASSERT_OK(sage_queue_drain(&n, q, tally_cb, &t, 0, 10000));
    }
    ASSERT_EQ(th_wait_child(steady, 10000), 0);
    /* drain what is left of the victims (recovering their dead claims) */
    {
        size_t n;

        while (sage_queue_drain(&n, q, tally_cb, &t, 0, 200) == SAGE_OK)
            ;
    }
    ASSERT_OK(sage_queue_stats_read(&st, q));
    printf("  %llu messages, %llu dead claims recovered\n", (unsigned long long)t.total,
           (unsigned long long)st.recovered);
    ASSERT_EQ(st.depth_msgs, 0);
    ASSERT_LE(st.recovered, 2 * ROUNDS);
    ASSERT_EQ(st.msgs_out, t.total);
    sage_queue_close(q);
}

/* the consumer's process dies while a producer waits for room */
static void t_dead_consumer_unblocks_sender(void)
{
    int sync[2], cons;
    char c;
    sage_queue *q;
    uint8_t m[1000] = {0};
    double t0;

    ASSERT_EQ(pipe(sync), 0);
    cons = fork();
    if (cons == 0) {
        sage_queue *cq = make_queue("dc", 4096, 1000, 0);
        size_t len;

        ASSERT_OK(sage_queue_send(cq, m, 10, 0));
        ASSERT_OK(sage_queue_recv(&len, cq, m, sizeof m, 0)); /* become the consumer */
        ASSERT_EQ(write(sync[1], "x", 1), 1);
        pause();
        _exit(0);
    }
    close(sync[1]); /* a child that fails first: EOF, not a hang */
    ASSERT_EQ(read(sync[0], &c, 1), 1);
    q = open_queue("dc");
    while (sage_queue_send(q, m, sizeof m, 0) == SAGE_OK)
        ;
    kill(cons, SIGKILL);
    t0 = th_now_ms();
    ASSERT_ERR(sage_queue_send(q, m, sizeof m, 10000), SAGE_EUNAVAILABLE);
    ASSERT_LE(th_now_ms() - t0, 1000);
    ASSERT_KILLED(th_wait_child(cons, 5000), SIGKILL);
    sage_queue_close(q);
}

/* the consumer closes: a sender blocked in another process wakes */
static void t_close_wakes_sender_process(void)
{
    sage_queue *q = make_queue("cs", 4096, 1000, 0);
    uint8_t m[1000] = {0};
    int pid;
    size_t len;

    ASSERT_OK(sage_queue_send(q, m, 1, 0));
    ASSERT_OK(sage_queue_recv(&len, q, m, sizeof m, 0));
    pid = fork();
    if (pid == 0) {
        sage_queue *p = open_queue("cs");
        double t0;

        while (sage_queue_send(p, m, sizeof m, 0) == SAGE_OK)
            ;
        t0 = th_now_ms();
        ASSERT_ERR(sage_queue_send(p, m, sizeof m, -1), SAGE_ECLOSED);
        ASSERT_LE(th_now_ms() - t0, 2000);
        _exit(0);
    }
    WAIT_SENDER_PARKED(q); /* the child's */
    ASSERT_OK(sage_queue_shutdown(q));
    ASSERT_EQ(th_wait_child(pid, 5000), 0);
    sage_queue_close(q);
}

static void *one_send(void *p)
{
    sage_queue *q = p;

    ASSERT_OK(sage_queue_send(q, "x", 1, 1000));
    return NULL;
}

/* threads that come and go give their producer slots back */
static void t_slots_reused(void)
{
    sage_queue *q = make_queue("sl", 1 << 16, 100, 16);
    uint8_t b[16];
    size_t len;

    for (int i = 0; i < 400; i++) {
        pthread_t th;

        pthread_create(&th, NULL, one_send, q);
        pthread_join(th, NULL);
        ASSERT_OK(sage_queue_recv(&len, q, b, sizeof b, 0));
    }
    sage_queue_close(q);
}

/* slots of processes that died without closing are taken over */
static void t_slots_of_dead_processes(void)
{
    sage_queue *q = make_queue("sd", 1 << 16, 100, 4);
    uint8_t b[16];
    size_t len;

    for (int i = 0; i < 20; i++) {
        int pid = fork();

        if (pid == 0) {
            sage_queue *p = open_queue("sd");

            ASSERT_OK(sage_queue_send(p, "y", 1, 1000));
            raise(SIGKILL); /* no free, no thread exit */
        }
        ASSERT_KILLED(th_wait_child(pid, 5000), SIGKILL);
        ASSERT_OK(sage_queue_recv(&len, q, b, sizeof b, 1000));
    }
    sage_queue_close(q);
}

/* a forked child sending through its parent's handle gets its own slot */
static void t_fork_child_sends(void)
{
    sage_queue *q = make_queue("fk", 1 << 16, 100, 0);
    struct tally t = {{0}, 0};
    uint8_t m[64];
    size_t n;
    int pid;

    ASSERT_OK(sage_queue_send(q, m, make_msg(m, 1, 0, 20), 0));
    pid = fork();
    if (pid == 0) {
        for (uint32_t i = 0; i < 1000; i++)
            ASSERT_OK(sage_queue_send(q, m, make_msg(m, 2, i, 20), 1000));
        _exit(0);
    }
    for (uint32_t i = 1; i < 1000; i++)
        ASSERT_OK(sage_queue_send(q, m, make_msg(m, 1, i, 20), 1000));
    ASSERT_EQ(th_wait_child(pid, 10000), 0);
    while (t.total < 2000)
        ASSERT_OK(sage_queue_drain(&n, q, tally_cb, &t, 0, 1000));
    ASSERT_EQ(t.next[1], 1000);
    ASSERT_EQ(t.next[2], 1000);
    sage_queue_close(q);
}

/* ---------------------------------------------------------- pid reuse */

/*
 * ticks_now: clock ticks since boot, on the clock of the start times in
 * /proc/PID/stat. A start time has the resolution of a tick (10 ms): a
 * process started in the same tick as another cannot be told from it by
 * its pid and start time. Cases that give a pid to a new process first wait
 * for the clock to pass the old one's start tick (ASSERT_WAIT(ticks_now() >
 * start)), which is a wait for the clock, not for an event.
 */
static uint64_t ticks_now(void)
{
    FILE *f = fopen("/proc/uptime", "r");
    unsigned long sec = 0, cs = 0; /* "SECONDS.CENTISECONDS ..." */
    long hz = sysconf(_SC_CLK_TCK);

    ASSERT_TRUE(f != NULL);
    ASSERT_EQ(fscanf(f, "%lu.%lu", &sec, &cs), 2);
    fclose(f);
    return (uint64_t)sec * (uint64_t)hz + (uint64_t)cs * (uint64_t)hz / 100;
}

/*
 * fork_with_pid forks a child whose pid is want (free: its last owner was
 * reaped), by setting the kernel's last pid to want - 1 just before forking;
 * other processes fork too, so it tries again a bounded number of times. The
 * child runs fn (NULL: nothing) and exits with its result, or with fn NULL
 * stays alive until killed (the case's process group is killed at its end).
 * Skips the case when not root or when the pid cannot be had.
 */
static int fork_with_pid(int want, int (*fn)(void *), void *arg)
{
    char b[16];
    int n = snprintf(b, sizeof b, "%d", want - 1);

    if (geteuid() != 0)
        th_skip("choosing a pid (/proc/sys/kernel/ns_last_pid) needs root");
    for (int i = 0; i < 200; i++) {
        int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY), pid;

        if (fd < 0 || write(fd, b, (size_t)n) != n) {
            if (fd >= 0)
                close(fd);
            th_skip("cannot write /proc/sys/kernel/ns_last_pid");
        }
        close(fd);
        pid = fork();
        if (pid == 0) {
            if (getpid() != want)
                _exit(0);
            if (fn)
                _exit(fn(arg));
            for (;;)
                pause();
        }
        if (pid == want)
            return pid;
        ASSERT_EQ(th_wait_child(pid, 5000), 0);
    }
    th_skip("could not get the pid back within 200 forks");
}

/* reuse_pid SIGKILLs victim, reaps it, and gives its pid to an unrelated
 * process that stays alive (fn NULL) or runs fn; returns that process. The
 * two start times must differ: the new process starts a tick later at
 * least (see ticks_now). */
static int reuse_pid(int victim, int (*fn)(void *), void *arg)
{
    uint64_t start = sage__pid_start_time(victim), again;
    int pid;

    ASSERT_NE(start, 0);
    ASSERT_WAIT(ticks_now() > start, 1000);
    kill(victim, SIGKILL);
    ASSERT_KILLED(th_wait_child(victim, 5000), SIGKILL); /* reaped: the pid is free */
    pid = fork_with_pid(victim, fn, arg);
    again = sage__pid_start_time(pid);
    ASSERT_NE(again, 0);
    ASSERT_NE(again, start);
    return pid;
}

/* a producer SIGKILLed holding a claim, whose pid goes to an unrelated live
 * process: the consumer still skips the dead claim in the usual time, and
 * receives everything behind it. window: killed right after winning the
 * claim (record still zero); else after marking it in progress. */
static void pid_reuse_producer(const char *base, bool window)
{
    sage_queue *q = make_queue(base, 1 << 16, 16100, 0);
    struct tally t = {{0}, 0};
    int victim, other, sync[2];
    sage_queue_stats st;
    double t0;
    char c;

    if (window) {
        victim = spawn_stopped_in_claim(base, 10, 48);
    } else {
        ASSERT_EQ(pipe(sync), 0);
        victim = fork();
        if (victim == 0) {
            sage_queue *p = open_queue(base);
            uint8_t m[64];
            void *buf;

            for (uint32_t i = 0; i < 10; i++)
                ASSERT_OK(sage_queue_send(p, m, make_msg(m, 5, i, 40), 0));
            ASSERT_OK(sage_queue_claim(&buf, p, 40, 0));
            make_msg(buf, 5, 10, 20); /* half written */
            ASSERT_EQ(write(sync[1], "x", 1), 1);
            pause();
            _exit(0);
        }
        close(sync[1]); /* a child that fails first: EOF, not a hang */
        ASSERT_EQ(read(sync[0], &c, 1), 1);
    }
    other = spawn_producer(base, 0, 1, 500);
    ASSERT_WAIT(msgs_in(q) > 10, 5000); /* other's messages are queued behind the stuck claim */
    reuse_pid(victim, NULL, NULL);
    t0 = th_now_ms();
    while (t.total < 10 + 500) {
        size_t n;

        ASSERT_OK(sage_queue_drain(&n, q, tally_cb, &t, 0, 5000));
    }
    ASSERT_LE(th_now_ms() - t0, 1000); /* the usual recovery time */
    ASSERT_EQ(t.next[5], 10);
    ASSERT_EQ(t.next[0], 500);
    ASSERT_OK(sage_queue_stats_read(&st, q));
    ASSERT_EQ(st.recovered, 1);
    ASSERT_EQ(th_wait_child(other, 10000), 0);
    sage_queue_close(q);
}

static void t_pid_reuse_producer_inprog(void)
{
    pid_reuse_producer("ri", false);
}

static void t_pid_reuse_producer_window(void)
{
    pid_reuse_producer("rw", true);
}

/* the consumer SIGKILLed and its pid taken by an unrelated live process:
 * producers waiting for room fail with SAGE_EUNAVAILABLE as when it dies,
 * and another process may take the consumer role */
static void t_pid_reuse_consumer(void)
{
    int sync[2], cons, waiter;
    char c;
    sage_queue *q;
    uint8_t m[1000] = {0};
    size_t len;
    double t0;

    ASSERT_EQ(pipe(sync), 0);
    cons = fork();
    if (cons == 0) {
        sage_queue *cq = make_queue("rc", 4096, 1000, 0);

        ASSERT_OK(sage_queue_send(cq, m, 10, 0));
        ASSERT_OK(sage_queue_recv(&len, cq, m, sizeof m, 0)); /* become the consumer */
        ASSERT_EQ(write(sync[1], "x", 1), 1);
        pause();
        _exit(0);
    }
    close(sync[1]); /* a child that fails first: EOF, not a hang */
    ASSERT_EQ(read(sync[0], &c, 1), 1);
    q = open_queue("rc");
    while (sage_queue_send(q, m, sizeof m, 0) == SAGE_OK)
        ;
    waiter = fork(); /* blocked for room when the consumer goes */
    if (waiter == 0) {
        sage_queue *p = open_queue("rc");

        ASSERT_ERR(sage_queue_send(p, m, sizeof m, -1), SAGE_EUNAVAILABLE);
        _exit(0);
    }
    WAIT_SENDER_PARKED(q); /* the waiter's */
    reuse_pid(cons, NULL, NULL);
    ASSERT_EQ(th_wait_child(waiter, 3000), 0);
    t0 = th_now_ms();
    ASSERT_ERR(sage_queue_send(q, m, sizeof m, 10000), SAGE_EUNAVAILABLE);
    ASSERT_LE(th_now_ms() - t0, 1000);
    ASSERT_OK(sage_queue_recv(&len, q, m, sizeof m, 0)); /* the role is free */
    sage_queue_close(q);
}

static int try_close(void *arg)
{
    sage_queue *q = NULL;

    if (sage_queue_open(&q, arg, NULL) != SAGE_OK)
        return 2;
    if (sage_queue_shutdown(q) != SAGE_EPERM)
        return 3;
    return 0;
}

/* the creator's pid taken by another process: that one may not close it */
static void t_pid_reuse_creator(void)
{
    int creator = fork(), pid;
    sage_queue *q;
    sage_queue_stats st;

    if (creator == 0) {
        sage_queue *c = make_queue("rk", 4096, 100, 0);

        (void)c;
        pause();
        _exit(0);
    }
    q = NULL;
    ASSERT_WAIT(sage_queue_open(&q, th_name("rk"), NULL) == SAGE_OK, 5000); /* the queue exists */
    pid = reuse_pid(creator, try_close, (void *)th_name("rk"));
    ASSERT_EQ(th_wait_child(pid, 5000), 0);
    ASSERT_OK(sage_queue_stats_read(&st, q));
    ASSERT_EQ(st.creator_pid, creator);
    ASSERT_EQ(st.closed, 0);
    sage_queue_close(q);
}

/* a forked child's claim is its own, live one: its identity is the child's
 * (pid and start time), not its parent's, so the consumer waits for it */
static void t_live_child_claim_not_skipped(void)
{
    sage_queue *q = make_queue("lc", 1 << 16, 100, 0);
    int sync[2], go[2], pid;
    uint8_t m[64];
    size_t len;
    sage_queue_stats st;
    char c;

    /* the child starts at least a tick after us (see ticks_now) */
    ASSERT_WAIT(ticks_now() > sage__pid_start_time(getpid()), 1000);
    ASSERT_EQ(pipe(sync), 0);
    ASSERT_EQ(pipe(go), 0);
    pid = fork();
    if (pid == 0) {
        void *buf;

        ASSERT_OK(sage_queue_claim(&buf, q, 5, 0));
        memcpy(buf, "child", 5);
        ASSERT_EQ(write(sync[1], "x", 1), 1);
        ASSERT_EQ(read(go[0], &c, 1), 1);
        ASSERT_OK(sage_queue_commit(q, buf));
        _exit(0);
    }
    close(sync[1]); /* a child that fails first: EOF, not a hang */
    ASSERT_EQ(read(sync[0], &c, 1), 1);
    ASSERT_ERR(sage_queue_recv(&len, q, m, sizeof m, 300), SAGE_ETIMEDOUT);
    ASSERT_OK(sage_queue_stats_read(&st, q));
    ASSERT_EQ(st.recovered, 0);
    ASSERT_EQ(write(go[1], "x", 1), 1);
    ASSERT_OK(sage_queue_recv(&len, q, m, sizeof m, 5000));
    ASSERT_EQ(len, 5);
    ASSERT_TRUE(memcmp(m, "child", 5) == 0);
    ASSERT_EQ(th_wait_child(pid, 5000), 0);
    sage_queue_close(q);
}

static const struct th_case cases[] = {
    {"ten_million", t_ten_million, 240},
    {"full_ring_one_batch", t_full_ring_one_batch, 20},
    {"kill_between_claim_and_commit", t_kill_between_claim_and_commit, 30},
    {"kill_in_claim_window", t_kill_in_claim_window, 30},
    {"kill_in_claim_window_wrapping", t_kill_in_claim_window_wrapping, 30},
    {"kill_max_size_claim", t_kill_max_size_claim, 30},
    {"kill_under_load", t_kill_under_load, 120},
    {"dead_consumer_unblocks_sender", t_dead_consumer_unblocks_sender, 30},
    {"close_wakes_sender_process", t_close_wakes_sender_process, 30},
    {"slots_reused", t_slots_reused, 30},
    {"slots_of_dead_processes", t_slots_of_dead_processes, 30},
    {"fork_child_sends", t_fork_child_sends, 30},
    {"pid_reuse_producer_inprog", t_pid_reuse_producer_inprog, 30},
    {"pid_reuse_producer_window", t_pid_reuse_producer_window, 30},
    {"pid_reuse_consumer", t_pid_reuse_consumer, 30},
    {"pid_reuse_creator", t_pid_reuse_creator, 30},
    {"live_child_claim_not_skipped", t_live_child_claim_not_skipped, 30},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
