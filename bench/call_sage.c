/*
 * call_sage.c - the runtime's sides of the local, shm and (cluster) sage
 * impls: the echo service served as a task until the caller is done, and
 * calls to CALL_SERVICE through a sage_manager, the way an application
 * makes them.
 *
 * sync: sage_manager_call_sync, one call at a time, the result decoded into
 * an arena reset after each call.
 * async: sage_manager_call_async with about par->window calls outstanding
 * (call_window.c); each future gets a callback (on the manager's response
 * thread) that checks the result, frees the future and counts it.
 */
#include <stdio.h>

#include "bench_util.h"
#include "call.h"

struct sage_ctx {
    sage_manager *m;
    sage_arena *arena;
    sage_value args[2];
    struct call_window w;
};

static int fail(const char *what, sage_err e)
{
    fprintf(stderr, "sage-bench: call: %s: %s (%s)\n", what, sage_strerror(e), sage_errdetail());
    return -1;
}

static int host_fail(const char *label, const char *what, sage_err e)
{
    fprintf(stderr, "sage-bench: %s host: %s: %s (%s)\n", label, what, sage_strerror(e),
            sage_errdetail());
    return -1;
}

/* ------------------------------------------------------------------ host */

int call_sage_serve(const sage_task_opts *o, _Atomic uint32_t *ready, _Atomic uint32_t *done,
                    int timeout_s, const char *label)
{
    sage_task *t;
    sage_err e;
    int rc;

    if ((e = sage_task_new(&t, &call_echo_service, o)) != SAGE_OK)
        return host_fail(label, "task", e);
    if ((e = sage_task_start(t)) != SAGE_OK) {
        sage_task_free(t);
        return host_fail(label, "start", e);
    }
    bench_gate_open(ready);
    /* serve until the caller is done; its whole run is bounded */
    rc = bench_gate_wait(done, timeout_s * 1000);
    sage_task_free(t);
    return rc;
}

/* ------------------------------------------------------------------ sync */

static int sync_once(void *arg)
{
    struct sage_ctx *c = arg;
    sage_value res;
    sage_err e = sage_manager_call_sync(&res, c->m, &(sage_request){.service = CALL_SERVICE, .method = CALL_METHOD, .args = c->args, .nargs = 2}, c->arena);

    if (e != SAGE_OK)
        return fail("call_sync", e);
    if (!call_check_result(&res)) {
        fprintf(stderr, "sage-bench: call: call_sync: wrong result\n");
        return -1;
    }
    sage_arena_reset(c->arena);
    return 0;
}

/* ----------------------------------------------------------------- async */

static void on_done(void *arg, sage_future *f)
{
    struct call_window *w = arg;
    const sage_value *v;

    /* a failure is counted here, so that the first can say why while its
     * future is still there */
    if (sage_future_result(&v, f) != SAGE_OK || !call_check_result(v)) {
        if (atomic_fetch_add(&w->errors, 1) == 0)
            fprintf(stderr, "sage-bench: call: call_async answered %s (%s)\n",
                    sage_errname(sage_future_result(NULL, f)), sage_errdetail());
    }
    sage_future_free(f);
    call_window_done(w, true); /* after the free: the issuer may end the run */
}

/* issue sends one call_async and hands its future to on_done. */
static int issue(void *arg)
{
    struct sage_ctx *c = arg;
    sage_future *f;
    sage_err e = sage_manager_call(&f, c->m, &(sage_request){.service = CALL_SERVICE, .method = CALL_METHOD, .args = c->args, .nargs = 2});

    if (e != SAGE_OK)
        return fail("call_async", e);
    atomic_fetch_add(&c->w.issued, 1);
    e = sage_future_on_done(f, on_done, &c->w);
    if (e != SAGE_OK)
        return fail("on_done", e); /* cannot happen: a fresh future */
    return 0;
}

int call_sage_measure(enum call_case kase, const struct call_params *par, sage_manager *m,
                      struct call_fig *out)
{
    /* static: after a failure, callbacks still run until the manager is freed */
    static struct sage_ctx c;
    int rc;

    c.m = m;
    call_payload(c.args);
    if (kase == CALL_ASYNC)
        return call_window_measure(par, &c.w, issue, &c, "call", out);
    if (sage_arena_new(&c.arena, 0) != SAGE_OK)
        return fail("arena", SAGE_ENOMEM);
    rc = call_sync_measure(par, sync_once, &c, 1, out);
    sage_arena_free(c.arena);
    return rc;
}
