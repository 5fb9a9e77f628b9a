/*
 * bench_queue.c - "sage-bench queue": sage_queue against the other ways two
 * processes can pass messages, case by case (rtt, thr, wake), first with
 * the two ends on two CPUs and then on one.
 *
 * Each row is one run: fresh objects with unique names, two fresh children
 * pinned before they touch anything, figures back through a shared page.
 * Within a case, size and CPU pair the reference runs first (floor for rtt
 * on two CPUs, pipe for rtt on one CPU and for thr, futex for wake), so
 * every row can be printed with its ratio as soon as it is measured.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "benches.h"
#include "peer.h"

static const char usage[] =
    "usage: sage-bench queue [--json] [--quick]\n"
    "\n"
    "Compares sage_queue with a shared-memory spin (floor), pipes, Unix stream\n"
    "sockets (uds), POSIX message queues (mq), ZeroMQ ipc (zmq) and a raw futex,\n"
    "between two processes pinned to two CPUs, then to one:\n"
    "  rtt   64-byte ping-pong round trip, p50 and p99\n"
    "  thr   one-way messages per second, 64 B, 4 KiB and 64 KiB\n"
    "  wake  latency of waking a consumer asleep in the kernel, p50 and p99\n"
    "\n" BENCH_OPTS_USAGE;

static const struct qparams full = {
    .warm_ns = 100 * 1000000LL,
    .rtt_ns = 500 * 1000000LL,
    .rtt_min = 20000,
    .rtt_max = 1000000,
    .thr_ns = 600 * 1000000LL,
    .thr_min = 2000,
    .thr_max = 200000000,
    .wake_warm = 20,
    .wake_n = 1000,
    .wake_gap_ns = 2 * 1000000LL,
};

static const struct qparams quick = {
    .warm_ns = 20 * 1000000LL,
    .rtt_ns = 50 * 1000000LL,
    .rtt_min = 1000,
    .rtt_max = 100000,
    .thr_ns = 50 * 1000000LL,
    .thr_min = 200,
    .thr_max = 20000000,
    .wake_warm = 5,
    .wake_n = 50,
    .wake_gap_ns = 2 * 1000000LL,
};

/* Table order of the rows (a reference runs first within its group). */
static const struct peer_ops *const impls[] = {
    &peer_sage_ops, &peer_floor_ops, &peer_pipe_ops, &peer_uds_ops, &peer_mq_ops,
#ifdef SAGE_BENCH_ZMQ
    &peer_zmq_ops,
#endif
    &peer_futex_ops,
};
#define NIMPLS (sizeof impls / sizeof impls[0])

static const char *const case_names[QCASE_COUNT] = {"rtt", "thr", "wake"};
static const size_t rtt_sizes[] = {64, 0};
static const size_t thr_sizes[] = {64, 4096, 65536, 0};

/* The figures of one run. */
struct fig {
    double p50_us;
    double p99_us;
    double msgs_per_s;
};

/* Where a run happens. */
struct where {
    const struct qparams *par;
    enum qcase kase;
    size_t size;
    int cpu[2]; /* side A's, side B's */
    char cpus[24];
};

static int run_seq; /* makes object names unique within this process */

static int child_main(void *arg, int side)
{
    return qcase_side(arg, side);
}

/* close_fds closes the parent's copies of setup's descriptors, so that a
 * child's death shows to its peer as EOF or EPIPE. */
static void close_fds(struct peer *p)
{
    for (int i = 0; i < 4; i++) {
        if (p->fd[i] >= 0) {
            close(p->fd[i]);
            p->fd[i] = -1;
        }
    }
}

/* run measures ops at w: 0 with *f filled, PEER_SKIP, or -1 (reported). */
static int run(const struct peer_ops *ops, const struct where *w, struct fig *f)
{
    struct qrun r;
    pid_t pids[2] = {-1, -1};
    char label[64];
    int rc;

    memset(&r, 0, sizeof r);
    r.peer.ops = ops;
    r.peer.kase = w->kase;
    r.peer.size = w->size;
    snprintf(r.peer.name, sizeof r.peer.name, "bench.%d.%d", (int)getpid(), ++run_seq);
    for (int i = 0; i < 4; i++)
        r.peer.fd[i] = -1;
    r.peer.res[0] = r.peer.res[1] = -1;
    r.par = w->par;
    r.ctl = bench_shared_alloc(sizeof *r.ctl);
    if (r.ctl == NULL)
        return -1;
    snprintf(label, sizeof label, "%s %s %zu cpus %s", ops->impl, case_names[w->kase], w->size,
             w->cpus);

    rc = ops->setup(&r.peer);
    if (rc == 0) {
        /* the receiving side first, so it is ready when the first message goes */
        pids[1] = bench_spawn(w->cpu[1], PEER_RUN_TIMEOUT_S, child_main, &r, SIDE_B);
        if (pids[1] > 0)
            pids[0] = bench_spawn(w->cpu[0], PEER_RUN_TIMEOUT_S, child_main, &r, SIDE_A);
        close_fds(&r.peer);
        rc = bench_reap(pids, 2, PEER_RUN_TIMEOUT_S + 5, label);
    } else if (rc < 0) {
        fprintf(stderr, "sage-bench: %s: setup failed\n", label);
    }
    close_fds(&r.peer);
    if (ops->cleanup != NULL)
        ops->cleanup(&r.peer);

    if (rc == 0) {
        f->p50_us = f->p99_us = f->msgs_per_s = -1;
        if (w->kase == QCASE_THR) {
            int64_t dt = atomic_load(&r.ctl->t_end) - atomic_load(&r.ctl->t_start);

            f->msgs_per_s = dt > 0 ? (double)atomic_load(&r.ctl->n) * 1e9 / (double)dt : -1;
        } else {
            f->p50_us = r.ctl->p50_ns / 1000.0;
            f->p99_us = r.ctl->p99_ns / 1000.0;
        }
    }
    bench_shared_free(r.ctl, sizeof *r.ctl);
    return rc;
}

/* reference names the impl the others of w are compared with. */
static const struct peer_ops *reference(const struct where *w)
{
    switch (w->kase) {
    case QCASE_RTT:
        return w->cpu[0] != w->cpu[1] ? &peer_floor_ops : &peer_pipe_ops;
    case QCASE_WAKE:
        return &peer_futex_ops;
    default:
        return &peer_pipe_ops;
    }
}

static bool runs_at(const struct peer_ops *ops, const struct where *w)
{
    if (!(ops->cases & QCASE_BIT(w->kase)))
        return false;
    return !(ops->distinct_cpus && w->cpu[0] == w->cpu[1]);
}

/* note_absent tells, once, why a row that might be expected is missing. */
static void note_absent(const struct peer_ops *ops, const struct where *w)
{
    static bool said;

    if (ops->distinct_cpus && w->cpu[0] == w->cpu[1] && (ops->cases & QCASE_BIT(w->kase)) &&
        !said) {
        said = true;
        bench_note("%s: not run with both ends on one CPU (a spin there only waits to be "
                   "preempted); those rows compare with pipe instead",
                   ops->impl);
    }
}

/* ratio is f relative to the reference's figures: latency over latency,
 * or rate over rate; -1 if either is missing. */
static double ratio(const struct where *w, const struct fig *f, const struct fig *ref)
{
    if (ref == NULL)
        return -1;
    if (w->kase == QCASE_THR)
        return f->msgs_per_s > 0 && ref->msgs_per_s > 0 ? f->msgs_per_s / ref->msgs_per_s : -1;
    return f->p50_us > 0 && ref->p50_us > 0 ? f->p50_us / ref->p50_us : -1;
}

/* group runs every impl at w, the reference first; returns the failures. */
static int group(const struct bench_opts *o, const struct where *w)
{
    const struct peer_ops *ref = reference(w);
    struct fig rf = {0}, f;
    bool have_ref = false;
    int failures = 0;

    for (size_t i = 0; i <= NIMPLS; i++) {
        /* step 0 is the reference, then the table order without it */
        const struct peer_ops *ops = i == 0 ? ref : impls[i - 1];
        struct bench_row row;
        int rc;

        if ((i > 0 && ops == ref) || !runs_at(ops, w)) {
            note_absent(ops, w);
            continue;
        }
        rc = run(ops, w, &f);
        if (rc != 0 && rc != PEER_SKIP) {
            /* once more: on a loaded machine a peer's operation can time
             * out once (seen: ZeroMQ's recv, ends on one CPU) */
            fprintf(stderr, "sage-bench: %s: running it once more\n", ops->impl);
            rc = run(ops, w, &f);
        }
        if (rc == PEER_SKIP)
            continue;
        if (rc != 0) {
            failures++;
            continue;
        }
        if (i == 0) {
            rf = f;
            have_ref = true;
        }
        row = (struct bench_row){.bench = "queue",
                                 .impl = ops->impl,
                                 .kase = case_names[w->kase],
                                 .size = w->size,
                                 .cpus = w->cpus,
                                 .p50_us = f.p50_us,
                                 .p99_us = f.p99_us,
                                 .msgs_per_s = f.msgs_per_s,
                                 .ratio = ratio(w, &f, have_ref ? &rf : NULL),
                                 .ref = have_ref ? ref->impl : NULL};
        bench_print_row(o, &row);
    }
    return failures;
}

int bench_queue_main(int argc, char **argv)
{
    struct bench_opts o;
    int cpus[2], ncpu, npairs, failures = 0, rc;
    int pairs[2][2];
    int64_t t0 = bench_now_ns();

    if ((rc = bench_parse_opts(argc, argv, &o, usage)) != BENCH_RUN)
        return rc;
    bench_install_signals();

    ncpu = bench_cpus(cpus, 2);
    if (ncpu >= 2) {
        pairs[0][0] = cpus[0], pairs[0][1] = cpus[1];
        pairs[1][0] = pairs[1][1] = cpus[0];
        npairs = 2;
    } else {
        bench_note("only one CPU (%d) available: running with both ends on it only", cpus[0]);
        pairs[0][0] = pairs[0][1] = cpus[0];
        npairs = 1;
    }
#ifndef SAGE_BENCH_ZMQ
    bench_note("built without libzmq: no zmq rows");
#endif

    for (int k = 0; k < QCASE_COUNT; k++) {
        const size_t *sizes = k == QCASE_THR ? thr_sizes : rtt_sizes;

        for (int pi = 0; pi < npairs; pi++) {
            for (const size_t *s = sizes; *s != 0; s++) {
                struct where w = {.par = o.quick ? &quick : &full,
                                  .kase = (enum qcase)k,
                                  .size = *s,
                                  .cpu = {pairs[pi][0], pairs[pi][1]}};

                snprintf(w.cpus, sizeof w.cpus, "%d,%d", w.cpu[0], w.cpu[1]);
                failures += group(&o, &w);
            }
        }
    }
    bench_res_remove_all();

    if (!o.json)
        printf("\nratio: rtt and wake p50 over the reference's p50 (lower is better);\n"
               "       thr msgs_per_s over the reference's (higher is better).\n");
    return bench_finish("queue", &o, t0, failures);
}
