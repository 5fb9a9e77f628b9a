/* test_queue.c - sage_queue behaviour within one or a few processes. */
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "harness.h"
#include "opts.h"
#include "base/err_internal.h"
#include "queue/layout.h"
#include "sage/queue.h"

/* create makes queue base (NULL: a private one); max_msg 0: the default */
static sage_queue *create(const char *base, size_t cap, size_t max_msg)
{
    sage_queue_opts o = QUEUE_OPTS(.flags = SAGE_QUEUE_CREATE | SAGE_QUEUE_EXCL, .capacity = cap,
                                   .max_msg = max_msg);
    sage_queue *q = NULL;

    ASSERT_OK(sage_queue_open(&q, base ? th_name(base) : NULL, &o));
    return q;
}

static sage_queue *attach(const char *base)
{
    sage_queue *q = NULL;

    ASSERT_OK(sage_queue_open(&q, th_name(base), NULL));
    return q;
}

/* A message whose bytes are a function of (id, seq): any corruption shows. */
static size_t fill(uint8_t *buf, uint32_t id, uint32_t seq, size_t len)
{
    uint32_t x = id * 2654435761u ^ seq * 40503u;

    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    if (len >= 8) {
        memcpy(buf, &id, 4);
        memcpy(buf + 4, &seq, 4);
    }
    return len;
}

static void check(const uint8_t *got, size_t len, uint32_t id, uint32_t seq)
{
    uint8_t want[70000];

    ASSERT_TRUE(len <= sizeof want);
    fill(want, id, seq, len);
    ASSERT_TRUE(memcmp(got, want, len) == 0);
}

/* ------------------------------------------------------------------ cases */

/* ASSERT_DETAIL_HAS: the thread's error detail contains sub */
#define ASSERT_DETAIL_HAS(sub)                                                                 \
    do {                                                                                       \
        if (strstr(sage_errdetail(), (sub)) == NULL)                                           \
            th_fail(__FILE__, __LINE__, "detail \"%s\" lacks \"%s\"", sage_errdetail(), (sub)); \
    } while (0)

static void t_names(void)
{
    char longname[SAGE_QUEUE_NAME_MAX + 2], want[64];

    ASSERT_OK(sage_queue_check_name("kv.requests_1-a"));
    ASSERT_ERR(sage_queue_check_name(""), SAGE_EINVAL);
    ASSERT_DETAIL_HAS("empty");
    ASSERT_ERR(sage_queue_check_name(NULL), SAGE_EINVAL);
    ASSERT_DETAIL_HAS("empty");
    ASSERT_ERR(sage_queue_check_name("a/b"), SAGE_EINVAL);
    ASSERT_DETAIL_HAS("character 0x2f at 1");
    ASSERT_ERR(sage_queue_check_name("a b"), SAGE_EINVAL);
    ASSERT_DETAIL_HAS("character 0x20 at 1");
    ASSERT_ERR(sage_queue_check_name(".hidden"), SAGE_EINVAL);
    ASSERT_DETAIL_HAS("starts with '.'");
    ASSERT_ERR(sage_queue_check_name("-flag"), SAGE_EINVAL);
    ASSERT_DETAIL_HAS("starts with '-'");
    ASSERT_ERR(sage_queue_check_name("caf\xc3\xa9"), SAGE_EINVAL);
    ASSERT_DETAIL_HAS("character 0xc3 at 3");
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ASSERT_ERR(sage_queue_check_name(longname), SAGE_EINVAL);
    snprintf(want, sizeof want, "%d bytes, at most %d", SAGE_QUEUE_NAME_MAX + 1,
             SAGE_QUEUE_NAME_MAX);
    ASSERT_DETAIL_HAS(want);
    longname[SAGE_QUEUE_NAME_MAX] = '\0';
    ASSERT_OK(sage_queue_check_name(longname));
    ASSERT_TRUE(sage_errdetail() != NULL); /* a string, whatever came before */
}

/* a detail may quote the previous one: SAGE_SETERR(e, "...: %s", sage_errdetail()) */
static void t_errdetail_quotes_itself(void)
{
    ASSERT_ERR(SAGE_SETERR(SAGE_ENOENT, "inner reason %d", 42), SAGE_ENOENT);
    ASSERT_ERR(SAGE_SETERR(SAGE_ESYS, "outer: %s", sage_errdetail()), SAGE_ESYS);
    ASSERT_STREQ(sage_errdetail(), "outer: inner reason 42");
}

static void t_open_rules(void)
{
    sage_queue *q = NULL, *q2 = NULL;
    sage_queue_opts o;
    struct stat st;
    char path[300];

    ASSERT_ERR(sage_queue_open(&q, th_name("missing"), NULL), SAGE_ENOENT);
    ASSERT_TRUE(q == NULL);
    q = create("q", 4096, 100);
    o = QUEUE_OPTS(.flags = SAGE_QUEUE_CREATE | SAGE_QUEUE_EXCL);
    ASSERT_ERR(sage_queue_open(&q2, th_name("q"), &o), SAGE_EEXIST);
    o.flags = SAGE_QUEUE_CREATE; /* create-or-open: opens the existing one */
    o.capacity = 1 << 20;
    ASSERT_OK(sage_queue_open(&q2, th_name("q"), &o));
    {
        sage_queue_stats s;

        ASSERT_OK(sage_queue_stats_read(&s, q2));
        ASSERT_EQ(s.capacity, 4096); /* the existing geometry wins */
        ASSERT_EQ(s.max_msg, 100);
    }
    snprintf(path, sizeof path, "/dev/shm/sage.q.%s", th_name("q"));
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    ASSERT_STREQ(sage_queue_name(q), th_name("q"));
    sage_queue_close(q2);
    sage_queue_close(q);
    ASSERT_OK(sage_queue_unlink(th_name("q")));
    ASSERT_ERR(sage_queue_unlink(th_name("q")), SAGE_ENOENT);
    ASSERT_ERR(sage_queue_open(&q, "bad/name", NULL), SAGE_EINVAL);

    o = QUEUE_OPTS(.flags = SAGE_QUEUE_CREATE, .capacity = 4096,
                   .max_msg = 4096); /* more than capacity/2 - 8 */
    ASSERT_ERR(sage_queue_open(&q, th_name("big"), &o), SAGE_EINVAL);
    o.max_msg = 0; /* the default */
    o.capacity = 5000; /* rounds up to 8192 */
    ASSERT_OK(sage_queue_open(&q, th_name("round"), &o));
    {
        sage_queue_stats s;

        ASSERT_OK(sage_queue_stats_read(&s, q));
        ASSERT_EQ(s.capacity, 8192);
        ASSERT_EQ(s.max_msg, 2048);
    }
    sage_queue_close(q);
    sage_queue_close(NULL);
}

static void t_basic(void)
{
    sage_queue *q = create("b", 4096, 1000);
    uint8_t buf[2000];
    size_t len = 0;

    ASSERT_OK(sage_queue_send(q, "hello", 5, 0));
    ASSERT_OK(sage_queue_send(q, NULL, 0, 0)); /* empty message */
    ASSERT_OK(sage_queue_send(q, buf, 1000, 0));
    ASSERT_ERR(sage_queue_send(q, buf, 1001, 0), SAGE_EMSGSIZE);
    ASSERT_OK(sage_queue_recv(&len, q, buf, sizeof buf, 0));
    ASSERT_EQ(len, 5);
    ASSERT_TRUE(memcmp(buf, "hello", 5) == 0);
    ASSERT_OK(sage_queue_recv(&len, q, buf, sizeof buf, 0));
    ASSERT_EQ(len, 0);
    /* a buffer too small: told the size, message stays */
    ASSERT_ERR(sage_queue_recv(&len, q, buf, 10, 0), SAGE_EMSGSIZE);
    ASSERT_EQ(len, 1000);
    ASSERT_OK(sage_queue_recv(&len, q, buf, sizeof buf, 0));
    ASSERT_EQ(len, 1000);
    ASSERT_ERR(sage_queue_recv(&len, q, buf, sizeof buf, 0), SAGE_ETIMEDOUT);
    ASSERT_ERR(sage_queue_send(NULL, "x", 1, 0), SAGE_EINVAL);
    sage_queue_close(q);
}

static void t_private(void)
{
    sage_queue *q = create(NULL, 4096, 0);
    uint8_t buf[64];
    size_t len;

    ASSERT_STREQ(sage_queue_name(q), "");
    for (uint32_t i = 0; i < 10000; i++) {
        uint8_t m[40];

        ASSERT_OK(sage_queue_send(q, m, fill(m, 1, i, 8 + i % 32), 0));
        ASSERT_OK(sage_queue_recv(&len, q, buf, sizeof buf, 0));
        check(buf, len, 1, i);
    }
    sage_queue_close(q);
}

/* Every size from 0 to 300 and a few large ones, through a 4 KiB ring many
 * times over, so each size meets the ring's end at many offsets. */
static void t_wrap_sizes(void)
{
    sage_queue *q = create("w", 4096, 2040);
    static const size_t big[] = {1000, 1017, 2000, 2040, 511, 1999};
    uint8_t m[4096], buf[4096];
    uint32_t seq_in = 0, seq_out = 0;
    size_t len;

    for (int round = 0; round < 40; round++) {
        for (size_t sz = 0; sz <= 300 + 6; sz++) {
            size_t n = sz <= 300 ? sz : big[sz - 301];
            sage_err r;

            fill(m, 7, seq_in, n);
            r = sage_queue_send(q, m, n, 0);
            while (r == SAGE_EFULL) { /* drain one, then retry */
                ASSERT_OK(sage_queue_recv(&len, q, buf, sizeof buf, 0));
                check(buf, len, 7, seq_out++);
                r = sage_queue_send(q, m, n, 0);
            }
            ASSERT_OK(r);
            seq_in++;
        }
    }
    while (sage_queue_recv(&len, q, buf, sizeof buf, 0) == SAGE_OK)
        check(buf, len, 7, seq_out++);
    ASSERT_EQ(seq_out, seq_in);
    sage_queue_close(q);
}

struct fifo_arg {
    sage_queue *q;
    uint32_t id;
    uint32_t n;
};

static void *fifo_producer(void *p)
{
    struct fifo_arg *a = p;
    uint8_t m[256];

    for (uint32_t i = 0; i < a->n; i++)
        ASSERT_OK(sage_queue_send(a->q, m, fill(m, a->id, i, 8 + (i * 7 + a->id) % 200), -1));
    return NULL;
}

static void t_fifo_threads(void)
{
    enum { P = 4, N = 50000 };
    sage_queue *q = create("f", 1 << 14, 0);
    pthread_t th[P];
    struct fifo_arg a[P];
    uint32_t next[P] = {0};
    uint8_t buf[512];
    size_t len;

    for (int i = 0; i < P; i++) {
        a[i] = (struct fifo_arg){q, (uint32_t)i, N};
        pthread_create(&th[i], NULL, fifo_producer, &a[i]);
    }
    for (int k = 0; k < P * N; k++) {
        uint32_t id, seq;

        ASSERT_OK(sage_queue_recv(&len, q, buf, sizeof buf, 5000));
        memcpy(&id, buf, 4);
        memcpy(&seq, buf + 4, 4);
        ASSERT_TRUE(id < P);
        ASSERT_EQ(seq, next[id]);
        check(buf, len, id, seq);
        next[id]++;
    }
    for (int i = 0; i < P; i++)
        pthread_join(th[i], NULL);
    ASSERT_ERR(sage_queue_recv(&len, q, buf, sizeof buf, 0), SAGE_ETIMEDOUT);
    sage_queue_close(q);
}

struct drain_ctx {
    uint32_t next;
    size_t calls;
};

static void drain_cb(void *arg, const void *data, size_t len)
{
    struct drain_ctx *c = arg;

    check(data, len, 3, c->next++);
    c->calls++;
}

static void t_drain_batch(void)
{
    sage_queue *q = create("d", 1 << 16, 0);
    struct drain_ctx c = {0, 0};
    uint8_t m[64];
    size_t n = 0;

    for (uint32_t i = 0; i < 100; i++)
        ASSERT_OK(sage_queue_send(q, m, fill(m, 3, i, 16 + i % 40), 0));
    ASSERT_OK(sage_queue_drain(&n, q, drain_cb, &c, 30, 0));
    ASSERT_EQ(n, 30);
    ASSERT_OK(sage_queue_drain(&n, q, drain_cb, &c, 0, 0));
    ASSERT_EQ(n, 70);
    ASSERT_EQ(c.calls, 100);
    ASSERT_ERR(sage_queue_drain(&n, q, drain_cb, &c, 0, 0), SAGE_ETIMEDOUT);
    ASSERT_EQ(n, 0);
    sage_queue_close(q);
}

static void t_claim_commit_abort(void)
{
    sage_queue *q = create("c", 4096, 500);
    void *b1 = NULL, *b2 = NULL;
    uint8_t buf[600];
    size_t len;
    sage_queue_stats s;

    ASSERT_OK(sage_queue_claim(&b1, q, 100, 0));
    ASSERT_ERR(sage_queue_claim(&b2, q, 10, 0), SAGE_EBUSY); /* one claim per thread */
    fill(b1, 9, 0, 100);
    ASSERT_ERR(sage_queue_commit(q, buf), SAGE_EINVAL); /* not from the ring */
    ASSERT_ERR(sage_queue_recv(&len, q, buf, sizeof buf, 0), SAGE_ETIMEDOUT); /* uncommitted */
    ASSERT_OK(sage_queue_commit(q, b1));
    ASSERT_ERR(sage_queue_commit(q, b1), SAGE_EINVAL); /* already committed */
    ASSERT_OK(sage_queue_claim(&b2, q, 50, 0));
    ASSERT_OK(sage_queue_abort(q, b2));
    ASSERT_OK(sage_queue_send(q, "z", 1, 0));
    ASSERT_OK(sage_queue_recv(&len, q, buf, sizeof buf, 0));
    check(buf, len, 9, 0);
    ASSERT_OK(sage_queue_recv(&len, q, buf, sizeof buf, 0)); /* the aborted one is skipped */
    ASSERT_EQ(len, 1);
    ASSERT_OK(sage_queue_stats_read(&s, q));
    ASSERT_EQ(s.aborted, 1);
    ASSERT_EQ(s.msgs_in, 2);
    ASSERT_EQ(s.msgs_out, 2);
    ASSERT_ERR(sage_queue_claim(&b2, q, 501, 0), SAGE_EMSGSIZE);
    sage_queue_close(q);
}

static void t_stats_exact(void)
{
    sage_queue_opts o = QUEUE_OPTS(.flags = SAGE_QUEUE_CREATE, .capacity = 4096, .max_msgs = 5);
    sage_queue *q = NULL;
    sage_queue_stats s;
    uint8_t m[100], buf[200];
    size_t len;

    ASSERT_OK(sage_queue_open(&q, th_name("s"), &o));
    for (int i = 0; i < 5; i++)
        ASSERT_OK(sage_queue_send(q, m, 10 + i, 0));
    ASSERT_ERR(sage_queue_send(q, m, 1, 0), SAGE_EFULL); /* the message bound */
    ASSERT_OK(sage_queue_stats_read(&s, q));
    ASSERT_EQ(s.max_msgs, 5);
    ASSERT_EQ(s.msgs_in, 5);
    ASSERT_EQ(s.bytes_in, 10 + 11 + 12 + 13 + 14);
    ASSERT_EQ(s.depth_msgs, 5);
    ASSERT_EQ(s.full_events, 1);
    ASSERT_EQ(s.msgs_out, 0);
    ASSERT_OK(sage_queue_recv(&len, q, buf, sizeof buf, 0));
    ASSERT_OK(sage_queue_recv(&len, q, buf, sizeof buf, 0));
    ASSERT_OK(sage_queue_stats_read(&s, q));
    ASSERT_EQ(s.msgs_out, 2);
    ASSERT_EQ(s.bytes_out, 21);
    ASSERT_EQ(s.depth_msgs, 3);
    ASSERT_EQ(s.consumer_pid, getpid());
    ASSERT_EQ(s.consumer_alive, 1);
    ASSERT_EQ(s.creator_pid, getpid());
    ASSERT_EQ(s.closed, 0);
    ASSERT_EQ(s.closed_by_pid, 0);
    ASSERT_EQ(s.corrupt, 0);
    ASSERT_STREQ(s.corrupt_reason, "");
    sage_queue_close(q);
}

static void t_empty_timeout(void)
{
    sage_queue *q = create("e", 4096, 0);
    uint8_t buf[16];
    size_t len;
    double t0 = th_now_ms(), dt;

    ASSERT_ERR(sage_queue_recv(&len, q, buf, sizeof buf, 100), SAGE_ETIMEDOUT);
    dt = th_now_ms() - t0;
    ASSERT_LE(100, dt);
    ASSERT_LE(dt, 100 + 150); /* tolerance: a loaded 2-CPU machine */
    t0 = th_now_ms();
    ASSERT_ERR(sage_queue_recv(&len, q, buf, sizeof buf, 0), SAGE_ETIMEDOUT);
    ASSERT_LE(th_now_ms() - t0, 50);
    sage_queue_close(q);
}

/* map_hdr maps the header of queue base a second time, as a peer that
 * scribbles on it (or watches it) would */
static struct sq_hdr *map_hdr(const char *base)
{
    char path[300];
    int fd;
    struct sq_hdr *h;

    snprintf(path, sizeof path, "/dev/shm/sage.q.%s", th_name(base));
    fd = open(path, O_RDWR);
    ASSERT_TRUE(fd >= 0);
    h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_TRUE(h != MAP_FAILED);
    close(fd);
    return h;
}

/* WAIT_RECEIVER_PARKED, WAIT_SENDER_PARKED: until a receiver (a sender) of
 * the queue whose header is h sleeps, waiting for a message (for room) */
#define WAIT_RECEIVER_PARKED(h) ASSERT_WAIT(atomic_load(&(h)->cons_waiting) != 0, 5000)
#define WAIT_SENDER_PARKED(h) ASSERT_WAIT(atomic_load(&(h)->space_waiters) != 0, 5000)

/* do_later acts on a queue from another thread: after a delay, in the cases
 * that measure how long a blocked call lasts (the delay is what they test),
 * or as soon as a call of another thread sleeps on the queue (h) */
enum { AFTER_DELAY, AFTER_RECEIVER_PARKS, AFTER_SENDER_PARKS };

struct later {
    sage_queue *q;
    int what; /* 0: receive one, 1: close, 2: send one */
    int when; /* AFTER_... */
    int delay_ms;
    struct sq_hdr *h;
};

static void *do_later(void *p)
{
    struct later *l = p;
    uint8_t buf[4096];
    size_t len;

    if (l->when == AFTER_RECEIVER_PARKS)
        WAIT_RECEIVER_PARKED(l->h);
    else if (l->when == AFTER_SENDER_PARKS)
        WAIT_SENDER_PARKED(l->h);
    else
        th_sleep_ms(l->delay_ms);
    if (l->what == 0)
        ASSERT_OK(sage_queue_recv(&len, l->q, buf, sizeof buf, 0));
    else if (l->what == 1)
        ASSERT_OK(sage_queue_shutdown(l->q));
    else
        ASSERT_OK(sage_queue_send(l->q, "x", 1, 0));
    return NULL;
}

static void t_full_blocks(void)
{
    sage_queue *q = create("full", 4096, 1000);
    uint8_t m[1000];
    double t0, dt;
    int n = 0;
    pthread_t th;
    struct later l = {q, 0, AFTER_DELAY, 100, NULL};

    while (sage_queue_send(q, m, sizeof m, 0) == SAGE_OK)
        n++;
    ASSERT_EQ(n, 4);
    t0 = th_now_ms();
    ASSERT_ERR(sage_queue_send(q, m, sizeof m, 80), SAGE_EFULL); /* waits, then gives up */
    dt = th_now_ms() - t0;
    ASSERT_LE(80, dt);
    ASSERT_LE(dt, 80 + 150);
    /* room frees after 100 ms: a blocked send then succeeds */
    pthread_create(&th, NULL, do_later, &l);
    t0 = th_now_ms();
    ASSERT_OK(sage_queue_send(q, m, sizeof m, 5000));
    dt = th_now_ms() - t0;
    ASSERT_LE(90, dt);
    ASSERT_LE(dt, 100 + 150);
    pthread_join(th, NULL);
    sage_queue_close(q);
}

/* a shutdown wakes a receiver, and a sender, asleep on the queue */
static void t_close_wakes(void)
{
    sage_queue *q = create("cw", 4096, 1000);
    uint8_t m[1000];
    size_t len;
    pthread_t th;
    struct later l = {q, 1, AFTER_RECEIVER_PARKS, 0, map_hdr("cw")};
    double t0;

    /* a blocked receiver */
    pthread_create(&th, NULL, do_later, &l);
    t0 = th_now_ms();
    ASSERT_ERR(sage_queue_recv(&len, q, m, sizeof m, -1), SAGE_ECLOSED);
    ASSERT_LE(th_now_ms() - t0, 1000);
    pthread_join(th, NULL);
    ASSERT_ERR(sage_queue_send(q, m, 10, 0), SAGE_ECLOSED);
    munmap(l.h, sizeof *l.h);
    sage_queue_close(q);

    /* a blocked sender */
    q = create("cw2", 4096, 1000);
    while (sage_queue_send(q, m, sizeof m, 0) == SAGE_OK)
        ;
    l = (struct later){q, 1, AFTER_SENDER_PARKS, 0, map_hdr("cw2")};
    pthread_create(&th, NULL, do_later, &l);
    t0 = th_now_ms();
    ASSERT_ERR(sage_queue_send(q, m, sizeof m, -1), SAGE_ECLOSED);
    ASSERT_LE(th_now_ms() - t0, 1000);
    pthread_join(th, NULL);
    munmap(l.h, sizeof *l.h);
    /* what was queued is still delivered, then ECLOSED */
    for (int i = 0; i < 4; i++)
        ASSERT_OK(sage_queue_recv(&len, q, m, sizeof m, 0));
    ASSERT_ERR(sage_queue_recv(&len, q, m, sizeof m, -1), SAGE_ECLOSED);
    sage_queue_close(q);
}

/* close from another process (the creator) wakes waiters in this one */
static void t_close_wakes_across_processes(void)
{
    sage_queue *q;
    uint8_t m[16];
    size_t len;
    int sync[2], pid;
    char c;
    double t0;

    ASSERT_EQ(pipe(sync), 0);
    pid = fork();
    if (pid == 0) {
        sage_queue *cq = create("cwp", 4096, 0);

        ASSERT_EQ(write(sync[1], "x", 1), 1);
        WAIT_RECEIVER_PARKED(map_hdr("cwp")); /* the parent's */
        ASSERT_OK(sage_queue_shutdown(cq));
        _exit(0);
    }
    close(sync[1]); /* a child that fails first: EOF, not a hang */
    ASSERT_EQ(read(sync[0], &c, 1), 1);
    q = attach("cwp");
    t0 = th_now_ms();
    ASSERT_ERR(sage_queue_recv(&len, q, m, sizeof m, 7000), SAGE_ECLOSED);
    ASSERT_LE(th_now_ms() - t0, 2000);
    ASSERT_EQ(th_wait_child(pid, 5000), 0);
    sage_queue_close(q);
}

/* only the creator or the consumer may close a named queue; stats say who did */
static void t_close_rules(void)
{
    sage_queue *q = create("cr", 4096, 0);
    sage_queue_stats st;
    uint8_t m[16];
    size_t len;
    int pid;

    /* a process that is neither: refused, and the queue stays open */
    pid = fork();
    if (pid == 0) {
        sage_queue *c = attach("cr");

        ASSERT_ERR(sage_queue_shutdown(c), SAGE_EPERM);
        ASSERT_TRUE(strstr(sage_errdetail(), "only its creator") != NULL);
        ASSERT_OK(sage_queue_send(c, "a", 1, 0));
        _exit(0);
    }
    ASSERT_EQ(th_wait_child(pid, 5000), 0);
    ASSERT_OK(sage_queue_stats_read(&st, q));
    ASSERT_EQ(st.closed, 0);
    ASSERT_EQ(st.closed_by_pid, 0);

    /* the consumer (not the creator) may */
    pid = fork();
    if (pid == 0) {
        sage_queue *c = attach("cr");

        ASSERT_OK(sage_queue_recv(&len, c, m, sizeof m, 0)); /* takes the consumer role */
        ASSERT_OK(sage_queue_shutdown(c));
        _exit(0);
    }
    ASSERT_EQ(th_wait_child(pid, 5000), 0);
    ASSERT_OK(sage_queue_stats_read(&st, q));
    ASSERT_EQ(st.closed, 1);
    ASSERT_EQ(st.closed_by_pid, pid);
    ASSERT_OK(sage_queue_shutdown(q)); /* the creator may too; the first closer stays */
    ASSERT_OK(sage_queue_stats_read(&st, q));
    ASSERT_EQ(st.closed_by_pid, pid);
    ASSERT_ERR(sage_queue_send(q, "b", 1, 0), SAGE_ECLOSED);
    sage_queue_close(q);

    /* the creator closes: its own pid */
    q = create("cr2", 4096, 0);
    ASSERT_OK(sage_queue_shutdown(q));
    ASSERT_OK(sage_queue_stats_read(&st, q));
    ASSERT_EQ(st.closed, 1);
    ASSERT_EQ(st.closed_by_pid, getpid());
    sage_queue_close(q);

    /* the closed bit set by a write from outside: closed, by nobody */
    {
        char path[300];
        int fd;
        struct sq_hdr *h;

        q = create("cr3", 4096, 0);
        snprintf(path, sizeof path, "/dev/shm/sage.q.%s", th_name("cr3"));
        fd = open(path, O_RDWR);
        ASSERT_TRUE(fd >= 0);
        h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ASSERT_TRUE(h != MAP_FAILED);
        close(fd);
        atomic_store(&h->state, SQ_ST_CLOSED);
        ASSERT_OK(sage_queue_stats_read(&st, q));
        ASSERT_EQ(st.closed, 1);
        ASSERT_EQ(st.closed_by_pid, 0);
        ASSERT_EQ(st.corrupt, 0);
        ASSERT_ERR(sage_queue_send(q, "c", 1, 0), SAGE_ECLOSED);
        munmap(h, sizeof *h);
        sage_queue_close(q);
    }

    /* a private queue: its one process may always close it */
    q = create(NULL, 4096, 0);
    ASSERT_OK(sage_queue_shutdown(q));
    sage_queue_close(q);
}

/* a receiver waits for a message sent 100 ms later, and wakes at once */
static void t_wake_from_sleep(void)
{
    sage_queue *q = create("wk", 4096, 0);
    pthread_t th;
    struct later l = {q, 2, AFTER_DELAY, 100, NULL};
    uint8_t m[16];
    size_t len;
    double t0 = th_now_ms(), dt;

    pthread_create(&th, NULL, do_later, &l);
    ASSERT_OK(sage_queue_recv(&len, q, m, sizeof m, 5000));
    dt = th_now_ms() - t0;
    ASSERT_LE(90, dt);
    ASSERT_LE(dt, 100 + 150);
    pthread_join(th, NULL);
    sage_queue_close(q);
}

static void t_one_consumer(void)
{
    sage_queue *q = create("oc", 4096, 0);
    uint8_t m[16];
    size_t len;
    int pid;

    ASSERT_OK(sage_queue_send(q, "a", 1, 0));
    ASSERT_OK(sage_queue_recv(&len, q, m, sizeof m, 0)); /* we are the consumer now */
    pid = fork();
    if (pid == 0) {
        sage_queue *c = attach("oc");

        ASSERT_ERR(sage_queue_recv(&len, c, m, sizeof m, 0), SAGE_EBUSY);
        ASSERT_OK(sage_queue_send(c, "b", 1, 0)); /* producing is fine */
        _exit(0);
    }
    ASSERT_EQ(th_wait_child(pid, 5000), 0);
    ASSERT_OK(sage_queue_recv(&len, q, m, sizeof m, 0));
    ASSERT_EQ(m[0], 'b');
    sage_queue_close(q); /* gives the role up */
    pid = fork();
    if (pid == 0) {
        sage_queue *c = attach("oc");

        ASSERT_OK(sage_queue_send(c, "c", 1, 0));
        ASSERT_OK(sage_queue_recv(&len, c, m, sizeof m, 0));
        ASSERT_EQ(m[0], 'c');
        _exit(0);
    }
    ASSERT_EQ(th_wait_child(pid, 5000), 0);
}

/* the consumer role of a process that died passes to the next one */
static void t_dead_consumer_replaced(void)
{
    sage_queue *q;
    uint8_t m[16];
    size_t len;
    int pid = fork();

    if (pid == 0) {
        sage_queue *c = create("dc", 4096, 0);

        ASSERT_OK(sage_queue_send(c, "a", 1, 0));
        ASSERT_OK(sage_queue_recv(&len, c, m, sizeof m, 0));
        raise(SIGKILL);
    }
    ASSERT_KILLED(th_wait_child(pid, 5000), SIGKILL);
    q = attach("dc");
    ASSERT_OK(sage_queue_send(q, "d", 1, 0));
    ASSERT_OK(sage_queue_recv(&len, q, m, sizeof m, 0));
    ASSERT_EQ(m[0], 'd');
    sage_queue_close(q);
}

static void t_reopen_after_creator_exit(void)
{
    sage_queue *q;
    uint8_t m[64];
    size_t len;
    int pid = fork();

    if (pid == 0) {
        sage_queue *c = create("ro", 4096, 0);

        ASSERT_OK(sage_queue_send(c, "persist", 7, 0));
        sage_queue_close(c);
        _exit(0);
    }
    ASSERT_EQ(th_wait_child(pid, 5000), 0);
    q = attach("ro");
    ASSERT_OK(sage_queue_recv(&len, q, m, sizeof m, 0));
    ASSERT_EQ(len, 7);
    ASSERT_TRUE(memcmp(m, "persist", 7) == 0);
    {
        sage_queue_stats s;

        ASSERT_OK(sage_queue_stats_read(&s, q));
        ASSERT_EQ(s.creator_pid, pid);
    }
    sage_queue_close(q);
}

static void t_other_user_refused(void)
{
    struct passwd *pw;
    sage_queue *q;
    int pid;

    if (geteuid() != 0)
        th_skip("needs root to switch to another user");
    pw = getpwnam("nobody");
    if (pw == NULL)
        th_skip("no user 'nobody'");
    q = create("perm", 4096, 0);
    pid = fork();
    if (pid == 0) {
        sage_queue *c = NULL;

        if (setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
            _exit(3);
        ASSERT_ERR(sage_queue_open(&c, th_name("perm"), NULL), SAGE_EPERM);
        ASSERT_TRUE(strstr(sage_errdetail(), "ermission") != NULL);
        _exit(0);
    }
    ASSERT_EQ(th_wait_child(pid, 5000), 0);
    sage_queue_close(q);
}

/* corrupt a header field of a fresh segment, then expect open to refuse */
static void corrupt_header_case(const char *base, size_t off, uint64_t value, int width,
                                sage_err want)
{
    char path[300];
    int fd;
    uint8_t *mem;
    sage_queue *q = create(base, 4096, 0), *q2 = NULL;

    sage_queue_close(q);
    snprintf(path, sizeof path, "/dev/shm/sage.q.%s", th_name(base));
    fd = open(path, O_RDWR);
    ASSERT_TRUE(fd >= 0);
    mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_TRUE(mem != MAP_FAILED);
    if (width == 8)
        memcpy(mem + off, &value, 8);
    else {
        uint32_t v = (uint32_t)value;

        memcpy(mem + off, &v, 4);
    }
    munmap(mem, 4096);
    close(fd);
    ASSERT_ERR(sage_queue_open(&q2, th_name(base), NULL), want);
    ASSERT_TRUE(q2 == NULL);
    ASSERT_TRUE(strlen(sage_errdetail()) > 0);
}

static void t_corrupt_header(void)
{
    corrupt_header_case("h1", offsetof(struct sq_hdr, magic), 0x1234, 8, SAGE_EPROTO);
    corrupt_header_case("h2", offsetof(struct sq_hdr, version), 99, 4, SAGE_EVERSION);
    corrupt_header_case("h3", offsetof(struct sq_hdr, capacity), 1ull << 40, 8, SAGE_EPROTO);
    corrupt_header_case("h4", offsetof(struct sq_hdr, capacity), 8192, 8, SAGE_EPROTO);
    corrupt_header_case("h5", offsetof(struct sq_hdr, capacity), 4097, 8, SAGE_EPROTO);
    corrupt_header_case("h6", offsetof(struct sq_hdr, max_msg), 1u << 30, 8, SAGE_EPROTO);
    corrupt_header_case("h7", offsetof(struct sq_hdr, nslots), 0, 4, SAGE_EPROTO);
    corrupt_header_case("h8", offsetof(struct sq_hdr, nslots), 70000, 4, SAGE_EPROTO);
    corrupt_header_case("h9", offsetof(struct sq_hdr, ring_off), 512, 8, SAGE_EPROTO);
    corrupt_header_case("h10", offsetof(struct sq_hdr, hdr_size), 2048, 4, SAGE_EPROTO);
    {
        /* a segment that is not a queue at all (too small) */
        char path[300];
        int fd;
        sage_queue *q = NULL;

        snprintf(path, sizeof path, "/dev/shm/sage.q.%s", th_name("junk"));
        fd = open(path, O_RDWR | O_CREAT, 0600);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, "junkjunkjunk", 12), 12);
        close(fd);
        ASSERT_ERR(sage_queue_open(&q, th_name("junk"), NULL), SAGE_EPROTO);
    }
}

/* corrupt records: the consumer reports EPROTO and never reads outside */
static void t_corrupt_records(void)
{
    static const struct {
        uint32_t tag, len;
    } bad[] = {
        {SQ_TAG_MSG, 3},          /* shorter than a header */
        {SQ_TAG_MSG, 5000},       /* past the ring's end */
        {SQ_TAG_MSG, 0xffffffff}, /* huge */
        {SQ_TAG_PAD, 64},         /* padding that does not end at the ring's end */
        {0x12345678, 16},         /* unknown tag */
        {SQ_TAG_INPROG | 60000, 16}, /* in progress through a slot that does not exist */
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char base[16];
        sage_queue *q;
        uint8_t buf[64];
        size_t len;
        char path[300];
        int fd;
        uint8_t *mem;
        struct sq_hdr *h;
        uint64_t w = ((uint64_t)bad[i].tag << 32) | bad[i].len;

        snprintf(base, sizeof base, "r%zu", i);
        q = create(base, 4096, 0);
        ASSERT_OK(sage_queue_send(q, "ok", 2, 0));
        ASSERT_OK(sage_queue_send(q, "ok", 2, 0)); /* second record gets corrupted */
        snprintf(path, sizeof path, "/dev/shm/sage.q.%s", th_name(base));
        fd = open(path, O_RDWR);
        ASSERT_TRUE(fd >= 0);
        mem = mmap(NULL, 1 << 17, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ASSERT_TRUE(mem != MAP_FAILED);
        close(fd);
        h = (struct sq_hdr *)mem;
        memcpy(mem + h->ring_off + 16, &w, 8);
        ASSERT_OK(sage_queue_recv(&len, q, buf, sizeof buf, 0));
        ASSERT_ERR(sage_queue_recv(&len, q, buf, sizeof buf, 0), SAGE_EPROTO);
        ASSERT_ERR(sage_queue_recv(&len, q, buf, sizeof buf, 0), SAGE_EPROTO); /* sticky */
        munmap(mem, 1 << 17);
        sage_queue_close(q);
    }
}

/* a queue with one message sent and received: positions off zero, and
 * this process its consumer */
static sage_queue *used_queue(const char *base)
{
    sage_queue *q = create(base, 4096, 0);
    uint8_t m[16];
    size_t len;

    ASSERT_OK(sage_queue_send(q, "a", 1, 0));
    ASSERT_OK(sage_queue_recv(&len, q, m, sizeof m, 0));
    return q;
}

enum { C_TAIL_ALIGN, C_HEAD_ALIGN, C_HEAD_PAST, C_TAIL_AHEAD, C_COUNT, C_HEAD_MOVED };

static const struct {
    int how;
    const char *why;   /* expected in the detail and the stats' reason */
    bool fresh;        /* a consumer taking the role sees it too (and stats) */
    bool producer;     /* a producer sees it on its own */
} pos_cases[] = {
    {C_TAIL_ALIGN, "tail is not 8-byte aligned", true, true},
    {C_HEAD_ALIGN, "head is not 8-byte aligned", true, true},
    {C_HEAD_PAST, "head is past tail", true, true},
    {C_TAIL_AHEAD, "tail is more than a ring ahead of head", true, true},
    {C_COUNT, "claim count does not match", true, false},
    {C_HEAD_MOVED, "head was moved by someone else", false, false},
};

static void scribble(struct sq_hdr *h, int how)
{
    uint64_t T = atomic_load(&h->tail), H = atomic_load(&h->head), cap = h->capacity;

    switch (how) {
    case C_TAIL_ALIGN:
        atomic_store(&h->tail, sq_pack(sq_pos(T) + 3, sq_cnt(T)));
        break;
    case C_HEAD_ALIGN:
        atomic_store(&h->head, sq_pack(sq_pos(H) + 4, sq_cnt(H)));
        break;
    case C_HEAD_PAST:
        atomic_store(&h->head, sq_pack(sq_pos(T) + 64, sq_cnt(T) + 1));
        break;
    case C_TAIL_AHEAD:
        atomic_store(&h->tail, sq_pack(sq_pos(H) + cap + 64, sq_cnt(H) + 1));
        break;
    case C_COUNT:
        atomic_store(&h->tail, sq_pack(sq_pos(T), sq_cnt(T) + 3));
        break;
    case C_HEAD_MOVED: /* a possible pair, but not the consumer's head */
        atomic_store(&h->head, sq_pack(sq_pos(H) - 64, sq_cnt(H) - 1));
        break;
    }
}

/* impossible head and tail, written from outside: a receiver, a sender and
 * stats each say so (SAGE_EPROTO, naming what is wrong) at once, instead of
 * waiting for a record that cannot come */
static void t_corrupt_positions(void)
{
    for (size_t i = 0; i < sizeof pos_cases / sizeof pos_cases[0]; i++) {
        const char *why = pos_cases[i].why;
        char base[16];
        sage_queue *q;
        struct sq_hdr *h;
        sage_queue_stats st;
        uint8_t m[16];
        size_t len;
        double t0;
        int pid;

        printf("  %s\n", why);
        /* the running consumer, waiting */
        snprintf(base, sizeof base, "pa%zu", i);
        q = used_queue(base);
        h = map_hdr(base);
        scribble(h, pos_cases[i].how);
        t0 = th_now_ms();
        ASSERT_ERR(sage_queue_recv(&len, q, m, sizeof m, 3000), SAGE_EPROTO);
        ASSERT_LE(th_now_ms() - t0, 500); /* at once: not after the 1 s unclear bound */
        ASSERT_TRUE(strstr(sage_errdetail(), why) != NULL);
        ASSERT_ERR(sage_queue_recv(&len, q, m, sizeof m, 3000), SAGE_EPROTO); /* sticky */
        ASSERT_TRUE(strstr(sage_errdetail(), why) != NULL);
        ASSERT_OK(sage_queue_stats_read(&st, q));
        ASSERT_EQ(st.corrupt, 1);
        ASSERT_TRUE(strstr(st.corrupt_reason, why) != NULL);
        /* marked for every process: senders fail too */
        ASSERT_ERR(sage_queue_send(q, "b", 1, -1), SAGE_EPROTO);
        ASSERT_TRUE(strstr(sage_errdetail(), why) != NULL);
        munmap(h, sizeof *h);
        sage_queue_close(q);
        if (!pos_cases[i].fresh)
            continue;

        /* stats see it on read, before anyone marked it; then a sender
         * that opens it finds it on its own and never waits */
        snprintf(base, sizeof base, "pb%zu", i);
        q = used_queue(base);
        h = map_hdr(base);
        scribble(h, pos_cases[i].how);
        ASSERT_OK(sage_queue_stats_read(&st, q));
        ASSERT_EQ(st.corrupt, 1);
        ASSERT_TRUE(strstr(st.corrupt_reason, why) != NULL);
        ASSERT_EQ(atomic_load(&h->state), 0); /* reading stats marks nothing */
        if (pos_cases[i].producer) {
            pid = fork();
            if (pid == 0) {
                sage_queue *p = attach(base);

                ASSERT_ERR(sage_queue_send(p, "c", 1, -1), SAGE_EPROTO);
                ASSERT_TRUE(strstr(sage_errdetail(), why) != NULL);
                _exit(0);
            }
            ASSERT_EQ(th_wait_child(pid, 3000), 0);
            ASSERT_EQ(atomic_load(&h->state), SQ_ST_CORRUPT);
        }
        munmap(h, sizeof *h);
        sage_queue_close(q);

        /* a consumer taking the role over */
        snprintf(base, sizeof base, "pc%zu", i);
        q = used_queue(base);
        sage_queue_close(q); /* gives the role up */
        h = map_hdr(base);
        scribble(h, pos_cases[i].how);
        q = attach(base);
        t0 = th_now_ms();
        ASSERT_ERR(sage_queue_recv(&len, q, m, sizeof m, 3000), SAGE_EPROTO);
        ASSERT_LE(th_now_ms() - t0, 500); /* at once: not after the 1 s unclear bound */
        ASSERT_TRUE(strstr(sage_errdetail(), why) != NULL);
        munmap(h, sizeof *h);
        sage_queue_close(q);
    }
}

/* an uncommitted record at head that no producer accounts for is waited
 * for a bounded time (1 s), then the queue is corrupt */
static void t_unclear_claim_bounded(void)
{
    sage_queue *q = used_queue("u");
    struct sq_hdr *h = map_hdr("u");
    uint64_t T = atomic_load(&h->tail);
    uint8_t m[16];
    size_t len;
    sage_err r = SAGE_OK;
    double t0, dt;
    int calls = 0;

    /* a claim (tail moved, the record's word still zero) no slot describes */
    atomic_store(&h->tail, sq_pack(sq_pos(T) + 64, sq_cnt(T) + 1));
    /* short receives keep counting: the bound is the record's, not a call's */
    t0 = th_now_ms();
    while (calls < 20 && (r = sage_queue_recv(&len, q, m, sizeof m, 300)) == SAGE_ETIMEDOUT)
        calls++;
    dt = th_now_ms() - t0;
    ASSERT_ERR(r, SAGE_EPROTO);
    ASSERT_TRUE(strstr(sage_errdetail(), "no slot claims it") != NULL);
    ASSERT_LE(900, dt);
    ASSERT_LE(dt, 2500);
    ASSERT_LE(2, calls);
    munmap(h, sizeof *h);
    sage_queue_close(q);

    /* an in-progress record naming a live slot (ours) that claims nothing */
    q = used_queue("u2"); /* this thread's send took slot 0 */
    h = map_hdr("u2");
    {
        uint64_t H = atomic_load(&h->head), w = ((uint64_t)SQ_TAG_INPROG << 32) | 16;
        _Atomic uint64_t *rec;
        uint8_t *seg;
        char path[300];
        int fd;

        snprintf(path, sizeof path, "/dev/shm/sage.q.%s", th_name("u2"));
        fd = open(path, O_RDWR);
        ASSERT_TRUE(fd >= 0);
        seg = mmap(NULL, h->seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ASSERT_TRUE(seg != MAP_FAILED);
        close(fd);
        rec = (_Atomic uint64_t *)(seg + h->ring_off + (sq_pos(H) & (h->capacity - 1)));
        atomic_store(rec, w);
        T = atomic_load(&h->tail);
        atomic_store(&h->tail, sq_pack(sq_pos(T) + 16, sq_cnt(T) + 1));
        t0 = th_now_ms();
        ASSERT_ERR(sage_queue_recv(&len, q, m, sizeof m, 5000), SAGE_EPROTO);
        dt = th_now_ms() - t0;
        ASSERT_TRUE(strstr(sage_errdetail(), "live owner's slot claims other room") != NULL);
        ASSERT_LE(900, dt);
        ASSERT_LE(dt, 2500);
        munmap(seg, h->seg_size);
    }
    munmap(h, sizeof *h);
    sage_queue_close(q);
}

static void *send_x(void *p)
{
    ASSERT_OK(sage_queue_send(p, "x", 1, 0));
    return NULL;
}

/* closed with a live claim stuck at head: receiving ends after a grace
 * period (a consumer draining before it stops always stops), and nothing
 * is dropped from the ring */
static void t_close_grace(void)
{
    sage_queue *q = create("g", 4096, 100);
    pthread_t th;
    void *buf;
    uint8_t m[16];
    size_t len;
    double t0, dt;

    ASSERT_OK(sage_queue_claim(&buf, q, 1, 0));
    pthread_create(&th, NULL, send_x, q); /* queued behind the claim */
    pthread_join(th, NULL);
    ASSERT_OK(sage_queue_shutdown(q));
    t0 = th_now_ms();
    ASSERT_ERR(sage_queue_recv(&len, q, m, sizeof m, 5000), SAGE_ECLOSED);
    dt = th_now_ms() - t0;
    ASSERT_TRUE(strstr(sage_errdetail(), "left behind") != NULL);
    ASSERT_LE(900, dt);
    ASSERT_LE(dt, 2500);
    /* committed late: both are still there, then closed at once */
    memcpy(buf, "c", 1);
    ASSERT_OK(sage_queue_commit(q, buf));
    ASSERT_OK(sage_queue_recv(&len, q, m, sizeof m, 0));
    ASSERT_EQ(m[0], 'c');
    ASSERT_OK(sage_queue_recv(&len, q, m, sizeof m, 0));
    ASSERT_EQ(m[0], 'x');
    ASSERT_ERR(sage_queue_recv(&len, q, m, sizeof m, -1), SAGE_ECLOSED);
    sage_queue_close(q);
}

struct listed {
    int n;
    int stop_after; /* 0: never */
    char names[16][256];
};

static bool collect(void *arg, const char *name)
{
    struct listed *l = arg;

    if (strncmp(name, th_prefix(), strlen(th_prefix())) == 0) {
        ASSERT_TRUE(l->n < 16);
        snprintf(l->names[l->n++], sizeof l->names[0], "%s", name);
    }
    return !(l->stop_after && l->n >= l->stop_after);
}

static bool listed_has(const struct listed *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0)
            return true;
    return false;
}

/* sage_queue_list: this user's queues by name prefix, nothing else */
static void t_list(void)
{
    sage_queue *a = create("la", 4096, 0), *b = create("lb", 4096, 0), *c = create("xc", 4096, 0);
    struct listed l;
    char path[300], target[300];
    char longp[SAGE_QUEUE_NAME_MAX + 2];
    int fd;

    /* not queues of ours: an invalid name, a link, another user's segment */
    snprintf(path, sizeof path, "/dev/shm/sage.q.%s", th_name("l bad"));
    fd = open(path, O_RDWR | O_CREAT, 0600);
    ASSERT_TRUE(fd >= 0);
    close(fd);
    snprintf(path, sizeof path, "/dev/shm/sage.q.%s", th_name("llink"));
    snprintf(target, sizeof target, "/dev/shm/sage.q.%s", th_name("la"));
    ASSERT_EQ(symlink(target, path), 0);
    if (geteuid() == 0) {
        snprintf(path, sizeof path, "/dev/shm/sage.q.%s", th_name("lforeign"));
        fd = open(path, O_RDWR | O_CREAT, 0600);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(fchown(fd, 65534, 65534), 0);
        close(fd);
    }

    memset(&l, 0, sizeof l);
    ASSERT_OK(sage_queue_list(th_name("l"), collect, &l));
    ASSERT_EQ(l.n, 2);
    ASSERT_TRUE(listed_has(&l, th_name("la")));
    ASSERT_TRUE(listed_has(&l, th_name("lb")));

    memset(&l, 0, sizeof l);
    ASSERT_OK(sage_queue_list(NULL, collect, &l)); /* all: ours among them */
    ASSERT_EQ(l.n, 3);
    ASSERT_TRUE(listed_has(&l, th_name("xc")));
    memset(&l, 0, sizeof l);
    ASSERT_OK(sage_queue_list("", collect, &l));
    ASSERT_EQ(l.n, 3);

    memset(&l, 0, sizeof l);
    l.stop_after = 1;
    ASSERT_OK(sage_queue_list(th_prefix(), collect, &l));
    ASSERT_EQ(l.n, 1);

    memset(&l, 0, sizeof l);
    ASSERT_OK(sage_queue_list(th_name("nothing"), collect, &l));
    ASSERT_EQ(l.n, 0);
    ASSERT_ERR(sage_queue_list(NULL, NULL, NULL), SAGE_EINVAL);
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    ASSERT_ERR(sage_queue_list(longp, collect, &l), SAGE_EINVAL);

    sage_queue_close(a);
    sage_queue_close(b);
    sage_queue_close(c);
    ASSERT_OK(sage_queue_unlink(th_name("lb")));
    memset(&l, 0, sizeof l);
    ASSERT_OK(sage_queue_list(th_name("l"), collect, &l));
    ASSERT_EQ(l.n, 1);
}

/* sage_queue_path: the file of a queue, whether or not it exists */
static void t_path(void)
{
    sage_queue *q = create("p", 4096, 0);
    char path[SAGE_QUEUE_PATH_MAX], want[SAGE_QUEUE_PATH_MAX], small[16];
    char longn[SAGE_QUEUE_NAME_MAX + 1];
    struct stat st;

    ASSERT_OK(sage_queue_path(path, sizeof path, th_name("p")));
    snprintf(want, sizeof want, "/dev/shm/sage.q.%s", th_name("p"));
    ASSERT_STREQ(path, want);
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_TRUE(S_ISREG(st.st_mode));
    ASSERT_OK(sage_queue_path(path, sizeof path, th_name("none")));

    /* the longest name fits SAGE_QUEUE_PATH_MAX */
    memset(longn, 'n', sizeof longn - 1);
    longn[sizeof longn - 1] = '\0';
    ASSERT_OK(sage_queue_path(path, sizeof path, longn));
    ASSERT_EQ(strlen(path), strlen("/dev/shm/sage.q.") + SAGE_QUEUE_NAME_MAX);

    ASSERT_ERR(sage_queue_path(small, sizeof small, th_name("p")), SAGE_EINVAL);
    ASSERT_ERR(sage_queue_path(path, sizeof path, "bad name"), SAGE_EINVAL);
    ASSERT_ERR(sage_queue_path(path, sizeof path, ""), SAGE_EINVAL);
    ASSERT_ERR(sage_queue_path(path, sizeof path, "../x"), SAGE_EINVAL);
    sage_queue_close(q);
}

static const struct th_case cases[] = {
    {"errdetail_quotes_itself", t_errdetail_quotes_itself, 10},
    {"names", t_names, 10},
    {"open_rules", t_open_rules, 10},
    {"basic", t_basic, 10},
    {"private", t_private, 10},
    {"wrap_sizes", t_wrap_sizes, 30},
    {"fifo_threads", t_fifo_threads, 60},
    {"drain_batch", t_drain_batch, 10},
    {"claim_commit_abort", t_claim_commit_abort, 10},
    {"stats_exact", t_stats_exact, 10},
    {"empty_timeout", t_empty_timeout, 10},
    {"full_blocks", t_full_blocks, 10},
    {"close_wakes", t_close_wakes, 10},
    {"close_wakes_across_processes", t_close_wakes_across_processes, 10},
    {"close_rules", t_close_rules, 10},
    {"close_grace", t_close_grace, 10},
    {"wake_from_sleep", t_wake_from_sleep, 10},
    {"one_consumer", t_one_consumer, 10},
    {"dead_consumer_replaced", t_dead_consumer_replaced, 10},
    {"reopen_after_creator_exit", t_reopen_after_creator_exit, 10},
    {"other_user_refused", t_other_user_refused, 10},
    {"corrupt_header", t_corrupt_header, 20},
    {"corrupt_records", t_corrupt_records, 10},
    {"corrupt_positions", t_corrupt_positions, 30},
    {"unclear_claim_bounded", t_unclear_claim_bounded, 20},
    {"list", t_list, 10},
    {"path", t_path, 10},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
