/*
 * manager.c - sagesvc._core.Manager: calls, sync and async, and the
 * completion of Python futures.
 *
 * Design notes
 * - A sync call converts its arguments into an arena of its thread,
 *   releases the GIL for sage_manager_call_sync, takes it back and
 *   converts the result. A Python service in this process may run on this
 *   very thread meanwhile (a direct call): it takes the GIL itself.
 * - An async call makes a concurrent.futures.Future (sagesvc.CallFuture)
 *   and a Call, sends with the GIL released, and adds a C callback to the
 *   sage_future. That callback runs on the manager's completion thread
 *   without the GIL: it copies the outcome into the batch arena of a
 *   completion queue, frees the sage_future, and appends the Call to the
 *   queue. A resolver thread of ours takes the queue whole, takes the GIL
 *   once for the batch, and sets the Python futures (their done-callbacks
 *   run there). One GIL acquisition per batch, not per call: under load a
 *   batch is everything that completed while the previous one ran.
 * - Because the callback frees the sage_future, nothing of the library
 *   outlives sage_manager_free but our own copies, so a manager can be
 *   closed with futures still unresolved on the Python side. Call.cancel
 *   and the callback serialise on the queue's lock: cancel reaches the
 *   sage_future only while it exists.
 * - The queue is shared by the manager and its resolver thread and counted:
 *   a manager freed on the resolver thread itself (its last reference held
 *   by a done-callback) detaches the thread instead of joining it, and the
 *   thread frees the queue when it leaves.
 * - close() waits for calls in flight on other threads (they hold the
 *   manager), with the GIL released; then frees the manager (pending
 *   futures complete with ECLOSED), then stops the resolver after it has
 *   resolved everything.
 * Lock order: the queue's lock, then the library's own (cancel).
 */
#include "pysage.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct PySage_Call;

/* the completion queue */
struct dq {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct PySage_Call *head, *tail;
    sage_arena *fill;  /* outcomes of the batch being filled */
    sage_arena *spare; /* an emptied arena back from the resolver */
    bool sleeping, stop;
    int waiters;          /* threads in Call.wait, which drain themselves */
    uint64_t resolved;    /* batches resolved: wakes waiters whose call went */
    atomic_bool nonempty; /* a hint for lock-free peeks: head != NULL */
    atomic_int refs;
    pthread_t thread;
    bool started;
};

typedef struct PySage_Call {
    PyObject_HEAD
    struct dq *q;          /* while the call is pending */
    sage_future *f;        /* until its callback ran (under q->lock) */
    PyObject *future;      /* the Python future, until resolved */
    sage_err code;         /* the outcome, set by the callback */
    sage_value result;     /* in the batch arena */
    const char *detail;    /* in the batch arena */
    struct PySage_Call *next;
} PySage_Call;

typedef struct {
    PyObject_HEAD
    sage_manager *m;
    PyObject *env;
    PyObject *nats;
    int64_t timeout_ms;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    long active; /* calls inside the library now */
    bool closed;
    struct dq *q;
    PyObject *weakreflist;
} PySage_Manager;

/* ------------------------------------------------------------ the queue */

static void dq_unref(struct dq *q)
{
    if (q && atomic_fetch_sub(&q->refs, 1) == 1) {
        pthread_mutex_destroy(&q->lock);
        pthread_cond_destroy(&q->cond);
        sage_arena_free(q->fill);
        sage_arena_free(q->spare);
        free(q);
    }
}

/* on_done: the completion thread, no GIL */
static void on_done(void *arg, sage_future *f)
{
    PySage_Call *c = arg;
    struct dq *q = c->q;
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
    c->result = sage_nil();
    c->detail = NULL;
    if (q->fill == NULL) {
        r = SAGE_ENOMEM;
    } else if (r == SAGE_OK) {
        if (sage_value_copy(&c->result, q->fill, v) != SAGE_OK)
            r = SAGE_ENOMEM;
    } else {
        const char *d = sage_errdetail();
        size_t n = strlen(d);
        char *copy = sage_arena_alloc(q->fill, n + 1);

        if (copy) {
            memcpy(copy, d, n + 1);
            c->detail = copy;
        }
    }
    c->code = r;
    c->f = NULL;
    sage_future_free(f);
    c->next = NULL;
    if (q->tail)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
    atomic_store_explicit(&q->nonempty, true, memory_order_relaxed);
    if (q->sleeping || q->waiters)
        pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

static PyObject *str_set_result, *str_set_exception, *str_call;

/* resolve sets c's Python future from its outcome; GIL held */
static void resolve(PySage_Call *c)
{
    PyObject *fut = c->future, *val, *r;
    PyObject *method = str_set_result;

    c->future = NULL;
    c->q = NULL;
    if (fut == NULL)
        return;
    if (c->code == SAGE_OK) {
        val = pysage_to_py(&c->result, "result");
        if (val == NULL) {
            PyObject *type, *tb;

            PyErr_Fetch(&type, &val, &tb);
            PyErr_NormalizeException(&type, &val, &tb);
            if (tb)
                PyException_SetTraceback(val, tb);
            Py_XDECREF(type);
            Py_XDECREF(tb);
            method = str_set_exception;
        }
    } else if (c->code == SAGE_ECANCELED) {
        /* cancelled through the Python future, which is cancelled already */
        Py_DECREF(fut);
        return;
    } else {
        val = pysage_exc_instance(c->code, c->detail);
        method = str_set_exception;
    }
    if (val == NULL) {
        PyErr_WriteUnraisable(fut);
        Py_DECREF(fut);
        return;
    }
    r = PyObject_CallMethodOneArg(fut, method, val);
    if (r == NULL) {
        /* cancelled meanwhile: InvalidStateError; anything else is ours */
        if (pysage_reg.invalid_state && PyErr_ExceptionMatches(pysage_reg.invalid_state))
            PyErr_Clear();
        else
            PyErr_WriteUnraisable(fut);
    }
    Py_XDECREF(r);
    Py_DECREF(val);
    Py_DECREF(fut);
}

/* dq_take takes the queue's calls and their arena whole; GIL held, so
 * batches are resolved in the order they were taken */
static PySage_Call *dq_take(struct dq *q, sage_arena **arenap)
{
    PySage_Call *batch;

    pthread_mutex_lock(&q->lock);
    batch = q->head;
    *arenap = q->fill;
    q->head = q->tail = NULL;
    q->fill = NULL;
    atomic_store_explicit(&q->nonempty, false, memory_order_relaxed);
    pthread_mutex_unlock(&q->lock);
    return batch;
}

/* dq_resolve resolves a batch and recycles its arena; GIL held */
static void dq_resolve(struct dq *q, PySage_Call *batch, sage_arena *arena)
{
    while (batch) {
        PySage_Call *next = batch->next;

        batch->next = NULL;
        resolve(batch);
        Py_DECREF(batch); /* the reference the callback was given */
        batch = next;
    }
    pthread_mutex_lock(&q->lock);
    q->resolved++;
    if (q->waiters)
        pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    if (arena == NULL)
        return;
    sage_arena_reset(arena);
    pthread_mutex_lock(&q->lock);
    if (q->spare == NULL) {
        q->spare = arena;
        arena = NULL;
    }
    pthread_mutex_unlock(&q->lock);
    sage_arena_free(arena);
}

/* GRACE_NS: how long the resolver leaves completions to the threads that
 * keep calling (they resolve them inline, without a GIL hand-off) before it
 * takes the GIL itself: a delay that only done-callbacks of a thread that
 * neither calls nor waits can see. */
#define GRACE_NS (200 * 1000)

static void *resolver_main(void *arg)
{
    struct dq *q = arg;
    struct timespec grace = {0, GRACE_NS};

    for (;;) {
        PySage_Call *batch;
        sage_arena *arena;
        PyGILState_STATE g;
        bool stop;

        pthread_mutex_lock(&q->lock);
        while ((q->head == NULL || q->waiters > 0) && !q->stop) {
            q->sleeping = true;
            pthread_cond_wait(&q->cond, &q->lock);
            q->sleeping = false;
        }
        stop = q->stop;
        pthread_mutex_unlock(&q->lock);
        if (!stop) {
            nanosleep(&grace, NULL);
            if (!atomic_load_explicit(&q->nonempty, memory_order_relaxed))
                continue; /* a caller resolved them */
        }
        pthread_mutex_lock(&q->lock);
        stop = q->head == NULL && q->stop;
        pthread_mutex_unlock(&q->lock);
        if (stop || !pysage_alive())
            break;
        /* the GIL first, then the batch: a caller may have resolved it meanwhile */
        g = pysage_gil_take();
        batch = dq_take(q, &arena);
        dq_resolve(q, batch, arena);
        pysage_gil_give(g);
    }
    dq_unref(q);
    return NULL;
}

/* dq_drain resolves what completed, on the calling Python thread: a thread
 * that keeps calling never has to hand the GIL to the resolver. */
static void dq_drain(struct dq *q)
{
    PySage_Call *batch;
    sage_arena *arena;

    if (q == NULL || !atomic_load_explicit(&q->nonempty, memory_order_relaxed))
        return;
    batch = dq_take(q, &arena);
    dq_resolve(q, batch, arena);
}

static struct dq *dq_new(void)
{
    struct dq *q = calloc(1, sizeof *q);
    pthread_attr_t attr;

    if (q == NULL)
        return NULL;
    pthread_condattr_t ca;

    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* Call.wait's deadlines */
    pthread_cond_init(&q->cond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&q->refs, 2); /* the manager's and the thread's */
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    if (pthread_create(&q->thread, &attr, resolver_main, q) != 0) {
        pthread_attr_destroy(&attr);
        pthread_mutex_destroy(&q->lock);
        pthread_cond_destroy(&q->cond);
        free(q);
        return NULL;
    }
    pthread_attr_destroy(&attr);
    pthread_setname_np(q->thread, "sage-py-done");
    q->started = true;
    return q;
}

/* dq_stop stops the resolver once it has resolved everything; GIL released */
static void dq_stop(struct dq *q)
{
    bool self;

    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
    self = pthread_equal(pthread_self(), q->thread);
    if (self)
        pthread_detach(q->thread); /* it leaves after this batch */
    else
        pthread_join(q->thread, NULL);
    dq_unref(q);
}

/* ------------------------------------------------------------------ Call */

static PyObject *call_cancel(PySage_Call *self, PyObject *unused)
{
    struct dq *q = self->q;
    bool done = true;

    if (q == NULL)
        Py_RETURN_FALSE;
    pthread_mutex_lock(&q->lock);
    if (self->f != NULL)
        done = sage_future_cancel(self->f) != SAGE_OK;
    pthread_mutex_unlock(&q->lock);
    return PyBool_FromLong(!done);
}

/* Call.wait(timeout=None) -> bool: wait until the call's future is
 * resolved, resolving completions on this thread (no hand-off to the
 * resolver). False if timeout seconds passed first. */
static PyObject *call_wait(PySage_Call *self, PyObject *const *argv, Py_ssize_t nargs)
{
    struct timespec end;
    bool timed = false, expired = false;
    uint64_t gen;
    struct dq *q;

    if (nargs > 0 && argv[0] != Py_None) {
        double t = PyFloat_AsDouble(argv[0]);

        if (t == -1.0 && PyErr_Occurred())
            return NULL;
        if (t < 0)
            t = 0;
        clock_gettime(CLOCK_MONOTONIC, &end);
        end.tv_sec += (time_t)t;
        end.tv_nsec += (long)((t - (double)(time_t)t) * 1e9);
        if (end.tv_nsec >= 1000000000) {
            end.tv_sec++;
            end.tv_nsec -= 1000000000;
        }
        timed = true;
    }
    q = self->q;
    if (q == NULL)
        Py_RETURN_TRUE;
    atomic_fetch_add(&q->refs, 1);
    Py_INCREF(self);
    while (self->future != NULL && !expired) {
        if (atomic_load_explicit(&q->nonempty, memory_order_relaxed)) {
            dq_drain(q);
            continue;
        }
        /* the count of resolved batches, read with the GIL held: a batch
         * resolved after this (which needs the GIL) changes it */
        pthread_mutex_lock(&q->lock);
        gen = q->resolved;
        pthread_mutex_unlock(&q->lock);
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&q->lock);
        q->waiters++;
        while (q->head == NULL && q->resolved == gen && !q->stop && !expired) {
            if (!timed)
                pthread_cond_wait(&q->cond, &q->lock);
            else if (pthread_cond_timedwait(&q->cond, &q->lock, &end) != 0)
                expired = q->head == NULL;
        }
        if (q->stop && q->head == NULL)
            expired = true; /* closed, nothing left for us: the resolver finishes */
        q->waiters--;
        pthread_cond_broadcast(&q->cond); /* the resolver re-evaluates */
        pthread_mutex_unlock(&q->lock);
        Py_END_ALLOW_THREADS
    }
    {
        bool done = self->future == NULL;

        Py_DECREF(self);
        dq_unref(q);
        return PyBool_FromLong(done);
    }
}

static void call_dealloc(PySage_Call *self)
{
    Py_XDECREF(self->future);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef call_methods[] = {
    {"wait", (PyCFunction)(void (*)(void))call_wait, METH_FASTCALL,
     "wait(timeout=None) -> bool: wait for the call's future, resolving completions on this "
     "thread."},
    {"cancel", (PyCFunction)call_cancel, METH_NOARGS,
     "cancel() -> bool: cancel the call if it is still pending (its answer is dropped)."},
    {NULL},
};

PyTypeObject PySage_CallType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sagesvc._core.Call",
    .tp_basicsize = sizeof(PySage_Call),
    .tp_dealloc = (destructor)call_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One pending asynchronous call (the handle behind a CallFuture).",
    .tp_methods = call_methods,
};

/* --------------------------------------------------------------- Manager */

int64_t pysage_ms(PyObject *seconds, int64_t dflt, const char *what, bool *ok)
{
    double s;

    *ok = true;
    if (seconds == NULL || seconds == Py_None)
        return dflt;
    s = PyFloat_AsDouble(seconds);
    if (s == -1.0 && PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "%s: expected seconds as a number, got %s", what,
                     Py_TYPE(seconds)->tp_name);
        *ok = false;
        return -1;
    }
    if (s == 1.0 / 0.0)
        return -1; /* no limit */
    if (!(s > 0) || s > 86400.0 * 365) {
        PyErr_Format(PyExc_ValueError, "%s: expected seconds above 0 (or math.inf), got %R", what,
                     seconds);
        *ok = false;
        return -1;
    }
    {
        int64_t ms = (int64_t)(s * 1000.0 + 0.999999);

        return ms > 0 ? ms : 1;
    }
}

static int manager_init(PySage_Manager *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"env", "namespace", "timeout", "config", "nats", "retries", NULL};
    PyObject *env = Py_None, *timeout = NULL, *config = Py_None, *nats = Py_None;
    const char *ns = NULL;
    int retries = -1;
    sage_manager_opts o;
    sage_manager *m = NULL;
    sage_cluster_opts co;
    bool ok;
    sage_err r;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OzOOOi:Manager", names, &env, &ns, &timeout,
                                     &config, &nats, &retries))
        return -1;
    if (self->m != NULL || self->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Manager: already initialised");
        return -1;
    }
    if (env != Py_None && !PyObject_TypeCheck(env, &PySage_EnvType)) {
        PyErr_Format(PyExc_TypeError, "environment: expected a sagesvc Environment, got %s",
                     Py_TYPE(env)->tp_name);
        return -1;
    }
    if (config != Py_None && !PyObject_TypeCheck(config, &PySage_ConfigType)) {
        PyErr_SetString(PyExc_TypeError, "config: expected a sagesvc._core.Config");
        return -1;
    }
    if (nats != Py_None && !PyObject_TypeCheck(nats, &PySage_NatsType)) {
        PyErr_SetString(PyExc_TypeError, "nats: expected a sagesvc._core.Nats");
        return -1;
    }
    sage_manager_opts_init(&o);
    if (config != Py_None)
        sage_manager_opts_from_conf(&o, ((PySage_Config *)config)->cfg);
    if (env != Py_None)
        o.env = ((PySage_Env *)env)->env;
    if (ns != NULL)
        o.ns = ns;
    else if (env != Py_None)
        o.ns = sage_env_ns(((PySage_Env *)env)->env);
    o.timeout_ms = pysage_ms(timeout, o.timeout_ms, "timeout", &ok);
    if (!ok)
        return -1;
    if (retries >= 0)
        o.retries = (uint32_t)retries;
    if (nats != Py_None) {
        memset(&co, 0, sizeof co);
        co.nats = &((PySage_Nats *)nats)->conf;
        o.cluster = &co;
    }
    Py_BEGIN_ALLOW_THREADS
    r = sage_manager_new(&m, &o);
    Py_END_ALLOW_THREADS
    if (r != SAGE_OK) {
        pysage_raise_last(r);
        return -1;
    }
    if ((self->q = dq_new()) == NULL) {
        Py_BEGIN_ALLOW_THREADS
        sage_manager_free(m);
        Py_END_ALLOW_THREADS
        PyErr_SetString(PyExc_RuntimeError, "cannot start the manager's resolver thread");
        return -1;
    }
    self->m = m;
    self->timeout_ms = o.timeout_ms;
    if (env != Py_None) {
        Py_INCREF(env);
        self->env = env;
    }
    if (nats != Py_None) {
        Py_INCREF(nats);
        self->nats = nats;
    }
    return 0;
}

static PyObject *manager_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    if (str_set_result == NULL &&
        ((str_set_result = PyUnicode_InternFromString("set_result")) == NULL ||
         (str_set_exception = PyUnicode_InternFromString("set_exception")) == NULL ||
         (str_call = PyUnicode_InternFromString("_call")) == NULL))
        return NULL;
    PySage_Manager *self = (PySage_Manager *)type->tp_alloc(type, 0);

    if (self == NULL)
        return NULL;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->idle, NULL);
    return (PyObject *)self;
}

/* enter counts a call in flight; NULL (raised) when closed */
static sage_manager *enter(PySage_Manager *self)
{
    sage_manager *m;

    pthread_mutex_lock(&self->lock);
    m = self->closed ? NULL : self->m;
    if (m)
        self->active++;
    pthread_mutex_unlock(&self->lock);
    if (m == NULL)
        pysage_raise(SAGE_ECLOSED, self->closed ? "the manager is closed"
                                                : "the manager is not initialised");
    return m;
}

/* q_ref returns the completion queue with a reference, or NULL if closed */
static struct dq *q_ref(PySage_Manager *self)
{
    struct dq *q;

    pthread_mutex_lock(&self->lock);
    q = self->q;
    if (q)
        atomic_fetch_add(&q->refs, 1);
    pthread_mutex_unlock(&self->lock);
    return q;
}

static void leave(PySage_Manager *self)
{
    pthread_mutex_lock(&self->lock);
    if (--self->active == 0 && self->closed)
        pthread_cond_broadcast(&self->idle);
    pthread_mutex_unlock(&self->lock);
}

static void manager_close_now(PySage_Manager *self)
{
    sage_manager *m;
    struct dq *q;

    /* the GIL first: a thread leaving a call holds it while it takes lock */
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->lock);
    self->closed = true;
    while (self->active > 0)
        pthread_cond_wait(&self->idle, &self->lock);
    m = self->m;
    q = self->q;
    self->m = NULL;
    self->q = NULL;
    pthread_mutex_unlock(&self->lock);
    sage_manager_free(m); /* pending futures: ECLOSED, queued for the resolver */
    if (q)
        dq_stop(q);
    Py_END_ALLOW_THREADS
}

static PyObject *manager_close(PySage_Manager *self, PyObject *unused)
{
    manager_close_now(self);
    Py_RETURN_NONE;
}

static void manager_dealloc(PySage_Manager *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    manager_close_now(self);
    Py_CLEAR(self->env);
    Py_CLEAR(self->nats);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->idle);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int manager_traverse(PySage_Manager *self, visitproc visit, void *arg)
{
    Py_VISIT(self->env);
    Py_VISIT(self->nats);
    return 0;
}

static int manager_clear(PySage_Manager *self)
{
    return 0; /* env and nats refer to nothing of ours: no cycle through them */
}

/* ---------------------------------------------------------------- calls */

struct callargs {
    PyObject *service, *method, *args, *kwargs, *timeout, *idempotent, *retries;
};

/* parse_call reads (service_name, method, args=(), kwargs=None,
 * timeout=None, *, idempotent=False, retries=None) from a fastcall */
static int parse_call(struct callargs *ca, PyObject *const *argv, Py_ssize_t nargs,
                      PyObject *kwnames, const char *fname)
{
    static const char *const names[] = {"service_name", "method", "args", "kwargs", "timeout",
                                        "idempotent", "retries"};
    PyObject **slots[] = {&ca->service, &ca->method, &ca->args, &ca->kwargs, &ca->timeout,
                          &ca->idempotent, &ca->retries};
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    memset(ca, 0, sizeof *ca);
    if (nargs > 5) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 5 positional arguments (%zd given)",
                     fname, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        *slots[i] = argv[i];
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        size_t i;

        for (i = 0; i < 7; i++)
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0)
                break;
        if (i == 7) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname,
                         key);
            return -1;
        }
        if (*slots[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname,
                         names[i]);
            return -1;
        }
        *slots[i] = argv[nargs + k];
    }
    if (ca->service == NULL || ca->method == NULL) {
        PyErr_Format(PyExc_TypeError, "%s() needs service_name and method", fname);
        return -1;
    }
    if (!PyUnicode_Check(ca->service) || !PyUnicode_Check(ca->method)) {
        PyErr_Format(PyExc_TypeError, "%s(): service_name and method must be str, got %s and %s",
                     fname, Py_TYPE(ca->service)->tp_name, Py_TYPE(ca->method)->tp_name);
        return -1;
    }
    return 0;
}

/* build_request converts ca into rq (values in a); -1 with an exception.
 * A `timeout` key in kwargs is the call's timeout in seconds when no
 * timeout= is given (the reference document's form): it is not passed on. */
static int build_request(PySage_Manager *self, struct callargs *ca, sage_request *rq, sage_arena *a)
{
    PyObject *kwargs = ca->kwargs, *timeout = ca->timeout, *copy = NULL;
    bool ok;
    int rc = -1;

    memset(rq, 0, sizeof *rq);
    if ((rq->service = PyUnicode_AsUTF8(ca->service)) == NULL ||
        (rq->method = PyUnicode_AsUTF8(ca->method)) == NULL)
        return -1;
    if ((timeout == NULL || timeout == Py_None) && kwargs && PyDict_Check(kwargs)) {
        PyObject *t = PyDict_GetItemString(kwargs, "timeout");

        if (t != NULL && (PyLong_Check(t) || PyFloat_Check(t)) && !PyBool_Check(t)) {
            if ((copy = PyDict_Copy(kwargs)) == NULL)
                return -1;
            timeout = t;
            Py_INCREF(timeout);
            if (PyDict_DelItemString(copy, "timeout") < 0)
                goto out;
            kwargs = copy;
        }
    }
    rq->timeout_ms = pysage_ms(timeout, 0, "timeout", &ok);
    if (!ok)
        goto out;
    if (ca->idempotent) {
        int b = PyObject_IsTrue(ca->idempotent);

        if (b < 0)
            goto out;
        rq->idempotent = b;
    }
    if (ca->retries && ca->retries != Py_None) {
        long n = PyLong_AsLong(ca->retries);

        if (n == -1 && PyErr_Occurred())
            goto out;
        if (n < 0 || n > 100) {
            PyErr_Format(PyExc_ValueError, "retries: expected 0..100, got %ld", n);
            goto out;
        }
        rq->retries = (uint32_t)n;
    }
    if (pysage_args_from_py(&rq->args, &rq->nargs, ca->args, a) < 0 ||
        pysage_kwargs_from_py(&rq->kwargs, &rq->nkwargs, kwargs, a) < 0)
        goto out;
    rc = 0;
out:
    if (copy) {
        Py_DECREF(timeout);
        Py_DECREF(copy);
    }
    return rc;
}

static PyObject *manager_call_sync(PySage_Manager *self, PyObject *const *argv, Py_ssize_t nargs,
                                   PyObject *kwnames)
{
    struct callargs ca;
    sage_request rq;
    sage_arena *a;
    sage_manager *m;
    sage_value res;
    PyObject *out;
    sage_err r;

    if (parse_call(&ca, argv, nargs, kwnames, "call_service_sync") < 0)
        return NULL;
    if ((a = pysage_arena_take()) == NULL)
        return NULL;
    if (build_request(self, &ca, &rq, a) < 0 || (m = enter(self)) == NULL) {
        pysage_arena_give(a);
        return NULL;
    }
    res = sage_nil();
    Py_BEGIN_ALLOW_THREADS
    r = sage_manager_call_sync(&res, m, &rq, a);
    Py_END_ALLOW_THREADS
    leave(self);
    out = r == SAGE_OK ? pysage_to_py(&res, "result") : pysage_raise_last(r);
    pysage_arena_give(a);
    return out;
}

static PyObject *manager_call_async(PySage_Manager *self, PyObject *const *argv, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    struct callargs ca;
    sage_request rq;
    sage_arena *a;
    sage_manager *m;
    sage_future *f = NULL;
    PySage_Call *call;
    PyObject *fut;
    struct dq *q;
    sage_err r;

    if (parse_call(&ca, argv, nargs, kwnames, "call_service_async") < 0)
        return NULL;
    if (pysage_reg.future_cls == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "sagesvc is not initialised (import sagesvc)");
        return NULL;
    }
    if ((a = pysage_arena_take()) == NULL)
        return NULL;
    if (build_request(self, &ca, &rq, a) < 0) {
        pysage_arena_give(a);
        return NULL;
    }
    /* what completed first (done-callbacks may run here, and may even
     * close this manager: the queue is held by a reference, not by enter) */
    if ((q = q_ref(self)) != NULL) {
        dq_drain(q);
        dq_unref(q);
    }
    if ((m = enter(self)) == NULL) {
        pysage_arena_give(a);
        return NULL;
    }
    fut = PyObject_CallNoArgs(pysage_reg.future_cls);
    call = fut ? PyObject_New(PySage_Call, &PySage_CallType) : NULL;
    if (call == NULL) {
        leave(self);
        Py_XDECREF(fut);
        pysage_arena_give(a);
        return NULL;
    }
    call->q = NULL;
    call->f = NULL;
    call->future = NULL;
    call->next = NULL;
    call->code = SAGE_OK;
    call->detail = NULL;
    Py_BEGIN_ALLOW_THREADS
    r = sage_manager_call(&f, m, &rq);
    Py_END_ALLOW_THREADS
    pysage_arena_give(a);
    if (r != SAGE_OK) {
        leave(self);
        Py_DECREF(call);
        Py_DECREF(fut);
        return pysage_raise_last(r);
    }
    call->q = self->q;
    call->f = f;
    Py_INCREF(fut);
    call->future = fut;
    if (PyObject_SetAttr(fut, str_call, (PyObject *)call) < 0) {
        PyErr_Clear(); /* the future still completes; it just cannot be cancelled */
    }
    Py_INCREF(call); /* the callback's, given back by the resolver */
    r = sage_future_on_done(f, on_done, call);
    leave(self);
    if (r != SAGE_OK) {
        /* never runs: drop the call */
        sage_future_free(f);
        call->f = NULL;
        call->q = NULL;
        Py_CLEAR(call->future);
        Py_DECREF(call); /* the callback's */
        Py_DECREF(call);
        Py_DECREF(fut);
        return pysage_raise_last(r);
    }
    Py_DECREF(call);
    return fut;
}

static PyObject *manager_drain(PySage_Manager *self, PyObject *unused)
{
    struct dq *q = q_ref(self);

    if (q != NULL) {
        dq_drain(q);
        dq_unref(q);
    }
    Py_RETURN_NONE;
}

static PyObject *manager_lookup(PySage_Manager *self, PyObject *arg)
{
    sage_endpoint ep;
    sage_manager *m;
    const char *name;
    sage_err r;

    if (!PyUnicode_Check(arg))
        return PyErr_Format(PyExc_TypeError, "service_name must be a str, got %s",
                            Py_TYPE(arg)->tp_name);
    if ((name = PyUnicode_AsUTF8(arg)) == NULL || (m = enter(self)) == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = sage_manager_lookup(&ep, m, name);
    Py_END_ALLOW_THREADS
    leave(self);
    if (r != SAGE_OK)
        return pysage_raise_last(r);
    return Py_BuildValue("{s:s s:s s:i}", "transport", sage_transport_name(ep.transport),
                         "address", ep.address, "pid", (int)ep.pid);
}

static PyObject *manager_stats(PySage_Manager *self, PyObject *unused)
{
    sage_manager_stats st;
    sage_manager *m;
    sage_err r;

    if ((m = enter(self)) == NULL)
        return NULL;
    r = sage_manager_stats_read(&st, m);
    leave(self);
    if (r != SAGE_OK)
        return pysage_raise_last(r);
    return Py_BuildValue("{s:K s:K s:K s:K s:K s:K s:K s:K s:K}", "calls",
                         (unsigned long long)st.calls, "completed",
                         (unsigned long long)st.completed, "errors", (unsigned long long)st.errors,
                         "timeouts", (unsigned long long)st.timeouts, "retries",
                         (unsigned long long)st.retries, "late", (unsigned long long)st.late,
                         "malformed", (unsigned long long)st.malformed, "pending",
                         (unsigned long long)st.pending, "connections",
                         (unsigned long long)st.connections);
}

static PyObject *manager_namespace(PySage_Manager *self, void *closure)
{
    sage_manager *m = enter(self);
    PyObject *s;

    if (m == NULL)
        return NULL;
    s = PyUnicode_FromString(sage_manager_ns(m));
    leave(self);
    return s;
}

static PyObject *manager_closed(PySage_Manager *self, void *closure)
{
    return PyBool_FromLong(self->closed || self->m == NULL);
}

static PyObject *manager_timeout(PySage_Manager *self, void *closure)
{
    if (self->timeout_ms < 0)
        return PyFloat_FromDouble(1.0 / 0.0);
    return PyFloat_FromDouble((double)self->timeout_ms / 1000.0);
}

static PyMethodDef manager_methods[] = {
    {"call_service_sync", (PyCFunction)(void (*)(void))manager_call_sync,
     METH_FASTCALL | METH_KEYWORDS,
     "call_service_sync(service_name, method, args=(), kwargs=None, timeout=None, *, "
     "idempotent=False, retries=None)\n--\n\n"
     "Call a method and wait for its result, which is returned; a failure raises the "
     "sagesvc.ServiceError subclass of its class. timeout is in seconds (None: the manager's). "
     "The GIL is released while waiting."},
    {"call_service_async", (PyCFunction)(void (*)(void))manager_call_async,
     METH_FASTCALL | METH_KEYWORDS,
     "call_service_async(service_name, method, args=(), kwargs=None, timeout=None, *, "
     "idempotent=False, retries=None)\n--\n\n"
     "Send a call and return a concurrent.futures.Future (sagesvc.CallFuture) for its result."},
    {"_drain", (PyCFunction)manager_drain, METH_NOARGS,
     "_drain(): resolve the futures of calls that completed, on this thread."},
    {"lookup", (PyCFunction)manager_lookup, METH_O,
     "lookup(service_name) -> dict(transport, address, pid): where the service is reached."},
    {"stats", (PyCFunction)manager_stats, METH_NOARGS, "stats() -> dict of the manager's figures"},
    {"close", (PyCFunction)manager_close, METH_NOARGS,
     "close(): wait for calls in flight on other threads, complete pending futures with an "
     "UnavailableError (closed), and free the manager. Idempotent."},
    {NULL},
};

static PyGetSetDef manager_getset[] = {
    {"namespace", (getter)manager_namespace, NULL, "the manager's namespace", NULL},
    {"closed", (getter)manager_closed, NULL, "whether close() was called", NULL},
    {"timeout", (getter)manager_timeout, NULL, "default call timeout, seconds", NULL},
    {NULL},
};

PyTypeObject PySage_ManagerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sagesvc._core.Manager",
    .tp_basicsize = sizeof(PySage_Manager),
    .tp_dealloc = (destructor)manager_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Manager(env=None, namespace=None, timeout=30.0, config=None, nats=None, "
              "retries=-1): calls services (sagesvc.ServiceManager is the document's name).",
    .tp_traverse = (traverseproc)manager_traverse,
    .tp_clear = (inquiry)manager_clear,
    .tp_weaklistoffset = offsetof(PySage_Manager, weakreflist),
    .tp_methods = manager_methods,
    .tp_getset = manager_getset,
    .tp_init = (initproc)manager_init,
    .tp_new = manager_new,
};
