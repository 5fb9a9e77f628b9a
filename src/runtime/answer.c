/*
 * answer.c - how calls end: answers (encoded, or as values from an
 * in-process service), events that end calls without one (no responder, a
 * serving process died, a lost connection), timeouts, and retries.
 *
 * Design notes
 * - Every path claims the future first (PENDING -> COMPLETING through a CAS
 *   that also checks the slot's generation), so exactly one of them
 *   completes it; the losers count a late answer or do nothing.
 * - Retries (idempotent calls only): the party that sees a retryable
 *   failure claims the future for exclusive access, records the next
 *   attempt, and hands it back (-> PENDING) with a backoff timer; the
 *   completion thread resends when the timer fires. The same request id
 *   travels every time.
 * - Hedges (idempotent calls with hedge_after, over a transport with
 *   replicas to choose from): a timer of its own per attempt; when it fires
 *   and the attempt still waits, the same request (same id) goes to another
 *   replica; the first answer completes the call, the other finds it done
 *   and counts as late.
 * - Events ordered behind answers: a serving process's death reaches us as
 *   a control record in the inbox behind every answer it sent, so the calls
 *   it answered complete before the rest fail.
 */
#include <stdio.h>
#include <string.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "runtime/manager_internal.h"
#include "value/arena.h"

#define MAX_REDIRECTS 3

static bool retryable(sage_err e)
{
    return e == SAGE_EUNAVAILABLE || e == SAGE_EFULL || e == SAGE_ETIMEDOUT ||
           e == SAGE_ECONNECT;
}

/* back_to_pending hands a claimed future back (release: publishes every
 * field written while it was ours) */
static void back_to_pending(struct sage_future *f)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);

    atomic_store_explicit(&f->state, (s & ~FS_MASK) | FS_PENDING, memory_order_release);
}

bool sage__mgr_schedule_retry(struct sage_future *f, sage_err err)
{
    sage_manager *m = f->m;
    int64_t now = sage__now_ns(), at;
    uint32_t index, gen, attempt;

    if (!f->idempotent || f->retries_left == 0 || !retryable(err) || f->retry_req == NULL ||
        atomic_load_explicit(&m->closing, memory_order_acquire))
        return false;
    at = now + f->backoff_ns;
    if (f->deadline_ns >= 0 && at >= f->deadline_ns)
        return false; /* no time left for another attempt */
    f->retries_left--;
    attempt = atomic_load(&f->attempt) + 1;
    atomic_store_explicit(&f->attempt, attempt, memory_order_relaxed);
    f->retry_wait = true;
    f->backoff_ns *= 2;
    atomic_fetch_add_explicit(&m->n_retries, 1, memory_order_relaxed);
    /* handed back before its timer exists: a timer that fired while the
     * call was still ours would find it unclaimable and be lost */
    index = f->index;
    gen = (uint32_t)(f->id >> 32);
    back_to_pending(f);
    sage__timers_add(m->timers, index, gen, attempt, at, -1);
    sage__mgr_poke_if_later(m, at);
    return true;
}

/* fail: a failure for f seen by this thread: retry if allowed, else complete */
static void fail(struct sage_future *f, uint32_t gen, sage_err err, const char *msg)
{
    if (!sage__fut_claim_gen(f, gen))
        return; /* someone else completes it */
    if (sage__mgr_schedule_retry(f, err))
        return;
    sage__fut_complete(f, err, msg);
}

void sage__mgr_fail_id(sage_manager *m, uint64_t id, sage_err err, const char *why)
{
    struct sage_future *f = sage__fut_lookup(m, id);

    if (f)
        fail(f, (uint32_t)(id >> 32), err, why);
}

static void finish(struct sage_future *f, const sage__resp *resp);

void sage__mgr_finish_claimed(struct sage_future *f)
{
    sage__resp resp;

    memset(&resp, 0, sizeof resp);
    resp.id = f->id;
    resp.ok = f->err == SAGE_OK;
    resp.err_code = (int32_t)f->err;
    resp.err_msg = f->errmsg;
    resp.err_msg_len = f->errmsg ? strlen(f->errmsg) : 0;
    finish(f, &resp);
}

/* finish_posted finishes the call with that id, whose answer its future
 * holds already (sage__mgr_post_finish posted it here) */
static void finish_posted(sage_manager *m, uint64_t id)
{
    struct sage_future *f = sage__fut_lookup(m, id);

    /* claimed by the poster: COMPLETING, and only we may touch it */
    if (f != NULL && f->id == id)
        sage__mgr_finish_claimed(f);
}

/* the pending calls an event takes with it */
struct fail_arg {
    const struct sage__tp_event *ev;
    int kind; /* the transport the event came from (FAIL_ALL) */
    bool inbox_only;
};

static void fail_matching(struct sage_future *f, void *arg)
{
    struct fail_arg *a = arg;
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);

    if ((s & FS_MASK) != FS_PENDING || f->retry_wait)
        return;
    if (a->inbox_only ? !f->via_inbox
                      : a->ev->kind == SAGE__TP_FAIL_DEST ? f->conn_serial != a->ev->key
                                                          : f->tp_kind != a->kind)
        return;
    fail(f, s >> FS_GEN_SHIFT, a->ev->err, a->ev->why);
}

/* redirect: nobody took an attempt of the call with id. A hedged call
 * (whose attempts go to replicas of its choosing, one of which may be gone
 * since it was last seen) sends it again to another, a few times at most;
 * true if it did. (Its first attempt's replica may not be recorded yet: the
 * answer can overtake the sender.) */
static bool redirect(sage_manager *m, uint64_t id)
{
    struct sage_future *f = sage__fut_lookup(m, id);
    bool sent = false;

    if (f == NULL || !sage__fut_try_ref(f, (uint32_t)(id >> 32)))
        return false;
    if (f->hedged && atomic_fetch_add_explicit(&f->redirects, 1, memory_order_relaxed) < MAX_REDIRECTS) {
        sage__mgr_hedge(f, atomic_load_explicit(&f->attempt, memory_order_relaxed));
        sent = true;
    }
    sage__fut_unref(f);
    return sent;
}

void sage__mgr_event(sage_manager *m, int kind, const struct sage__tp_event *ev)
{
    struct fail_arg a = {ev, kind, false};

    switch (ev->kind) {
    case SAGE__TP_FAIL_ID:
        sage__mgr_fail_id(m, ev->key, ev->err, ev->why);
        break;
    case SAGE__TP_FAIL_DEST:
        sage__conn_evict_serial(m, ev->key);
        sage__fut_foreach(m, fail_matching, &a);
        break;
    case SAGE__TP_FAIL_ALL:
        sage__fut_foreach(m, fail_matching, &a);
        break;
    case SAGE__TP_FINISH:
        finish_posted(m, ev->key);
        break;
    case SAGE__TP_NOBODY:
        if (!redirect(m, ev->key))
            sage__mgr_fail_id(m, ev->key, ev->err, ev->why);
        break;
    }
}

void sage__mgr_fail_inbox(sage_manager *m, sage_err err, const char *why)
{
    struct sage__tp_event ev = {SAGE__TP_FAIL_ALL, 0, err, why};
    struct fail_arg a = {&ev, 0, true};

    sage__fut_foreach(m, fail_matching, &a);
}

/* finish completes a claimed f with the answer resp (its result already in
 * f's arena or its caller's), retrying a retryable failure */
static void finish(struct sage_future *f, const sage__resp *resp)
{
    if (resp->ok) {
        sage__fut_complete(f, SAGE_OK, NULL);
        return;
    }
    if (sage__mgr_schedule_retry(f, (sage_err)resp->err_code))
        return;
    sage__fut_complete(f, resp->err_code > 0 ? (sage_err)resp->err_code : SAGE_EPROTO,
                       resp->err_msg);
}

void sage__mgr_on_answer(sage_manager *m, const void *data, size_t len)
{
    struct sage_future *f;
    struct sage__tp_event ev;
    sage__resp resp;
    char why[256];
    uint64_t id;
    int kind;
    sage_err r;

    if (len == 0)
        return; /* a poke: the timers or the callback queue changed */
    if (sage__tp_ctl_parse(data, len, &ev, why, sizeof why)) {
        sage__mgr_event(m, m->inbox_ops ? (int)m->inbox_ops->kind : -1, &ev);
        return;
    }
    if (sage__wire_peek(data, len, &kind, &id) != SAGE_OK || kind != SAGE__WIRE_RESPONSE) {
        atomic_fetch_add_explicit(&m->n_malformed, 1, memory_order_relaxed);
        return;
    }
    f = sage__fut_lookup(m, id);
    if (f == NULL || !sage__fut_claim_gen(f, (uint32_t)(id >> 32))) {
        atomic_fetch_add_explicit(&m->n_late, 1, memory_order_relaxed);
        return; /* its caller gave up: dropped, counted */
    }
    r = sage__wire_resp_decode(data, len, f->dest ? f->dest : f->arena, &resp);
    if (r != SAGE_OK) {
        atomic_fetch_add_explicit(&m->n_malformed, 1, memory_order_relaxed);
        sage__fut_complete(f, SAGE_EPROTO, sage_errdetail());
        return;
    }
    f->result = resp.ok ? resp.result : sage_nil();
    finish(f, &resp);
}

void sage__mgr_on_value(sage_manager *m, const sage__resp *resp)
{
    struct sage_future *f = sage__fut_lookup(m, resp->id);
    sage_arena *a;
    sage_err r;

    if (f == NULL || !sage__fut_claim_gen(f, (uint32_t)(resp->id >> 32))) {
        atomic_fetch_add_explicit(&m->n_late, 1, memory_order_relaxed);
        return;
    }
    a = f->dest ? f->dest : f->arena;
    f->result = sage_nil();
    if (resp->ok && (r = sage_value_copy(&f->result, a, &resp->result)) != SAGE_OK) {
        sage__fut_complete(f, r, sage_errdetail());
        return;
    }
    if (f->async) {
        /* the completion thread finishes it and runs its callbacks there,
         * in the batch it drains: one wake-up for many answers */
        f->err = resp->ok ? SAGE_OK
                 : resp->err_code > 0 ? (sage_err)resp->err_code
                                      : SAGE_EPROTO;
        f->errmsg = resp->ok ? NULL
                             : sage__arena_strndup(f->arena, resp->err_msg ? resp->err_msg : "",
                                                   resp->err_msg ? resp->err_msg_len : 0);
        if (sage__mgr_post_finish(m, resp->id))
            return;
    }
    finish(f, resp); /* the message is the service's memory: complete copies it */
}

void sage__mgr_on_timer(void *arg, uint32_t index, uint32_t gen, uint32_t attempt)
{
    sage_manager *m = arg;
    struct sage_future *f = sage__fut_lookup(m, (uint64_t)gen << 32 | index);
    char msg[160];

    if (attempt & SAGE__HEDGE_TIMER) { /* no answer yet: another replica too */
        if (f != NULL && sage__fut_try_ref(f, gen)) {
            sage__mgr_hedge(f, attempt & ~SAGE__HEDGE_TIMER);
            sage__fut_unref(f);
        }
        return;
    }
    if (f == NULL || atomic_load_explicit(&f->attempt, memory_order_relaxed) != attempt ||
        !sage__fut_claim_gen(f, gen))
        return; /* completed, reused, or a later attempt is under way */
    if (f->retry_wait) {
        sage__mgr_resend(f);
        return;
    }
    snprintf(msg, sizeof msg, "no answer from '%s' in time (attempt %u)", f->service,
             attempt + 1);
    if (sage__mgr_schedule_retry(f, SAGE_ETIMEDOUT))
        return;
    sage__fut_complete(f, SAGE_ETIMEDOUT, msg);
}

bool sage__mgr_timer_stale(void *arg, uint32_t index, uint32_t gen, uint32_t attempt)
{
    sage_manager *m = arg;
    struct sage_future *f = sage__fut_lookup(m, (uint64_t)gen << 32 | index);
    uint32_t s;

    attempt &= ~SAGE__HEDGE_TIMER;
    if (f == NULL || atomic_load_explicit(&f->attempt, memory_order_relaxed) != attempt)
        return true;
    /* COMPLETING is not over: a claimed call may go back to PENDING with
     * this very timer (a retry scheduled, whose backoff timer is added
     * before the call is handed back) */
    s = atomic_load_explicit(&f->state, memory_order_acquire) & FS_MASK;
    return s != FS_PENDING && s != FS_COMPLETING;
}
