/*
 * listener.c - how requests come into a task: the listener thread that
 * drains a pull transport's queue in batches, and the callbacks a push
 * transport calls from its own threads; both decode, then run or dispatch
 * each call.
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
 * - The listener wakes at least as often as the transport's tick asks (a
 *   second, or less while callers' queues are cached) to prove it is alive
 *   (the heartbeat) and let the transport do its housekeeping.
 * - Stop shuts the queue down: the drain delivers what is left, then
 *   returns SAGE_ECLOSED, and the listener exits. A queue closed by anyone
 *   else, or found corrupt, fails the task, with the reason in its status.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/err_internal.h"
#include "platform/proc.h"
#include "platform/clock.h"
#include "runtime/task_internal.h"
#include "value/arena.h"
#include "wire/salvage.h"

#define INLINE_NS (20 * 1000)
#define HEARTBEAT_MS 1000
#define BATCH 64

static void dispatch(struct sage_task *t, struct sage_call *c)
{
    uint32_t running = atomic_fetch_add_explicit(&t->running, 1, memory_order_acq_rel) + 1;
    int64_t typical = c->method ? atomic_load_explicit(&c->method->ewma_ns, memory_order_relaxed) : 0;
    /* -1: never run yet; a shared dedupe store costs round trips: workers */
    bool fast = typical >= 0 && typical < INLINE_NS && !t->shared_dedupe;

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

/* answer_malformed answers a request that could not be decoded, if who
 * asked can still be told; else drops it with the reason */
static void answer_malformed(struct sage_task *t, struct sage_call *c, const struct sage__tp_req *r,
                             sage_err err)
{
    char why[256];
    const char *to = NULL;

    snprintf(why, sizeof why, "malformed request (%s): %s", sage_errname(err), sage_errdetail());
    atomic_fetch_add_explicit(&t->fig->malformed, 1, memory_order_relaxed);
    /* the envelope's reply-to if it can be read, else the transport's */
    memset(&c->req, 0, sizeof c->req);
    if (sage__wire_req_salvage(r->bytes, r->len, c->arena, &c->req) == SAGE_OK &&
        c->req.reply_to_len > 0)
        to = c->req.reply_to;
    else if (r->fallback_reply && r->fallback_reply[0])
        to = r->fallback_reply;
    if (to == NULL) {
        sage__task_drop(t, "%s; no reply-to to answer", why);
        sage__call_put(c);
        return;
    }
    c->reply_to = (char *)to;
    c->service = (char *)"";
    c->method_name = (char *)"";
    c->deadline_ns = -1;
    sage_call_error(c, err == SAGE_EVERSION ? SAGE_EVERSION : SAGE_EPROTO, "%s", why);
    atomic_fetch_add_explicit(&t->running, 1, memory_order_relaxed);
    sage__call_run(c); /* answers the error; expired/method paths do not apply */
}

static void request(struct sage_task *t, const struct sage__tp_req *r, enum serve how)
{
    struct sage_call *c = sage__call_get(t);
    sage_err err;

    if (c == NULL) {
        atomic_fetch_add_explicit(&t->fig->malformed, 1, memory_order_relaxed);
        sage__task_drop(t, "out of memory for a request of %zu bytes", r->len);
        if (r->ticket)
            t->ops->release(t->server, r);
        return;
    }
    c->recv_ns = sage__now_ns();
    c->tp = *r;
    if (r->req) { /* in process: the values as the caller gave them */
        c->req = *r->req;
        c->tp_held = true;
    } else if ((err = sage__wire_req_decode(r->bytes, r->len, c->arena, &c->req)) != SAGE_OK) {
        answer_malformed(t, c, r, err);
        return;
    }
    c->tp.bytes = NULL; /* borrowed only during the hand-in, like the reply address: */
    c->tp.fallback_reply = NULL;
    if (c->req.reply_to_len == 0 && r->fallback_reply && r->fallback_reply[0])
        c->tp.fallback_reply = sage__arena_strndup(c->arena, r->fallback_reply,
                                                   strlen(r->fallback_reply)); /* NULL: none */
    /* the decoder NUL-terminates every string it copies into the arena */
    c->service = (char *)c->req.service;
    c->method_name = (char *)c->req.method;
    c->reply_to = (char *)c->req.reply_to;
    if (c->req.timeout_ms) {
        /* the caller's time left, counted from its send by the wall clocks
         * (its and ours: on this host one clock; from elsewhere trusted up
         * to the transport's skew), never beyond its receipt here */
        int64_t budget = (int64_t)c->req.timeout_ms * 1000000;

        if (c->req.sent_ns) {
            int64_t age = sage__wall_coarse_ns() - (int64_t)c->req.sent_ns;

            if (age > r->skew_ns)
                budget -= age - r->skew_ns;
        }
        c->deadline_ns = c->recv_ns + budget;
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

void sage__task_on_request(void *arg, const struct sage__tp_req *r, enum sage__tp_mode mode)
{
    request(arg, r, mode == SAGE__TP_RUN_HERE ? SERVE_HERE : SERVE_DISPATCH);
}

static void on_record(void *arg, const void *data, size_t len)
{
    struct sage_task *t = arg;
    struct sage__tp_req r;
    sage_err err = t->ops->unwrap(t->server, data, len, &r);

    if (err != SAGE_OK) {
        atomic_fetch_add_explicit(&t->fig->malformed, 1, memory_order_relaxed);
        sage__task_drop(t, "unreadable request record: %s", sage_errdetail());
        return;
    }
    request(t, &r, SERVE_BATCH); /* the listener's drain */
}

static void dispatch_batch(struct sage_task *t)
{
    struct sage_call *c = t->batch_head, *next;

    t->batch_head = t->batch_tail = NULL;
    for (; c; c = next) {
        next = c->next;
        c->next = NULL;
        /* direct calls may have taken slots since the drain counted them */
        sage__task_wait_room(t);
        dispatch(t, c);
    }
}

/* wait_room waits (at most wait_ms) until fewer than max_workers calls
 * run; returns how many more may start (0 if it is still full). */
static size_t wait_room(struct sage_task *t, int wait_ms)
{
    uint32_t running = atomic_load_explicit(&t->running, memory_order_acquire);

    if (running < t->max_workers)
        return t->max_workers - running;
    pthread_mutex_lock(&t->wlock);
    atomic_store_explicit(&t->listener_waiting, 1, memory_order_seq_cst);
    running = atomic_load_explicit(&t->running, memory_order_seq_cst);
    if (running >= t->max_workers && !t->wstop &&
        !atomic_load_explicit(&t->draining, memory_order_acquire)) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&t->room, &t->wlock, &ts);
    }
    atomic_store_explicit(&t->listener_waiting, 0, memory_order_relaxed);
    pthread_mutex_unlock(&t->wlock);
    running = atomic_load_explicit(&t->running, memory_order_acquire);
    return running < t->max_workers ? t->max_workers - running : 0;
}

void sage__task_wait_room(void *arg)
{
    struct sage_task *t = arg;

    while (wait_room(t, HEARTBEAT_MS) == 0 &&
           !atomic_load_explicit(&t->draining, memory_order_acquire))
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

/* fail_task: the request queue cannot be trusted or used any more */
static void fail_task(struct sage_task *t, const char *why)
{
    sage__task_drop(t, "%s", why);
    sage__fig_set_state(t->fig, SAGE_STATE_FAILED, why);
    atomic_store_explicit(&t->state, SAGE_STATE_FAILED, memory_order_release);
}

static void *listener_main(void *arg)
{
    struct sage_task *t = arg;
    sage_queue *q = t->ops->serve_queue(t->server);
    int tick_ms = HEARTBEAT_MS;
    char why[256];

    sage__thread_name("sage-listen");
    for (;;) {
        size_t n = 0, room;
        sage_err r;
        int64_t now;

        room = wait_room(t, tick_ms);
        /* no free slot after a tick's wait: stay out of the queue (a max
         * of 0 would mean "all") unless stopping, when it must drain */
        if (room == 0 && !atomic_load_explicit(&t->draining, memory_order_acquire))
            r = SAGE_ETIMEDOUT;
        else
            r = sage_queue_drain(&n, q, on_record, t, room && room < BATCH ? room : BATCH, tick_ms);
        dispatch_batch(t);
        now = sage__wall_coarse_ns();
        if (now - t->last_heartbeat_ns > 250 * 1000000LL) {
            atomic_store_explicit(&t->fig->heartbeat_ns, now, memory_order_relaxed);
            t->last_heartbeat_ns = now;
            tick_ms = t->ops->tick(t->server, sage__now_ns());
            if (tick_ms <= 0 || tick_ms > HEARTBEAT_MS)
                tick_ms = HEARTBEAT_MS;
        }
        if (r == SAGE_OK || r == SAGE_ETIMEDOUT)
            continue;
        if (r == SAGE_ECLOSED && atomic_load_explicit(&t->draining, memory_order_acquire))
            break; /* stopping, and everything queued was answered */
        if (r == SAGE_ECLOSED)
            snprintf(why, sizeof why, "request queue closed by another process: no calls can reach it");
        else
            snprintf(why, sizeof why, "request queue failed: %s (%s)", sage_errname(r),
                     sage_errdetail());
        fail_task(t, why);
        break;
    }
    atomic_store_explicit(&t->listener_done, 1, memory_order_release);
    return NULL;
}

sage_err sage__listener_start(struct sage_task *t)
{
    int e;

    atomic_store_explicit(&t->listener_done, 0, memory_order_relaxed);
    e = pthread_create(&t->listener, NULL, listener_main, t);
    if (e != 0)
        return SAGE_SETERR(SAGE_ESYS, "task '%s': cannot start its listener thread: %s", t->name,
                           strerror(e));
    t->listener_started = true;
    return SAGE_OK;
}

bool sage__listener_join(struct sage_task *t, int64_t timeout_ms)
{
    struct timespec ts;
    int e;

    if (!t->listener_started)
        return true;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(timeout_ms / 1000);
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    e = pthread_timedjoin_np(t->listener, NULL, &ts);
    if (e == ETIMEDOUT) {
        pthread_detach(t->listener);
        t->listener_started = false;
        return false;
    }
    t->listener_started = false;
    return true;
}
