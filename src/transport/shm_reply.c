/*
 * shm_reply.c - a serving task's answers to its callers' reply queues.
 *
 * Design notes
 * - Callers' queues are opened by name (the request's reply-to) and cached.
 *   A caller that goes away (its manager closed, which shuts its queue
 *   down, or its process died) must not keep its queue mapped here: the
 *   listener's tick calls sage__replies_sweep every SWEEP_MS, with or
 *   without traffic, and it releases such queues (and unlinks the queue of
 *   a dead creator, who cannot), and queues unused for IDLE_NS.
 * - Fast path: each sending thread keeps the entry it used last (entry,
 *   generation). To use it, the thread raises the entry's busy count, then
 *   checks that the entry is neither dying nor reused (generation); the
 *   sweep marks an entry dying, then frees its queue only if busy is zero.
 *   Both sides use sequentially consistent operations, so either the
 *   sender sees dying (and takes the slow path) or the sweep sees it busy
 *   (and waits for the next sweep). Entries themselves are never freed
 *   before the cache: a dying entry goes to a free list and is reused with
 *   a new generation, so a thread's stale pointer always points at an entry.
 * - Slow path: look the name up under the cache's mutex; open the queue
 *   outside it.
 * - An answer is encoded straight into the claimed room of the caller's
 *   queue. A caller whose queue stays full for REPLY_WAIT_MS loses that
 *   answer (counted as a drop, with the reason): one stuck caller must not
 *   stall the task for everyone else.
 */
#include "transport/shm_reply.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "platform/proc.h"

#define REPLY_WAIT_MS 1000
#define SWEEP_MS 250
#define IDLE_NS (10 * 1000000000LL)

struct rentry {
    char name[SAGE_QUEUE_NAME_MAX + 1];
    sage_queue *q;                 /* NULL while free */
    _Atomic uint64_t gen;          /* bumped when the entry is freed */
    _Atomic int busy;              /* senders using q now */
    _Atomic int dying;             /* the sweep wants q gone */
    _Atomic int64_t last_used;     /* coarse monotonic clock */
    bool dead;                     /* q failed for good: release at the next sweep */
    struct rentry *next;           /* in use, or free */
};

struct sage__replies {
    pthread_mutex_t lock;
    uint64_t id; /* unique in the process, for the thread caches */
    struct sage__figures *fig;
    struct rentry *head; /* in use */
    struct rentry *free_list;
    struct rentry **all; /* every entry ever made, freed with the cache */
    size_t nall, capall;
    size_t live;
};

static _Atomic uint64_t next_id = 1;

/* this thread's last entry, of the cache with that id, at that generation */
static _Thread_local struct {
    uint64_t owner;
    struct rentry *e;
    uint64_t gen;
} last;

sage_err sage__replies_new(struct sage__replies **rp, struct sage__figures *fig)
{
    struct sage__replies *r = calloc(1, sizeof *r);

    if (r == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    pthread_mutex_init(&r->lock, NULL);
    r->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    r->fig = fig;
    *rp = r;
    return SAGE_OK;
}

void sage__replies_free(struct sage__replies *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nall; i++) {
        sage_queue_close(r->all[i]->q);
        free(r->all[i]);
    }
    free(r->all);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* new_entry takes a free entry or makes one; lock held */
static struct rentry *new_entry(struct sage__replies *r)
{
    struct rentry *e = r->free_list;

    if (e) {
        r->free_list = e->next;
        return e;
    }
    if (r->nall == r->capall) {
        size_t cap = r->capall ? 2 * r->capall : 16;
        struct rentry **all = realloc(r->all, cap * sizeof *all);

        if (all == NULL)
            return NULL;
        r->all = all;
        r->capall = cap;
    }
    e = calloc(1, sizeof *e);
    if (e)
        r->all[r->nall++] = e;
    return e;
}

/* find returns the live entry for name with busy raised; lock held */
static struct rentry *find(struct sage__replies *r, const char *name)
{
    for (struct rentry *e = r->head; e; e = e->next)
        if (!e->dead && !atomic_load_explicit(&e->dying, memory_order_relaxed) &&
            strcmp(e->name, name) == 0) {
            atomic_fetch_add_explicit(&e->busy, 1, memory_order_seq_cst);
            return e;
        }
    return NULL;
}

/* acquire returns the entry for name with busy raised, opening its queue
 * if needed; NULL with *errp set if it cannot be opened */
static struct rentry *acquire(struct sage__replies *r, const char *name, sage_err *errp)
{
    struct rentry *e = last.e;
    sage_queue *q = NULL;
    int64_t now = sage__now_coarse_ns();

    if (last.owner == r->id && e != NULL) {
        atomic_fetch_add_explicit(&e->busy, 1, memory_order_seq_cst);
        if (!atomic_load_explicit(&e->dying, memory_order_seq_cst) &&
            atomic_load_explicit(&e->gen, memory_order_acquire) == last.gen && !e->dead &&
            strcmp(e->name, name) == 0) {
            atomic_store_explicit(&e->last_used, now, memory_order_relaxed);
            return e;
        }
        atomic_fetch_sub_explicit(&e->busy, 1, memory_order_release);
    }
    pthread_mutex_lock(&r->lock);
    e = find(r, name);
    pthread_mutex_unlock(&r->lock);
    if (e == NULL) {
        sage_queue_opts o;

        /* a caller's queue is touched only where answers go: do not fault
         * in all of it (a short-lived caller needs a page or two) */
        sage_queue_opts_init(&o);
        o.flags = SAGE_QUEUE_LAZY;
        *errp = sage_queue_open(&q, name, &o);
        if (*errp != SAGE_OK)
            return NULL;
        pthread_mutex_lock(&r->lock);
        e = find(r, name); /* another thread may have opened it meanwhile */
        if (e == NULL && (e = new_entry(r)) != NULL) {
            snprintf(e->name, sizeof e->name, "%s", name);
            e->q = q;
            e->dead = false;
            q = NULL;
            atomic_store_explicit(&e->dying, 0, memory_order_relaxed);
            atomic_store_explicit(&e->busy, 1, memory_order_seq_cst);
            e->next = r->head;
            r->head = e;
            r->live++;
        }
        pthread_mutex_unlock(&r->lock);
        sage_queue_close(q); /* the loser of the race */
        if (e == NULL) {
            *errp = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
            return NULL;
        }
    }
    atomic_store_explicit(&e->last_used, now, memory_order_relaxed);
    last.owner = r->id;
    last.e = e;
    last.gen = atomic_load_explicit(&e->gen, memory_order_acquire);
    return e;
}

static void unbusy(struct sage__replies *r, struct rentry *e, bool dead)
{
    if (dead) { /* its queue failed for good: the next sweep releases it */
        pthread_mutex_lock(&r->lock);
        e->dead = true;
        pthread_mutex_unlock(&r->lock);
    }
    atomic_fetch_sub_explicit(&e->busy, 1, memory_order_release);
}

/* put_resp claims room for resp in q, encodes it there and commits */
static sage_err put_resp(sage_queue *q, const sage__resp *resp)
{
    size_t size = sage__wire_resp_size(resp), len;
    void *buf;
    sage_err r = sage_queue_claim(&buf, q, size, REPLY_WAIT_MS);

    if (r != SAGE_OK)
        return r;
    r = sage__wire_resp_encode(resp, buf, size, &len);
    if (r != SAGE_OK) {
        sage_queue_abort(q, buf);
        return r;
    }
    return sage_queue_commit(q, buf);
}

/* send_resp: an answer too large for the caller's queue is replaced by an
 * error that says so */
static sage_err send_resp(sage_queue *q, const sage__resp *resp)
{
    sage_err r = put_resp(q, resp);

    if (r == SAGE_EMSGSIZE) {
        sage__resp small = *resp;
        char msg[200];

        snprintf(msg, sizeof msg, "the answer is %zu bytes, more than the caller accepts",
                 sage__wire_resp_size(resp));
        small.ok = false;
        small.result = sage_nil();
        small.err_code = SAGE_EMSGSIZE;
        small.err_msg = msg;
        small.err_msg_len = strlen(msg);
        r = put_resp(q, &small);
    }
    return r;
}

void sage__replies_send(struct sage__replies *r, const char *reply_to, uint64_t id,
                        const sage__resp *resp, const void *bytes, size_t len)
{
    struct rentry *e;
    sage_err err = SAGE_OK;
    char why[256];

    e = acquire(r, reply_to, &err);
    if (e == NULL) {
        snprintf(why, sizeof why, "answer to '%s' (id %llu) dropped: cannot open its queue: %s",
                 reply_to, (unsigned long long)id, sage_errdetail());
        sage__fig_set_drop(r->fig, why);
        return;
    }
    err = resp ? send_resp(e->q, resp) : sage_queue_send(e->q, bytes, len, REPLY_WAIT_MS);
    if (err != SAGE_OK) {
        snprintf(why, sizeof why, "answer to '%s' (id %llu) dropped: %s", reply_to,
                 (unsigned long long)id, sage_errdetail());
        sage__fig_set_drop(r->fig, why);
    }
    unbusy(r, e, err == SAGE_ECLOSED || err == SAGE_EUNAVAILABLE || err == SAGE_EPROTO);
}

/* departed: the caller of q is gone (its manager shut the queue down, or
 * its creating process died); *unlinkp: nobody else will remove it */
static bool departed(sage_queue *q, bool *unlinkp)
{
    sage_queue_stats st;

    *unlinkp = false;
    if (sage_queue_stats_read(&st, q) != SAGE_OK)
        return true;
    if (st.closed)
        return true;
    if (st.creator_pid > 0 && !sage__pid_alive(st.creator_pid)) {
        *unlinkp = true;
        return true;
    }
    return false;
}

size_t sage__replies_sweep(struct sage__replies *r, int64_t now_ns)
{
    struct rentry **pp, *gone = NULL;
    size_t live;

    (void)now_ns;
    pthread_mutex_lock(&r->lock);
    pp = &r->head;
    while (*pp) {
        struct rentry *e = *pp;
        bool unlink_it = false;
        int64_t used = atomic_load_explicit(&e->last_used, memory_order_relaxed);

        if (!e->dead && !departed(e->q, &unlink_it) &&
            sage__now_coarse_ns() - used < IDLE_NS) {
            pp = &e->next;
            continue;
        }
        atomic_store_explicit(&e->dying, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&e->busy, memory_order_seq_cst) != 0) {
            atomic_store_explicit(&e->dying, 0, memory_order_relaxed); /* next time */
            pp = &e->next;
            continue;
        }
        *pp = e->next;
        if (unlink_it)
            sage_queue_unlink(e->name);
        sage_queue_close(e->q);
        e->q = NULL;
        atomic_fetch_add_explicit(&e->gen, 1, memory_order_release);
        e->next = gone;
        gone = e;
        r->live--;
    }
    while (gone) { /* to the free list */
        struct rentry *e = gone;

        gone = e->next;
        e->next = r->free_list;
        r->free_list = e;
    }
    live = r->live;
    pthread_mutex_unlock(&r->lock);
    return live;
}

int sage__replies_sweep_ms(void)
{
    return SWEEP_MS;
}
