/*
 * call.h - "sage-bench call": the cost of one method call, made four ways
 * (direct, local, shm, zmq), behind one small interface.
 *
 * A run measures one impl in one case (sync or async) in fresh children
 * (call_run.c): the parent calls setup (names every object the run will
 * create, so that a signal or a failure removes them), forks the host (if
 * the impl has one) and the caller, each pinned first, opens the go gate,
 * reaps both and calls cleanup. The figures come back in struct call_ctl, a
 * shared page. The payload and the method are call_svc.c's, the same for
 * all. "sage-bench cluster" (cluster.h) shares the runs, the payload, the
 * loops, the sage sides and the rows and their printing: its impls are
 * call_impls too.
 */
#ifndef SAGE_BENCH_CALL_H
#define SAGE_BENCH_CALL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sage/manager.h"
#include "sage/service.h"
#include "sage/task.h"
#include "sage/value.h"

/* The cases: one call at a time, or many outstanding. */
enum call_case { CALL_SYNC, CALL_ASYNC, CALL_CASE_COUNT };

/* The payload: args = [a CALL_STR_LEN-byte string, CALL_INT_ARG]. The int
 * needs MessagePack's 9-byte uint64 form, so the encoded args array is
 * 1 + 2 + 52 + 9 = CALL_ARGS_BYTES bytes; call_wire.c checks it. */
#define CALL_STR_LEN 52
#define CALL_INT_ARG ((int64_t)0x0123456789abcdefLL)
#define CALL_ARGS_BYTES 64

/* The bench service's name and its one method. */
#define CALL_SERVICE "echo"
#define CALL_METHOD "echo"

/* Longest wait of one call, gate or receive: a wedged peer fails the run. */
#define CALL_OP_TIMEOUT_MS 5000
/* Longest life of a child (alarm). A full run takes about two seconds. */
#define CALL_RUN_TIMEOUT_S 30

/* Run lengths: full or --quick. */
struct call_params {
    int64_t warm_ns;  /* unmeasured warm-up before every measurement */
    int64_t sync_ns;  /* sync: measured time aimed at, within: */
    size_t sync_min;  /* bounds on measured calls */
    size_t sync_max;
    int64_t async_ns; /* async: time spent issuing measured calls */
    uint32_t window;  /* async: calls kept outstanding */
    int64_t idle_ns;  /* idle_rss: how long the task idles before reading */
    uint32_t short_callers; /* short_callers: how many caller processes */
    int64_t hedge_ns;       /* cluster's hedging case: how long each run calls */
};

/* The figures of one run; negative means absent. */
struct call_fig {
    double p50_us;
    double p99_us;
    double calls_per_s;
};

/* What the idle_rss run reports. */
struct call_rss {
    int64_t before_kib;      /* VmRSS just before sage_task_new */
    int64_t after_kib;       /* VmRSS after the started task idled */
    int64_t shm_before_kib;  /* RssShmem, the same two moments */
    int64_t shm_after_kib;
    int64_t queue_bytes;     /* size of the request queue's segment */
    int64_t queue_rss_kib;   /* its pages resident in the host (smaps Rss) */
    int64_t segs_rss_kib;    /* all /dev/shm mappings of the host (smaps Rss) */
};

/* What the short_callers run reports: the host's /dev/shm mappings'
 * resident KiB (smaps Rss) idle, when the last caller has gone, and 2 s
 * later without any traffic. */
struct call_short {
    int64_t callers;  /* short-lived caller processes that ran */
    int64_t failed;   /* of which a call failed */
    int64_t killed;   /* of which were SIGKILLed after their call */
    int64_t idle_kib;
    int64_t end_kib;
    int64_t after_kib;
    double took_s;    /* from the first caller's start to the last one's end */
};

/* The shared page of a run (MAP_SHARED). */
struct call_ctl {
    _Atomic uint32_t go;    /* parent: every name is registered, start */
    _Atomic uint32_t ready; /* host: serving */
    _Atomic uint32_t done;  /* caller: finished, the host may stop */
    struct call_fig fig;    /* written by the caller */
    struct call_rss rss;    /* written by the idle_rss child */
    struct call_short shortc; /* written by the short_callers children */
};

/* A run as both children see it. */
struct call_run {
    const struct call_impl *impl;
    enum call_case kase;
    const struct call_params *par;
    struct call_ctl *ctl;
    const char *bench; /* "call" or "cluster", for messages */
    int caller_cpu;
    int host_cpu;
    int ncpus;         /* the CPUs the benchmark may use: */
    int cpus[2];       /* local's runtime threads run on these */
    char ns[64];       /* namespace: "bench<pid>-<seq>", cluster "benchc<pid>" */
    char ipc[96];      /* zmq: the ipc socket's path */
    const char *url;   /* cluster: the nats-server, "nats://127.0.0.1:PORT" */
    char subject[96];  /* cluster nats: the service's subject, unique to the run */
    int res[4];        /* bench_res handles of the run's named objects */
    bool ok;           /* parent, for cleanup: both children exited 0 */
};

/* An impl. Calls return 0 on success, -1 with a message on stderr. */
struct call_impl {
    const char *name;
    bool two_procs; /* a host process beside the caller */
    /* parent, before fork: name the objects the run creates (may be NULL) */
    int (*setup)(struct call_run *r);
    /* parent, after fork, before the go gate: names that need a pid */
    void (*spawned)(struct call_run *r, int caller_pid);
    /* host child, after pinning (two_procs only) */
    int (*host)(struct call_run *r);
    /* caller child, after pinning: measure r->kase into r->ctl->fig */
    int (*caller)(struct call_run *r);
    /* parent, after both children have gone: remove the names */
    void (*cleanup)(struct call_run *r);
};

extern const struct call_impl call_direct_impl;
extern const struct call_impl call_local_impl;
extern const struct call_impl call_shm_impl;
extern const struct call_impl call_zmq_impl;
extern const struct call_impl call_rss_impl;
extern const struct call_impl call_short_impl;

/* call_short_timeout_s bounds a short_callers run of par's length. */
int call_short_timeout_s(const struct call_params *par);

/* ---- call_rss.c */

/* call_smaps_rss_kib sums the Rss of this process's mappings of path
 * (exact), or of every /dev/shm file when path is NULL; -1 if unreadable. */
int64_t call_smaps_rss_kib(const char *path);

/* ---- call_run.c: one run */

/*
 * call_run_one runs r, whose impl, case, run lengths, bench, CPUs and names
 * the benchmark has filled in: it maps r->ctl, calls setup, forks the host
 * (two_procs) and the caller with timeout_s to live, opens the go gate,
 * reaps both and calls cleanup. 0 with the shared page copied to *out, or -1
 * with the reason on stderr, naming label.
 */
int call_run_one(struct call_run *r, int timeout_s, const char *label, struct call_ctl *out);

/* ---- call_print.c: the output (its rows and their lookup serve
 * "sage-bench cluster" too) */

/* A measured row. */
struct call_result {
    const char *impl;
    enum call_case kase;
    char cpus[16];
    struct call_fig fig;
    bool ok; /* measured; rows of failed runs are left out */
};

/* call_case_names: "sync", "async". */
extern const char *const call_case_names[CALL_CASE_COUNT];

/* call_print_json prints x as one JSON line of the benchmark bench ("call",
 * "cluster"). */
void call_print_json(const char *bench, const struct call_result *x);

/* call_result_find returns the measured row of impl name in kase, or NULL. */
const struct call_result *call_result_find(const struct call_result *res, size_t n,
                                           const char *name, enum call_case kase);

/* call_result_ratio returns impl a's figure over impl b's in kase: p50 over
 * p50 in sync, calls per second over calls per second in async; -1 when
 * either is not measured. */
double call_result_ratio(const struct call_result *res, size_t n, const char *a, const char *b,
                         enum call_case kase);

/* call_print_table prints the rows as a table, with shm's speed-up over zmq
 * on the shm rows. */
void call_print_table(const struct call_result *res, size_t n);

/* call_print_rss prints the idle_rss figures: two JSON lines (idle_rss,
 * queue_size) or a paragraph. */
void call_print_rss(bool json, const struct call_rss *m, int64_t idle_ns);

/* call_print_short prints the short_callers figures: one JSON line or a
 * paragraph. */
void call_print_short(bool json, const struct call_short *c);

/* call_print_targets sets the figures beside the team's targets (table). */
void call_print_targets(const struct call_result *res, size_t n);

/* ---- call_svc.c: the method, its service and the payload */

/* call_echo is the method's work on plain values: *out = args[0]. The
 * service's method and the direct and zmq impls all call it. */
sage_err call_echo(const sage_value *args, sage_value *out);

/* call_echo_service: CALL_SERVICE with the one method CALL_METHOD. */
extern const sage_service call_echo_service;

/* call_payload fills args[0..2) with the payload (borrowed static data). */
void call_payload(sage_value args[2]);

/* call_check_result tells whether v is the echo of the payload. */
bool call_check_result(const sage_value *v);

/* ---- call_measure.c: the loops every impl shares */

/* One sync call: 0 or -1. */
typedef int (*call_once_fn)(void *ctx);

/*
 * call_sync_measure warms up (par->warm_ns), sizes the run from the warm-up
 * rate, then times the calls back to back and writes the per-call p50/p99
 * to *out. batch > 1 makes each sample the mean of batch calls (direct
 * calls are shorter than the clock's resolution).
 */
int call_sync_measure(const struct call_params *par, call_once_fn once, void *ctx, unsigned batch,
                      struct call_fig *out);

/* call_gate_wait waits for a gate of r->ctl up to CALL_OP_TIMEOUT_MS. */
int call_gate_wait(_Atomic uint32_t *gate, const char *what);

/* ---- call_window.c: many calls outstanding (also "sage-bench cluster"'s) */

/* The state of an async run: an issuing thread, completions on another. */
struct call_window {
    _Atomic uint64_t issued;    /* written by the issuer only */
    _Atomic uint64_t completed; /* bumped by completions only */
    _Atomic uint64_t errors;
    _Atomic uint64_t low;      /* wake the issuer at or below this outstanding */
    _Atomic uint32_t sleeping; /* the issuer is (about to be) asleep on wake */
    _Atomic uint32_t wake;     /* futex word, bumped to wake the issuer */
};

/* One send of the issuer: 0, or -1 with a message (the window then fails). */
typedef int (*call_issue_fn)(void *ctx);

/* call_window_done counts one completion and wakes the issuer if it waits
 * for this one. ok false also counts a failed call in w->errors (a
 * completer that counts its own, to tell the first one, passes true). Any
 * thread. */
void call_window_done(struct call_window *w, bool ok);

/*
 * call_window_measure keeps par->window calls outstanding through issue
 * (which must bump w->issued for each call sent) for par->warm_ns, then
 * again for par->async_ns, and writes the calls per second of the second
 * part, from its first send to its last completion, to *out. Fails when no
 * call completes for CALL_OP_TIMEOUT_MS or any call failed; the messages
 * name the benchmark label ("call").
 */
int call_window_measure(const struct call_params *par, struct call_window *w,
                        call_issue_fn issue, void *ctx, const char *label, struct call_fig *out);

/* ---- call_sage.c: the host's side as a task, the caller's through a
 * sage_manager */

/*
 * call_sage_serve creates the echo service's task with o, starts it, opens
 * ready and serves until done opens (at most timeout_s), then frees the
 * task. A failure's message names label ("call: shm"). 0 or -1.
 */
int call_sage_serve(const sage_task_opts *o, _Atomic uint32_t *ready, _Atomic uint32_t *done,
                    int timeout_s, const char *label);

/* call_sage_measure measures kase, with the run lengths par, calling
 * CALL_SERVICE through m. */
int call_sage_measure(enum call_case kase, const struct call_params *par, sage_manager *m,
                      struct call_fig *out);

/* ---- call_names.c: the runtime's shm names of a run, for cleanup (also
 * "sage-bench cluster"'s sage impl) */

/* call_names_setup registers the request queue and registry entry of the
 * run's CALL_SERVICE task (shm), for removal on exit or signal. */
int call_names_setup(struct call_run *r);

/* call_names_caller registers the response queue the manager of the caller
 * pid will create (the runtime's naming, predicted; see call_names.c). */
void call_names_caller(struct call_run *r, int caller_pid);

/* call_names_cleanup removes what the run registered and anything else of
 * the run's namespace in /dev/shm. After a clean run (r->ok) the runtime
 * should have removed it all itself: whatever is left is noted as a leak. */
void call_names_cleanup(struct call_run *r);

/* call_queue_path writes /dev/shm's path of the run's request queue. */
void call_queue_path(const struct call_run *r, char *buf, size_t cap);

#endif
