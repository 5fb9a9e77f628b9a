/*
 * task.c - sagesvc._core.Task: a Python object served as a sagesvc
 * service, on any transport.
 *
 * Design notes
 * - The service table is built at run time: one entry per public method
 *   the package names, every entry pointing at one trampoline, which finds
 *   the bound method by the called name (the task's sorted copy of the
 *   names, binary search) and runs it with the GIL.
 * - The service's state is this object. sage_service.create receives only
 *   a configuration, so the object is handed over through a thread-local
 *   set around sage_task_start, which calls create on the calling thread.
 * - Methods run on the task's listener and worker threads, or, for a
 *   synchronous call from this process to a short method, on the caller's
 *   own thread after it released the GIL (a direct call). The trampoline
 *   takes the GIL on whatever thread it is (gil.c) and assumes nothing.
 * - A custom handler (BaseServiceTask.custom_handle_request overridden)
 *   is a sage_task_kind; its default handling (middleware, then the
 *   method) is reached through Task.default_handle, which finds the call
 *   being handled on this thread in a thread-local.
 * - Every wait (start, stop, free) releases the GIL: a drain runs the
 *   queued calls, which need it.
 */
#include "pysage.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct PySage_Task {
    PyObject_HEAD
    sage_task *t;
    sage_service svc;
    sage_method *methods;      /* nmethods + 1, names owned */
    const char **sorted;       /* names in strcmp order */
    PyObject **bound;          /* bound method of sorted[i] */
    size_t nmethods;
    PyObject *service;         /* the Python service object */
    PyObject *handler;         /* custom_handle_request, or NULL */
    sage_task_kind kind;
    sage_middleware **pymw;    /* Python middleware hooks (owned) */
    size_t npymw;
    PyObject *nats;            /* kept for the task's life */
    char name[SAGE_NAME_MAX + 1];
    PyObject *weakreflist;
};

static _Thread_local PySage_Task *starting;
static _Thread_local sage_call *handling;

/* ------------------------------------------------------------ trampoline */

static sage_err py_create(void **statep, const sage_value *config)
{
    if (starting == NULL)
        return SAGE_ESTATE;
    *statep = starting;
    return SAGE_OK;
}

static PyObject *find_bound(PySage_Task *self, const char *name)
{
    size_t lo = 0, hi = self->nmethods;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int d = strcmp(name, self->sorted[mid]);

        if (d == 0)
            return self->bound[mid];
        if (d < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static sage_err fail(sage_call *call, sage_err dflt, bool binding)
{
    PyObject *exc = NULL;
    char msg[1024];
    sage_err code = pysage_classify(&exc, msg, sizeof msg, dflt, binding);

    if (code == SAGE_EHANDLER && exc != NULL)
        pysage_log_exception(sage_call_service(call), sage_call_method(call), exc);
    Py_XDECREF(exc);
    return sage_call_error(call, code, "%s", msg);
}

sage_err pysage_fail_call(sage_call *call, sage_err dflt)
{
    return fail(call, dflt, false);
}

sage_err pysage_fail_binding(sage_call *call)
{
    return fail(call, SAGE_EHANDLER, true);
}

/* set_result converts r (borrowed) into call's result */
static sage_err set_result(sage_call *call, PyObject *r)
{
    sage_value v;

    if (pysage_from_py(&v, r, sage_call_arena(call), "result") < 0)
        return pysage_fail_call(call, SAGE_EHANDLER);
    return sage_call_result(call, &v);
}

sage_err pysage_apply_outcome(sage_call *call, PyObject *r)
{
    if (pysage_reg.response_cls && PyObject_TypeCheck(r, (PyTypeObject *)pysage_reg.response_cls)) {
        PyObject *ok = PyObject_GetAttrString(r, "success");
        int success = ok ? PyObject_IsTrue(ok) : -1;
        sage_err code;

        Py_XDECREF(ok);
        if (success < 0)
            return pysage_fail_call(call, SAGE_EHANDLER);
        if (success) {
            PyObject *res = PyObject_GetAttrString(r, "result");

            if (res == NULL)
                return pysage_fail_call(call, SAGE_EHANDLER);
            code = set_result(call, res);
            Py_DECREF(res);
        } else {
            PyObject *err = PyObject_GetAttrString(r, "error");
            PyObject *s = err && err != Py_None ? PyObject_Str(err) : NULL;
            const char *t = s ? PyUnicode_AsUTF8(s) : NULL;

            if (t == NULL)
                PyErr_Clear();
            code = sage_call_error(call, SAGE_EHANDLER, "%s", t && t[0] ? t : "the service failed");
            Py_XDECREF(s);
            Py_XDECREF(err);
        }
        return code;
    }
    return set_result(call, r);
}

/* invoke runs fn for call; GIL held */
static sage_err invoke(PyObject *fn, sage_call *call)
{
    const sage_value *args = sage_call_args(call), *kw = sage_call_kwargs(call);
    size_t nargs = args->type == SAGE_ARRAY ? args->as.array.len : 0;
    size_t nkw = kw->type == SAGE_MAP ? kw->as.map.len : 0;
    PyObject *small[8], **stack = small, *kwnames = NULL, *res = NULL;
    size_t n = 0, total = nargs + nkw;
    sage_err r;

    if (total > sizeof small / sizeof small[0] &&
        (stack = PyMem_Malloc(total * sizeof *stack)) == NULL) {
        PyErr_NoMemory();
        return pysage_fail_call(call, SAGE_EHANDLER);
    }
    for (; n < nargs; n++) {
        char where[32];

        snprintf(where, sizeof where, "args[%zu]", n);
        if ((stack[n] = pysage_to_py(&args->as.array.items[n], where)) == NULL)
            goto bad_args;
    }
    if (nkw) {
        if ((kwnames = PyTuple_New((Py_ssize_t)nkw)) == NULL)
            goto bad_args;
        for (size_t k = 0; k < nkw; k++, n++) {
            const sage_pair *p = &kw->as.map.items[k];
            PyObject *name;

            if (p->key.type != SAGE_STR) {
                PyErr_Format(PyExc_TypeError, "kwargs: key %zu is not a string", k);
                goto bad_args;
            }
            name = PyUnicode_DecodeUTF8(p->key.as.str.ptr, (Py_ssize_t)p->key.as.str.len, NULL);
            if (name == NULL)
                goto bad_args;
            PyUnicode_InternInPlace(&name);
            PyTuple_SET_ITEM(kwnames, (Py_ssize_t)k, name);
            if ((stack[n] = pysage_to_py(&p->val, "kwargs")) == NULL)
                goto bad_args;
        }
    }
    res = PyObject_Vectorcall(fn, stack, nargs, kwnames);
    r = res ? set_result(call, res) : pysage_fail_binding(call);
    Py_XDECREF(res);
    goto out;
bad_args:
    r = pysage_fail_call(call, SAGE_EBADARGS);
out:
    for (size_t i = 0; i < n; i++)
        Py_DECREF(stack[i]);
    Py_XDECREF(kwnames);
    if (stack != small)
        PyMem_Free(stack);
    return r;
}

static sage_err py_method(void *state, sage_call *call)
{
    PySage_Task *self = state;
    PyObject *fn;
    PyGILState_STATE g;
    sage_err r;

    if (self == NULL)
        return sage_call_error(call, SAGE_ESTATE, "the Python service has no state");
    fn = find_bound(self, sage_call_method(call));
    if (fn == NULL)
        return sage_call_error(call, SAGE_ENOMETHOD, "service '%s' has no method '%s'", self->name,
                               sage_call_method(call));
    if (!pysage_alive())
        return sage_call_error(call, SAGE_EUNAVAILABLE, "the Python interpreter is exiting");
    g = pysage_gil_take();
    r = invoke(fn, call);
    pysage_gil_give(g);
    return r;
}

/* native_echo: a C method (no Python, no GIL): answers its first argument */
static sage_err native_echo(void *state, sage_call *call)
{
    const sage_value *args = sage_call_args(call);

    if (args->type != SAGE_ARRAY || args->as.array.len < 1)
        return sage_call_error(call, SAGE_EBADARGS, "echo takes at least one argument");
    return sage_call_result(call, &args->as.array.items[0]);
}

PyObject *pysage_request_object(sage_call *call)
{
    PyObject *a[6] = {NULL};
    PyObject *req = NULL;
    char id[24];

    if (pysage_reg.request_cls == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "sagesvc is not initialised");
        return NULL;
    }
    snprintf(id, sizeof id, "%llu", (unsigned long long)sage_call_id(call));
    a[0] = PyUnicode_FromString(id);
    a[1] = PyUnicode_FromString(sage_call_service(call));
    a[2] = PyUnicode_FromString(sage_call_method(call));
    a[3] = pysage_tuple_from_array(sage_call_args(call), "args");
    a[4] = pysage_dict_from_map(sage_call_kwargs(call), "kwargs");
    a[5] = PyUnicode_FromString(sage_call_caller(call) ? sage_call_caller(call) : "");
    if (a[0] && a[1] && a[2] && a[3] && a[4] && a[5])
        req = PyObject_Vectorcall(pysage_reg.request_cls, a, 6, NULL);
    for (int i = 0; i < 6; i++)
        Py_XDECREF(a[i]);
    return req;
}

static sage_err py_handle(void *arg, void *state, sage_call *call)
{
    PySage_Task *self = arg;
    sage_call *outer;
    PyObject *req, *res;
    PyGILState_STATE g;
    sage_err r;

    if (!pysage_alive())
        return sage_call_error(call, SAGE_EUNAVAILABLE, "the Python interpreter is exiting");
    g = pysage_gil_take();
    outer = handling;
    handling = call;
    req = pysage_request_object(call);
    if (req == NULL) {
        r = pysage_fail_call(call, SAGE_EBADARGS);
    } else {
        res = PyObject_CallOneArg(self->handler, req);
        Py_DECREF(req);
        r = res ? pysage_apply_outcome(call, res) : pysage_fail_binding(call);
        Py_XDECREF(res);
    }
    handling = outer;
    pysage_gil_give(g);
    return r;
}

/* ----------------------------------------------------------------- type */

sage_task *pysage_task_ptr(PyObject *o)
{
    if (!PyObject_TypeCheck(o, &PySage_TaskType)) {
        PyErr_Format(PyExc_TypeError, "expected a sagesvc service task, got %s",
                     Py_TYPE(o)->tp_name);
        return NULL;
    }
    if (((PySage_Task *)o)->t == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the task is not initialised");
        return NULL;
    }
    return ((PySage_Task *)o)->t;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* build_methods fills the service table from names (a sequence of str) */
static int build_methods(PySage_Task *self, PyObject *names, PyObject *idempotent, bool native)
{
    PyObject *seq;
    Py_ssize_t n;

    if (native) {
        self->methods = calloc(2, sizeof *self->methods);
        self->sorted = calloc(1, sizeof *self->sorted);
        self->bound = calloc(1, sizeof *self->bound);
        if (!self->methods || !self->sorted || !self->bound)
            return PyErr_NoMemory(), -1;
        self->methods[0].name = strdup("echo");
        self->methods[0].fn = native_echo;
        self->methods[0].flags = SAGE_METHOD_IDEMPOTENT;
        self->sorted[0] = self->methods[0].name;
        self->nmethods = 0; /* nothing for the trampoline */
        return self->methods[0].name ? 0 : (PyErr_NoMemory(), -1);
    }
    if ((seq = PySequence_Fast(names, "methods must be a sequence of str")) == NULL)
        return -1;
    n = PySequence_Fast_GET_SIZE(seq);
    self->methods = calloc((size_t)n + 1, sizeof *self->methods);
    self->sorted = calloc((size_t)n + 1, sizeof *self->sorted);
    self->bound = calloc((size_t)n + 1, sizeof *self->bound);
    if (!self->methods || !self->sorted || !self->bound) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
        const char *s;
        int idem = 0;

        if (!PyUnicode_Check(it) || (s = PyUnicode_AsUTF8(it)) == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "methods[%zd] is not a str", i);
            Py_DECREF(seq);
            return -1;
        }
        if (idempotent && idempotent != Py_None &&
            (idem = PySequence_Contains(idempotent, it)) < 0) {
            Py_DECREF(seq);
            return -1;
        }
        if ((self->methods[i].name = strdup(s)) == NULL) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
        self->methods[i].fn = py_method;
        self->methods[i].flags = idem ? SAGE_METHOD_IDEMPOTENT : 0;
        self->sorted[i] = self->methods[i].name;
        self->nmethods = (size_t)i + 1;
    }
    Py_DECREF(seq);
    qsort(self->sorted, self->nmethods, sizeof *self->sorted, cmp_names);
    for (size_t i = 0; i < self->nmethods; i++)
        if ((self->bound[i] = PyObject_GetAttrString(self->service, self->sorted[i])) == NULL)
            return -1;
    return 0;
}

/* build_middleware makes the chain: str items are built-in middleware by
 * name, anything else Python middleware */
static int build_middleware(PySage_Task *self, PyObject *list, const sage_middleware ***chainp,
                            size_t *np)
{
    PyObject *seq;
    Py_ssize_t n;
    const sage_middleware **chain;

    *chainp = NULL;
    *np = 0;
    if (list == NULL || list == Py_None)
        return 0;
    if ((seq = PySequence_Fast(list, "middleware must be a list")) == NULL)
        return -1;
    n = PySequence_Fast_GET_SIZE(seq);
    chain = calloc((size_t)n + 1, sizeof *chain);
    self->pymw = calloc((size_t)n + 1, sizeof *self->pymw);
    if (chain == NULL || self->pymw == NULL) {
        free(chain);
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, i);

        if (PyUnicode_Check(it)) {
            const char *s = PyUnicode_AsUTF8(it);

            if (s == NULL || (chain[i] = sage_middleware_find(s)) == NULL) {
                if (s != NULL) {
                    char msg[160];

                    snprintf(msg, sizeof msg,
                             "unknown middleware '%.64s' (the built-in ones are 'logging' and "
                             "'deadline')", s);
                    pysage_raise(SAGE_ECONFIG, msg);
                }
                free(chain);
                Py_DECREF(seq);
                return -1;
            }
        } else {
            sage_middleware *mw = pysage_middleware_new(it, self->name);

            if (mw == NULL) {
                free(chain);
                Py_DECREF(seq);
                return -1;
            }
            self->pymw[self->npymw++] = mw;
            chain[i] = mw;
        }
    }
    Py_DECREF(seq);
    *chainp = chain;
    *np = (size_t)n;
    return 0;
}

static int task_init(PySage_Task *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"service", "name", "namespace", "transport", "methods", "max_workers",
                            "queue_timeout_ms", "request_queue_size", "middleware", "handler",
                            "idempotent", "nats", "durable", "ack_wait_ms", "native",
                            "error_threshold", "max_request", NULL};
    PyObject *service, *methods = Py_None, *middleware = Py_None, *handler = Py_None,
             *idempotent = Py_None, *nats = Py_None;
    const char *name, *ns = NULL, *transport = "local", *native = NULL;
    unsigned int max_workers = 0, queue_size = 0;
    long long queue_timeout_ms = -1, ack_wait_ms = 0;
    int durable = 0;
    double error_threshold = -1;
    Py_ssize_t max_request = 0;
    const sage_middleware **chain = NULL;
    size_t nchain = 0;
    sage_task_opts o;
    sage_cluster_opts co;
    sage_err r;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "Os|zsOILIOOOOpLzdn:Task", names, &service, &name,
                                     &ns, &transport, &methods, &max_workers, &queue_timeout_ms,
                                     &queue_size, &middleware, &handler, &idempotent, &nats,
                                     &durable, &ack_wait_ms, &native, &error_threshold,
                                     &max_request))
        return -1;
    if (self->t != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Task: already initialised");
        return -1;
    }
    if (native && strcmp(native, "echo") != 0) {
        PyErr_Format(PyExc_ValueError, "native: the only native service is 'echo', got '%s'",
                     native);
        return -1;
    }
    if (nats != Py_None && !PyObject_TypeCheck(nats, &PySage_NatsType)) {
        PyErr_SetString(PyExc_TypeError, "nats: expected a sagesvc._core.Nats");
        return -1;
    }
    snprintf(self->name, sizeof self->name, "%s", name);
    Py_INCREF(service);
    self->service = service;
    if (handler != Py_None) {
        if (!PyCallable_Check(handler)) {
            PyErr_SetString(PyExc_TypeError, "handler must be callable");
            return -1;
        }
        Py_INCREF(handler);
        self->handler = handler;
    }
    if (build_methods(self, methods, idempotent, native != NULL) < 0)
        return -1;
    self->svc.abi = SAGE_SERVICE_ABI;
    self->svc.name = self->name;
    self->svc.create = py_create;
    self->svc.methods = self->methods;
    sage_task_opts_init(&o);
    o.name = name;
    o.ns = ns;
    if ((r = sage_transport_parse(&o.transport, transport)) != SAGE_OK) {
        pysage_raise_as(SAGE_ECONFIG, r, sage_errdetail());
        return -1;
    }
    if (max_workers)
        o.max_workers = max_workers;
    if (queue_timeout_ms >= 0)
        o.queue_timeout_ms = queue_timeout_ms;
    if (queue_size)
        o.request_queue_size = queue_size;
    if (error_threshold >= 0)
        o.error_threshold = error_threshold;
    if (max_request > 0)
        o.max_request = (size_t)max_request;
    if (build_middleware(self, middleware, &chain, &nchain) < 0)
        return -1;
    o.middleware = chain;
    o.nmiddleware = nchain;
    if (self->handler) {
        self->kind.name = "python";
        self->kind.handle = py_handle;
        self->kind.arg = self;
        o.kind = &self->kind;
    }
    if (o.transport == SAGE_TRANSPORT_NATS) {
        memset(&co, 0, sizeof co);
        if (nats != Py_None) {
            co.nats = &((PySage_Nats *)nats)->conf;
            Py_INCREF(nats);
            self->nats = nats;
        }
        co.durable = durable;
        co.ack_wait_ms = ack_wait_ms;
        o.cluster = &co;
    }
    r = sage_task_new(&self->t, &self->svc, &o);
    free(chain);
    if (r != SAGE_OK) {
        pysage_raise_as(r == SAGE_EINVAL ? SAGE_ECONFIG : r, r, sage_errdetail());
        return -1;
    }
    return 0;
}

static int task_traverse(PySage_Task *self, visitproc visit, void *arg)
{
    Py_VISIT(self->service);
    Py_VISIT(self->handler);
    Py_VISIT(self->nats);
    for (size_t i = 0; self->bound && i < self->nmethods; i++)
        Py_VISIT(self->bound[i]);
    return 0;
}

/* release frees the task (stopping it: a drain, GIL released) and drops
 * everything the trampolines use, in that order */
static void release(PySage_Task *self)
{
    sage_task *t = self->t;

    self->t = NULL;
    if (t) {
        Py_BEGIN_ALLOW_THREADS
        sage_task_free(t);
        Py_END_ALLOW_THREADS
    }
    for (size_t i = 0; self->bound && i < self->nmethods; i++)
        Py_CLEAR(self->bound[i]);
    for (size_t i = 0; self->pymw && i < self->npymw; i++)
        pysage_middleware_free(self->pymw[i]);
    free(self->pymw);
    self->pymw = NULL;
    self->npymw = 0;
    Py_CLEAR(self->service);
    Py_CLEAR(self->handler);
    Py_CLEAR(self->nats);
}

static int task_clear(PySage_Task *self)
{
    release(self);
    return 0;
}

static void task_dealloc(PySage_Task *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    release(self);
    for (size_t i = 0; self->methods && self->methods[i].name; i++)
        free((char *)self->methods[i].name);
    free(self->methods);
    free(self->sorted);
    free(self->bound);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int check(PySage_Task *self)
{
    if (self->t == NULL) {
        pysage_raise(SAGE_ESTATE, "the task is closed or not initialised");
        return -1;
    }
    return 0;
}

static PyObject *task_start(PySage_Task *self, PyObject *unused)
{
    sage_task *t;
    sage_err r;

    if (check(self) < 0)
        return NULL;
    t = self->t;
    Py_BEGIN_ALLOW_THREADS
    starting = self;
    r = sage_task_start(t);
    starting = NULL;
    Py_END_ALLOW_THREADS
    if (r != SAGE_OK)
        return pysage_raise_last(r);
    Py_RETURN_NONE;
}

static PyObject *task_stop(PySage_Task *self, PyObject *unused)
{
    sage_task *t;
    sage_err r;

    if (check(self) < 0)
        return NULL;
    t = self->t;
    Py_BEGIN_ALLOW_THREADS
    r = sage_task_stop(t);
    Py_END_ALLOW_THREADS
    if (r != SAGE_OK)
        return pysage_raise_last(r);
    Py_RETURN_NONE;
}

static PyObject *task_close(PySage_Task *self, PyObject *unused)
{
    release(self);
    Py_RETURN_NONE;
}

PyObject *pysage_status_dict(const sage_status *st)
{
    struct timespec ts;
    long long now;
    PyObject *methods = PyList_New((Py_ssize_t)st->nmethods), *d;

    clock_gettime(CLOCK_REALTIME, &ts);
    now = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    for (size_t k = 0; methods && k < st->nmethods; k++) {
        const sage_method_status *m = &st->methods[k];
        PyObject *md = Py_BuildValue("{s:s s:K s:K s:d s:d}", "name", m->name, "requests",
                                     (unsigned long long)m->requests, "errors",
                                     (unsigned long long)m->errors, "latency_p50_us",
                                     m->latency_p50_us, "latency_p99_us", m->latency_p99_us);

        if (md == NULL) {
            Py_CLEAR(methods);
            break;
        }
        PyList_SET_ITEM(methods, (Py_ssize_t)k, md);
    }
    if (methods == NULL)
        return NULL;
    d = Py_BuildValue(
        "{s:s s:s s:s s:s s:i s:O s:d s:K s:K s:K s:K s:K s:K s:K s:K s:d s:d s:L s:N s:L s:d "
        "s:I s:I s:d s:s s:K s:s s:N}",
        "name", st->name, "namespace", st->ns, "transport", sage_transport_name(st->transport),
        "state", sage_state_name(st->state), "pid", (int)st->pid, "owner_alive",
        st->owner_alive ? Py_True : Py_False, "uptime_s", st->uptime_s, "requests",
        (unsigned long long)st->requests, "errors", (unsigned long long)st->errors, "in_flight",
        (unsigned long long)st->in_flight, "queue_depth", (unsigned long long)st->queue_depth,
        "expired", (unsigned long long)st->expired, "malformed", (unsigned long long)st->malformed,
        "rejected", (unsigned long long)st->rejected, "queue_full",
        (unsigned long long)st->queue_full, "latency_p50_us", st->latency_p50_us,
        "latency_p99_us", st->latency_p99_us, "last_activity_ns", (long long)st->last_activity_ns,
        "last_activity_age_s",
        st->last_activity_ns ? PyFloat_FromDouble((double)(now - st->last_activity_ns) / 1e9)
                             : Py_NewRef(Py_None),
        "heartbeat_ns", (long long)st->heartbeat_ns, "heartbeat_age_s",
        st->heartbeat_ns ? (double)(now - st->heartbeat_ns) / 1e9 : -1.0, "max_workers",
        (unsigned)st->max_workers, "request_queue_size", (unsigned)st->request_queue_size,
        "queue_timeout_s", (double)st->queue_timeout_ms / 1e3, "last_drop", st->last_drop,
        "dropped", (unsigned long long)st->dropped, "reason", st->reason, "methods", methods);
    return d;
}

static PyObject *task_status(PySage_Task *self, PyObject *unused)
{
    sage_status *st;
    PyObject *d;
    sage_err r;

    if (check(self) < 0)
        return NULL;
    if ((st = PyMem_Malloc(sizeof *st)) == NULL)
        return PyErr_NoMemory();
    r = sage_task_status(st, self->t);
    d = r == SAGE_OK ? pysage_status_dict(st) : pysage_raise_last(r);
    PyMem_Free(st);
    return d;
}

static PyObject *task_default_handle(PySage_Task *self, PyObject *unused)
{
    sage_call *call = handling;
    const char *msg = NULL;
    sage_err r;

    if (call == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "default handling exists only inside custom_handle_request, on the thread "
                        "handling the request");
        return NULL;
    }
    r = sage_call_default(call);
    if (r != SAGE_OK) {
        sage_call_status(call, &msg);
        return pysage_raise(r, msg);
    }
    return pysage_to_py(sage_call_result_value(call), "result");
}

static PyObject *task_name(PySage_Task *self, void *closure)
{
    return PyUnicode_FromString(self->name);
}

static PyObject *task_service(PySage_Task *self, void *closure)
{
    if (self->service == NULL)
        Py_RETURN_NONE;
    return Py_NewRef(self->service);
}

static PyObject *task_methods(PySage_Task *self, void *closure)
{
    PyObject *l = PyList_New(0);

    for (size_t i = 0; l && self->methods && self->methods[i].name; i++) {
        PyObject *s = PyUnicode_FromString(self->methods[i].name);

        if (s == NULL || PyList_Append(l, s) < 0) {
            Py_XDECREF(s);
            Py_CLEAR(l);
            break;
        }
        Py_DECREF(s);
    }
    return l;
}

static PyMethodDef task_methods_def[] = {
    {"start", (PyCFunction)task_start, METH_NOARGS,
     "start(): create the service's state, open its queue, register it, start its threads."},
    {"stop", (PyCFunction)task_stop, METH_NOARGS,
     "stop(): refuse new calls, answer every call taken, stop the threads (a drain)."},
    {"close", (PyCFunction)task_close, METH_NOARGS, "close(): stop if needed and free the task."},
    {"status", (PyCFunction)task_status, METH_NOARGS,
     "status() -> dict with the figures of `sagesvc status --json`."},
    {"default_handle", (PyCFunction)task_default_handle, METH_NOARGS,
     "default_handle() -> result: middleware then the method, for the request being handled."},
    {NULL},
};

static PyGetSetDef task_getset[] = {
    {"name", (getter)task_name, NULL, "the name it serves under", NULL},
    {"service", (getter)task_service, NULL, "the service object", NULL},
    {"methods", (getter)task_methods, NULL, "the methods it serves", NULL},
    {NULL},
};

PyTypeObject PySage_TaskType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sagesvc._core.Task",
    .tp_basicsize = sizeof(PySage_Task),
    .tp_dealloc = (destructor)task_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Task(service, name, ...): a Python object served as a sagesvc service.",
    .tp_traverse = (traverseproc)task_traverse,
    .tp_clear = (inquiry)task_clear,
    .tp_weaklistoffset = offsetof(PySage_Task, weakreflist),
    .tp_methods = task_methods_def,
    .tp_getset = task_getset,
    .tp_init = (initproc)task_init,
    .tp_new = PyType_GenericNew,
};
