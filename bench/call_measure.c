/*
 * call_measure.c - what "sage-bench call" shares between impls: the sync
 * latency loop (bench_latency, in call figures) and the wait on a gate of
 * the run's shared page.
 */
#include <stdio.h>

#include "bench_util.h"
#include "call.h"

#define WARM_MIN 100 /* sync calls, at least, before measuring */

int call_sync_measure(const struct call_params *par, call_once_fn once, void *ctx, unsigned batch,
                      struct call_fig *out)
{
    const struct bench_span span = {par->warm_ns, WARM_MIN, par->sync_ns, par->sync_min,
                                    par->sync_max};
    struct bench_pct pct;

    if (bench_latency(&span, batch, once, ctx, "call", &pct) != 0)
        return -1;
    out->p50_us = pct.p50_ns / 1000.0 / batch;
    out->p99_us = pct.p99_ns / 1000.0 / batch;
    out->calls_per_s = -1;
    return 0;
}

int call_gate_wait(_Atomic uint32_t *gate, const char *what)
{
    if (bench_gate_wait(gate, CALL_OP_TIMEOUT_MS) != 0) {
        fprintf(stderr, "sage-bench: call: no %s\n", what);
        return -1;
    }
    return 0;
}
