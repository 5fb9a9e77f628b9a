/*
 * peer_futex.c - the raw futex wake, the reference for "wake": a small
 * ring of message slots in a shared anonymous page. The producer writes a
 * slot (its timestamp inside), bumps seq with a release store and calls
 * FUTEX_WAKE; the consumer sleeps in FUTEX_WAIT on seq straight away,
 * without spinning, since the case is about a consumer already asleep.
 *
 * A few slots rather than one: the wake producer paces itself, but on a
 * busy machine the consumer can be preempted for longer than the pace, and
 * the producer must not then wait (or fail) with its timestamp taken.
 */
#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bench_util.h"
#include "peer.h"

#define SLOT 64 /* the largest message it carries */
#define NSLOTS 16
#define RING_BYTES 4096
#define FULL_PAUSE_NS (50 * 1000)

struct mailbox {
    _Atomic uint32_t seq; /* the futex word: messages written */
    _Atomic uint32_t ack; /* messages taken, written by the consumer */
    uint8_t slot[NSLOTS][SLOT];
};

static_assert(sizeof(struct mailbox) <= RING_BYTES, "mailbox fits its page");

/* The consumer's copy and the number of messages it has taken. */
struct futex_end {
    uint32_t seen;
    uint8_t buf[SLOT];
};

static struct futex_end ends; /* one per process, which is all a run needs */

static int setup(struct peer *p)
{
    if (p->size > SLOT) {
        bench_note("futex: a %zu-byte message does not fit its %d-byte slot; row omitted",
                   p->size, SLOT);
        return PEER_SKIP;
    }
    p->shm = bench_shared_alloc(RING_BYTES);
    return p->shm != NULL ? 0 : -1;
}

static struct mailbox *box(struct peer *p)
{
    return p->shm;
}

static int attach(struct peer *p, int side)
{
    memset(&ends, 0, sizeof ends);
    p->priv = &ends;
    return 0;
}

static int send_msg(struct peer *p, const void *data, size_t len)
{
    struct mailbox *b = box(p);
    uint32_t s = atomic_load_explicit(&b->seq, memory_order_relaxed);
    int64_t end = 0;

    /* full only if the consumer has stalled for NSLOTS paces */
    while (s - atomic_load_explicit(&b->ack, memory_order_acquire) >= NSLOTS) {
        if (end == 0)
            end = bench_now_ns() + (int64_t)PEER_OP_TIMEOUT_MS * 1000000;
        if (bench_now_ns() >= end) {
            fprintf(stderr, "sage-bench: futex: consumer stalled for %d ms\n",
                    PEER_OP_TIMEOUT_MS);
            return -1;
        }
        bench_sleep_ns(FULL_PAUSE_NS);
    }
    memcpy(b->slot[s % NSLOTS], data, len);
    /* release: a consumer that sees the new seq sees the slot */
    atomic_store_explicit(&b->seq, s + 1, memory_order_release);
    bench_futex_wake(&b->seq);
    return 0;
}

static int recv_msg(struct peer *p, const void **datap, size_t *lenp)
{
    struct mailbox *b = box(p);
    struct futex_end *e = p->priv;

    while (atomic_load_explicit(&b->seq, memory_order_acquire) == e->seen) {
        if (bench_futex_wait(&b->seq, e->seen, PEER_OP_TIMEOUT_MS) != 0 && errno == ETIMEDOUT) {
            fprintf(stderr, "sage-bench: futex: nothing received in %d ms\n",
                    PEER_OP_TIMEOUT_MS);
            return -1;
        }
    }
    memcpy(e->buf, b->slot[e->seen % NSLOTS], p->size);
    e->seen++;
    /* release: the producer reuses the slot only after our copy */
    atomic_store_explicit(&b->ack, e->seen, memory_order_release);
    *datap = e->buf;
    *lenp = p->size;
    return 0;
}

static void detach(struct peer *p)
{
    p->priv = NULL;
}

static void cleanup(struct peer *p)
{
    bench_shared_free(p->shm, RING_BYTES);
    p->shm = NULL;
}

const struct peer_ops peer_futex_ops = {
    .impl = "futex",
    .cases = QCASE_BIT(QCASE_WAKE),
    .setup = setup,
    .attach = attach,
    .send = send_msg,
    .recv = recv_msg,
    .detach = detach,
    .cleanup = cleanup,
};
