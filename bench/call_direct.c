/*
 * call_direct.c - the floor of "sage-bench call": the method's work
 * (call_echo) called as a C function in this process, with no runtime,
 * no encoding and no decoding; the caller checks the result as the other
 * impls' callers do. sync: time per call; async: calls per second of the
 * same loop (nothing is outstanding: there is nothing to wait for).
 */
#include <stdio.h>

#include "bench_util.h"
#include "call.h"

#define BATCH 64 /* calls per sample: one call is below the clock's resolution */

/* called through a volatile pointer, so the compiler cannot see through it */
static sage_err (*volatile echo_fn)(const sage_value *, sage_value *) = call_echo;

struct direct {
    sage_value args;
    sage_value items[2];
};

static int once(void *ctx)
{
    struct direct *d = ctx;
    sage_value out;

    if (echo_fn(&d->args, &out) != SAGE_OK || !call_check_result(&out)) {
        fprintf(stderr, "sage-bench: call: direct: wrong result\n");
        return -1;
    }
    return 0;
}

static int async_rate(const struct call_params *par, struct direct *d, struct call_fig *out)
{
    int64_t t0, t, end;
    uint64_t n = 0;

    end = bench_now_ns() + par->warm_ns;
    while (bench_now_ns() < end)
        for (int b = 0; b < BATCH; b++)
            if (once(d) != 0)
                return -1;
    t0 = bench_now_ns();
    end = t0 + par->async_ns;
    do {
        for (int b = 0; b < BATCH; b++)
            if (once(d) != 0)
                return -1;
        n += BATCH;
        t = bench_now_ns();
    } while (t < end);
    out->p50_us = out->p99_us = -1;
    out->calls_per_s = (double)n * 1e9 / (double)(t - t0);
    return 0;
}

static int caller(struct call_run *r)
{
    struct direct d;

    if (call_gate_wait(&r->ctl->go, "go from the parent") != 0)
        return -1;
    call_payload(d.items);
    d.args = sage_array(d.items, 2);
    if (r->kase == CALL_SYNC)
        return call_sync_measure(r->par, once, &d, BATCH, &r->ctl->fig);
    return async_rate(r->par, &d, &r->ctl->fig);
}

const struct call_impl call_direct_impl = {
    .name = "direct",
    .caller = caller,
};
