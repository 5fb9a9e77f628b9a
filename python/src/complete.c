/*
 * complete.c - the completion queue of a manager's asynchronous calls:
 * filled by the library's callback without the GIL, resolved by Python
 * threads with it.
 *
 * Design notes
 * - Each pending call is a future (future.c) with the library's
 *   sage_future behind it. The library's callback (on_done, no GIL) copies
 *   the outcome into the batch arena of the queue, frees the sage_future
 *   and appends the future to the queue: nothing of the library outlives
 *   sage_manager_free but our copies.
 * - Who takes the answers: threads that call take those that have arrived
 *   (a sage_manager_poll that does not wait, in call_service_async); a
 *   thread in result() takes them until its own is there (polls that wait,
 *   woken by the answer itself). So a thread that keeps calling takes its
 *   answers without a wake-up of anyone, and the library's completion
 *   thread stays aside. on_done then runs on the polling thread.
 * - Resolving is lazy: whoever holds the GIL and touches the manager or a
 *   future resolves what is queued, inline - call_service_async, result()
 *   and exception(), done(), the properties concurrent.futures.wait reads.
 *   A future nobody looks at needs no resolving until somebody does, so
 *   nothing is woken per call and the GIL is never handed over.
 * - The exception is a watched future (done-callbacks; a
 *   concurrent.futures.wait or as_completed on it): it must be resolved
 *   when its call completes, even if no thread looks. The resolver thread
 *   takes the answers while watched calls are pending (polls that wait, in
 *   slices), and resolves the queue when a watched future is in it: at
 *   once, or, while a Python thread has been resolving the queue itself in
 *   the last PYSAGE_GRACE_NS, only if that thread leaves the work for
 *   PYSAGE_GRACE_NS (a thread that keeps calling resolves without a GIL
 *   hand-off). watched, watched_pending and urgent change under the lock.
 * - The manager is polled through a gate (m, pollers): close detaches it,
 *   waiting for polls in progress, before sage_manager_free; a thread that
 *   finds the gate closed waits on the queue's condition for on_done.
 * - A drain takes the raw batch whole (values in its arena), converts it
 *   to Python objects (the arena goes back at once), then resolves the
 *   converted futures one at a time, each taken from the queue under its
 *   lock: a done-callback that waits for another future of the same batch
 *   finds it still queued and resolves it itself. What completes during a
 *   drain is left for the next one, and a callback that calls again does
 *   not drain on its thread (the drain in progress is below it on the
 *   stack); one that waits does, up to MAX_NESTED levels.
 * - The counted gen tells waiting threads that futures changed (resolved
 *   here, or set or cancelled from Python); it is read and bumped with the
 *   GIL held, so a waiter that read it before releasing the GIL misses no
 *   change.
 * - The queue is counted: the manager's reference, the resolver thread's,
 *   and one per future bound to it. A manager freed on the resolver thread
 *   itself (its last reference held by a done-callback) detaches the
 *   thread instead of joining it.
 * Lock order: the queue's lock, then the library's own (cancel). No lock
 * of ours is held across a poll.
 */
#include "pysage.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* PYSAGE_GRACE_NS: how long watched completions are left to a Python
 * thread that resolves the queue itself before the resolver takes the GIL
 * for them */
#define PYSAGE_GRACE_NS (200 * 1000LL)
/* waits that sleep longer look for signals (KeyboardInterrupt) this often */
#define SIGNAL_SLICE_NS (100 * 1000 * 1000LL)
/* a poll that waits returns this often: close waits for it at most so long */
#define POLL_SLICE_MS 10
/* the resolver, finding the inbox taken by another thread, looks again after */
#define POLL_BACKOFF_NS (1000 * 1000LL)
/* the resolver takes the answers for watched calls only when no Python
 * thread has taken them for this long (one that keeps calling does) */
#define POLL_GRACE_NS (50 * 1000LL)
/* nested drains: a wait in a done-callback in a wait in a done-callback... */
#define MAX_NESTED 8

struct pysage_dq {
    pthread_mutex_t lock;
    pthread_cond_t cond;               /* threads waiting in result() */
    pthread_cond_t rcond;              /* the resolver */
    PySage_Future *head, *tail;        /* completed; outcomes in fill */
    PySage_Future *ready, *ready_tail; /* converted, to resolve */
    sage_arena *fill;                  /* outcomes of the batch being filled */
    sage_arena *spare;                 /* an emptied arena, for the next batch */
    uint64_t gen;                      /* bumped when a future of the queue changes */
    int waiters;                       /* threads asleep in pysage_dq_wait */
    sage_manager *m;                   /* polled by our threads; NULL once detached */
    int pollers;                       /* polls in progress */
    bool detaching;                    /* detach waits for them (on cond) */
    int watched_pending;               /* watched futures whose calls are pending */
    atomic_int watching;               /* a copy of it, for lock-free looks */
    _Atomic int64_t polled_ns;         /* when a Python thread last polled, if watching */
    bool urgent;                       /* head or ready holds a watched future */
    int64_t urgent_ns;                 /* since when */
    int64_t drained_ns;                /* when a Python thread last drained, itself */
    bool idle;                         /* the resolver sleeps until woken */
    bool stop;
    atomic_bool pending; /* head or ready not NULL: for lock-free looks */
    atomic_int refs;
    pthread_t thread;
};

/* drains in progress on this thread */
static _Thread_local int nested;
/* this thread is a resolver */
static _Thread_local bool resolving;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec ts_of(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};

    return ts;
}

static void set_pending(pysage_dq *q)
{
    atomic_store_explicit(&q->pending, q->head != NULL || q->ready != NULL, memory_order_relaxed);
}

void pysage_dq_unref(pysage_dq *q)
{
    if (q && atomic_fetch_sub(&q->refs, 1) == 1) {
        pthread_mutex_destroy(&q->lock);
        pthread_cond_destroy(&q->cond);
        pthread_cond_destroy(&q->rcond);
        sage_arena_free(q->fill);
        sage_arena_free(q->spare);
        free(q);
    }
}

/* ------------------------------------------------------ the library's side */

/* set_urgent: a watched future is queued; the resolver sees to it (lock
 * held) */
static void set_urgent(pysage_dq *q)
{
    if (!q->urgent) {
        q->urgent = true;
        q->urgent_ns = now_ns();
    }
    if (q->idle)
        pthread_cond_signal(&q->rcond);
}

/* on_done: the library's completion thread, no GIL */
static void on_done(void *arg, sage_future *f)
{
    PySage_Future *fut = arg;
    pysage_dq *q = fut->q;
    const sage_value *v = NULL;
    sage_err r;

    pthread_mutex_lock(&q->lock);
    if (q->fill == NULL) {
        q->fill = q->spare;
        q->spare = NULL;
        if (q->fill == NULL && sage_arena_new(&q->fill, 16384) != SAGE_OK)
            q->fill = NULL;
    }
    r = sage_future_result(&v, f);
    fut->value = sage_nil();
    fut->detail = NULL;
    if (q->fill == NULL) {
        r = SAGE_ENOMEM;
    } else if (r == SAGE_OK) {
        if (sage_value_copy(&fut->value, q->fill, v) != SAGE_OK)
            r = SAGE_ENOMEM;
    } else {
        const char *d = sage_errdetail();
        size_t n = strlen(d);
        char *copy = sage_arena_alloc(q->fill, n + 1);

        if (copy) {
            memcpy(copy, d, n + 1);
            fut->detail = copy;
        }
    }
    fut->code = r;
    fut->f = NULL;
    sage_future_free(f);
    fut->next = NULL;
    if (q->tail)
        q->tail->next = fut;
    else
        q->head = fut;
    q->tail = fut;
    atomic_store_explicit(&q->pending, true, memory_order_relaxed);
    if (atomic_load_explicit(&fut->watched, memory_order_relaxed)) {
        atomic_store_explicit(&q->watching, --q->watched_pending, memory_order_relaxed);
        set_urgent(q);
    }
    /* a thread in result() waits for this one: nobody else is woken */
    if (q->waiters && atomic_load_explicit(&fut->awaited, memory_order_relaxed))
        pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

sage_err pysage_dq_bind(pysage_dq *q, PySage_Future *fut, sage_future *f)
{
    sage_err r;

    atomic_fetch_add(&q->refs, 1);
    fut->q = q;
    fut->f = f;
    Py_INCREF(fut); /* the callback's, given back when it is resolved */
    r = sage_future_on_done(f, on_done, fut);
    if (r != SAGE_OK) {
        /* it never runs: drop the call */
        fut->f = NULL;
        sage_future_free(f);
        Py_DECREF(fut);
    }
    return r;
}

void pysage_dq_cancel(PySage_Future *fut)
{
    pysage_dq *q = fut->q;

    pthread_mutex_lock(&q->lock);
    if (fut->f != NULL)
        sage_future_cancel(fut->f); /* its callback runs on the completion thread */
    pthread_mutex_unlock(&q->lock);
}

void pysage_dq_changed(pysage_dq *q)
{
    pthread_mutex_lock(&q->lock);
    q->gen++;
    if (q->waiters)
        pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void pysage_dq_watch(PySage_Future *fut)
{
    pysage_dq *q = fut->q;

    if (q == NULL || atomic_load_explicit(&fut->watched, memory_order_relaxed))
        return;
    pthread_mutex_lock(&q->lock);
    atomic_store_explicit(&fut->watched, true, memory_order_relaxed);
    if (fut->f != NULL) {
        /* pending: the resolver takes the answers until it comes */
        atomic_store_explicit(&q->watching, ++q->watched_pending, memory_order_relaxed);
        if (q->idle)
            pthread_cond_signal(&q->rcond);
    } else {
        set_urgent(q); /* its outcome is queued already */
    }
    pthread_mutex_unlock(&q->lock);
}

/* ------------------------------------------------------------ the gate */

void pysage_dq_attach(pysage_dq *q, sage_manager *m)
{
    pthread_mutex_lock(&q->lock);
    q->m = m;
    pthread_mutex_unlock(&q->lock);
}

void pysage_dq_detach(pysage_dq *q)
{
    pthread_mutex_lock(&q->lock);
    q->m = NULL;
    q->detaching = true;
    while (q->pollers > 0)
        pthread_cond_wait(&q->cond, &q->lock);
    q->detaching = false;
    pthread_mutex_unlock(&q->lock);
}

void pysage_dq_polled(pysage_dq *q)
{
    if (atomic_load_explicit(&q->watching, memory_order_relaxed) > 0)
        atomic_store_explicit(&q->polled_ns, now_ns(), memory_order_relaxed);
}

/* poll takes the manager's answers, waiting up to timeout_ms for some,
 * unless it is detached (-1); q->lock held on entry and return, no other
 * lock of ours across the poll. Returns the records taken: 0 also when
 * another thread had the inbox. */
static long poll(pysage_dq *q, int timeout_ms)
{
    sage_manager *m = q->m;
    size_t n = 0;

    if (m == NULL)
        return -1;
    q->pollers++;
    pthread_mutex_unlock(&q->lock);
    if (!resolving)
        pysage_dq_polled(q);
    sage_manager_poll(&n, m, timeout_ms); /* on_done may run here */
    pthread_mutex_lock(&q->lock);
    if (--q->pollers == 0 && q->detaching)
        pthread_cond_broadcast(&q->cond);
    return (long)n;
}

void pysage_dq_poll(pysage_dq *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    poll(q, 0);
    pthread_mutex_unlock(&q->lock);
}

/* ------------------------------------------------------------- resolving */

/* convert turns fut's outcome into a Python object; GIL held */
static void convert(PySage_Future *fut)
{
    PyObject *o = NULL;

    fut->outcome_is_exc = fut->code != SAGE_OK && fut->code != SAGE_ECANCELED;
    if (fut->code == SAGE_OK)
        fut->outcome_is_exc = (o = pysage_to_py(&fut->value, "result")) == NULL;
    else if (fut->outcome_is_exc)
        o = pysage_exc_instance(fut->code, fut->detail);
    /* else cancelled: nothing to say */
    if (o == NULL && fut->outcome_is_exc) {
        PyObject *type, *tb;

        PyErr_Fetch(&type, &o, &tb);
        PyErr_NormalizeException(&type, &o, &tb);
        if (tb && o)
            PyException_SetTraceback(o, tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        if (o == NULL) {
            o = PyObject_CallFunction(PyExc_SystemError, "s", "a call's outcome was lost");
            PyErr_Clear();
        }
    }
    fut->value = sage_nil();
    fut->detail = NULL;
    Py_XSETREF(fut->outcome, o);
}

/* resolve settles fut from its converted outcome and drops the callback's
 * reference; GIL held */
static void resolve(PySage_Future *fut)
{
    PyObject *o = fut->outcome;
    int r = 0;

    fut->outcome = NULL;
    if (o != NULL)
        r = pysage_future_settle(fut, fut->outcome_is_exc ? NULL : o,
                                 fut->outcome_is_exc ? o : NULL, false);
    else if (!fut->outcome_is_exc && !pysage_future_done(fut))
        r = pysage_future_settle(fut, NULL, NULL, false); /* cancelled by the library */
    if (r < 0)
        PyErr_WriteUnraisable((PyObject *)fut);
    Py_XDECREF(o);
    Py_DECREF(fut);
}

/* recycle resets a batch's arena and keeps it as the spare */
static void recycle(pysage_dq *q, sage_arena *a)
{
    if (a == NULL)
        return;
    sage_arena_reset(a);
    pthread_mutex_lock(&q->lock);
    if (q->spare == NULL) {
        q->spare = a;
        a = NULL;
    }
    pthread_mutex_unlock(&q->lock);
    sage_arena_free(a);
}

/* drain resolves what is queued when it starts; GIL held. What comes
 * meanwhile is the next drain's: a chain of callbacks that call again does
 * not keep a thread here. */
static void drain(pysage_dq *q)
{
    PySage_Future *fut;

    nested++;
    pthread_mutex_lock(&q->lock);
    if (!resolving)
        q->drained_ns = now_ns();
    if (q->head != NULL) {
        PySage_Future *batch = q->head, *last = NULL;
        sage_arena *arena = q->fill;

        q->head = q->tail = NULL;
        q->fill = NULL;
        q->urgent = false;
        pthread_mutex_unlock(&q->lock);
        for (fut = batch; fut; fut = fut->next) {
            convert(fut);
            last = fut;
        }
        recycle(q, arena);
        pthread_mutex_lock(&q->lock);
        if (q->ready == NULL)
            q->ready = batch;
        else
            q->ready_tail->next = batch;
        q->ready_tail = last;
    }
    while ((fut = q->ready) != NULL) {
        if ((q->ready = fut->next) == NULL)
            q->ready_tail = NULL;
        set_pending(q);
        pthread_mutex_unlock(&q->lock);
        fut->next = NULL;
        resolve(fut);
        pthread_mutex_lock(&q->lock);
        q->gen++;
        if (q->waiters && atomic_load_explicit(&fut->awaited, memory_order_relaxed))
            pthread_cond_broadcast(&q->cond);
    }
    set_pending(q);
    pthread_mutex_unlock(&q->lock);
    nested--;
}

void pysage_dq_drain(pysage_dq *q)
{
    if (q != NULL && nested == 0 && atomic_load_explicit(&q->pending, memory_order_relaxed))
        drain(q);
}

/* ---------------------------------------------------------------- waiting */

int pysage_dq_wait(PySage_Future *fut, double timeout)
{
    pysage_dq *q = fut->q;
    int64_t deadline = -1;
    int rc = 1;
    bool help = nested < MAX_NESTED;

    if (timeout >= 0)
        deadline = now_ns() + (int64_t)(timeout * 1e9);
    if (!help)
        pysage_dq_watch(fut); /* the resolver resolves it */
    /* on_done wakes a thread asleep on cond for this one (it reads the
     * flag under the lock taken before sleeping, or had run already:
     * fut->f is NULL then) */
    atomic_store_explicit(&fut->awaited, true, memory_order_relaxed);
    Py_INCREF(fut); /* a done-callback run here may drop the caller's */
    if (help)
        pysage_dq_poll(q); /* what has come, even for a wait of no time */
    while (!pysage_future_done(fut)) {
        PyThreadState *ts_save;
        uint64_t gen;
        int64_t until;
        bool stopped, expired = false;

        if (help && atomic_load_explicit(&q->pending, memory_order_relaxed)) {
            drain(q);
            continue;
        }
        pthread_mutex_lock(&q->lock);
        gen = q->gen;
        stopped = q->stop && q->head == NULL && q->ready == NULL;
        pthread_mutex_unlock(&q->lock);
        if (stopped) {
            rc = 2;
            break;
        }
        if (deadline >= 0 && now_ns() >= deadline) {
            rc = 0;
            break;
        }
        until = now_ns() + SIGNAL_SLICE_NS;
        if (deadline >= 0 && deadline < until)
            until = deadline;
        ts_save = PyEval_SaveThread();
        pthread_mutex_lock(&q->lock);
        for (;;) {
            bool any = q->head != NULL || q->ready != NULL;
            int64_t now = now_ns();
            struct timespec ts;

            /* a change (fut resolved by another thread, set, cancelled);
             * its outcome queued, for us to resolve; the end */
            if (q->gen != gen || (help && any && fut->f == NULL) || (q->stop && !any))
                break;
            if (until <= now) {
                expired = true; /* look at signals and the deadline */
                break;
            }
            /* take the answers ourselves: woken by ours, not by a relay */
            if (help && fut->f != NULL) {
                int64_t ms = (until - now + 999999) / 1000000;

                if (poll(q, ms < POLL_SLICE_MS ? (int)ms : POLL_SLICE_MS) >= 0)
                    continue;
            }
            q->waiters++;
            ts = ts_of(until);
            pthread_cond_timedwait(&q->cond, &q->lock, &ts);
            q->waiters--;
        }
        pthread_mutex_unlock(&q->lock);
        PyEval_RestoreThread(ts_save);
        if (expired && PyErr_CheckSignals() < 0) {
            rc = -1;
            break;
        }
    }
    Py_DECREF(fut);
    return rc;
}

/* -------------------------------------------------------- the resolver */

/* resolver_main takes the answers while watched calls are pending,
 * resolves the watched futures no Python thread resolves in time, and
 * everything when the queue stops */
static void *resolver_main(void *arg)
{
    pysage_dq *q = arg;

    resolving = true;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        bool pending = q->head != NULL || q->ready != NULL;
        int64_t now, due;

        if (!pending && q->stop)
            break;
        if (!q->stop && (!pending || !q->urgent)) {
            if (q->watched_pending > 0 && q->m != NULL) {
                int64_t t0 = now_ns(), later = 0;
                long n;

                if (t0 - atomic_load_explicit(&q->polled_ns, memory_order_relaxed) <
                    POLL_GRACE_NS) {
                    later = atomic_load_explicit(&q->polled_ns, memory_order_relaxed) +
                            POLL_GRACE_NS; /* a Python thread takes them */
                } else if ((n = poll(q, POLL_SLICE_MS)) == 0 &&
                           now_ns() - t0 < POLL_SLICE_MS * 1000000LL / 2) {
                    later = now_ns() + POLL_BACKOFF_NS; /* another thread has the inbox */
                }
                if (later) {
                    struct timespec ts = ts_of(later);

                    pthread_cond_timedwait(&q->rcond, &q->lock, &ts);
                }
                continue;
            }
            q->idle = true;
            pthread_cond_wait(&q->rcond, &q->lock);
            q->idle = false;
            continue;
        }
        now = now_ns();
        due = now;
        if (!q->stop && now - q->drained_ns < PYSAGE_GRACE_NS) {
            /* a thread resolves the queue itself: it has a while to come back */
            due = (q->drained_ns > q->urgent_ns ? q->drained_ns : q->urgent_ns) + PYSAGE_GRACE_NS;
        }
        if (due > now) {
            struct timespec ts = ts_of(due);

            pthread_cond_timedwait(&q->rcond, &q->lock, &ts);
            continue;
        }
        pthread_mutex_unlock(&q->lock);
        if (!pysage_alive()) {
            pthread_mutex_lock(&q->lock);
            break;
        }
        {
            PyGILState_STATE g = pysage_gil_take();

            drain(q);
            pysage_gil_give(g);
        }
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    pysage_dq_unref(q);
    return NULL;
}

pysage_dq *pysage_dq_new(void)
{
    pysage_dq *q = calloc(1, sizeof *q);
    pthread_condattr_t ca;
    pthread_attr_t attr;

    if (q == NULL)
        return NULL;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &ca);
    pthread_cond_init(&q->rcond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&q->refs, 2); /* the manager's and the thread's */
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    if (pthread_create(&q->thread, &attr, resolver_main, q) != 0) {
        pthread_attr_destroy(&attr);
        pthread_mutex_destroy(&q->lock);
        pthread_cond_destroy(&q->cond);
        pthread_cond_destroy(&q->rcond);
        free(q);
        return NULL;
    }
    pthread_attr_destroy(&attr);
    pthread_setname_np(q->thread, "sage-py-done");
    return q;
}

void pysage_dq_stop(pysage_dq *q)
{
    pthread_mutex_lock(&q->lock);
    if (q->stop) {
        pthread_mutex_unlock(&q->lock);
        return;
    }
    q->stop = true;
    pthread_cond_broadcast(&q->cond);
    pthread_cond_signal(&q->rcond);
    pthread_mutex_unlock(&q->lock);
    if (pthread_equal(pthread_self(), q->thread))
        pthread_detach(q->thread); /* it leaves after this batch */
    else
        pthread_join(q->thread, NULL);
}
