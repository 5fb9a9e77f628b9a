/*
 * bench_call.c - "sage-bench call": what one method call costs, made
 * directly (the floor), through a local task, through an shm task in
 * another process, and over ZeroMQ carrying the same envelope; sync (one
 * call at a time: p50/p99) and async (many outstanding: calls per second).
 * Then the resident memory of an idle shm task.
 *
 * Each row is one run (call_run.c): fresh children pinned before they touch
 * anything, a fresh namespace, figures back through a shared page. The
 * table is printed once all have run (call_print.c), so it can compare shm
 * with zmq whatever the order; JSON lines go out as the rows are measured.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "benches.h"
#include "call.h"
#include "call_wire.h"

static const char usage[] =
    "usage: sage-bench call [--json] [--quick]\n"
    "\n"
    "Times a call of a method that echoes its first argument, with 64 bytes of\n"
    "encoded args ([a 52-byte string, an int]), made four ways:\n"
    "  direct  the method's C function called in-process: the floor\n"
    "  local   a SAGE_TRANSPORT_LOCAL task and a manager in one process (the\n"
    "          calling thread pinned, the runtime's threads on all CPUs)\n"
    "  shm     a SAGE_TRANSPORT_SHM task in one process, the caller in another,\n"
    "          pinned to two CPUs\n"
    "  zmq     ZeroMQ ipc carrying sagesvc's MessagePack envelope both ways,\n"
    "          pinned like shm (REQ/REP for sync, DEALER/ROUTER for async)\n"
    "cases:\n"
    "  sync   call_sync round trip, one at a time: p50 and p99\n"
    "  async  call_async with about 1000 outstanding: calls per second\n"
    "Then the RSS an idle shm task with default options adds to its process,\n"
    "and the size of its request queue. Last, short_callers: 1000 caller\n"
    "processes (100 with --quick), each making one call and leaving (one in\n"
    "four SIGKILLed), against one shm host: the host's shared-memory RSS idle,\n"
    "when the last caller has gone, and 2 s later.\n"
    "\n" BENCH_OPTS_USAGE;

static const struct call_params full = {
    .warm_ns = 200 * 1000000LL,
    .sync_ns = 1000 * 1000000LL,
    .sync_min = 20000,
    .sync_max = 2000000,
    .async_ns = 1000 * 1000000LL,
    .window = 1000,
    .idle_ns = 200 * 1000000LL,
    .short_callers = 1000,
};

static const struct call_params quick = {
    .warm_ns = 30 * 1000000LL,
    .sync_ns = 150 * 1000000LL,
    .sync_min = 1000,
    .sync_max = 200000,
    .async_ns = 150 * 1000000LL,
    .window = 1000,
    .idle_ns = 200 * 1000000LL,
    .short_callers = 100,
};

static const struct call_impl *const impls[] = {
    &call_direct_impl, &call_local_impl, &call_shm_impl,
#ifdef SAGE_BENCH_ZMQ
    &call_zmq_impl,
#endif
};
#define NIMPLS (sizeof impls / sizeof impls[0])

/* Where the runs happen. */
struct setting {
    const struct call_params *par;
    int ncpus;
    int cpus[2];
    int caller_cpu, host_cpu;
};

static int run_seq; /* makes namespaces unique within this process */

/* run runs impl in kase; 0 with the shared page's figures copied to *out */
static int run(const struct setting *s, const struct call_impl *impl, enum call_case kase,
               struct call_ctl *out)
{
    const char *what = impl == &call_rss_impl     ? "idle_rss"
                       : impl == &call_short_impl ? "short_callers"
                                                  : call_case_names[kase];
    int timeout_s = impl == &call_short_impl ? call_short_timeout_s(s->par) : CALL_RUN_TIMEOUT_S;
    struct call_run r;
    char label[64];

    memset(&r, 0, sizeof r);
    r.impl = impl;
    r.kase = kase;
    r.par = s->par;
    r.bench = "call";
    r.caller_cpu = s->caller_cpu;
    r.host_cpu = s->host_cpu;
    r.ncpus = s->ncpus;
    memcpy(r.cpus, s->cpus, sizeof r.cpus);
    snprintf(r.ns, sizeof r.ns, "bench%d-%d", (int)getpid(), ++run_seq);
    snprintf(label, sizeof label, "call %s %s", impl->name, what);
    return call_run_one(&r, timeout_s, label, out);
}

/* ------------------------------------------------------------------- main */

static void note_sizes(void)
{
    size_t args, req, resp;
    char reply_to[96];

    /* as long as a manager's response queue name in these runs */
    snprintf(reply_to, sizeof reply_to, "%u.bench%d-1.reply.%d.0", (unsigned)geteuid(),
             (int)getpid(), (int)getpid());
    call_wire_sizes(reply_to, &args, &req, &resp);
    if (args != CALL_ARGS_BYTES)
        bench_note("call: the args encode to %zu bytes, not %d", args, CALL_ARGS_BYTES);
    bench_note("call: envelope sizes: args %zu B, request %zu B, response %zu B", args, req, resp);
}

int bench_call_main(int argc, char **argv)
{
    struct call_result res[CALL_CASE_COUNT * NIMPLS];
    struct bench_opts o;
    struct setting s;
    struct call_ctl ctl;
    size_t nres = 0;
    int failures = 0, rss_ok, rc;
    int64_t t0 = bench_now_ns();

    if ((rc = bench_parse_opts(argc, argv, &o, usage)) != BENCH_RUN)
        return rc;
    bench_install_signals();
    memset(&s, 0, sizeof s);
    s.par = o.quick ? &quick : &full;
    s.ncpus = bench_cpus(s.cpus, 2);
    s.caller_cpu = s.cpus[0];
    s.host_cpu = s.ncpus >= 2 ? s.cpus[1] : s.cpus[0];
    if (s.ncpus < 2)
        bench_note("only one CPU (%d): shm and zmq run with both ends on it", s.cpus[0]);
#ifndef SAGE_BENCH_ZMQ
    bench_note("built without libzmq: no zmq rows");
#endif
    note_sizes();

    for (int k = 0; k < CALL_CASE_COUNT; k++) {
        for (size_t i = 0; i < NIMPLS; i++) {
            struct call_result *x = &res[nres++];

            memset(x, 0, sizeof *x);
            x->impl = impls[i]->name;
            x->kase = (enum call_case)k;
            if (impls[i]->two_procs)
                snprintf(x->cpus, sizeof x->cpus, "%d,%d", s.caller_cpu, s.host_cpu);
            else
                snprintf(x->cpus, sizeof x->cpus, "%d", s.caller_cpu);
            x->ok = run(&s, impls[i], (enum call_case)k, &ctl) == 0;
            if (x->ok) {
                x->fig = ctl.fig;
                if (o.json)
                    call_print_json("call", x);
            } else {
                failures++;
            }
        }
    }
    /* the idle task runs where the shm host runs */
    {
        struct setting rs = s;

        rs.caller_cpu = s.host_cpu;
        rss_ok = run(&rs, &call_rss_impl, CALL_SYNC, &ctl) == 0;
    }
    if (!o.json)
        call_print_table(res, nres);
    if (rss_ok)
        call_print_rss(o.json, &ctl.rss, s.par->idle_ns);
    else
        failures++;
    /* the host where the shm host runs, the callers where the caller runs */
    if (run(&s, &call_short_impl, CALL_SYNC, &ctl) == 0)
        call_print_short(o.json, &ctl.shortc);
    else
        failures++;
    if (!o.json)
        call_print_targets(res, nres);
    fflush(stdout);
    bench_res_remove_all();

    return bench_finish("call", &o, t0, failures);
}
