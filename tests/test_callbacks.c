/*
 * test_callbacks.c - where callbacks run: on the manager's completion
 * thread ("sage-complete"), whatever completed the future - an answer (in
 * process, direct, over shm, over NATS), a timeout, a cancel, a service
 * that died, a lost connection, the manager closing, or a callback added
 * after the end - never on the thread that called, cancelled or added it;
 * or, inside sage_manager_poll, on the polling thread, one at a time with
 * the completion thread's.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "natsfix_th.h"
#include "sage/manager.h"
#include "sage/task.h"
#include "testsvc.h"

#define MAX_SEEN 512

/* What the callbacks saw, one record each, in the order they ran. */
struct seen {
    _Atomic int n;
    pid_t tid[MAX_SEEN];
    char comm[MAX_SEEN][16];
    sage_err err[MAX_SEEN];
    int tag[MAX_SEEN];
};

struct cb_arg {
    struct seen *s;
    int tag;
};

static pid_t tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

static void thread_comm(char out[16])
{
    FILE *f = fopen("/proc/thread-self/comm", "r");

    out[0] = '\0';
    if (f != NULL) {
        if (fgets(out, 16, f) != NULL)
            out[strcspn(out, "\n")] = '\0';
        fclose(f);
    }
}

static void record(void *arg, sage_future *f)
{
    struct cb_arg *a = arg;
    int i = atomic_load(&a->s->n);

    ASSERT_TRUE(i < MAX_SEEN);
    a->s->tid[i] = tid();
    thread_comm(a->s->comm[i]);
    a->s->err[i] = sage_future_result(NULL, f);
    a->s->tag[i] = a->tag;
    atomic_store(&a->s->n, i + 1); /* one completion thread: no race on i */
}

/* expect waits for n records, then checks each ran on the same thread, a
 * completion thread, not the caller's, with error want (or any if -1) */
static void expect(struct seen *s, int n, sage_err want, const char *path)
{
    double end = th_now_ms() + 10000;

    while (atomic_load(&s->n) < n && th_now_ms() < end)
        usleep(1000);
    if (atomic_load(&s->n) != n)
        th_fail(__FILE__, __LINE__, "%s: %d callbacks ran, want %d", path, atomic_load(&s->n), n);
    for (int i = 0; i < n; i++) {
        if (strcmp(s->comm[i], "sage-complete") != 0 || s->tid[i] == tid() ||
            s->tid[i] != s->tid[0])
            th_fail(__FILE__, __LINE__, "%s: callback %d ran on thread %d \"%s\" (caller %d)", path,
                    i, (int)s->tid[i], s->comm[i], (int)tid());
        if ((int)want >= 0 && s->err[i] != want)
            th_fail(__FILE__, __LINE__, "%s: callback %d saw %s, want %s", path, i,
                    sage_errname(s->err[i]), sage_errname(want));
    }
}

/* ------------------------------------------------------------ the rigs */

struct local {
    sage_env *env;
    sage_task *task;
    sage_manager *m;
};

static void local_up(struct local *l, int64_t timeout_ms)
{
    sage_manager_opts mo;

    ASSERT_OK(sage_env_new(&l->env, th_prefix()));
    ASSERT_OK(sage_task_new(&l->task, &testsvc, NULL));
    ASSERT_OK(sage_task_start(l->task));
    ASSERT_OK(sage_env_register(l->env, NULL, l->task));
    sage_manager_opts_init(&mo);
    mo.env = l->env;
    mo.timeout_ms = timeout_ms;
    ASSERT_OK(sage_manager_new(&l->m, &mo));
}

static void local_down(struct local *l)
{
    sage_manager_free(l->m);
    sage_env_unregister(l->env, "testsvc");
    sage_task_free(l->task);
    sage_env_free(l->env);
}

static sage_future *call(sage_manager *m, const char *method, const sage_value *args, size_t n,
                         int64_t timeout_ms)
{
    sage_future *f;

    ASSERT_OK(sage_manager_call(&f, m,
                                &(sage_request){.service = "testsvc", .method = method,
                                                .args = args, .nargs = n,
                                                .timeout_ms = timeout_ms}));
    return f;
}

static sage_manager *shm_manager(void)
{
    sage_manager_opts mo;
    sage_manager *m;

    sage_manager_opts_init(&mo);
    mo.ns = th_prefix();
    mo.timeout_ms = 10000;
    ASSERT_OK(sage_manager_new(&m, &mo));
    return m;
}

/* ------------------------------------------------------------ the cases */

/* answers in process: through the queue (sleep) and direct (add, short:
 * after a first call it runs on the caller's thread, its callback not) */
static void t_answer_local(void)
{
    static struct seen s;
    struct cb_arg a[64];
    sage_future *f[64];
    struct local l;
    sage_value one[1] = {sage_int(1)}, two[2] = {sage_int(1), sage_int(2)};

    local_up(&l, 10000);
    for (int i = 0; i < 64; i++) {
        a[i] = (struct cb_arg){&s, i};
        f[i] = i % 8 == 0 ? call(l.m, "sleep", one, 1, 0) : call(l.m, "add", two, 2, 0);
        ASSERT_OK(sage_future_on_done(f[i], record, &a[i]));
    }
    expect(&s, 64, SAGE_OK, "local answers");
    for (int i = 0; i < 64; i++)
        sage_future_free(f[i]);
    local_down(&l);
}

static void t_answer_shm(void)
{
    static struct seen s;
    struct cb_arg a[64];
    sage_future *f[64];
    int host = th_serve_child(&testsvc, SAGE_TRANSPORT_SHM, NULL);
    sage_manager *m = shm_manager();
    sage_value two[2] = {sage_int(1), sage_int(2)};

    for (int i = 0; i < 64; i++) {
        a[i] = (struct cb_arg){&s, i};
        f[i] = call(m, "add", two, 2, 0);
        ASSERT_OK(sage_future_on_done(f[i], record, &a[i]));
    }
    expect(&s, 64, SAGE_OK, "shm answers");
    for (int i = 0; i < 64; i++)
        sage_future_free(f[i]);
    sage_manager_free(m);
    kill(host, SIGKILL);
    th_wait_child(host, 5000);
}

static void t_timeout(void)
{
    static struct seen s;
    struct cb_arg a = {&s, 0};
    struct local l;
    sage_value ms[1] = {sage_int(400)};
    sage_future *f;

    local_up(&l, 10000);
    f = call(l.m, "sleep", ms, 1, 30);
    ASSERT_OK(sage_future_on_done(f, record, &a));
    expect(&s, 1, SAGE_ETIMEDOUT, "timeout");
    sage_future_free(f);
    local_down(&l);
}

static void t_cancel(void)
{
    static struct seen s;
    struct cb_arg a = {&s, 0};
    struct local l;
    sage_value ms[1] = {sage_int(300)};
    sage_future *f;

    local_up(&l, 10000);
    f = call(l.m, "sleep", ms, 1, 0);
    ASSERT_OK(sage_future_on_done(f, record, &a));
    ASSERT_OK(sage_future_cancel(f)); /* its callback does not run here */
    ASSERT_TRUE(atomic_load(&s.n) == 0 || s.tid[0] != tid());
    expect(&s, 1, SAGE_ECANCELED, "cancel");
    sage_future_free(f);
    local_down(&l);
}

static void t_dead_service(void)
{
    static struct seen s;
    struct cb_arg a[4];
    sage_future *f[4];
    int host = th_serve_child(&testsvc, SAGE_TRANSPORT_SHM, NULL);
    sage_manager *m = shm_manager();
    sage_value ms[1] = {sage_int(20000)};

    for (int i = 0; i < 4; i++) {
        a[i] = (struct cb_arg){&s, i};
        f[i] = call(m, "sleep", ms, 1, 0);
        ASSERT_OK(sage_future_on_done(f[i], record, &a[i]));
    }
    kill(host, SIGKILL); /* found by the death watch's thread: callbacks not there */
    th_wait_child(host, 5000);
    expect(&s, 4, SAGE_EUNAVAILABLE, "dead service");
    for (int i = 0; i < 4; i++)
        sage_future_free(f[i]);
    sage_manager_free(m);
}

/* pending calls when the manager closes: their callbacks run before
 * sage_manager_free returns, on the completion thread */
static void t_manager_close(void)
{
    static struct seen s;
    struct cb_arg a[4];
    sage_future *f[4];
    struct local l;
    sage_value ms[1] = {sage_int(500)};

    local_up(&l, 10000);
    for (int i = 0; i < 4; i++) {
        a[i] = (struct cb_arg){&s, i};
        f[i] = call(l.m, "sleep", ms, 1, 0);
        ASSERT_OK(sage_future_on_done(f[i], record, &a[i]));
    }
    sage_manager_free(l.m); /* the futures go with it */
    ASSERT_EQ(atomic_load(&s.n), 4);
    expect(&s, 4, -1, "manager close");
    l.m = NULL;
    local_down(&l);
}

/* callbacks added after the end, and several on one future, in order */
static void t_late_and_several(void)
{
    static struct seen s;
    struct cb_arg a[3] = {{&s, 0}, {&s, 1}, {&s, 2}};
    struct local l;
    sage_value two[2] = {sage_int(1), sage_int(2)};
    sage_future *f;

    local_up(&l, 10000);
    f = call(l.m, "add", two, 2, 0);
    ASSERT_OK(sage_future_on_done(f, record, &a[0]));
    ASSERT_OK(sage_future_wait(f, 5000));
    ASSERT_OK(sage_future_on_done(f, record, &a[1])); /* done already: queued, not run here */
    ASSERT_OK(sage_future_on_done(f, record, &a[2]));
    expect(&s, 3, SAGE_OK, "late and several");
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(s.tag[i], i);
    sage_future_free(f);
    local_down(&l);
}

/* answers over NATS arrive on the client library's threads, and a lost
 * connection is found there too: the callbacks run on neither */
static void t_nats_answer_and_lost(void)
{
    static struct seen s;
    struct cb_arg a[17];
    sage_future *f[17];
    struct natsfix nf;
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_manager *m;
    sage_value two[2] = {sage_int(1), sage_int(2)}, ms[1] = {sage_int(20000)};
    int host, ready[2];
    char c;

    natsfix_start(&nf, 1, NULL);
    ASSERT_EQ(pipe(ready), 0);
    host = fork();
    if (host == 0) {
        sage_task_opts o;
        sage_task *t;
        sage_nats_conf hnc;
        sage_cluster_opts hco = {0};

        natsfix_conf(&nf, &hnc, 0);
        hco.nats = &hnc;
        sage_task_opts_init(&o);
        o.transport = SAGE_TRANSPORT_NATS;
        o.ns = th_prefix();
        o.cluster = &hco;
        ASSERT_OK(sage_task_new(&t, &testsvc, &o));
        ASSERT_OK(sage_task_start(t));
        ASSERT_EQ(write(ready[1], "R", 1), 1);
        for (;;)
            pause();
    }
    ASSERT_EQ(read(ready[0], &c, 1), 1);
    m = natsfix_manager(&nf, 0, 10, &nc, &co);
    for (int i = 0; i < 16; i++) {
        a[i] = (struct cb_arg){&s, i};
        f[i] = call(m, "add", two, 2, 0);
        ASSERT_OK(sage_future_on_done(f[i], record, &a[i]));
    }
    expect(&s, 16, SAGE_OK, "nats answers");
    a[16] = (struct cb_arg){&s, 16};
    f[16] = call(m, "sleep", ms, 1, 0);
    ASSERT_OK(sage_future_on_done(f[16], record, &a[16]));
    natsfix_kill(&nf, 0); /* whether or not the request got there, it is lost */
    expect(&s, 17, -1, "nats connection lost");
    ASSERT_TRUE(s.err[16] != SAGE_OK && s.err[16] != SAGE_ETIMEDOUT);
    for (int i = 0; i < 17; i++)
        sage_future_free(f[i]);
    sage_manager_free(m);
    kill(host, SIGKILL);
    th_wait_child(host, 5000);
    natsfix_stop(&nf);
}

/* ------------------------------------------------------------ polling */

/* a callback that checks no other callback of its manager runs meanwhile */
struct alone {
    _Atomic int inside, ran, overlaps;
    _Atomic pid_t last_tid;
};

static void alone_cb(void *arg, sage_future *f)
{
    struct alone *a = arg;

    (void)f;
    if (atomic_fetch_add(&a->inside, 1) != 0)
        atomic_fetch_add(&a->overlaps, 1);
    usleep(50);
    atomic_store(&a->last_tid, tid());
    atomic_fetch_sub(&a->inside, 1);
    atomic_fetch_add(&a->ran, 1);
}

/* a poller takes the answer itself: its callback has run, on the polling
 * thread, when the poll that took it returns */
static void t_poll_runs_callbacks_here(void)
{
    static struct seen s;
    struct cb_arg a = {&s, 0};
    int host = th_serve_child(&testsvc, SAGE_TRANSPORT_SHM, NULL);
    sage_manager *m = shm_manager();
    sage_value ms[1] = {sage_int(50)};
    double end = th_now_ms() + 10000;
    sage_future *f;
    size_t n = 0;

    /* the completion thread steps aside once a poll has taken the inbox */
    f = call(m, "sleep", ms, 1, 0);
    ASSERT_OK(sage_future_on_done(f, record, &a));
    while (atomic_load(&s.n) == 0 && th_now_ms() < end) {
        ASSERT_OK(sage_manager_poll(&n, m, 100));
        if (n > 0 && sage_future_done(f))
            ASSERT_EQ(atomic_load(&s.n), 1); /* before the poll returned */
    }
    ASSERT_EQ(atomic_load(&s.n), 1);
    ASSERT_EQ((long)s.tid[0], (long)tid());
    ASSERT_EQ(s.err[0], SAGE_OK);
    sage_future_free(f);
    sage_manager_free(m);
    kill(host, SIGKILL);
    th_wait_child(host, 5000);
}

/* a poll finds nothing: it returns at once, or after its timeout (sooner
 * while the completion thread still has the inbox: it steps aside) */
static void t_poll_nothing(void)
{
    sage_manager *m = shm_manager();
    size_t n = 99;
    double t0 = th_now_ms(), took = 0;

    /* (a poll that finds the completion thread draining pokes it with an
     * empty record, which the next poll may take: n counts it) */
    ASSERT_OK(sage_manager_poll(&n, m, 0));
    ASSERT_TRUE(n <= 1);
    ASSERT_TRUE(th_now_ms() - t0 < 1000);
    for (int i = 0; i < 50 && (took < 25 || n != 0); i++) {
        t0 = th_now_ms();
        ASSERT_OK(sage_manager_poll(&n, m, 30));
        took = th_now_ms() - t0;
        ASSERT_TRUE(n <= 1);
        ASSERT_TRUE(took < 1000);
    }
    ASSERT_TRUE(took >= 25);
    ASSERT_EQ((long)n, 0L);
    ASSERT_OK(sage_manager_poll(NULL, m, 0));
    ASSERT_EQ(sage_manager_poll(&n, NULL, 0), SAGE_EINVAL);
    sage_manager_free(m);
}

struct poller {
    sage_manager *m;
    _Atomic int stop;
};

static void *poll_loop(void *arg)
{
    struct poller *p = arg;

    while (!atomic_load(&p->stop))
        sage_manager_poll(NULL, p->m, 1);
    return NULL;
}

/* threads polling, a thread calling sync, answers, timeouts (the completion
 * thread's) and cancels at once: every callback runs once, never two at a
 * time, and every call completes */
static void t_poll_with_others(void)
{
    static struct alone al;
    enum { N = 400 };
    int host = th_serve_child(&testsvc, SAGE_TRANSPORT_SHM, NULL);
    sage_manager *m = shm_manager();
    struct poller p = {m, 0};
    pthread_t th[2];
    sage_future *f[N];
    sage_value two[2] = {sage_int(1), sage_int(2)}, ms[1] = {sage_int(200)};
    double end;

    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, poll_loop, &p), 0);
    for (int i = 0; i < N; i++) {
        if (i % 50 == 0)
            f[i] = call(m, "sleep", ms, 1, 20); /* times out */
        else
            f[i] = call(m, "add", two, 2, 0);
        ASSERT_OK(sage_future_on_done(f[i], alone_cb, &al));
        if (i % 40 == 1)
            sage_future_cancel(f[i]);
        if (i % 10 == 0) {
            sage_value res;

            ASSERT_OK(sage_manager_call_sync(&res, m,
                                             &(sage_request){.service = "testsvc",
                                                             .method = "add", .args = two,
                                                             .nargs = 2},
                                             NULL));
        }
    }
    end = th_now_ms() + 10000;
    while (atomic_load(&al.ran) < N && th_now_ms() < end)
        usleep(1000);
    atomic_store(&p.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ(atomic_load(&al.ran), N);
    ASSERT_EQ(atomic_load(&al.overlaps), 0);
    for (int i = 0; i < N; i++) {
        ASSERT_TRUE(sage_future_done(f[i]));
        sage_future_free(f[i]);
    }
    sage_manager_free(m);
    kill(host, SIGKILL);
    th_wait_child(host, 5000);
}

static const struct th_case cases[] = {
    {"answer_local", t_answer_local, 30},
    {"answer_shm", t_answer_shm, 30},
    {"timeout", t_timeout, 30},
    {"cancel", t_cancel, 30},
    {"dead_service", t_dead_service, 30},
    {"manager_close", t_manager_close, 30},
    {"late_and_several", t_late_and_several, 30},
    {"nats_answer_and_lost", t_nats_answer_and_lost, 60},
    {"poll_runs_callbacks_here", t_poll_runs_callbacks_here, 30},
    {"poll_nothing", t_poll_nothing, 10},
    {"poll_with_others", t_poll_with_others, 60},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
