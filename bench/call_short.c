/*
 * call_short.c - the short_callers run of "sage-bench call": what a host
 * keeps of callers that came and went.
 *
 * The host serves the echo task (shm, default options) and reads the
 * resident size of all its /dev/shm mappings three times: idle, once the
 * last caller has gone, and SHORT_AFTER_NS later with no traffic at all. The
 * caller child forks par->short_callers caller processes, SHORT_PAR at a
 * time; each makes a manager, one call, and leaves: most cleanly, every
 * SHORT_KILL_EVERY-th killed by SIGKILL right after its answer, as a
 * `sagesvc call` interrupted by its user would be.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "call.h"
#include "sage/task.h"

#define SHORT_PAR 4
#define SHORT_KILL_EVERY 4
#define SHORT_IDLE_NS (200 * 1000000LL)
#define SHORT_AFTER_NS (2000 * 1000000LL)

int call_short_timeout_s(const struct call_params *par)
{
    return 30 + (int)(par->short_callers / 20); /* 50 ms a caller, at the very worst */
}

static int host(struct call_run *r)
{
    struct call_short *c = &r->ctl->shortc;
    sage_task_opts o;
    sage_task *t;
    sage_err e;
    int rc;

    if (call_gate_wait(&r->ctl->go, "go from the parent") != 0)
        return -1;
    sage_task_opts_init(&o);
    o.transport = SAGE_TRANSPORT_SHM;
    o.ns = r->ns;
    if ((e = sage_task_new(&t, &call_echo_service, &o)) != SAGE_OK ||
        (e = sage_task_start(t)) != SAGE_OK) {
        fprintf(stderr, "sage-bench: call: short_callers: task: %s (%s)\n", sage_strerror(e),
                sage_errdetail());
        return -1;
    }
    bench_sleep_ns(SHORT_IDLE_NS);
    c->idle_kib = call_smaps_rss_kib(NULL);
    bench_gate_open(&r->ctl->ready);
    rc = bench_gate_wait(&r->ctl->done, call_short_timeout_s(r->par) * 1000);
    c->end_kib = call_smaps_rss_kib(NULL);
    bench_sleep_ns(SHORT_AFTER_NS);
    c->after_kib = call_smaps_rss_kib(NULL);
    sage_task_free(t);
    return rc;
}

/* one_caller is a caller process: one call, then gone; exit status 0 if the
 * call was answered */
static void one_caller(const struct call_run *r, bool killed)
{
    sage_manager_opts o;
    sage_manager *m;
    sage_arena *a;
    sage_value args[2], res;
    sage_err e;

    sage_manager_opts_init(&o);
    o.ns = r->ns;
    o.timeout_ms = CALL_OP_TIMEOUT_MS;
    call_payload(args);
    if ((e = sage_manager_new(&m, &o)) != SAGE_OK || (e = sage_arena_new(&a, 0)) != SAGE_OK)
        _exit(1);
    e = sage_manager_call_sync(
        &res, m,
        &(sage_request){.service = CALL_SERVICE, .method = CALL_METHOD, .args = args, .nargs = 2},
        a);
    if (e != SAGE_OK || !call_check_result(&res)) {
        fprintf(stderr, "sage-bench: call: short_callers: a caller's call: %s (%s)\n",
                sage_strerror(e), sage_errdetail());
        _exit(1);
    }
    if (killed)
        raise(SIGKILL);
    sage_arena_free(a);
    sage_manager_free(m);
    _exit(0);
}

static int caller(struct call_run *r)
{
    struct call_short *c = &r->ctl->shortc;
    int pids[SHORT_PAR] = {0};
    uint32_t started = 0, ended = 0;
    int64_t t0;

    if (call_gate_wait(&r->ctl->go, "go from the parent") != 0 ||
        call_gate_wait(&r->ctl->ready, "ready from the shm host") != 0)
        return -1;
    t0 = bench_now_ns();
    while (ended < r->par->short_callers) {
        int st, pid = wait(&st); /* the first slot's caller that ends */

        if (pid > 0) {
            for (int s = 0; s < SHORT_PAR; s++)
                if (pids[s] == pid)
                    pids[s] = 0;
            ended++;
            if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
                c->killed++;
            else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                c->failed++;
        }
        for (int s = 0; s < SHORT_PAR && started < r->par->short_callers; s++) {
            if (pids[s] != 0)
                continue;
            pids[s] = fork();
            if (pids[s] == 0)
                one_caller(r, started % SHORT_KILL_EVERY == SHORT_KILL_EVERY - 1);
            if (pids[s] < 0) {
                perror("sage-bench: call: short_callers: fork");
                bench_gate_open(&r->ctl->done);
                return -1;
            }
            started++;
        }
    }
    c->callers = ended;
    c->took_s = (double)(bench_now_ns() - t0) / 1e9;
    bench_gate_open(&r->ctl->done);
    return c->failed == 0 ? 0 : -1;
}

const struct call_impl call_short_impl = {
    .name = "shm",
    .two_procs = true,
    .setup = call_names_setup,
    .host = host,
    .caller = caller,
    .cleanup = call_names_cleanup,
};
