/*
 * recover.c - skipping the claims of producers that died.
 *
 * Design notes
 *
 * A record at head that stays uncommitted is either INPROG (its slot is in
 * the tag) or zero (its producer died between its CAS and its INPROG store:
 * the claim is found through the slots). If every slot that claims it
 * belongs to a dead process, the consumer turns the claim into a TAG_SKIP
 * record and goes on; a live owner means wait. Only the consumer runs this,
 * so the records it rewrites are ones no live producer will touch: an INPROG
 * word is replaced by CAS (a late commit wins), and a zero word only when
 * every claim on it is dead.
 *
 * "Dead" is by identity (ident.c): a slot's owner whose pid now names
 * another process (started at another time) is dead.
 *
 * Unclear ownership. A live claim is always described by its owner's slot:
 * the slot is written before the CAS that wins the claim and cleared only
 * after the record is committed (or skipped). So an uncommitted record that
 * no slot accounts for - a zero word no slot claims, an INPROG word whose
 * live slot claims something else, dead claims that disagree on where the
 * record ends or that end past tail - is a state no protocol step leaves
 * for long; it comes from a scribbled segment, or from two producers killed
 * in their few-instruction windows at once. Guessing could skip live data or
 * land mid-record, so the consumer waits, re-examining every liveness slice,
 * but for SQ_UNCLEAR_NS (1 s: a thousand times any scheduling delay the
 * describing writes could suffer) at most; then the queue is declared
 * corrupt (SAGE_EPROTO) rather than wedged for ever.
 */
#include "platform/clock.h"
#include "platform/proc.h"
#include "queue/ring.h"

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
    bump(&q->hdr->recovered, 1);
}

/* unclear: the record at pos (word w) is uncommitted and nobody accounts
 * for it (see design notes). Wait, unless it has been so since more than
 * SQ_UNCLEAR_NS ago at this same head. */
static enum sq_stuck unclear(sage_queue *q, uint64_t pos, uint64_t w, const char *why,
                             sage_err *errp)
{
    int64_t now = sage__now_ns();

    if (q->unclear_since == 0 || q->unclear_head != q->cons_head) {
        q->unclear_head = q->cons_head;
        q->unclear_since = now;
        return SQ_STUCK_WAIT;
    }
    if (now - q->unclear_since < SQ_UNCLEAR_NS)
        return SQ_STUCK_WAIT;
    *errp = sage__sq_fail(q, SQ_BAD_UNCLEAR, "offset %llu (word %#llx): %s, for %lld ms",
                          (unsigned long long)(pos & q->mask), (unsigned long long)w, why,
                          (long long)((now - q->unclear_since) / 1000000));
    return SQ_STUCK_FAIL;
}

/* covers tells whether the claim (c, tot) read from a slot spans pos. */
static bool covers(const sage_queue *q, uint64_t c, uint64_t tot, uint64_t pos)
{
    return c != SQ_CLAIM_NONE && tot != 0 && tot <= q->cap &&
           ((pos - sq_pos(c)) & SQ_POS_MASK) < tot;
}

/* recover_inprog handles an INPROG word w at pos: the tag names the slot. */
static enum sq_stuck recover_inprog(sage_queue *q, uint64_t pos, uint64_t w, sage_err *errp)
{
    struct sq_rec *rec = rec_at(q, pos);
    uint32_t si = (uint32_t)(w >> 32) & ~SQ_TAG_INPROG, len = (uint32_t)w;
    struct sq_slot *s;
    uint64_t owner;

    if (si >= q->nslots || len < SQ_REC_HDR || len - SQ_REC_HDR > q->max_msg ||
        (pos & q->mask) + sq_align8(len) > q->cap) {
        *errp = sage__sq_corrupt(q, pos, w, "in-progress record out of range");
        return SQ_STUCK_FAIL;
    }
    s = &q->slots[si];
    owner = atomic_load_explicit(&s->owner, memory_order_acquire);
    if (owner != 0 && sage__sq_alive(owner)) {
        if (covers(q, atomic_load_explicit(&s->claim, memory_order_acquire),
                   atomic_load_explicit(&s->total, memory_order_relaxed), pos)) {
            q->unclear_since = 0;
            return SQ_STUCK_WAIT; /* its live owner is writing it */
        }
        /* the owner commits before it clears its claim: look again */
        if (atomic_load_explicit(&rec->word, memory_order_acquire) != w)
            return SQ_STUCK_RETRY;
        return unclear(q, pos, w, "live owner's slot claims other room", errp);
    }
    q->unclear_since = 0;
    /* CAS: if the word changed, it was committed after all */
    if (!atomic_compare_exchange_strong_explicit(&rec->word, &w, sq_word(SQ_TAG_SKIP, len),
                                                 memory_order_acq_rel, memory_order_acquire))
        return SQ_STUCK_RETRY;
    atomic_store_explicit(&s->claim, SQ_CLAIM_NONE, memory_order_release);
    bump(&q->hdr->recovered, 1);
    return SQ_STUCK_RETRY;
}

/* recover_zero handles a zero word at pos: who claimed it is found through
 * the slots. */
static enum sq_stuck recover_zero(sage_queue *q, uint64_t pos, sage_err *errp)
{
    struct sq_rec *rec = rec_at(q, pos);
    uint64_t T = atomic_load_explicit(&q->hdr->tail, memory_order_acquire);
    uint64_t ahead = (sq_pos(T) - pos) & SQ_POS_MASK, end = 0;
    uint32_t dead_slot = 0;
    bool dead = false;

    if (ahead > q->cap || ahead == 0) {
        /* the consumer's own head and any tail are a true pair (health.c);
         * and the caller saw this record claimed, so tail went back */
        enum sq_bad bad = sage__sq_bad_positions(q, T, q->cons_head);

        if (bad == SQ_BAD_NONE)
            return unclear(q, pos, 0, "tail moved back to head", errp);
        *errp = sage__sq_fail(q, bad, "%s (head %#llx, tail %#llx)", sage__sq_reason(bad),
                              (unsigned long long)q->cons_head, (unsigned long long)T);
        return SQ_STUCK_FAIL;
    }
    for (uint32_t i = 0; i < q->nslots; i++) {
        struct sq_slot *s = &q->slots[i];
        uint64_t owner = atomic_load_explicit(&s->owner, memory_order_acquire);
        uint64_t c, tot, e;

        if (owner == 0)
            continue;
        c = atomic_load_explicit(&s->claim, memory_order_acquire);
        tot = atomic_load_explicit(&s->total, memory_order_relaxed);
        if (!covers(q, c, tot, pos))
            continue;
        if (sage__sq_alive(owner)) {
            q->unclear_since = 0;
            return SQ_STUCK_WAIT; /* a live producer claims it: it will write */
        }
        e = (sq_pos(c) + tot) & SQ_POS_MASK;
        if (dead && e != end)
            return unclear(q, pos, 0, "dead claims disagree", errp);
        end = e;
        dead_slot = i;
        dead = true;
    }
    if (atomic_load_explicit(&rec->word, memory_order_acquire) != 0)
        return SQ_STUCK_RETRY; /* written meanwhile */
    if (!dead)
        return unclear(q, pos, 0, "no slot claims it", errp);
    if (((end - pos) & SQ_POS_MASK) > ahead)
        return unclear(q, pos, 0, "dead claim ends past tail", errp);
    q->unclear_since = 0;
    skip_claim(q, pos, end);
    atomic_store_explicit(&q->slots[dead_slot].claim, SQ_CLAIM_NONE, memory_order_release);
    return SQ_STUCK_RETRY;
}

/* see ring.h */
enum sq_stuck sage__sq_recover(sage_queue *q, sage_err *errp)
{
    uint64_t pos = sq_pos(q->cons_head);
    uint64_t w = atomic_load_explicit(&rec_at(q, pos)->word, memory_order_acquire);

    if (committed(w))
        return SQ_STUCK_RETRY;
    if (w != 0)
        return recover_inprog(q, pos, w, errp);
    return recover_zero(q, pos, errp);
}
