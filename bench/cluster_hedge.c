/*
 * cluster_hedge.c - the hedging case of "sage-bench cluster": three
 * replicas of the echo service, one of them frozen (SIGSTOP) for the middle
 * third of the run, and one caller making idempotent sync calls one at a
 * time, with hedging (hedge_after HEDGE_MS) or without. What it reports:
 * p50, p99 and the calls that failed (timed out, CALL_TIMEOUT_MS).
 *
 * Children: three hosts pinned to the service's CPU, one caller pinned to
 * its own; they meet on a shared page (struct hedge_ctl): the hosts count
 * themselves ready, the caller freezes and thaws replica 1 itself (it knows
 * the time), records every call's duration and says when it is done.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench_util.h"
#include "cluster.h"
#include "sage/cluster.h"
#include "sage/task.h"

#define REPLICAS 3
#define STOPPED 1 /* the replica frozen mid-run */
#define CALL_TIMEOUT_MS 1000
#define MAX_SAMPLES 200000

struct hedge_ctl {
    _Atomic uint32_t go;
    _Atomic uint32_t ready; /* hosts serving */
    _Atomic uint32_t done;  /* the caller finished: hosts may stop */
    pid_t host[REPLICAS];
    struct cluster_hedge_fig fig;
    char first_error[256]; /* what the first failed call said */
    size_t n;
    int64_t samples[MAX_SAMPLES];
};

struct hedge_run {
    const char *url;
    const char *ns;
    bool hedge;
    int64_t run_ns;
    struct hedge_ctl *ctl;
};

static void conf_init(sage_nats_conf *nc, sage_cluster_opts *co, const char **servers,
                      const char *url)
{
    servers[0] = url;
    sage_nats_conf_init(nc);
    nc->servers = servers;
    nc->nservers = 1;
    nc->reconnect_max = 0;
    memset(co, 0, sizeof *co);
    co->nats = nc;
}

static int host(void *arg, int index)
{
    struct hedge_run *h = arg;
    const char *servers[1];
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_task_opts o;
    sage_task *t;
    sage_err e;

    (void)index;
    if (bench_gate_wait(&h->ctl->go, CALL_OP_TIMEOUT_MS) != 0)
        return -1;
    conf_init(&nc, &co, servers, h->url);
    sage_task_opts_init(&o);
    o.transport = SAGE_TRANSPORT_NATS;
    o.ns = h->ns;
    o.cluster = &co;
    if ((e = sage_task_new(&t, &call_echo_service, &o)) != SAGE_OK ||
        (e = sage_task_start(t)) != SAGE_OK) {
        fprintf(stderr, "sage-bench: cluster: hedging host: %s (%s)\n", sage_strerror(e),
                sage_errdetail());
        return -1;
    }
    atomic_fetch_add(&h->ctl->ready, 1);
    bench_futex_wake(&h->ctl->ready);
    e = bench_gate_wait(&h->ctl->done, CLUSTER_RUN_TIMEOUT_S * 1000) == 0 ? SAGE_OK : SAGE_ETIMEDOUT;
    sage_task_free(t);
    return e == SAGE_OK ? 0 : -1;
}

/* one_call makes one idempotent sync call: its duration, or -1 if it
 * failed (the first failure's reason kept in why) */
static int64_t one_call(sage_manager *m, const sage_value *args, sage_arena *a, bool hedge,
                        char *why, size_t cap)
{
    int64_t t0 = bench_now_ns();
    sage_value res;
    sage_err e = sage_manager_call_sync(
        &res, m,
        &(sage_request){.service = CALL_SERVICE, .method = CALL_METHOD, .args = args, .nargs = 2,
                        .idempotent = true, .timeout_ms = CALL_TIMEOUT_MS,
                        .hedge_after_ms = hedge ? CLUSTER_HEDGE_MS : -1},
        a);

    sage_arena_reset(a);
    if (e != SAGE_OK && why && why[0] == '\0')
        snprintf(why, cap, "%s (%s) after %.1f ms", sage_errname(e), sage_errdetail(),
                 (bench_now_ns() - t0) / 1e6);
    return e == SAGE_OK ? bench_now_ns() - t0 : -1;
}

static int caller(void *arg, int index)
{
    struct hedge_run *h = arg;
    struct hedge_ctl *ctl = h->ctl;
    const char *servers[1];
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_manager_opts mo;
    sage_manager *m;
    sage_arena *a;
    sage_value args[2];
    int64_t t0, now, warm_end;
    bool frozen = false, thawed = false;
    struct bench_pct pct;
    sage_manager_stats st;
    sage_err e;

    (void)index;
    if (bench_gate_wait(&ctl->go, CALL_OP_TIMEOUT_MS) != 0)
        return -1;
    for (uint32_t r; (r = atomic_load(&ctl->ready)) < REPLICAS;)
        if (bench_futex_wait(&ctl->ready, r, CALL_OP_TIMEOUT_MS) != 0 &&
            atomic_load(&ctl->ready) < REPLICAS) {
            fprintf(stderr, "sage-bench: cluster: hedging: the replicas did not start\n");
            bench_gate_open(&ctl->done);
            return -1;
        }
    conf_init(&nc, &co, servers, h->url);
    sage_manager_opts_init(&mo);
    mo.ns = h->ns;
    mo.cluster = &co;
    if ((e = sage_manager_new(&m, &mo)) != SAGE_OK || (e = sage_arena_new(&a, 0)) != SAGE_OK) {
        fprintf(stderr, "sage-bench: cluster: hedging caller: %s (%s)\n", sage_strerror(e),
                sage_errdetail());
        bench_gate_open(&ctl->done);
        return -1;
    }
    call_payload(args);
    /* warm up: every replica known and answering */
    warm_end = bench_now_ns() + h->run_ns / 6;
    while (bench_now_ns() < warm_end)
        one_call(m, args, a, h->hedge, NULL, 0);
    t0 = bench_now_ns();
    while ((now = bench_now_ns()) - t0 < h->run_ns) {
        int64_t took;

        if (!frozen && now - t0 >= h->run_ns / 3) {
            kill(ctl->host[STOPPED], SIGSTOP);
            frozen = true;
        } else if (!thawed && now - t0 >= 2 * h->run_ns / 3) {
            kill(ctl->host[STOPPED], SIGCONT);
            thawed = true;
        }
        took = one_call(m, args, a, h->hedge, ctl->first_error, sizeof ctl->first_error);
        if (took < 0)
            ctl->fig.errors++;
        else if (ctl->n < MAX_SAMPLES)
            ctl->samples[ctl->n++] = took;
    }
    if (!thawed)
        kill(ctl->host[STOPPED], SIGCONT);
    sage_manager_stats_read(&st, m);
    ctl->fig.hedges = (int64_t)st.hedges;
    ctl->fig.calls = (int64_t)(ctl->n + (size_t)ctl->fig.errors);
    if (ctl->n > 0) {
        bench_percentiles(ctl->samples, ctl->n, &pct);
        ctl->fig.p50_us = pct.p50_ns / 1e3;
        ctl->fig.p99_us = pct.p99_ns / 1e3;
    }
    sage_arena_free(a);
    sage_manager_free(m);
    bench_gate_open(&ctl->done);
    return ctl->n > 0 ? 0 : -1;
}

int cluster_hedge_run(const char *url, const char *ns, bool hedge, int64_t run_ns, int caller_cpu,
                      int host_cpu, struct cluster_hedge_fig *out)
{
    struct hedge_ctl *ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct hedge_run h = {url, ns, hedge, run_ns, ctl};
    pid_t pids[REPLICAS + 1];
    int rc;

    if (ctl == MAP_FAILED) {
        perror("sage-bench: cluster: hedging: mmap");
        return -1;
    }
    memset(&ctl->fig, 0, sizeof ctl->fig);
    ctl->first_error[0] = '\0';
    for (int i = 0; i < REPLICAS; i++)
        ctl->host[i] = pids[i] = bench_spawn(host_cpu, CLUSTER_RUN_TIMEOUT_S, host, &h, i);
    pids[REPLICAS] = bench_spawn(caller_cpu, CLUSTER_RUN_TIMEOUT_S, caller, &h, 0);
    bench_gate_open(&ctl->go);
    rc = bench_reap(pids, REPLICAS + 1, CLUSTER_RUN_TIMEOUT_S + 5,
                    hedge ? "cluster hedging (hedge)" : "cluster hedging (no hedge)");
    *out = ctl->fig;
    out->hedge = hedge;
    if (ctl->first_error[0])
        fprintf(stderr, "sage-bench: cluster: hedging (%s): first failed call: %s\n",
                hedge ? "hedge" : "no hedge", ctl->first_error);
    munmap(ctl, sizeof *ctl);
    return rc;
}
