/*
 * middleware.c - Python middleware (sagesvc.ServiceMiddleware) as the C
 * hooks of a task's chain.
 *
 * before_call(request) sees a ServiceRequest; raising rejects the call:
 * a sagesvc.ServiceError keeps its class, anything else is EREJECTED, and
 * the caller gets the exception's message. after_call(response) sees a
 * ServiceResponse; it may return another ServiceResponse, or change the
 * one it was given, to rewrite a successful answer (a result, or an
 * error). An answer that is already an error stays an error: the runtime
 * keeps the first error of a call. A hook the object does not override
 * costs nothing: it is not installed.
 */
#include "pysage.h"

#include <stdlib.h>
#include <string.h>

struct pymw {
    sage_middleware mw; /* first: the table handed to the task */
    PyObject *obj;
    char name[96];
};

static sage_err before(void *arg, sage_call *call)
{
    struct pymw *p = arg;
    PyObject *req, *r;
    PyGILState_STATE g;
    sage_err code = SAGE_OK;

    if (!pysage_alive())
        return sage_call_error(call, SAGE_EUNAVAILABLE, "the Python interpreter is exiting");
    g = pysage_gil_take();
    req = pysage_request_object(call);
    if (req == NULL) {
        code = pysage_fail_call(call, SAGE_EBADARGS);
    } else {
        r = PyObject_CallMethod(p->obj, "before_call", "O", req);
        Py_DECREF(req);
        if (r == NULL) {
            PyObject *exc = NULL;
            char msg[1024];

            code = pysage_classify(&exc, msg, sizeof msg, SAGE_EREJECTED, false);
            if (code == SAGE_EREJECTED && exc != NULL) {
                /* the message alone: the rejection is the middleware's answer */
                PyObject *s = PyObject_Str(exc);
                const char *t = s ? PyUnicode_AsUTF8(s) : NULL;

                if (t == NULL)
                    PyErr_Clear();
                else if (t[0])
                    snprintf(msg, sizeof msg, "%s", t);
                Py_XDECREF(s);
            }
            Py_XDECREF(exc);
            code = sage_call_error(call, code, "%s", msg);
        }
        Py_XDECREF(r);
    }
    pysage_gil_give(g);
    return code;
}

static PyObject *response_object(sage_call *call)
{
    const char *msg = NULL;
    sage_err st = sage_call_status(call, &msg);
    PyObject *a[3] = {NULL, NULL, NULL}, *resp = NULL;

    a[0] = PyBool_FromLong(st == SAGE_OK);
    if (st == SAGE_OK) {
        a[1] = pysage_to_py(sage_call_result_value(call), "result");
        a[2] = Py_NewRef(Py_None);
    } else {
        a[1] = Py_NewRef(Py_None);
        a[2] = PyUnicode_DecodeUTF8(msg ? msg : "", (Py_ssize_t)strlen(msg ? msg : ""), "replace");
    }
    if (a[0] && a[1] && a[2])
        resp = PyObject_Vectorcall(pysage_reg.response_cls, a, 3, NULL);
    for (int i = 0; i < 3; i++)
        Py_XDECREF(a[i]);
    return resp;
}

static void after(void *arg, sage_call *call)
{
    struct pymw *p = arg;
    PyObject *resp, *r = NULL;
    PyObject *before_success = NULL, *before_result = NULL, *before_error = NULL;
    PyGILState_STATE g;

    if (!pysage_alive() || pysage_reg.response_cls == NULL)
        return;
    g = pysage_gil_take();
    if ((resp = response_object(call)) == NULL) {
        pysage_fail_call(call, SAGE_EHANDLER);
        goto out;
    }
    before_success = PyObject_GetAttrString(resp, "success");
    before_result = PyObject_GetAttrString(resp, "result");
    before_error = PyObject_GetAttrString(resp, "error");
    r = PyObject_CallMethod(p->obj, "after_call", "O", resp);
    if (r == NULL) {
        pysage_fail_call(call, SAGE_EHANDLER);
        goto out;
    }
    if (r != Py_None && PyObject_TypeCheck(r, (PyTypeObject *)pysage_reg.response_cls)) {
        pysage_apply_outcome(call, r);
    } else {
        /* changed in place? */
        PyObject *s = PyObject_GetAttrString(resp, "success");
        PyObject *res = PyObject_GetAttrString(resp, "result");
        PyObject *e = PyObject_GetAttrString(resp, "error");

        if (s && res && e && (s != before_success || res != before_result || e != before_error))
            pysage_apply_outcome(call, resp);
        PyErr_Clear();
        Py_XDECREF(s);
        Py_XDECREF(res);
        Py_XDECREF(e);
    }
out:
    Py_XDECREF(r);
    Py_XDECREF(resp);
    Py_XDECREF(before_success);
    Py_XDECREF(before_result);
    Py_XDECREF(before_error);
    pysage_gil_give(g);
}

/* overrides tells whether obj's class defines hook other than
 * sagesvc.ServiceMiddleware's no-op (registered as base) */
static int overrides(PyObject *obj, const char *hook)
{
    PyObject *m = PyObject_GetAttrString((PyObject *)Py_TYPE(obj), hook);
    PyObject *base_m = NULL, *base;
    int r;

    if (m == NULL) {
        PyErr_Clear();
        return 0;
    }
    base = PyObject_GetAttrString(PyImport_AddModule("sagesvc"), "ServiceMiddleware");
    if (base)
        base_m = PyObject_GetAttrString(base, hook);
    PyErr_Clear();
    r = base_m == NULL || m != base_m;
    Py_XDECREF(base);
    Py_XDECREF(base_m);
    Py_DECREF(m);
    return r;
}

sage_middleware *pysage_middleware_new(PyObject *obj, const char *service)
{
    struct pymw *p;
    int b = overrides(obj, "before_call"), a = overrides(obj, "after_call");

    if (!b && !a && !PyObject_HasAttrString(obj, "before_call") &&
        !PyObject_HasAttrString(obj, "after_call")) {
        PyErr_Format(PyExc_TypeError,
                     "middleware: %s has neither before_call nor after_call (use a "
                     "sagesvc.ServiceMiddleware, or a built-in name: 'logging', 'deadline')",
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    if ((p = calloc(1, sizeof *p)) == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    snprintf(p->name, sizeof p->name, "python:%s", Py_TYPE(obj)->tp_name);
    p->mw.name = p->name;
    p->mw.before_call = b ? before : NULL;
    p->mw.after_call = a ? after : NULL;
    p->mw.arg = p;
    Py_INCREF(obj);
    p->obj = obj;
    (void)service;
    return &p->mw;
}

void pysage_middleware_free(sage_middleware *mw)
{
    struct pymw *p = (struct pymw *)mw;

    if (p == NULL)
        return;
    Py_XDECREF(p->obj);
    free(p);
}
