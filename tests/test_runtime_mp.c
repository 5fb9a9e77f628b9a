/* test_runtime_mp.c - services in one process, callers in others (shm). */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "kv.h"
#include "opts.h"
#include "transport/names.h"
#include "transport/shm_reg.h"
#include "sage/manager.h"
#include "sage/queue.h"
#include "testsvc.h"
#include "wire/wire.h"

/* A process hosting one shm service until its control pipe closes. The
 * case's unique prefix is the namespace, so the harness cleans up after it. */
struct host {
    int pid;
    int ctl; /* write end: closing it stops the host */
};

static struct host spawn_host(const sage_service *svc, const char *name, uint32_t max_workers)
{
    int ready[2], ctl[2];
    struct host h;
    char c;

    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(ctl), 0);
    h.pid = fork();
    if (h.pid == 0) {
        /* max_workers 0: the default */
        sage_task_opts o = TASK_OPTS(.transport = SAGE_TRANSPORT_SHM, .ns = th_prefix(),
                                     .name = name, .max_workers = max_workers);
        sage_task *t;
        sage_err r;

        close(ready[0]);
        close(ctl[1]);
        ASSERT_OK(sage_task_new(&t, svc, &o));
        r = sage_task_start(t);
        c = r == SAGE_OK ? 'R' : 'E';
        ASSERT_EQ(write(ready[1], &c, 1), 1);
        if (r != SAGE_OK)
            _exit(2);
        while (read(ctl[0], &c, 1) > 0) /* until the parent closes it */
            ;
        sage_task_free(t);
        _exit(0);
    }
    close(ready[1]);
    close(ctl[0]);
    ASSERT_EQ(read(ready[0], &c, 1), 1);
    ASSERT_EQ(c, 'R');
    close(ready[0]);
    h.ctl = ctl[1];
    return h;
}

static void stop_host(struct host h)
{
    close(h.ctl);
    ASSERT_EQ(th_wait_child(h.pid, 10000), 0);
}

static sage_manager *manager(double timeout)
{
    sage_manager_opts o = MANAGER_OPTS(.ns = th_prefix(), .timeout_ms = (int64_t)(timeout * 1000));
    sage_manager *m;

    ASSERT_OK(sage_manager_new(&m, &o));
    return m;
}

/* manager_stats reads m's figures */
static sage_manager_stats manager_stats(sage_manager *m)
{
    sage_manager_stats ms;

    ASSERT_OK(sage_manager_stats_read(&ms, m));
    return ms;
}

/* host_status reads the figures of service name of this case's namespace */
static sage_status host_status(const char *name)
{
    sage_status st;

    ASSERT_OK(sage_host_status(&st, th_prefix(), name));
    return st;
}

struct lister {
    int found, alive;
    char name[80];
};

static void on_entry(void *arg, const sage_host_entry *e)
{
    struct lister *l = arg;

    l->found++;
    l->alive += e->owner_alive;
    snprintf(l->name, sizeof l->name, "%s", e->name);
}

/* ------------------------------------------------------------------ cases */

static void t_call_across_processes(void)
{
    struct host h = spawn_host(&sage_example_kv, "kv", 0);
    sage_manager *m = manager(5);
    sage_arena *a;
    sage_value res;
    sage_endpoint ep;
    sage_status st;
    struct lister l = {0, 0, ""};
    sage_future *f;
    sage_value args[2] = {sage_str("x"), sage_int(7)};

    ASSERT_OK(sage_arena_new(&a, 0));
    ASSERT_OK(sage_manager_callf(&res, m, a, "kv", "put", "[s i]", "answer", 42));
    ASSERT_OK(sage_manager_callf(&res, m, a, "kv", "get", "[s]", "answer"));
    ASSERT_EQ(res.as.i, 42);
    ASSERT_OK(sage_manager_call(&f, m, &(sage_request){.service = "kv", .method = "put", .args = args, .nargs = 2}));
    ASSERT_OK(sage_future_wait(f, 5000));
    ASSERT_OK(sage_future_result(NULL, f));
    sage_future_free(f);
    ASSERT_OK(sage_manager_lookup(&ep, m, "kv"));
    ASSERT_EQ(ep.transport, SAGE_TRANSPORT_SHM);
    ASSERT_EQ(ep.pid, h.pid);
    ASSERT_TRUE(strstr(ep.address, "kv.req") != NULL);
    /* the host registry lists it, and its status reads from here */
    ASSERT_OK(sage_host_list(th_prefix(), 0, on_entry, &l));
    ASSERT_EQ(l.found, 1);
    ASSERT_EQ(l.alive, 1);
    ASSERT_STREQ(l.name, "kv");
    ASSERT_OK(sage_host_status(&st, th_prefix(), "kv"));
    ASSERT_EQ(st.requests, 3);
    ASSERT_EQ(st.state, SAGE_STATE_RUNNING);
    ASSERT_EQ(st.pid, h.pid);
    ASSERT_EQ(st.owner_alive, 1);
    ASSERT_EQ(st.transport, SAGE_TRANSPORT_SHM);
    ASSERT_TRUE(st.heartbeat_ns > 0);
    ASSERT_ERR(sage_host_status(&st, th_prefix(), "nope"), SAGE_ENOSERVICE);
    sage_arena_free(a);
    sage_manager_free(m);
    stop_host(h);
    /* after a clean stop it is gone */
    l.found = 0;
    ASSERT_OK(sage_host_list(th_prefix(), 0, on_entry, &l));
    ASSERT_EQ(l.found, 0);
}

static _Atomic int completions;

static void on_add(void *arg, sage_future *f)
{
    const sage_value *v;

    ASSERT_OK(sage_future_result(&v, f));
    ASSERT_EQ(v->as.i, (int64_t)(intptr_t)arg + 1);
    atomic_fetch_add(&completions, 1);
    sage_future_free(f);
}

/* 4 caller processes keep 25,000 async calls each outstanding */
static void t_async_100k(void)
{
    enum { PROCS = 4, PER = 25000 };
    struct host h = spawn_host(&testsvc, "testsvc", 0);
    int pids[PROCS];

    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            sage_manager *m = manager(60);
            sage_manager_stats ms;

            for (int i = 0; i < PER; i++) {
                sage_value args[2] = {sage_int(p * PER + i), sage_int(1)};
                sage_future *f;

                ASSERT_OK(sage_manager_call(&f, m, &(sage_request){.service = "testsvc", .method = "add", .args = args, .nargs = 2}));
                ASSERT_OK(sage_future_on_done(f, on_add, (void *)(intptr_t)(p * PER + i)));
            }
            ASSERT_WAIT(atomic_load(&completions) >= PER, 60000);
            ASSERT_EQ(atomic_load(&completions), PER);
            ASSERT_OK(sage_manager_stats_read(&ms, m));
            ASSERT_EQ(ms.completed, PER);
            ASSERT_EQ(ms.errors, 0);
            ASSERT_EQ(ms.late, 0);
            ASSERT_EQ(ms.pending, 0);
            sage_manager_free(m);
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++)
        ASSERT_EQ(th_wait_child(pids[p], 120000), 0);
    {
        sage_status st;

        ASSERT_OK(sage_host_status(&st, th_prefix(), "testsvc"));
        ASSERT_EQ(st.requests, PROCS * PER);
        ASSERT_EQ(st.errors, 0);
    }
    stop_host(h);
}

struct blocked {
    sage_manager *m;
    sage_err got;
    double took_ms;
};

static void *sync_sleeper(void *p)
{
    struct blocked *b = p;
    sage_value args[1] = {sage_int(20000)};
    double t0 = th_now_ms();

    b->got = sage_manager_call_sync(NULL, b->m, &(sage_request){.service = "testsvc", .method = "sleep", .args = args, .nargs = 1}, NULL);
    b->took_ms = th_now_ms() - t0;
    return NULL;
}

/* the host process dies mid-call: every pending call fails fast */
static void t_host_killed_during_calls(void)
{
    struct host h = spawn_host(&testsvc, "testsvc", 4);
    sage_manager *m = manager(30);
    sage_future *f[50];
    pthread_t th;
    struct blocked b = {m, SAGE_OK, 0};
    sage_value args[1] = {sage_int(20000)};
    double t0;

    for (int i = 0; i < 50; i++)
        ASSERT_OK(sage_manager_call(&f[i], m, &(sage_request){.service = "testsvc", .method = "sleep", .args = args, .nargs = 1}));
    pthread_create(&th, NULL, sync_sleeper, &b);
    /* mid-call: all 51 sent, 4 of them running, the rest queued */
    ASSERT_WAIT_EQ(manager_stats(m).pending, 51, 5000);
    ASSERT_WAIT_EQ(host_status("testsvc").in_flight, 4, 5000);
    kill(h.pid, SIGKILL);
    t0 = th_now_ms();
    for (int i = 0; i < 50; i++) {
        ASSERT_OK(sage_future_wait(f[i], 5000));
        ASSERT_ERR(sage_future_result(NULL, f[i]), SAGE_EUNAVAILABLE);
        sage_future_free(f[i]);
    }
    ASSERT_LE(th_now_ms() - t0, 1000);
    pthread_join(th, NULL);
    ASSERT_EQ(b.got, SAGE_EUNAVAILABLE);
    ASSERT_LE(b.took_ms, 1500);
    /* a new call fails at once too: the registry says its owner is dead */
    t0 = th_now_ms();
    ASSERT_ERR(sage_manager_call_sync(NULL, m, &(sage_request){.service = "testsvc", .method = "count"}, NULL),
               SAGE_EUNAVAILABLE);
    ASSERT_LE(th_now_ms() - t0, 1000);
    ASSERT_KILLED(th_wait_child(h.pid, 5000), SIGKILL);
    close(h.ctl);
    /* its status says so, and its uptime stopped */
    {
        sage_status st, st2;

        ASSERT_OK(sage_host_status(&st, th_prefix(), "testsvc"));
        ASSERT_EQ(st.state, SAGE_STATE_FAILED);
        ASSERT_EQ(st.owner_alive, 0);
        ASSERT_TRUE(st.uptime_s > 0);
        th_sleep_ms(20); /* nothing to wait for: time a running uptime would count */
        ASSERT_OK(sage_host_status(&st2, th_prefix(), "testsvc"));
        ASSERT_TRUE(st2.uptime_s == st.uptime_s);
    }
    /* listing cleans the dead entry; then the service is simply unknown */
    {
        struct lister l = {0, 0, ""};

        ASSERT_OK(sage_host_list(th_prefix(), 1, on_entry, &l));
        ASSERT_EQ(l.found, 1);
        ASSERT_EQ(l.alive, 0);
        l.found = 0;
        ASSERT_OK(sage_host_list(th_prefix(), 0, on_entry, &l));
        ASSERT_EQ(l.found, 0);
    }
    ASSERT_ERR(sage_manager_call_sync(NULL, m, &(sage_request){.service = "testsvc", .method = "count"}, NULL),
               SAGE_ENOSERVICE);
    sage_manager_free(m);
}

/* kv_task makes (does not start) a shm kv task in this case's namespace */
static sage_task *kv_task(void)
{
    sage_task_opts o = TASK_OPTS(.transport = SAGE_TRANSPORT_SHM, .ns = th_prefix());
    sage_task *t;

    ASSERT_OK(sage_task_new(&t, &sage_example_kv, &o));
    return t;
}

/* one name, one live owner per host; a dead owner's entry is taken over */
static void t_name_taken_then_taken_over(void)
{
    struct host h = spawn_host(&sage_example_kv, "kv", 0);
    sage_task *t = kv_task();
    sage_manager *m;
    sage_arena *a;
    sage_value res;

    ASSERT_ERR(sage_task_start(t), SAGE_EEXIST);
    ASSERT_TRUE(strstr(sage_errdetail(), "already served by pid") != NULL);
    kill(h.pid, SIGKILL);
    ASSERT_KILLED(th_wait_child(h.pid, 5000), SIGKILL);
    close(h.ctl);
    ASSERT_OK(sage_task_start(t)); /* the stale entry and queue are replaced */
    m = manager(5);
    ASSERT_OK(sage_arena_new(&a, 0));
    ASSERT_OK(sage_manager_callf(&res, m, a, "kv", "size", "[]"));
    ASSERT_EQ(res.as.i, 0);
    sage_arena_free(a);
    sage_manager_free(m);
    sage_task_free(t);
}

/* an entry still being created (its owner known, not yet published) is
 * its creator's: a second start fails instead of taking it over */
static void t_name_being_created_is_taken(void)
{
    struct sage__reg *reg;
    sage_task *t = kv_task();

    ASSERT_OK(sage__reg_create(&reg, th_prefix(), "kv")); /* not published */
    ASSERT_ERR(sage_task_start(t), SAGE_EEXIST);
    ASSERT_TRUE(strstr(sage_errdetail(), "already served by pid") != NULL);
    sage__reg_destroy(reg, th_prefix(), "kv");
    ASSERT_OK(sage_task_start(t)); /* and once it is gone, the name is free */
    sage_task_free(t);
}

/* raw_client opens service's request queue (found through the registry)
 * and a response queue of our own, PREFIX.suffix, whose name goes to myq;
 * and starts a request for service.method answered there, with no args */
static void raw_client(const char *service, const char *method, const char *suffix,
                       sage_queue **rqp, sage_queue **minep, char *myq, size_t cap,
                       sage__req *req)
{
    char rq[SAGE__NAME_BUF];
    sage_queue_opts o = QUEUE_OPTS(.flags = SAGE_QUEUE_CREATE);

    sage__req_queue_name(rq, sizeof rq, th_prefix(), service);
    ASSERT_OK(sage_queue_open(rqp, rq, NULL));
    snprintf(myq, cap, "%s.%s", th_prefix(), suffix);
    ASSERT_OK(sage_queue_open(minep, myq, &o));
    memset(req, 0, sizeof *req);
    req->service = service;
    req->service_len = strlen(service);
    req->method = method;
    req->method_len = strlen(method);
    req->args = sage_array(NULL, 0);
    req->kwargs = sage_map(NULL, 0);
    req->reply_to = myq;
    req->reply_to_len = strlen(myq);
}

/* bytes that are not a request: answered when a reply-to can be read,
 * else dropped with a reason; never a crash */
static void t_malformed_requests(void)
{
    struct host h = spawn_host(&testsvc, "testsvc", 0);
    sage_queue *rq, *mine;
    sage__req req;
    sage__resp resp;
    sage_arena *a;
    uint8_t buf[512], got[512];
    size_t len, reqlen;
    sage_status st;
    char myq[128];

    raw_client("testsvc", "add", "myreplies", &rq, &mine, myq, sizeof myq, &req);
    ASSERT_OK(sage_arena_new(&a, 0));
    /* 1: garbage with no reply-to */
    ASSERT_OK(sage_queue_send(rq, "\xc1\xc1garbage", 9, 1000));
    /* 2: a valid envelope whose args is not an array, with a reply-to */
    req.id = 77;
    ASSERT_OK(sage__wire_req_encode(&req, buf, sizeof buf, &reqlen));
    /* [1, 0, 77, "testsvc", "add", [] ...]: args is at byte 16; make it 5 */
    ASSERT_EQ(buf[16], 0x90);
    buf[16] = 0x05;
    ASSERT_OK(sage_queue_send(rq, buf, reqlen, 1000));
    ASSERT_OK(sage_queue_recv(&len, mine, got, sizeof got, 5000));
    ASSERT_OK(sage__wire_resp_decode(got, len, a, &resp));
    ASSERT_EQ(resp.id, 77);
    ASSERT_EQ(resp.ok, 0);
    ASSERT_EQ(resp.err_code, SAGE_EPROTO);
    /* 3: truncated: the service still answers nothing it cannot, and lives */
    ASSERT_OK(sage_queue_send(rq, buf, reqlen / 2, 1000));
    /* 4: a valid request still works afterwards */
    req.args = sage_array((sage_value[]){sage_int(1), sage_int(2)}, 2);
    req.id = 78;
    ASSERT_OK(sage__wire_req_encode(&req, buf, sizeof buf, &len));
    ASSERT_OK(sage_queue_send(rq, buf, len, 1000));
    ASSERT_OK(sage_queue_recv(&len, mine, got, sizeof got, 5000));
    ASSERT_OK(sage__wire_resp_decode(got, len, a, &resp));
    ASSERT_EQ(resp.id, 78);
    ASSERT_EQ(resp.ok, 1);
    ASSERT_EQ(resp.result.as.i, 3);
    ASSERT_OK(sage_host_status(&st, th_prefix(), "testsvc"));
    ASSERT_EQ(st.malformed, 3);
    ASSERT_TRUE(strstr(st.last_drop, "malformed") != NULL);
    sage_arena_free(a);
    sage_queue_close(rq);
    sage_queue_close(mine);
    ASSERT_OK(sage_queue_unlink(myq));
    stop_host(h);
}

/* a service that asks for dedupe runs a repeated request id once and
 * answers the repeat with the same answer */
static sage_err dd_add(void *state, sage_call *c)
{
    return ts_add(state, c);
}

static void t_dedupe_repeats(void)
{
    static const sage_method methods[] = {{"add", dd_add, 0}, {"count", ts_count, 0}, {0}};
    static const sage_service dd = {.abi = SAGE_SERVICE_ABI, .name = "dd", .create = ts_create,
                                    .destroy = ts_destroy, .methods = methods, .dedupe = 64};
    struct host h = spawn_host(&dd, "dd", 0);
    sage_queue *rq, *mine;
    sage__req req;
    sage__resp resp;
    sage_arena *a;
    uint8_t buf[512], got[2][512];
    size_t len, glen[2];
    char myq[128];
    sage_manager *m;
    sage_value res;

    raw_client("dd", "add", "ddreplies", &rq, &mine, myq, sizeof myq, &req);
    ASSERT_OK(sage_arena_new(&a, 0));
    req.id = 4242;
    req.args = sage_array((sage_value[]){sage_int(40), sage_int(2)}, 2);
    ASSERT_OK(sage__wire_req_encode(&req, buf, sizeof buf, &len));
    for (int i = 0; i < 2; i++) { /* the same request twice: a retry */
        ASSERT_OK(sage_queue_send(rq, buf, len, 1000));
        ASSERT_OK(sage_queue_recv(&glen[i], mine, got[i], sizeof got[i], 5000));
    }
    ASSERT_EQ(glen[0], glen[1]);
    ASSERT_TRUE(memcmp(got[0], got[1], glen[0]) == 0);
    ASSERT_OK(sage__wire_resp_decode(got[1], glen[1], a, &resp));
    ASSERT_EQ(resp.id, 4242);
    ASSERT_EQ(resp.result.as.i, 42);
    /* the method ran once: count() says one call served before it */
    m = manager(5);
    ASSERT_OK(sage_manager_callf(&res, m, a, "dd", "count", "[]"));
    ASSERT_EQ(res.as.i, 1);
    /* another id runs again */
    req.id = 4243;
    ASSERT_OK(sage__wire_req_encode(&req, buf, sizeof buf, &len));
    ASSERT_OK(sage_queue_send(rq, buf, len, 1000));
    ASSERT_OK(sage_queue_recv(&glen[0], mine, got[0], sizeof got[0], 5000));
    ASSERT_OK(sage_manager_callf(&res, m, a, "dd", "count", "[]"));
    ASSERT_EQ(res.as.i, 2);
    sage_manager_free(m);
    sage_arena_free(a);
    sage_queue_close(rq);
    sage_queue_close(mine);
    ASSERT_OK(sage_queue_unlink(myq));
    stop_host(h);
}

/* find_shm finds a /dev/shm entry whose name starts with prefix */
static bool find_shm(const char *prefix, char path[300], size_t cap)
{
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    bool found = false;

    while (d && (e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            snprintf(path, cap, "/dev/shm/%s", e->d_name);
            found = true;
            break;
        }
    if (d)
        closedir(d);
    return found;
}

/* a caller that died leaves its response queue; the next manager of the
 * user removes it. Any manager of this user does, the other tests' too:
 * the queue is looked for while its owner lives, and the owner is killed
 * just before the manager of this case starts. */
static void t_stale_replies_cleaned(void)
{
    char name[128], path[300], c;
    int sync[2], pid;
    sage_manager *m;

    ASSERT_EQ(pipe(sync), 0);
    pid = fork();
    if (pid == 0) {
        sage_manager *dying = manager(5);

        (void)dying;
        ASSERT_EQ(write(sync[1], "x", 1), 1);
        pause(); /* until SIGKILL: no sage_manager_free, its queue stays behind */
        _exit(0);
    }
    close(sync[1]); /* a child that fails first: EOF, not a hang */
    ASSERT_EQ(read(sync[0], &c, 1), 1);
    /* "UID.NS.reply.PID.NONCE": the nonce is random */
    snprintf(name, sizeof name, "sage.q.%u.%s.reply.%d.", (unsigned)geteuid(), th_prefix(), pid);
    ASSERT_TRUE(find_shm(name, path, sizeof path));
    kill(pid, SIGKILL);
    ASSERT_KILLED(th_wait_child(pid, 5000), SIGKILL);
    m = manager(5);
    ASSERT_TRUE(access(path, F_OK) != 0);
    sage_manager_free(m);
}

static void t_idle_connections_closed(void)
{
    struct host h = spawn_host(&testsvc, "testsvc", 0);
    sage_manager_opts o = MANAGER_OPTS(.ns = th_prefix(), .idle_close_ms = 200);
    sage_manager *m;
    sage_manager_stats ms;
    double t0;

    ASSERT_OK(sage_manager_new(&m, &o));
    ASSERT_OK(sage_manager_call_sync(NULL, m, &(sage_request){.service = "testsvc", .method = "count"}, NULL));
    t0 = th_now_ms();
    ASSERT_OK(sage_manager_stats_read(&ms, m));
    ASSERT_EQ(ms.connections, 1);
    /* closed once idle for 200 ms, by the housekeeping that runs every
     * second: within about 1.2 s, and not before the 200 ms */
    ASSERT_WAIT_EQ(manager_stats(m).connections, 0, 5000);
    ASSERT_LE(150, th_now_ms() - t0);
    ASSERT_OK(sage_manager_call_sync(NULL, m, &(sage_request){.service = "testsvc", .method = "count"}, NULL));
    sage_manager_free(m);
    stop_host(h);
}

static const struct th_case cases[] = {
    {"call_across_processes", t_call_across_processes, 30},
    {"async_100k", t_async_100k, 180},
    {"host_killed_during_calls", t_host_killed_during_calls, 30},
    {"name_taken_then_taken_over", t_name_taken_then_taken_over, 30},
    {"name_being_created_is_taken", t_name_being_created_is_taken, 30},
    {"malformed_requests", t_malformed_requests, 30},
    {"idle_connections_closed", t_idle_connections_closed, 30},
    {"dedupe_repeats", t_dedupe_repeats, 30},
    {"stale_replies_cleaned", t_stale_replies_cleaned, 30},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
