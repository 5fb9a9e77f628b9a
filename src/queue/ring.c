/*
 * ring.c - the many-to-one ring: claim, commit, consume, wait, recover.
 *
 * Design notes (the layout itself is described in layout.h)
 *
 * Producing. A producer reads tail, checks room against head, writes the
 * claim it is about to try into its slot, and CASes tail forward by the
 * record's length (plus padding when the record would cross the ring's end;
 * the record then starts at index 0). The CAS is a release: the slot's claim
 * is visible to anyone who sees the new tail. Then it marks the record
 * TAG_INPROG|slot, writes the payload, and commits by storing TAG_MSG with
 * release ordering, so a consumer that acquires the word sees the payload.
 *
 * Consuming. The consumer reads record words in order from its own copy of
 * head; a zero or INPROG word ends the batch. After the batch it zeroes the
 * consumed bytes and then stores head with release ordering, so producers that
 * acquire head see zeroed room (the "not yet written" state of a record).
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
 * Spinning. Before sleeping a waiter spins for at most spin_ns, and only if
 * the peer it waits for last ran on another CPU (spinning on the peer's own
 * CPU only delays it) and, for producers, the consumer is not asleep.
 *
 * Recovering. A record at head that stays uncommitted is either INPROG (its
 * slot is in the tag) or zero (its producer died between its CAS and its
 * INPROG store: the claim is found through the slots). If every slot that
 * claims it belongs to a dead process, the consumer turns the claim into a
 * TAG_SKIP record and goes on. A live owner means wait; the consumer then
 * sleeps in slices of LIVENESS_SLICE_NS to look again, so a producer killed
 * mid-claim is detected within one slice.
 */
#include <sched.h>
#include <string.h>

#include "base/err_internal.h"
#include "platform/barrier.h"
#include "platform/clock.h"
#include "platform/cpu.h"
#include "platform/futex.h"
#include "platform/proc.h"
#include "queue/queue_internal.h"

/*
 * ThreadSanitizer sees one process. Producer threads of this process reuse
 * ring room in turn, and what orders their writes (a commit, the consumer's
 * zeroing, head's release, the next claim) may run through a consumer in
 * another process. In TSan builds each commit releases and each claim
 * acquires one sync address per mapping (the ring's), stating that order.
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
#define TSAN_ACQUIRE(p) __tsan_acquire(p)
#define TSAN_RELEASE(p) __tsan_release(p)
#else
#define TSAN_ACQUIRE(p) ((void)(p))
#define TSAN_RELEASE(p) ((void)(p))
#endif

#define LIVENESS_SLICE_NS (5 * 1000 * 1000LL)  /* re-examine a stuck claim's owner */
#define CONSUMER_CHECK_NS (100 * 1000 * 1000LL) /* re-examine a full queue's consumer */

void (*sage__sq_hook_after_claim)(void);

/* ---------------------------------------------------------------- layout */

uint64_t sage__sq_ring_off(uint32_t nslots)
{
    return (SQ_HDR_SIZE + (uint64_t)nslots * SQ_SLOT_SIZE + 4095) & ~(uint64_t)4095;
}

void sage__sq_init_segment(void *mem, uint64_t cap, uint64_t max_msg, uint32_t max_msgs,
                           uint32_t nslots, uint64_t ring_off, uint64_t seg_size)
{
    struct sq_hdr *h = mem;
    struct sq_slot *slots = (struct sq_slot *)((uint8_t *)mem + SQ_HDR_SIZE);

    h->version = SQ_VERSION;
    h->hdr_size = SQ_HDR_SIZE;
    h->capacity = cap;
    h->max_msg = max_msg;
    h->max_msgs = max_msgs;
    h->nslots = nslots;
    h->slots_off = SQ_HDR_SIZE;
    h->ring_off = ring_off;
    h->seg_size = seg_size;
    h->creator_pid = sage__pid();
    h->created_ns = sage__wall_ns();
    for (uint32_t i = 0; i < nslots; i++)
        atomic_store_explicit(&slots[i].claim, SQ_CLAIM_NONE, memory_order_relaxed);
    /* release: openers that acquire the magic see every field above */
    atomic_store_explicit(&h->magic, SQ_MAGIC, memory_order_release);
}

sage_err sage__sq_attach(sage_queue *q, void *mem, size_t size)
{
    struct sq_hdr *h = mem;
    uint64_t cap, ring_off;

    if (size < SQ_HDR_SIZE)
        return SAGE_SETERR(SAGE_EPROTO, "queue '%s': segment of %zu bytes is too small", q->name,
                           size);
    if (atomic_load_explicit(&h->magic, memory_order_acquire) != SQ_MAGIC)
        return SAGE_SETERR(SAGE_EPROTO, "queue '%s': not a sage queue (bad magic)", q->name);
    if (h->version != SQ_VERSION)
        return SAGE_SETERR(SAGE_EVERSION, "queue '%s': layout version %u, this library speaks %u",
                           q->name, h->version, SQ_VERSION);
    cap = h->capacity;
    if (h->hdr_size != SQ_HDR_SIZE || cap < SQ_MIN_CAPACITY || cap > SQ_MAX_CAPACITY ||
        (cap & (cap - 1)) != 0 || h->nslots == 0 || h->nslots > SQ_MAX_SLOTS ||
        h->slots_off != SQ_HDR_SIZE || h->max_msg > cap / 2 - SQ_REC_HDR ||
        h->max_msgs > SQ_MAX_MSGS)
        return SAGE_SETERR(SAGE_EPROTO, "queue '%s': corrupt header (sizes out of range)",
                           q->name);
    ring_off = sage__sq_ring_off(h->nslots);
    if (h->ring_off != ring_off || h->seg_size != ring_off + cap || h->seg_size != size)
        return SAGE_SETERR(SAGE_EPROTO,
                           "queue '%s': corrupt header (segment is %zu bytes, header says %llu)",
                           q->name, size, (unsigned long long)h->seg_size);
    q->hdr = h;
    q->slots = (struct sq_slot *)((uint8_t *)mem + SQ_HDR_SIZE);
    q->ring = (uint8_t *)mem + ring_off;
    q->cap = cap;
    q->mask = cap - 1;
    q->max_msg = h->max_msg;
    q->max_msgs = h->max_msgs ? h->max_msgs : SQ_MAX_MSGS;
    q->nslots = h->nslots;
    return SAGE_OK;
}

/* -------------------------------------------------------------- helpers */

static inline struct sq_rec *rec_at(const sage_queue *q, uint64_t pos)
{
    return (struct sq_rec *)(q->ring + (pos & q->mask));
}

static inline bool closed(const sage_queue *q)
{
    return atomic_load_explicit(&q->hdr->closed, memory_order_acquire) != 0;
}

/* fits tells whether total more bytes (one more claim) fit between head H
 * and tail T. A head that looks ahead of tail (T is stale) does not fit. */
static inline bool fits(const sage_queue *q, uint64_t T, uint64_t H, uint64_t total)
{
    uint64_t used = (sq_pos(T) - sq_pos(H)) & SQ_POS_MASK;
    uint64_t n = (sq_cnt(T) - sq_cnt(H)) & SQ_CNT_MASK;

    return used <= q->cap && used + total <= q->cap && n < q->max_msgs;
}

static inline bool committed(uint64_t w)
{
    uint32_t tag = (uint32_t)(w >> 32);

    return w != 0 && (tag & SQ_TAG_INPROG) == 0;
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

/* ------------------------------------------------------------ producing */

/* wait_space waits until total bytes may fit after tail T, the deadline, or
 * close. SAGE_OK means "look again". */
static sage_err wait_space(sage_queue *q, uint64_t total, int timeout_ms, int64_t *deadline,
                           bool *counted)
{
    struct sq_hdr *h = q->hdr;
    int64_t dl, until, spin_end;
    uint32_t seq;
    int32_t cons;
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
     * it shares ours (see wait_data) */
    if (q->spin_ns > 0 && !atomic_load_explicit(&h->cons_waiting, memory_order_relaxed)) {
        bool same = q->ncpu == 1 ||
                    (int)atomic_load_explicit(&h->cons_cpu, memory_order_relaxed) == sage__cpu();

        unsigned idle = 0;

        spin_end = sage__now_ns() + q->spin_ns;
        for (unsigned i = 1;; i++) {
            uint64_t H = atomic_load_explicit(&h->head, memory_order_acquire);

            if (fits(q, atomic_load_explicit(&h->tail, memory_order_relaxed), H, total) ||
                closed(q)) {
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
        if (fits(q, atomic_load_explicit(&h->tail, memory_order_relaxed), H, total) || closed(q)) {
            atomic_fetch_sub_explicit(&h->space_waiters, 1, memory_order_relaxed);
            return SAGE_OK;
        }
    }
    /* a dead consumer never frees room: look at it every CONSUMER_CHECK_NS */
    cons = atomic_load_explicit(&h->cons_pid, memory_order_relaxed);
    if (q->shared && cons != 0 && !sage__pid_alive(cons)) {
        atomic_fetch_sub_explicit(&h->space_waiters, 1, memory_order_relaxed);
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "queue '%s' is full and its consumer (pid %d) died",
                           q->name, (int)cons);
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
        if (closed(q)) {
            atomic_store_explicit(&s->claim, SQ_CLAIM_NONE, memory_order_relaxed);
            return SAGE_SETERR(SAGE_ECLOSED, "queue '%s' is closed", q->name);
        }
        if (sq_pos(T) & 7) { /* records are 8-aligned: someone scribbled on tail */
            atomic_store_explicit(&s->claim, SQ_CLAIM_NONE, memory_order_relaxed);
            return SAGE_SETERR(SAGE_EPROTO, "queue '%s' is corrupt (tail %#llx misaligned)",
                               q->name, (unsigned long long)T);
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
    TSAN_ACQUIRE(q->ring);
    if (sage__sq_hook_after_claim)
        sage__sq_hook_after_claim();
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
    /* release: the payload is visible to a consumer that acquires the word */
    atomic_store_explicit(&rec->word, sq_word(tag, reclen), memory_order_release);
    TSAN_RELEASE(q->ring); /* after the word: the commit itself is ordered too */
    atomic_store_explicit(&s->claim, SQ_CLAIM_NONE, memory_order_relaxed);
    if (tag == SQ_TAG_MSG) {
        /* single writer: plain load+store, no locked instruction */
        atomic_store_explicit(&s->msgs, atomic_load_explicit(&s->msgs, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        atomic_store_explicit(&s->bytes,
                              atomic_load_explicit(&s->bytes, memory_order_relaxed) + reclen -
                                  SQ_REC_HDR,
                              memory_order_relaxed);
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

sage_err sage_queue_claim(sage_queue *q, size_t len, void **bufp, int timeout_ms)
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

sage_err sage_queue_commit(sage_queue *q, void *buf)
{
    struct sq_rec *rec = NULL;
    struct sq_slot *s = NULL;
    sage_err r = own_claim(q, buf, &rec, &s);

    if (r == SAGE_OK)
        publish(q, rec, s, SQ_TAG_MSG,
                (uint32_t)atomic_load_explicit(&rec->word, memory_order_relaxed));
    return r;
}

sage_err sage_queue_abort(sage_queue *q, void *buf)
{
    struct sq_rec *rec = NULL;
    struct sq_slot *s = NULL;
    sage_err r = own_claim(q, buf, &rec, &s);

    if (r == SAGE_OK)
        publish(q, rec, s, SQ_TAG_SKIP,
                (uint32_t)atomic_load_explicit(&rec->word, memory_order_relaxed));
    return r;
}

/* ------------------------------------------------------------ consuming */

static sage_err corrupt(sage_queue *q, uint64_t pos, uint64_t w, const char *why)
{
    atomic_store_explicit(&q->corrupt, 1, memory_order_relaxed);
    return SAGE_SETERR(SAGE_EPROTO, "queue '%s': corrupt record at offset %llu (word %#llx): %s",
                       q->name, (unsigned long long)(pos & q->mask), (unsigned long long)w, why);
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

void sage__sq_release(sage_queue *q)
{
    if (q->pub_head == q->cons_head)
        return;
    /*
     * Zeroed lines are the producers' next ones. When a batch held several
     * small records the producer is streaming and stalls on taking those
     * lines from our cache: demoting them to the shared cache level doubles
     * its rate. A lone record (request/response) or large records (the
     * producer is copying, not stalling) do better left where they are.
     * Measured in bench/ (queue thr 64 B vs rtt and 4 KiB).
     */
    uint64_t recs = (sq_cnt(q->cons_head) - sq_cnt(q->pub_head)) & SQ_CNT_MASK;
    uint64_t bytes = (sq_pos(q->cons_head) - sq_pos(q->pub_head)) & SQ_POS_MASK;

    zero_range(q, sq_pos(q->pub_head), sq_pos(q->cons_head), recs >= 2 && bytes <= recs * 1024);
    q->pub_head = q->cons_head;
    /* release: producers that acquire head see the zeroed room */
    atomic_store_explicit(&q->hdr->head, q->pub_head, memory_order_release);
    wake_producers(q);
}

/* batch consumes committed records from the consumer's head, handing
 * messages to fn, up to max messages (0: all). */
static sage_err batch(sage_queue *q, sage__sq_take_fn fn, void *arg, size_t max, size_t *np,
                      bool *declined)
{
    struct sq_hdr *h = q->hdr;
    uint64_t start = sq_pos(q->cons_head), pos = start, cnt = sq_cnt(q->cons_head);
    uint64_t bytes = 0, skipped = 0;
    size_t n = 0;
    sage_err r = SAGE_OK;

    while (max == 0 || n < max) {
        uint64_t idx = pos & q->mask, done = (pos - sq_pos(q->pub_head)) & SQ_POS_MASK;
        struct sq_rec *rec = (struct sq_rec *)(q->ring + idx);
        uint64_t w;
        uint32_t tag, len;

        /* A whole ring past the last release: the next word is a record
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
            r = corrupt(q, pos, w, "records run past a whole ring");
            break;
        }
        if (tag == SQ_TAG_PAD) {
            if (len != q->cap - idx) {
                r = corrupt(q, pos, w, "padding does not end at the ring's end");
                break;
            }
            pos += len;
            continue;
        }
        /* a SKIP may cover a whole recovered claim, alignment included */
        if (len < SQ_REC_HDR || idx + sq_align8(len) > q->cap ||
            len - SQ_REC_HDR > (tag == SQ_TAG_SKIP ? sq_align8(q->max_msg + SQ_REC_HDR) - SQ_REC_HDR
                                                   : q->max_msg)) {
            r = corrupt(q, pos, w, "record length out of range");
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
            r = corrupt(q, pos, w, "unknown record tag");
            break;
        }
        pos += sq_align8(len);
        cnt++;
    }
    if (pos != start) {
        q->cons_head = sq_pack(pos, cnt);
        atomic_store_explicit(&h->msgs_out, atomic_load_explicit(&h->msgs_out, memory_order_relaxed) + n,
                              memory_order_relaxed);
        atomic_store_explicit(&h->bytes_out,
                              atomic_load_explicit(&h->bytes_out, memory_order_relaxed) + bytes,
                              memory_order_relaxed);
        if (skipped)
            atomic_store_explicit(&h->skipped,
                                  atomic_load_explicit(&h->skipped, memory_order_relaxed) + skipped,
                                  memory_order_relaxed);
        sage__sq_release(q);
    }
    *np = n;
    return r;
}

/* skip_claim turns [pos, end) of a dead producer's claim into records the
 * consumer will pass over: padding to the ring's end if the claim wraps,
 * then one SKIP. Only the consumer calls it, and only for dead owners. */
static void skip_claim(sage_queue *q, uint64_t pos, uint64_t end)
{
    uint64_t r = (end - pos) & SQ_POS_MASK;
    uint64_t idx = pos & q->mask;

    if (idx + r > q->cap) {
        atomic_store_explicit(&rec_at(q, pos)->word, sq_word(SQ_TAG_PAD, (uint32_t)(q->cap - idx)),
                              memory_order_release);
        r -= q->cap - idx;
        pos += q->cap - idx;
    }
    atomic_store_explicit(&rec_at(q, pos)->word, sq_word(SQ_TAG_SKIP, (uint32_t)r),
                          memory_order_release);
    atomic_store_explicit(&q->hdr->recovered,
                          atomic_load_explicit(&q->hdr->recovered, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

enum stuck { STUCK_RETRY, STUCK_WAIT, STUCK_FAIL };

/*
 * recover looks at the uncommitted record at the consumer's head and skips
 * it if its producer is dead. STUCK_RETRY: something changed, consume again.
 * STUCK_WAIT: a live producer owns it (or ownership is unclear): wait.
 */
static enum stuck recover(sage_queue *q, sage_err *errp)
{
    uint64_t pos = sq_pos(q->cons_head);
    struct sq_rec *rec = rec_at(q, pos);
    uint64_t w = atomic_load_explicit(&rec->word, memory_order_acquire);
    uint64_t end = 0;
    int dead = 0;

    if (committed(w))
        return STUCK_RETRY;
    if (w != 0) { /* INPROG: the tag names the slot */
        uint32_t si = (uint32_t)(w >> 32) & ~SQ_TAG_INPROG, len = (uint32_t)w;
        int32_t pid;

        if (si >= q->nslots || len < SQ_REC_HDR || len - SQ_REC_HDR > q->max_msg ||
            (pos & q->mask) + sq_align8(len) > q->cap) {
            *errp = corrupt(q, pos, w, "in-progress record out of range");
            return STUCK_FAIL;
        }
        pid = atomic_load_explicit(&q->slots[si].pid, memory_order_acquire);
        if (pid != 0 && sage__pid_alive(pid))
            return STUCK_WAIT;
        /* CAS: if the word changed, it was committed after all */
        if (!atomic_compare_exchange_strong_explicit(&rec->word, &w,
                                                     sq_word(SQ_TAG_SKIP, len),
                                                     memory_order_acq_rel, memory_order_acquire))
            return STUCK_RETRY;
        atomic_store_explicit(&q->slots[si].claim, SQ_CLAIM_NONE, memory_order_release);
        atomic_store_explicit(&q->hdr->recovered,
                              atomic_load_explicit(&q->hdr->recovered, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        return STUCK_RETRY;
    }

    /* zero word: find who claimed pos through the slots */
    {
        uint64_t T = atomic_load_explicit(&q->hdr->tail, memory_order_acquire);
        uint32_t dead_slot = 0;

        if (((sq_pos(T) - pos) & SQ_POS_MASK) == 0 || ((sq_pos(T) - pos) & SQ_POS_MASK) > q->cap)
            return STUCK_WAIT; /* empty, or tail not meaningful */
        for (uint32_t i = 0; i < q->nslots; i++) {
            struct sq_slot *s = &q->slots[i];
            int32_t pid = atomic_load_explicit(&s->pid, memory_order_acquire);
            uint64_t c, tot, e;

            if (pid == 0)
                continue;
            c = atomic_load_explicit(&s->claim, memory_order_acquire);
            tot = atomic_load_explicit(&s->total, memory_order_relaxed);
            if (c == SQ_CLAIM_NONE || tot == 0 || tot > q->cap ||
                ((pos - sq_pos(c)) & SQ_POS_MASK) >= tot)
                continue;
            if (sage__pid_alive(pid))
                return STUCK_WAIT; /* a live producer claims it: it will write */
            e = (sq_pos(c) + tot) & SQ_POS_MASK;
            if (dead && e != end)
                return STUCK_WAIT; /* two dead claims disagree: do not guess */
            end = e;
            dead_slot = i;
            dead = 1;
        }
        if (atomic_load_explicit(&rec->word, memory_order_acquire) != 0)
            return STUCK_RETRY; /* written meanwhile */
        if (!dead || ((end - pos) & SQ_POS_MASK) > ((sq_pos(T) - pos) & SQ_POS_MASK))
            return STUCK_WAIT;
        skip_claim(q, pos, end);
        atomic_store_explicit(&q->slots[dead_slot].claim, SQ_CLAIM_NONE, memory_order_release);
        return STUCK_RETRY;
    }
}

/* is_empty tells whether nothing is claimed at the consumer's head. It reads
 * tail, whose cache line producers write on every claim: only slow paths
 * call it. */
static bool is_empty(sage_queue *q)
{
    uint64_t pos = sq_pos(q->cons_head);

    return atomic_load_explicit(&rec_at(q, pos)->word, memory_order_acquire) == 0 &&
           sq_pos(atomic_load_explicit(&q->hdr->tail, memory_order_acquire)) == pos;
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
    uint32_t seq;
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
        if (q->spin_ns > 0 && !closed(q)) {
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

    empty = is_empty(q);
    if (empty && closed(q))
        return SAGE_SETERR(SAGE_ECLOSED, "queue '%s' is closed", q->name);
    if (!empty) {
        switch (recover(q, &r)) {
        case STUCK_RETRY:
            return SAGE_OK;
        case STUCK_FAIL:
            return r;
        case STUCK_WAIT:
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
    if (committed(atomic_load_explicit(word, memory_order_acquire)) || closed(q)) {
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

    if (atomic_exchange_explicit(&q->consuming, 1, memory_order_acquire))
        return SAGE_SETERR(SAGE_EBUSY, "queue '%s': another thread is receiving", q->name);
    if (atomic_load_explicit(&q->corrupt, memory_order_relaxed)) {
        atomic_store_explicit(&q->consuming, 0, memory_order_release);
        return SAGE_SETERR(SAGE_EPROTO, "queue '%s' is corrupt", q->name);
    }
    if (!q->is_consumer || q->cons_gen != gen) {
        pid_t me = sage__pid();
        int32_t cur = atomic_load_explicit(&h->cons_pid, memory_order_acquire);

        if (cur != me) {
            if (q->shared && cur != 0 && sage__pid_alive(cur)) {
                atomic_store_explicit(&q->consuming, 0, memory_order_release);
                return SAGE_SETERR(SAGE_EBUSY, "queue '%s' already has a consumer (pid %d)",
                                   q->name, (int)cur);
            }
            if (!atomic_compare_exchange_strong_explicit(&h->cons_pid, &cur, me,
                                                         memory_order_acq_rel,
                                                         memory_order_acquire)) {
                atomic_store_explicit(&q->consuming, 0, memory_order_release);
                return SAGE_SETERR(SAGE_EBUSY, "queue '%s' already has a consumer (pid %d)",
                                   q->name, (int)cur);
            }
        }
        q->cons_head = atomic_load_explicit(&h->head, memory_order_acquire);
        if (sq_pos(q->cons_head) & 7) {
            atomic_store_explicit(&q->consuming, 0, memory_order_release);
            return corrupt(q, q->cons_head, q->cons_head, "head misaligned");
        }
        q->pub_head = q->cons_head;
        q->cons_asym = sage__asym_heavy_ok(q->shared);
        atomic_store_explicit(&h->cons_asym, q->cons_asym, memory_order_relaxed);
        q->is_consumer = true;
        q->cons_gen = gen;
    }
    return SAGE_OK;
}

sage_err sage__sq_consume(sage_queue *q, sage__sq_take_fn fn, void *arg, size_t max, int timeout_ms,
                          size_t *countp)
{
    int64_t deadline = 0;
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

sage_err sage_queue_drain(sage_queue *q, sage_queue_fn fn, void *arg, size_t max, int timeout_ms,
                          size_t *countp)
{
    struct drain_arg d = {fn, arg};

    if (fn == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_queue_drain: fn is NULL");
    return sage__sq_consume(q, drain_take, &d, max, timeout_ms, countp);
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

sage_err sage_queue_recv(sage_queue *q, void *buf, size_t cap, size_t *lenp, int timeout_ms)
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
