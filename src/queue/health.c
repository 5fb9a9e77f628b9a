/*
 * health.c - the corrupt state of a queue: telling impossible positions,
 * marking a queue corrupt for every process, and what stats say about it.
 *
 * Design notes
 *
 * Impossible positions. Producers claim room only while tail - head <= the
 * ring's capacity, by a head they read no later than the claim, and the
 * consumer passes only claimed records; so at any moment head <= tail <=
 * head + capacity, both 8-byte aligned, with the claim counts in step (each
 * claim holds at least 8 bytes; none outstanding exactly when no byte is).
 * Two positions read at different moments may still differ by a move, so a
 * checker reads them as a pair that held at one moment: the consumer pairs
 * tail with its own head (which only it moves); a producer re-reads tail
 * after head and uses the pair only if tail did not move; stats do either.
 * A pair that breaks the rule is corruption, never a race, and the checks
 * run only on slow paths (about to wait, or reading stats).
 *
 * Marking. The first process that finds the queue corrupt writes a reason
 * code (CAS from zero, so the first finder's stays), then sets SQ_ST_CORRUPT
 * in the state word with release ordering: whoever sees the bit (acquire)
 * sees the code. Every sender checks the state word anyway (it holds the
 * closed bit), so a corrupt queue refuses new messages at no extra cost, and
 * both sides' waiters are woken to fail at once. The handle that found it
 * also keeps its own, more precise reason (offsets, words) for stats.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/err_internal.h"
#include "platform/futex.h"
#include "queue/queue_internal.h"

static const char *const reasons[SQ_BAD_MAX] = {
    [SQ_BAD_NONE] = "marked corrupt",
    [SQ_BAD_RECORD] = "a record is malformed",
    [SQ_BAD_TAIL_ALIGN] = "tail is not 8-byte aligned",
    [SQ_BAD_HEAD_ALIGN] = "head is not 8-byte aligned",
    [SQ_BAD_HEAD_PAST_TAIL] = "head is past tail",
    [SQ_BAD_TAIL_AHEAD] = "tail is more than a ring ahead of head",
    [SQ_BAD_COUNT] = "claim count does not match the bytes queued",
    [SQ_BAD_HEAD_MOVED] = "head was moved by someone else than the consumer",
    [SQ_BAD_UNCLEAR] = "an uncommitted record that no producer accounts for",
};

const char *sage__sq_reason(uint32_t code)
{
    return code < SQ_BAD_MAX ? reasons[code] : "marked corrupt (unknown reason code)";
}

enum sq_bad sage__sq_bad_positions(const sage_queue *q, uint64_t T, uint64_t H)
{
    uint64_t used = (sq_pos(T) - sq_pos(H)) & SQ_POS_MASK;
    uint64_t n = (sq_cnt(T) - sq_cnt(H)) & SQ_CNT_MASK;

    if (sq_pos(T) & 7)
        return SQ_BAD_TAIL_ALIGN;
    if (sq_pos(H) & 7)
        return SQ_BAD_HEAD_ALIGN;
    if (used > q->cap) /* the nearer way round says which one is off */
        return used > SQ_POS_MASK / 2 ? SQ_BAD_HEAD_PAST_TAIL : SQ_BAD_TAIL_AHEAD;
    if (n > q->max_msgs || n * 8 > used || (n == 0) != (used == 0))
        return SQ_BAD_COUNT;
    return SQ_BAD_NONE;
}

sage_err sage__sq_fail(sage_queue *q, enum sq_bad code, const char *fmt, ...)
{
    struct sq_hdr *h = q->hdr;
    char why[256]; /* the detail's; stats keep the first SQ_WHY_MAX - 1 bytes */
    uint32_t none = SQ_BAD_NONE;
    int sound = 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    /* this handle keeps the first reason it found */
    if (atomic_compare_exchange_strong_explicit(&q->corrupt, &sound, 1, memory_order_relaxed,
                                                memory_order_relaxed)) {
        size_t n = strnlen(why, sizeof q->why - 1);

        memcpy(q->why, why, n);
        q->why[n] = '\0';
        /* release: a reader that sees 2 sees why */
        atomic_store_explicit(&q->corrupt, 2, memory_order_release);
    }
    atomic_compare_exchange_strong_explicit(&h->corrupt_code, &none, (uint32_t)code,
                                            memory_order_relaxed, memory_order_relaxed);
    /* release: whoever sees the bit sees the code */
    if (!(atomic_fetch_or_explicit(&h->state, SQ_ST_CORRUPT, memory_order_release) &
          SQ_ST_CORRUPT)) {
        atomic_fetch_add_explicit(&h->data_seq, 1, memory_order_release);
        atomic_fetch_add_explicit(&h->space_seq, 1, memory_order_release);
        sage__futex_wake(&h->data_seq, -1, q->shared);
        sage__futex_wake(&h->space_seq, -1, q->shared);
    }
    return SAGE_SETERR(SAGE_EPROTO, "queue '%s' is corrupt: %s", q->name, why);
}

sage_err sage__sq_shut_err(sage_queue *q, uint32_t st)
{
    if (st & SQ_ST_CORRUPT)
        return SAGE_SETERR(
            SAGE_EPROTO, "queue '%s' is corrupt: %s", q->name,
            sage__sq_reason(atomic_load_explicit(&q->hdr->corrupt_code, memory_order_relaxed)));
    return SAGE_SETERR(SAGE_ECLOSED, "queue '%s' is closed", q->name);
}

sage_err sage__sq_corrupt(sage_queue *q, uint64_t pos, uint64_t w, const char *why)
{
    return sage__sq_fail(q, SQ_BAD_RECORD, "record at offset %llu (word %#llx): %s",
                         (unsigned long long)(pos & q->mask), (unsigned long long)w, why);
}

void sage__sq_health(sage_queue *q, sage_queue_stats *st)
{
    struct sq_hdr *h = q->hdr;
    uint64_t T = 0, H = 0;
    enum sq_bad bad = SQ_BAD_NONE;

    st->corrupt = 0;
    st->corrupt_reason[0] = '\0';
    if (atomic_load_explicit(&q->corrupt, memory_order_acquire) == 2) {
        st->corrupt = 1;
        snprintf(st->corrupt_reason, sizeof st->corrupt_reason, "%s", q->why);
        return;
    }
    if (atomic_load_explicit(&h->state, memory_order_acquire) & SQ_ST_CORRUPT) {
        st->corrupt = 1;
        snprintf(st->corrupt_reason, sizeof st->corrupt_reason, "%s",
                 sage__sq_reason(atomic_load_explicit(&h->corrupt_code, memory_order_relaxed)));
        return;
    }
    /* a pair that held at one moment: tail unchanged around the read of
     * head; under heavy traffic give up after a few tries (alignment needs
     * no pair) */
    for (int i = 0; i < 4; i++) {
        uint64_t T2;

        T = atomic_load_explicit(&h->tail, memory_order_acquire);
        H = atomic_load_explicit(&h->head, memory_order_acquire);
        T2 = atomic_load_explicit(&h->tail, memory_order_acquire);
        if (T2 == T) {
            bad = sage__sq_bad_positions(q, T, H);
            break;
        }
    }
    if (bad == SQ_BAD_NONE && (sq_pos(T) & 7))
        bad = SQ_BAD_TAIL_ALIGN;
    if (bad == SQ_BAD_NONE && (sq_pos(H) & 7))
        bad = SQ_BAD_HEAD_ALIGN;
    if (bad != SQ_BAD_NONE) {
        st->corrupt = 1;
        snprintf(st->corrupt_reason, sizeof st->corrupt_reason, "%s (head %#llx, tail %#llx)",
                 sage__sq_reason(bad), (unsigned long long)H, (unsigned long long)T);
    }
}
