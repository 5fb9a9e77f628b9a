/*
 * bench_util.h - what every sage-bench benchmark shares: options and the
 * end of a run, clocks, pinning, percentiles and the latency loop, the
 * table and JSON printers, futex gates, and the supervision of child
 * processes and of the named objects a run creates (bench_util.c and
 * bench_proc.c).
 *
 * Cleanup contract: a benchmark registers every child it forks
 * (bench_spawn) and every named object it creates (bench_res_add) here, so
 * that SIGINT/SIGTERM/SIGHUP, a wedged child or a failed run never leave a
 * process, a /dev/shm segment, a message queue or an ipc file behind.
 */
#ifndef SAGE_BENCH_UTIL_H
#define SAGE_BENCH_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---------------------------------------------------------------- options */

/* Options every benchmark understands. */
struct bench_opts {
    bool json;  /* one JSON object per line on stdout, nothing else */
    bool quick; /* smoke run: seconds, not minutes */
};

/* BENCH_OPTS_USAGE: the usage lines of those options, for a benchmark that
 * has no other. */
#define BENCH_OPTS_USAGE                                                     \
    "  --json   one JSON object per line on stdout (notes go to stderr)\n" \
    "  --quick  smoke run, a few seconds\n"

/* What bench_parse_opts returns when the benchmark is to run. */
#define BENCH_RUN (-1)

/*
 * bench_parse_opts reads --json, --quick and --help from argv[1..] (argv[0]
 * names the benchmark). Returns BENCH_RUN to run, else the exit status to
 * return at once: 0 after printing usage (help), 2 after a bad argument
 * (message and usage on stderr).
 */
int bench_parse_opts(int argc, char **argv, struct bench_opts *o, const char *usage);

/*
 * bench_finish ends the benchmark name ("queue") begun at t0 (bench_now_ns):
 * notes on stderr how long it took and how many runs failed, and returns
 * the exit status, 1 when any did, else 0.
 */
int bench_finish(const char *name, const struct bench_opts *o, int64_t t0, int failures);

/* ------------------------------------------------------ clocks and CPUs */

/* bench_now_ns: CLOCK_MONOTONIC in nanoseconds; shared by all processes of
 * the machine, so a timestamp may travel from one process to another. */
int64_t bench_now_ns(void);

/* bench_sleep_ns sleeps ns nanoseconds (restarting after signals). */
void bench_sleep_ns(int64_t ns);

/* bench_pin pins the calling process to cpu. 0 or -1 (message printed). */
int bench_pin(int cpu);

/* bench_cpus stores the first max CPUs this process may run on in cpus and
 * returns how many it found. */
int bench_cpus(int *cpus, int max);

/* ------------------------------------------ statistics and the latency loop */

/* Percentiles of a sample of durations. */
struct bench_pct {
    double p50_ns;
    double p99_ns;
};

/* bench_percentiles sorts the n samples (n > 0) in place and writes their
 * nearest-rank median and 99th percentile to *out. */
void bench_percentiles(int64_t *samples, size_t n, struct bench_pct *out);

/* bench_clamp returns v as a count within lo..hi (lo when v is NaN). */
size_t bench_clamp(double v, size_t lo, size_t hi);

/* One operation of a latency run (a round trip, a call): 0, or -1 with a
 * message on stderr. */
typedef int (*bench_once_fn)(void *ctx);

/* How long a latency run lasts. */
struct bench_span {
    int64_t warm_ns;  /* unmeasured warm-up, at least this long... */
    size_t warm_min;  /* ...and at least this many samples */
    int64_t run_ns;   /* measured time aimed at, within: */
    size_t run_min;   /* bounds on the measured samples */
    size_t run_max;
};

/*
 * bench_latency warms up (span->warm_ns and span->warm_min samples), sizes
 * the measured run from the warm-up's rate, timing all but its first sample
 * (a connection may still be settling then), then times the samples back
 * to back, one clock read per sample, and writes their percentiles to
 * *out. A sample is batch calls of once (batch > 1 when one is shorter than
 * the clock's resolution): divide by batch for the figures of one. 0, or
 * -1 when once fails or memory runs out (the message names label, when not
 * NULL).
 */
int bench_latency(const struct bench_span *span, unsigned batch, bench_once_fn once, void *ctx,
                  const char *label, struct bench_pct *out);

/* --------------------------------------------------------------- results */

/* One line of results. Negative figures are absent (JSON null, table "-"). */
struct bench_row {
    const char *bench; /* "queue" */
    const char *impl;
    const char *kase; /* "rtt", "thr", "wake" */
    size_t size;      /* payload bytes */
    const char *cpus; /* "0,1" */
    double p50_us;
    double p99_us;
    double msgs_per_s;
    double ratio;    /* table only: figure relative to ref */
    const char *ref; /* table only: the reference impl, or NULL */
};

/* bench_num writes v with prec decimals into buf, or absent ("null" for
 * JSON, "-" for a table) when v is negative. Returns buf. */
const char *bench_num(char *buf, size_t cap, double v, int prec, const char *absent);

/* bench_print_row prints r as a JSON line (o->json) or a table row, with the
 * table's header before the first row. Flushes stdout. */
void bench_print_row(const struct bench_opts *o, const struct bench_row *r);

/* bench_note prints a remark for humans on stderr, never on stdout. */
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------ shared memory, futexes */

/* bench_shared_alloc maps size zeroed bytes shared with children forked
 * later (MAP_SHARED|MAP_ANONYMOUS); NULL on failure (message printed). */
void *bench_shared_alloc(size_t size);

/* bench_shared_free unmaps what bench_shared_alloc returned; NULL is a no-op. */
void bench_shared_free(void *p, size_t size);

/*
 * bench_futex_wait blocks while *word == expected, at most timeout_ms.
 * Process-shared (no FUTEX_PRIVATE_FLAG), so word may live in a
 * MAP_SHARED page. Returns 0 when woken or the word differed (callers
 * re-check), -1 on timeout, EINTR or error.
 */
int bench_futex_wait(_Atomic uint32_t *word, uint32_t expected, int timeout_ms);

/* bench_futex_wake wakes every waiter of word. */
void bench_futex_wake(_Atomic uint32_t *word);

/* bench_gate_wait waits up to timeout_ms until the gate is open (non-zero).
 * 0 once open, -1 on timeout (message printed). */
int bench_gate_wait(_Atomic uint32_t *gate, int timeout_ms);

/* bench_gate_open opens the gate and wakes its waiters. */
void bench_gate_open(_Atomic uint32_t *gate);

/* ------------------------------------------------------- child processes */

/* The body of a child: returns 0 on success, anything else is a failure. */
typedef int (*bench_child_fn)(void *arg, int index);

/*
 * bench_spawn forks a child that pins itself to cpu first, dies with its
 * parent, is killed by SIGALRM after timeout_s, and exits with the status of
 * fn(arg, index). Returns its pid, or -1 (message printed).
 */
pid_t bench_spawn(int cpu, int timeout_s, bench_child_fn fn, void *arg, int index);

/*
 * bench_reap waits for the n children in pids. When one fails the others
 * are killed at once (their peer is gone); after timeout_s all are. Every
 * child is reaped before it returns; a pid <= 0 (a failed spawn) counts as
 * a failure. Returns 0 if all exited 0, else -1 with the reason on stderr,
 * prefixed by label.
 */
int bench_reap(const pid_t *pids, int n, int timeout_s, const char *label);

/* ------------------------------------------------------- named objects */

/* Kinds of named objects a run creates. */
enum bench_res_kind {
    BENCH_RES_SAGE_QUEUE, /* removed with sage_queue_unlink */
    BENCH_RES_MQ,         /* removed with mq_unlink */
    BENCH_RES_FILE        /* removed with unlink, e.g. an ipc socket path */
};

/* bench_res_add remembers a named object to remove at the latest on exit or
 * on a signal; returns a handle for bench_res_remove, or -1 if the registry
 * is full (message printed). Call it before creating the object. */
int bench_res_add(enum bench_res_kind kind, const char *name);

/* bench_res_remove removes the object of handle h (if it exists) and forgets
 * it. h < 0 is a no-op. */
void bench_res_remove(int h);

/* bench_res_remove_all removes every remembered object (at exit). */
void bench_res_remove_all(void);

/* bench_install_signals makes SIGINT, SIGTERM and SIGHUP kill the children,
 * remove the named objects and then end the process with the signal. */
void bench_install_signals(void);

#endif
