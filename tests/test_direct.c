/*
 * test_direct.c - direct calls: a synchronous in-process caller runs a
 * short method on its own thread, within the task's rules (max_workers,
 * middleware, figures, stop).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"
#include "sage/manager.h"
#include "sage/task.h"

/* Under a sanitizer every method runs several times slower, near the
 * bound of what counts as short: direct calls come and go there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static pid_t tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* where(ms) sleeps ms (0: not at all) and returns the thread it ran on */
static sage_err where(void *state, sage_call *c)
{
    int64_t ms = 0;

    (void)state;
    if (sage_call_unpack(c, "[I]", &ms) != SAGE_OK)
        return SAGE_EBADARGS;
    if (ms > 0)
        usleep((useconds_t)ms * 1000); /* a method that is slow this time */
    return sage_call_resultf(c, "I", (int64_t)tid());
}

static sage_err echo(void *state, sage_call *c)
{
    (void)state;
    return sage_call_result(c, sage_call_args(c));
}

static const sage_method methods[] = {{"where", where, 0}, {"echo", echo, 0}, {0}};
static const sage_service svc = {.abi = SAGE_SERVICE_ABI, .name = "d", .methods = methods};

struct rig {
    sage_env *env;
    sage_task *task;
    sage_manager *m;
};

static void rig_up(struct rig *r, uint32_t max_workers, const sage_middleware *mw)
{
    sage_task_opts o;
    sage_manager_opts mo;

    sage_task_opts_init(&o);
    o.max_workers = max_workers;
    o.middleware = mw ? &mw : NULL;
    o.nmiddleware = mw ? 1 : 0;
    ASSERT_OK(sage_env_new(&r->env, th_prefix()));
    ASSERT_OK(sage_task_new(&r->task, &svc, &o));
    ASSERT_OK(sage_task_start(r->task));
    ASSERT_OK(sage_env_register(r->env, NULL, r->task));
    sage_manager_opts_init(&mo);
    mo.env = r->env;
    mo.timeout_ms = 10000;
    ASSERT_OK(sage_manager_new(&r->m, &mo));
}

static void rig_down(struct rig *r)
{
    sage_manager_free(r->m);
    sage_env_unregister(r->env, "d");
    sage_task_free(r->task);
    sage_env_free(r->env);
}

/* where_sync calls where(ms) and returns the thread it ran on */
static pid_t where_sync(sage_manager *m, int64_t ms)
{
    sage_arena *a;
    sage_value res;
    pid_t t;

    ASSERT_OK(sage_arena_new(&a, 0));
    ASSERT_OK(sage_manager_callf(&res, m, a, "d", "where", "[I]", ms));
    t = (pid_t)res.as.i;
    sage_arena_free(a);
    return t;
}

/* warm_up calls where(0) until it runs on this thread (its typical run
 * time, an average, takes a few calls to settle after a cold first one);
 * fails if it never does */
static void warm_up(sage_manager *m)
{
    for (int i = 0; i < 200; i++)
        if (where_sync(m, 0) == tid())
            return;
    if (SANITIZED)
        th_skip("under a sanitizer the method never ran short enough to be called directly");
    th_fail(__FILE__, __LINE__, "a short method never ran on its caller's thread");
}

/* a short method runs on the caller's thread once it is known to be short;
 * a slow one never does */
static void t_short_runs_on_caller(void)
{
    struct rig r;
    sage_status st, st2;

    rig_up(&r, 4, NULL);
    warm_up(r.m);
    ASSERT_OK(sage_task_status(&st, r.task));
    {
        int here = 0;

        int calls = 0;

        /* every one; under a sanitizer (it sits near the bound, and a
         * loaded machine pushes it over) some, within 200 */
        for (; calls < 10 || (SANITIZED && here == 0 && calls < 200); calls++)
            here += where_sync(r.m, 0) == tid();
        ASSERT_TRUE(SANITIZED ? here > 0 : here == 10);
        st.requests += (uint64_t)calls - 10; /* the 13 below count from here */
    }
    where_sync(r.m, 30); /* still known short: may run here, however long */
    for (int i = 0; i < 2; i++)
        ASSERT_NE(where_sync(r.m, 30), tid()); /* now known not to be short */
    /* every call counts in the figures, direct or not */
    ASSERT_OK(sage_task_status(&st2, r.task));
    ASSERT_EQ(st2.requests, st.requests + 13);
    rig_down(&r);
}

struct slow_arg {
    sage_manager *m;
    int64_t ms;
    pid_t ran_on;
    sage_err err;
};

static void *slow_call(void *p)
{
    struct slow_arg *s = p;
    sage_arena *a;
    sage_value res;

    ASSERT_OK(sage_arena_new(&a, 0));
    s->err = sage_manager_callf(&res, s->m, a, "d", "where", "[I]", s->ms);
    s->ran_on = s->err == SAGE_OK ? (pid_t)res.as.i : 0;
    sage_arena_free(a);
    return NULL;
}

/* wait_running waits until the task runs n calls */
static void wait_running(sage_task *t, uint64_t n)
{
    double end = th_now_ms() + 5000;
    sage_status st;

    do {
        ASSERT_OK(sage_task_status(&st, t));
        if (st.in_flight >= n)
            return;
        usleep(1000);
    } while (th_now_ms() < end);
    th_fail(__FILE__, __LINE__, "never %llu calls in flight", (unsigned long long)n);
}

/* max_workers bounds direct calls too: with its one slot taken, a short
 * call waits its turn in the queue */
static void t_max_workers_bounds_direct(void)
{
    struct rig r;
    pthread_t th;
    struct slow_arg s;
    double t0;
    pid_t ran;

    rig_up(&r, 1, NULL);
    warm_up(r.m);
    s = (struct slow_arg){r.m, 300, 0, SAGE_OK};
    pthread_create(&th, NULL, slow_call, &s);
    wait_running(r.task, 1);
    t0 = th_now_ms();
    ran = where_sync(r.m, 0);
    ASSERT_TRUE(th_now_ms() - t0 >= 100); /* it waited for the slot */
    ASSERT_NE(ran, tid());
    pthread_join(th, NULL);
    ASSERT_OK(s.err);
    rig_down(&r);
}

/* a stop waits for the direct call running on its caller's thread, which
 * gets its answer; calls after the stop are refused */
static void t_stop_waits_for_direct(void)
{
    struct rig r;
    pthread_t th;
    struct slow_arg s;
    double t0;

    rig_up(&r, 4, NULL);
    warm_up(r.m); /* known short: the next runs direct, however long */
    s = (struct slow_arg){r.m, 300, 0, SAGE_OK};
    pthread_create(&th, NULL, slow_call, &s);
    wait_running(r.task, 1);
    t0 = th_now_ms();
    ASSERT_OK(sage_task_stop(r.task));
    ASSERT_TRUE(th_now_ms() - t0 >= 150);
    pthread_join(th, NULL);
    ASSERT_OK(s.err);
    ASSERT_NE(s.ran_on, 0);
    ASSERT_ERR(sage_manager_callf(NULL, r.m, NULL, "d", "where", "[I]", (int64_t)0),
               SAGE_EUNAVAILABLE);
    rig_down(&r);
}

static sage_err count_before(void *arg, sage_call *c)
{
    (void)c;
    atomic_fetch_add((_Atomic int *)arg, 1);
    return SAGE_OK;
}

/* middleware runs around direct calls as around any other */
static void t_middleware_on_direct(void)
{
    static _Atomic int seen;
    sage_middleware mw = {"count", count_before, NULL, (void *)&seen};
    struct rig r;

    rig_up(&r, 4, &mw);
    warm_up(r.m);
    atomic_store(&seen, 0);
    {
        int here = 0;

        for (int i = 0; i < 20; i++)
            here += where_sync(r.m, 0) == tid();
        ASSERT_TRUE(here > 0);
    }
    ASSERT_EQ(atomic_load(&seen), 20); /* direct or not, every call went through it */
    rig_down(&r);
}

/* a direct call's result is the caller's: copied into its arena, it
 * outlives the task */
static void t_result_outlives_task(void)
{
    struct rig r;
    sage_arena *a;
    sage_value res;
    const char *s;

    rig_up(&r, 4, NULL);
    ASSERT_OK(sage_arena_new(&a, 0));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(sage_manager_callf(&res, r.m, a, "d", "echo", "[s]", "warm"));
    ASSERT_OK(sage_manager_callf(&res, r.m, a, "d", "echo", "[s]", "a string to keep"));
    rig_down(&r);
    ASSERT_EQ(res.type, SAGE_ARRAY);
    ASSERT_OK(sage_value_get_str(&s, NULL, &res.as.array.items[0]));
    ASSERT_STREQ(s, "a string to keep");
    sage_arena_free(a);
}

static const struct th_case cases[] = {
    {"short_runs_on_caller", t_short_runs_on_caller, 30},
    {"max_workers_bounds_direct", t_max_workers_bounds_direct, 30},
    {"stop_waits_for_direct", t_stop_waits_for_direct, 30},
    {"middleware_on_direct", t_middleware_on_direct, 30},
    {"result_outlives_task", t_result_outlives_task, 30},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
