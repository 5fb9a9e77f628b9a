/*
 * call_window.c - the async loop of "sage-bench call" and "sage-bench
 * cluster": about par->window calls outstanding, refilled when the window
 * has drained to LOW_FRACTION, the issuing thread asleep on a futex in
 * between so it leaves its CPU to the thread that completes calls. The
 * sends and completions are the impl's (call_sage.c through a sage_manager,
 * cluster_nats.c through raw nats.c), so every impl is driven the same way.
 *
 * Design notes. issued is written by the issuing thread only, completed by
 * completions only. The issuer announces itself (sleeping = 1) before it
 * re-reads completed and sleeps on wake; a completion bumps completed
 * before it reads sleeping. Both sides use seq_cst, so at least one of
 * them sees the other: the issuer either finds the count it waits for or
 * is woken. The completion that wakes it takes sleeping back to 0
 * (exchange), so one sleep costs at most one FUTEX_WAKE; the issuer sets
 * it again each time round its loop.
 */
#include <stdio.h>

#include "bench_util.h"
#include "call.h"

#define LOW_FRACTION 4 /* refill when outstanding <= window - window / 4 */

void call_window_done(struct call_window *w, bool ok)
{
    uint64_t done;

    if (!ok)
        atomic_fetch_add(&w->errors, 1);
    done = atomic_fetch_add(&w->completed, 1) + 1;
    /* one wake per sleep: the issuer may share the completing thread's CPU
     * and take a while to run; until then, later completions must not each
     * pay a futex system call */
    if (atomic_load(&w->sleeping) && atomic_load(&w->issued) - done <= atomic_load(&w->low) &&
        atomic_exchange(&w->sleeping, 0)) {
        atomic_fetch_add(&w->wake, 1);
        bench_futex_wake(&w->wake);
    }
}

/* wait_low sleeps until at most w->low calls are outstanding. Fails when
 * no call completes for CALL_OP_TIMEOUT_MS. */
static int wait_low(struct call_window *w, const char *label)
{
    uint64_t seen = atomic_load(&w->completed);
    int64_t stall_end = bench_now_ns() + (int64_t)CALL_OP_TIMEOUT_MS * 1000000;

    for (;;) {
        uint32_t wk;
        uint64_t done;

        atomic_store(&w->sleeping, 1);
        wk = atomic_load(&w->wake);
        done = atomic_load(&w->completed);
        if (atomic_load(&w->issued) - done <= atomic_load(&w->low)) {
            atomic_store(&w->sleeping, 0);
            return 0;
        }
        if (done != seen) {
            seen = done;
            stall_end = bench_now_ns() + (int64_t)CALL_OP_TIMEOUT_MS * 1000000;
        } else if (bench_now_ns() >= stall_end) {
            atomic_store(&w->sleeping, 0);
            fprintf(stderr, "sage-bench: %s: no answer for %d ms, %llu outstanding\n", label,
                    CALL_OP_TIMEOUT_MS, (unsigned long long)(atomic_load(&w->issued) - done));
            return -1;
        }
        bench_futex_wait(&w->wake, wk, 100);
    }
}

/* run keeps up to window calls outstanding until end_ns, then waits for
 * all of them; returns the calls it issued, or -1. */
static int64_t run(struct call_window *w, uint32_t window, int64_t end_ns, call_issue_fn issue,
                   void *ctx, const char *label)
{
    uint64_t first = atomic_load(&w->issued);

    atomic_store(&w->low, window - window / LOW_FRACTION);
    do {
        uint64_t out = atomic_load(&w->issued) - atomic_load(&w->completed);

        for (; out < window; out++)
            if (issue(ctx) != 0)
                return -1;
        if (wait_low(w, label) != 0)
            return -1;
    } while (bench_now_ns() < end_ns);
    atomic_store(&w->low, 0);
    if (wait_low(w, label) != 0)
        return -1;
    return (int64_t)(atomic_load(&w->issued) - first);
}

int call_window_measure(const struct call_params *par, struct call_window *w,
                        call_issue_fn issue, void *ctx, const char *label, struct call_fig *out)
{
    int64_t n, t0, t1;

    if (run(w, par->window, bench_now_ns() + par->warm_ns, issue, ctx, label) < 0)
        return -1;
    t0 = bench_now_ns();
    n = run(w, par->window, t0 + par->async_ns, issue, ctx, label);
    t1 = bench_now_ns();
    if (n < 0)
        return -1;
    if (atomic_load(&w->errors) != 0) {
        fprintf(stderr, "sage-bench: %s: %llu async calls failed\n", label,
                (unsigned long long)atomic_load(&w->errors));
        return -1;
    }
    out->p50_us = out->p99_us = -1;
    out->calls_per_s = (double)n * 1e9 / (double)(t1 - t0);
    return 0;
}
