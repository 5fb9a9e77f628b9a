/*
 * cluster_print.c - the output of "sage-bench cluster": JSON lines, or a
 * table with sagesvc's ratio to raw nats.c and the targets.
 *
 * The ratio is the one each target is stated in: sync, sage's p50 over
 * nats.c's (lower is better for sage); async, sage's calls per second over
 * nats.c's (higher is better for sage).
 */
#include <stdio.h>
#include <string.h>

#include "bench_util.h"
#include "cluster.h"

#define SYNC_RATIO_MAX 1.15  /* sage sync p50 within 1.15x of nats.c */
#define ASYNC_RATIO_MIN 0.8  /* sage async throughput at least 0.8x nats.c */
#define RAY_SYNC 2000.0      /* Ray's published actor calls per second... */
#define RAY_ASYNC 8000.0     /* ...on a 64-vCPU machine */
#define RAY_SYNC_FACTOR 3.0  /* sagesvc aims at 3x and 15x those */
#define RAY_ASYNC_FACTOR 15.0

void cluster_print_json(const struct call_result *x)
{
    call_print_json("cluster", x);
    fflush(stdout);
}

/* ratio of sage to nats in kase, as the targets state it; -1 if missing */
static double ratio(const struct call_result *res, size_t n, enum call_case kase)
{
    return call_result_ratio(res, n, "sage", "nats", kase);
}

void cluster_print_table(const struct call_result *res, size_t n)
{
    size_t measured = 0;

    for (size_t i = 0; i < n; i++)
        measured += res[i].ok;
    if (measured == 0)
        return;
    printf("%-5s %-5s %4s %-4s %9s %9s %12s %9s\n", "impl", "case", "size", "cpus", "p50_us",
           "p99_us", "calls_per_s", "sage/nats");
    for (size_t i = 0; i < n; i++) {
        const struct call_result *x = &res[i];
        char a[32], b[32], c[32], d[32];
        double q = strcmp(x->impl, "sage") == 0 ? ratio(res, n, x->kase) : -1;

        if (!x->ok)
            continue;
        printf("%-5s %-5s %4d %-4s %9s %9s %12s %9s\n", x->impl, call_case_names[x->kase],
               CALL_ARGS_BYTES, x->cpus, bench_num(a, sizeof a, x->fig.p50_us, 3, "-"),
               bench_num(b, sizeof b, x->fig.p99_us, 3, "-"),
               bench_num(c, sizeof c, x->fig.calls_per_s, 0, "-"),
               q > 0 ? (snprintf(d, sizeof d, "%.2fx", q), d) : "");
    }
    {
        const struct call_result *a = call_result_find(res, n, "sage", CALL_SYNC);
        const struct call_result *b = call_result_find(res, n, "sage_dedupe", CALL_SYNC);
        double q = call_result_ratio(res, n, "sage_dedupe", "sage", CALL_ASYNC);

        if (a != NULL && b != NULL)
            printf("cluster dedupe costs %.0f us a sync call (p50 %.1f vs %.1f us)%s", 
                   b->fig.p50_us - a->fig.p50_us, b->fig.p50_us, a->fig.p50_us,
                   q > 0 ? "" : "\n");
        if (a != NULL && b != NULL && q > 0)
            printf("; async at %.2fx sage's calls/s\n", q);
    }
}

static const char *verdict(int met)
{
    return met ? "met" : "missed";
}

void cluster_print_targets(const struct call_result *res, size_t n)
{
    const struct call_result *s = call_result_find(res, n, "sage", CALL_SYNC);
    const struct call_result *ns = call_result_find(res, n, "nats", CALL_SYNC);
    const struct call_result *sa = call_result_find(res, n, "sage", CALL_ASYNC);
    const struct call_result *na = call_result_find(res, n, "nats", CALL_ASYNC);
    double rs = ratio(res, n, CALL_SYNC), ra = ratio(res, n, CALL_ASYNC);
    double sync_min = RAY_SYNC * RAY_SYNC_FACTOR, async_min = RAY_ASYNC * RAY_ASYNC_FACTOR;

    if (s == NULL && sa == NULL)
        return; /* nothing of sage's measured */

    printf("\nsage/nats: sync, sage p50 over nats.c p50 (lower is better for sage); async, "
           "sage calls/s over nats.c's (higher is better).\n"
           "sync calls/s below are 1e6 / p50_us (one call at a time).\n"
           "targets:\n");
    if (rs > 0)
        printf("  sage sync p50 within %.2fx of nats.c     %6.2f x      %-6s (%.1f vs %.1f us)\n",
               SYNC_RATIO_MAX, rs, verdict(rs <= SYNC_RATIO_MAX), s->fig.p50_us, ns->fig.p50_us);
    if (ra > 0)
        printf("  sage async >= %.1fx nats.c                %6.2f x      %-6s (%.0f vs %.0f "
               "calls/s)\n",
               ASYNC_RATIO_MIN, ra, verdict(ra >= ASYNC_RATIO_MIN), sa->fig.calls_per_s,
               na->fig.calls_per_s);
    if (s != NULL && s->fig.p50_us > 0)
        printf("  sage sync >= %.0f calls/s (p50 <= %.0f us)  %8.0f calls/s %-6s (%.0fx Ray's "
               "~%.0f)\n",
               sync_min, 1e6 / sync_min, 1e6 / s->fig.p50_us,
               verdict(1e6 / s->fig.p50_us >= sync_min), RAY_SYNC_FACTOR, RAY_SYNC);
    if (sa != NULL)
        printf("  sage async >= %.0f calls/s               %8.0f calls/s %-6s (%.0fx Ray's "
               "~%.0f)\n",
               async_min, sa->fig.calls_per_s, verdict(sa->fig.calls_per_s >= async_min),
               RAY_ASYNC_FACTOR, RAY_ASYNC);
    printf("Ray: published actor-call figures, about %.0f sync and %.0f async calls/s on a "
           "64-vCPU machine.\n",
           RAY_SYNC, RAY_ASYNC);
}

void cluster_print_hedge(bool json, const struct cluster_hedge_fig *h, size_t n)
{
    if (json) {
        for (size_t i = 0; i < n; i++) {
            printf("{\"bench\":\"cluster\",\"impl\":\"sage\",\"case\":\"hedging\","
                   "\"hedge\":%s,\"hedge_after_ms\":%d,\"stopped_replica\":true,"
                   "\"p50_us\":%.3f,\"p99_us\":%.3f,\"calls\":%lld,\"errors\":%lld,"
                   "\"hedges\":%lld}\n",
                   h[i].hedge ? "true" : "false", h[i].hedge ? CLUSTER_HEDGE_MS : 0, h[i].p50_us,
                   h[i].p99_us, (long long)h[i].calls, (long long)h[i].errors,
                   (long long)h[i].hedges);
        }
        fflush(stdout);
        return;
    }
    printf("\nhedging: 3 replicas, one frozen (SIGSTOP) for the middle third; idempotent sync "
           "calls, 1 s timeout\n");
    printf("%-12s %9s %9s %8s %7s %7s\n", "hedge_after", "p50_us", "p99_us", "calls", "errors",
           "hedges");
    for (size_t i = 0; i < n; i++) {
        char a[16];

        snprintf(a, sizeof a, "%d ms", CLUSTER_HEDGE_MS);
        printf("%-12s %9.1f %9.1f %8lld %7lld %7lld\n", h[i].hedge ? a : "none", h[i].p50_us,
               h[i].p99_us, (long long)h[i].calls, (long long)h[i].errors,
               (long long)h[i].hedges);
        if (h[i].hedge)
            printf("  target: 0 errors and p99 <= hedge_after + 3 x p50 (%.1f us): %s\n",
                   CLUSTER_HEDGE_MS * 1e3 + 3 * h[i].p50_us,
                   h[i].errors == 0 && h[i].p99_us <= CLUSTER_HEDGE_MS * 1e3 + 3 * h[i].p50_us
                       ? "met"
                       : "missed");
    }
}
