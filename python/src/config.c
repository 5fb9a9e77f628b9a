/*
 * config.c - sagesvc._core.Config (a loaded, validated YAML configuration)
 * and sagesvc._core.Nats (NATS connection settings that own their
 * strings, for tasks and managers that reach the cluster).
 *
 * A dict configuration reaches the library as text: the package writes it
 * as JSON, which the YAML loader reads as flow style, so a dict and a file
 * are validated by the same code with the same messages.
 */
#include "pysage.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- Config */

static void config_dealloc(PySage_Config *self)
{
    sage_config_free(self->cfg);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *config_wrap(PyTypeObject *type, sage_config *cfg)
{
    PySage_Config *self = (PySage_Config *)type->tp_alloc(type, 0);

    if (self == NULL) {
        sage_config_free(cfg);
        return NULL;
    }
    self->cfg = cfg;
    return (PyObject *)self;
}

static PyObject *config_load(PyObject *cls, PyObject *arg)
{
    PyObject *bytes = NULL;
    sage_config *cfg = NULL;
    sage_err r;

    if (!PyUnicode_FSConverter(arg, &bytes))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    r = sage_config_load(&cfg, PyBytes_AS_STRING(bytes));
    Py_END_ALLOW_THREADS
    Py_DECREF(bytes);
    if (r != SAGE_OK) {
        char detail[1024];

        snprintf(detail, sizeof detail, "%s", sage_errdetail());
        return pysage_raise_as(SAGE_ECONFIG, r, detail);
    }
    return config_wrap((PyTypeObject *)cls, cfg);
}

static PyObject *config_parse(PyObject *cls, PyObject *args, PyObject *kw)
{
    static char *names[] = {"text", "filename", NULL};
    const char *text, *filename = NULL;
    Py_ssize_t len;
    sage_config *cfg = NULL;
    sage_err r;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "s#|z:parse", names, &text, &len, &filename))
        return NULL;
    r = sage_config_parse(&cfg, text, (size_t)len, filename);
    if (r != SAGE_OK) {
        char detail[1024];

        snprintf(detail, sizeof detail, "%s", sage_errdetail());
        return pysage_raise_as(SAGE_ECONFIG, r, detail);
    }
    return config_wrap((PyTypeObject *)cls, cfg);
}

static PyObject *local_dict(const sage_local_conf *l)
{
    return Py_BuildValue("{s:I s:L s:I}", "max_workers", (unsigned)l->max_workers,
                         "queue_timeout_ms", (long long)l->queue_timeout_ms, "request_queue_size",
                         (unsigned)l->request_queue_size);
}

static PyObject *cluster_dict(const sage_cluster_conf *c)
{
    return Py_BuildValue("{s:d s:K s:O s:I s:I s:O}", "cpus", c->cpus, "memory",
                         (unsigned long long)c->memory, "detached", c->detached ? Py_True : Py_False,
                         "max_restarts", (unsigned)c->max_restarts, "replicas",
                         (unsigned)c->replicas, "durable", c->durable ? Py_True : Py_False);
}

static PyObject *str_or_none(const char *s)
{
    if (s == NULL)
        Py_RETURN_NONE;
    return PyUnicode_FromString(s);
}

static PyObject *config_path(PySage_Config *self, void *closure)
{
    return str_or_none(sage_config_path(self->cfg));
}

static PyObject *config_namespace(PySage_Config *self, void *closure)
{
    return PyUnicode_FromString(sage_config_namespace(self->cfg));
}

static PyObject *config_transport(PySage_Config *self, void *closure)
{
    return PyUnicode_FromString(sage_config_transport(self->cfg));
}

static PyObject *config_local(PySage_Config *self, void *closure)
{
    return local_dict(sage_config_local(self->cfg));
}

static PyObject *config_cluster(PySage_Config *self, void *closure)
{
    return cluster_dict(sage_config_cluster(self->cfg));
}

static PyObject *config_call(PySage_Config *self, void *closure)
{
    const sage_call_conf *c = sage_config_call(self->cfg);

    return Py_BuildValue("{s:L s:I s:L s:L}", "timeout_ms", (long long)c->timeout_ms, "retries",
                         (unsigned)c->retries, "retry_backoff_ms", (long long)c->retry_backoff_ms,
                         "idle_close_ms", (long long)c->idle_close_ms);
}

static PyObject *config_nats_servers(PySage_Config *self, void *closure)
{
    const sage_nats_conf *n = sage_config_nats(self->cfg);
    PyObject *l = PyList_New((Py_ssize_t)n->nservers);

    for (size_t i = 0; l && i < n->nservers; i++) {
        PyObject *s = PyUnicode_FromString(n->servers[i]);

        if (s == NULL) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, s);
    }
    return l;
}

static PyObject *service_dict(const sage_service_conf *sc, size_t index)
{
    PyObject *mw = PyList_New((Py_ssize_t)sc->nmiddleware), *d;

    for (size_t i = 0; mw && i < sc->nmiddleware; i++) {
        PyObject *s = PyUnicode_FromString(sc->middleware[i]);

        if (s == NULL) {
            Py_CLEAR(mw);
            break;
        }
        PyList_SET_ITEM(mw, (Py_ssize_t)i, s);
    }
    if (mw == NULL)
        return NULL;
    d = Py_BuildValue("{s:s s:N s:N s:s s:N s:N s:N s:i s:n}", "name", sc->name, "plugin",
                      str_or_none(sc->plugin), "python", str_or_none(sc->python), "transport",
                      sc->transport, "local", local_dict(&sc->local), "cluster",
                      cluster_dict(&sc->cluster), "middleware", mw, "line", sc->line, "index",
                      (Py_ssize_t)index);
    return d;
}

static PyObject *config_services(PySage_Config *self, PyObject *unused)
{
    size_t n = sage_config_nservices(self->cfg);
    PyObject *l = PyList_New((Py_ssize_t)n);

    for (size_t i = 0; l && i < n; i++) {
        PyObject *d = service_dict(sage_config_service(self->cfg, i), i);

        if (d == NULL) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, d);
    }
    return l;
}

static PyObject *config_service_params(PySage_Config *self, PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    sage_arena *a = NULL;
    sage_value v;
    PyObject *out;
    sage_err r;

    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0 || (size_t)i >= sage_config_nservices(self->cfg)) {
        PyErr_Format(PyExc_IndexError, "service index %zd out of range", i);
        return NULL;
    }
    if (sage_arena_new(&a, 0) != SAGE_OK)
        return PyErr_NoMemory();
    r = sage_config_service_params(&v, self->cfg, (size_t)i, a);
    out = r == SAGE_OK ? pysage_to_py(&v, "config") : pysage_raise_last(r);
    sage_arena_free(a);
    return out;
}

static PyMethodDef config_methods[] = {
    {"load", (PyCFunction)config_load, METH_O | METH_CLASS,
     "load(path) -> Config: read and validate a YAML file (ConfigError naming file, line and "
     "key)."},
    {"parse", (PyCFunction)(void (*)(void))config_parse, METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "parse(text, filename=None) -> Config: validate YAML text."},
    {"services", (PyCFunction)config_services, METH_NOARGS,
     "services() -> list of dicts: the entries of `services`, settings merged."},
    {"service_params", (PyCFunction)config_service_params, METH_O,
     "service_params(index) -> the `config:` map of the index-th service (None if absent)."},
    {NULL},
};

static PyGetSetDef config_getset[] = {
    {"path", (getter)config_path, NULL, "the file it was read from (None for text)", NULL},
    {"namespace", (getter)config_namespace, NULL, "namespace", NULL},
    {"transport", (getter)config_transport, NULL, "default transport of hosted services", NULL},
    {"local", (getter)config_local, NULL, "section service.local", NULL},
    {"cluster", (getter)config_cluster, NULL, "section service.cluster (alias service.ray)", NULL},
    {"call", (getter)config_call, NULL, "section service.call", NULL},
    {"nats_servers", (getter)config_nats_servers, NULL, "section nats: servers", NULL},
    {NULL},
};

PyTypeObject PySage_ConfigType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sagesvc._core.Config",
    .tp_basicsize = sizeof(PySage_Config),
    .tp_dealloc = (destructor)config_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A validated sagesvc configuration (Config.load / Config.parse).",
    .tp_methods = config_methods,
    .tp_getset = config_getset,
};

/* ------------------------------------------------------------------ Nats */

static const char *keep(PySage_Nats *self, const char *s)
{
    char *copy, **grown;

    if (s == NULL)
        return NULL;
    grown = realloc(self->strings, (self->nstrings + 1) * sizeof *grown);
    if (grown == NULL)
        return NULL;
    self->strings = grown;
    if ((copy = strdup(s)) == NULL)
        return NULL;
    self->strings[self->nstrings++] = copy;
    return copy;
}

static void nats_dealloc(PySage_Nats *self)
{
    for (size_t i = 0; i < self->nstrings; i++)
        free(self->strings[i]);
    free(self->strings);
    free(self->servers);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* set_str replaces *dst with a kept copy of o (None: NULL); -1 on error */
static int set_str(PySage_Nats *self, const char **dst, PyObject *o, const char *what)
{
    const char *s;

    if (o == NULL)
        return 0;
    if (o == Py_None) {
        *dst = NULL;
        return 0;
    }
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a str, got %s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    if ((s = PyUnicode_AsUTF8(o)) == NULL)
        return -1;
    if ((*dst = keep(self, s)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int nats_init(PySage_Nats *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"config", "servers", "name", "user", "password", "token", "creds",
                            "tls_ca", "tls_cert", "tls_key", "reconnect_max",
                            "reconnect_wait_ms", "replicas", NULL};
    PyObject *config = Py_None, *servers = NULL, *name = NULL, *user = NULL, *password = NULL,
             *token = NULL, *creds = NULL, *ca = NULL, *cert = NULL, *key = NULL;
    int reconnect_max = -2;
    long long wait_ms = -1;
    int replicas = -1;
    const sage_nats_conf *src;
    sage_nats_conf dflt;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOOOOOOOOOiLi:Nats", names, &config, &servers,
                                     &name, &user, &password, &token, &creds, &ca, &cert, &key,
                                     &reconnect_max, &wait_ms, &replicas))
        return -1;
    if (config != Py_None && !PyObject_TypeCheck(config, &PySage_ConfigType)) {
        PyErr_SetString(PyExc_TypeError, "Nats: config must be a sagesvc._core.Config or None");
        return -1;
    }
    sage_nats_conf_init(&dflt);
    src = config != Py_None ? sage_config_nats(((PySage_Config *)config)->cfg) : &dflt;
    self->conf = *src;
    /* own every string */
    self->conf.name = keep(self, src->name);
    self->conf.user = keep(self, src->user);
    self->conf.password = keep(self, src->password);
    self->conf.token = keep(self, src->token);
    self->conf.creds = keep(self, src->creds);
    self->conf.tls_ca = keep(self, src->tls_ca);
    self->conf.tls_cert = keep(self, src->tls_cert);
    self->conf.tls_key = keep(self, src->tls_key);
    if (servers != NULL && servers != Py_None) {
        PyObject *seq;
        Py_ssize_t n;

        if (PyUnicode_Check(servers)) {
            PyObject *comma = PyUnicode_FromString(",");

            seq = comma ? PyUnicode_Split(servers, comma, -1) : NULL;
            Py_XDECREF(comma);
        } else {
            seq = PySequence_Fast(servers, "Nats: servers must be a str or a list of str");
        }
        if (seq == NULL)
            return -1;
        n = PySequence_Fast_GET_SIZE(seq);
        self->servers = calloc((size_t)(n ? n : 1), sizeof *self->servers);
        if (self->servers == NULL) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
        self->conf.nservers = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
            const char *s;

            if (!PyUnicode_Check(it) || (s = PyUnicode_AsUTF8(it)) == NULL) {
                if (!PyErr_Occurred())
                    PyErr_Format(PyExc_TypeError, "Nats: servers[%zd] is not a str", i);
                Py_DECREF(seq);
                return -1;
            }
            if (s[0] == '\0')
                continue;
            if ((self->servers[self->conf.nservers++] = keep(self, s)) == NULL) {
                Py_DECREF(seq);
                PyErr_NoMemory();
                return -1;
            }
        }
        Py_DECREF(seq);
        if (self->conf.nservers == 0) {
            PyErr_SetString(PyExc_ValueError, "Nats: no server URL given");
            return -1;
        }
        self->conf.servers = self->servers;
    } else {
        self->servers = calloc(src->nservers ? src->nservers : 1, sizeof *self->servers);
        if (self->servers == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t i = 0; i < src->nservers; i++)
            if ((self->servers[i] = keep(self, src->servers[i])) == NULL) {
                PyErr_NoMemory();
                return -1;
            }
        self->conf.servers = self->servers;
        self->conf.nservers = src->nservers;
    }
    if (set_str(self, &self->conf.name, name, "name") < 0 ||
        set_str(self, &self->conf.user, user, "user") < 0 ||
        set_str(self, &self->conf.password, password, "password") < 0 ||
        set_str(self, &self->conf.token, token, "token") < 0 ||
        set_str(self, &self->conf.creds, creds, "creds") < 0 ||
        set_str(self, &self->conf.tls_ca, ca, "tls_ca") < 0 ||
        set_str(self, &self->conf.tls_cert, cert, "tls_cert") < 0 ||
        set_str(self, &self->conf.tls_key, key, "tls_key") < 0)
        return -1;
    if (reconnect_max != -2)
        self->conf.reconnect_max = reconnect_max;
    if (wait_ms >= 0)
        self->conf.reconnect_wait_ms = wait_ms;
    if (replicas != -1) {
        if (replicas < 0 || replicas > 5) {
            PyErr_Format(PyExc_ValueError, "Nats: replicas must be 0..5 (0: min(3, servers)), not %d",
                         replicas);
            return -1;
        }
        self->conf.replicas = replicas;
    }
    return 0;
}

static PyObject *nats_servers(PySage_Nats *self, void *closure)
{
    PyObject *l = PyList_New((Py_ssize_t)self->conf.nservers);

    for (size_t i = 0; l && i < self->conf.nservers; i++) {
        PyObject *s = PyUnicode_FromString(self->conf.servers[i]);

        if (s == NULL) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, s);
    }
    return l;
}

static PyGetSetDef nats_getset[] = {
    {"servers", (getter)nats_servers, NULL, "the NATS server URLs", NULL},
    {NULL},
};

PyTypeObject PySage_NatsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sagesvc._core.Nats",
    .tp_basicsize = sizeof(PySage_Nats),
    .tp_dealloc = (destructor)nats_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Nats(config=None, servers=None, ...): NATS connection settings (section nats of "
              "config, with overrides).",
    .tp_init = (initproc)nats_init,
    .tp_new = PyType_GenericNew,
    .tp_getset = nats_getset,
};
