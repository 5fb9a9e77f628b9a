/*
 * reply.c - sending answers to callers' response queues.
 *
 * Design notes
 * - Callers' queues are opened by name (the request's reply-to) and cached,
 *   counted while a send uses them. A queue that fails for good (closed:
 *   its manager is gone; unavailable: its process died; missing) is marked
 *   dead and freed once unused; idle entries are swept every SWEEP_NS.
 * - Each sending thread keeps the entry it used last, with its reference:
 *   answers to the caller it answered last (the common case) take no lock.
 *   Entries are told apart across tasks by the cache's unique id, so a
 *   thread never touches an entry of a cache that is gone.
 * - An answer is encoded straight into the claimed room of the caller's
 *   queue: no intermediate buffer.
 * - A caller whose queue stays full for REPLY_WAIT_MS loses that answer (it
 *   is counted and the reason recorded): one stuck caller must not stall the
 *   task for everyone else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "runtime/task_internal.h"
#include "cluster/cluster_internal.h"

#define REPLY_WAIT_MS 1000
#define SWEEP_NS (10 * 1000000000LL)
#define IDLE_NS (60 * 1000000000LL)

struct rentry {
    char name[SAGE_QUEUE_NAME_MAX + 1];
    sage_queue *q;
    int refs;
    _Atomic bool dead; /* written under the lock; the thread cache reads it */
    int64_t last_used;
    struct rentry *next;
};

static _Atomic uint64_t next_id = 1;

/* this thread's last entry (a reference held), and the cache it is of */
static _Thread_local struct {
    uint64_t owner;
    struct rentry *e;
} last;

struct sage__replies {
    pthread_mutex_t lock;
    uint64_t id; /* unique in the process, for the thread caches */
    struct rentry *head;
    int64_t last_sweep;
};

sage_err sage__replies_new(struct sage__replies **rp)
{
    struct sage__replies *r = calloc(1, sizeof *r);

    if (r == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    pthread_mutex_init(&r->lock, NULL);
    r->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    r->last_sweep = sage__now_ns();
    *rp = r;
    return SAGE_OK;
}

void sage__replies_free(struct sage__replies *r)
{
    struct rentry *e, *n;

    if (r == NULL)
        return;
    for (e = r->head; e; e = n) {
        n = e->next;
        sage_queue_free(e->q);
        free(e);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* sweep frees dead and idle unused entries; lock held */
static void sweep(struct sage__replies *r, int64_t now)
{
    struct rentry **pp = &r->head;

    while (*pp) {
        struct rentry *e = *pp;

        if (e->refs == 0 && (e->dead || now - e->last_used > IDLE_NS)) {
            *pp = e->next;
            sage_queue_free(e->q);
            free(e);
        } else {
            pp = &e->next;
        }
    }
    r->last_sweep = now;
}

static struct rentry *get(struct sage__replies *r, const char *name, sage_err *errp)
{
    struct rentry *e;
    sage_queue *q = NULL;
    int64_t now = sage__now_coarse_ns(); /* for sweeps of idle entries only */

    pthread_mutex_lock(&r->lock);
    if (now - r->last_sweep > SWEEP_NS)
        sweep(r, now);
    for (e = r->head; e; e = e->next)
        if (!e->dead && strcmp(e->name, name) == 0)
            break;
    if (e) {
        e->refs++;
        e->last_used = now;
        pthread_mutex_unlock(&r->lock);
        return e;
    }
    pthread_mutex_unlock(&r->lock);

    *errp = sage_queue_open(&q, name, NULL);
    if (*errp != SAGE_OK)
        return NULL;
    pthread_mutex_lock(&r->lock);
    for (e = r->head; e; e = e->next) /* another thread may have opened it meanwhile */
        if (!e->dead && strcmp(e->name, name) == 0)
            break;
    if (e == NULL) {
        e = calloc(1, sizeof *e);
        if (e == NULL) {
            pthread_mutex_unlock(&r->lock);
            sage_queue_free(q);
            *errp = SAGE_ENOMEM;
            return NULL;
        }
        snprintf(e->name, sizeof e->name, "%s", name);
        e->q = q;
        q = NULL;
        e->next = r->head;
        r->head = e;
    }
    e->refs++;
    e->last_used = now;
    pthread_mutex_unlock(&r->lock);
    sage_queue_free(q); /* the loser of the race */
    return e;
}

static void put(struct sage__replies *r, struct rentry *e, bool dead)
{
    pthread_mutex_lock(&r->lock);
    e->refs--;
    if (dead)
        atomic_store_explicit(&e->dead, true, memory_order_relaxed);
    pthread_mutex_unlock(&r->lock);
}

/* acquire returns the entry for name with a reference this thread keeps:
 * the last one, if it still fits, else a fresh one from get() */
static struct rentry *acquire(struct sage__replies *r, const char *name, sage_err *errp)
{
    if (last.owner == r->id && last.e != NULL) {
        if (!atomic_load_explicit(&last.e->dead, memory_order_relaxed) &&
            strcmp(last.e->name, name) == 0)
            return last.e;
        put(r, last.e, false);
    }
    last.owner = r->id;
    last.e = get(r, name, errp);
    return last.e;
}

/* release: a queue that failed for good is given back, marked dead */
static void release(struct sage__replies *r, struct rentry *e, bool dead)
{
    if (!dead)
        return; /* kept for the next answer */
    if (last.e == e)
        last.e = NULL;
    put(r, e, true);
}

/* put_resp claims room for resp in q, encodes it there and commits. */
static sage_err put_resp(struct sage_call *c, sage_queue *q, const sage__resp *resp)
{
    size_t size = sage__wire_resp_size(resp), len;
    void *buf;
    sage_err r = sage_queue_claim(q, size, &buf, REPLY_WAIT_MS);

    if (r != SAGE_OK)
        return r;
    r = sage__wire_resp_encode(resp, buf, size, &len);
    if (r != SAGE_OK) {
        sage_queue_abort(q, buf);
        return r;
    }
    sage__call_remember(c, buf, len); /* before commit: the room is ours */
    return sage_queue_commit(q, buf);
}

/* send_resp sends resp through put_resp; an answer that does not fit the
 * caller's queue is replaced by an error that says so */
static sage_err send_resp(struct sage_call *c, sage_queue *q, const sage__resp *resp)
{
    sage_err r = put_resp(c, q, resp);

    if (r == SAGE_EMSGSIZE) {
        sage__resp small = *resp;
        char msg[200];

        snprintf(msg, sizeof msg, "the answer of '%s' is %zu bytes, more than the caller accepts",
                 c->method_name, sage__wire_resp_size(resp));
        small.ok = false;
        small.result = sage_nil();
        small.err_code = SAGE_EMSGSIZE;
        small.err_msg = msg;
        small.err_msg_len = strlen(msg);
        r = put_resp(c, q, &small);
    }
    return r;
}

/* deliver sends c's answer to its caller's queue: resp, encoded straight
 * into the queue, or (resp NULL) bytes already encoded. A failure is
 * recorded as a drop; a queue that failed for good leaves the cache. */
static void deliver(struct sage_call *c, const sage__resp *resp, const void *bytes, size_t len)
{
    struct sage_task *t = c->task;
    struct rentry *e;
    sage_err r = SAGE_OK;

    e = acquire(t->replies, c->reply_to, &r);
    if (e == NULL) {
        sage__task_drop(t, "answer to '%s' dropped: cannot open its queue: %s", c->reply_to,
                        sage_errdetail());
        return;
    }
    r = resp ? send_resp(c, e->q, resp) : sage_queue_send(e->q, bytes, len, REPLY_WAIT_MS);
    if (r != SAGE_OK)
        sage__task_drop(t, "answer to '%s' (id %llu) dropped: %s", c->reply_to,
                        (unsigned long long)c->req.id, sage_errdetail());
    release(t->replies, e, r == SAGE_ECLOSED || r == SAGE_EUNAVAILABLE || r == SAGE_EPROTO);
}

/* one_way: nobody waits for this call's answer */
static bool one_way(const struct sage_call *c)
{
    return c->reply_to == NULL || c->reply_to[0] == '\0';
}

void sage__reply_send_bytes(struct sage_call *c, const void *bytes, size_t len)
{
    if (one_way(c))
        return;
    if (c->task->cluster)
        sage__cluster_reply_bytes(c, bytes, len);
    else
        deliver(c, NULL, bytes, len);
}

void sage__reply_send(struct sage_call *c)
{
    sage__resp resp;

    if (one_way(c))
        return;
    memset(&resp, 0, sizeof resp);
    resp.id = c->req.id;
    resp.ok = c->status == SAGE_OK;
    resp.result = resp.ok ? c->result : sage_nil();
    resp.err_code = (int32_t)c->status;
    if (!resp.ok) {
        resp.err_msg = c->errmsg ? c->errmsg : sage_strerror(c->status);
        resp.err_msg_len = strlen(resp.err_msg);
    }
    if (c->task->cluster) /* the caller waits on its NATS inbox */
        sage__cluster_reply(c, &resp);
    else
        deliver(c, &resp, NULL, 0);
}
