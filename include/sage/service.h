/*
 * sage/service.h - what a service is, and what its methods see.
 *
 * A service is a table: a name, an optional factory (create with the
 * service's configuration, destroy), and methods {name, fn}. The runtime
 * (sage_task) runs one instance of it: it calls create once, then calls
 * methods from its worker threads, then destroy.
 *
 *   static sage_err echo(void *state, sage_call *call)
 *   {
 *       const char *text;
 *       if (sage_call_unpack(call, "[s]", &text) != SAGE_OK)
 *           return SAGE_EBADARGS;               // detail set by unpack
 *       return sage_call_resultf(call, "s", text);
 *   }
 *   static const sage_method methods[] = {{"echo", echo, 0}, {0}};
 *   const sage_service echo_service = {.abi = SAGE_SERVICE_ABI, .name = "echo", .methods = methods};
 *
 * Concurrency: with max_workers > 1 methods run concurrently on several
 * threads, on the same state. A stateful service protects its state itself
 * (or is configured with max_workers: 1).
 */
#ifndef SAGE_SERVICE_H
#define SAGE_SERVICE_H

#include "sage/export.h"

#include <stdbool.h>
#include <stdint.h>

#include "sage/err.h"
#include "sage/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* SAGE_SERVICE_ABI: the version of sage_service's layout (2: methods carry
 * flags). A plugin built against another version is refused at load. */
#define SAGE_SERVICE_ABI 2

/* sage_call: the request a method is serving, and its answer in the making.
 * Borrowed by the method for the duration of the call. */
typedef struct sage_call sage_call;

/*
 * sage_method_fn serves one call. It returns SAGE_OK with a result set by
 * sage_call_result or sage_call_resultf (nil if none), or an error code,
 * which the caller receives with the message set by sage_call_error (or this
 * thread's sage_errdetail(), or the code's own text). Runs on a worker
 * thread.
 */
typedef sage_err (*sage_method_fn)(void *state, sage_call *call);

/* Flags of a method. */
#define SAGE_METHOD_IDEMPOTENT 0x1u /* running it twice does no harm: callers may retry
                                     * and hedge calls to it without asking */

/* sage_method: one entry of a service's method table. */
typedef struct sage_method {
    const char *name; /* [A-Za-z0-9_.-], at most SAGE_NAME_MAX bytes */
    sage_method_fn fn;
    unsigned flags;    /* SAGE_METHOD_* */
} sage_method;

/* sage_service: the table that defines a service. Static data, usually. */
typedef struct sage_service {
    int abi;          /* SAGE_SERVICE_ABI */
    const char *name; /* default name it is registered under */
    /* create makes the state from the service's configuration (a map, or
     * nil); NULL means "no state". Failing refuses the task's start. */
    sage_err (*create)(void **statep, const sage_value *config);
    /* destroy frees the state after the last call; may be NULL. */
    void (*destroy)(void *state);
    const sage_method *methods; /* ends with {0} */
    /* dedupe: remember the answers to the last N request ids (per caller):
     * a repeat - a retried idempotent call, a redelivered durable one -
     * gets the remembered answer instead of running again, and a repeat
     * of a call still running is dropped (the first answers). 0: off. */
    uint32_t dedupe;
} sage_service;

/* ---------------------------------------------------------------- calls */

/* sage_call_service / _method return the names called (borrowed). */
SAGE_API const char *sage_call_service(const sage_call *call);
SAGE_API const char *sage_call_method(const sage_call *call);

/* sage_call_args returns the positional arguments: an array (borrowed). */
SAGE_API const sage_value *sage_call_args(const sage_call *call);

/* sage_call_kwargs returns the keyword arguments: a map with string keys,
 * possibly empty (borrowed). */
SAGE_API const sage_value *sage_call_kwargs(const sage_call *call);

/* sage_call_id returns the request id: unique per caller, the same on every
 * retry of an idempotent call, so a service can recognise a repeat. */
SAGE_API uint64_t sage_call_id(const sage_call *call);

/* sage_call_caller returns a string naming the caller's reply channel;
 * with sage_call_id it identifies a request across callers (borrowed). */
SAGE_API const char *sage_call_caller(const sage_call *call);

/* sage_call_idempotent tells whether the caller marked the call idempotent
 * (it may arrive more than once). */
SAGE_API bool sage_call_idempotent(const sage_call *call);

/* sage_call_remaining_ms returns the time left before the caller gives up,
 * in milliseconds (may be negative), or -1 if the caller set no deadline. */
SAGE_API int64_t sage_call_remaining_ms(const sage_call *call);

/*
 * sage_call_unpack checks and extracts the positional arguments with a
 * sage_unpack format ("[si]"). SAGE_EBADARGS with a detail naming the
 * argument on mismatch; a method can return that code as it is.
 */
SAGE_API sage_err sage_call_unpack(const sage_call *call, const char *fmt, ...);

/* sage_call_arena returns memory that lives until the answer is sent: build
 * results there. */
SAGE_API sage_arena *sage_call_arena(sage_call *call);

/* sage_call_result sets the result. v is copied shallowly: anything it
 * points to must live in the call's arena or outlive the call. */
SAGE_API sage_err sage_call_result(sage_call *call, const sage_value *v);

/* sage_call_resultf builds the result with a sage_pack format in the
 * call's arena. */
SAGE_API sage_err sage_call_resultf(sage_call *call, const char *fmt, ...);

/*
 * sage_call_error records an error answer: code and a printf-style
 * message. Returns code, so a method can `return sage_call_error(...)`.
 */
SAGE_API sage_err sage_call_error(sage_call *call, sage_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* sage_call_result_value returns the result set so far (nil if none), for
 * middleware's after_call (borrowed). */
SAGE_API const sage_value *sage_call_result_value(const sage_call *call);

/* sage_call_status returns the answer's code so far (SAGE_OK or an error)
 * and, when msgp is not NULL, its message (borrowed). */
SAGE_API sage_err sage_call_status(const sage_call *call, const char **msgp);

/* ----------------------------------------------------------- middleware */

/*
 * sage_middleware: hooks around every call of a task, run in chain order.
 * before_call may reject the call by returning an error (the caller gets it,
 * with a message from sage_call_error); after_call sees the answer and may
 * rewrite it with sage_call_result / sage_call_error. Both run on the worker
 * thread serving the call; either may be NULL. arg is the hooks' own.
 */
typedef struct sage_middleware {
    const char *name;
    sage_err (*before_call)(void *arg, sage_call *call);
    void (*after_call)(void *arg, sage_call *call);
    void *arg;
} sage_middleware;

/* sage_middleware_logging logs every call to stderr: service, method, id,
 * duration, outcome. A static table, no state. */
SAGE_API const sage_middleware *sage_middleware_logging(void);

/* sage_middleware_deadline refuses calls whose caller has already given up
 * (the task also checks this before every call; the middleware lets a chain
 * place the check after its own hooks). */
SAGE_API const sage_middleware *sage_middleware_deadline(void);

/* sage_middleware_find returns a built-in middleware by name ("logging",
 * "deadline"), or NULL. */
SAGE_API const sage_middleware *sage_middleware_find(const char *name);

/* ------------------------------------------------------ custom task kind */

/*
 * sage_task_kind overrides how a task handles each request (a custom task
 * kind, like a subclass overriding custom_handle_request). handle runs on the worker thread in place of the
 * default handling (middleware chain, then the method table); it may call
 * sage_call_default(call) to get the default behaviour around its own.
 */
typedef struct sage_task_kind {
    const char *name;
    sage_err (*handle)(void *arg, void *state, sage_call *call);
    void *arg;
} sage_task_kind;

/* sage_call_default runs the default handling of call: middleware, then the
 * method. For use inside a sage_task_kind's handle. */
SAGE_API sage_err sage_call_default(sage_call *call);

#ifdef __cplusplus
}
#endif
#endif /* SAGE_SERVICE_H */
