/*
 * manager.c - sagesvc._core.Manager: calls, sync and async.
 *
 * Design notes
 * - A sync call converts its arguments into an arena of its thread,
 *   releases the GIL for sage_manager_call_sync, takes it back and
 *   converts the result. A Python service in this process may run on this
 *   very thread meanwhile (a direct call): it takes the GIL itself.
 * - An async call makes a future (future.c: one allocation, no Python
 *   code), releases the GIL to take the answers that have come (every
 *   POLL_EVERY calls: sage_manager_poll, caller-runs) and send, binds the
 *   future to the library's sage_future (its outcome reaches the future
 *   through the manager's completion queue, complete.c), and then resolves
 *   what has completed: a thread that keeps calling takes and resolves its
 *   answers itself, without a wake-up or a GIL hand-off.
 * - The completion queue lives as long as the manager object (and its
 *   futures): close() stops it, so its pointer is read without a lock.
 * - close() waits for calls in flight on other threads (they hold the
 *   manager), with the GIL released; then frees the manager (pending
 *   futures complete with ECLOSED), then stops the queue's resolver after
 *   it has resolved everything.
 */
#include "pysage.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* A thread that keeps calling asynchronously takes the answers that have
 * come every POLL_EVERY calls: in batches, so a poll's fixed cost (and the
 * chance of finding an answer half written, which costs a look at its
 * writer) is shared. Waits and watched futures poll for themselves. */
#define POLL_EVERY 8

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
    pysage_dq *q;   /* from init to dealloc */
    unsigned calls; /* async calls made (GIL), for POLL_EVERY */
    PyObject *weakreflist;
} PySage_Manager;

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
    if ((self->q = pysage_dq_new()) == NULL) {
        Py_BEGIN_ALLOW_THREADS
        sage_manager_free(m);
        Py_END_ALLOW_THREADS
        PyErr_SetString(PyExc_RuntimeError, "cannot start the manager's resolver thread");
        return -1;
    }
    self->m = m;
    pysage_dq_attach(self->q, m);
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
    pysage_dq *q = self->q;

    /* the GIL first: a thread leaving a call holds it while it takes lock */
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->lock);
    self->closed = true;
    while (self->active > 0)
        pthread_cond_wait(&self->idle, &self->lock);
    m = self->m;
    self->m = NULL;
    pthread_mutex_unlock(&self->lock);
    if (q)
        pysage_dq_detach(q); /* no thread of ours polls m any more */
    sage_manager_free(m); /* pending futures: ECLOSED, queued for the resolver */
    if (q)
        pysage_dq_stop(q);
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
    pysage_dq_unref(self->q);
    self->q = NULL;
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
    PySage_Future *fut;
    sage_err r;
    bool poll;

    if (parse_call(&ca, argv, nargs, kwnames, "call_service_async") < 0)
        return NULL;
    if (pysage_reg.future_cls == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "sagesvc is not initialised (import sagesvc)");
        return NULL;
    }
    if ((a = pysage_arena_take()) == NULL)
        return NULL;
    /* everything that may run Python code (a collection) before enter: a
     * close() there would wait for us */
    if (build_request(self, &ca, &rq, a) < 0 ||
        (fut = pysage_future_new(pysage_reg.future_cls)) == NULL) {
        pysage_arena_give(a);
        return NULL;
    }
    if ((m = enter(self)) == NULL) {
        Py_DECREF(fut);
        pysage_arena_give(a);
        return NULL;
    }
    poll = self->calls++ % POLL_EVERY == 0;
    Py_BEGIN_ALLOW_THREADS
    /* the answers that have come: taken here, no thread is woken for them
     * (before the call: its own answer would beat its callback, which
     * would then be handed to the completion thread) */
    if (poll) {
        pysage_dq_polled(self->q);
        sage_manager_poll(NULL, m, 0);
    }
    r = sage_manager_call(&f, m, &rq);
    Py_END_ALLOW_THREADS
    pysage_arena_give(a);
    if (r == SAGE_OK)
        r = pysage_dq_bind(self->q, fut, f);
    leave(self);
    if (r != SAGE_OK) {
        Py_DECREF(fut);
        return pysage_raise_last(r);
    }
    /* resolve what has completed (done-callbacks may run here, and may even
     * close this manager: the queue outlives that) */
    pysage_dq_drain(self->q);
    return (PyObject *)fut;
}

static PyObject *manager_drain(PySage_Manager *self, PyObject *unused)
{
    pysage_dq_poll(self->q);
    pysage_dq_drain(self->q);
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
     "_drain(): take the answers that have come and resolve their futures, on this thread."},
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
