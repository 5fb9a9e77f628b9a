/*
 * slots.c - producer slots: one per producer thread per queue.
 *
 * Design notes
 * - A thread finds its slot through a small thread-local cache keyed by
 *   (handle, handle serial, fork generation): the hot path is a few compares
 *   and no lock. A serial distinguishes a new handle that reuses a freed
 *   handle's address; the fork generation makes a child ignore the slots its
 *   parent's threads cached before fork.
 * - Taking and giving back slots is rare and runs under one process-wide
 *   lock (reg_lock), which also guards the registry of live handles. A
 *   thread's cache entries may outlive their handle; they are only ever
 *   dereferenced after the registry confirms the handle is still live.
 * - In shared memory a slot is taken with a CAS on its owner word (0 -> our
 *   identity: pid and start time, ident.c) and given back by storing 0. A
 *   slot whose owner died (or whose pid now names another process) is taken
 *   over only when it holds no claim: a claim of a dead producer is the
 *   consumer's to recover (recover.c), and the slot must keep describing it
 *   until then.
 * - A thread never gives back a slot while it holds a claim through it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/proc.h"
#include "queue/queue_internal.h"

#define TL_N 8

struct tl_ent {
    sage_queue *q;
    uint64_t serial;
    uint32_t gen;
    uint32_t slot;
};

static _Thread_local struct tl_ent tl[TL_N];
static _Thread_local unsigned tl_next; /* round-robin eviction */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static sage_queue *reg_head;
static uint64_t reg_serial;
static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;

static void reg_prefork(void)
{
    pthread_mutex_lock(&reg_lock);
}

static void reg_postfork(void)
{
    pthread_mutex_unlock(&reg_lock);
}

static bool live(sage_queue *q, uint64_t serial)
{
    for (sage_queue *p = reg_head; p; p = p->reg_next)
        if (p == q && p->serial == serial)
            return true;
    return false;
}

/* release_slot gives slot i of q back; reg_lock held, q live. */
static void release_slot(sage_queue *q, uint32_t i)
{
    struct sq_slot *s = &q->slots[i];

    if (atomic_load_explicit(&s->claim, memory_order_relaxed) != SQ_CLAIM_NONE)
        return; /* holds a claim: must stay described (see design notes) */
    atomic_fetch_add_explicit(&q->hdr->retired_msgs_in,
                              atomic_load_explicit(&s->msgs, memory_order_relaxed),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&q->hdr->retired_bytes_in,
                              atomic_load_explicit(&s->bytes, memory_order_relaxed),
                              memory_order_relaxed);
    atomic_store_explicit(&s->msgs, 0, memory_order_relaxed);
    atomic_store_explicit(&s->bytes, 0, memory_order_relaxed);
    atomic_store_explicit(&s->tid, 0, memory_order_relaxed);
    /* release: the zeroed counters are visible to whoever takes it next */
    atomic_store_explicit(&s->owner, 0, memory_order_release);
    if (q->owned && q->owned_gen == sage__fork_gen())
        q->owned[i / 64] &= ~(1ull << (i % 64));
}

/* thread_exit gives back the exiting thread's slots of live handles. */
static void thread_exit(void *unused)
{
    uint32_t gen = sage__fork_gen();

    (void)unused;
    pthread_mutex_lock(&reg_lock);
    for (unsigned i = 0; i < TL_N; i++) {
        struct tl_ent *e = &tl[i];

        if (e->q && e->gen == gen && live(e->q, e->serial))
            release_slot(e->q, e->slot);
        e->q = NULL;
    }
    pthread_mutex_unlock(&reg_lock);
}

static void tl_init(void)
{
    pthread_key_create(&tl_key, thread_exit);
    pthread_atfork(reg_prefork, reg_postfork, reg_postfork);
}

void sage__sq_register(sage_queue *q)
{
    pthread_once(&tl_once, tl_init);
    pthread_mutex_lock(&reg_lock);
    q->serial = ++reg_serial;
    q->reg_prev = NULL;
    q->reg_next = reg_head;
    if (reg_head)
        reg_head->reg_prev = q;
    reg_head = q;
    pthread_mutex_unlock(&reg_lock);
}

void sage__sq_unregister(sage_queue *q)
{
    pthread_mutex_lock(&reg_lock);
    if (q->owned && q->owned_gen == sage__fork_gen()) {
        for (uint32_t i = 0; i < q->nslots; i++)
            if (q->owned[i / 64] & (1ull << (i % 64)))
                release_slot(q, i);
    }
    if (q->reg_prev)
        q->reg_prev->reg_next = q->reg_next;
    else if (reg_head == q)
        reg_head = q->reg_next;
    if (q->reg_next)
        q->reg_next->reg_prev = q->reg_prev;
    pthread_mutex_unlock(&reg_lock);
    free(q->owned);
    q->owned = NULL;
}

/* take_slot finds a free slot (or a dead producer's idle one) and makes it
 * ours (identity me); reg_lock held. Returns nslots when there is none. */
static uint32_t take_slot(sage_queue *q, uint64_t me)
{
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < q->nslots; i++) {
            struct sq_slot *s = &q->slots[i];
            uint64_t owner = atomic_load_explicit(&s->owner, memory_order_acquire);

            if (pass == 0 && owner != 0)
                continue;
            if (pass == 1) {
                if (owner == 0 || owner == me || sage__sq_alive(owner))
                    continue;
                if (atomic_load_explicit(&s->claim, memory_order_acquire) != SQ_CLAIM_NONE)
                    continue; /* a dead producer's claim, the consumer's to recover */
            }
            if (!atomic_compare_exchange_strong_explicit(&s->owner, &owner, me,
                                                         memory_order_acq_rel,
                                                         memory_order_relaxed))
                continue;
            if (pass == 1) { /* fold the dead owner's figures into the retired totals */
                atomic_fetch_add_explicit(&q->hdr->retired_msgs_in,
                                          atomic_exchange_explicit(&s->msgs, 0, memory_order_relaxed),
                                          memory_order_relaxed);
                atomic_fetch_add_explicit(&q->hdr->retired_bytes_in,
                                          atomic_exchange_explicit(&s->bytes, 0, memory_order_relaxed),
                                          memory_order_relaxed);
            }
            atomic_store_explicit(&s->tid, (int32_t)gettid(), memory_order_relaxed);
            atomic_store_explicit(&s->claim, SQ_CLAIM_NONE, memory_order_relaxed);
            return i;
        }
    }
    return q->nslots;
}

static struct sq_slot *slot_slow(sage_queue *q, uint32_t *idx, uint32_t gen)
{
    struct tl_ent *e = NULL;
    uint32_t i;

    pthread_once(&tl_once, tl_init);
    pthread_setspecific(tl_key, (void *)1); /* arms thread_exit for this thread */
    pthread_mutex_lock(&reg_lock);
    if (q->owned == NULL || q->owned_gen != gen) {
        free(q->owned); /* a parent's bitmap, copied by fork: not ours */
        q->owned = calloc((q->nslots + 63) / 64, sizeof *q->owned);
        q->owned_gen = gen;
        if (q->owned == NULL) {
            pthread_mutex_unlock(&reg_lock);
            SAGE_SETERR(SAGE_ENOMEM, "queue '%s': no memory for slot bookkeeping", q->name);
            return NULL;
        }
    }
    /* a free cache entry, or one whose handle is gone, else evict round-robin */
    for (unsigned k = 0; k < TL_N && e == NULL; k++)
        if (tl[k].q == NULL || tl[k].gen != gen || !live(tl[k].q, tl[k].serial))
            e = &tl[k];
    if (e == NULL) {
        for (unsigned k = 0; k < TL_N && e == NULL; k++) {
            struct tl_ent *c = &tl[(tl_next + k) % TL_N];

            if (atomic_load_explicit(&c->q->slots[c->slot].claim, memory_order_relaxed) ==
                SQ_CLAIM_NONE) {
                release_slot(c->q, c->slot);
                e = c;
            }
        }
        tl_next++;
        if (e == NULL) {
            pthread_mutex_unlock(&reg_lock);
            SAGE_SETERR(SAGE_EBUSY, "thread holds claims on %d queues at once", TL_N);
            return NULL;
        }
    }
    i = take_slot(q, sage__sq_me());
    if (i == q->nslots) {
        e->q = NULL;
        pthread_mutex_unlock(&reg_lock);
        SAGE_SETERR(SAGE_EBUSY, "queue '%s': all %u producer slots in use", q->name, q->nslots);
        return NULL;
    }
    q->owned[i / 64] |= 1ull << (i % 64);
    e->q = q;
    e->serial = q->serial;
    e->gen = gen;
    e->slot = i;
    pthread_mutex_unlock(&reg_lock);
    *idx = i;
    return &q->slots[i];
}

struct sq_slot *sage__sq_slot(sage_queue *q, uint32_t *idx)
{
    uint32_t gen = sage__fork_gen();

    for (unsigned k = 0; k < TL_N; k++) {
        struct tl_ent *e = &tl[k];

        if (e->q == q && e->serial == q->serial && e->gen == gen) {
            *idx = e->slot;
            return &q->slots[e->slot];
        }
    }
    return slot_slow(q, idx, gen);
}
