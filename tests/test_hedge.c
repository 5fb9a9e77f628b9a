/*
 * test_hedge.c - hedged calls over NATS: three replicas, one frozen
 * (SIGSTOP) or killed; idempotent calls with hedge_after still all succeed,
 * quickly, their losing answers counted late; calls without hedging show
 * the timeouts a frozen replica causes; calls not idempotent are never
 * hedged.
 */
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "natsfix_th.h"
#include "sage/manager.h"
#include "sage/task.h"
#include "testsvc.h"

#define REPLICAS 3

struct rig {
    struct natsfix nf;
    sage_nats_conf nc;
    sage_cluster_opts co;
    int pid[REPLICAS];
    sage_manager *m;
};

static void rig_up(struct rig *r, int64_t hedge_after_ms)
{
    sage_manager_opts mo;

    natsfix_start(&r->nf, 1, NULL);
    natsfix_conf(&r->nf, &r->nc, 0);
    memset(&r->co, 0, sizeof r->co);
    r->co.nats = &r->nc;
    for (int i = 0; i < REPLICAS; i++)
        r->pid[i] = th_serve_child(&testsvc, SAGE_TRANSPORT_NATS, &r->co);
    sage_manager_opts_init(&mo);
    mo.ns = th_prefix();
    mo.cluster = &r->co;
    mo.timeout_ms = 2000;
    mo.hedge_after_ms = hedge_after_ms;
    ASSERT_OK(sage_manager_new(&r->m, &mo));
}

static void rig_down(struct rig *r)
{
    sage_manager_free(r->m);
    for (int i = 0; i < REPLICAS; i++) {
        kill(r->pid[i], SIGCONT);
        kill(r->pid[i], SIGKILL);
        th_wait_child(r->pid[i], 5000);
    }
    natsfix_stop(&r->nf);
}

/* pid_call calls pid() (idempotent; hedge as given: 0 the manager's);
 * returns the answering pid, or -error */
static int64_t pid_call(struct rig *r, int64_t hedge_after_ms, int64_t timeout_ms, double *took)
{
    sage_arena *a;
    sage_value res;
    sage_err e;
    double t0 = th_now_ms();
    int64_t got;

    ASSERT_OK(sage_arena_new(&a, 0));
    e = sage_manager_call_sync(&res, r->m,
                               &(sage_request){.service = "testsvc", .method = "pid",
                                               .idempotent = true, .timeout_ms = timeout_ms,
                                               .hedge_after_ms = hedge_after_ms},
                               a);
    got = e == SAGE_OK ? res.as.i : -(int64_t)e;
    sage_arena_free(a);
    if (took)
        *took = th_now_ms() - t0;
    return got;
}

/* warm_up calls until every replica answered (the caller knows them all) */
static void warm_up(struct rig *r)
{
    bool seen[REPLICAS] = {false};
    double end = th_now_ms() + 10000;
    int n = 0;

    while (n < REPLICAS && th_now_ms() < end) {
        int64_t p = pid_call(r, 0, 2000, NULL);

        for (int i = 0; i < REPLICAS; i++)
            if (p == r->pid[i] && !seen[i]) {
                seen[i] = true;
                n++;
            }
    }
    ASSERT_EQ(n, REPLICAS);
}

static void stats(struct rig *r, sage_manager_stats *st)
{
    ASSERT_OK(sage_manager_stats_read(st, r->m));
}

/* one replica frozen: every hedged call succeeds within hedge_after and a
 * round trip; the frozen one's answers come late after SIGCONT */
static void t_frozen_replica(void)
{
    static struct rig r;
    sage_manager_stats st;
    double took, worst = 0;

    rig_up(&r, 50);
    warm_up(&r);
    th_stop_child(r.pid[1]);
    for (int i = 0; i < 60; i++) {
        int64_t p = pid_call(&r, 0, 2000, &took);

        if (p <= 0)
            th_fail(__FILE__, __LINE__, "hedged call %d failed: %s", i, sage_errname((sage_err)-p));
        ASSERT_NE(p, r.pid[1]);
        worst = took > worst ? took : worst;
    }
    ASSERT_LE(worst, 1000);
    stats(&r, &st);
    /* the calls that went to the frozen one: once given up on, it is not
     * picked again (round robin until it went stale would be ~20 of 60) */
    ASSERT_TRUE(st.hedges >= 1);
    ASSERT_LE(st.hedges, 5);
    ASSERT_EQ(st.errors, 0);
    /* the frozen one wakes: its answers to calls long answered are dropped */
    kill(r.pid[1], SIGCONT);
    {
        double end = th_now_ms() + 5000;

        do
            stats(&r, &st);
        while (st.late == 0 && th_now_ms() < end && usleep(10000) == 0);
        ASSERT_TRUE(st.late >= 1);
    }
    rig_down(&r);
}

/* the same, without hedging: the calls that land on the frozen replica
 * time out - what hedging is for */
static void t_frozen_no_hedge(void)
{
    static struct rig r;
    int timeouts = 0;

    rig_up(&r, 0);
    warm_up(&r);
    th_stop_child(r.pid[1]);
    for (int i = 0; i < 30; i++)
        timeouts += pid_call(&r, -1, 200, NULL) == -(int64_t)SAGE_ETIMEDOUT;
    ASSERT_TRUE(timeouts >= 1);
    rig_down(&r);
}

/* one replica killed: nobody takes what goes to it; the call goes to
 * another replica at once */
static void t_killed_replica(void)
{
    static struct rig r;
    sage_manager_stats st;
    double took;

    rig_up(&r, 1000);
    warm_up(&r);
    kill(r.pid[2], SIGKILL);
    th_wait_child(r.pid[2], 5000);
    for (int i = 0; i < 30; i++) {
        int64_t p = pid_call(&r, 0, 2000, &took);

        if (p <= 0)
            th_fail(__FILE__, __LINE__, "call %d failed: %s (%s)", i, sage_errname((sage_err)-p), sage_errdetail());
        ASSERT_LE(took, 500); /* redirected, not hedged after 1 s */
    }
    stats(&r, &st);
    ASSERT_EQ(st.errors, 0);
    rig_down(&r);
}

/* calls not idempotent are never hedged, however slow */
static void t_not_idempotent(void)
{
    static struct rig r;
    sage_manager_stats st;
    sage_value ms[1] = {sage_int(200)};

    rig_up(&r, 20);
    for (int i = 0; i < 3; i++)
        ASSERT_OK(sage_manager_call_sync(
            NULL, r.m,
            &(sage_request){.service = "testsvc", .method = "sleep", .args = ms, .nargs = 1},
            NULL));
    stats(&r, &st);
    ASSERT_EQ(st.hedges, 0);
    rig_down(&r);
}

static const struct th_case cases[] = {
    {"frozen_replica", t_frozen_replica, 120},
    {"frozen_no_hedge", t_frozen_no_hedge, 120},
    {"killed_replica", t_killed_replica, 120},
    {"not_idempotent", t_not_idempotent, 60},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
