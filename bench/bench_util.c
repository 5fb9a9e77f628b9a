/*
 * bench_util.c - helpers shared by the sage-bench benchmarks: options and
 * the end of a run, clocks, pinning, percentiles and the latency loop, the
 * table and JSON printers, shared pages and futex gates. Children and named
 * objects are in bench_proc.c.
 */
#include "bench_util.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- options */

int bench_parse_opts(int argc, char **argv, struct bench_opts *o, const char *usage)
{
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            o->json = true;
        } else if (strcmp(argv[i], "--quick") == 0) {
            o->quick = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "sage-bench %s: unknown argument '%s'\n%s", argv[0], argv[i], usage);
            return 2;
        }
    }
    return BENCH_RUN;
}

int bench_finish(const char *name, const struct bench_opts *o, int64_t t0, int failures)
{
    bench_note("%s: %s run took %.1f s%s", name, o->quick ? "quick" : "full",
               (double)(bench_now_ns() - t0) / 1e9, failures ? "" : ", no failures");
    if (failures) {
        bench_note("%s: %d run(s) failed, see above", name, failures);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------ clocks and CPUs */

int64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int bench_pin(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        fprintf(stderr, "sage-bench: sched_setaffinity(cpu %d): %s\n", cpu, strerror(errno));
        return -1;
    }
    return 0;
}

int bench_cpus(int *cpus, int max)
{
    cpu_set_t set;
    int n = 0;

    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        cpus[0] = 0;
        return 1;
    }
    for (int c = 0; c < CPU_SETSIZE && n < max; c++)
        if (CPU_ISSET(c, &set))
            cpus[n++] = c;
    return n;
}

/* ------------------------------------------ statistics and the latency loop */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* rank returns the nearest-rank percentile p (0..1) of n sorted samples. */
static double rank(const int64_t *s, size_t n, double p)
{
    size_t k = (size_t)(p * (double)n + 0.999999);

    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return (double)s[k - 1];
}

void bench_percentiles(int64_t *samples, size_t n, struct bench_pct *out)
{
    qsort(samples, n, sizeof *samples, cmp_i64);
    out->p50_ns = rank(samples, n, 0.50);
    out->p99_ns = rank(samples, n, 0.99);
}

size_t bench_clamp(double v, size_t lo, size_t hi)
{
    if (!(v >= (double)lo)) /* also NaN */
        return lo;
    if (v > (double)hi)
        return hi;
    return (size_t)v;
}

int bench_latency(const struct bench_span *span, unsigned batch, bench_once_fn once, void *ctx,
                  const char *label, struct bench_pct *out)
{
    int64_t *samples, t0, t1 = 0, t;
    size_t i = 0, n;

    t0 = bench_now_ns();
    do {
        for (unsigned b = 0; b < batch; b++)
            if (once(ctx) != 0)
                return -1;
        t = bench_now_ns();
        if (++i == 1)
            t1 = t;
    } while (i < span->warm_min || t - t0 < span->warm_ns);
    n = bench_clamp((double)span->run_ns * (double)(i - 1) / (double)(t - t1), span->run_min,
                    span->run_max);

    samples = malloc(n * sizeof *samples);
    if (samples == NULL) {
        fprintf(stderr, "sage-bench: %s%sout of memory for %zu samples\n", label ? label : "",
                label ? ": " : "", n);
        return -1;
    }
    memset(samples, 0, n * sizeof *samples); /* fault the pages in now */
    /* back to back: one clock read per sample, its cost shared by both */
    t0 = bench_now_ns();
    for (i = 0; i < n; i++) {
        for (unsigned b = 0; b < batch; b++) {
            if (once(ctx) != 0) {
                free(samples);
                return -1;
            }
        }
        t = bench_now_ns();
        samples[i] = t - t0;
        t0 = t;
    }
    bench_percentiles(samples, n, out);
    free(samples);
    return 0;
}

/* --------------------------------------------------------------- results */

const char *bench_num(char *buf, size_t cap, double v, int prec, const char *absent)
{
    if (v < 0)
        snprintf(buf, cap, "%s", absent);
    else
        snprintf(buf, cap, "%.*f", prec, v);
    return buf;
}

static const char *size_str(char *buf, size_t cap, size_t size)
{
    if (size >= 1024 && size % 1024 == 0)
        snprintf(buf, cap, "%zuKi", size / 1024);
    else
        snprintf(buf, cap, "%zu", size);
    return buf;
}

void bench_print_row(const struct bench_opts *o, const struct bench_row *r)
{
    static bool header_done;
    char a[32], b[32], c[32], d[32], e[32];

    /* The strings are our own identifiers ([a-z0-9,]), so they need no
     * JSON escaping. */
    if (o->json) {
        printf("{\"bench\":\"%s\",\"impl\":\"%s\",\"case\":\"%s\",\"size\":%zu,\"cpus\":\"%s\","
               "\"p50_us\":%s,\"p99_us\":%s,\"msgs_per_s\":%s}\n",
               r->bench, r->impl, r->kase, r->size, r->cpus,
               bench_num(a, sizeof a, r->p50_us, 3, "null"),
               bench_num(b, sizeof b, r->p99_us, 3, "null"),
               bench_num(c, sizeof c, r->msgs_per_s, 0, "null"));
    } else {
        if (!header_done) {
            header_done = true;
            printf("%-6s %-5s %5s %-5s %9s %9s %12s %8s  %s\n", "impl", "case", "size", "cpus",
                   "p50_us", "p99_us", "msgs_per_s", "ratio", "vs");
        }
        printf("%-6s %-5s %5s %-5s %9s %9s %12s %8s  %s\n", r->impl, r->kase,
               size_str(a, sizeof a, r->size), r->cpus,
               bench_num(b, sizeof b, r->p50_us, 3, "-"),
               bench_num(c, sizeof c, r->p99_us, 3, "-"),
               bench_num(d, sizeof d, r->msgs_per_s, 0, "-"),
               bench_num(e, sizeof e, r->ratio, 2, "-"), r->ref ? r->ref : "");
    }
    fflush(stdout);
}

void bench_note(const char *fmt, ...)
{
    va_list ap;

    fputs("sage-bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ------------------------------------------------ shared memory, futexes */

void *bench_shared_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        fprintf(stderr, "sage-bench: mmap %zu shared bytes: %s\n", size, strerror(errno));
        return NULL;
    }
    return p;
}

void bench_shared_free(void *p, size_t size)
{
    if (p != NULL)
        munmap(p, size);
}

int bench_futex_wait(_Atomic uint32_t *word, uint32_t expected, int timeout_ms)
{
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000L};

    /* FUTEX_WAIT takes a relative timeout; a shared (not private) futex is
     * keyed on the page, so it works across fork */
    if (syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, NULL, 0) == 0 || errno == EAGAIN)
        return 0;
    return -1;
}

void bench_futex_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

int bench_gate_wait(_Atomic uint32_t *gate, int timeout_ms)
{
    int64_t end = bench_now_ns() + (int64_t)timeout_ms * 1000000;

    while (atomic_load_explicit(gate, memory_order_acquire) == 0) {
        int64_t left = end - bench_now_ns();

        if (left <= 0) {
            fprintf(stderr, "sage-bench: peer did not open the start gate in %d ms\n",
                    timeout_ms);
            return -1;
        }
        bench_futex_wait(gate, 0, (int)(left / 1000000) + 1);
    }
    return 0;
}

void bench_gate_open(_Atomic uint32_t *gate)
{
    atomic_store_explicit(gate, 1, memory_order_release);
    bench_futex_wake(gate);
}
