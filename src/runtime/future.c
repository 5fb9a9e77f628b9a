/*
 * future.c - completing and waiting for futures.
 *
 * Design notes
 * - state: PENDING -> COMPLETING -> DONE. Whoever moves PENDING to
 *   COMPLETING (an answer, a timeout, a cancel, a dead service, the manager
 *   closing) is the one completer: it fills the outcome, then stores DONE
 *   with release ordering; readers acquire DONE before reading the outcome.
 * - Exactly-once callback: the completer swaps cb_state to FIRED *before*
 *   storing DONE and runs the callback only if it found SET. A registrant
 *   stores fn/arg and CASes NONE -> SET; if that fails (FIRED) completion is
 *   under way and the registrant runs the callback itself once DONE shows.
 *   The completer reads fn/arg before storing DONE and touches nothing of
 *   the future after DONE but a futex wake, which is harmless on a slot
 *   already reused.
 * - Waiters spin briefly (answers often come in microseconds), then set the
 *   WAITERS bit and sleep on the state word; the completer wakes them only
 *   if that bit is set.
 */
#include <limits.h>
#include <string.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "platform/cpu.h"
#include "platform/futex.h"
#include "platform/proc.h"
#include "runtime/manager_internal.h"
#include "value/arena.h"

#define SPIN_NS (50 * 1000)

bool sage__fut_claim(struct sage_future *f)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);

    while ((s & FS_MASK) == FS_PENDING)
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, (s & ~FS_MASK) | FS_COMPLETING,
                                                  memory_order_acq_rel, memory_order_acquire))
            return true;
    return false;
}

void sage__fut_complete(struct sage_future *f, sage_err err, const char *msg)
{
    sage_manager *m = f->m;
    sage_future_fn cb;
    void *cb_arg;
    uint32_t old, cbs;

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
    /* acquire: a callback registered with SET is visible now; read it before
     * DONE, after which the future may be freed and reused */
    cbs = atomic_exchange_explicit(&f->cb_state, CB_FIRED, memory_order_acq_rel);
    cb = cbs == CB_SET ? f->cb : NULL;
    cb_arg = cbs == CB_SET ? f->cb_arg : NULL;
    old = atomic_exchange_explicit(&f->state, FS_DONE, memory_order_acq_rel);
    if (old & FS_WAITERS)
        sage__futex_wake(&f->state, -1, false);
    if (cb)
        cb(cb_arg, f);
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

int sage_future_done(const sage_future *f)
{
    return f && (atomic_load_explicit(&f->state, memory_order_acquire) & FS_MASK) == FS_DONE;
}

sage_err sage_future_result(sage_future *f, const sage_value **vp)
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

/* wait_done waits for DONE without a time limit (a completion in progress
 * finishes in microseconds). */
static void wait_done(sage_future *f)
{
    while ((atomic_load_explicit(&f->state, memory_order_acquire) & FS_MASK) != FS_DONE)
        sage_future_wait(f, -1);
}

sage_err sage_future_on_done(sage_future *f, sage_future_fn fn, void *arg)
{
    uint32_t expect = CB_NONE;

    if (f == NULL || fn == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_future_on_done: invalid argument");
    if ((atomic_load_explicit(&f->state, memory_order_acquire) & FS_MASK) == FS_DONE) {
        if (atomic_load_explicit(&f->cb_state, memory_order_acquire) == CB_SET)
            return SAGE_SETERR(SAGE_EBUSY, "a callback is already set");
        fn(arg, f);
        return SAGE_OK;
    }
    if (atomic_load_explicit(&f->cb_state, memory_order_acquire) == CB_SET)
        return SAGE_SETERR(SAGE_EBUSY, "a callback is already set");
    f->cb = fn;
    f->cb_arg = arg;
    if (atomic_compare_exchange_strong_explicit(&f->cb_state, &expect, CB_SET, memory_order_acq_rel,
                                                memory_order_acquire))
        return SAGE_OK; /* the completer will run it */
    /* completion is under way and missed our callback: run it ourselves */
    wait_done(f);
    fn(arg, f);
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
    wait_done(f);
    sage__fut_release(f);
}
