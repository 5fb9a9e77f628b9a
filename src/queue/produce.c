/*
 * produce.c - the producer side of the ring: claim, write, commit or abort.
 *
 * Design notes (shared ones, waking and fences: ring.h)
 *
 * A producer reads tail, checks room against head, writes the claim it is
 * about to try into its slot, and CASes tail forward by the record's length
 * (plus padding when the record would cross the ring's end; the record then
 * starts at index 0). The CAS is a release: the slot's claim is visible to
 * anyone who sees the new tail. Then it marks the record TAG_INPROG|slot,
 * writes the payload, and commits by storing TAG_MSG with release ordering,
 * so a consumer that acquires the word sees the payload. Head is read
 * through a per-handle cache (head_cache) and reloaded only when the cached
 * value says the claim does not fit, so the consumer's line is not pulled
 * on every message. That reload is also where positions are checked
 * (health.c): a producer facing impossible ones fails with SAGE_EPROTO
 * rather than waiting for room that cannot come. The per-message path reads
 * one state word for both "closed" and "corrupt".
 */
#include <string.h>

#include "base/err_internal.h"
#include "platform/futex.h"
#include "platform/proc.h"
#include "queue/ring.h"

/*
 * ThreadSanitizer sees one process. Producer threads of this process reuse
 * ring room in turn, and what orders their writes (a commit, the consumer's
 * zeroing, head's release, the next claim) may run through a consumer in
 * another process. TSan builds state that order: a commit releases one sync
 * address per mapping (the ring's) just before its word store, which covers
 * everything the producer wrote before it; the word store itself is a
 * release on the word's own address. A claim acquires the ring's address and
 * the address of every word in the room it won, where earlier commits' words
 * may lie. (Releasing after the word store instead leaves a window: the
 * consumer may pass the record and the room be claimed again before it.)
 */
#if defined(__SANITIZE_THREAD__)
#define SQ_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SQ_TSAN 1
#endif
#endif
#ifdef SQ_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);

static void tsan_claimed(const sage_queue *q, uint64_t pos, uint64_t total)
{
    __tsan_acquire(q->ring);
    for (uint64_t off = 0; off < total; off += 8)
        __tsan_acquire(q->ring + ((pos + off) & q->mask));
}
#define TSAN_CLAIMED(q, pos, total) tsan_claimed((q), (pos), (total))
#define TSAN_COMMITTING(q) __tsan_release((q)->ring)
#else
#define TSAN_CLAIMED(q, pos, total) ((void)0)
#define TSAN_COMMITTING(q) ((void)0)
#endif

#define CONSUMER_CHECK_NS (100 * 1000 * 1000LL) /* re-examine a full queue's consumer */

#ifdef SAGE_TEST_HOOKS
void (*sage__sq_hook_after_claim)(void);
#define HOOK_AFTER_CLAIM()                \
    do {                                  \
        if (sage__sq_hook_after_claim)    \
            sage__sq_hook_after_claim();  \
    } while (0)
#else
#define HOOK_AFTER_CLAIM() ((void)0)
#endif

/* fits tells whether total more bytes (one more claim) fit between head H
 * and tail T. A head that looks ahead of tail (T is stale) does not fit. */
static inline bool fits(const sage_queue *q, uint64_t T, uint64_t H, uint64_t total)
{
    uint64_t used = (sq_pos(T) - sq_pos(H)) & SQ_POS_MASK;
    uint64_t n = (sq_cnt(T) - sq_cnt(H)) & SQ_CNT_MASK;

    return used <= q->cap && used + total <= q->cap && n < q->max_msgs;
}

static void wake_consumer(sage_queue *q)
{
    struct sq_hdr *h = q->hdr;

    /* Order our commit store before the cons_waiting load (Dekker with the
     * consumer's park in wait_data). When the consumer parks behind a heavy
     * barrier and this process is registered for it, a compiler barrier is
     * enough here: the consumer's membarrier(2) supplies our fence. */
    if (q->asym && atomic_load_explicit(&h->cons_asym, memory_order_relaxed))
        atomic_signal_fence(memory_order_seq_cst);
    else
        atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&h->cons_waiting, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&h->data_seq, 1, memory_order_release);
        sage__futex_wake(&h->data_seq, 1, q->shared);
        atomic_fetch_add_explicit(&h->wakeups, 1, memory_order_relaxed);
    }
}

/* wait_space waits until total bytes may fit after tail T, the deadline, or
 * close. SAGE_OK means "look again". */
static sage_err wait_space(sage_queue *q, uint64_t total, int timeout_ms, int64_t *deadline,
                           bool *counted)
{
    struct sq_hdr *h = q->hdr;
    int64_t dl, until, spin_end;
    uint32_t seq;
    uint64_t cons;
    sage_err r;

    if (!*counted) {
        *counted = true;
        atomic_fetch_add_explicit(&h->full_events, 1, memory_order_relaxed);
    }
    if (timeout_ms == 0)
        return SAGE_SETERR(SAGE_EFULL, "queue '%s' is full", q->name);
    dl = deadline_of(timeout_ms, deadline);
    if (expired(dl))
        return SAGE_SETERR(SAGE_EFULL, "queue '%s' stayed full for %d ms", q->name, timeout_ms);

    /* while the consumer runs: spin if it is on another CPU, yield to it if
     * it shares ours (ring.h, "Spinning") */
    if (q->spin_ns > 0 && !atomic_load_explicit(&h->cons_waiting, memory_order_relaxed)) {
        bool same = q->ncpu == 1 ||
                    (int)atomic_load_explicit(&h->cons_cpu, memory_order_relaxed) == sage__cpu();
        unsigned idle = 0;

        spin_end = sage__now_ns() + q->spin_ns;
        for (unsigned i = 1;; i++) {
            uint64_t H = atomic_load_explicit(&h->head, memory_order_acquire);

            if (fits(q, atomic_load_explicit(&h->tail, memory_order_relaxed), H, total) ||
                shut(q)) {
                atomic_store_explicit(&q->head_cache, H, memory_order_release);
                return SAGE_OK;
            }
            if (spin_step(same, i, spin_end, &idle))
                break;
        }
    }

    seq = atomic_load_explicit(&h->space_seq, memory_order_acquire);
    atomic_fetch_add_explicit(&h->space_waiters, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst); /* pairs with wake_producers */
    {
        uint64_t H = atomic_load_explicit(&h->head, memory_order_acquire);

        atomic_store_explicit(&q->head_cache, H, memory_order_release);
        if (fits(q, atomic_load_explicit(&h->tail, memory_order_relaxed), H, total) || shut(q)) {
            atomic_fetch_sub_explicit(&h->space_waiters, 1, memory_order_relaxed);
            return SAGE_OK;
        }
    }
    /* a dead consumer never frees room: look at it every CONSUMER_CHECK_NS
     * (by identity: its pid may live on in another process) */
    cons = atomic_load_explicit(&h->cons, memory_order_relaxed);
    if (q->shared && cons != 0 && !sage__sq_alive(cons)) {
        atomic_fetch_sub_explicit(&h->space_waiters, 1, memory_order_relaxed);
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "queue '%s' is full and its consumer (pid %d) died",
                           q->name, (int)sq_ident_pid(cons));
    }
    until = sage__now_ns() + CONSUMER_CHECK_NS;
    if (dl >= 0 && dl < until)
        until = dl;
    r = sage__futex_wait(&h->space_seq, seq, until, q->shared);
    atomic_fetch_sub_explicit(&h->space_waiters, 1, memory_order_relaxed);
    if (r == SAGE_ESYS)
        return SAGE_SETERR(SAGE_ESYS, "queue '%s': futex wait failed", q->name);
    return SAGE_OK;
}

/*
 * claim reserves a record for len payload bytes through the calling thread's
 * slot; on success *recp is the record (its word marked INPROG) and *slotp
 * the slot.
 */
static sage_err claim(sage_queue *q, size_t len, int timeout_ms, struct sq_rec **recp,
                      struct sq_slot **slotp)
{
    struct sq_hdr *h = q->hdr;
    struct sq_slot *s;
    uint64_t need, T, H, idx, pad, total;
    uint32_t si;
    int64_t deadline = 0;
    bool counted = false;
    enum sq_bad bad;
    uint32_t st;
    sage_err r;
    int cpu;

    if (len > q->max_msg)
        return SAGE_SETERR(SAGE_EMSGSIZE, "queue '%s': message of %zu bytes exceeds max_msg %llu",
                           q->name, len, (unsigned long long)q->max_msg);
    s = sage__sq_slot(q, &si);
    if (s == NULL)
        return SAGE_EBUSY; /* detail set by sage__sq_slot */
    if (atomic_load_explicit(&s->claim, memory_order_relaxed) != SQ_CLAIM_NONE)
        return SAGE_SETERR(SAGE_EBUSY, "queue '%s': this thread already holds a claim", q->name);
    need = sq_align8(len + SQ_REC_HDR);
    T = atomic_load_explicit(&h->tail, memory_order_relaxed);
    for (;;) {
        if ((st = shut(q)) != 0) { /* closed or corrupt: one load for both */
            atomic_store_explicit(&s->claim, SQ_CLAIM_NONE, memory_order_relaxed);
            return sage__sq_shut_err(q, st);
        }
        if (sq_pos(T) & 7) { /* records are 8-aligned: someone scribbled on tail */
            atomic_store_explicit(&s->claim, SQ_CLAIM_NONE, memory_order_relaxed);
            return sage__sq_fail(q, SQ_BAD_TAIL_ALIGN, "%s (tail %#llx)",
                                 sage__sq_reason(SQ_BAD_TAIL_ALIGN), (unsigned long long)T);
        }
        idx = sq_pos(T) & q->mask;
        pad = idx + need > q->cap ? q->cap - idx : 0;
        total = pad + need;
        H = atomic_load_explicit(&q->head_cache, memory_order_acquire);
        if (!fits(q, T, H, total)) {
            uint64_t T2;

            H = atomic_load_explicit(&h->head, memory_order_acquire);
            atomic_store_explicit(&q->head_cache, H, memory_order_release);
            T2 = atomic_load_explicit(&h->tail, memory_order_relaxed);
            if (T2 != T) {
                T = T2;
                continue;
            }
            /* tail held still around the read of head: a true pair, so
             * an impossible one is corruption, and waiting would be for
             * ever (health.c) */
            bad = sage__sq_bad_positions(q, T, H);
            if (bad != SQ_BAD_NONE) {
                atomic_store_explicit(&s->claim, SQ_CLAIM_NONE, memory_order_relaxed);
                return sage__sq_fail(q, bad, "%s (head %#llx, tail %#llx)", sage__sq_reason(bad),
                                     (unsigned long long)H, (unsigned long long)T);
            }
            if (!fits(q, T, H, total)) {
                /* a failed CAS may have left an attempt in the slot: a
                 * waiting producer must not look like it owns room */
                atomic_store_explicit(&s->claim, SQ_CLAIM_NONE, memory_order_relaxed);
                r = wait_space(q, total, timeout_ms, &deadline, &counted);
                if (r != SAGE_OK)
                    return r;
                T = atomic_load_explicit(&h->tail, memory_order_relaxed);
                continue;
            }
        }
        atomic_store_explicit(&s->total, total, memory_order_relaxed);
        atomic_store_explicit(&s->claim, T, memory_order_relaxed);
        /* release: the slot's claim is visible with the new tail */
        if (atomic_compare_exchange_weak_explicit(&h->tail, &T,
                                                  sq_pack(sq_pos(T) + total, sq_cnt(T) + 1),
                                                  memory_order_release, memory_order_relaxed))
            break;
    }
    TSAN_CLAIMED(q, sq_pos(T), total);
    HOOK_AFTER_CLAIM();
    if (pad)
        atomic_store_explicit(&rec_at(q, sq_pos(T))->word, sq_word(SQ_TAG_PAD, (uint32_t)pad),
                              memory_order_release);
    *recp = rec_at(q, sq_pos(T) + pad);
    atomic_store_explicit(&(*recp)->word, sq_word(SQ_TAG_INPROG | si, (uint32_t)(len + SQ_REC_HDR)),
                          memory_order_relaxed);
    *slotp = s;
    cpu = sage__cpu();
    if ((int)atomic_load_explicit(&h->last_prod_cpu, memory_order_relaxed) != cpu)
        atomic_store_explicit(&h->last_prod_cpu, (uint32_t)cpu, memory_order_relaxed);
    return SAGE_OK;
}

static void publish(sage_queue *q, struct sq_rec *rec, struct sq_slot *s, uint32_t tag,
                    uint32_t reclen)
{
    TSAN_COMMITTING(q);
    /* release: the payload is visible to a consumer that acquires the word */
    atomic_store_explicit(&rec->word, sq_word(tag, reclen), memory_order_release);
    atomic_store_explicit(&s->claim, SQ_CLAIM_NONE, memory_order_relaxed);
    if (tag == SQ_TAG_MSG) {
        bump(&s->msgs, 1);
        bump(&s->bytes, reclen - SQ_REC_HDR);
    }
    wake_consumer(q);
}

sage_err sage_queue_sendv(sage_queue *q, const struct iovec *iov, int iovcnt, int timeout_ms)
{
    struct sq_rec *rec;
    struct sq_slot *s;
    size_t len = 0;
    uint8_t *p;
    sage_err r;

    if (q == NULL || (iov == NULL && iovcnt > 0) || iovcnt < 0)
        return SAGE_SETERR(SAGE_EINVAL, "sage_queue_sendv: invalid argument");
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    r = claim(q, len, timeout_ms, &rec, &s);
    if (r != SAGE_OK)
        return r;
    p = (uint8_t *)(rec + 1);
    for (int i = 0; i < iovcnt; i++) {
        memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    publish(q, rec, s, SQ_TAG_MSG, (uint32_t)(len + SQ_REC_HDR));
    return SAGE_OK;
}

sage_err sage_queue_send(sage_queue *q, const void *data, size_t len, int timeout_ms)
{
    struct sq_rec *rec;
    struct sq_slot *s;
    sage_err r;

    if (q == NULL || (data == NULL && len > 0))
        return SAGE_SETERR(SAGE_EINVAL, "sage_queue_send: invalid argument");
    r = claim(q, len, timeout_ms, &rec, &s);
    if (r != SAGE_OK)
        return r;
    if (len)
        memcpy(rec + 1, data, len);
    publish(q, rec, s, SQ_TAG_MSG, (uint32_t)(len + SQ_REC_HDR));
    return SAGE_OK;
}

sage_err sage_queue_claim(void **bufp, sage_queue *q, size_t len, int timeout_ms)
{
    struct sq_rec *rec;
    struct sq_slot *s;
    sage_err r;

    if (q == NULL || bufp == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_queue_claim: invalid argument");
    r = claim(q, len, timeout_ms, &rec, &s);
    if (r == SAGE_OK)
        *bufp = rec + 1;
    return r;
}

/* own_claim checks that buf is the record this thread claimed in q. */
static sage_err own_claim(sage_queue *q, void *buf, struct sq_rec **recp, struct sq_slot **slotp)
{
    struct sq_slot *s;
    struct sq_rec *rec;
    uint64_t off, c;
    uint32_t si;

    if (q == NULL || buf == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "commit/abort: invalid argument");
    off = (uint64_t)((uint8_t *)buf - q->ring);
    if ((uint8_t *)buf < q->ring + SQ_REC_HDR || off > q->cap || (off & 7) != 0)
        return SAGE_SETERR(SAGE_EINVAL, "queue '%s': buffer was not claimed from this queue",
                           q->name);
    s = sage__sq_slot(q, &si);
    if (s == NULL)
        return SAGE_EBUSY;
    c = atomic_load_explicit(&s->claim, memory_order_relaxed);
    rec = (struct sq_rec *)buf - 1;
    if (c == SQ_CLAIM_NONE ||
        (uint32_t)(atomic_load_explicit(&rec->word, memory_order_relaxed) >> 32) !=
            (SQ_TAG_INPROG | si))
        return SAGE_SETERR(SAGE_EINVAL, "queue '%s': this thread holds no claim at that buffer",
                           q->name);
    *recp = rec;
    *slotp = s;
    return SAGE_OK;
}

/* finish publishes this thread's claim at buf as tag (MSG or SKIP), with the
 * length claim() wrote into its INPROG word. */
static sage_err finish(sage_queue *q, void *buf, uint32_t tag)
{
    struct sq_rec *rec = NULL;
    struct sq_slot *s = NULL;
    sage_err r = own_claim(q, buf, &rec, &s);

    if (r == SAGE_OK)
        publish(q, rec, s, tag, (uint32_t)atomic_load_explicit(&rec->word, memory_order_relaxed));
    return r;
}

sage_err sage_queue_commit(sage_queue *q, void *buf)
{
    return finish(q, buf, SQ_TAG_MSG);
}

sage_err sage_queue_abort(sage_queue *q, void *buf)
{
    return finish(q, buf, SQ_TAG_SKIP);
}
