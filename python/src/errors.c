/*
 * errors.c - sage_err codes to Python exceptions and Python exceptions to
 * codes.
 *
 * The exception classes are Python classes (sagesvc/errors.py), one per
 * class of error, registered here at import with the code each stands for:
 * a caller gets an instance with .code, .name and .detail. The other way,
 * an exception raised by a Python service becomes the code and message its
 * caller receives.
 */
#include "pysage.h"

#include <string.h>

struct pysage_registry pysage_reg;

PyObject *pysage_exc_instance_as(sage_err as, sage_err code, const char *detail)
{
    PyObject *cls = NULL, *args = NULL, *kw = NULL, *codeobj = NULL, *exc = NULL;

    if ((unsigned)as < SAGE_ERR_COUNT_)
        cls = pysage_reg.errors[as];
    if (cls == NULL)
        cls = pysage_reg.service_error;
    if (detail == NULL || detail[0] == '\0')
        detail = sage_strerror(code);
    if (cls == NULL)
        return PyObject_CallFunction(PyExc_RuntimeError, "s", detail);
    args = Py_BuildValue("(N)", PyUnicode_DecodeUTF8(detail, (Py_ssize_t)strlen(detail), "replace"));
    codeobj = PyLong_FromLong((long)code);
    kw = PyDict_New();
    if (args && codeobj && kw && PyDict_SetItemString(kw, "code", codeobj) == 0)
        exc = PyObject_Call(cls, args, kw);
    Py_XDECREF(args);
    Py_XDECREF(kw);
    Py_XDECREF(codeobj);
    return exc;
}

PyObject *pysage_exc_instance(sage_err code, const char *detail)
{
    return pysage_exc_instance_as(code, code, detail);
}

PyObject *pysage_raise_as(sage_err as, sage_err code, const char *detail)
{
    PyObject *exc = pysage_exc_instance_as(as, code, detail);

    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyObject *pysage_raise(sage_err code, const char *detail)
{
    PyObject *exc = pysage_exc_instance(code, detail);

    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyObject *pysage_raise_last(sage_err code)
{
    char detail[1024];

    snprintf(detail, sizeof detail, "%s", sage_errdetail());
    return pysage_raise(code, detail);
}

/* text_of writes str(o) into buf; false if it has none */
static bool text_of(PyObject *o, char *buf, size_t cap)
{
    PyObject *s = o ? PyObject_Str(o) : NULL;
    const char *t = s ? PyUnicode_AsUTF8(s) : NULL;
    bool ok = t != NULL && t[0] != '\0';

    if (t == NULL)
        PyErr_Clear();
    if (ok)
        snprintf(buf, cap, "%s", t);
    Py_XDECREF(s);
    return ok;
}

sage_err pysage_classify(PyObject **excp, char *msg, size_t cap, sage_err dflt, bool binding)
{
    PyObject *type = NULL, *val = NULL, *tb = NULL;
    sage_err code = dflt;
    char text[900];

    PyErr_Fetch(&type, &val, &tb);
    PyErr_NormalizeException(&type, &val, &tb);
    if (val == NULL) {
        snprintf(msg, cap, "unknown Python error");
        *excp = NULL;
        Py_XDECREF(type);
        Py_XDECREF(tb);
        return dflt;
    }
    if (tb != NULL)
        PyException_SetTraceback(val, tb);
    if (pysage_reg.service_error && PyObject_IsInstance(val, pysage_reg.service_error) == 1) {
        PyObject *c = PyObject_GetAttrString(val, "code");
        PyObject *d = PyObject_GetAttrString(val, "detail");
        long v = c ? PyLong_AsLong(c) : -1;

        if (v > 0 && v < SAGE_ERR_COUNT_)
            code = (sage_err)v;
        if (!text_of(d, msg, cap))
            snprintf(msg, cap, "%s", sage_strerror(code));
        Py_XDECREF(c);
        Py_XDECREF(d);
        PyErr_Clear();
    } else if (binding && tb == NULL && PyErr_GivenExceptionMatches(type, PyExc_TypeError)) {
        /* raised while binding the arguments: no frame of the method ran */
        code = SAGE_EBADARGS;
        if (!text_of(val, msg, cap))
            snprintf(msg, cap, "bad arguments");
    } else {
        const char *name = ((PyTypeObject *)type)->tp_name;
        const char *dot = strrchr(name, '.');

        if (dot && strncmp(name, "builtins.", 9) == 0)
            name = dot + 1;
        if (text_of(val, text, sizeof text))
            snprintf(msg, cap, "%s: %s", name, text);
        else
            snprintf(msg, cap, "%s", name);
    }
    *excp = val;
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return code;
}

void pysage_log_exception(const char *service, const char *method, PyObject *exc)
{
    PyObject *r;

    if (pysage_reg.log_hook == NULL || exc == NULL)
        return;
    r = PyObject_CallFunction(pysage_reg.log_hook, "ssO", service ? service : "?",
                              method ? method : "?", exc);
    if (r == NULL)
        PyErr_WriteUnraisable(pysage_reg.log_hook);
    Py_XDECREF(r);
}
