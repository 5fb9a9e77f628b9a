/*
 * manager.c - sage_manager: its transports, its inbox, and the completion
 * thread.
 *
 * Design notes
 * - Transports. The manager opens one client per transport it may use:
 *   local (services of its environment), shm (services of this machine;
 *   its client owns the inbox), nats (when a cluster is configured). It
 *   reaches them only through the transport table.
 * - One completion thread per manager. It drains the inbox (answers from
 *   other processes, control records), fires timers (timeouts, retries),
 *   sweeps idle destinations, and runs every user callback: futures
 *   completed on any other thread queue their callbacks here (future.c).
 *   So a callback runs on this thread, never inside a call of the user's,
 *   never on a transport's thread - unless the user asks for it with
 *   sage_manager_poll (below).
 * - Polling. sage_manager_poll is caller-runs for asynchronous calls: the
 *   polling thread takes the drain token like a synchronous caller (the
 *   completion thread steps aside the same way), drains one batch with
 *   `completing` set to the manager, so the callbacks of what it completes
 *   are queued without a poke, and runs the queued callbacks before it
 *   returns. Callbacks run one at a time whoever runs them (cb_run_lock); a
 *   callback that polls leaves the queue to the loop already running it.
 * - Caller-runs. An answer relayed by the completion thread to a
 *   synchronous caller would cross one more thread than needed: on 2 CPUs
 *   that means a kernel wake-up (tens of microseconds) per call. So a
 *   thread waiting in call_sync for an answer due in the inbox drains the
 *   inbox itself, completing every future it finds (its own among them;
 *   the others' callbacks still go to the completion thread). A token (rx)
 *   lets one thread drain at a time. The completion thread steps aside
 *   while synchronous callers are active and for STEP_ASIDE_NS after the
 *   last one, then drains again. A caller that finds the token held by the
 *   completion thread pokes it with an empty record, so it leaves its
 *   drain and steps aside.
 * - An inbox found corrupt (its drain fails with SAGE_EPROTO: a peer
 *   scribbled on it) is replaced by a fresh one, and every call waiting
 *   for an answer there fails with SAGE_EPROTO (or is retried); timers and
 *   everything else go on.
 * - Close: no new calls; the transports that complete calls on their own
 *   threads close first; the completion thread fails what is pending
 *   (SAGE_ECLOSED), runs the callbacks, and exits; the inbox goes last.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/proc.h"
#include "base/name.h"
#include "platform/clock.h"
#include "platform/futex.h"
#include "queue/drain.h"
#include "runtime/manager_internal.h"

#define DEFAULT_MAX_RESPONSE (1u << 20)
#define HOUSEKEEPING_MS 1000
#define STEP_ASIDE_NS (5 * 1000 * 1000LL)

void sage_manager_opts_init(sage_manager_opts *o)
{
    sage_call_conf cc;

    sage_call_conf_init(&cc); /* the defaults live in one place */
    memset(o, 0, sizeof *o);
    o->timeout_ms = cc.timeout_ms;
    o->retries = cc.retries;
    o->retry_backoff_ms = cc.retry_backoff_ms;
    o->hedge_after_ms = cc.hedge_after_ms;
    o->idle_close_ms = cc.idle_close_ms;
    o->max_response = DEFAULT_MAX_RESPONSE;
    o->max_pending = 1u << 20;
}

const char *sage_manager_ns(const sage_manager *m)
{
    return m ? m->ns : "";
}

/* ----------------------------------------------------------- transports */

static bool post(sage_manager *m, const void *data, size_t len)
{
    if (m->inbox_ops)
        return m->inbox_ops->client_post(m->inbox_client, data, len) == SAGE_OK;
    return sage_queue_send(m->own_inbox, data, len, 0) == SAGE_OK;
}

/* on_answer: an answer from a transport's own thread. A synchronous
 * caller waits for it: complete it here. An asynchronous call's goes to
 * the completion thread, which runs its callbacks as it completes it. */
static void on_answer(void *arg, const void *data, size_t len)
{
    sage_manager *m = arg;
    struct sage_future *f;
    uint64_t id;
    int kind;

    if (sage__wire_peek(data, len, &kind, &id) == SAGE_OK && kind == SAGE__WIRE_RESPONSE &&
        (f = sage__fut_lookup(m, id)) != NULL && f->async && post(m, data, len))
        return;
    sage__mgr_on_answer(m, data, len);
}

bool sage__mgr_post_finish(sage_manager *m, uint64_t id)
{
    struct sage__tp_event ev = {SAGE__TP_FINISH, id, SAGE_OK, NULL};
    struct sage__tp_ctl ctl;

    return post(m, &ctl, sage__tp_ctl_make(&ctl, &ev));
}

static void on_value(void *arg, const sage__resp *resp)
{
    sage__mgr_on_value(arg, resp);
}

static void on_event(void *arg, sage_transport from, const struct sage__tp_event *ev)
{
    sage__mgr_event(arg, (int)from, ev);
}

static sage_err open_client(sage_manager *m, sage_transport kind)
{
    const struct sage__tp_ops *ops = sage__tp_for(kind);
    struct sage__tp_client_conf conf;

    if (ops == NULL || ops->client_open == NULL)
        return SAGE_SETERR(SAGE_ENOTSUP, "transport %s is not built in",
                           sage_transport_name(kind));
    memset(&conf, 0, sizeof conf);
    conf.ns = m->ns;
    conf.max_response = m->max_response;
    conf.cluster = m->has_cluster ? &m->cluster_opts : NULL;
    conf.arg = m;
    conf.on_answer = on_answer;
    conf.on_value = on_value;
    conf.on_event = on_event;
    return ops->client_open(&m->clients[kind], &conf);
}

struct sage__tp_client *sage__mgr_client(sage_manager *m, sage_transport kind)
{
    struct sage__tp_client *c;

    pthread_mutex_lock(&m->conn_lock);
    c = m->clients[kind];
    pthread_mutex_unlock(&m->conn_lock);
    return c;
}

static sage_queue *inbox(sage_manager *m)
{
    return m->inbox_ops ? m->inbox_ops->client_inbox(m->inbox_client) : m->own_inbox;
}

/* the manager whose completion thread this is, on that thread */
static _Thread_local sage_manager *completing;

/* poke wakes the completion thread: in the inbox's drain (an empty
 * record), or asleep aside */
static void poke(sage_manager *m)
{
    post(m, "", 0);
    atomic_fetch_add_explicit(&m->aside_seq, 1, memory_order_release);
    sage__futex_wake(&m->aside_seq, -1, false);
}

void sage__mgr_poke_if_later(sage_manager *m, int64_t when_ns)
{
    if (when_ns < atomic_load_explicit(&m->resp_wake_at, memory_order_acquire))
        poke(m); /* earlier than the completion thread will look */
}

/* ----------------------------------------------------------- callbacks */

void sage__mgr_defer(sage_manager *m, struct sage_future *f)
{
    pthread_mutex_lock(&m->cb_lock);
    f->cb_next = NULL;
    if (m->cb_tail)
        m->cb_tail->cb_next = f;
    else
        m->cb_head = f;
    m->cb_tail = f;
    pthread_mutex_unlock(&m->cb_lock);
    if (completing != m && !atomic_exchange_explicit(&m->cb_poked, 1, memory_order_acq_rel))
        poke(m);
}

/* the manager whose callbacks this thread is running */
static _Thread_local sage_manager *running_cbs;

/* run_callbacks runs the callbacks queued so far: the completion thread,
 * or a thread in sage_manager_poll; one at a time (cb_run_lock). A
 * callback that polls leaves the queue to the loop below it. */
static void run_callbacks(sage_manager *m)
{
    struct sage_future *f;

    if (running_cbs == m)
        return;
    pthread_mutex_lock(&m->cb_run_lock);
    running_cbs = m;
    atomic_store_explicit(&m->cb_poked, 0, memory_order_release);
    for (;;) {
        pthread_mutex_lock(&m->cb_lock);
        f = m->cb_head;
        if (f) {
            m->cb_head = f->cb_next;
            if (m->cb_head == NULL)
                m->cb_tail = NULL;
        }
        pthread_mutex_unlock(&m->cb_lock);
        if (f == NULL)
            break;
        sage__fut_run_callbacks(f);
    }
    running_cbs = NULL;
    pthread_mutex_unlock(&m->cb_run_lock);
}

/* ---------------------------------------------------------- the inbox */

static void on_record(void *arg, const void *data, size_t len)
{
    sage__mgr_on_answer(arg, data, len);
}

/* drain drains the inbox until until_ns, one batch (the token held); a
 * corrupt inbox is replaced and the calls that waited for it fail */
static sage_err drain(sage_manager *m, int64_t until_ns, size_t *np)
{
    size_t n = 0;
    sage_err r = sage__queue_drain_until(&n, inbox(m), on_record, m, 0, until_ns);

    if (np)
        *np = n;

    if (r == SAGE_EPROTO) {
        char why[300];

        snprintf(why, sizeof why, "the reply queue was corrupted (%s); its answers are lost",
                 sage_errdetail());
        if (m->inbox_ops == NULL || m->inbox_ops->client_inbox_reset(m->inbox_client) != SAGE_OK)
            atomic_store_explicit(&m->closing, 1, memory_order_release); /* nothing to receive on */
        sage__mgr_fail_inbox(m, SAGE_EPROTO, why);
    }
    return r;
}

/* pending: calls made and not yet completed. Derived, not counted: every
 * call is counted made before it is published and completed at most once,
 * so the difference is exact but for calls in flight between the loads. */
static uint64_t pending(sage_manager *m)
{
    uint64_t done = atomic_load_explicit(&m->n_completed, memory_order_acquire);
    uint64_t made = atomic_load_explicit(&m->n_calls, memory_order_acquire);

    return made > done ? made - done : 0;
}

static void housekeeping(sage_manager *m, int64_t *last_house)
{
    int64_t now = sage__now_ns();

    sage__timers_expire(m->timers, now, sage__mgr_on_timer, m);
    run_callbacks(m);
    if (now - *last_house >= (int64_t)HOUSEKEEPING_MS * 1000000) {
        sage__timers_trim(m->timers, pending(m));
        sage__conn_sweep(m, now);
        *last_house = now;
    }
}

/* rx_take / rx_give: the drain token (acquire/release order the queue's
 * consumer state between the threads that take turns draining) */
static bool rx_take(sage_manager *m)
{
    uint32_t free_ = 0;

    return atomic_compare_exchange_strong_explicit(&m->rx, &free_, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}

static void rx_give(sage_manager *m)
{
    atomic_store_explicit(&m->rx, 0, memory_order_release);
    /* seq_cst pairs with rx_wait: a sleeper either sees the new seq before
     * it sleeps, or we see it counted - and only then pay for a wake */
    atomic_fetch_add_explicit(&m->rx_seq, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&m->rx_sleepers, memory_order_seq_cst))
        sage__futex_wake(&m->rx_seq, -1, false);
}

/* rx_wait sleeps until the token is given back (seq moved) or deadline_ns */
static void rx_wait(sage_manager *m, uint32_t seq, int64_t deadline_ns)
{
    atomic_fetch_add_explicit(&m->rx_sleepers, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&m->rx_seq, memory_order_seq_cst) == seq)
        sage__futex_wait(&m->rx_seq, seq, deadline_ns, false);
    atomic_fetch_sub_explicit(&m->rx_sleepers, 1, memory_order_relaxed);
}

static void close_pending(struct sage_future *f, void *arg)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);

    (void)arg;
    if ((s & FS_MASK) == FS_PENDING && sage__fut_claim_gen(f, s >> FS_GEN_SHIFT))
        sage__fut_complete(f, SAGE_ECLOSED, "the manager closed");
}

static void *resp_main(void *arg)
{
    sage_manager *m = arg;
    int64_t last_house = sage__now_ns();

    sage__thread_name("sage-complete");
    completing = m;
    while (!atomic_load_explicit(&m->stopping, memory_order_acquire)) {
        int64_t now = sage__now_ns(), next = sage__timers_next(m->timers), wait_ns;
        sage_err r;

        wait_ns = (int64_t)HOUSEKEEPING_MS * 1000000;
        if (next >= 0 && next - now < wait_ns)
            wait_ns = next > now ? next - now : 0;
        /* rx_last_sync is on the coarse clock: compare like with like */
        if (atomic_load_explicit(&m->rx_want, memory_order_acquire) > 0 ||
            sage__now_coarse_ns() - atomic_load_explicit(&m->rx_last_sync, memory_order_relaxed) <
                STEP_ASIDE_NS ||
            !rx_take(m)) {
            /* synchronous callers drain: stay aside until they have been
             * quiet for STEP_ASIDE_NS (nobody wakes us for that: a timed
             * sleep), keeping the timers and the callbacks */
            int64_t until = atomic_load_explicit(&m->rx_last_sync, memory_order_relaxed) +
                            STEP_ASIDE_NS; /* early by a tick at worst: it looks again */
            uint32_t aside = atomic_load_explicit(&m->aside_seq, memory_order_acquire);

            if (until <= now)
                until = now + STEP_ASIDE_NS / 5;
            if (now + wait_ns < until)
                until = now + wait_ns;
            atomic_store_explicit(&m->resp_wake_at, until, memory_order_release);
            if (atomic_load_explicit(&m->cb_poked, memory_order_acquire) == 0)
                sage__futex_wait(&m->aside_seq, aside, until, false);
            housekeeping(m, &last_house);
            continue;
        }
        atomic_store_explicit(&m->resp_wake_at, now + wait_ns, memory_order_release);
        atomic_store_explicit(&m->resp_draining, 1, memory_order_seq_cst);
        /* a caller that arrived between our checks and the flag store
         * pokes only if it sees the flag: look once more */
        if (atomic_load_explicit(&m->rx_want, memory_order_seq_cst) > 0)
            r = SAGE_OK;
        else
            r = drain(m, now + wait_ns, NULL); /* to the ns: a hedge is due on time */
        atomic_store_explicit(&m->resp_draining, 0, memory_order_relaxed);
        rx_give(m);
        (void)r;
        housekeeping(m, &last_house);
    }
    /* closing: what is pending fails, every callback runs, then we go */
    sage__fut_foreach(m, close_pending, NULL);
    run_callbacks(m);
    return NULL;
}

void sage__mgr_sync_drain(sage_manager *m, struct sage_future *f, int64_t deadline_ns)
{
    atomic_fetch_add_explicit(&m->rx_want, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&m->resp_draining, memory_order_seq_cst))
        poke(m); /* the completion thread steps aside */
    while (!sage_future_done(f)) {
        uint32_t seq = atomic_load_explicit(&m->rx_seq, memory_order_acquire);
        int64_t now = sage__now_coarse_ns(); /* a few ms late at worst */

        if (deadline_ns >= 0 && now >= deadline_ns)
            break;
        if (rx_take(m)) {
            int64_t until = sage__now_ns() + 1000000000LL; /* a second at a time */

            if (deadline_ns >= 0 && deadline_ns < until)
                until = deadline_ns;
            if (!sage_future_done(f))
                drain(m, until, NULL);
            atomic_store_explicit(&m->rx_last_sync, sage__now_coarse_ns(), memory_order_relaxed);
            rx_give(m);
        } else {
            /* another thread drains: it completes our future too; wait for
             * it to give the token back (or finish a batch) */
            int64_t until = now + 1000000; /* and look at our future each ms */

            if (deadline_ns >= 0 && deadline_ns < until)
                until = deadline_ns;
            if (!sage_future_done(f))
                rx_wait(m, seq, until);
        }
    }
    atomic_fetch_sub_explicit(&m->rx_want, 1, memory_order_seq_cst);
}

sage_err sage_manager_poll(size_t *countp, sage_manager *m, int timeout_ms)
{
    sage_manager *was = completing;
    int64_t until = 0; /* 0: look once */
    size_t n = 0;

    if (countp)
        *countp = 0;
    if (m == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_manager_poll: m is NULL");
    if (timeout_ms < 0)
        until = -1;
    else if (timeout_ms > 0)
        until = sage__now_ns() + (int64_t)timeout_ms * 1000000;
    atomic_fetch_add_explicit(&m->rx_want, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&m->resp_draining, memory_order_seq_cst))
        poke(m); /* the completion thread steps aside */
    for (;;) {
        uint32_t seq = atomic_load_explicit(&m->rx_seq, memory_order_acquire);
        int64_t now;

        if (rx_take(m)) {
            /* the callbacks of the calls completed here run below: no poke */
            completing = m;
            drain(m, until, &n);
            completing = was;
            atomic_store_explicit(&m->rx_last_sync, sage__now_coarse_ns(), memory_order_relaxed);
            rx_give(m);
            break;
        }
        /* another thread drains: it completes the calls; wait for its batch */
        now = sage__now_ns();
        if (until == 0 || (until > 0 && now >= until))
            break;
        rx_wait(m, seq, until > 0 && until < now + 1000000 ? until : now + 1000000);
        if (atomic_load_explicit(&m->rx_seq, memory_order_acquire) != seq)
            break;
    }
    atomic_fetch_sub_explicit(&m->rx_want, 1, memory_order_seq_cst);
    if (n > 0) /* what completed here, and what a poke (a record) announced */
        run_callbacks(m);
    if (countp)
        *countp = n;
    return SAGE_OK;
}

/* ----------------------------------------------------------- lifecycle */

sage_err sage_manager_new(sage_manager **mp, const sage_manager_opts *opts)
{
    sage_manager_opts defaults;
    const char *ns;
    sage_manager *m;
    sage_err r;

    if (mp == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_manager_new: mp is NULL");
    if (opts == NULL) {
        sage_manager_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->timeout_ms == 0 || opts->max_response < 64 || opts->max_response > (256u << 20) ||
        opts->max_pending < 1 || opts->retry_backoff_ms < 0 || opts->idle_close_ms < 0 ||
        opts->hedge_after_ms < 0)
        return SAGE_SETERR(SAGE_EINVAL, "sage_manager_new: option out of range");
    /* checked before it is copied: a copy would cut a long one short */
    ns = opts->ns ? opts->ns : opts->env ? sage_env_ns(opts->env) : "default";
    if ((r = sage__check_name(ns, "namespace", 0)) != SAGE_OK)
        return r;
    if (opts->cluster && sage__tp_for(SAGE_TRANSPORT_NATS) == NULL)
        return SAGE_SETERR(SAGE_ENOTSUP, "sage_manager_new: cluster options, but cluster support "
                                         "is not built in (SAGE_WITH_NATS=OFF)");
    /* aligned: the counters have cache lines of their own */
    m = aligned_alloc(64, (sizeof *m + 63) / 64 * 64);
    if (m == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    memset(m, 0, sizeof *m);
    snprintf(m->ns, sizeof m->ns, "%s", ns);
    m->env = opts->env;
    m->timeout_ms = opts->timeout_ms;
    m->retries = opts->retries;
    m->retry_backoff_ms = opts->retry_backoff_ms;
    m->hedge_after_ms = opts->hedge_after_ms;
    m->idle_close_ms = opts->idle_close_ms;
    m->max_response = opts->max_response;
    m->max_pending = opts->max_pending;
    m->max_chunks = (opts->max_pending + FUT_CHUNK - 1) / FUT_CHUNK;
    m->chunks = calloc(m->max_chunks, sizeof *m->chunks);
    atomic_init(&m->resp_wake_at, INT64_MAX);
    pthread_mutex_init(&m->grow_lock, NULL);
    pthread_mutex_init(&m->conn_lock, NULL);
    pthread_mutex_init(&m->cb_lock, NULL);
    pthread_mutex_init(&m->cb_run_lock, NULL);
    if (m->chunks == NULL ||
        (r = sage__timers_new(&m->timers, sage__mgr_timer_stale, m)) != SAGE_OK) {
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        goto fail;
    }
    if (opts->cluster) {
        if ((r = sage__cluster_opts_copy(&m->cluster_opts, &m->cluster_mem, opts->cluster)) !=
            SAGE_OK)
            goto fail;
        m->has_cluster = true;
    }
    /* every transport a name may be found through, and the local one for
     * the environment; the first to offer an inbox gives it */
    for (int k = 0; k < SAGE__TP_KINDS; k++) {
        const struct sage__tp_ops *ops = sage__tp_for((sage_transport)k);

        if (ops == NULL || (ops->remote && !m->has_cluster))
            continue;
        if ((r = open_client(m, (sage_transport)k)) != SAGE_OK)
            goto fail;
        if (m->inbox_ops == NULL && ops->client_inbox) {
            m->inbox_ops = ops;
            m->inbox_client = m->clients[k];
        }
    }
    if (m->inbox_ops == NULL) {
        sage_queue_opts qo;

        sage_queue_opts_init(&qo);
        qo.max_msg = m->max_response;
        qo.capacity = 4 * m->max_response;
        if ((r = sage_queue_open(&m->own_inbox, NULL, &qo)) != SAGE_OK)
            goto fail;
    }
    if (pthread_create(&m->resp_thread, NULL, resp_main, m) != 0) {
        r = SAGE_SETERR(SAGE_ESYS, "cannot start the completion thread");
        goto fail;
    }
    *mp = m;
    return SAGE_OK;
fail:
    for (int k = SAGE__TP_KINDS; k-- > 0;)
        if (m->clients[k])
            sage__tp_for((sage_transport)k)->client_close(m->clients[k]);
    sage_queue_close(m->own_inbox);
    free(m->cluster_mem);
    sage__timers_free(m->timers);
    free(m->chunks);
    pthread_mutex_destroy(&m->grow_lock);
    pthread_mutex_destroy(&m->conn_lock);
    pthread_mutex_destroy(&m->cb_lock);
    pthread_mutex_destroy(&m->cb_run_lock);
    free(m);
    return r;
}

void sage_manager_free(sage_manager *m)
{
    if (m == NULL)
        return;
    atomic_store_explicit(&m->closing, 1, memory_order_release);
    sage__conn_free_all(m);
    /* transports that complete calls on their own threads: none after this */
    for (int k = SAGE__TP_KINDS; k-- > 0;)
        if (m->clients[k] && m->clients[k] != m->inbox_client) {
            sage__tp_for((sage_transport)k)->client_close(m->clients[k]);
            m->clients[k] = NULL;
        }
    /* the completion thread fails what is pending, runs the callbacks, goes */
    atomic_store_explicit(&m->stopping, 1, memory_order_release);
    poke(m);
    pthread_join(m->resp_thread, NULL);
    for (int k = SAGE__TP_KINDS; k-- > 0;)
        if (m->clients[k])
            sage__tp_for((sage_transport)k)->client_close(m->clients[k]);
    sage_queue_close(m->own_inbox);
    free(m->cluster_mem);
    sage__fut_free_all(m);
    sage__timers_free(m->timers);
    pthread_mutex_destroy(&m->grow_lock);
    pthread_mutex_destroy(&m->conn_lock);
    pthread_mutex_destroy(&m->cb_lock);
    pthread_mutex_destroy(&m->cb_run_lock);
    free(m);
}

/* ------------------------------------------------------------- figures */

sage_err sage_manager_lookup(sage_endpoint *ep, sage_manager *m, const char *service)
{
    struct sage__conn *c = NULL;
    sage_err r;

    if (m == NULL || service == NULL || ep == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_manager_lookup: invalid argument");
    if ((r = sage__conn_get(m, service, &c)) != SAGE_OK)
        return r;
    memset(ep, 0, sizeof *ep);
    ep->transport = c->info.transport;
    snprintf(ep->address, sizeof ep->address, "%s", c->info.address);
    ep->pid = c->info.pid;
    sage__conn_put(m, c);
    return SAGE_OK;
}

sage_err sage_manager_stats_read(sage_manager_stats *st, sage_manager *m)
{
    struct sage__conn *c;

    if (m == NULL || st == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_manager_stats_read: invalid argument");
    memset(st, 0, sizeof *st);
    st->calls = atomic_load(&m->n_calls);
    st->completed = atomic_load(&m->n_completed);
    st->errors = atomic_load(&m->n_errors);
    st->timeouts = atomic_load(&m->n_timeouts);
    st->retries = atomic_load(&m->n_retries);
    st->late = atomic_load(&m->n_late);
    st->malformed = atomic_load(&m->n_malformed);
    st->hedges = atomic_load(&m->n_hedges);
    st->pending = pending(m);
    pthread_mutex_lock(&m->conn_lock);
    for (c = m->conns; c; c = c->next)
        st->connections++;
    pthread_mutex_unlock(&m->conn_lock);
    return SAGE_OK;
}
