/*
 * direct.c - direct calls: a synchronous caller in the task's own process
 * runs a short method on its own thread.
 *
 * Design notes
 * - Why: a synchronous in-process call through the task's queue crosses
 *   two threads and back, a dozen cache lines each way; a method known to
 *   take under a microsecond or so then costs several times its own run.
 *   Run on the caller's thread (which waits anyway), it costs a lookup, the
 *   method and a copy of its result.
 * - When: the task runs, takes direct calls (not while it starts or
 *   stops), has no dedupe of either kind (a direct call has no caller
 *   queue to key it by), the method is known to be short (its typical run time, the same
 *   EWMA the listener uses to run calls inline, is under INLINE_NS), and a
 *   worker slot is free: a direct call counts in `running` like any other,
 *   so max_workers still bounds what runs at once and the listener still
 *   leaves room. Otherwise the call goes the usual way, through the queue.
 * - Values: the caller's arguments are used as they are (borrowed: the
 *   caller waits for the whole call), the result is copied into the
 *   caller's arena. Nothing is encoded.
 * - Lifetime: the door is counted; destinations keep it after the task
 *   stopped or was freed, when it refuses. Its lock orders "take a slot"
 *   against the task's stop, which closes the door first and then waits for
 *   every running call, direct ones included.
 */
#include <stdlib.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "runtime/task_internal.h"

#define INLINE_NS (20 * 1000)

sage_err sage__direct_new(struct sage__direct **dp, struct sage_task *t)
{
    struct sage__direct *d = calloc(1, sizeof *d);

    if (d == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    pthread_mutex_init(&d->lock, NULL);
    atomic_init(&d->refs, 1);
    d->t = t;
    *dp = d;
    return SAGE_OK;
}

struct sage__direct *sage__direct_ref(struct sage__direct *d)
{
    atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
    return d;
}

void sage__direct_unref(struct sage__direct *d)
{
    if (d && atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&d->lock);
        free(d);
    }
}

void sage__direct_open(struct sage__direct *d, bool open)
{
    pthread_mutex_lock(&d->lock);
    d->accepting = open;
    if (!open)
        d->t = NULL; /* the task may be freed once it stopped */
    pthread_mutex_unlock(&d->lock);
}

void sage__direct_attach(struct sage__direct *d, struct sage_task *t)
{
    pthread_mutex_lock(&d->lock);
    d->t = t;
    d->accepting = true;
    pthread_mutex_unlock(&d->lock);
}

/* take_slot takes a running slot of d's task for method, if a direct call
 * may run now; the task, or NULL */
static struct sage_task *take_slot(struct sage__direct *d, const sage__req *req,
                                   struct sage__method **mp)
{
    struct sage_task *t;
    struct sage__method *m;
    int64_t typical;
    uint32_t running;

    pthread_mutex_lock(&d->lock);
    t = d->accepting ? d->t : NULL;
    if (t == NULL || t->dedupe != NULL || t->shared_dedupe)
        goto no;
    m = sage__method_find(t, req->method, req->method_len);
    typical = m ? atomic_load_explicit(&m->ewma_ns, memory_order_relaxed) : -1;
    if (typical < 0 || typical >= INLINE_NS)
        goto no;
    running = atomic_load_explicit(&t->running, memory_order_relaxed);
    do {
        if (running >= t->max_workers)
            goto no;
    } while (!atomic_compare_exchange_weak_explicit(&t->running, &running, running + 1,
                                                    memory_order_acq_rel, memory_order_relaxed));
    pthread_mutex_unlock(&d->lock);
    *mp = m;
    return t;
no:
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

int sage__direct_call(struct sage__direct *d, const sage__req *req, int64_t deadline_ns,
                      sage_arena *arena, sage_value *result, sage_err *errp)
{
    struct sage__method *m = NULL;
    struct sage_task *t = take_slot(d, req, &m);
    struct sage_call *c;

    if (t == NULL)
        return 0;
    if ((c = sage__call_get(t)) == NULL) {
        atomic_fetch_sub_explicit(&t->running, 1, memory_order_seq_cst);
        sage__listener_room(t);
        return 0;
    }
    c->recv_ns = sage__now_ns();
    c->req = *req; /* borrowed: the caller waits for the whole call */
    c->service = (char *)req->service;
    c->method_name = (char *)req->method;
    c->reply_to = (char *)"";
    c->method = m;
    c->deadline_ns = deadline_ns;
    *errp = sage__call_direct(c, arena, result);
    return 1;
}
