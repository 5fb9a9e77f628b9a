/*
 * manager.c - sage_manager: sending calls, and the response thread that
 * completes their futures.
 *
 * Design notes
 * - One path: a synchronous call is call_async plus sage_future_wait. A
 *   waiter enforces its own deadline (the future's CAS decides who
 *   completes it), so synchronous calls without retries need no timer
 *   entry; asynchronous ones and retried ones do.
 * - The response thread drains the response queue in batches, completes
 *   futures, fires due timers, and sweeps idle connections. It sleeps in the
 *   queue's drain until an answer or the next timer; a call whose deadline
 *   is earlier than the thread's planned wake pokes it with an empty message.
 * - Retries (idempotent calls only): the party that sees a retryable failure
 *   claims the future (PENDING -> COMPLETING) for exclusive access, records
 *   the next attempt, and hands it back (-> PENDING) with a backoff timer;
 *   the response thread resends when the timer fires. The same request id
 *   travels every time.
 * - All fields the response thread reads are written before the future is
 *   published PENDING with release ordering, before the request is sent.
 * - Caller-runs. Answers cross one more thread than needed if the response
 *   thread relays them to a synchronous caller: on 2 CPUs that third
 *   spinning thread means a kernel wake-up (tens of microseconds) per call.
 *   So a thread waiting in call_sync drains the response queue itself,
 *   completing every future it finds (its own among them). A token (rx)
 *   lets one thread drain at a time. The response thread steps aside while
 *   synchronous callers are active and for STEP_ASIDE_NS after the last one
 *   (so back-to-back calls never wait for it); then it drains again, for
 *   asynchronous calls. A caller that finds the token held by the response
 *   thread pokes it with an empty message, so it leaves its drain and
 *   steps aside. Callbacks therefore run on whichever thread drains.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "platform/futex.h"
#include "platform/proc.h"
#include "runtime/manager_internal.h"
#include "runtime/names.h"
#include "wire/salvage.h"

#define DEFAULT_MAX_RESPONSE (1u << 20)
#define HOUSEKEEPING_MS 1000
#define STEP_ASIDE_NS (5 * 1000 * 1000LL)

static _Atomic unsigned manager_serial;

void sage_manager_opts_init(sage_manager_opts *o)
{
    memset(o, 0, sizeof *o);
    o->timeout = 30;
    o->retries = 0;
    o->retry_backoff = 0.05;
    o->idle_close = 60;
    o->max_response = DEFAULT_MAX_RESPONSE;
    o->max_pending = 1u << 20;
}

const char *sage_manager_reply_queue(const sage_manager *m)
{
    return m ? m->rq_name : "";
}

/* ------------------------------------------------------ completion paths */

static bool retryable(sage_err e)
{
    return e == SAGE_EUNAVAILABLE || e == SAGE_EFULL || e == SAGE_ETIMEDOUT ||
           e == SAGE_ECONNECT;
}

/* schedule_retry: f is claimed (COMPLETING). If a retry is allowed, record
 * it, hand f back (PENDING) and return true; else return false (the caller
 * completes f). */
static bool schedule_retry(struct sage_future *f, sage_err err)
{
    sage_manager *m = f->m;
    int64_t now = sage__now_ns(), at;

    if (!f->idempotent || f->retries_left == 0 || !retryable(err) || f->req_bytes == NULL ||
        atomic_load_explicit(&m->closing, memory_order_acquire))
        return false;
    at = now + f->backoff_ns;
    if (f->deadline_ns >= 0 && at >= f->deadline_ns)
        return false; /* no time left for another attempt */
    f->retries_left--;
    f->attempt++;
    f->retry_wait = true;
    f->backoff_ns *= 2;
    atomic_fetch_add_explicit(&m->n_retries, 1, memory_order_relaxed);
    sage__timers_add(m->timers, f->index, (uint32_t)(f->id >> 32), f->attempt, at, -1);
    /* back to PENDING: release publishes the fields above */
    atomic_store_explicit(&f->state, FS_PENDING | (atomic_load(&f->state) & FS_WAITERS),
                          memory_order_release);
    return true;
}

/* fail: a failure for f seen by this thread: retry if allowed, else complete */
static void fail(struct sage_future *f, sage_err err, const char *msg)
{
    if (!sage__fut_claim(f))
        return; /* someone else completes it */
    if (schedule_retry(f, err))
        return;
    sage__fut_complete(f, err, msg);
}

/* fail_arg: the pending calls a lost connection takes with it: those sent
 * through the connection with that serial, or (serial 0, which no
 * connection has) every call sent over the cluster */
struct fail_arg {
    uint64_t serial;
    sage_err err;
    const char *why;
};

static void fail_if_through(struct sage_future *f, void *arg)
{
    struct fail_arg *a = arg;

    if ((atomic_load_explicit(&f->state, memory_order_acquire) & FS_MASK) == FS_PENDING &&
        !f->retry_wait && (a->serial ? f->conn_serial == a->serial : f->remote))
        fail(f, a->err, a->why);
}

void sage__mgr_fail_conn(sage_manager *m, uint64_t serial, sage_err err, const char *why)
{
    struct fail_arg a = {serial, err, why};

    sage__fut_foreach(m, fail_if_through, &a);
}

void sage__mgr_fail_remote(sage_manager *m, sage_err err, const char *why)
{
    sage__mgr_fail_conn(m, 0, err, why);
}

/* drop_dead: a send found c dead (sage__conn_transmit). Its sender has
 * settled its own call; now c leaves the cache, so the next call resolves
 * afresh, and its other pending calls fail or retry. Keeps the sender's
 * detail, which callbacks run by the kill could overwrite. */
static void drop_dead(sage_manager *m, struct sage__conn *c)
{
    char why[256];

    snprintf(why, sizeof why, "%s", sage_errdetail());
    sage__conn_kill(m, c, SAGE_EUNAVAILABLE, why);
    SAGE_SETERR(SAGE_EUNAVAILABLE, "%s", why);
}

/* resend: a timer's thread sends f's next attempt. f is claimed. f goes
 * back to PENDING before the send, as in start(): the answer may reach
 * another draining thread before the send returns, and a claimed future
 * would drop it as late. Once PENDING, f may complete and be reused at any
 * moment, so the send works from a copy and a failure names f by its id. */
static void resend(struct sage_future *f)
{
    sage_manager *m = f->m;
    struct sage__conn *c = NULL;
    int64_t now = sage__now_ns(), span = -1;
    uint64_t id = f->id;
    size_t len = f->req_len;
    void *copy;
    bool dead = false;
    sage_err r;

    f->retry_wait = false;
    r = sage__conn_get(m, f->service, &c);
    if (r == SAGE_OK && (copy = malloc(len)) == NULL) {
        sage__conn_put(m, c);
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    }
    if (r != SAGE_OK) {
        if (!schedule_retry(f, r))
            sage__fut_complete(f, r, sage_errdetail());
        return;
    }
    memcpy(copy, f->req_bytes, len);
    f->conn_serial = c->serial;
    if (f->deadline_ns >= 0) {
        span = (f->deadline_ns - now) / (int64_t)(f->retries_left + 1);
        f->attempt_deadline_ns = now + span;
        sage__timers_add(m->timers, f->index, (uint32_t)(id >> 32), f->attempt,
                         f->attempt_deadline_ns, span);
    }
    if (!c->remote) /* a fresh send time, so the service counts this attempt's wait */
        sage__wire_req_restamp(copy, len, (uint64_t)now);
    atomic_store_explicit(&f->state, FS_PENDING | (atomic_load(&f->state) & FS_WAITERS),
                          memory_order_release);
    /* no wait for room: this is the response thread */
    r = sage__conn_transmit(m, c, copy, len, 0, &dead);
    free(copy);
    if (r != SAGE_OK) /* unless its deadline timer or an answer got there first */
        sage__mgr_fail_id(m, id, r, sage_errdetail());
    if (dead)
        drop_dead(m, c);
    sage__conn_put(m, c);
}

static void on_timer(void *arg, uint32_t index, uint32_t gen, uint32_t attempt)
{
    sage_manager *m = arg;
    struct sage_future *f = sage__fut_lookup(m, (uint64_t)gen << 32 | index);
    char msg[160];

    if (f == NULL || f->attempt != attempt || !sage__fut_claim(f))
        return; /* completed, reused, or a later attempt is under way */
    if (f->retry_wait) {
        resend(f);
        return;
    }
    snprintf(msg, sizeof msg, "no answer from '%s' in time (attempt %u)", f->service,
             f->attempt + 1);
    if (schedule_retry(f, SAGE_ETIMEDOUT))
        return;
    sage__fut_complete(f, SAGE_ETIMEDOUT, msg);
}

static bool timer_stale(void *arg, uint32_t index, uint32_t gen, uint32_t attempt)
{
    sage_manager *m = arg;
    struct sage_future *f = sage__fut_lookup(m, (uint64_t)gen << 32 | index);

    return f == NULL || f->attempt != attempt ||
           (atomic_load_explicit(&f->state, memory_order_acquire) & FS_MASK) != FS_PENDING;
}

void sage__mgr_fail_id(sage_manager *m, uint64_t id, sage_err err, const char *why)
{
    struct sage_future *f = sage__fut_lookup(m, id);

    if (f && (atomic_load_explicit(&f->state, memory_order_acquire) & FS_MASK) == FS_PENDING)
        fail(f, err, why);
}

void sage__mgr_on_response(sage_manager *m, const void *data, size_t len)
{
    struct sage_future *f;
    sage__resp resp;
    uint64_t id;
    int kind;
    sage_err r;

    if (len == 0)
        return; /* a poke: the timers changed */
    if (sage__wire_peek(data, len, &kind, &id) != SAGE_OK || kind != SAGE__WIRE_RESPONSE) {
        atomic_fetch_add_explicit(&m->n_malformed, 1, memory_order_relaxed);
        return;
    }
    f = sage__fut_lookup(m, id);
    if (f == NULL || !sage__fut_claim(f)) {
        atomic_fetch_add_explicit(&m->n_late, 1, memory_order_relaxed);
        return; /* its caller gave up: dropped, counted */
    }
    r = sage__wire_resp_decode(data, len, f->dest ? f->dest : f->arena, &resp);
    if (r != SAGE_OK) {
        atomic_fetch_add_explicit(&m->n_malformed, 1, memory_order_relaxed);
        sage__fut_complete(f, SAGE_EPROTO, sage_errdetail());
        return;
    }
    if (resp.ok) {
        f->result = resp.result;
        sage__fut_complete(f, SAGE_OK, NULL);
        return;
    }
    if (schedule_retry(f, (sage_err)resp.err_code))
        return;
    sage__fut_complete(f, resp.err_code > 0 ? (sage_err)resp.err_code : SAGE_EPROTO, resp.err_msg);
}

static void on_response(void *arg, const void *data, size_t len)
{
    sage__mgr_on_response(arg, data, len);
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

    sage__timers_expire(m->timers, now, on_timer, m);
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

static void *resp_main(void *arg)
{
    sage_manager *m = arg;
    int64_t last_house = sage__now_ns();

    while (!atomic_load_explicit(&m->closing, memory_order_acquire)) {
        int64_t now = sage__now_ns(), next = sage__timers_next(m->timers), wait_ns;
        size_t n;
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
             * sleep), keeping the timers */
            int64_t until = atomic_load_explicit(&m->rx_last_sync, memory_order_relaxed) +
                            STEP_ASIDE_NS; /* early by a tick at worst: it looks again */
            uint32_t aside = atomic_load_explicit(&m->aside_seq, memory_order_acquire);

            if (until <= now)
                until = now + STEP_ASIDE_NS / 5;
            if (now + wait_ns < until)
                until = now + wait_ns;
            atomic_store_explicit(&m->resp_wake_at, until, memory_order_release);
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
            r = sage_queue_drain(m->rq, on_response, m, 0, (int)((wait_ns + 999999) / 1000000),
                                 &n);
        atomic_store_explicit(&m->resp_draining, 0, memory_order_relaxed);
        rx_give(m);
        if (r == SAGE_ECLOSED || r == SAGE_EPROTO)
            break;
        housekeeping(m, &last_house);
    }
    return NULL;
}

/* sync_drain: a synchronous caller waits for f by draining answers itself
 * (see "caller-runs"), until f completes or deadline_ns (-1: none). */
static void sync_drain(sage_manager *m, struct sage_future *f, int64_t deadline_ns)
{
    atomic_fetch_add_explicit(&m->rx_want, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&m->resp_draining, memory_order_seq_cst))
        sage_queue_send(m->rq, "", 0, 0); /* poke: the response thread steps aside */
    while (!sage_future_done(f)) {
        uint32_t seq = atomic_load_explicit(&m->rx_seq, memory_order_acquire);
        int64_t now = sage__now_coarse_ns(); /* a few ms late at worst */

        if (deadline_ns >= 0 && now >= deadline_ns)
            break;
        if (rx_take(m)) {
            int64_t left = deadline_ns >= 0 ? (deadline_ns - now) / 1000000 + 1 : 1000;
            size_t n;

            if (!sage_future_done(f))
                sage_queue_drain(m->rq, on_response, m, 0, left < 1000 ? (int)left : 1000, &n);
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

/* ----------------------------------------------------------- lifecycle */

/* clean_stale_replies removes response queues this user's dead processes
 * left behind ("UID.NS.reply.PID.N" whose PID is gone): a caller that dies
 * cannot remove its own. */
static void clean_stale_replies(void)
{
    char prefix[32], name[SAGE_QUEUE_NAME_MAX + 1];
    DIR *d = opendir("/dev/shm");
    struct dirent *e;

    if (d == NULL)
        return;
    snprintf(prefix, sizeof prefix, "sage.q.%u.", (unsigned)getuid());
    while ((e = readdir(d)) != NULL) {
        const char *r = strstr(e->d_name, ".reply.");
        int pid;

        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || r == NULL)
            continue;
        pid = atoi(r + 7);
        if (pid > 0 && pid != sage__pid() && !sage__pid_alive(pid)) {
            snprintf(name, sizeof name, "%s", e->d_name + 7); /* past "sage.q." */
            sage_queue_unlink(name);
        }
    }
    closedir(d);
}

sage_err sage_manager_new(sage_manager **mp, const sage_manager_opts *opts)
{
    sage_manager_opts defaults;
    sage_queue_opts qo;
    sage_manager *m;
    const char *ns;
    sage_err r;

    if (mp == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_manager_new: mp is NULL");
    if (opts == NULL) {
        sage_manager_opts_init(&defaults);
        opts = &defaults;
    }
    if (!(opts->timeout != 0) || opts->max_response < 64 || opts->max_response > (256u << 20) ||
        opts->max_pending < 1 || !(opts->retry_backoff >= 0) || !(opts->idle_close >= 0))
        return SAGE_SETERR(SAGE_EINVAL, "sage_manager_new: option out of range");
    /* checked before it is copied: a copy would cut a long one short */
    ns = opts->ns ? opts->ns : opts->env ? sage_env_ns(opts->env) : "default";
    if ((r = sage__check_name(ns, "namespace", 0)) != SAGE_OK)
        return r;
    m = calloc(1, sizeof *m);
    if (m == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    snprintf(m->ns, sizeof m->ns, "%s", ns);
    m->env = opts->env;
    m->timeout = opts->timeout;
    m->retries = opts->retries;
    m->retry_backoff = opts->retry_backoff;
    m->idle_close = opts->idle_close;
    m->max_response = opts->max_response;
    m->max_pending = opts->max_pending;
    m->cluster_opts = opts->cluster;
    m->epfd = m->wakefd = -1;
    m->max_chunks = (opts->max_pending + FUT_CHUNK - 1) / FUT_CHUNK;
    m->chunks = calloc(m->max_chunks, sizeof *m->chunks);
    pthread_mutex_init(&m->grow_lock, NULL);
    pthread_mutex_init(&m->conn_lock, NULL);
    if (m->chunks == NULL || (r = sage__timers_new(&m->timers, timer_stale, m)) != SAGE_OK) {
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        goto fail;
    }
    /* the response queue: named, so services in other processes can answer */
    sage__reply_queue_name(m->rq_name, sizeof m->rq_name, m->ns,
                           atomic_fetch_add(&manager_serial, 1));
    sage_queue_opts_init(&qo);
    qo.flags = SAGE_QUEUE_CREATE | SAGE_QUEUE_EXCL;
    qo.max_msg = m->max_response;
    qo.capacity = 4 * m->max_response > (4u << 20) ? 4 * m->max_response : (4u << 20);
    sage_queue_unlink(m->rq_name); /* a dead process's leftover with our pid */
    clean_stale_replies();
    if ((r = sage_queue_open(&m->rq, m->rq_name, &qo)) != SAGE_OK)
        goto fail;
    if (m->cluster_opts && (r = sage__cluster_client_new(m)) != SAGE_OK)
        goto fail;
    if (pthread_create(&m->resp_thread, NULL, resp_main, m) != 0) {
        r = SAGE_SETERR(SAGE_ESYS, "cannot start the response thread");
        goto fail;
    }
    *mp = m;
    return SAGE_OK;
fail:
    if (m->cluster)
        sage__cluster_client_free(m);
    if (m->rq) {
        sage_queue_free(m->rq);
        sage_queue_unlink(m->rq_name);
    }
    sage__timers_free(m->timers);
    free(m->chunks);
    pthread_mutex_destroy(&m->grow_lock);
    pthread_mutex_destroy(&m->conn_lock);
    free(m);
    return r;
}

static void close_pending(struct sage_future *f, void *arg)
{
    (void)arg;
    if (sage__fut_claim(f))
        sage__fut_complete(f, SAGE_ECLOSED, "the manager closed");
}

void sage_manager_free(sage_manager *m)
{
    if (m == NULL)
        return;
    atomic_store_explicit(&m->closing, 1, memory_order_release);
    sage_queue_close(m->rq); /* wakes the response thread; late answers fail */
    pthread_join(m->resp_thread, NULL);
    sage__watch_stop(m);
    sage__fut_foreach(m, close_pending, NULL);
    if (m->cluster)
        sage__cluster_client_free(m);
    sage__conn_free_all(m);
    sage_queue_free(m->rq);
    sage_queue_unlink(m->rq_name);
    sage__fut_free_all(m);
    sage__timers_free(m->timers);
    pthread_mutex_destroy(&m->grow_lock);
    pthread_mutex_destroy(&m->conn_lock);
    free(m);
}

/* -------------------------------------------------------------- calling */

static int64_t seconds_ns(double s)
{
    return (int64_t)(s * 1e9);
}

/* start: the part of call_async shared with call_sync: resolve, publish the
 * future, send. On failure nothing remains of the call. */
static sage_err start(sage_manager *m, const char *service, const char *method,
                      const sage_value *args, size_t nargs, const sage_pair *kwargs, size_t nkwargs,
                      const sage_call_opts *opts, sage_arena *dest, bool timer,
                      sage_future **fp)
{
    double timeout = opts && opts->timeout != 0 ? opts->timeout : m->timeout;
    struct sage__conn *c = NULL;
    struct sage_future *f = NULL;
    int64_t now = sage__now_ns(), span = -1;
    char reply[160];
    size_t service_len;
    bool dead, owned;
    sage__req req;
    sage_err r;

    if (service == NULL || method == NULL || (args == NULL && nargs) ||
        (kwargs == NULL && nkwargs) || fp == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "call: invalid argument");
    for (size_t i = 0; i < nkwargs; i++)
        if (kwargs[i].key.type != SAGE_STR)
            return SAGE_SETERR(SAGE_EBADARGS, "kwargs[%zu]: key must be a string", i);
    if ((r = sage__check_name(method, "method", 1)) != SAGE_OK)
        return r;
    if (atomic_load_explicit(&m->closing, memory_order_acquire))
        return SAGE_SETERR(SAGE_ECLOSED, "the manager is closing");
    if ((r = sage__conn_get(m, service, &c)) != SAGE_OK)
        return r;
    if ((r = sage__fut_alloc(m, &f)) != SAGE_OK) {
        sage__conn_put(m, c);
        return r;
    }
    service_len = strlen(service); /* checked by conn_get: at most 64 bytes */
    memcpy(f->service, service, service_len + 1);
    f->dest = dest;
    f->remote = c->remote != NULL;
    f->conn_serial = c->serial;
    f->idempotent = opts && opts->idempotent;
    f->retries_left = f->idempotent ? (opts->retries > 0 ? (uint32_t)opts->retries : m->retries) : 0;
    f->backoff_ns = seconds_ns(m->retry_backoff);
    if (timeout > 0) {
        f->deadline_ns = now + seconds_ns(timeout);
        span = seconds_ns(timeout) / (int64_t)(f->retries_left + 1);
        f->attempt_deadline_ns = now + span;
    }
    memset(&req, 0, sizeof req);
    req.id = f->id;
    req.service = service;
    req.service_len = service_len;
    req.method = method;
    req.method_len = strlen(method);
    req.args = sage_array(args, nargs);
    req.kwargs = sage_map(kwargs, nkwargs);
    if (c->remote) /* over NATS: the answer comes to our inbox */
        req.reply_to = sage__cluster_reply_to(m, f->id, reply, sizeof reply);
    else
        req.reply_to = m->rq_name;
    req.reply_to_len = strlen(req.reply_to);
    req.timeout_ms = span > 0 ? (uint32_t)((span + 999999) / 1000000) : 0;
    req.flags = f->idempotent ? SAGE__REQ_IDEMPOTENT : 0;
    req.sent_ns = (uint64_t)now; /* lets a same-host service count queue waits */
    atomic_fetch_add_explicit(&m->n_calls, 1, memory_order_relaxed);
    /* publish: the response thread may see the answer before send returns */
    atomic_store_explicit(&f->state, FS_PENDING, memory_order_release);
    if ((timer || f->retries_left) && f->attempt_deadline_ns >= 0) {
        int64_t wake = atomic_load_explicit(&m->resp_wake_at, memory_order_acquire);

        sage__timers_add(m->timers, f->index, (uint32_t)(f->id >> 32), 0, f->attempt_deadline_ns,
                         span);
        if (f->attempt_deadline_ns < wake) /* earlier than the thread will look */
            sage_queue_send(m->rq, "", 0, 0);
    }
    r = sage__conn_send(m, c, &req, f->deadline_ns, f->retries_left ? &f->req_bytes : NULL,
                        &f->req_len, f->arena, &dead);
    if (r == SAGE_OK) {
        sage__conn_put(m, c);
        *fp = f;
        return SAGE_OK;
    }
    owned = sage__fut_claim(f);
    if (owned && f->req_bytes && schedule_retry(f, r)) {
        *fp = f; /* the next attempt follows after its backoff */
        r = SAGE_OK;
    } else {
        /* not sent: no future, no callback (the async contract) */
        if (owned)
            atomic_fetch_sub_explicit(&m->n_calls, 1, memory_order_relaxed); /* never made */
        else /* its deadline or its service's death beat us to it: made and completed */
            while (!sage_future_done(f))
                sage_future_wait(f, -1);
        sage__fut_release(f);
    }
    if (dead) /* only now: its kill would otherwise fail (or retry) f too */
        drop_dead(m, c);
    sage__conn_put(m, c);
    return r; /* the detail is conn_send's */
}

sage_err sage_manager_call_async(sage_manager *m, const char *service, const char *method,
                                 const sage_value *args, size_t nargs, const sage_pair *kwargs,
                                 size_t nkwargs, const sage_call_opts *opts, sage_future **fp)
{
    if (m == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "call: manager is NULL");
    return start(m, service, method, args, nargs, kwargs, nkwargs, opts, NULL, true, fp);
}

sage_err sage_manager_call_sync(sage_manager *m, const char *service, const char *method,
                                const sage_value *args, size_t nargs, const sage_pair *kwargs,
                                size_t nkwargs, const sage_call_opts *opts, sage_arena *arena,
                                sage_value *result)
{
    double timeout;
    sage_future *f = NULL;
    const sage_value *v;
    sage_err r;
    int wait_ms;

    if (m == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "call: manager is NULL");
    timeout = opts && opts->timeout != 0 ? opts->timeout : m->timeout;
    r = start(m, service, method, args, nargs, kwargs, nkwargs, opts, arena, false, &f);
    if (r != SAGE_OK)
        return r;
    wait_ms = timeout > 0 ? (int)(timeout * 1000 + 0.5) : -1;
    if (f->remote) /* its answer arrives on a cluster thread, not our queue */
        sage_future_wait(f, wait_ms);
    else
        sync_drain(m, f, f->deadline_ns); /* start() set it from the same timeout */
    if (!sage_future_done(f)) {
        char msg[160];

        snprintf(msg, sizeof msg, "no answer from '%s' within %.3f s", service, timeout);
        /* the answer may race us; the CAS decides */
        if (sage__fut_claim(f))
            sage__fut_complete(f, SAGE_ETIMEDOUT, msg);
        while (!sage_future_done(f))
            sage_future_wait(f, -1); /* a retry or completion in progress */
    }
    r = sage_future_result(f, &v);
    if (r == SAGE_OK && result)
        *result = *v; /* decoded straight into the caller's arena */
    sage_future_free(f);
    return r;
}

sage_err sage_manager_callf(sage_manager *m, const char *service, const char *method,
                            sage_arena *arena, sage_value *result, const char *fmt, ...)
{
    sage_arena *tmp = NULL;
    sage_value args;
    va_list ap;
    sage_err r;

    if (fmt == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_manager_callf: fmt is NULL");
    if ((r = sage_arena_new(&tmp, 0)) != SAGE_OK)
        return r;
    va_start(ap, fmt);
    r = sage_vpack(tmp, &args, fmt, ap);
    va_end(ap);
    if (r == SAGE_OK && args.type != SAGE_ARRAY)
        r = SAGE_SETERR(SAGE_EINVAL, "sage_manager_callf: format must describe an array");
    if (r == SAGE_OK)
        r = sage_manager_call_sync(m, service, method, args.as.array.items, args.as.array.len,
                                   NULL, 0, NULL, arena, result);
    sage_arena_free(tmp);
    return r;
}

sage_err sage_manager_lookup(sage_manager *m, const char *service, sage_endpoint *ep)
{
    struct sage__conn *c = NULL;
    sage_err r;

    if (m == NULL || service == NULL || ep == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_manager_lookup: invalid argument");
    if ((r = sage__conn_get(m, service, &c)) != SAGE_OK)
        return r;
    memset(ep, 0, sizeof *ep);
    ep->transport = c->transport;
    snprintf(ep->queue, sizeof ep->queue, "%s", c->where);
    ep->pid = c->pid;
    sage__conn_put(m, c);
    return SAGE_OK;
}

sage_err sage_manager_stats_read(sage_manager *m, sage_manager_stats *st)
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
    st->pending = pending(m);
    pthread_mutex_lock(&m->conn_lock);
    for (c = m->conns; c; c = c->next)
        st->connections++;
    pthread_mutex_unlock(&m->conn_lock);
    return SAGE_OK;
}
