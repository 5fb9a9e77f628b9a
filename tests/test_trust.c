/*
 * test_trust.c - one machine, treated roughly: services stopped with calls
 * in flight, callers that come and go by the thousand or die, pids reused,
 * shared memory scribbled on from outside, bursts, failing calls.
 *
 * Each case hosts its service in a forked process (struct host), in the
 * case's own namespace, so the harness removes whatever it leaves.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "queue/layout.h"
#include "sage/manager.h"
#include "sage/queue.h"
#include "sage/task.h"
#include "testsvc.h"

/* ------------------------------------------------------------ the logger */

/* logsvc.work(tag, ms): sleeps ms, writes tag to the log, returns tag. The
 * log is the service's own account of what it answered: a record is written
 * as the method returns, and the runtime then sends the answer. */
static int log_fd = -1;

static sage_err log_work(void *state, sage_call *c)
{
    int64_t tag, ms;

    (void)state;
    if (sage_call_unpack(c, "[II]", &tag, &ms) != SAGE_OK)
        return SAGE_EBADARGS;
    usleep((useconds_t)ms * 1000); /* the work being measured: a slow method */
    ASSERT_EQ(write(log_fd, &tag, sizeof tag), (ssize_t)sizeof tag);
    return sage_call_resultf(c, "I", tag);
}

static const sage_method log_methods[] = {{"work", log_work, 0}, {0}};
static const sage_service logsvc = {
    .abi = SAGE_SERVICE_ABI,
    .name = "logsvc",
    .methods = log_methods,
};

/* ------------------------------------------------------------ the host */

struct host {
    int pid;
    int ctl; /* write end: closing it stops a host without on_sigterm */
};

struct host_opts {
    const sage_service *svc;
    const char *name;
    uint32_t max_workers;    /* 0: the default */
    int64_t queue_timeout_ms; /* 0: the default */
    bool on_sigterm;         /* stop on SIGTERM, as sagesvc run does */
};

/* host_main runs in the child: start, wait for the stop signal, stop. Exit
 * status 0 after a clean stop, 3 when the stop failed. */
static void host_main(const struct host_opts *ho, int ready, int ctl)
{
    sage_task_opts o;
    sage_task *t;
    sage_err r;
    sigset_t set;
    char c;
    int sig;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    if (ho->on_sigterm) /* before any thread exists: all inherit the mask */
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    sage_task_opts_init(&o);
    o.transport = SAGE_TRANSPORT_SHM;
    o.ns = th_prefix();
    o.name = ho->name;
    if (ho->max_workers)
        o.max_workers = ho->max_workers;
    if (ho->queue_timeout_ms)
        o.queue_timeout_ms = ho->queue_timeout_ms;
    ASSERT_OK(sage_task_new(&t, ho->svc, &o));
    r = sage_task_start(t);
    c = r == SAGE_OK ? 'R' : 'E';
    ASSERT_EQ(write(ready, &c, 1), 1);
    if (r != SAGE_OK)
        _exit(2);
    if (ho->on_sigterm)
        sigwait(&set, &sig);
    else
        while (read(ctl, &c, 1) > 0) /* until the parent closes it */
            ;
    r = sage_task_stop(t);
    sage_task_free(t);
    _exit(r == SAGE_OK ? 0 : 3);
}

static struct host spawn_host(const struct host_opts *ho)
{
    int ready[2], ctl[2];
    struct host h;
    char c;

    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(ctl), 0);
    h.pid = fork();
    if (h.pid == 0) {
        close(ready[0]);
        close(ctl[1]);
        host_main(ho, ready[1], ctl[0]);
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

/* new_manager makes a manager of this case's namespace; 0 on success */
static sage_err new_manager(sage_manager **mp, int64_t timeout_ms)
{
    sage_manager_opts o;

    sage_manager_opts_init(&o);
    o.ns = th_prefix();
    o.timeout_ms = timeout_ms;
    return sage_manager_new(mp, &o);
}

static sage_manager *manager(int64_t timeout_ms)
{
    sage_manager *m;

    ASSERT_OK(new_manager(&m, timeout_ms));
    return m;
}

static sage_status status_of(const char *name)
{
    sage_status st;

    ASSERT_OK(sage_host_status(&st, th_prefix(), name));
    return st;
}

/* wait_in_flight waits until the service runs at least n calls */
static void wait_in_flight(const char *name, uint64_t n)
{
    double end = th_now_ms() + 5000;

    while (status_of(name).in_flight < n) {
        if (th_now_ms() > end)
            th_fail(__FILE__, __LINE__, "%s never had %llu calls in flight", name,
                    (unsigned long long)n);
        usleep(2000);
    }
}

static sage_err call_sync(sage_manager *m, const char *svc, const char *method,
                          const sage_value *args, size_t nargs, int64_t timeout_ms)
{
    return sage_manager_call_sync(NULL, m,
                                  &(sage_request){.service = svc, .method = method, .args = args,
                                                  .nargs = nargs, .timeout_ms = timeout_ms},
                                  NULL);
}

/* ------------------------------------------------------------ the cases */

/* SIGTERM with calls queued behind one busy worker: the host answers every
 * call it took before it exits, and each caller learns exactly that. */
static void t_sigterm_drain(void)
{
    enum { N = 8, WORK_MS = 150 };
    char path[256];
    struct host h;
    sage_manager *m;
    sage_future *f[N];
    int64_t logged[N + 8];
    ssize_t got;
    int answered = 0, fd, st;

    snprintf(path, sizeof path, "/dev/shm/%s", th_name("log"));
    log_fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0600);
    ASSERT_TRUE(log_fd >= 0);
    h = spawn_host(&(struct host_opts){.svc = &logsvc, .name = "logsvc", .max_workers = 1,
                                       .on_sigterm = true});
    m = manager(20000);
    for (int i = 0; i < N; i++) {
        sage_value args[2] = {sage_int(i), sage_int(WORK_MS)};

        ASSERT_OK(sage_manager_call(
            &f[i], m, &(sage_request){.service = "logsvc", .method = "work", .args = args, .nargs = 2}));
    }
    wait_in_flight("logsvc", 1);
    ASSERT_EQ(kill(h.pid, SIGTERM), 0);
    /* while it drains, new calls are refused at once, clearly */
    {
        double end = th_now_ms() + 5000, t0;
        sage_value args[2] = {sage_int(100), sage_int(0)};

        while (status_of("logsvc").state != SAGE_STATE_STOPPING && th_now_ms() < end)
            usleep(1000);
        ASSERT_EQ(status_of("logsvc").state, SAGE_STATE_STOPPING);
        t0 = th_now_ms();
        ASSERT_ERR(call_sync(m, "logsvc", "work", args, 2, 10000), SAGE_EUNAVAILABLE);
        ASSERT_LE(th_now_ms() - t0, 1000);
    }
    for (int i = 0; i < N; i++)
        ASSERT_OK(sage_future_wait(f[i], 15000)); /* none hangs */
    st = th_wait_child(h.pid, 15000);
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(h.ctl);
    close(log_fd);
    fd = open(path, O_RDONLY);
    got = read(fd, logged, sizeof logged);
    close(fd);
    ASSERT_TRUE(got >= 0 && got % 8 == 0);
    for (int i = 0; i < N; i++) {
        bool in_log = false;
        const sage_value *v;
        sage_err r = sage_future_result(&v, f[i]);

        for (ssize_t k = 0; k < got / 8; k++)
            in_log |= logged[k] == i;
        if (in_log) { /* answered by the service: answered at the caller */
            if (r != SAGE_OK)
                th_fail(__FILE__, __LINE__, "call %d ran but its caller got %s (%s)", i,
                        sage_errname(r), sage_errdetail());
            ASSERT_EQ(v->as.i, i);
            answered++;
        } else if (r != SAGE_EUNAVAILABLE) {
            th_fail(__FILE__, __LINE__, "call %d did not run, and its caller got %s", i,
                    sage_errname(r));
        }
        sage_future_free(f[i]);
    }
    ASSERT_EQ(got / 8, answered); /* and nothing ran that was not asked */
    ASSERT_EQ(answered, N);       /* the drain answers what was queued */
    sage_manager_free(m);
}

/* map_queue_hdr maps the header of the queue whose /dev/shm name starts
 * with prefix, as a process scribbling on it would */
static struct sq_hdr *map_queue_hdr(const char *prefix)
{
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    char path[600] = "";
    struct sq_hdr *h;
    int fd;

    ASSERT_TRUE(d != NULL);
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
    closedir(d);
    if (path[0] == '\0')
        th_fail(__FILE__, __LINE__, "no queue named %s*", prefix);
    fd = open(path, O_RDWR);
    ASSERT_TRUE(fd >= 0);
    h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_TRUE(h != MAP_FAILED);
    close(fd);
    return h;
}

/* A caller's reply queue scribbled on: the calls waiting for it fail with
 * SAGE_EPROTO, at once; the manager gets a new reply queue, where answers
 * come and timeouts fire as before. */
static void t_corrupt_reply_queue(void)
{
    struct host h = spawn_host(&(struct host_opts){.svc = &testsvc, .name = "testsvc"});
    sage_manager *m = manager(5000);
    sage_future *f[2], *late;
    sage_value a600[1] = {sage_int(600)}, a2000[1] = {sage_int(2000)};
    struct sq_hdr *hdr;
    char prefix[200];
    double t0;
    sage_value res;
    sage_arena *a;

    for (int i = 0; i < 2; i++)
        ASSERT_OK(sage_manager_call(&f[i], m,
                                    &(sage_request){.service = "testsvc", .method = "sleep",
                                                    .args = a600, .nargs = 1}));
    wait_in_flight("testsvc", 2);
    snprintf(prefix, sizeof prefix, "sage.q.%u.%s.reply.%d.", (unsigned)geteuid(), th_prefix(),
             (int)getpid());
    hdr = map_queue_hdr(prefix);
    t0 = th_now_ms();
    atomic_fetch_add(&hdr->head, 8); /* moved by someone else than its consumer */
    munmap(hdr, sizeof *hdr);
    for (int i = 0; i < 2; i++) {
        ASSERT_OK(sage_future_wait(f[i], 4000));
        ASSERT_ERR(sage_future_result(NULL, f[i]), SAGE_EPROTO);
        sage_future_free(f[i]);
    }
    ASSERT_LE(th_now_ms() - t0, 1500); /* found on the next answer at the latest */
    /* a timeout fires on time */
    t0 = th_now_ms();
    ASSERT_OK(sage_manager_call(&late, m,
                                &(sage_request){.service = "testsvc", .method = "sleep",
                                                .args = a2000, .nargs = 1, .timeout_ms = 300}));
    ASSERT_OK(sage_future_wait(late, 4000));
    ASSERT_ERR(sage_future_result(NULL, late), SAGE_ETIMEDOUT);
    ASSERT_LE(th_now_ms() - t0, 1000);
    sage_future_free(late);
    /* and answers come */
    ASSERT_OK(sage_arena_new(&a, 0));
    ASSERT_OK(sage_manager_callf(&res, m, a, "testsvc", "add", "[i i]", 1, 2));
    ASSERT_EQ(res.as.i, 3);
    sage_arena_free(a);
    sage_manager_free(m);
    stop_host(h);
}

/* fork_with_pid forks a child whose pid is want (root only: it writes
 * /proc/sys/kernel/ns_last_pid), which runs fn and exits with its value;
 * returns the pid. Skips the case where the pid cannot be chosen. */
static int fork_with_pid(int want, int (*fn)(void))
{
    char b[32];
    int n = snprintf(b, sizeof b, "%d", want - 1);

    if (geteuid() != 0)
        th_skip("choosing a pid (/proc/sys/kernel/ns_last_pid) needs root");
    for (int i = 0; i < 200; i++) {
        int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY), pid;

        if (fd < 0 || write(fd, b, (size_t)n) != n) {
            if (fd >= 0)
                close(fd);
            th_skip("cannot write /proc/sys/kernel/ns_last_pid");
        }
        close(fd);
        pid = fork();
        if (pid == 0)
            _exit(getpid() == want ? fn() : 0);
        if (pid == want)
            return pid;
        th_wait_child(pid, 5000);
    }
    th_skip("could not get the pid back within 200 forks");
}

static int call_add_once(void)
{
    sage_manager *m;
    sage_arena *a;
    sage_value res;
    sage_err r;

    if (new_manager(&m, 3000) != SAGE_OK ||
        sage_arena_new(&a, 0) != SAGE_OK)
        return 10;
    r = sage_manager_callf(&res, m, a, "testsvc", "add", "[i i]", 20, 22);
    if (r != SAGE_OK)
        fprintf(stderr, "call_add_once: %s (%s)\n", sage_errname(r), sage_errdetail());
    sage_arena_free(a);
    sage_manager_free(m);
    return r != SAGE_OK ? 11 : res.as.i == 42 ? 0 : 12;
}

/* A caller SIGKILLed after its calls, whose pid a new caller then gets:
 * the new caller's calls are answered to it, not to the dead one's queue. */
static void t_pid_reuse_caller(void)
{
    struct host h = spawn_host(&(struct host_opts){.svc = &testsvc, .name = "testsvc"});
    int ready[2], victim, heir;
    char c;

    ASSERT_EQ(pipe(ready), 0);
    victim = fork();
    if (victim == 0) {
        int r = call_add_once() == 0 ? 'R' : 'E'; /* the host now caches its queue */
        sage_manager *m;

        /* and a manager stays open, its reply queue in /dev/shm, as it dies */
        m = manager(5000);
        ASSERT_OK(sage_manager_callf(NULL, m, NULL, "testsvc", "count", "[]"));
        c = (char)r;
        ASSERT_EQ(write(ready[1], &c, 1), 1);
        for (;;)
            pause();
    }
    ASSERT_EQ(read(ready[0], &c, 1), 1);
    ASSERT_EQ(c, 'R');
    usleep(20000); /* start times have a 10 ms resolution: the heir's must differ */
    kill(victim, SIGKILL);
    ASSERT_TRUE(th_wait_child(victim, 5000) != -1);
    heir = fork_with_pid(victim, call_add_once);
    ASSERT_EQ(th_wait_child(heir, 10000), 0);
    stop_host(h);
}

/* count_reply_maps counts the callers' reply queues pid has mapped */
static int count_reply_maps(int pid)
{
    char path[64], line[1024], pat[160];
    FILE *f;
    int n = 0;

    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    snprintf(pat, sizeof pat, "/dev/shm/sage.q.%u.%s.reply.", (unsigned)geteuid(), th_prefix());
    f = fopen(path, "r");
    ASSERT_TRUE(f != NULL);
    while (fgets(line, sizeof line, f) != NULL)
        n += strstr(line, pat) != NULL;
    fclose(f);
    return n;
}

/* count_reply_queues counts the reply queues of this case in /dev/shm */
static int count_reply_queues(void)
{
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    char pat[160];
    int n = 0;

    snprintf(pat, sizeof pat, "sage.q.%u.%s.reply.", (unsigned)geteuid(), th_prefix());
    while (d && (e = readdir(d)) != NULL)
        n += strncmp(e->d_name, pat, strlen(pat)) == 0;
    if (d)
        closedir(d);
    return n;
}

/* one short-lived caller: one call, then it leaves cleanly, exits without
 * freeing its manager, or is killed */
static void short_caller(int how)
{
    sage_manager *m;

    if (new_manager(&m, 10000) != SAGE_OK ||
        sage_manager_callf(NULL, m, NULL, "testsvc", "count", "[]") != SAGE_OK)
        _exit(1);
    if (how == 0)
        sage_manager_free(m);
    else if (how == 1)
        raise(SIGKILL);
    _exit(0);
}

/* A thousand callers, each making one call and leaving (a third killed):
 * the host lets go of every one's reply queue without further traffic, and
 * no queue is left in /dev/shm. */
static void t_short_callers_released(void)
{
    enum { CALLERS = 1000, PAR = 8 };
    struct host h = spawn_host(&(struct host_opts){.svc = &testsvc, .name = "testsvc"});
    int pids[PAR] = {0}, started = 0, done = 0;
    double end;

    while (done < CALLERS) {
        for (int s = 0; s < PAR; s++) {
            int st;

            if (pids[s] != 0) {
                if (waitpid(pids[s], &st, WNOHANG) == 0)
                    continue;
                if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
                    th_fail(__FILE__, __LINE__, "caller %d failed its call", pids[s]);
                pids[s] = 0;
                done++;
            }
            if (started < CALLERS) {
                int how = started % 3;

                if ((pids[s] = fork()) == 0)
                    short_caller(how);
                started++;
            }
        }
        usleep(200); /* a reaping loop: the children are the clock */
    }
    ASSERT_EQ(status_of("testsvc").requests, CALLERS);
    /* the host sweeps every 250 ms; a loaded machine gets some slack */
    end = th_now_ms() + 10000;
    while ((count_reply_maps(h.pid) > 0 || count_reply_queues() > 0) && th_now_ms() < end)
        usleep(10000);
    if (count_reply_maps(h.pid) > 0 || count_reply_queues() > 0)
        th_fail(__FILE__, __LINE__, "10 s after the last caller: %d reply queues mapped by the "
                "host, %d left in /dev/shm", count_reply_maps(h.pid), count_reply_queues());
    stop_host(h);
}

/* The request queue scribbled on, three ways: the service shows failed
 * with the reason, and its stop ends within its queue timeout. */
static void scribbled(const char *what, void (*scribble)(struct sq_hdr *), const char *reason)
{
    sage_task *t;
    sage_task_opts o;
    sage_status st;
    struct sq_hdr *hdr;
    char prefix[200];
    double end, t0;
    sage_err r;

    sage_task_opts_init(&o);
    o.transport = SAGE_TRANSPORT_SHM;
    o.ns = th_prefix();
    o.name = what;
    o.queue_timeout_ms = 1000;
    ASSERT_OK(sage_task_new(&t, &testsvc, &o));
    ASSERT_OK(sage_task_start(t));
    snprintf(prefix, sizeof prefix, "sage.q.%u.%s.%s.req", (unsigned)geteuid(), th_prefix(), what);
    hdr = map_queue_hdr(prefix);
    scribble(hdr);
    munmap(hdr, sizeof *hdr);
    end = th_now_ms() + 5000;
    do {
        ASSERT_OK(sage_task_status(&st, t));
        if (st.state == SAGE_STATE_FAILED)
            break;
        usleep(5000);
    } while (th_now_ms() < end);
    if (st.state != SAGE_STATE_FAILED)
        th_fail(__FILE__, __LINE__, "%s: state %s, want failed", what, sage_state_name(st.state));
    if (strstr(st.reason, reason) == NULL)
        th_fail(__FILE__, __LINE__, "%s: reason \"%s\" lacks \"%s\"", what, st.reason, reason);
    /* the registry's reading, from any process, agrees */
    ASSERT_OK(sage_host_status(&st, th_prefix(), what));
    ASSERT_EQ(st.state, SAGE_STATE_FAILED);
    t0 = th_now_ms();
    r = sage_task_stop(t);
    ASSERT_LE(th_now_ms() - t0, 3000);
    (void)r; /* a failed task stops as well as it can; what matters is that it ends */
    ASSERT_OK(sage_task_status(&st, t));
    ASSERT_TRUE(st.state == SAGE_STATE_FAILED || st.state == SAGE_STATE_STOPPED);
    sage_task_free(t);
}

static void tail_misaligned(struct sq_hdr *h)
{
    atomic_fetch_add(&h->tail, 3);
    atomic_fetch_add(&h->data_seq, 1); /* wake the consumer up, as a producer would */
}

static void head_past_tail(struct sq_hdr *h)
{
    atomic_fetch_add(&h->head, 64);
    atomic_fetch_add(&h->data_seq, 1);
}

static void closed_outside(struct sq_hdr *h)
{
    atomic_fetch_or(&h->state, SQ_ST_CLOSED);
    atomic_fetch_add(&h->data_seq, 1);
}

static void t_request_queue_scribbled(void)
{
    scribbled("tail", tail_misaligned, "tail is not 8-byte aligned");
    scribbled("head", head_past_tail, "head");
    scribbled("closed", closed_outside, "closed");
}

/* burst_ms: how long k concurrent sleep(ms) calls take, in milliseconds */
static double burst_ms(sage_manager *m, int k, int ms)
{
    sage_future *f[16];
    sage_value args[1] = {sage_int(ms)};
    double t0 = th_now_ms();

    for (int i = 0; i < k; i++)
        ASSERT_OK(sage_manager_call(
            &f[i], m, &(sage_request){.service = "testsvc", .method = "sleep", .args = args, .nargs = 1}));
    for (int i = 0; i < k; i++) {
        ASSERT_OK(sage_future_wait(f[i], 10000));
        ASSERT_OK(sage_future_result(NULL, f[i]));
        sage_future_free(f[i]);
    }
    return th_now_ms() - t0;
}

/* A burst of K long calls runs on min(K, max_workers) workers: 8 calls take
 * about as long as one, whatever ran before (ratios, not absolute times). */
static void t_burst_uses_workers(void)
{
    struct host h = spawn_host(&(struct host_opts){.svc = &testsvc, .name = "testsvc", .max_workers = 10});
    sage_manager *m = manager(10000);
    double one, eight, twelve;

    one = burst_ms(m, 1, 200); /* a warm-up: one worker exists now */
    eight = burst_ms(m, 8, 200);
    twelve = burst_ms(m, 12, 200); /* 10 workers: two rounds */
    fprintf(stderr, "one %.0f ms, eight %.0f ms, twelve %.0f ms\n", one, eight, twelve);
    /* eight at once: about one call's time (one at a time would take 8x,
     * on the workers of the warm-up alone 4x or more; a loaded machine
     * stretches it a little) */
    ASSERT_LE(eight, 3 * one);
    ASSERT_LE(twelve, 4.5 * one);
    /* and never more than max_workers at once: twelve take two rounds,
     * which no load can make shorter than two sleeps */
    ASSERT_TRUE(twelve >= 2 * 200 * 0.95);
    sage_manager_free(m);
    stop_host(h);
}

/* Degraded while half its calls fail (the default error_threshold), running
 * again once they no longer do; the reason says why. */
static void t_degraded_enter_leave(void)
{
    struct host h = spawn_host(&(struct host_opts){.svc = &testsvc, .name = "testsvc"});
    sage_manager *m = manager(5000);
    sage_arena *a;
    sage_status st;

    ASSERT_OK(sage_arena_new(&a, 0));
    for (int i = 0; i < 9; i++)
        ASSERT_ERR(sage_manager_callf(NULL, m, a, "testsvc", "fail", "[s]", "no"), SAGE_EHANDLER);
    st = status_of("testsvc");
    ASSERT_EQ(st.state, SAGE_STATE_RUNNING); /* 9 calls: too few to judge */
    ASSERT_ERR(sage_manager_callf(NULL, m, a, "testsvc", "fail", "[s]", "no"), SAGE_EHANDLER);
    st = status_of("testsvc");
    ASSERT_EQ(st.state, SAGE_STATE_DEGRADED);
    if (strstr(st.reason, "10 of 10 calls failed") == NULL)
        th_fail(__FILE__, __LINE__, "reason: \"%s\"", st.reason);
    /* the caller's own mistakes do not count against the service */
    for (int i = 0; i < 20; i++)
        ASSERT_ERR(sage_manager_callf(NULL, m, a, "testsvc", "nosuch", "[]"), SAGE_ENOMETHOD);
    ASSERT_EQ(status_of("testsvc").state, SAGE_STATE_DEGRADED);
    for (int i = 0; i < 10; i++)
        ASSERT_OK(sage_manager_callf(NULL, m, a, "testsvc", "add", "[i i]", 1, 2));
    st = status_of("testsvc");
    ASSERT_EQ(st.state, SAGE_STATE_DEGRADED); /* 10 of 20 failed: still at the threshold */
    ASSERT_OK(sage_manager_callf(NULL, m, a, "testsvc", "add", "[i i]", 1, 2));
    st = status_of("testsvc");
    ASSERT_EQ(st.state, SAGE_STATE_RUNNING);
    ASSERT_STREQ(st.reason, "");
    sage_arena_free(a);
    sage_manager_free(m);
    stop_host(h);
}

static const struct th_case cases[] = {
    {"sigterm_drain", t_sigterm_drain, 60},
    {"corrupt_reply_queue", t_corrupt_reply_queue, 30},
    {"pid_reuse_caller", t_pid_reuse_caller, 60},
    {"short_callers_released", t_short_callers_released, 180},
    {"request_queue_scribbled", t_request_queue_scribbled, 60},
    {"burst_uses_workers", t_burst_uses_workers, 30},
    {"degraded_enter_leave", t_degraded_enter_leave, 30},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
