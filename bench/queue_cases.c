/*
 * queue_cases.c - the three cases of "sage-bench queue", written once over
 * the peer interface: rtt (ping-pong), thr (one-way stream) and wake
 * (latency of waking a consumer asleep in the kernel).
 *
 * Receivers read each message's sequence number (and wake's timestamp) and
 * nothing more, whichever transport delivered it: a copying transport has
 * already paid for its copy, a zero-copy one (sage drain) is not charged
 * for a copy its natural consumer would not make.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "peer.h"

/* the producer clock is read every CLOCK_EVERY messages, not every one */
#define CLOCK_EVERY 16
#define RTT_WARM_MIN 100
#define THR_WARM_MIN 64
#define GATE_TIMEOUT_MS 10000

static void put_u64(void *buf, size_t off, uint64_t v)
{
    memcpy((uint8_t *)buf + off, &v, sizeof v);
}

static uint64_t get_u64(const void *data, size_t off)
{
    uint64_t v;

    memcpy(&v, (const uint8_t *)data + off, sizeof v);
    return v;
}

/* recv_check receives one message and checks its length. */
static int recv_check(struct peer *p, const void **datap)
{
    size_t len;

    if (p->ops->recv(p, datap, &len) != 0)
        return -1;
    if (len != p->size) {
        fprintf(stderr, "sage-bench: %s: got %zu bytes, sent %zu\n", p->ops->impl, len, p->size);
        return -1;
    }
    return 0;
}

static int send_seq(struct peer *p, void *msg, uint64_t seq)
{
    put_u64(msg, 0, seq);
    return p->ops->send(p, msg, p->size);
}

/* -------------------------------------------------------------------- rtt */

int qcase_rtt_measure(struct qrun *r, int (*once)(void *ctx), void *ctx)
{
    const struct qparams *par = r->par;
    const struct bench_span span = {par->warm_ns, RTT_WARM_MIN, par->rtt_ns, par->rtt_min,
                                    par->rtt_max};
    struct bench_pct pct;

    if (bench_latency(&span, 1, once, ctx, NULL, &pct) != 0)
        return -1;
    r->ctl->p50_ns = pct.p50_ns;
    r->ctl->p99_ns = pct.p99_ns;
    return 0;
}

struct pinger {
    struct peer *p;
    void *msg;
    uint64_t seq; /* of the last ping */
};

static int ping_once(void *ctx)
{
    struct pinger *pg = ctx;
    uint64_t seq = ++pg->seq;
    const void *data;

    if (send_seq(pg->p, pg->msg, seq) != 0 || recv_check(pg->p, &data) != 0)
        return -1;
    if (get_u64(data, 0) != seq) {
        fprintf(stderr, "sage-bench: %s: reply %llu to ping %llu\n", pg->p->ops->impl,
                (unsigned long long)get_u64(data, 0), (unsigned long long)seq);
        return -1;
    }
    return 0;
}

static int rtt_a(struct qrun *r, void *msg)
{
    struct pinger pg = {&r->peer, msg, 0};

    if (qcase_rtt_measure(r, ping_once, &pg) != 0)
        return -1;
    return send_seq(&r->peer, msg, SEQ_STOP);
}

static int rtt_b(struct qrun *r)
{
    struct peer *p = &r->peer;
    const void *data;

    for (;;) {
        if (recv_check(p, &data) != 0)
            return -1;
        if (get_u64(data, 0) == SEQ_STOP)
            return 0;
        if (p->ops->send(p, data, p->size) != 0)
            return -1;
    }
}

/* -------------------------------------------------------------------- thr */

/* What the receiver of a stream knows. */
struct rx {
    size_t size;
    uint64_t expect;
    uint64_t count;
    int64_t t_first;
    int64_t t_mark;
    bool marked;
    bool bad;
};

static void rx_one(void *arg, const void *data, size_t len)
{
    struct rx *x = arg;
    uint64_t seq = get_u64(data, 0);

    if (x->bad)
        return;
    if (seq == SEQ_WARM_END && !x->marked) {
        x->t_mark = bench_now_ns();
        x->marked = true;
        return;
    }
    if (len != x->size || seq != x->expect) {
        fprintf(stderr, "sage-bench: message %llu of %zu bytes where %llu of %zu expected\n",
                (unsigned long long)seq, len, (unsigned long long)x->expect, x->size);
        x->bad = true;
        return;
    }
    if (x->count == 0)
        x->t_first = bench_now_ns();
    x->expect++;
    x->count++;
}

/* rx_take hands at least one message to rx_one. */
static int rx_take(struct peer *p, struct rx *x)
{
    const void *data;
    size_t len;

    if (p->ops->drain != NULL)
        return p->ops->drain(p, rx_one, x, NULL);
    if (p->ops->recv(p, &data, &len) != 0)
        return -1;
    rx_one(x, data, len);
    return 0;
}

static int thr_a(struct qrun *r, void *msg)
{
    struct peer *p = &r->peer;
    int64_t t0 = bench_now_ns();
    uint64_t seq = 0, n;

    /* the warm-up stream: a while, then a marker, then wait at the gate so
     * the measured stream starts into an empty transport */
    for (;;) {
        if (send_seq(p, msg, seq++) != 0)
            return -1;
        if (seq % CLOCK_EVERY == 0 && seq >= THR_WARM_MIN &&
            bench_now_ns() - t0 >= r->par->warm_ns)
            break;
    }
    if (send_seq(p, msg, SEQ_WARM_END) != 0 || bench_gate_wait(&r->ctl->gate, GATE_TIMEOUT_MS) != 0)
        return -1;
    n = atomic_load_explicit(&r->ctl->n, memory_order_relaxed); /* gate's acquire covers it */
    atomic_store_explicit(&r->ctl->t_start, bench_now_ns(), memory_order_relaxed);
    for (seq = 0; seq < n; seq++)
        if (send_seq(p, msg, seq) != 0)
            return -1;
    return 0;
}

static int thr_b(struct qrun *r)
{
    struct peer *p = &r->peer;
    struct rx x = {.size = p->size};
    double rate;
    uint64_t n;

    while (!x.marked)
        if (rx_take(p, &x) != 0 || x.bad)
            return -1;
    /* size the measured stream from the warm-up's rate */
    rate = x.count > 1 ? (double)(x.count - 1) * 1e9 / (double)(x.t_mark - x.t_first) : 0;
    n = bench_clamp(rate * (double)r->par->thr_ns / 1e9, r->par->thr_min, r->par->thr_max);
    atomic_store_explicit(&r->ctl->n, n, memory_order_relaxed);
    x.expect = 0;
    x.count = 0;
    bench_gate_open(&r->ctl->gate);
    while (x.count < n)
        if (rx_take(p, &x) != 0 || x.bad)
            return -1;
    atomic_store_explicit(&r->ctl->t_end, bench_now_ns(), memory_order_relaxed);
    if (x.count != n) {
        fprintf(stderr, "sage-bench: %s: %llu messages received, %llu sent\n", p->ops->impl,
                (unsigned long long)x.count, (unsigned long long)n);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------- wake */

static int wake_a(struct qrun *r, void *msg)
{
    struct peer *p = &r->peer;
    size_t total = r->par->wake_warm + r->par->wake_n;

    /* sleep long enough for the consumer to stop spinning and park in the
     * kernel, then stamp and send */
    for (uint64_t seq = 0; seq <= total; seq++) {
        bench_sleep_ns(r->par->wake_gap_ns);
        put_u64(msg, 8, (uint64_t)bench_now_ns());
        if (send_seq(p, msg, seq == total ? SEQ_STOP : seq) != 0)
            return -1;
    }
    return 0;
}

static int wake_b(struct qrun *r)
{
    struct peer *p = &r->peer;
    size_t k = 0, warm = r->par->wake_warm;
    int64_t *samples = calloc(r->par->wake_n, sizeof *samples);
    struct bench_pct pct;
    const void *data;

    if (samples == NULL)
        return -1;
    for (uint64_t expect = 0;; expect++) {
        int64_t t;
        uint64_t seq;

        if (recv_check(p, &data) != 0)
            goto fail;
        t = bench_now_ns();
        seq = get_u64(data, 0);
        if (seq == SEQ_STOP)
            break;
        if (seq != expect) {
            fprintf(stderr, "sage-bench: %s: message %llu where %llu expected\n", p->ops->impl,
                    (unsigned long long)seq, (unsigned long long)expect);
            goto fail;
        }
        if (seq >= warm && k < r->par->wake_n)
            samples[k++] = t - (int64_t)get_u64(data, 8);
    }
    if (k == 0)
        goto fail;
    bench_percentiles(samples, k, &pct);
    r->ctl->p50_ns = pct.p50_ns;
    r->ctl->p99_ns = pct.p99_ns;
    free(samples);
    return 0;
fail:
    free(samples);
    return -1;
}

/* ------------------------------------------------------------------- body */

int qcase_side(struct qrun *r, int side)
{
    struct peer *p = &r->peer;
    void *msg;
    int rc = -1;

    if (p->ops->run != NULL)
        return p->ops->run(r, side);
    msg = calloc(1, p->size);
    if (msg == NULL)
        return -1;
    if (p->ops->attach(p, side) != 0) {
        p->ops->detach(p); /* whatever attach got open */
        free(msg);
        return -1;
    }
    switch (p->kase) {
    case QCASE_RTT:
        rc = side == SIDE_A ? rtt_a(r, msg) : rtt_b(r);
        break;
    case QCASE_THR:
        rc = side == SIDE_A ? thr_a(r, msg) : thr_b(r);
        break;
    case QCASE_WAKE:
        rc = side == SIDE_A ? wake_a(r, msg) : wake_b(r);
        break;
    default:
        break;
    }
    p->ops->detach(p);
    free(msg);
    return rc;
}
