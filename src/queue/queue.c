/* queue.c - opening, closing and describing sage_queue segments. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err_internal.h"
#include "platform/barrier.h"
#include "platform/clock.h"
#include "platform/futex.h"
#include "platform/proc.h"
#include "platform/shm.h"
#include "platform/shmlist.h"
#include "queue/queue_internal.h"

#define DEFAULT_CAPACITY (1u << 20)
#define DEFAULT_PRODUCERS 1024u
#define DEFAULT_SPIN_US 20u
#define POPULATE_LIMIT (64u << 20)
#define CREATE_RACE_NS (500 * 1000 * 1000LL)
#define SEG_PREFIX "sage.q." /* a queue NAME is the segment /sage.q.NAME */

void sage_queue_opts_init(sage_queue_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->capacity = DEFAULT_CAPACITY;
    opts->max_producers = DEFAULT_PRODUCERS;
    opts->mode = 0600;
    opts->spin_us = DEFAULT_SPIN_US;
}

/* name_char tells whether c may appear in a queue name. */
static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

sage_err sage_queue_check_name(const char *name)
{
    size_t n;

    if (name == NULL || name[0] == '\0')
        return SAGE_SETERR(SAGE_EINVAL, "queue name is empty");
    n = strlen(name);
    if (n > SAGE_QUEUE_NAME_MAX)
        return SAGE_SETERR(SAGE_EINVAL, "queue name is %zu bytes, at most %d allowed", n,
                           SAGE_QUEUE_NAME_MAX);
    if (name[0] == '.' || name[0] == '-')
        return SAGE_SETERR(SAGE_EINVAL, "queue name '%s' starts with '%c'", name, name[0]);
    for (size_t i = 0; i < n; i++) {
        if (!name_char(name[i]))
            return SAGE_SETERR(SAGE_EINVAL,
                               "queue name has character 0x%02x at %zu; use [A-Za-z0-9._-]",
                               (unsigned char)name[i], i);
    }
    return SAGE_OK;
}

sage_err sage_queue_path(char *buf, size_t cap, const char *name)
{
    char seg[1 + sizeof SEG_PREFIX + SAGE_QUEUE_NAME_MAX];
    sage_err r;

    if ((r = sage_queue_check_name(name)) != SAGE_OK)
        return r;
    snprintf(seg, sizeof seg, "/" SEG_PREFIX "%s", name);
    return sage__shm_fs_path(buf, cap, seg);
}

static uint64_t round_pow2(uint64_t v)
{
    uint64_t p = SQ_MIN_CAPACITY;

    while (p < v && p < SQ_MAX_CAPACITY)
        p <<= 1;
    return p;
}

/* geometry validates the creation options and works out the segment. */
static sage_err geometry(const sage_queue_opts *o, uint64_t *cap, uint64_t *max_msg,
                         uint64_t *ring_off)
{
    if (o->capacity > SQ_MAX_CAPACITY)
        return SAGE_SETERR(SAGE_EINVAL, "capacity %zu exceeds %llu bytes", o->capacity,
                           (unsigned long long)SQ_MAX_CAPACITY);
    *cap = round_pow2(o->capacity ? o->capacity : DEFAULT_CAPACITY);
    *max_msg = o->max_msg ? o->max_msg : *cap / 4;
    if (*max_msg > *cap / 2 - SQ_REC_HDR)
        return SAGE_SETERR(SAGE_EINVAL,
                           "max_msg %llu too large for capacity %llu (at most capacity/2 - 8)",
                           (unsigned long long)*max_msg, (unsigned long long)*cap);
    if (o->max_msgs > SQ_MAX_MSGS)
        return SAGE_SETERR(SAGE_EINVAL, "max_msgs %u exceeds %u", o->max_msgs, SQ_MAX_MSGS);
    if (o->max_producers > SQ_MAX_SLOTS)
        return SAGE_SETERR(SAGE_EINVAL, "max_producers %u exceeds %u", o->max_producers,
                           SQ_MAX_SLOTS);
    *ring_off = sage__sq_ring_off(o->max_producers ? o->max_producers : DEFAULT_PRODUCERS);
    return SAGE_OK;
}

static sage_err open_private(sage_queue *q, const sage_queue_opts *o)
{
    uint64_t cap, max_msg, ring_off;
    uint32_t nslots = o->max_producers ? o->max_producers : DEFAULT_PRODUCERS;
    void *mem;
    sage_err r = geometry(o, &cap, &max_msg, &ring_off);

    if (r != SAGE_OK)
        return r;
    r = sage__map_anon(&mem, ring_off + cap);
    if (r != SAGE_OK)
        return r;
    sage__sq_init_segment(mem, cap, max_msg, o->max_msgs, nslots, ring_off, ring_off + cap);
    q->map_size = ring_off + cap;
    q->shared = false;
    r = sage__sq_attach(q, mem, q->map_size);
    if (r != SAGE_OK)
        sage__unmap(mem, q->map_size);
    return r;
}

static sage_err open_named(sage_queue *q, const char *name, const sage_queue_opts *o)
{
    char path[SAGE_QUEUE_NAME_MAX + 16];
    uint64_t cap = 0, max_msg = 0, ring_off = 0;
    uint32_t nslots = o->max_producers ? o->max_producers : DEFAULT_PRODUCERS;
    int64_t give_up = 0;
    unsigned shm_flags = (o->flags & SAGE_QUEUE_ANY_OWNER) ? SAGE__SHM_ANY_OWNER : 0;
    sage_err r;

    r = sage_queue_check_name(name);
    if (r != SAGE_OK)
        return r;
    if (o->flags & SAGE_QUEUE_CREATE) {
        r = geometry(o, &cap, &max_msg, &ring_off);
        if (r != SAGE_OK)
            return r;
    }
    snprintf(path, sizeof path, "/" SEG_PREFIX "%s", name);
    q->shared = true;
    for (;;) {
        void *mem = NULL;
        size_t size = 0;

        if (o->flags & SAGE_QUEUE_CREATE) {
            r = sage__shm_create(path, o->mode ? o->mode : 0600, ring_off + cap, shm_flags,
                                 (o->flags & SAGE_QUEUE_LAZY) ? 0 : POPULATE_LIMIT, &mem);
            if (r == SAGE_OK) {
                sage__sq_init_segment(mem, cap, max_msg, o->max_msgs, nslots, ring_off,
                                      ring_off + cap);
                q->map_size = ring_off + cap;
                r = sage__sq_attach(q, mem, q->map_size);
                if (r != SAGE_OK)
                    sage__unmap(mem, q->map_size);
                return r;
            }
            if (r != SAGE_EEXIST)
                return SAGE_SETERR(r, "queue '%s': %s", name, sage_errdetail());
            if (o->flags & SAGE_QUEUE_EXCL)
                return SAGE_SETERR(SAGE_EEXIST, "queue '%s' already exists", name);
        }
        r = sage__shm_open(path, shm_flags, &mem, &size,
                           (o->flags & SAGE_QUEUE_LAZY) ? 0 : POPULATE_LIMIT);
        if (r == SAGE_ENOENT && (o->flags & SAGE_QUEUE_CREATE))
            continue; /* unlinked between our two calls: create again */
        if (r != SAGE_OK)
            return SAGE_SETERR(r, "queue '%s': %s", name, sage_errdetail());
        q->map_size = size;
        if (size >= SQ_HDR_SIZE &&
            atomic_load_explicit(&((struct sq_hdr *)mem)->magic, memory_order_acquire) == SQ_MAGIC) {
            r = sage__sq_attach(q, mem, size);
            if (r != SAGE_OK)
                sage__unmap(mem, size);
            return r;
        }
        if (size >= SQ_HDR_SIZE &&
            atomic_load_explicit(&((struct sq_hdr *)mem)->magic, memory_order_acquire) != 0) {
            sage__unmap(mem, size);
            return SAGE_SETERR(SAGE_EPROTO, "queue '%s': not a sage queue (bad magic)", name);
        }
        /* its creator may still be writing the header (magic comes last): a
         * bounded wait for a state that has no wake-up, at open only */
        sage__unmap(mem, size);
        if (give_up == 0)
            give_up = sage__now_ns() + CREATE_RACE_NS;
        else if (sage__now_ns() > give_up)
            return SAGE_SETERR(SAGE_EPROTO, "queue '%s': segment has no valid header", name);
        {
            struct timespec ts = {0, 1000 * 1000};

            nanosleep(&ts, NULL);
        }
    }
}

/* ready completes a handle whose segment is attached: this process's facts,
 * the producers' first view of head, and the registry of live handles. */
static void ready(sage_queue *q, uint32_t spin_us)
{
    q->asym = sage__asym_register(q->shared);
    q->ncpu = sage__ncpu();
    q->spin_ns = (int64_t)spin_us * 1000;
    atomic_store_explicit(&q->head_cache, atomic_load_explicit(&q->hdr->head, memory_order_acquire),
                          memory_order_relaxed);
    sage__sq_register(q);
}

sage_err sage_queue_open(sage_queue **qp, const char *name, const sage_queue_opts *opts)
{
    sage_queue_opts defaults;
    sage_queue *q;
    sage_err r;

    if (qp == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_queue_open: qp is NULL");
    if (opts == NULL) {
        sage_queue_opts_init(&defaults);
        opts = &defaults;
    }
    q = calloc(1, sizeof *q);
    if (q == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "sage_queue_open: out of memory");
    if (name)
        snprintf(q->name, sizeof q->name, "%s", name);
    r = name ? open_named(q, name, opts) : open_private(q, opts);
    if (r != SAGE_OK) {
        free(q);
        return r;
    }
    ready(q, opts->spin_us);
    *qp = q;
    return SAGE_OK;
}

sage_err sage__sq_open_mem(sage_queue **qp, void *mem, size_t size)
{
    sage_queue *q = calloc(1, sizeof *q);
    sage_err r;

    if (q == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    snprintf(q->name, sizeof q->name, "(memory)");
    r = sage__sq_attach(q, mem, size); /* map_size stays 0: never unmapped */
    if (r != SAGE_OK) {
        free(q);
        return r;
    }
    ready(q, 0);
    *qp = q;
    return SAGE_OK;
}

sage_err sage_queue_shutdown(sage_queue *q)
{
    struct sq_hdr *h;
    uint64_t me, creator, cons, none = 0;

    if (q == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_queue_shutdown: q is NULL");
    h = q->hdr;
    me = sage__sq_me();
    creator = h->creator;
    cons = atomic_load_explicit(&h->cons, memory_order_acquire);
    /* a private queue has one process; a named one is shut down for
     * everyone only by the process that made it or the one that reads it */
    if (q->shared && me != creator && me != cons)
        return SAGE_SETERR(SAGE_EPERM,
                           "queue '%s': only its creator (pid %d) or its consumer (pid %d) may "
                           "shut it down, not pid %d",
                           q->name, (int)sq_ident_pid(creator), (int)sq_ident_pid(cons),
                           (int)sage__pid());
    /* the first closer signs; release (the state's): who sees the bit sees
     * who set it */
    atomic_compare_exchange_strong_explicit(&h->closed_by, &none, me, memory_order_relaxed,
                                            memory_order_relaxed);
    atomic_fetch_or_explicit(&h->state, SQ_ST_CLOSED, memory_order_release);
    atomic_fetch_add_explicit(&h->data_seq, 1, memory_order_release);
    atomic_fetch_add_explicit(&h->space_seq, 1, memory_order_release);
    sage__futex_wake(&h->data_seq, -1, q->shared);
    sage__futex_wake(&h->space_seq, -1, q->shared);
    return SAGE_OK;
}

void sage_queue_close(sage_queue *q)
{
    if (q == NULL)
        return;
    sage__sq_unregister(q);
    if (q->is_consumer && q->cons_gen == sage__fork_gen()) {
        uint64_t me = sage__sq_me();

        /* give up the consumer role so another process may take it */
        atomic_compare_exchange_strong_explicit(&q->hdr->cons, &me, 0, memory_order_acq_rel,
                                                memory_order_relaxed);
    }
    sage__unmap(q->hdr, q->map_size); /* no-op for the caller's memory (size 0) */
    free(q);
}

sage_err sage_queue_unlink(const char *name)
{
    char path[SAGE_QUEUE_NAME_MAX + 16];
    sage_err r = sage_queue_check_name(name);

    if (r != SAGE_OK)
        return r;
    snprintf(path, sizeof path, "/" SEG_PREFIX "%s", name);
    r = sage__shm_unlink(path);
    if (r != SAGE_OK)
        return SAGE_SETERR(r, "queue '%s': %s", name, sage_errdetail());
    return SAGE_OK;
}

const char *sage_queue_name(const sage_queue *q)
{
    return q ? q->name : "";
}

sage_err sage_queue_stats_read(sage_queue_stats *st, sage_queue *q)
{
    struct sq_hdr *h;
    uint64_t T, H, in_m, in_b, skipped, recovered, cons;

    if (q == NULL || st == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_queue_stats_read: invalid argument");
    h = q->hdr;
    memset(st, 0, sizeof *st);
    st->capacity = q->cap;
    st->max_msg = q->max_msg;
    st->max_msgs = h->max_msgs;
    in_m = atomic_load_explicit(&h->retired_msgs_in, memory_order_relaxed);
    in_b = atomic_load_explicit(&h->retired_bytes_in, memory_order_relaxed);
    for (uint32_t i = 0; i < q->nslots; i++) {
        in_m += atomic_load_explicit(&q->slots[i].msgs, memory_order_relaxed);
        in_b += atomic_load_explicit(&q->slots[i].bytes, memory_order_relaxed);
    }
    st->msgs_in = in_m;
    st->bytes_in = in_b;
    st->msgs_out = atomic_load_explicit(&h->msgs_out, memory_order_relaxed);
    st->bytes_out = atomic_load_explicit(&h->bytes_out, memory_order_relaxed);
    H = atomic_load_explicit(&h->head, memory_order_acquire);
    T = atomic_load_explicit(&h->tail, memory_order_acquire);
    st->depth_msgs = (sq_cnt(T) - sq_cnt(H)) & SQ_CNT_MASK;
    st->depth_bytes = (sq_pos(T) - sq_pos(H)) & SQ_POS_MASK;
    if (st->depth_bytes > q->cap) /* read between two moves: report what is sure */
        st->depth_bytes = q->cap;
    st->full_events = atomic_load_explicit(&h->full_events, memory_order_relaxed);
    st->wakeups = atomic_load_explicit(&h->wakeups, memory_order_relaxed);
    recovered = atomic_load_explicit(&h->recovered, memory_order_relaxed);
    skipped = atomic_load_explicit(&h->skipped, memory_order_relaxed);
    st->recovered = recovered;
    st->aborted = skipped > recovered ? skipped - recovered : 0;
    st->creator_pid = sq_ident_pid(h->creator);
    cons = atomic_load_explicit(&h->cons, memory_order_relaxed);
    st->consumer_pid = sq_ident_pid(cons);
    st->consumer_alive = cons != 0 && sage__sq_alive(cons);
    /* acquire: closed_by is written before the bit */
    st->closed = (atomic_load_explicit(&h->state, memory_order_acquire) & SQ_ST_CLOSED) != 0;
    st->closed_by_pid =
        st->closed ? sq_ident_pid(atomic_load_explicit(&h->closed_by, memory_order_relaxed)) : 0;
    st->created_ns = h->created_ns;
    sage__sq_health(q, st);
    return SAGE_OK;
}

struct list_arg {
    sage_queue_list_fn fn;
    void *arg;
};

static int list_one(void *arg, const char *seg)
{
    struct list_arg *a = arg;
    const char *name = seg + strlen(SEG_PREFIX);
    size_t n = strlen(name);

    /* what sage_queue_open could not open is not a queue (as
     * sage_queue_check_name, without touching this thread's detail) */
    if (n == 0 || n > SAGE_QUEUE_NAME_MAX || name[0] == '.' || name[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char(name[i]))
            return 0;
    return a->fn(a->arg, name) ? 0 : 1; /* the shm listing's rule: non-zero ends it */
}

sage_err sage_queue_list(const char *prefix, sage_queue_list_fn fn, void *arg)
{
    char seg[sizeof SEG_PREFIX + SAGE_QUEUE_NAME_MAX];
    struct list_arg a = {fn, arg};
    sage_err r;

    if (fn == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_queue_list: fn is NULL");
    if (prefix == NULL)
        prefix = "";
    if (strlen(prefix) > SAGE_QUEUE_NAME_MAX)
        return SAGE_SETERR(SAGE_EINVAL, "sage_queue_list: prefix of %zu bytes, at most %d allowed",
                           strlen(prefix), SAGE_QUEUE_NAME_MAX);
    snprintf(seg, sizeof seg, "%s%s", SEG_PREFIX, prefix);
    r = sage__shm_list(seg, list_one, &a);
    if (r != SAGE_OK)
        return SAGE_SETERR(r, "listing queues: %s", sage_errdetail());
    return SAGE_OK;
}
