/*
 * test_protocol.c - what a client written from docs/PROTOCOL.md alone
 * meets: requests as raw bytes over NATS, well formed or not, of this
 * version or another; every one whose reply address can be found gets an
 * answer, with its id when that can be read.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "harness.h"
#include "natsfix_th.h"
#include "sage/task.h"
#include "testsvc.h"
#include "transport/natsio.h"
#include "wire/wire.h"

/* ------------------------------------------------- bytes, by hand */

struct buf {
    uint8_t b[512];
    size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
    ASSERT_TRUE(b->n + n <= sizeof b->b);
    memcpy(b->b + b->n, p, n);
    b->n += n;
}

static void put_str(struct buf *b, const char *s)
{
    uint8_t h[2];
    size_t n = strlen(s);

    if (n < 32) {
        h[0] = (uint8_t)(0xa0 | n);
        put(b, h, 1);
    } else {
        h[0] = 0xd9;
        h[1] = (uint8_t)n;
        put(b, h, 2);
    }
    put(b, s, n);
}

/* request builds a 10-element request: version, kind, id, "testsvc",
 * method, args (raw bytes), {}, reply_to, timeout 5000, flags 0 */
static void request(struct buf *b, unsigned version, unsigned kind, unsigned id,
                    const char *method, const char *args, size_t args_len, const char *reply_to)
{
    uint8_t head[4] = {0x9a, (uint8_t)version, (uint8_t)kind, (uint8_t)id};

    b->n = 0;
    put(b, head, 4);
    put_str(b, "testsvc");
    put_str(b, method);
    put(b, args, args_len);
    put(b, "\x80", 1);
    put_str(b, reply_to);
    put(b, "\xcd\x13\x88\x00", 4);
}

/* ------------------------------------------------- the rig */

static struct natsfix nf;
static sage_nats_conf nc;
static sage_cluster_opts co;
static sage_task *task;
static struct sage__nio *conn;
static struct sage__nio_sub *inbox_sub;
static char subject[160];

/* answers that arrive on our own inbox (envelope reply_to), one slot */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int got;
static uint8_t got_bytes[512];
static size_t got_len;
static char got_subject[256];

static void on_inbox(void *arg, struct sage__nio_msg *m)
{
    size_t len;
    const void *d = sage__nio_msg_data(m, &len);

    (void)arg;
    pthread_mutex_lock(&lock);
    got_len = len < sizeof got_bytes ? len : sizeof got_bytes;
    memcpy(got_bytes, d, got_len);
    snprintf(got_subject, sizeof got_subject, "%s", sage__nio_msg_subject(m));
    pthread_mutex_unlock(&lock);
    atomic_fetch_add(&got, 1);
}

static void up(char *inbox, size_t cap)
{
    sage_task_opts o;
    struct sage__nio_opts no = {0};
    char pattern[200];

    natsfix_start(&nf, 1, NULL);
    natsfix_conf(&nf, &nc, 0);
    memset(&co, 0, sizeof co);
    co.nats = &nc;
    sage_task_opts_init(&o);
    o.transport = SAGE_TRANSPORT_NATS;
    o.ns = th_prefix();
    o.cluster = &co;
    ASSERT_OK(sage_task_new(&task, &testsvc, &o));
    ASSERT_OK(sage_task_start(task));
    snprintf(subject, sizeof subject, "sage.%s.svc.testsvc", th_prefix());
    no.conf = &nc;
    no.name = "a foreign client";
    ASSERT_OK(sage__nio_connect(&conn, &no));
    ASSERT_OK(sage__nio_inbox(conn, inbox, cap));
    snprintf(pattern, sizeof pattern, "%s.>", inbox);
    ASSERT_OK(sage__nio_subscribe(conn, pattern, NULL, on_inbox, NULL, &inbox_sub));
    ASSERT_OK(sage__nio_flush(conn, 2000));
}

static void down(void)
{
    sage__nio_unsubscribe(inbox_sub);
    sage__nio_close(conn);
    sage_task_free(task);
    natsfix_stop(&nf);
}

/* ask sends b with a NATS reply subject and decodes the answer to *r */
static void ask(const struct buf *b, sage_arena *a, sage__resp *r)
{
    void *out;
    size_t len;

    ASSERT_OK(sage__nio_request(conn, subject, b->b, b->n, 3000, &out, &len));
    ASSERT_OK(sage__wire_resp_decode(out, len, a, r));
    free(out);
}

/* wait_inbox waits for the n-th answer on our inbox */
static bool wait_inbox(int n, int timeout_ms)
{
    double end = th_now_ms() + timeout_ms;

    while (atomic_load(&got) < n && th_now_ms() < end)
        usleep(1000);
    return atomic_load(&got) >= n;
}

static int64_t served(sage_arena *a)
{
    struct buf b;
    sage__resp r;

    request(&b, 1, 0, 1, "count", "\x90", 1, "");
    ask(&b, a, &r);
    ASSERT_TRUE(r.ok);
    return r.result.as.i;
}

static void expect_error(const struct buf *b, sage_arena *a, unsigned id, sage_err code,
                         const char *what)
{
    sage__resp r;

    ask(b, a, &r);
    if (r.ok || r.err_code != (int32_t)code || r.id != id)
        th_fail(__FILE__, __LINE__, "%s: answer ok %d, err_code %d, id %llu; want %s, id %u",
                what, r.ok, (int)r.err_code, (unsigned long long)r.id, sage_errname(code), id);
}

/* ------------------------------------------------- the cases */

static void t_answers(void)
{
    char inbox[128], to[160];
    sage_arena *a;
    struct buf b;
    sage__resp r;
    int64_t before;

    up(inbox, sizeof inbox);
    ASSERT_OK(sage_arena_new(&a, 0));

    /* well formed, answered on the NATS reply subject (reply_to empty) */
    request(&b, 1, 0, 9, "add", "\x92\x01\x02", 3, "");
    ask(&b, a, &r);
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.id, 9);
    ASSERT_EQ(r.result.as.i, 3);

    /* reply_to in the envelope wins over the NATS reply subject */
    snprintf(to, sizeof to, "%s.e1", inbox);
    request(&b, 1, 0, 10, "add", "\x92\x01\x02", 3, to);
    ASSERT_OK(sage__nio_publish(conn, subject, NULL, b.b, b.n, NULL, 0));
    ASSERT_TRUE(wait_inbox(1, 3000));
    ASSERT_STREQ(got_subject, to);
    ASSERT_OK(sage__wire_resp_decode(got_bytes, got_len, a, &r));
    ASSERT_EQ(r.id, 10);

    /* the broken: each answered on the NATS reply subject, id kept */
    request(&b, 2, 0, 11, "add", "\x92\x01\x02", 3, "");
    expect_error(&b, a, 11, SAGE_EVERSION, "version 2");
    request(&b, 1, 1, 12, "add", "\x92\x01\x02", 3, "");
    expect_error(&b, a, 12, SAGE_EPROTO, "kind 1");
    request(&b, 1, 0, 13, "add", "\x91\xd4\x01\x02", 4, to); /* fixext1 in args */
    expect_error(&b, a, 13, SAGE_EPROTO, "ext in args");
    request(&b, 1, 0, 14, "add", "\x91\xd6\xff\x00\x00\x00\x01", 7, to); /* a timestamp */
    expect_error(&b, a, 14, SAGE_EPROTO, "timestamp in args");
    request(&b, 1, 0, 15, "add", "\x91\xc1", 2, to);
    expect_error(&b, a, 15, SAGE_EPROTO, "0xc1 in args");
    request(&b, 1, 0, 16, "add", "\x91\xdd\x7f\xff\xff\xff", 6, to); /* 2^31 - 1 elements */
    expect_error(&b, a, 16, SAGE_EPROTO, "an over-long count in args");
    ASSERT_EQ(atomic_load(&got), 1); /* none of those went to the unreadable envelope's */

    /* one-way: no reply_to anywhere; it runs, nobody is answered */
    before = served(a);
    request(&b, 1, 0, 17, "add", "\x92\x01\x02", 3, "");
    ASSERT_OK(sage__nio_publish(conn, subject, NULL, b.b, b.n, NULL, 0));
    {
        double end = th_now_ms() + 3000;

        while (served(a) == before && th_now_ms() < end)
            usleep(1000);
    }
    ASSERT_EQ(served(a), before + 1);
    ASSERT_EQ(atomic_load(&got), 1);

    sage_arena_free(a);
    down();
}

static const struct th_case cases[] = {
    {"answers", t_answers, 60},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
