/*
 * test_deadline.c - work whose caller gave up is not run, across machines:
 * a NATS replica frozen while calls reach it skips them when it resumes,
 * since their send time (the caller's wall clock) says their caller has
 * given up; calls still within their time run.
 */
#include <signal.h>
#include <unistd.h>

#include "harness.h"
#include "natsfix_th.h"
#include "sage/manager.h"
#include "sage/task.h"
#include "testsvc.h"

static int64_t served(sage_manager *m)
{
    sage_arena *a;
    sage_value res;
    int64_t n;

    ASSERT_OK(sage_arena_new(&a, 0));
    ASSERT_OK(sage_manager_callf(&res, m, a, "testsvc", "count", "[]"));
    n = res.as.i;
    sage_arena_free(a);
    return n;
}

static void t_frozen_replica_skips_expired(void)
{
    struct natsfix f;
    sage_nats_conf nc;
    sage_cluster_opts co = {0};
    sage_manager *m;
    sage_future *fut[5], *alive;
    sage_value one[2] = {sage_int(1), sage_int(2)};
    int pid;

    natsfix_start(&f, 1, NULL);
    natsfix_conf(&f, &nc, 0);
    co.nats = &nc;
    pid = th_serve_child(&testsvc, SAGE_TRANSPORT_NATS, &co);
    m = natsfix_manager(&f, 0, 10, &nc, &co);
    ASSERT_EQ(served(m), 0);
    th_stop_child(pid);
    for (int i = 0; i < 5; i++)
        ASSERT_OK(sage_manager_call(&fut[i], m,
                                    &(sage_request){.service = "testsvc", .method = "add",
                                                    .args = one, .nargs = 2, .timeout_ms = 300}));
    /* one with time to spare: it runs after the replica resumes */
    ASSERT_OK(sage_manager_call(&alive, m,
                                &(sage_request){.service = "testsvc", .method = "add",
                                                .args = one, .nargs = 2, .timeout_ms = 20000}));
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(sage_future_wait(fut[i], 5000));
        ASSERT_ERR(sage_future_result(NULL, fut[i]), SAGE_ETIMEDOUT);
        sage_future_free(fut[i]);
    }
    /* frozen past their timeout and the clock skew allowed (1 s): the time
     * passing is the point here */
    usleep(1500 * 1000);
    kill(pid, SIGCONT);
    ASSERT_OK(sage_future_wait(alive, 10000));
    ASSERT_OK(sage_future_result(NULL, alive));
    sage_future_free(alive);
    ASSERT_EQ(served(m), 1); /* the five expired ones never ran */
    sage_manager_free(m);
    kill(pid, SIGKILL);
    th_wait_child(pid, 5000);
    natsfix_stop(&f);
}

static const struct th_case cases[] = {
    {"frozen_replica_skips_expired", t_frozen_replica_skips_expired, 60},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
