/*
 * future.c - completing futures, waiting for them, and their callbacks.
 *
 * Design notes
 * - state: PENDING -> COMPLETING -> DONE. Whoever moves PENDING to
 *   COMPLETING (an answer, a timeout, a cancel, a dead service, the manager
 *   closing) is the one completer: it fills the outcome, then stores DONE
 *   with release ordering; readers acquire DONE before reading the outcome.
 *   The completer may be any thread: the completion thread, a synchronous
 *   caller draining answers, a transport's thread, a serving task's worker
 *   (in-process calls), a cancelling thread.
 * - Callbacks never run on the completer's thread (unless that is the
 *   completion thread): a user holding a lock while calling into the
 *   library must never find its callback running inside that call. The
 *   completer marks the list FIRED and, if it holds callbacks, queues the
 *   future for the manager's completion thread, which runs them in
 *   registration order. The list has a small lock bit (CB_LOCK): a
 *   registrant either appends before FIRED (the completion thread will run
 *   the callback) or sees FIRED and queues the future itself. QUEUED says
 *   the future is in the completion thread's queue already (it is in it
 *   once at most: the queue is linked through the future); the completion
 *   thread clears it, under the lock, when it finds no callback left.
 * - References: the user holds one from the call until sage_future_free;
 *   the callback queue holds one while the future waits in it, so a
 *   callback may free its future and the slot is reused only after the
 *   last callback ran.
 * - Waiters spin briefly (answers often come in microseconds), then set the
 *   WAITERS bit and sleep on the state word; the completer wakes them only
 *   if that bit is set.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "platform/cpu.h"
#include "platform/futex.h"
#include "platform/proc.h"
#include "runtime/manager_internal.h"
#include "value/arena.h"

#define SPIN_NS (50 * 1000)

bool sage__fut_claim_gen(struct sage_future *f, uint32_t gen)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);

    while ((s & FS_MASK) == FS_PENDING && (s >> FS_GEN_SHIFT) == (FS_GEN(gen) >> FS_GEN_SHIFT))
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, (s & ~FS_MASK) | FS_COMPLETING,
                                                  memory_order_acq_rel, memory_order_acquire))
            return true;
    return false;
}

bool sage__fut_claim(struct sage_future *f)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);

    while ((s & FS_MASK) == FS_PENDING)
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, (s & ~FS_MASK) | FS_COMPLETING,
                                                  memory_order_acq_rel, memory_order_acquire))
            return true;
    return false;
}

static uint32_t cb_lock(struct sage_future *f)
{
    uint32_t s;

    while ((s = atomic_fetch_or_explicit(&f->cb_state, CB_LOCK, memory_order_acquire)) & CB_LOCK)
        sage__cpu_relax(); /* held for a few instructions */
    return s;
}

static void cb_unlock(struct sage_future *f, uint32_t set)
{
    atomic_store_explicit(&f->cb_state, set, memory_order_release);
}

/* queue_callbacks hands f to the completion thread if it has callbacks
 * not run yet; called once FIRED is set */
static void queue_callbacks(struct sage_future *f)
{
    uint32_t s = cb_lock(f);
    bool due = f->cbs_run < f->ncbs && !(s & CB_QUEUED);

    cb_unlock(f, (s & ~CB_LOCK) | CB_FIRED | (due ? CB_QUEUED : 0));
    if (due) {
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
        sage__mgr_defer(f->m, f);
    }
}

void sage__fut_complete(struct sage_future *f, sage_err err, const char *msg)
{
    sage_manager *m = f->m;
    uint32_t old;

    f->err = err;
    f->errmsg = NULL;
    if (err != SAGE_OK) {
        const char *text = msg && msg[0] ? msg : sage_strerror(err);

        f->errmsg = sage__arena_strndup(f->arena, text, strlen(text));
        atomic_fetch_add_explicit(&m->n_errors, 1, memory_order_relaxed);
        if (err == SAGE_ETIMEDOUT)
            atomic_fetch_add_explicit(&m->n_timeouts, 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&m->n_completed, 1, memory_order_relaxed);
    /* a reference for ourselves: the user may free f as soon as DONE shows */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    old = atomic_exchange_explicit(&f->state, FS_GEN(f->id >> 32) | FS_DONE, memory_order_acq_rel);
    if (old & FS_WAITERS)
        sage__futex_wake(&f->state, -1, false);
    queue_callbacks(f);
    sage__fut_unref(f);
}

void sage__fut_run_callbacks(struct sage_future *f)
{
    for (;;) {
        uint32_t s = cb_lock(f);
        struct fut_cb cb;

        if (f->cbs_run >= f->ncbs) {
            cb_unlock(f, s & ~(CB_LOCK | CB_QUEUED));
            break;
        }
        cb = f->cbs_run < FUT_INLINE_CBS ? f->cbs[f->cbs_run]
                                         : f->more[f->cbs_run - FUT_INLINE_CBS];
        f->cbs_run++;
        cb_unlock(f, s & ~CB_LOCK);
        cb.fn(cb.arg, f); /* no lock of ours held */
    }
    sage__fut_unref(f);
}

sage_err sage_future_wait(sage_future *f, int timeout_ms)
{
    int64_t deadline = sage__deadline(timeout_ms), spin_end;

    if (f == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_future_wait: f is NULL");
    if ((atomic_load_explicit(&f->state, memory_order_acquire) & FS_MASK) == FS_DONE)
        return SAGE_OK;
    /* spin a little: an answer from a hot service takes microseconds. Not
     * for a call over NATS: its answer takes a network round trip and comes
     * on a thread of this process, which the spin would only slow down. */
    if (sage__ncpu() > 1 && !f->remote) {
        spin_end = sage__now_ns() + SPIN_NS;
        if (deadline >= 0 && deadline < spin_end)
            spin_end = deadline;
        for (unsigned i = 1;; i++) {
            if ((atomic_load_explicit(&f->state, memory_order_acquire) & FS_MASK) == FS_DONE)
                return SAGE_OK;
            sage__cpu_relax();
            if ((i & 15) == 0 && sage__now_ns() >= spin_end)
                break;
        }
    }
    for (;;) {
        uint32_t s = atomic_fetch_or_explicit(&f->state, FS_WAITERS, memory_order_acq_rel) |
                     FS_WAITERS;

        if ((s & FS_MASK) == FS_DONE)
            return SAGE_OK;
        if (sage__futex_wait(&f->state, s, deadline, false) == SAGE_ETIMEDOUT) {
            if ((atomic_load_explicit(&f->state, memory_order_acquire) & FS_MASK) == FS_DONE)
                return SAGE_OK;
            return SAGE_SETERR(SAGE_ETIMEDOUT, "call %llu not answered within %d ms",
                               (unsigned long long)f->id, timeout_ms);
        }
    }
}

bool sage_future_done(const sage_future *f)
{
    return f && (atomic_load_explicit(&f->state, memory_order_acquire) & FS_MASK) == FS_DONE;
}

sage_err sage_future_result(const sage_value **vp, sage_future *f)
{
    if (f == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_future_result: f is NULL");
    if ((atomic_load_explicit(&f->state, memory_order_acquire) & FS_MASK) != FS_DONE)
        return SAGE_SETERR(SAGE_ESTATE, "call %llu has not completed", (unsigned long long)f->id);
    if (f->err != SAGE_OK)
        return SAGE_SETERR(f->err, "%s", f->errmsg ? f->errmsg : sage_strerror(f->err));
    if (vp)
        *vp = &f->result;
    return SAGE_OK;
}

sage_err sage_future_cancel(sage_future *f)
{
    if (f == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_future_cancel: f is NULL");
    if (!sage__fut_claim(f))
        return SAGE_SETERR(SAGE_ESTATE, "call %llu has already completed",
                           (unsigned long long)f->id);
    sage__fut_complete(f, SAGE_ECANCELED, "cancelled by the caller");
    return SAGE_OK;
}

sage_err sage_future_on_done(sage_future *f, sage_future_fn fn, void *arg)
{
    uint32_t s;
    bool queue;

    if (f == NULL || fn == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_future_on_done: invalid argument");
    s = cb_lock(f);
    if (f->ncbs < FUT_INLINE_CBS) {
        f->cbs[f->ncbs] = (struct fut_cb){fn, arg};
    } else {
        uint32_t k = f->ncbs - FUT_INLINE_CBS;

        if (k == f->more_cap) {
            uint32_t cap = f->more_cap ? 2 * f->more_cap : 4;
            struct fut_cb *more = realloc(f->more, cap * sizeof *more);

            if (more == NULL) {
                cb_unlock(f, s & ~CB_LOCK);
                return SAGE_SETERR(SAGE_ENOMEM, "out of memory for a callback");
            }
            f->more = more;
            f->more_cap = cap;
        }
        f->more[k] = (struct fut_cb){fn, arg};
    }
    f->ncbs++;
    /* completed already: the completion thread runs it, queued once */
    queue = (s & CB_FIRED) != 0 && !(s & CB_QUEUED);
    cb_unlock(f, (s & ~CB_LOCK) | (queue ? CB_QUEUED : 0));
    if (queue) {
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
        sage__mgr_defer(f->m, f);
    }
    return SAGE_OK;
}

uint64_t sage_future_id(const sage_future *f)
{
    return f ? f->id : 0;
}

void sage_future_free(sage_future *f)
{
    if (f == NULL)
        return;
    if (sage__fut_claim(f))
        sage__fut_complete(f, SAGE_ECANCELED, "freed while pending");
    /* a completion in progress finishes in microseconds */
    while ((atomic_load_explicit(&f->state, memory_order_acquire) & FS_MASK) != FS_DONE)
        sage_future_wait(f, -1);
    sage__fut_unref(f);
}
