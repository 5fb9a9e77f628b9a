/*
 * consume.c - the consumer side of the ring: take the role, consume in
 * batches, give room back, wait for data.
 *
 * Design notes (shared ones, waking and fences: ring.h)
 *
 * One consumer per queue: one process (cons, its identity word, taken by CAS)
 * and in it one thread at a time (q->consuming). The consumer reads record
 * words in order from its own copy of head; a zero or INPROG word ends the
 * batch. After the batch it zeroes the consumed bytes and then stores head
 * with release ordering, so producers that acquire head see zeroed room (the
 * "not yet written" state of a record). A record at head that stays
 * uncommitted goes to recover.c; while its owner lives, the consumer sleeps in slices of
 * LIVENESS_SLICE_NS to look again, so a producer killed mid-claim is
 * detected within one slice.
 *
 * Bounded waits. Before it sleeps the consumer checks the state word and
 * its positions (health.c): a corrupt queue fails with SAGE_EPROTO instead
 * of waiting for a record that can never come. Once the queue is closed, a
 * claim at head gets SQ_CLOSE_GRACE_NS to be committed, then receiving ends
 * with SAGE_ECLOSED: a consumer draining before it stops always stops. A
 * record no producer accounts for is bounded by recover.c.
 */
#include <string.h>

#include "base/err_internal.h"
#include "platform/barrier.h"
#include "platform/futex.h"
#include "platform/proc.h"
#include "queue/drain.h"
#include "queue/ring.h"

#define LIVENESS_SLICE_NS (5 * 1000 * 1000LL) /* re-examine a stuck claim's owner */

static void wake_producers(sage_queue *q)
{
    struct sq_hdr *h = q->hdr;

    atomic_thread_fence(memory_order_seq_cst); /* pairs with wait_space's fence */
    if (atomic_load_explicit(&h->space_waiters, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&h->space_seq, 1, memory_order_release);
        sage__futex_wake(&h->space_seq, -1, q->shared);
        atomic_fetch_add_explicit(&h->wakeups, 1, memory_order_relaxed);
    }
}

static void zero_range(sage_queue *q, uint64_t from, uint64_t to, bool demote)
{
    uint64_t n = (to - from) & SQ_POS_MASK;
    uint64_t idx = from & q->mask;
    uint64_t first = n < q->cap - idx ? n : q->cap - idx;

    memset(q->ring + idx, 0, first);
    if (demote)
        sage__cache_demote(q->ring + idx, first);
    if (n > first) {
        memset(q->ring, 0, n - first);
        if (demote)
            sage__cache_demote(q->ring, n - first);
    }
}

/* release zeroes and gives back the room from head0 (where the batch
 * started) to the consumer's head, at the end of every batch that moved. */
static void release(sage_queue *q, uint64_t head0)
{
    /*
     * Zeroed lines are the producers' next ones. When a batch held several
     * small records the producer is streaming and stalls on taking those
     * lines from our cache: demoting them to the shared cache level doubles
     * its rate. A lone record (request/response) or large records (the
     * producer is copying, not stalling) do better left where they are.
     * Measured in bench/ (queue thr 64 B vs rtt and 4 KiB).
     */
    uint64_t recs = (sq_cnt(q->cons_head) - sq_cnt(head0)) & SQ_CNT_MASK;
    uint64_t bytes = (sq_pos(q->cons_head) - sq_pos(head0)) & SQ_POS_MASK;

    zero_range(q, sq_pos(head0), sq_pos(q->cons_head), recs >= 2 && bytes <= recs * 1024);
    /* release: producers that acquire head see the zeroed room */
    atomic_store_explicit(&q->hdr->head, q->cons_head, memory_order_release);
    wake_producers(q);
}

/* batch consumes committed records from the consumer's head, handing
 * messages to fn, up to max messages (0: all). */
static sage_err batch(sage_queue *q, sage__sq_take_fn fn, void *arg, size_t max, size_t *np,
                      bool *declined)
{
    struct sq_hdr *h = q->hdr;
    uint64_t head0 = q->cons_head, start = sq_pos(head0), pos = start, cnt = sq_cnt(head0);
    uint64_t bytes = 0, skipped = 0;
    size_t n = 0;
    sage_err r = SAGE_OK;

    while (max == 0 || n < max) {
        uint64_t idx = pos & q->mask, done = (pos - start) & SQ_POS_MASK;
        struct sq_rec *rec = (struct sq_rec *)(q->ring + idx);
        uint64_t w;
        uint32_t tag, len;

        /* A whole ring past the batch's start: the next word is a record
         * consumed in this batch and not zeroed yet (producers may have
         * filled the ring up to exactly here), so it must not be read. */
        if (done == q->cap)
            break;
        w = atomic_load_explicit(&rec->word, memory_order_acquire);
        tag = (uint32_t)(w >> 32);
        len = (uint32_t)w;
        if (!committed(w))
            break;
        if (done + sq_align8(len) > q->cap) {
            r = sage__sq_corrupt(q, pos, w, "records run past a whole ring");
            break;
        }
        if (tag == SQ_TAG_PAD) {
            if (len != q->cap - idx) {
                r = sage__sq_corrupt(q, pos, w, "padding does not end at the ring's end");
                break;
            }
            pos += len;
            continue;
        }
        /* a SKIP may cover a whole recovered claim, alignment included */
        if (len < SQ_REC_HDR || idx + sq_align8(len) > q->cap ||
            len - SQ_REC_HDR > (tag == SQ_TAG_SKIP ? sq_align8(q->max_msg + SQ_REC_HDR) - SQ_REC_HDR
                                                   : q->max_msg)) {
            r = sage__sq_corrupt(q, pos, w, "record length out of range");
            break;
        }
        if (tag == SQ_TAG_MSG) {
            if (fn(arg, rec + 1, len - SQ_REC_HDR) != 0) {
                *declined = true; /* stays queued */
                break;
            }
            n++;
            bytes += len - SQ_REC_HDR;
        } else if (tag == SQ_TAG_SKIP) {
            skipped++;
        } else {
            r = sage__sq_corrupt(q, pos, w, "unknown record tag");
            break;
        }
        pos += sq_align8(len);
        cnt++;
    }
    if (pos != start) {
        q->cons_head = sq_pack(pos, cnt);
        bump(&h->msgs_out, n);
        bump(&h->bytes_out, bytes);
        if (skipped)
            bump(&h->skipped, skipped);
        release(q, head0);
    }
    *np = n;
    return r;
}

/* is_empty tells whether nothing is claimed at the consumer's head, by tail
 * T (read by the caller: tail's line is written by producers on every claim,
 * so only slow paths read it). */
static bool is_empty(sage_queue *q, uint64_t T)
{
    uint64_t pos = sq_pos(q->cons_head);

    return atomic_load_explicit(&rec_at(q, pos)->word, memory_order_acquire) == 0 &&
           sq_pos(T) == pos;
}

/* check_positions fails (and marks the queue corrupt) if tail T and head
 * cannot hold: the consumer's own head, which only it moves, makes a true
 * pair with any tail (health.c); the shared head must equal it. */
static sage_err check_positions(sage_queue *q, uint64_t T)
{
    uint64_t H = q->cons_head, shared = atomic_load_explicit(&q->hdr->head, memory_order_relaxed);
    enum sq_bad bad = sage__sq_bad_positions(q, T, H);

    if (bad == SQ_BAD_NONE && shared != H) {
        H = shared;
        bad = sage__sq_bad_positions(q, T, H);
        if (bad == SQ_BAD_NONE)
            bad = SQ_BAD_HEAD_MOVED;
    }
    if (bad == SQ_BAD_NONE)
        return SAGE_OK;
    return sage__sq_fail(q, bad, "%s (head %#llx, tail %#llx)", sage__sq_reason(bad),
                         (unsigned long long)H, (unsigned long long)T);
}

/* stuck_after_close bounds the wait for a claim at head once the queue is
 * closed: SQ_CLOSE_GRACE_NS after the consumer first saw it so, receiving
 * ends with SAGE_ECLOSED even if a live producer still holds the claim, so
 * a consumer that drains before stopping always stops. */
static sage_err stuck_after_close(sage_queue *q, uint64_t T)
{
    int64_t now = sage__now_ns();

    if (q->closed_stuck == 0)
        q->closed_stuck = now;
    if (now - q->closed_stuck < SQ_CLOSE_GRACE_NS)
        return SAGE_OK;
    return SAGE_SETERR(SAGE_ECLOSED,
                       "queue '%s' is closed; the claim at its head stayed uncommitted for %lld ms "
                       "after close, %llu claims left behind",
                       q->name, (long long)(SQ_CLOSE_GRACE_NS / 1000000),
                       (unsigned long long)((sq_cnt(T) - sq_cnt(q->cons_head)) & SQ_CNT_MASK));
}

/*
 * wait_data waits until the record at head may have changed, the deadline,
 * or close. SAGE_OK means "consume again".
 */
static sage_err wait_data(sage_queue *q, int timeout_ms, int64_t *deadline)
{
    struct sq_hdr *h = q->hdr;
    _Atomic uint64_t *word = &rec_at(q, sq_pos(q->cons_head))->word;
    int64_t dl, until;
    uint64_t T;
    uint32_t seq, st;
    bool empty;
    int cpu;
    sage_err r = SAGE_OK;

    if (timeout_ms != 0) {
        dl = deadline_of(timeout_ms, deadline);
        cpu = sage__cpu();
        if ((int)atomic_load_explicit(&h->cons_cpu, memory_order_relaxed) != cpu)
            atomic_store_explicit(&h->cons_cpu, (uint32_t)cpu, memory_order_relaxed);
        /* Before sleeping, for at most spin_ns: if the last producer runs on
         * another CPU, spin on the head record alone (no other shared line is
         * touched); if it shares our CPU, spinning would only delay it, so
         * yield the CPU to it instead - staying runnable, so that it skips
         * the wake-up and keeps going while it has messages to send. */
        if (q->spin_ns > 0 && !shut(q)) {
            bool same = q->ncpu == 1 ||
                        (int)atomic_load_explicit(&h->last_prod_cpu, memory_order_relaxed) == cpu;
            int64_t spin_end = sage__now_ns() + q->spin_ns;
            unsigned idle = 0;

            if (dl >= 0 && dl < spin_end)
                spin_end = dl;
            for (unsigned i = 1;; i++) {
                if (committed(atomic_load_explicit(word, memory_order_acquire)))
                    return SAGE_OK;
                if (spin_step(same, i, spin_end, &idle))
                    break;
            }
        }
    }

    /* the slow path: state first, so a claim that beat the close is seen */
    st = shut(q);
    T = atomic_load_explicit(&h->tail, memory_order_acquire);
    r = check_positions(q, T);
    if (r != SAGE_OK)
        return r;
    if (st & SQ_ST_CORRUPT) {
        uint32_t code = atomic_load_explicit(&h->corrupt_code, memory_order_relaxed);

        return sage__sq_fail(q, code < SQ_BAD_MAX ? (enum sq_bad)code : SQ_BAD_NONE,
                             "%s (found by another process)", sage__sq_reason(code));
    }
    empty = is_empty(q, T);
    if (empty && (st & SQ_ST_CLOSED))
        return SAGE_SETERR(SAGE_ECLOSED, "queue '%s' is closed", q->name);
    if (!empty) {
        switch (sage__sq_recover(q, &r)) {
        case SQ_STUCK_RETRY:
            return SAGE_OK;
        case SQ_STUCK_FAIL:
            return r;
        case SQ_STUCK_WAIT:
            if ((st & SQ_ST_CLOSED) && (r = stuck_after_close(q, T)) != SAGE_OK)
                return r;
            break;
        }
    }
    if (timeout_ms == 0)
        return SAGE_SETERR(SAGE_ETIMEDOUT, "queue '%s': nothing to receive", q->name);
    dl = deadline_of(timeout_ms, deadline);
    if (expired(dl))
        return SAGE_SETERR(SAGE_ETIMEDOUT, "queue '%s': nothing received in %d ms", q->name,
                           timeout_ms);

    seq = atomic_load_explicit(&h->data_seq, memory_order_acquire);
    atomic_store_explicit(&h->cons_waiting, 1, memory_order_relaxed);
    /* pairs with wake_consumer: a full fence on both sides, or the heavy
     * side of the asymmetric barrier here */
    if (!(q->cons_asym && sage__asym_heavy(q->shared)))
        atomic_thread_fence(memory_order_seq_cst);
    /* a state bit seen above does not end the sleep: a closed queue whose
     * head is stuck waits for its claim in slices like any other */
    if (committed(atomic_load_explicit(word, memory_order_acquire)) || (shut(q) & ~st)) {
        atomic_store_explicit(&h->cons_waiting, 0, memory_order_relaxed);
        return SAGE_OK;
    }
    until = dl;
    if (!empty || !q->cons_asym) {
        /* a claim in flight: look at its owner again soon. Without the
         * heavy barrier a producer that read cons_asym before this consumer
         * took over may have skipped its fence: the slice bounds that too. */
        int64_t slice = sage__now_ns() + LIVENESS_SLICE_NS;

        if (until < 0 || slice < until)
            until = slice;
    }
    r = sage__futex_wait(&h->data_seq, seq, until, q->shared);
    atomic_store_explicit(&h->cons_waiting, 0, memory_order_relaxed);
    if (r == SAGE_ESYS)
        return SAGE_SETERR(SAGE_ESYS, "queue '%s': futex wait failed", q->name);
    return SAGE_OK;
}

/* enter takes the consumer role for the calling thread. */
static sage_err enter(sage_queue *q)
{
    struct sq_hdr *h = q->hdr;
    uint32_t gen = sage__fork_gen();
    int bad;

    if (atomic_exchange_explicit(&q->consuming, 1, memory_order_acquire))
        return SAGE_SETERR(SAGE_EBUSY, "queue '%s': another thread is receiving", q->name);
    if ((bad = atomic_load_explicit(&q->corrupt, memory_order_acquire)) != 0) {
        atomic_store_explicit(&q->consuming, 0, memory_order_release);
        return SAGE_SETERR(SAGE_EPROTO, "queue '%s' is corrupt: %s", q->name,
                           bad == 2 ? q->why : "being marked");
    }
    if (!q->is_consumer || q->cons_gen != gen) {
        uint64_t me = sage__sq_me(), T;
        uint64_t cur = atomic_load_explicit(&h->cons, memory_order_acquire);
        uint32_t st;
        enum sq_bad why;

        if (cur != me) {
            /* by identity: a dead consumer's pid may live on elsewhere */
            if (q->shared && cur != 0 && sage__sq_alive(cur)) {
                atomic_store_explicit(&q->consuming, 0, memory_order_release);
                return SAGE_SETERR(SAGE_EBUSY, "queue '%s' already has a consumer (pid %d)",
                                   q->name, (int)sq_ident_pid(cur));
            }
            if (!atomic_compare_exchange_strong_explicit(&h->cons, &cur, me,
                                                         memory_order_acq_rel,
                                                         memory_order_acquire)) {
                atomic_store_explicit(&q->consuming, 0, memory_order_release);
                return SAGE_SETERR(SAGE_EBUSY, "queue '%s' already has a consumer (pid %d)",
                                   q->name, (int)sq_ident_pid(cur));
            }
        }
        /* a pair that held at one moment: tail unchanged around head */
        st = shut(q);
        T = atomic_load_explicit(&h->tail, memory_order_acquire);
        q->cons_head = atomic_load_explicit(&h->head, memory_order_acquire);
        if (atomic_load_explicit(&h->tail, memory_order_acquire) == T)
            why = sage__sq_bad_positions(q, T, q->cons_head);
        else
            why = sq_pos(q->cons_head) & 7 ? SQ_BAD_HEAD_ALIGN : SQ_BAD_NONE;
        if (why != SQ_BAD_NONE || (st & SQ_ST_CORRUPT)) {
            sage_err r;

            if (why != SQ_BAD_NONE)
                r = sage__sq_fail(q, why, "%s (head %#llx, tail %#llx)", sage__sq_reason(why),
                                  (unsigned long long)q->cons_head, (unsigned long long)T);
            else
                r = sage__sq_fail(q, SQ_BAD_NONE, "%s (found by another process)",
                                  sage__sq_reason(atomic_load_explicit(&h->corrupt_code,
                                                                       memory_order_relaxed)));
            atomic_store_explicit(&q->consuming, 0, memory_order_release);
            return r;
        }
        q->cons_asym = sage__asym_heavy_ok(q->shared);
        atomic_store_explicit(&h->cons_asym, q->cons_asym, memory_order_relaxed);
        q->unclear_since = 0;
        q->is_consumer = true;
        q->cons_gen = gen;
    }
    return SAGE_OK;
}

/* consume is sage__sq_consume with its deadline given (0: from timeout_ms
 * when first needed) */
static sage_err consume(sage_queue *q, sage__sq_take_fn fn, void *arg, size_t max, int timeout_ms,
                        int64_t deadline, size_t *countp)
{
    size_t n = 0;
    bool declined = false;
    sage_err r;

    if (q == NULL || fn == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "receive: invalid argument");
    r = enter(q);
    if (r != SAGE_OK)
        return r;
    for (;;) {
        r = batch(q, fn, arg, max, &n, &declined);
        if (r != SAGE_OK || n > 0 || declined)
            break;
        r = wait_data(q, timeout_ms, &deadline);
        if (r != SAGE_OK)
            break;
    }
    atomic_store_explicit(&q->consuming, 0, memory_order_release);
    if (countp)
        *countp = n;
    if (n > 0)
        return SAGE_OK;
    if (r == SAGE_OK && declined)
        return SAGE_EMSGSIZE; /* the caller sets the detail */
    return r;
}

sage_err sage__sq_consume(sage_queue *q, sage__sq_take_fn fn, void *arg, size_t max, int timeout_ms,
                          size_t *countp)
{
    return consume(q, fn, arg, max, timeout_ms, 0, countp);
}

struct drain_arg {
    sage_queue_fn fn;
    void *arg;
};

static int drain_take(void *arg, const void *data, size_t len)
{
    struct drain_arg *d = arg;

    d->fn(d->arg, data, len);
    return 0;
}

sage_err sage_queue_drain(size_t *countp, sage_queue *q, sage_queue_fn fn, void *arg, size_t max,
                          int timeout_ms)
{
    struct drain_arg d = {fn, arg};

    if (fn == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_queue_drain: fn is NULL");
    return sage__sq_consume(q, drain_take, &d, max, timeout_ms, countp);
}

sage_err sage__queue_drain_until(size_t *countp, sage_queue *q, sage_queue_fn fn, void *arg,
                                 size_t max, int64_t deadline_ns)
{
    struct drain_arg d = {fn, arg};
    int64_t now = sage__now_ns();

    if (fn == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_queue_drain: fn is NULL");
    if (deadline_ns >= 0 && deadline_ns <= now) /* no wait: look once */
        return consume(q, drain_take, &d, max, 0, 0, countp);
    /* a non-zero timeout says "wait"; the deadline says until when */
    return consume(q, drain_take, &d, max, deadline_ns < 0 ? -1 : 1,
                   deadline_ns < 0 ? -1 : deadline_ns, countp);
}

struct recv_arg {
    void *buf;
    size_t cap;
    size_t len;
    int too_small;
};

static int recv_take(void *arg, const void *data, size_t len)
{
    struct recv_arg *a = arg;

    a->len = len;
    if (len > a->cap) {
        a->too_small = 1;
        return 1;
    }
    if (len)
        memcpy(a->buf, data, len);
    return 0;
}

sage_err sage_queue_recv(size_t *lenp, sage_queue *q, void *buf, size_t cap, int timeout_ms)
{
    struct recv_arg a = {buf, cap, 0, 0};
    size_t n = 0;
    sage_err r;

    if (lenp == NULL || (buf == NULL && cap > 0))
        return SAGE_SETERR(SAGE_EINVAL, "sage_queue_recv: invalid argument");
    r = sage__sq_consume(q, recv_take, &a, 1, timeout_ms, &n);
    if (a.too_small && n == 0) {
        *lenp = a.len;
        return SAGE_SETERR(SAGE_EMSGSIZE, "queue '%s': message of %zu bytes, buffer holds %zu",
                           sage_queue_name(q), a.len, cap);
    }
    if (r == SAGE_OK)
        *lenp = a.len;
    return r;
}
