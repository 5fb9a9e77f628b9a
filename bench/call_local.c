/*
 * call_local.c - the local impl of "sage-bench call": a task with
 * SAGE_TRANSPORT_LOCAL and a manager that finds it through a sage_env, all
 * in one process.
 *
 * The calling thread is pinned to the caller's CPU; the runtime's threads
 * (the task's listener and workers, the manager's response thread) are
 * started before that and keep the benchmark's CPUs, as an application
 * that pins only its own hot thread would have them. The manager's
 * response queue is a named shm segment even here: call_names registers it.
 */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "bench_util.h"
#include "call.h"
#include "sage/task.h"

static int fail(const char *what, sage_err e)
{
    fprintf(stderr, "sage-bench: call: local: %s: %s (%s)\n", what, sage_strerror(e),
            sage_errdetail());
    return -1;
}

/* unpin lets this thread, and the threads it starts, use all of r's CPUs */
static int unpin(const struct call_run *r)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    for (int i = 0; i < r->ncpus; i++)
        CPU_SET(r->cpus[i], &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        perror("sage-bench: call: local: sched_setaffinity");
        return -1;
    }
    return 0;
}

static int caller(struct call_run *r)
{
    sage_env *env = NULL;
    sage_task *t = NULL;
    sage_manager *m = NULL;
    sage_task_opts to;
    sage_manager_opts mo;
    sage_err e;
    int rc = -1;

    if (call_gate_wait(&r->ctl->go, "go from the parent") != 0 || unpin(r) != 0)
        return -1;
    sage_task_opts_init(&to);
    to.ns = r->ns;
    if ((e = sage_env_new(&env, r->ns)) != SAGE_OK) {
        fail("env", e);
        goto out;
    }
    if ((e = sage_task_new(&t, &call_echo_service, &to)) != SAGE_OK ||
        (e = sage_task_start(t)) != SAGE_OK || (e = sage_env_register(env, NULL, t)) != SAGE_OK) {
        fail("task", e);
        goto out;
    }
    sage_manager_opts_init(&mo);
    mo.env = env;
    mo.timeout_ms = CALL_OP_TIMEOUT_MS;
    if ((e = sage_manager_new(&m, &mo)) != SAGE_OK) {
        fail("manager", e);
        goto out;
    }
    if (bench_pin(r->caller_cpu) != 0)
        goto out;
    rc = call_sage_measure(r->kase, r->par, m, &r->ctl->fig);
out:
    sage_manager_free(m);
    if (env && t)
        sage_env_unregister(env, CALL_SERVICE);
    sage_task_free(t);
    sage_env_free(env);
    return rc;
}

const struct call_impl call_local_impl = {
    .name = "local",
    .spawned = call_names_caller,
    .caller = caller,
    .cleanup = call_names_cleanup,
};
