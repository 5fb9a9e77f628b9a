/*
 * listener.c - the task's listener thread: drain the request queue in
 * batches, decode, and run or dispatch each call.
 *
 * Design notes
 * - One listener per task is the only consumer of its request queue.
 * - A batch is decoded first, then dispatched: decoding copies each request
 *   out of the ring (into its call's arena), so the ring's room is given
 *   back before any method runs and a running call never counts against
 *   request_queue_size.
 * - The listener reads only while a worker slot is free (running <
 *   max_workers), and at most that many requests: the rest wait in the
 *   ring, whose bound (request_queue_size) then pushes back on callers.
 *   When every slot is busy it sleeps until a call finishes.
 * - Inline or worker: a method whose typical run time (EWMA) is under
 *   INLINE_NS runs on the listener itself while fewer than max_workers calls
 *   are running: handing a microsecond's work to a sleeping worker would
 *   cost a kernel wake-up (20-30 us here) and the throughput of a whole
 *   batch. Longer methods, and methods not yet seen to be short, go to
 *   workers: they run in parallel and the listener keeps reading.
 * - The listener wakes at least every HEARTBEAT_MS to prove it is alive
 *   (the heartbeat in the registry entry); that is its only timed wake.
 * - Stop closes the queue: the drain delivers what is left, then returns
 *   SAGE_ECLOSED, and the listener exits.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "runtime/task_internal.h"
#include "wire/salvage.h"

#define INLINE_NS (20 * 1000)
#define HEARTBEAT_MS 1000
#define BATCH 64

static void dispatch(struct sage_task *t, struct sage_call *c)
{
    uint32_t running = atomic_fetch_add_explicit(&t->running, 1, memory_order_acq_rel) + 1;
    int64_t typical = c->method ? atomic_load_explicit(&c->method->ewma_ns, memory_order_relaxed) : 0;
    bool fast = typical >= 0 && typical < INLINE_NS; /* -1: never run yet */

    if (fast && running <= t->max_workers) {
        sage__call_run(c);
        return;
    }
    if (!sage__workers_submit(t, c))
        sage__call_run(c); /* no thread to be had: serve it here rather than drop it */
}

/* What becomes of a decoded request: the listener collects a batch and
 * dispatches it after the drain; a transport thread dispatches it at once,
 * or (durable delivery) serves it itself, to the end. */
enum serve { SERVE_BATCH, SERVE_DISPATCH, SERVE_HERE };

static void request(struct sage_task *t, const void *data, size_t len, enum serve how)
{
    struct sage_call *c = sage__call_get(t);
    sage_err r;

    if (c == NULL) {
        atomic_fetch_add_explicit(&t->reg->malformed, 1, memory_order_relaxed);
        sage__task_drop(t, "out of memory for a request of %zu bytes", len);
        return;
    }
    c->recv_ns = sage__now_ns();
    r = sage__wire_req_decode(data, len, c->arena, &c->req);
    if (r != SAGE_OK) {
        char why[256];

        snprintf(why, sizeof why, "malformed request (%s): %s", sage_errname(r), sage_errdetail());
        atomic_fetch_add_explicit(&t->reg->malformed, 1, memory_order_relaxed);
        /* answer if the envelope at least says who asked */
        if (sage__wire_req_salvage(data, len, c->arena, &c->req) == SAGE_OK &&
            c->req.reply_to_len > 0) {
            c->reply_to = (char *)c->req.reply_to;
            c->service = (char *)"";
            c->method_name = (char *)"";
            c->deadline_ns = -1;
            sage_call_error(c, r == SAGE_EVERSION ? SAGE_EVERSION : SAGE_EPROTO, "%s", why);
            atomic_fetch_add_explicit(&t->running, 1, memory_order_relaxed);
            sage__call_run(c); /* answers the error; expired/method paths do not apply */
            return;
        }
        sage__task_drop(t, "%s; no reply-to to answer", why);
        sage__call_put(c);
        return;
    }
    /* the decoder NUL-terminates every string it copies into the arena */
    c->service = (char *)c->req.service;
    c->method_name = (char *)c->req.method;
    c->reply_to = (char *)c->req.reply_to;
    if (c->req.timeout_ms) {
        /* on this host the caller's send time is on our clock: the time the
         * request waited in the queue counts; from elsewhere, count from now */
        int64_t from = c->recv_ns;

        if (t->transport != SAGE_TRANSPORT_NATS && c->req.sent_ns &&
            (int64_t)c->req.sent_ns <= c->recv_ns)
            from = (int64_t)c->req.sent_ns;
        c->deadline_ns = from + (int64_t)c->req.timeout_ms * 1000000;
    } else {
        c->deadline_ns = -1;
    }
    c->method = sage__method_find(t, c->req.method, c->req.method_len);
    switch (how) {
    case SERVE_HERE:
        atomic_fetch_add_explicit(&t->running, 1, memory_order_acq_rel);
        sage__call_run(c);
        break;
    case SERVE_BATCH:
        c->next = NULL;
        if (t->batch_tail)
            t->batch_tail->next = c;
        else
            t->batch_head = c;
        t->batch_tail = c;
        break;
    case SERVE_DISPATCH:
        dispatch(t, c);
        break;
    }
}

void sage__task_request(struct sage_task *t, const void *data, size_t len)
{
    request(t, data, len, SERVE_DISPATCH);
}

void sage__task_request_sync(struct sage_task *t, const void *data, size_t len)
{
    request(t, data, len, SERVE_HERE);
}

static void on_request(void *arg, const void *data, size_t len)
{
    request(arg, data, len, SERVE_BATCH); /* the listener's drain */
}

static void dispatch_batch(struct sage_task *t)
{
    struct sage_call *c = t->batch_head, *next;

    t->batch_head = t->batch_tail = NULL;
    for (; c; c = next) {
        next = c->next;
        c->next = NULL;
        dispatch(t, c);
    }
}

/* wait_room waits (at most a heartbeat) until fewer than max_workers calls
 * run; returns how many more may start (0 if it is still full). */
static size_t wait_room(struct sage_task *t)
{
    uint32_t running = atomic_load_explicit(&t->running, memory_order_acquire);

    if (running < t->max_workers)
        return t->max_workers - running;
    pthread_mutex_lock(&t->wlock);
    atomic_store_explicit(&t->listener_waiting, 1, memory_order_seq_cst);
    running = atomic_load_explicit(&t->running, memory_order_seq_cst);
    if (running >= t->max_workers && !t->wstop) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += HEARTBEAT_MS / 1000;
        pthread_cond_timedwait(&t->room, &t->wlock, &ts);
    }
    atomic_store_explicit(&t->listener_waiting, 0, memory_order_relaxed);
    pthread_mutex_unlock(&t->wlock);
    running = atomic_load_explicit(&t->running, memory_order_acquire);
    return running < t->max_workers ? t->max_workers - running : 0;
}

void sage__listener_wait_free(struct sage_task *t)
{
    while (wait_room(t) == 0 && !atomic_load_explicit(&t->draining, memory_order_acquire))
        ;
}

void sage__listener_room(struct sage_task *t)
{
    /* seq_cst pairs with wait_room's: either it sees the lower count or we
     * see it waiting */
    if (atomic_load_explicit(&t->listener_waiting, memory_order_seq_cst)) {
        pthread_mutex_lock(&t->wlock);
        pthread_cond_signal(&t->room);
        pthread_mutex_unlock(&t->wlock);
    }
}

static void *listener_main(void *arg)
{
    struct sage_task *t = arg;

    for (;;) {
        size_t n = 0, room;
        sage_err r;
        int64_t now;

        room = wait_room(t);
        /* no free slot after a heartbeat's wait: stay out of the queue (a
         * max of 0 would mean "all") unless stopping, when it must drain */
        if (room == 0 && !atomic_load_explicit(&t->draining, memory_order_acquire))
            r = SAGE_ETIMEDOUT;
        else
            r = sage_queue_drain(t->rq, on_request, t, room && room < BATCH ? room : BATCH,
                                 HEARTBEAT_MS, &n);
        now = sage__wall_coarse_ns();

        dispatch_batch(t);
        if (now - t->last_heartbeat_ns > 250 * 1000000LL) {
            atomic_store_explicit(&t->reg->heartbeat_ns, now, memory_order_relaxed);
            t->last_heartbeat_ns = now;
        }
        if (r == SAGE_OK || r == SAGE_ETIMEDOUT)
            continue;
        if (r == SAGE_ECLOSED)
            break; /* stopping, and everything queued was answered */
        /* a corrupt queue (a peer scribbled on it): nothing more can be
         * trusted from it; report and stop listening */
        sage__task_drop(t, "request queue failed: %s (%s)", sage_errname(r), sage_errdetail());
        atomic_store_explicit(&t->reg->state, SAGE_STATE_FAILED, memory_order_release);
        atomic_store_explicit(&t->state, SAGE_STATE_FAILED, memory_order_release);
        break;
    }
    return NULL;
}

sage_err sage__listener_start(struct sage_task *t)
{
    int e = pthread_create(&t->listener, NULL, listener_main, t);

    if (e != 0)
        return SAGE_SETERR(SAGE_ESYS, "task '%s': cannot start its listener thread: %s", t->name,
                           strerror(e));
    t->listener_started = true;
    return SAGE_OK;
}

void sage__listener_join(struct sage_task *t)
{
    if (t->listener_started) {
        pthread_join(t->listener, NULL);
        t->listener_started = false;
    }
}
