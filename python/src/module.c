/*
 * module.c - the sagesvc._core module: its types, its functions, the error
 * codes, and the registration of the package's Python classes.
 */
#include "pysage.h"

#include <string.h>

extern PyMethodDef pysage_host_functions[];
extern PyMethodDef pysage_metrics_functions[];

static PyObject *take(PyObject *d, const char *key)
{
    PyObject *o = PyDict_GetItemString(d, key);

    Py_XINCREF(o);
    return o;
}

/* _register(dict): the package hands over its classes and hooks */
static PyObject *register_(PyObject *mod, PyObject *d)
{
    PyObject *errors, *fc;

    if (!PyDict_Check(d))
        return PyErr_Format(PyExc_TypeError, "_register takes a dict");
    fc = PyDict_GetItemString(d, "CallFuture");
    if (fc != NULL && (!PyType_Check(fc) ||
                       !PyType_IsSubtype((PyTypeObject *)fc, &PySage_FutureType)))
        return PyErr_Format(PyExc_TypeError, "CallFuture must be a subclass of FutureCore");
    Py_XSETREF(pysage_reg.service_error, take(d, "ServiceError"));
    Py_XSETREF(pysage_reg.request_cls, take(d, "ServiceRequest"));
    Py_XSETREF(pysage_reg.response_cls, take(d, "ServiceResponse"));
    Py_XSETREF(pysage_reg.future_cls, (PyTypeObject *)take(d, "CallFuture"));
    Py_XSETREF(pysage_reg.log_hook, take(d, "log_hook"));
    errors = PyDict_GetItemString(d, "errors");
    if (errors && PyDict_Check(errors)) {
        Py_ssize_t pos = 0;
        PyObject *k, *v;

        while (PyDict_Next(errors, &pos, &k, &v)) {
            long code = PyLong_AsLong(k);

            if (code < 0 || code >= SAGE_ERR_COUNT_) {
                PyErr_Clear();
                continue;
            }
            Py_INCREF(v);
            Py_XSETREF(pysage_reg.errors[code], v);
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef module_functions[] = {
    {"_register", register_, METH_O, "_register(dict): the package's classes and hooks."},
    {NULL},
};

static int add_functions(PyObject *m, PyMethodDef *defs)
{
    for (PyMethodDef *d = defs; d->ml_name; d++) {
        PyObject *f = PyCFunction_NewEx(d, NULL, PyModule_GetNameObject(m));

        if (f == NULL || PyModule_AddObject(m, d->ml_name, f) < 0) {
            Py_XDECREF(f);
            return -1;
        }
    }
    return 0;
}

static int add_type(PyObject *m, PyTypeObject *t, const char *name)
{
    if (PyType_Ready(t) < 0)
        return -1;
    Py_INCREF(t);
    if (PyModule_AddObject(m, name, (PyObject *)t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sagesvc._core",
    .m_doc = "The C core of sagesvc's Python API (use the package sagesvc).",
    .m_size = -1,
    .m_methods = module_functions,
};

PyMODINIT_FUNC PyInit__core(void); /* the module's entry point */
PyMODINIT_FUNC PyInit__core(void)
{
    PyObject *m = PyModule_Create(&moduledef);
    PyObject *codes;

    if (m == NULL)
        return NULL;
    if (pysage_gil_init() < 0) {
        PyErr_SetString(PyExc_RuntimeError, "cannot create a thread key");
        goto fail;
    }
    if (pysage_future_setup() < 0)
        goto fail;
    if (add_type(m, &PySage_ConfigType, "Config") < 0 || add_type(m, &PySage_NatsType, "Nats") < 0 ||
        add_type(m, &PySage_EnvType, "Env") < 0 || add_type(m, &PySage_ManagerType, "Manager") < 0 ||
        add_type(m, &PySage_FutureType, "FutureCore") < 0 || add_type(m, &PySage_TaskType, "Task") < 0 ||
        add_type(m, &PySage_MetricsType, "Metrics") < 0 ||
        add_functions(m, pysage_host_functions) < 0 ||
        add_functions(m, pysage_metrics_functions) < 0)
        goto fail;
    if ((codes = PyDict_New()) == NULL || PyModule_AddObject(m, "codes", codes) < 0) {
        Py_XDECREF(codes);
        goto fail;
    }
#define ADD_CODE(name, value, msg)                                                     \
    if (PyModule_AddIntConstant(m, #name, value) < 0)                                 \
        goto fail;                                                                     \
    {                                                                                  \
        PyObject *v_ = PyLong_FromLong(value);                                         \
        if (v_ == NULL || PyDict_SetItemString(codes, #name, v_) < 0) {                \
            Py_XDECREF(v_);                                                            \
            goto fail;                                                                 \
        }                                                                              \
        Py_DECREF(v_);                                                                 \
    }
    SAGE_ERR_MAP(ADD_CODE)
#undef ADD_CODE
    if (PyModule_AddStringConstant(m, "version", SAGESVC_VERSION) < 0 ||
        PyModule_AddIntConstant(m, "SERVICE_ABI", SAGE_SERVICE_ABI) < 0 ||
        PyModule_AddIntConstant(m, "MAX_DEPTH", PYSAGE_MAX_DEPTH) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
