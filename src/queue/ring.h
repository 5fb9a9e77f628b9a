/*
 * ring.h - what the producer side (produce.c), the consumer side (consume.c)
 * and crash recovery (recover.c) of the ring share.
 *
 * Design notes (the layout itself is described in layout.h)
 *
 * Waking. Each side publishes "I am about to sleep" (cons_waiting, or a count
 * in space_waiters), issues a full fence, re-checks its condition, and only
 * then calls FUTEX_WAIT on a sequence word. The other side makes its change,
 * issues a full fence, and calls FUTEX_WAKE only if it sees a sleeper: the
 * two fences make it impossible for both to miss each other (Dekker), and
 * the fast path issues no system call. A sequence word bumped before every
 * wake turns a wake that races the sleep into an immediate return.
 *
 * Asymmetric fence. A full fence per commit costs a producer about a fifth
 * of its throughput (it drains the store buffer). When the consumer can run
 * membarrier(2) (cons_asym) and the producer's process is registered for it
 * (q->asym), the producer uses a compiler barrier and the consumer, about to
 * sleep, runs the heavy barrier instead, which executes a fence on every
 * running thread of the registered processes: the Dekker argument holds with
 * that fence standing in for the producer's. The rare consumer without the
 * heavy barrier sleeps in bounded slices, so a producer that read a stale
 * cons_asym can delay a wake by one slice at most.
 *
 * Spinning. Before sleeping a waiter waits for at most spin_ns, and only
 * while the peer may still act without a wake-up (for producers: the
 * consumer is not asleep). If the peer last ran on another CPU it spins on
 * one line; if it shares ours it yields the CPU to it (spin_step).
 */
#ifndef SAGE_QUEUE_RING_H
#define SAGE_QUEUE_RING_H

#include <sched.h>

#include "platform/clock.h"
#include "platform/cpu.h"
#include "queue/queue_internal.h"

static inline struct sq_rec *rec_at(const sage_queue *q, uint64_t pos)
{
    return (struct sq_rec *)(q->ring + (pos & q->mask));
}

/* shut returns the state word: non-zero once the queue is closed or
 * corrupt (SQ_ST_ bits). One load of a line that is written once. */
static inline uint32_t shut(const sage_queue *q)
{
    return atomic_load_explicit(&q->hdr->state, memory_order_acquire);
}

static inline bool committed(uint64_t w)
{
    uint32_t tag = (uint32_t)(w >> 32);

    return w != 0 && (tag & SQ_TAG_INPROG) == 0;
}

/* bump adds n to a counter that has a single writer (a slot's owner, or the
 * consumer): a plain load and store, no locked instruction. */
static inline void bump(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/*
 * spin_step: one step of a bounded wait for a peer. On another CPU, a pause
 * (and a look at the clock every 16 steps); on ours, a yield to it. A yield
 * that comes straight back (under IDLE_YIELD_NS; a bare one costs ~0.2 us
 * here) found nobody else ready on this CPU: the peer is asleep, not
 * preempted, and only a wake-up will bring it, so two in a row end the spin
 * (spinning on would only delay our own sleep and, through the scheduler's
 * accounting, our wake-up). Returns true when the spin should end.
 */
#define IDLE_YIELD_NS 1000

static inline bool spin_step(bool same, unsigned i, int64_t spin_end, unsigned *idle)
{
    int64_t t0, t1;

    if (!same) {
        sage__cpu_relax();
        return (i & 15) == 0 && sage__now_ns() >= spin_end;
    }
    t0 = sage__now_ns();
    sched_yield();
    t1 = sage__now_ns();
    *idle = t1 - t0 < IDLE_YIELD_NS ? *idle + 1 : 0;
    return *idle >= 2 || t1 >= spin_end;
}

static inline int64_t deadline_of(int timeout_ms, int64_t *deadline)
{
    if (*deadline == 0)
        *deadline = sage__deadline(timeout_ms);
    return *deadline;
}

static inline bool expired(int64_t deadline)
{
    return deadline >= 0 && sage__now_ns() >= deadline;
}

/* recover.c */

enum sq_stuck { SQ_STUCK_RETRY, SQ_STUCK_WAIT, SQ_STUCK_FAIL };

/* How long the record at head may stay uncommitted while no producer slot
 * accounts for it (or the slots contradict each other) before the queue is
 * declared corrupt (recover.c). */
#define SQ_UNCLEAR_NS (1000 * 1000 * 1000LL)

/* How long a closed queue's consumer waits for the claim at head to be
 * committed before it gives up with SAGE_ECLOSED (consume.c). */
#define SQ_CLOSE_GRACE_NS (1000 * 1000 * 1000LL)

/*
 * sage__sq_recover looks at the uncommitted record at the consumer's head
 * and skips it if its producer is dead. SQ_STUCK_RETRY: something changed,
 * consume again. SQ_STUCK_WAIT: a live producer owns it, or ownership has
 * been unclear for less than SQ_UNCLEAR_NS: wait. SQ_STUCK_FAIL: the record
 * is corrupt, or unclear for longer (*errp set). Called by the consumer only.
 */
enum sq_stuck sage__sq_recover(sage_queue *q, sage_err *errp);

#endif
