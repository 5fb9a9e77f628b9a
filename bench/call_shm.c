/*
 * call_shm.c - the shm impl of "sage-bench call": the task hosted in one
 * process with SAGE_TRANSPORT_SHM (default options otherwise), the caller
 * in another with a manager that finds it in the host registry. Each
 * process is pinned whole to its CPU, runtime threads included, as the
 * queue benchmark pins its two ends.
 */
#include <stdio.h>

#include "bench_util.h"
#include "call.h"
#include "sage/task.h"

static int fail(const char *who, const char *what, sage_err e)
{
    fprintf(stderr, "sage-bench: call: shm %s: %s: %s (%s)\n", who, what, sage_strerror(e),
            sage_errdetail());
    return -1;
}

static int host(struct call_run *r)
{
    sage_task_opts o;

    if (call_gate_wait(&r->ctl->go, "go from the parent") != 0)
        return -1;
    sage_task_opts_init(&o);
    o.transport = SAGE_TRANSPORT_SHM;
    o.ns = r->ns;
    return call_sage_serve(&o, &r->ctl->ready, &r->ctl->done, CALL_RUN_TIMEOUT_S, "call: shm");
}

static int caller(struct call_run *r)
{
    sage_manager_opts o;
    sage_manager *m;
    sage_err e;
    int rc;

    if (call_gate_wait(&r->ctl->go, "go from the parent") != 0 ||
        call_gate_wait(&r->ctl->ready, "ready from the shm host") != 0)
        return -1;
    sage_manager_opts_init(&o);
    o.ns = r->ns;
    o.timeout_ms = CALL_OP_TIMEOUT_MS;
    if ((e = sage_manager_new(&m, &o)) != SAGE_OK) {
        bench_gate_open(&r->ctl->done);
        return fail("caller", "manager", e);
    }
    rc = call_sage_measure(r->kase, r->par, m, &r->ctl->fig);
    sage_manager_free(m);
    bench_gate_open(&r->ctl->done);
    return rc;
}

const struct call_impl call_shm_impl = {
    .name = "shm",
    .two_procs = true,
    .setup = call_names_setup,
    .spawned = call_names_caller,
    .host = host,
    .caller = caller,
    .cleanup = call_names_cleanup,
};
