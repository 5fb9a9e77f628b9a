/*
 * peer_floor.c - the machine's floor for a cross-CPU round trip: two
 * _Atomic words in a shared anonymous page, a release store to ping, a
 * tight acquire-load spin (no pause instruction) for the answer. Nothing a
 * real transport could do in less.
 *
 * Spinning on the CPU the peer needs would only wait for the scheduler to
 * preempt, so floor runs only with its ends on two CPUs. The spins carry no
 * clock check: the child's alarm (PEER_RUN_TIMEOUT_S) ends a wedged run.
 */
#include <stdatomic.h>
#include <stdint.h>

#include "bench_util.h"
#include "peer.h"

/* 128 bytes apart, not 64: the adjacent-line prefetcher of x86 couples
 * pairs of 64-byte lines, which would let the words share traffic */
#define WORD_GAP 128
#define PAGE 4096

struct floor_words {
    _Atomic uint64_t *ping; /* A writes, B spins */
    _Atomic uint64_t *pong; /* B writes, A spins */
    uint64_t seq;           /* A: the last ping */
};

static int setup(struct peer *p)
{
    p->shm = bench_shared_alloc(PAGE);
    return p->shm != NULL ? 0 : -1;
}

static struct floor_words words(struct peer *p)
{
    struct floor_words w = {(_Atomic uint64_t *)p->shm,
                            (_Atomic uint64_t *)((uint8_t *)p->shm + WORD_GAP), 0};

    return w;
}

static int ping_once(void *ctx)
{
    struct floor_words *w = ctx;
    uint64_t seq = ++w->seq;

    atomic_store_explicit(w->ping, seq, memory_order_release);
    while (atomic_load_explicit(w->pong, memory_order_acquire) != seq)
        ;
    return 0;
}

static int run(struct qrun *r, int side)
{
    struct floor_words w = words(&r->peer);
    uint64_t last = 0, v;

    if (side == SIDE_A) {
        if (qcase_rtt_measure(r, ping_once, &w) != 0)
            return -1;
        atomic_store_explicit(w.ping, SEQ_STOP, memory_order_release);
        return 0;
    }
    for (;;) {
        while ((v = atomic_load_explicit(w.ping, memory_order_acquire)) == last)
            ;
        if (v == SEQ_STOP)
            return 0;
        atomic_store_explicit(w.pong, v, memory_order_release);
        last = v;
    }
}

static void cleanup(struct peer *p)
{
    bench_shared_free(p->shm, PAGE);
    p->shm = NULL;
}

const struct peer_ops peer_floor_ops = {
    .impl = "floor",
    .cases = QCASE_BIT(QCASE_RTT),
    .distinct_cpus = true,
    .setup = setup,
    .cleanup = cleanup,
    .run = run,
};
