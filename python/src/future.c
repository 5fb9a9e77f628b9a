/*
 * future.c - sagesvc._core.FutureCore: the C half of sagesvc.CallFuture, a
 * concurrent.futures.Future whose state, outcome and callbacks live in C.
 *
 * Design notes
 * - sagesvc.CallFuture is `class CallFuture(_core.FutureCore,
 *   concurrent.futures.Future)`: isinstance() and asyncio.wrap_future see a
 *   real Future. Every public method of concurrent.futures.Future is
 *   defined here with the semantics of CPython 3.11's _base.py, so none of
 *   the base's Python code runs and its __init__ is never called: a future
 *   is one allocation, with no Condition, RLock, lists or dict of its own
 *   until someone asks for them.
 * - The base's private attributes are read-only properties, because
 *   concurrent.futures.wait() and as_completed() read _state, hold
 *   _condition and append to _waiters. _condition and _waiters are made
 *   when first asked for. A state change takes the condition if there is
 *   one (so a thread that holds it sees the state and the waiters change
 *   together), tells the waiters and notifies it; before there is one, a
 *   state change runs no Python code between reading the state and writing
 *   it, so it is atomic under the GIL, and a thread that makes the
 *   condition afterwards sees the new state once it holds it.
 * - Everything here runs with the GIL held. A future of a call is also an
 *   entry of its manager's completion queue (complete.c), which owns the
 *   call's fields.
 * - Waiting: a future of a call waits on its completion queue, taking the
 *   manager's answers and resolving them on the waiting thread (woken by
 *   its own answer, no hand-off of the GIL); any other future waits on its
 *   condition, as the base does. Resolving is lazy (complete.c): done(),
 *   result() and add_done_callback resolve what has come; the private
 *   names only mark the future watched (see get_state).
 * - Done-callbacks are dropped once run (the base keeps them): what they
 *   hold is freed with them, and no cycle through the future outlives it.
 */
#include "pysage.h"

#include <string.h>

/* the base module's names and classes */
static PyObject *state_names[FUT_FINISHED + 1];
static const char *const state_text[FUT_FINISHED + 1] = {"pending", "running", "cancelled",
                                                         "cancelled", "finished"};
static PyObject *cancelled_error, *timeout_error, *invalid_state_error, *logger, *condition_cls;
static PyObject *str_acquire, *str_release, *str_notify_all, *str_wait, *str_add_result,
    *str_add_exception, *str_add_cancelled, *str_error, *str_exc_info;

static PyObject *intern(const char *s)
{
    return PyUnicode_InternFromString(s);
}

int pysage_future_setup(void)
{
    static const char *const names[] = {"PENDING", "RUNNING", "CANCELLED", "CANCELLED_AND_NOTIFIED",
                                        "FINISHED"};
    PyObject *base, *threading;
    int rc = -1;

    if (condition_cls != NULL)
        return 0;
    if ((base = PyImport_ImportModule("concurrent.futures._base")) == NULL)
        return -1;
    if ((threading = PyImport_ImportModule("threading")) == NULL) {
        Py_DECREF(base);
        return -1;
    }
    for (int i = 0; i <= FUT_FINISHED; i++)
        if ((state_names[i] = PyObject_GetAttrString(base, names[i])) == NULL)
            goto out;
    if ((cancelled_error = PyObject_GetAttrString(base, "CancelledError")) == NULL ||
        (timeout_error = PyObject_GetAttrString(base, "TimeoutError")) == NULL ||
        (invalid_state_error = PyObject_GetAttrString(base, "InvalidStateError")) == NULL ||
        (logger = PyObject_GetAttrString(base, "LOGGER")) == NULL ||
        (condition_cls = PyObject_GetAttrString(threading, "Condition")) == NULL)
        goto out;
    if ((str_acquire = intern("acquire")) == NULL || (str_release = intern("release")) == NULL ||
        (str_notify_all = intern("notify_all")) == NULL || (str_wait = intern("wait")) == NULL ||
        (str_add_result = intern("add_result")) == NULL ||
        (str_add_exception = intern("add_exception")) == NULL ||
        (str_add_cancelled = intern("add_cancelled")) == NULL ||
        (str_error = intern("error")) == NULL || (str_exc_info = intern("exc_info")) == NULL)
        goto out;
    rc = 0;
out:
    if (rc < 0)
        Py_CLEAR(condition_cls); /* setup runs again */
    Py_DECREF(base);
    Py_DECREF(threading);
    return rc;
}

static bool cancelled(int st)
{
    return st == FUT_CANCELLED || st == FUT_CANCELLED_NOTIFIED;
}

PySage_Future *pysage_future_new(PyTypeObject *cls)
{
    /* every field zero: PENDING, no call */
    return (PySage_Future *)cls->tp_alloc(cls, 0);
}

/* ------------------------------------------------------------ the condition */

/* get_condition returns self's condition, making it the first time: a
 * new reference, or NULL with an exception */
static PyObject *get_condition(PySage_Future *self)
{
    PyObject *c;

    if (self->condition == NULL) {
        /* runs Python code: another thread may make one meanwhile */
        if ((c = PyObject_CallNoArgs(condition_cls)) == NULL)
            return NULL;
        if (self->condition == NULL)
            self->condition = c;
        else
            Py_DECREF(c);
    }
    Py_INCREF(self->condition);
    return self->condition;
}

/* cond_enter takes self's condition if it has one: *condp gets it (a new
 * reference) or NULL. -1 with an exception if it could not be taken. */
static int cond_enter(PySage_Future *self, PyObject **condp)
{
    PyObject *c = self->condition, *r;

    *condp = NULL;
    if (c == NULL)
        return 0;
    Py_INCREF(c);
    if ((r = PyObject_CallMethodNoArgs(c, str_acquire)) == NULL) {
        Py_DECREF(c);
        return -1;
    }
    Py_DECREF(r);
    *condp = c;
    return 0;
}

/* keep_first keeps the first exception of several: the one in *t if any */
static void keep_first(PyObject **t, PyObject **v, PyObject **tb)
{
    if (*t == NULL)
        PyErr_Fetch(t, v, tb);
    else
        PyErr_Clear();
}

/* cond_exit notifies the condition's waiters (if notify) and releases it,
 * whatever is raised already (kept: the first exception wins); drops the
 * reference. -1 if notifying or releasing raised. */
static int cond_exit(PyObject *cond, bool notify)
{
    PyObject *t, *v, *tb, *r;
    int rc = 0;

    if (cond == NULL)
        return 0;
    PyErr_Fetch(&t, &v, &tb);
    if (notify) {
        if ((r = PyObject_CallMethodNoArgs(cond, str_notify_all)) == NULL) {
            rc = -1;
            keep_first(&t, &v, &tb);
        }
        Py_XDECREF(r);
    }
    if ((r = PyObject_CallMethodNoArgs(cond, str_release)) == NULL) {
        rc = -1;
        keep_first(&t, &v, &tb);
    }
    Py_XDECREF(r);
    PyErr_Restore(t, v, tb);
    Py_DECREF(cond);
    return rc;
}

/* tell_waiters calls method(self) on every waiter of concurrent.futures.wait
 * and as_completed (under the condition) */
static int tell_waiters(PySage_Future *self, PyObject *method)
{
    PyObject *w = self->waiters;

    if (w == NULL)
        return 0;
    Py_INCREF(w);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(w); i++) {
        PyObject *waiter = PyList_GET_ITEM(w, i), *r;

        Py_INCREF(waiter);
        r = PyObject_CallMethodOneArg(waiter, method, (PyObject *)self);
        Py_DECREF(waiter);
        if (r == NULL) {
            Py_DECREF(w);
            return -1;
        }
        Py_DECREF(r);
    }
    Py_DECREF(w);
    return 0;
}

/* ------------------------------------------------------------- callbacks */

/* fetch_exc takes the exception being raised: a new reference to the
 * instance, its traceback attached */
static PyObject *fetch_exc(void)
{
    PyObject *type, *value, *tb;

    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
}

/* log_callback_error handles the exception a done-callback raised as the
 * base does: an Exception is logged on concurrent.futures' logger with its
 * traceback (0); anything else (KeyboardInterrupt) is left raised (-1) */
static int log_callback_error(PySage_Future *self)
{
    PyObject *exc, *meth, *args = NULL, *kw = NULL, *r = NULL;

    if (!PyErr_ExceptionMatches(PyExc_Exception))
        return -1;
    exc = fetch_exc();
    if ((meth = PyObject_GetAttr(logger, str_error)) != NULL &&
        (args = Py_BuildValue("(sO)", "exception calling callback for %r", (PyObject *)self)) &&
        (kw = Py_BuildValue("{OO}", str_exc_info, exc ? exc : Py_True)))
        r = PyObject_Call(meth, args, kw);
    if (r == NULL)
        PyErr_WriteUnraisable((PyObject *)self);
    Py_XDECREF(r);
    Py_XDECREF(meth);
    Py_XDECREF(args);
    Py_XDECREF(kw);
    Py_XDECREF(exc);
    return 0;
}

/* call_callback runs fn(self) as the base's callbacks run; -1 for an
 * exception that is not an Exception */
static int call_callback(PySage_Future *self, PyObject *fn)
{
    PyObject *r = PyObject_CallOneArg(fn, (PyObject *)self);

    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    return log_callback_error(self);
}

/* run_callbacks runs self's done-callbacks in the order they were added,
 * then drops them. -1 stops at a callback that raised what is not an
 * Exception. */
static int run_callbacks(PySage_Future *self)
{
    PyObject *cbs = self->callbacks;
    int rc = 0;

    if (cbs == NULL)
        return 0;
    self->callbacks = NULL; /* done: add_done_callback runs a new one at once */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cbs) && rc == 0; i++) {
        PyObject *fn = PyList_GET_ITEM(cbs, i);

        Py_INCREF(fn);
        rc = call_callback(self, fn);
        Py_DECREF(fn);
    }
    Py_DECREF(cbs);
    return rc;
}

/* --------------------------------------------------------- state changes */

/*
 * finish moves a pending or running self to FINISHED with result or exc
 * (borrowed: exactly one is not NULL), or a pending one to CANCELLED (both
 * NULL), under its condition if it has one, telling the waiters. 1 if it
 * changed, 0 if self was in a state that refuses the change (nothing
 * done), -1 with an exception. Callbacks are the caller's to run.
 */
static int finish(PySage_Future *self, PyObject *result, PyObject *exc, bool notify_queue)
{
    PyObject *cond;
    int rc;
    bool cancel = result == NULL && exc == NULL;

    if (cond_enter(self, &cond) < 0)
        return -1;
    if (pysage_future_done(self) || (cancel && self->state == FUT_RUNNING)) {
        cond_exit(cond, false);
        return 0;
    }
    if (cancel) {
        self->state = FUT_CANCELLED;
        rc = 0; /* the base tells waiters of a cancel in set_running_or_notify_cancel */
    } else {
        if (exc != NULL) {
            Py_INCREF(exc);
            Py_XSETREF(self->exception, exc);
        } else {
            Py_INCREF(result);
            Py_XSETREF(self->result, result);
        }
        self->state = FUT_FINISHED;
        rc = tell_waiters(self, exc != NULL ? str_add_exception : str_add_result);
    }
    if (cond_exit(cond, true) < 0)
        rc = -1;
    if (notify_queue && self->q != NULL)
        pysage_dq_changed(self->q);
    return rc < 0 ? -1 : 1;
}

int pysage_future_settle(PySage_Future *fut, PyObject *result, PyObject *exc, bool notify_queue)
{
    int r = finish(fut, result, exc, notify_queue);

    if (r <= 0)
        return r;
    return run_callbacks(fut);
}

static PyObject *invalid_state(PySage_Future *self)
{
    PyErr_Format(invalid_state_error, "%U: %R", state_names[self->state], (PyObject *)self);
    return NULL;
}

/* ---------------------------------------------------------------- waiting */

/* parse_timeout reads timeout=None (seconds) from a fastcall: *tp < 0
 * means no limit; a negative number means do not wait, as in the base */
static int parse_timeout(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                         const char *fname, double *tp)
{
    PyObject *t = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    *tp = -1;
    if (nargs + nkw > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument (%zd given)", fname,
                     nargs + nkw);
        return -1;
    }
    if (nargs == 1) {
        t = args[0];
    } else if (nkw == 1) {
        if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "timeout") != 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname,
                         PyTuple_GET_ITEM(kwnames, 0));
            return -1;
        }
        t = args[0];
    }
    if (t == NULL || t == Py_None)
        return 0;
    *tp = PyFloat_AsDouble(t);
    if (*tp == -1.0 && PyErr_Occurred())
        return -1;
    if (!(*tp >= 0)) /* negative or NaN: a look, no wait */
        *tp = 0;
    return 0;
}

/* cond_wait waits on self's condition, as the base does; 1 done, 0 not,
 * -1 with an exception */
static int cond_wait(PySage_Future *self, double timeout)
{
    PyObject *cond = get_condition(self), *r;
    int rc = 0;

    if (cond == NULL)
        return -1;
    if ((r = PyObject_CallMethodNoArgs(cond, str_acquire)) == NULL) {
        Py_DECREF(cond);
        return -1;
    }
    Py_DECREF(r);
    if (!pysage_future_done(self)) {
        PyObject *t = timeout < 0 ? Py_NewRef(Py_None) : PyFloat_FromDouble(timeout);

        r = t ? PyObject_CallMethodOneArg(cond, str_wait, t) : NULL;
        Py_XDECREF(t);
        if (r == NULL)
            rc = -1;
        Py_XDECREF(r);
    }
    if (cond_exit(cond, false) < 0)
        rc = -1;
    return rc < 0 ? -1 : pysage_future_done(self);
}

/* wait_done waits up to timeout seconds (< 0: none) for self to be done:
 * 1 done, 0 not, -1 with an exception */
static int wait_done(PySage_Future *self, double timeout)
{
    int r;

    if (pysage_future_done(self))
        return 1;
    if (timeout == 0 && self->q == NULL)
        return 0;
    if (self->q != NULL) {
        r = pysage_dq_wait(self, timeout);
        if (r != 2)
            return r;
        /* the queue is stopped: only set_result and the like can finish it */
    }
    return cond_wait(self, timeout);
}

/* outcome returns the result or raises the exception (a FINISHED self) */
static PyObject *outcome(PySage_Future *self)
{
    PyObject *e = self->exception;

    if (e == NULL || e == Py_None)
        return Py_NewRef(self->result ? self->result : Py_None);
    if (PyExceptionInstance_Check(e))
        PyErr_SetObject((PyObject *)Py_TYPE(e), e);
    else if (PyExceptionClass_Check(e))
        PyErr_SetNone(e);
    else
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
    return NULL;
}

/* ---------------------------------------------------------------- methods */

static PyObject *fut_result(PySage_Future *self, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    double t;

    if (self->state == FUT_FINISHED && nargs == 0 && kwnames == NULL) /* the common case */
        return outcome(self);
    if (parse_timeout(args, nargs, kwnames, "result", &t) < 0)
        return NULL;
    if (!pysage_future_done(self) && wait_done(self, t) < 0)
        return NULL;
    if (cancelled(self->state))
        return PyErr_SetNone(cancelled_error), NULL;
    if (self->state == FUT_FINISHED)
        return outcome(self);
    return PyErr_SetNone(timeout_error), NULL;
}

static PyObject *fut_exception(PySage_Future *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    double t;

    if (parse_timeout(args, nargs, kwnames, "exception", &t) < 0)
        return NULL;
    if (!pysage_future_done(self) && wait_done(self, t) < 0)
        return NULL;
    if (cancelled(self->state))
        return PyErr_SetNone(cancelled_error), NULL;
    if (self->state == FUT_FINISHED)
        return Py_NewRef(self->exception ? self->exception : Py_None);
    return PyErr_SetNone(timeout_error), NULL;
}

/* look resolves what has completed in self's queue (a lazy queue: see
 * complete.c) */
static void look(PySage_Future *self)
{
    if (!pysage_future_done(self))
        pysage_dq_drain(self->q);
}

static PyObject *fut_done(PySage_Future *self, PyObject *unused)
{
    if (self->q != NULL && !pysage_future_done(self))
        pysage_dq_poll(self->q); /* answers are taken by who looks */
    look(self);
    return PyBool_FromLong(pysage_future_done(self));
}

static PyObject *fut_cancelled(PySage_Future *self, PyObject *unused)
{
    return PyBool_FromLong(cancelled(self->state));
}

static PyObject *fut_running(PySage_Future *self, PyObject *unused)
{
    return PyBool_FromLong(self->state == FUT_RUNNING);
}

/* cancel(): as the base's; a future of a call also cancels the call: its
 * answer, if it comes, is dropped */
static PyObject *fut_cancel(PySage_Future *self, PyObject *unused)
{
    int r;

    if (cancelled(self->state))
        Py_RETURN_TRUE;
    if ((r = finish(self, NULL, NULL, true)) < 0)
        return NULL;
    if (r == 0) /* running or finished; or cancelled while we took the condition */
        return PyBool_FromLong(cancelled(self->state));
    if (self->q != NULL)
        pysage_dq_cancel(self);
    if (run_callbacks(self) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *fut_add_done_callback(PySage_Future *self, PyObject *fn)
{
    look(self);
    if (!pysage_future_done(self)) {
        if (self->callbacks == NULL && (self->callbacks = PyList_New(0)) == NULL)
            return NULL;
        if (PyList_Append(self->callbacks, fn) < 0)
            return NULL;
        if (self->q != NULL)
            pysage_dq_watch(self);
        Py_RETURN_NONE;
    }
    if (call_callback(self, fn) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* set_outcome: set_result and set_exception */
static PyObject *set_outcome(PySage_Future *self, PyObject *result, PyObject *exc)
{
    int r = finish(self, result, exc, true);

    if (r < 0)
        return NULL;
    if (r == 0)
        return invalid_state(self);
    if (run_callbacks(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *fut_set_result(PySage_Future *self, PyObject *result)
{
    return set_outcome(self, result, NULL);
}

static PyObject *fut_set_exception(PySage_Future *self, PyObject *exc)
{
    return set_outcome(self, NULL, exc);
}

static PyObject *fut_set_running_or_notify_cancel(PySage_Future *self, PyObject *unused)
{
    PyObject *cond, *r;
    int rc = 0;

    if (cond_enter(self, &cond) < 0)
        return NULL;
    if (self->state == FUT_CANCELLED) {
        self->state = FUT_CANCELLED_NOTIFIED;
        rc = tell_waiters(self, str_add_cancelled);
        if (cond_exit(cond, false) < 0 || rc < 0)
            return NULL;
        Py_RETURN_FALSE;
    }
    if (self->state == FUT_PENDING) {
        self->state = FUT_RUNNING;
        if (cond_exit(cond, false) < 0)
            return NULL;
        Py_RETURN_TRUE;
    }
    r = PyObject_CallMethod(logger, "critical", "sNO", "Future %s in unexpected state: %s",
                            PyLong_FromVoidPtr(self), state_names[self->state]);
    Py_XDECREF(r);
    PyErr_Clear();
    cond_exit(cond, false);
    PyErr_SetString(PyExc_RuntimeError, "Future in unexpected state");
    return NULL;
}

static PyObject *fut_repr(PySage_Future *self)
{
    const char *name = Py_TYPE(self)->tp_name;
    const char *dot = strrchr(name, '.');

    if (dot)
        name = dot + 1;
    if (self->state == FUT_FINISHED) {
        PyObject *e = self->exception;

        if (e != NULL && e != Py_None)
            return PyUnicode_FromFormat("<%s at %p state=%s raised %s>", name, self,
                                        state_text[self->state], Py_TYPE(e)->tp_name);
        return PyUnicode_FromFormat("<%s at %p state=%s returned %s>", name, self,
                                    state_text[self->state],
                                    Py_TYPE(self->result ? self->result : Py_None)->tp_name);
    }
    return PyUnicode_FromFormat("<%s at %p state=%s>", name, self, state_text[self->state]);
}

/* ------------------------------------------------- the base's private names */

/* The base's private names never resolve anything: concurrent.futures.wait
 * and as_completed read the states of several futures holding all their
 * conditions, which a resolution on this very thread (its locks are
 * reentrant) would not keep out. A watched future is resolved by the
 * resolver thread, which takes the condition. */

static void watch(PySage_Future *self);

static PyObject *get_state(PySage_Future *self, void *closure)
{
    watch(self); /* someone looks: it is resolved when its call completes */
    return Py_NewRef(state_names[self->state]);
}

static PyObject *get_result(PySage_Future *self, void *closure)
{
    return Py_NewRef(self->result ? self->result : Py_None);
}

static PyObject *get_exception(PySage_Future *self, void *closure)
{
    return Py_NewRef(self->exception ? self->exception : Py_None);
}

/* watch: someone waits for self through the base's private names */
static void watch(PySage_Future *self)
{
    if (self->q != NULL && !pysage_future_done(self))
        pysage_dq_watch(self);
}

static PyObject *get_cond(PySage_Future *self, void *closure)
{
    watch(self);
    return get_condition(self);
}

static PyObject *get_waiters(PySage_Future *self, void *closure)
{
    watch(self);
    if (self->waiters == NULL && (self->waiters = PyList_New(0)) == NULL)
        return NULL;
    return Py_NewRef(self->waiters);
}

static PyObject *get_callbacks(PySage_Future *self, void *closure)
{
    watch(self);
    if (pysage_future_done(self))
        return PyList_New(0); /* run, and dropped */
    if (self->callbacks == NULL && (self->callbacks = PyList_New(0)) == NULL)
        return NULL;
    return Py_NewRef(self->callbacks);
}

/* ------------------------------------------------------------- the type */

static int fut_init(PySage_Future *self, PyObject *args, PyObject *kw)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kw && PyDict_GET_SIZE(kw) != 0)) {
        PyErr_SetString(PyExc_TypeError, "a future takes no arguments");
        return -1;
    }
    return 0;
}

static int fut_traverse(PySage_Future *self, visitproc visit, void *arg)
{
    Py_VISIT(self->result);
    Py_VISIT(self->exception);
    Py_VISIT(self->callbacks);
    Py_VISIT(self->condition);
    Py_VISIT(self->waiters);
    Py_VISIT(self->outcome);
    return 0;
}

static int fut_clear(PySage_Future *self)
{
    Py_CLEAR(self->result);
    Py_CLEAR(self->exception);
    Py_CLEAR(self->callbacks);
    Py_CLEAR(self->condition);
    Py_CLEAR(self->waiters);
    Py_CLEAR(self->outcome);
    return 0;
}

static void fut_dealloc(PySage_Future *self)
{
    /* a pending call holds a reference: its fields are ours alone now */
    PyObject_GC_UnTrack(self);
    fut_clear(self);
    pysage_dq_unref(self->q);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define FASTKW METH_FASTCALL | METH_KEYWORDS
#define CF(f) (PyCFunction)(void (*)(void))(f)

static PyMethodDef fut_methods[] = {
    {"result", CF(fut_result), FASTKW,
     "result(timeout=None): the call's result, waiting up to timeout seconds for it; raises "
     "its exception, CancelledError, or TimeoutError."},
    {"exception", CF(fut_exception), FASTKW,
     "exception(timeout=None): the call's exception (None if it succeeded), waiting like "
     "result()."},
    {"done", CF(fut_done), METH_NOARGS, "done(): whether the future is finished or cancelled."},
    {"cancelled", CF(fut_cancelled), METH_NOARGS, "cancelled(): whether it was cancelled."},
    {"running", CF(fut_running), METH_NOARGS, "running(): always False for a call's future."},
    {"cancel", CF(fut_cancel), METH_NOARGS,
     "cancel(): cancel the future if it is not finished, and its call (the answer, if it "
     "comes, is dropped); True if it is cancelled."},
    {"add_done_callback", CF(fut_add_done_callback), METH_O,
     "add_done_callback(fn): call fn(future) when it is done (at once if it is); an exception "
     "fn raises is logged."},
    {"set_result", CF(fut_set_result), METH_O, "set_result(result): as concurrent.futures."},
    {"set_exception", CF(fut_set_exception), METH_O,
     "set_exception(exception): as concurrent.futures."},
    {"set_running_or_notify_cancel", CF(fut_set_running_or_notify_cancel), METH_NOARGS,
     "set_running_or_notify_cancel(): as concurrent.futures."},
    {NULL},
};

static PyGetSetDef fut_getset[] = {
    {"_state", (getter)get_state, NULL, "the state, as concurrent.futures names it", NULL},
    {"_result", (getter)get_result, NULL, "the result, once finished", NULL},
    {"_exception", (getter)get_exception, NULL, "the exception, once finished", NULL},
    {"_condition", (getter)get_cond, NULL,
     "a threading.Condition, made when first asked for (concurrent.futures.wait)", NULL},
    {"_waiters", (getter)get_waiters, NULL, "the waiters of concurrent.futures.wait", NULL},
    {"_done_callbacks", (getter)get_callbacks, NULL, "the callbacks not run yet", NULL},
    {NULL},
};

PyTypeObject PySage_FutureType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sagesvc._core.FutureCore",
    .tp_basicsize = sizeof(PySage_Future),
    .tp_dealloc = (destructor)fut_dealloc,
    .tp_repr = (reprfunc)fut_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The C half of sagesvc.CallFuture: a concurrent.futures.Future's state, outcome "
              "and callbacks.",
    .tp_traverse = (traverseproc)fut_traverse,
    .tp_clear = (inquiry)fut_clear,
    .tp_methods = fut_methods,
    .tp_getset = fut_getset,
    .tp_init = (initproc)fut_init,
    .tp_new = PyType_GenericNew,
};
