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
 */
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

/* see ring.h */
enum sq_stuck sage__sq_recover(sage_queue *q, sage_err *errp)
{
    uint64_t pos = sq_pos(q->cons_head);
    struct sq_rec *rec = rec_at(q, pos);
    uint64_t w = atomic_load_explicit(&rec->word, memory_order_acquire);
    uint64_t end = 0;
    int dead = 0;

    if (committed(w))
        return SQ_STUCK_RETRY;
    if (w != 0) { /* INPROG: the tag names the slot */
        uint32_t si = (uint32_t)(w >> 32) & ~SQ_TAG_INPROG, len = (uint32_t)w;
        int32_t pid;

        if (si >= q->nslots || len < SQ_REC_HDR || len - SQ_REC_HDR > q->max_msg ||
            (pos & q->mask) + sq_align8(len) > q->cap) {
            *errp = sage__sq_corrupt(q, pos, w, "in-progress record out of range");
            return SQ_STUCK_FAIL;
        }
        pid = atomic_load_explicit(&q->slots[si].pid, memory_order_acquire);
        if (pid != 0 && sage__pid_alive(pid))
            return SQ_STUCK_WAIT;
        /* CAS: if the word changed, it was committed after all */
        if (!atomic_compare_exchange_strong_explicit(&rec->word, &w,
                                                     sq_word(SQ_TAG_SKIP, len),
                                                     memory_order_acq_rel, memory_order_acquire))
            return SQ_STUCK_RETRY;
        atomic_store_explicit(&q->slots[si].claim, SQ_CLAIM_NONE, memory_order_release);
        bump(&q->hdr->recovered, 1);
        return SQ_STUCK_RETRY;
    }

    /* zero word: find who claimed pos through the slots */
    {
        uint64_t T = atomic_load_explicit(&q->hdr->tail, memory_order_acquire);
        uint32_t dead_slot = 0;

        if (((sq_pos(T) - pos) & SQ_POS_MASK) == 0 || ((sq_pos(T) - pos) & SQ_POS_MASK) > q->cap)
            return SQ_STUCK_WAIT; /* empty, or tail not meaningful */
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
                return SQ_STUCK_WAIT; /* a live producer claims it: it will write */
            e = (sq_pos(c) + tot) & SQ_POS_MASK;
            if (dead && e != end)
                return SQ_STUCK_WAIT; /* two dead claims disagree: do not guess */
            end = e;
            dead_slot = i;
            dead = 1;
        }
        if (atomic_load_explicit(&rec->word, memory_order_acquire) != 0)
            return SQ_STUCK_RETRY; /* written meanwhile */
        if (!dead || ((end - pos) & SQ_POS_MASK) > ((sq_pos(T) - pos) & SQ_POS_MASK))
            return SQ_STUCK_WAIT;
        skip_claim(q, pos, end);
        atomic_store_explicit(&q->slots[dead_slot].claim, SQ_CLAIM_NONE, memory_order_release);
        return SQ_STUCK_RETRY;
    }
}
