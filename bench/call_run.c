/*
 * call_run.c - one run of "sage-bench call" or "sage-bench cluster"
 * (call.h): the shared page, the impl's names, the host and the caller
 * forked and pinned, the go gate, the reaping and the cleanup.
 */
#include <stdio.h>

#include "bench_util.h"
#include "call.h"

static int child_caller(void *arg, int index)
{
    struct call_run *r = arg;

    (void)index;
    return r->impl->caller(r);
}

static int child_host(void *arg, int index)
{
    struct call_run *r = arg;

    (void)index;
    return r->impl->host(r);
}

int call_run_one(struct call_run *r, int timeout_s, const char *label, struct call_ctl *out)
{
    const struct call_impl *impl = r->impl;
    pid_t pids[2] = {-1, -1};
    int rc = 0, n = 1;

    for (size_t i = 0; i < sizeof r->res / sizeof r->res[0]; i++)
        r->res[i] = -1;
    r->ctl = bench_shared_alloc(sizeof *r->ctl);
    if (r->ctl == NULL)
        return -1;
    if (impl->setup != NULL && impl->setup(r) != 0) {
        fprintf(stderr, "sage-bench: %s: setup failed\n", label);
        rc = -1;
    }
    if (rc == 0) {
        if (impl->two_procs) {
            pids[1] = bench_spawn(r->host_cpu, timeout_s, child_host, r, 1);
            n = 2;
        }
        if (!impl->two_procs || pids[1] > 0)
            pids[0] = bench_spawn(r->caller_cpu, timeout_s, child_caller, r, 0);
        if (pids[0] > 0 && impl->spawned != NULL)
            impl->spawned(r, (int)pids[0]);
        bench_gate_open(&r->ctl->go); /* every name is registered */
        rc = bench_reap(pids, n, timeout_s + 5, label);
    }
    r->ok = rc == 0;
    if (impl->cleanup != NULL)
        impl->cleanup(r);
    if (rc == 0)
        *out = *r->ctl;
    bench_shared_free(r->ctl, sizeof *r->ctl);
    r->ctl = NULL;
    return rc;
}
