/*
 * host.c - what `python3 -m sagesvc run` and `python3 -m sagesvc replica`
 * need of the library beyond tasks: the host registry, a deployment's
 * stored configuration, the parent-death signal of a supervised replica,
 * and the Prometheus endpoint of `sagesvc run --metrics` (the very code of
 * the command, cli/metrics.c, so the exposition is the same byte for byte).
 */
#include "pysage.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "metrics.h"
#include "sage/cluster.h"

/* ------------------------------------------------------- host registry */

static void on_entry(void *arg, const sage_host_entry *e)
{
    PyObject *l = arg, *d;

    if (PyErr_Occurred())
        return;
    d = Py_BuildValue("{s:s s:s s:s s:i s:O s:s s:L s:L}", "name", e->name, "namespace", e->ns,
                      "queue", e->queue, "pid", (int)e->pid, "owner_alive",
                      e->owner_alive ? Py_True : Py_False, "state", sage_state_name(e->state),
                      "started_ns", (long long)e->started_ns, "heartbeat_ns",
                      (long long)e->heartbeat_ns);
    if (d == NULL)
        return;
    PyList_Append(l, d);
    Py_DECREF(d);
}

static PyObject *host_list(PyObject *mod, PyObject *args)
{
    const char *ns = NULL;
    PyObject *l;
    sage_err r;

    if (!PyArg_ParseTuple(args, "|z:host_list", &ns) || (l = PyList_New(0)) == NULL)
        return NULL;
    /* the callback runs on this thread: keep the GIL (the listing is quick) */
    r = sage_host_list(ns, false, on_entry, l);
    if (PyErr_Occurred()) {
        Py_DECREF(l);
        return NULL;
    }
    if (r != SAGE_OK) {
        Py_DECREF(l);
        return pysage_raise_last(r);
    }
    return l;
}

static PyObject *host_status(PyObject *mod, PyObject *args)
{
    const char *ns, *name;
    sage_status *st;
    PyObject *d;
    sage_err r;

    if (!PyArg_ParseTuple(args, "ss:host_status", &ns, &name))
        return NULL;
    if ((st = PyMem_Malloc(sizeof *st)) == NULL)
        return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS
    r = sage_host_status(st, ns, name);
    Py_END_ALLOW_THREADS
    d = r == SAGE_OK ? pysage_status_dict(st) : pysage_raise_last(r);
    PyMem_Free(st);
    return d;
}

/* ---------------------------------------------------------- deployments */

struct found {
    char *yaml;
    size_t len;
    char *path;
    bool oom;
};

static void on_deployment(void *arg, const sage_cluster_deployment *d)
{
    struct found *f = arg;

    free(f->yaml);
    free(f->path);
    f->yaml = malloc(d->config_len + 1);
    f->path = strdup(d->config_path ? d->config_path : "");
    if (f->yaml == NULL || f->path == NULL) {
        f->oom = true;
        return;
    }
    memcpy(f->yaml, d->config_yaml, d->config_len);
    f->yaml[d->config_len] = '\0';
    f->len = d->config_len;
}

static PyObject *deployment(PyObject *mod, PyObject *args)
{
    PyObject *nats, *out = NULL;
    const char *ns, *name;
    struct found f = {0};
    sage_err r;

    if (!PyArg_ParseTuple(args, "O!ss:deployment", &PySage_NatsType, &nats, &ns, &name))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = sage_cluster_deployments(&((PySage_Nats *)nats)->conf, ns, name, on_deployment, &f);
    Py_END_ALLOW_THREADS
    if (r == SAGE_OK && (f.oom || f.yaml == NULL))
        PyErr_NoMemory();
    else if (r != SAGE_OK)
        pysage_raise_last(r);
    else
        out = Py_BuildValue("{s:s# s:s}", "config_yaml", f.yaml, (Py_ssize_t)f.len, "config_path",
                            f.path);
    free(f.yaml);
    free(f.path);
    return out;
}

static PyObject *set_pdeathsig(PyObject *mod, PyObject *arg)
{
    long sig = PyLong_AsLong(arg);

    if (sig == -1 && PyErr_Occurred())
        return NULL;
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *errname(PyObject *mod, PyObject *arg)
{
    long c = PyLong_AsLong(arg);

    if (c == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(sage_errname((sage_err)c));
}

static PyObject *strerror_(PyObject *mod, PyObject *arg)
{
    long c = PyLong_AsLong(arg);

    if (c == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(sage_strerror((sage_err)c));
}

PyMethodDef pysage_host_functions[] = {
    {"host_list", host_list, METH_VARARGS,
     "host_list(namespace=None) -> list of dicts: the services of the host registry."},
    {"host_status", host_status, METH_VARARGS,
     "host_status(namespace, name) -> dict: a host-registered service's status."},
    {"deployment", deployment, METH_VARARGS,
     "deployment(nats, namespace, name) -> dict(config_yaml, config_path) of a deployed service."},
    {"set_pdeathsig", set_pdeathsig, METH_O,
     "set_pdeathsig(signum): have the kernel send signum when the parent process dies."},
    {"errname", errname, METH_O, "errname(code) -> 'ETIMEDOUT'"},
    {"strerror", strerror_, METH_O, "strerror(code) -> 'timed out'"},
    {NULL},
};

/* -------------------------------------------------------------- Metrics */

typedef struct {
    PyObject_HEAD
    cli_metrics *m;
    sage_task **tasks;
    PyObject *refs; /* the task objects, alive while served */
} PySage_Metrics;

static int metrics_init(PySage_Metrics *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"address", "tasks", NULL};
    const char *addr;
    PyObject *tasks, *seq;
    Py_ssize_t n;
    sage_err r;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO:Metrics", names, &addr, &tasks))
        return -1;
    if (self->m != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Metrics: already serving");
        return -1;
    }
    if ((seq = PySequence_Fast(tasks, "tasks must be a list")) == NULL)
        return -1;
    n = PySequence_Fast_GET_SIZE(seq);
    if ((self->tasks = calloc((size_t)n + 1, sizeof *self->tasks)) == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if ((self->tasks[i] = pysage_task_ptr(PySequence_Fast_GET_ITEM(seq, i))) == NULL) {
            Py_DECREF(seq);
            return -1;
        }
    self->refs = seq;
    if ((r = cli_metrics_check(addr)) != SAGE_OK) {
        PyErr_Format(PyExc_ValueError, "bad metrics address '%s' (expected ADDR:PORT, "
                                       "127.0.0.1:9464 or [::1]:9464)", addr);
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    r = cli_metrics_open(&self->m, addr, self->tasks, (size_t)n);
    Py_END_ALLOW_THREADS
    if (r != SAGE_OK) {
        PyErr_Format(PyExc_OSError, "cannot serve metrics on %s", addr);
        return -1;
    }
    return 0;
}

static void metrics_stop(PySage_Metrics *self)
{
    cli_metrics *m = self->m;

    self->m = NULL;
    if (m) {
        Py_BEGIN_ALLOW_THREADS
        cli_metrics_close(m);
        Py_END_ALLOW_THREADS
    }
}

static void metrics_dealloc(PySage_Metrics *self)
{
    metrics_stop(self);
    free(self->tasks);
    Py_XDECREF(self->refs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *metrics_close(PySage_Metrics *self, PyObject *unused)
{
    metrics_stop(self);
    Py_RETURN_NONE;
}

static PyObject *metrics_url(PySage_Metrics *self, void *closure)
{
    if (self->m == NULL)
        Py_RETURN_NONE;
    return PyUnicode_FromString(cli_metrics_url(self->m));
}

static PyObject *metrics_render(PyObject *mod, PyObject *tasks)
{
    PyObject *seq = PySequence_Fast(tasks, "tasks must be a list"), *out;
    sage_task **ts;
    Py_ssize_t n;
    char *text = NULL;
    size_t len = 0;

    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    if ((ts = calloc((size_t)n + 1, sizeof *ts)) == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if ((ts[i] = pysage_task_ptr(PySequence_Fast_GET_ITEM(seq, i))) == NULL) {
            free(ts);
            Py_DECREF(seq);
            return NULL;
        }
    if (cli_metrics_render(ts, (size_t)n, &text, &len) != SAGE_OK)
        out = PyErr_NoMemory();
    else
        out = PyUnicode_FromStringAndSize(text, (Py_ssize_t)len);
    free(text);
    free(ts);
    Py_DECREF(seq);
    return out;
}

PyMethodDef pysage_metrics_functions[] = {
    {"metrics_render", metrics_render, METH_O,
     "metrics_render(tasks) -> str: the Prometheus exposition of the tasks."},
    {NULL},
};

static PyMethodDef metrics_methods[] = {
    {"close", (PyCFunction)metrics_close, METH_NOARGS, "close(): stop serving"},
    {NULL},
};

static PyGetSetDef metrics_getset[] = {
    {"url", (getter)metrics_url, NULL, "http://ADDR:PORT/metrics, the port actually bound", NULL},
    {NULL},
};

PyTypeObject PySage_MetricsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sagesvc._core.Metrics",
    .tp_basicsize = sizeof(PySage_Metrics),
    .tp_dealloc = (destructor)metrics_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Metrics(address, tasks): serve GET /metrics (Prometheus text) for the tasks.",
    .tp_methods = metrics_methods,
    .tp_getset = metrics_getset,
    .tp_init = (initproc)metrics_init,
    .tp_new = PyType_GenericNew,
};
