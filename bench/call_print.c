/*
 * call_print.c - the output of "sage-bench call": JSON lines, or a table
 * with the shm/zmq ratios, the idle task's memory and the team's targets.
 * The JSON line of a row, finding a row and the ratio of two rows' figures
 * serve "sage-bench cluster" too (cluster_print.c).
 */
#include <stdio.h>
#include <string.h>

#include "bench_util.h"
#include "call.h"

const char *const call_case_names[CALL_CASE_COUNT] = {"sync", "async"};

void call_print_json(const char *bench, const struct call_result *x)
{
    char a[32], b[32], c[32];

    printf("{\"bench\":\"%s\",\"impl\":\"%s\",\"case\":\"%s\",\"size\":%d,\"cpus\":\"%s\","
           "\"p50_us\":%s,\"p99_us\":%s,\"calls_per_s\":%s}\n",
           bench, x->impl, call_case_names[x->kase], CALL_ARGS_BYTES, x->cpus,
           bench_num(a, sizeof a, x->fig.p50_us, 3, "null"),
           bench_num(b, sizeof b, x->fig.p99_us, 3, "null"),
           bench_num(c, sizeof c, x->fig.calls_per_s, 0, "null"));
}

const struct call_result *call_result_find(const struct call_result *res, size_t n,
                                           const char *name, enum call_case kase)
{
    for (size_t i = 0; i < n; i++)
        if (res[i].ok && res[i].kase == kase && strcmp(res[i].impl, name) == 0)
            return &res[i];
    return NULL;
}

double call_result_ratio(const struct call_result *res, size_t n, const char *a, const char *b,
                         enum call_case kase)
{
    const struct call_result *x = call_result_find(res, n, a, kase);
    const struct call_result *y = call_result_find(res, n, b, kase);

    if (x == NULL || y == NULL)
        return -1;
    if (kase == CALL_SYNC)
        return x->fig.p50_us > 0 && y->fig.p50_us > 0 ? x->fig.p50_us / y->fig.p50_us : -1;
    return x->fig.calls_per_s > 0 && y->fig.calls_per_s > 0
               ? x->fig.calls_per_s / y->fig.calls_per_s
               : -1;
}

/* speedup of shm over zmq in kase: zmq p50 / shm p50, or shm rate / zmq
 * rate (higher is better for shm); -1 if either is missing */
static double speedup(const struct call_result *res, size_t n, enum call_case kase)
{
    if (kase == CALL_SYNC)
        return call_result_ratio(res, n, "zmq", "shm", kase);
    return call_result_ratio(res, n, "shm", "zmq", kase);
}

void call_print_table(const struct call_result *res, size_t n)
{
    printf("%-6s %-5s %4s %-4s %9s %9s %12s %8s\n", "impl", "case", "size", "cpus", "p50_us",
           "p99_us", "calls_per_s", "shm/zmq");
    for (size_t i = 0; i < n; i++) {
        const struct call_result *x = &res[i];
        char a[32], b[32], c[32], d[32];
        double ratio = strcmp(x->impl, "shm") == 0 ? speedup(res, n, x->kase) : -1;

        if (!x->ok)
            continue;
        printf("%-6s %-5s %4d %-4s %9s %9s %12s %8s\n", x->impl, call_case_names[x->kase],
               CALL_ARGS_BYTES, x->cpus, bench_num(a, sizeof a, x->fig.p50_us, 3, "-"),
               bench_num(b, sizeof b, x->fig.p99_us, 3, "-"),
               bench_num(c, sizeof c, x->fig.calls_per_s, 0, "-"),
               ratio > 0 ? (snprintf(d, sizeof d, "%.1fx", ratio), d) : "");
    }
}

void call_print_rss(bool json, const struct call_rss *m, int64_t idle_ns)
{
    int64_t rss = m->after_kib - m->before_kib;

    if (json) {
        printf("{\"bench\":\"call\",\"impl\":\"shm\",\"case\":\"idle_rss\",\"rss_kib\":%lld}\n",
               (long long)rss);
        printf("{\"bench\":\"call\",\"impl\":\"shm\",\"case\":\"queue_size\",\"queue_kib\":%lld,"
               "\"queue_rss_kib\":%lld}\n",
               (long long)(m->queue_bytes / 1024), (long long)m->queue_rss_kib);
        return;
    }
    printf("\nidle shm task, default options (after %.0f ms idle):\n", (double)idle_ns / 1e6);
    printf("  RSS added by the task         %8lld KiB\n", (long long)rss);
    printf("  request queue segment         %8lld KiB, of which resident %lld KiB\n",
           (long long)(m->queue_bytes / 1024), (long long)m->queue_rss_kib);
    printf("  all /dev/shm segments mapped  %8lld KiB resident (RssShmem +%lld KiB)\n",
           (long long)m->segs_rss_kib, (long long)(m->shm_after_kib - m->shm_before_kib));
    printf("  RSS beyond the shm segments   %8lld KiB\n", (long long)(rss - m->segs_rss_kib));
}

void call_print_short(bool json, const struct call_short *c)
{
    if (json) {
        printf("{\"bench\":\"call\",\"impl\":\"shm\",\"case\":\"short_callers\",\"callers\":%lld,"
               "\"killed\":%lld,\"shm_rss_kib_idle\":%lld,\"shm_rss_kib_end\":%lld,"
               "\"shm_rss_kib_after_2s\":%lld,\"took_s\":%.3f}\n",
               (long long)c->callers, (long long)c->killed, (long long)c->idle_kib,
               (long long)c->end_kib, (long long)c->after_kib, c->took_s);
        return;
    }
    printf("\nshort_callers: %lld caller processes, one call each (%lld SIGKILLed after it), in "
           "%.1f s;\nthe host's /dev/shm mappings resident:\n",
           (long long)c->callers, (long long)c->killed, c->took_s);
    printf("  idle                          %8lld KiB\n", (long long)c->idle_kib);
    printf("  when the last caller left     %8lld KiB\n", (long long)c->end_kib);
    printf("  2 s later, no traffic         %8lld KiB\n", (long long)c->after_kib);
    printf("targets: at the end <= 64 MiB: %s; 2 s later within 10%% of idle: %s\n",
           c->end_kib <= 64 * 1024 ? "met" : "missed",
           c->after_kib <= c->idle_kib * 11 / 10 ? "met" : "missed");
}

void call_print_targets(const struct call_result *res, size_t n)
{
    const struct call_result *l = call_result_find(res, n, "local", CALL_SYNC);
    const struct call_result *s = call_result_find(res, n, "shm", CALL_SYNC);
    const struct call_result *sa = call_result_find(res, n, "shm", CALL_ASYNC);
    double su = speedup(res, n, CALL_SYNC), au = speedup(res, n, CALL_ASYNC);

    printf("\nshm/zmq: sync, zmq p50 over shm p50; async, shm calls/s over zmq's (higher is "
           "better for shm).\ntargets:\n");
    if (l != NULL)
        printf("  local sync p50 <= 1 us           %8.3f us  %s\n", l->fig.p50_us,
               l->fig.p50_us <= 1 ? "met" : "missed");
    if (s != NULL)
        printf("  shm sync p50 <= 2 us             %8.3f us  %s\n", s->fig.p50_us,
               s->fig.p50_us <= 2 ? "met" : "missed");
    if (su > 0)
        printf("  shm sync >= 25x zmq REQ/REP      %8.1f x   %s\n", su,
               su >= 25 ? "met" : "missed");
    if (au > 0 && sa != NULL)
        printf("  shm async >= 1.5x DEALER/ROUTER  %8.2f x   %s (%.0f calls/s)\n", au,
               au >= 1.5 ? "met" : "missed", sa->fig.calls_per_s);
}
