/*
 * pending.c - the manager's table of futures.
 *
 * Design notes
 * - Slots live in chunks of FUT_CHUNK that are never moved or freed before
 *   the manager, so a pointer to a slot (or a late answer's lookup) is
 *   always to valid memory; the generation in the id tells a current use
 *   from an earlier one.
 * - Free slots form a lock-free stack of indices. The head packs a tag that
 *   changes on every pop, so a pop that raced with a pop-push-pop of the
 *   same slot (ABA) fails its CAS and retries.
 * - The table grows a chunk at a time under grow_lock, up to max_pending.
 */
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "runtime/manager_internal.h"

static struct sage_future *slot(sage_manager *m, uint32_t index)
{
    return &m->chunks[index / FUT_CHUNK][index % FUT_CHUNK];
}

static void push(sage_manager *m, struct sage_future *f)
{
    uint64_t head = atomic_load_explicit(&m->free_head, memory_order_relaxed), next;

    do {
        atomic_store_explicit(&f->next_free, (uint32_t)head, memory_order_relaxed);
        next = ((head >> 32) + 1) << 32 | (f->index + 1);
    } while (!atomic_compare_exchange_weak_explicit(&m->free_head, &head, next, memory_order_release,
                                                    memory_order_relaxed));
}

static struct sage_future *pop(sage_manager *m)
{
    uint64_t head = atomic_load_explicit(&m->free_head, memory_order_acquire), next;
    struct sage_future *f;

    do {
        if ((uint32_t)head == 0)
            return NULL;
        f = slot(m, (uint32_t)head - 1);
        /* next_free may be stale if another thread popped f meanwhile: then
         * the tag has moved and the CAS fails */
        next = ((head >> 32) + 1) << 32 |
               atomic_load_explicit(&f->next_free, memory_order_relaxed);
    } while (!atomic_compare_exchange_weak_explicit(&m->free_head, &head, next, memory_order_acquire,
                                                    memory_order_acquire));
    return f;
}

static sage_err grow(sage_manager *m)
{
    struct sage_future *chunk;
    uint32_t base;

    pthread_mutex_lock(&m->grow_lock);
    if ((uint32_t)atomic_load_explicit(&m->free_head, memory_order_acquire) != 0) {
        pthread_mutex_unlock(&m->grow_lock); /* someone else grew it */
        return SAGE_OK;
    }
    if (atomic_load_explicit(&m->nchunks, memory_order_relaxed) == m->max_chunks) {
        pthread_mutex_unlock(&m->grow_lock);
        return SAGE_SETERR(SAGE_EBUSY, "%u calls already pending (max_pending)", m->max_pending);
    }
    chunk = calloc(FUT_CHUNK, sizeof *chunk);
    if (chunk == NULL) {
        pthread_mutex_unlock(&m->grow_lock);
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory for pending calls");
    }
    base = atomic_load_explicit(&m->nchunks, memory_order_relaxed) * FUT_CHUNK;
    for (uint32_t i = 0; i < FUT_CHUNK; i++) {
        chunk[i].m = m;
        chunk[i].index = base + i;
    }
    m->chunks[base / FUT_CHUNK] = chunk;
    /* release: lookups that see the new count see the chunk */
    atomic_store_explicit(&m->nchunks, base / FUT_CHUNK + 1, memory_order_release);
    for (uint32_t i = FUT_CHUNK; i-- > 0;)
        push(m, &chunk[i]);
    pthread_mutex_unlock(&m->grow_lock);
    return SAGE_OK;
}

sage_err sage__fut_alloc(sage_manager *m, struct sage_future **fp)
{
    struct sage_future *f;
    sage_err r;

    while ((f = pop(m)) == NULL)
        if ((r = grow(m)) != SAGE_OK)
            return r;
    if (f->arena == NULL && sage_arena_new(&f->arena, 1024) != SAGE_OK) {
        push(m, f);
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    }
    f->id = (uint64_t)atomic_load_explicit(&f->gen, memory_order_relaxed) << 32 | f->index;
    f->dest = NULL;
    f->err = SAGE_OK;
    f->errmsg = NULL;
    f->result = sage_nil();
    f->ncbs = f->cbs_run = 0;
    f->cb_next = NULL;
    f->conn_serial = 0;
    f->deadline_ns = -1;
    f->attempt_deadline_ns = -1;
    atomic_store_explicit(&f->attempt, 0, memory_order_relaxed);
    f->retries_left = 0;
    f->backoff_ns = 0;
    f->idempotent = false;
    f->retry_wait = false;
    f->via_inbox = false;
    f->async = false;
    f->tp_kind = 0;
    f->remote = false;
    f->retry_req = NULL;
    f->hedged = false;
    atomic_store_explicit(&f->redirects, 0, memory_order_relaxed);
    atomic_store_explicit(&f->replica, SAGE__TP_NONE, memory_order_relaxed);
    atomic_store_explicit(&f->cb_state, 0, memory_order_relaxed);
    atomic_store_explicit(&f->refs, 1, memory_order_relaxed); /* the user's */
    atomic_store_explicit(&f->state, FS_GEN(f->id >> 32) | FS_PENDING, memory_order_release);
    *fp = f;
    return SAGE_OK;
}

bool sage__fut_try_ref(struct sage_future *f, uint32_t gen)
{
    uint32_t refs = atomic_load_explicit(&f->refs, memory_order_acquire);

    do {
        if (refs == 0)
            return false; /* free: whatever it was is over */
    } while (!atomic_compare_exchange_weak_explicit(&f->refs, &refs, refs + 1,
                                                    memory_order_acq_rel, memory_order_acquire));
    if (atomic_load_explicit(&f->gen, memory_order_acquire) != gen) {
        sage__fut_unref(f); /* the slot's next use: not ours to hold */
        return false;
    }
    return true;
}

void sage__fut_unref(struct sage_future *f)
{
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* a new generation: answers to this use no longer find the slot. Only
     * the slot's holder writes gen, so no read-modify-write is needed. */
    uint32_t gen = atomic_load_explicit(&f->gen, memory_order_relaxed) + 1;

    atomic_store_explicit(&f->gen, gen, memory_order_relaxed);
    atomic_store_explicit(&f->state, FS_GEN(gen) | FS_FREE, memory_order_release);
    sage_arena_reset(f->arena);
    push(f->m, f);
}

struct sage_future *sage__fut_lookup(sage_manager *m, uint64_t id)
{
    uint32_t index = (uint32_t)id, gen = (uint32_t)(id >> 32);
    struct sage_future *f;

    if (index / FUT_CHUNK >= atomic_load_explicit(&m->nchunks, memory_order_acquire))
        return NULL; /* an id we never issued */
    f = slot(m, index);
    if (atomic_load_explicit(&f->gen, memory_order_acquire) != gen)
        return NULL;
    return f;
}

void sage__fut_foreach(sage_manager *m, void (*fn)(struct sage_future *f, void *arg), void *arg)
{
    uint32_t n = atomic_load_explicit(&m->nchunks, memory_order_acquire);

    for (uint32_t c = 0; c < n; c++)
        for (uint32_t i = 0; i < FUT_CHUNK; i++)
            fn(&m->chunks[c][i], arg);
}

void sage__fut_free_all(sage_manager *m)
{
    uint32_t n = atomic_load_explicit(&m->nchunks, memory_order_acquire);

    for (uint32_t c = 0; c < n; c++) {
        for (uint32_t i = 0; i < FUT_CHUNK; i++) {
            sage_arena_free(m->chunks[c][i].arena);
            free(m->chunks[c][i].more);
        }
        free(m->chunks[c]);
    }
    free(m->chunks);
    m->chunks = NULL;
    atomic_store(&m->nchunks, 0);
}
