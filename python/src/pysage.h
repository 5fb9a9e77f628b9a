/*
 * pysage.h - what the files of the sagesvc._core extension share.
 *
 * One idea per file: values (convert.c), errors (errors.c), threads and the
 * GIL (gil.c), configurations (config.c), environments (env.c), managers
 * and their calls (manager.c), futures (future.c), the completion of
 * asynchronous calls (complete.c), tasks and services (task.c), middleware
 * (middleware.c), hosting helpers (host.c), module init (module.c).
 *
 * Threads: every function here that takes or returns a PyObject runs with
 * the GIL held, unless its comment says otherwise.
 */
#ifndef SAGESVC_PY_PYSAGE_H
#define SAGESVC_PY_PYSAGE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sage/config.h"
#include "sage/err.h"
#include "sage/future.h"
#include "sage/manager.h"
#include "sage/service.h"
#include "sage/task.h"
#include "sage/value.h"

/* ---------------------------------------------------------------- values */

/* PYSAGE_MAX_DEPTH: the deepest nesting converted either way; deeper (or a
 * container that holds itself) is a ValueError naming the place. */
#define PYSAGE_MAX_DEPTH 64

/*
 * pysage_from_py converts o into *out, allocating in a (strings and bytes
 * are copied: nothing of o is borrowed). where names o in messages
 * ("args", "kwargs", "result"). On failure, sets a Python exception naming
 * the path (TypeError "args[1]['k']: set is not supported", OverflowError,
 * ValueError) and returns -1.
 */
int pysage_from_py(sage_value *out, PyObject *o, sage_arena *a, const char *where);

/* pysage_args_from_py converts a sequence (tuple or list) into an array of
 * n values in a, written to *itemsp and *np. -1 with an exception. */
int pysage_args_from_py(const sage_value **itemsp, size_t *np, PyObject *seq, sage_arena *a);

/* pysage_kwargs_from_py converts a dict with str keys (NULL or None: none)
 * into pairs in a. -1 with an exception. */
int pysage_kwargs_from_py(const sage_pair **pairsp, size_t *np, PyObject *dict, sage_arena *a);

/* pysage_to_py converts v into a new Python object; where names it in
 * messages. NULL with an exception (invalid UTF-8, a map as a dict key). */
PyObject *pysage_to_py(const sage_value *v, const char *where);

/* pysage_tuple_from_array converts an array value into a tuple. */
PyObject *pysage_tuple_from_array(const sage_value *v, const char *where);

/* pysage_dict_from_map converts a map value into a dict (NULL and nil: an
 * empty dict). */
PyObject *pysage_dict_from_map(const sage_value *v, const char *where);

/*
 * Per-thread arenas for the values of one call. A call takes the next one
 * of its thread's stack and gives it back (reset) when done, so a call made
 * from inside another call on the same thread (a Python service calling a
 * service) never reuses the outer call's memory. NULL with MemoryError set.
 */
sage_arena *pysage_arena_take(void);
void pysage_arena_give(sage_arena *a);

/* ---------------------------------------------------------------- errors */

/*
 * pysage_raise sets the Python exception for sage error code with detail
 * (NULL or "": the code's own text), of the sagesvc.ServiceError subclass
 * registered for the code (sagesvc.errors; RuntimeError before
 * registration). Returns NULL, for `return pysage_raise(...)`.
 */
PyObject *pysage_raise(sage_err code, const char *detail);

/* pysage_raise_as raises code with the class registered for code as
 * (a configuration's ENOENT as a ConfigError, say). */
PyObject *pysage_raise_as(sage_err as, sage_err code, const char *detail);
PyObject *pysage_exc_instance_as(sage_err as, sage_err code, const char *detail);

/* pysage_raise_last raises code with this thread's sage_errdetail(). */
PyObject *pysage_raise_last(sage_err code);

/* pysage_exc_instance makes (does not raise) the exception object for code
 * and detail; a new reference, or NULL with an exception. */
PyObject *pysage_exc_instance(sage_err code, const char *detail);

/*
 * pysage_classify turns the exception being handled (fetched: the error
 * indicator is clear on return) into a code and a message for a caller:
 * a sagesvc.ServiceError keeps its code and detail; with binding, a
 * TypeError raised while binding the arguments of a call (no frame of the
 * method ran) is EBADARGS;
 * anything else is dflt with "Type: message". *excp receives the exception
 * object (a new reference) for logging, or NULL. msg is always terminated.
 */
sage_err pysage_classify(PyObject **excp, char *msg, size_t cap, sage_err dflt, bool binding);

/* pysage_log_exception hands exc to the package's log hook with the
 * service and method names (it logs the traceback on the service's
 * logger); a failure there is written to stderr. Borrowed exc. */
void pysage_log_exception(const char *service, const char *method, PyObject *exc);

/* The registered classes and hooks (module.c owns the references). */
struct pysage_registry {
    PyObject *errors[SAGE_ERR_COUNT_]; /* class per code, or NULL */
    PyObject *service_error;           /* sagesvc.ServiceError */
    PyObject *request_cls;             /* sagesvc.ServiceRequest */
    PyObject *response_cls;            /* sagesvc.ServiceResponse */
    PyObject *log_hook;                /* fn(service, method, exc) */
    PyTypeObject *future_cls;          /* sagesvc.CallFuture, a FutureCore subclass */
};
extern struct pysage_registry pysage_reg;

/* -------------------------------------------------------- threads, the GIL */

/*
 * pysage_gil_take takes the GIL on any thread: a Python thread that
 * released it, or a thread of the library (listener, worker, the
 * completion thread), which is given a Python thread state once, kept
 * until the thread ends, so calls do not create and destroy one each.
 * pysage_gil_give gives back what pysage_gil_take took.
 */
PyGILState_STATE pysage_gil_take(void);
void pysage_gil_give(PyGILState_STATE st);

/* pysage_gil_init prepares the thread-state bookkeeping; 0 or -1. */
int pysage_gil_init(void);

/* pysage_alive tells whether the interpreter can still run Python code
 * (not finalizing). Callable without the GIL. */
bool pysage_alive(void);

/* ------------------------------------------------------------------ types */

extern PyTypeObject PySage_ConfigType;
extern PyTypeObject PySage_NatsType;
extern PyTypeObject PySage_EnvType;
extern PyTypeObject PySage_ManagerType;
extern PyTypeObject PySage_FutureType;
extern PyTypeObject PySage_TaskType;
extern PyTypeObject PySage_MetricsType;

/* A configuration (config.c). */
typedef struct {
    PyObject_HEAD
    sage_config *cfg;
} PySage_Config;

/* NATS connection settings with the storage of their strings (config.c). */
typedef struct {
    PyObject_HEAD
    sage_nats_conf conf;
    char **strings;  /* every string conf points to, owned */
    size_t nstrings;
    const char **servers;
} PySage_Nats;

/* An in-process registry of services (env.c). */
typedef struct {
    PyObject_HEAD
    sage_env *env;
    PyObject *tasks; /* dict name -> task object: keeps them alive */
} PySage_Env;

/* A task (task.c). */
typedef struct PySage_Task PySage_Task;

/* pysage_task_ptr returns the sage_task of a task object, or NULL with a
 * TypeError. */
sage_task *pysage_task_ptr(PyObject *o);

/* pysage_task_status_dict reads st into a dict with the keys of
 * `sagesvc status --json`. */
PyObject *pysage_status_dict(const sage_status *st);

/* ------------------------------------------------------------- middleware */

/*
 * pysage_middleware_new makes the C hooks of Python middleware object obj
 * (a sagesvc.ServiceMiddleware or anything with before_call/after_call);
 * a hook the object does not override is left NULL. The returned table
 * holds a reference to obj; free it with pysage_middleware_free (GIL held).
 */
sage_middleware *pysage_middleware_new(PyObject *obj, const char *service);
void pysage_middleware_free(sage_middleware *mw);

/* pysage_request_object makes a sagesvc.ServiceRequest for call. */
PyObject *pysage_request_object(sage_call *call);

/* pysage_apply_outcome sets call's answer from a handler's return value r
 * (borrowed): a ServiceResponse sets success or error, anything else is
 * the result. Returns the answer's code. */
sage_err pysage_apply_outcome(sage_call *call, PyObject *r);

/* pysage_fail_call records the exception being handled as call's error
 * (classified with dflt) and logs it when it is a handler failure. */
sage_err pysage_fail_call(sage_call *call, sage_err dflt);

/* pysage_fail_binding is pysage_fail_call for the exception of calling a
 * method or handler: a TypeError from binding its arguments is EBADARGS. */
sage_err pysage_fail_binding(sage_call *call);

/* ------------------------------------------------------ futures and calls */

typedef struct pysage_dq pysage_dq;

/*
 * A future (future.c): the C half of sagesvc.CallFuture, a
 * concurrent.futures.Future. The first group of fields is the Python
 * future's, GIL-protected; the second is the call behind it, if any
 * (complete.c), under its queue's lock while the call is pending.
 */
typedef struct PySage_Future {
    PyObject_HEAD
    int state;            /* FUT_PENDING .. FUT_FINISHED */
    PyObject *result;     /* once FINISHED without an exception */
    PyObject *exception;  /* once FINISHED with one */
    PyObject *callbacks;  /* a list, made by the first add_done_callback */
    PyObject *condition;  /* a threading.Condition, made when asked for */
    PyObject *waiters;    /* a list, made when asked for (concurrent.futures.wait) */

    pysage_dq *q;         /* the completion queue of its manager (a reference); NULL: no call */
    sage_future *f;       /* the library's future, until its callback ran */
    sage_err code;        /* the outcome, set by that callback */
    sage_value value;     /* the result, in the queue's batch arena */
    const char *detail;   /* the error's detail, likewise */
    PyObject *outcome;    /* the outcome converted: the result, or the exception */
    bool outcome_is_exc;
    atomic_bool watched;  /* someone waits through a callback or the condition */
    atomic_bool awaited;  /* a thread waits in result() or exception() */
    struct PySage_Future *next; /* in the queue */
} PySage_Future;

enum { FUT_PENDING, FUT_RUNNING, FUT_CANCELLED, FUT_CANCELLED_NOTIFIED, FUT_FINISHED };

/* pysage_future_setup imports what futures need (concurrent.futures,
 * threading); 0, or -1 with an exception. Module init. */
int pysage_future_setup(void);

/* pysage_future_new makes a pending future of class cls (a FutureCore
 * subclass) without running any Python code. NULL with an exception. */
PySage_Future *pysage_future_new(PyTypeObject *cls);

static inline bool pysage_future_done(const PySage_Future *f)
{
    return f->state >= FUT_CANCELLED;
}

/*
 * pysage_future_settle completes fut with result or exc (exactly one not
 * NULL; borrowed), or cancels it (both NULL), as set_result, set_exception
 * or cancel would, and runs its done-callbacks - unless it is done
 * already, which changes nothing. 0, or -1 with an exception a callback
 * raised that is not an Exception (KeyboardInterrupt), or from the
 * condition. notify_queue: bump the queue's count of changes (complete.c
 * does it itself while draining).
 */
int pysage_future_settle(PySage_Future *fut, PyObject *result, PyObject *exc, bool notify_queue);

/*
 * The completion queue of a manager (complete.c). The library's callback
 * queues the outcome of each call without the GIL; Python threads resolve
 * the queue with it, inline, whenever they call, wait or look at a future.
 * Threads that call or wait also take the manager's answers themselves
 * (sage_manager_poll); the queue's resolver thread does both for the
 * futures somebody watches (done-callbacks, concurrent.futures.wait) that
 * no such thread has resolved soon enough.
 */
pysage_dq *pysage_dq_new(void);
void pysage_dq_unref(pysage_dq *q);
/* pysage_dq_attach gives q the manager its threads poll; pysage_dq_detach
 * takes it back, waiting for polls in progress (before sage_manager_free;
 * GIL released). */
void pysage_dq_attach(pysage_dq *q, sage_manager *m);
void pysage_dq_detach(pysage_dq *q);
/* pysage_dq_poll takes the answers that have come (no wait), unless q is
 * detached; pysage_dq_polled tells q a thread of ours polled m itself. */
void pysage_dq_poll(pysage_dq *q);
void pysage_dq_polled(pysage_dq *q);
/* pysage_dq_stop resolves what is left and stops the resolver; GIL released. */
void pysage_dq_stop(pysage_dq *q);
/* pysage_dq_bind makes fut the future of the call f (fut takes a reference
 * to q); the library's callback then queues its outcome. An error if the
 * callback cannot be added (f is then freed). */
sage_err pysage_dq_bind(pysage_dq *q, PySage_Future *fut, sage_future *f);
/* pysage_dq_drain resolves what has completed, on this thread. A callback
 * that calls again finds the drain in progress and leaves it be. NULL is
 * ignored. */
void pysage_dq_drain(pysage_dq *q);
/* pysage_dq_watch marks fut watched: once its call completes, it is
 * resolved promptly even if no thread calls or waits. */
void pysage_dq_watch(PySage_Future *fut);
/* pysage_dq_wait waits up to timeout seconds (< 0: no limit) for fut,
 * resolving completions meanwhile: 1 done, 0 timed out, 2 the queue is
 * stopped with fut not done (wait some other way), -1 an exception (a
 * signal handler's). */
int pysage_dq_wait(PySage_Future *fut, double timeout);
/* pysage_dq_cancel cancels fut's call if it is still pending: its outcome,
 * if it comes, is dropped. */
void pysage_dq_cancel(PySage_Future *fut);
/* pysage_dq_changed tells threads waiting on q that a future changed. */
void pysage_dq_changed(pysage_dq *q);

/* ------------------------------------------------------------ module state */

/* pysage_ms converts seconds (None: dflt) to milliseconds for the API:
 * > 0 rounded up to 1 ms at least, inf: -1 (no limit). -1 with an
 * exception (and *ok = false) for a negative, zero or NaN value. */
int64_t pysage_ms(PyObject *seconds, int64_t dflt, const char *what, bool *ok);

#endif /* SAGESVC_PY_PYSAGE_H */
