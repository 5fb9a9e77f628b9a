/* test_cluster.c - services on NATS, against real nats-server clusters. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "kv.h"
#include "natsfix_th.h"
#include "sage/cluster.h"
#include "sage/version.h"
#include "sage/manager.h"
#include "testsvc.h"
#include "transport/natsio.h"
#include "transport/natskv.h"
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

/* A process serving svc over NATS (connected to server `first` of f) until
 * its control pipe closes. */
struct replica {
    int pid;
    int ctl;
};

/* write ends of earlier replicas' control pipes: a later replica inherits
 * them at fork and must close them, or closing ours never reaches EOF */
static int ctl_fds[16];
static int nctl;

static struct replica spawn_replica(struct natsfix *f, int first, const sage_service *svc,
                                    const char *name, int durable)
{
    int ready[2], ctl[2];
    struct replica r;
    char c;

    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(ctl), 0);
    r.pid = fork();
    if (r.pid == 0) {
        sage_nats_conf nc;
        sage_cluster_opts co;
        sage_task_opts o;
        sage_task *t;
        sage_err e;

        for (int i = 0; i < nctl; i++)
            close(ctl_fds[i]);
        close(ready[0]);
        close(ctl[1]);
        natsfix_conf(f, &nc, first);
        memset(&co, 0, sizeof co);
        co.nats = &nc;
        co.durable = durable;
        co.ack_wait_ms = 1000;
        sage_task_opts_init(&o);
        o.transport = SAGE_TRANSPORT_NATS;
        o.ns = th_prefix();
        o.name = name;
        o.cluster = &co;
        ASSERT_OK(sage_task_new(&t, svc, &o));
        e = sage_task_start(t);
        c = e == SAGE_OK ? 'R' : 'E';
        if (e != SAGE_OK)
            fprintf(stderr, "replica: %s (%s)\n", sage_errname(e), sage_errdetail());
        ASSERT_EQ(write(ready[1], &c, 1), 1);
        if (e != SAGE_OK)
            _exit(2);
        while (read(ctl[0], &c, 1) > 0)
            ;
        sage_task_free(t);
        _exit(0);
    }
    close(ready[1]);
    close(ctl[0]);
    ASSERT_EQ(read(ready[0], &c, 1), 1);
    ASSERT_EQ(c, 'R');
    close(ready[0]);
    r.ctl = ctl[1];
    if (nctl < 16)
        ctl_fds[nctl++] = r.ctl;
    return r;
}

static void forget_ctl(int fd)
{
    for (int i = 0; i < nctl; i++)
        if (ctl_fds[i] == fd)
            ctl_fds[i] = ctl_fds[--nctl];
}

static void stop_replica(struct replica r)
{
    forget_ctl(r.ctl);
    close(r.ctl);
    ASSERT_EQ(th_wait_child(r.pid, 15000), 0);
}

/* a replica on server 0, a caller on server 2: the call crosses the cluster */
static void t_calls_cross_servers(void)
{
    struct natsfix f;
    struct replica r;
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_manager *m;
    sage_arena *a;
    sage_value res;
    sage_endpoint ep;

    natsfix_start(&f, 3, NULL);
    r = spawn_replica(&f, 0, &sage_example_kv, "kv", 0);
    m = natsfix_manager(&f, 2, 5, &nc, &co);
    ASSERT_OK(sage_arena_new(&a, 0));
    ASSERT_OK(sage_manager_callf(&res, m, a, "kv", "put", "[s i]", "k", 9));
    ASSERT_OK(sage_manager_callf(&res, m, a, "kv", "get", "[s]", "k"));
    ASSERT_EQ(res.as.i, 9);
    ASSERT_ERR(sage_manager_callf(&res, m, a, "kv", "nosuch", "[]"), SAGE_ENOMETHOD);
    ASSERT_ERR(sage_manager_callf(&res, m, a, "absent", "x", "[]"), SAGE_ENOSERVICE);
    ASSERT_OK(sage_manager_lookup(&ep, m, "kv"));
    ASSERT_EQ(ep.transport, SAGE_TRANSPORT_NATS);
    sage_arena_free(a);
    sage_manager_free(m);
    stop_replica(r);
    natsfix_stop(&f);
}

/* 3 replicas on 3 servers share 3000 calls evenly */
static void t_load_balanced(void)
{
    enum { N = 3000 };
    struct natsfix f;
    struct replica r[3];
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_manager *m;
    int64_t pids[3];
    int counts[3] = {0, 0, 0};

    natsfix_start(&f, 3, NULL);
    for (int i = 0; i < 3; i++) {
        r[i] = spawn_replica(&f, i, &testsvc, "testsvc", 0);
        pids[i] = r[i].pid;
    }
    m = natsfix_manager(&f, 1, 5, &nc, &co);
    for (int i = 0; i < N; i++) {
        sage_arena *a;
        sage_value res;

        ASSERT_OK(sage_arena_new(&a, 0));
        ASSERT_OK(sage_manager_callf(&res, m, a, "testsvc", "pid", "[]"));
        for (int k = 0; k < 3; k++)
            if (res.as.i == pids[k])
                counts[k]++;
        sage_arena_free(a);
    }
    printf("  replicas served %d / %d / %d of %d calls\n", counts[0], counts[1], counts[2], N);
    for (int k = 0; k < 3; k++) {
        ASSERT_LE(N * 20 / 100, counts[k]);
        ASSERT_LE(counts[k], N * 45 / 100);
    }
    sage_manager_free(m);
    for (int i = 0; i < 3; i++)
        stop_replica(r[i]);
    natsfix_stop(&f);
}

/* Callers hammer a service of 3 replicas; one replica is SIGKILLed midway.
 * mode 0: plain calls: the calls it held fail with an error, none hangs;
 * mode 1: idempotent calls with retries: none is lost;
 * mode 2: a durable service: none is lost. */
struct hammer {
    sage_manager *m;
    int mode;
    _Atomic int stop;
    int ok, failed, hung;
};

static void *hammer_main(void *p)
{
    struct hammer *h = p;
    sage_value args[1] = {sage_int(20)};
    sage_request rq = {.service = "testsvc",
                       .method = "sleep",
                       .args = args,
                       .nargs = 1,
                       .timeout_ms = h->mode == 2 ? 8000 : 1500,
                       .idempotent = h->mode == 1,
                       .retries = h->mode == 1 ? 3 : 0};

    while (!atomic_load(&h->stop)) {
        double t0 = th_now_ms();
        sage_err e = sage_manager_call_sync(NULL, h->m, &rq, NULL);

        if (th_now_ms() - t0 > rq.timeout_ms + 1000)
            h->hung++;
        if (e == SAGE_OK)
            h->ok++;
        else
            h->failed++;
    }
    return NULL;
}

static void kill_under_load(int mode)
{
    struct natsfix f;
    struct replica r[3];
    sage_nats_conf nc;
    sage_cluster_opts co;
    struct hammer h[4];
    pthread_t th[4];
    int ok = 0, failed = 0, hung = 0;

    natsfix_start(&f, 3, NULL);
    for (int i = 0; i < 3; i++)
        r[i] = spawn_replica(&f, i, &testsvc, "testsvc", mode == 2);
    for (int i = 0; i < 4; i++) {
        memset(&h[i], 0, sizeof h[i]);
        h[i].m = natsfix_manager(&f, i % 3, 10, &nc, &co);
        h[i].mode = mode;
        pthread_create(&th[i], NULL, hammer_main, &h[i]);
    }
    usleep(700000);
    kill(r[1].pid, SIGKILL); /* mid-call: each replica holds calls in flight */
    th_wait_child(r[1].pid, 5000);
    usleep(mode == 2 ? 3000000 : 1500000);
    for (int i = 0; i < 4; i++) {
        atomic_store(&h[i].stop, 1);
        pthread_join(th[i], NULL);
        ok += h[i].ok;
        failed += h[i].failed;
        hung += h[i].hung;
        sage_manager_free(h[i].m);
    }
    printf("  mode %d: %d calls answered, %d failed with an error, %d hung\n", mode, ok, failed,
           hung);
    ASSERT_EQ(hung, 0);
    ASSERT_LE(100, ok);
    if (mode > 0)
        ASSERT_EQ(failed, 0); /* retried or redelivered: nothing lost */
    stop_replica(r[0]);
    stop_replica(r[2]);
    forget_ctl(r[1].ctl);
    close(r[1].ctl);
    natsfix_stop(&f);
}

static void t_kill_replica_plain(void)
{
    kill_under_load(0);
}

static void t_kill_replica_idempotent(void)
{
    kill_under_load(1);
}

static void t_kill_replica_durable(void)
{
    kill_under_load(2);
}

/* the server a replica is connected to dies: it reconnects, calls resume */
static void t_nats_server_killed(void)
{
    struct natsfix f;
    struct replica r;
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_manager *m;
    sage_arena *a;
    sage_value res;
    double until;
    sage_err e = SAGE_ECONNECT;

    natsfix_start(&f, 3, NULL);
    r = spawn_replica(&f, 0, &sage_example_kv, "kv", 0); /* connected to server 0 */
    m = natsfix_manager(&f, 1, 1, &nc, &co);
    ASSERT_OK(sage_arena_new(&a, 0));
    ASSERT_OK(sage_manager_callf(&res, m, a, "kv", "put", "[s i]", "k", 1));
    natsfix_kill(&f, 0);
    until = th_now_ms() + 15000;
    while (th_now_ms() < until) { /* calls fail while it reconnects, then work */
        e = sage_manager_callf(&res, m, a, "kv", "get", "[s]", "k");
        if (e == SAGE_OK)
            break;
        usleep(100000);
    }
    ASSERT_OK(e);
    ASSERT_EQ(res.as.i, 1);
    for (int i = 0; i < 20; i++)
        ASSERT_OK(sage_manager_callf(&res, m, a, "kv", "get", "[s]", "k"));
    sage_arena_free(a);
    sage_manager_free(m);
    stop_replica(r);
    natsfix_stop(&f);
}

/* wrong or missing credentials are refused, right ones accepted */
static void t_credentials(void)
{
    struct natsfix f;
    struct replica r;
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_manager_opts mo;
    sage_manager *m = NULL;
    sage_arena *a;
    sage_value res;

    natsfix_start(&f, 1, "alice:s3cret");
    r = spawn_replica(&f, 0, &sage_example_kv, "kv", 0);
    m = natsfix_manager(&f, 0, 5, &nc, &co); /* right password */
    ASSERT_OK(sage_arena_new(&a, 0));
    ASSERT_OK(sage_manager_callf(&res, m, a, "kv", "size", "[]"));
    sage_manager_free(m);
    m = NULL;
    sage_manager_opts_init(&mo);
    mo.ns = th_prefix();
    mo.cluster = &co;
    nc.password = "wrong";
    ASSERT_ERR(sage_manager_new(&m, &mo), SAGE_EAUTH);
    ASSERT_TRUE(m == NULL);
    nc.user = NULL;
    nc.password = NULL;
    ASSERT_ERR(sage_manager_new(&m, &mo), SAGE_EAUTH);
    sage_arena_free(a);
    stop_replica(r);
    natsfix_stop(&f);
}

/* ADR-32: $SRV.PING / INFO / STATS answers, field by field */
static json_t *srv_request(struct sage__nio *n, const char *subject)
{
    void *out = NULL;
    size_t len = 0;
    json_t *o;

    ASSERT_OK(sage__nio_request(n, subject, "", 0, 2000, &out, &len));
    o = json_loadb(out, len, 0, NULL);
    free(out);
    ASSERT_TRUE(o != NULL && json_is_object(o));
    return o;
}

static void check_common(json_t *o, const char *type, const char *id)
{
    json_t *md = json_object_get(o, "metadata");

    ASSERT_STREQ(json_string_value(json_object_get(o, "type")), type);
    ASSERT_STREQ(json_string_value(json_object_get(o, "name")), "testsvc");
    ASSERT_STREQ(json_string_value(json_object_get(o, "version")), SAGE_VERSION_STRING);
    if (id)
        ASSERT_STREQ(json_string_value(json_object_get(o, "id")), id);
    else
        ASSERT_TRUE(strlen(json_string_value(json_object_get(o, "id"))) > 0);
    ASSERT_TRUE(json_is_object(md));
    ASSERT_STREQ(json_string_value(json_object_get(md, "sagesvc.namespace")), th_prefix());
}

static _Atomic int pings;

static void count_instance(void *arg, const sage_cluster_instance *inst)
{
    (void)arg;
    if (strcmp(inst->name, "testsvc") == 0)
        atomic_fetch_add(&pings, 1);
}

static void t_srv_protocol(void)
{
    struct natsfix f;
    struct replica r;
    struct sage__nio_opts no;
    struct sage__nio *n;
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_manager *m;
    json_t *o, *ep;
    char id[64], subject[160];

    natsfix_start(&f, 1, NULL);
    r = spawn_replica(&f, 0, &testsvc, "testsvc", 0);
    m = natsfix_manager(&f, 0, 5, &nc, &co);
    ASSERT_OK(sage_manager_call_sync(NULL, m, &(sage_request){.service = "testsvc", .method = "count"}, NULL));
    ASSERT_ERR(sage_manager_callf(NULL, m, NULL, "testsvc", "fail", "[s]", "why"), SAGE_EHANDLER);
    memset(&no, 0, sizeof no);
    no.conf = &nc;
    no.name = "srv test";
    ASSERT_OK(sage__nio_connect(&n, &no));
    /* PING, bare */
    o = srv_request(n, "$SRV.PING");
    check_common(o, "io.nats.micro.v1.ping_response", NULL);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(o, "id")));
    json_decref(o);
    /* PING by name and by name.id */
    o = srv_request(n, "$SRV.PING.testsvc");
    check_common(o, "io.nats.micro.v1.ping_response", id);
    json_decref(o);
    snprintf(subject, sizeof subject, "$SRV.PING.testsvc.%s", id);
    o = srv_request(n, subject);
    check_common(o, "io.nats.micro.v1.ping_response", id);
    json_decref(o);
    /* INFO */
    o = srv_request(n, "$SRV.INFO.testsvc");
    check_common(o, "io.nats.micro.v1.info_response", id);
    ASSERT_TRUE(json_is_string(json_object_get(o, "description")));
    ep = json_array_get(json_object_get(o, "endpoints"), 0);
    ASSERT_STREQ(json_string_value(json_object_get(ep, "name")), "call");
    snprintf(subject, sizeof subject, "sage.%s.svc.testsvc", th_prefix());
    ASSERT_STREQ(json_string_value(json_object_get(ep, "subject")), subject);
    ASSERT_STREQ(json_string_value(json_object_get(ep, "queue_group")), "q");
    json_decref(o);
    /* STATS */
    snprintf(subject, sizeof subject, "$SRV.STATS.testsvc.%s", id);
    o = srv_request(n, subject);
    check_common(o, "io.nats.micro.v1.stats_response", id);
    ASSERT_TRUE(strlen(json_string_value(json_object_get(o, "started"))) >= 20);
    ASSERT_EQ(json_string_value(json_object_get(o, "started"))[
                  strlen(json_string_value(json_object_get(o, "started"))) - 1], 'Z');
    ep = json_array_get(json_object_get(o, "endpoints"), 0);
    ASSERT_EQ(json_integer_value(json_object_get(ep, "num_requests")), 2);
    ASSERT_EQ(json_integer_value(json_object_get(ep, "num_errors")), 1);
    ASSERT_STREQ(json_string_value(json_object_get(ep, "last_error")), "failed as asked: why");
    ASSERT_TRUE(json_integer_value(json_object_get(ep, "processing_time")) > 0);
    ASSERT_TRUE(json_is_integer(json_object_get(ep, "average_processing_time")));
    json_decref(o);
    /* discovery through the public API sees the same instance */
    atomic_store(&pings, 0);
    ASSERT_OK(sage_cluster_discover(&nc, th_prefix(), "PING", NULL, 300, count_instance, NULL));
    ASSERT_EQ(atomic_load(&pings), 1);
    sage__nio_close(n);
    sage_manager_free(m);
    stop_replica(r);
    natsfix_stop(&f);
}

/* the caller's NATS server dies while a call waits for its answer: the call
 * fails at once with SAGE_ECONNECT (its answer could never arrive), not at
 * its 30 s timeout */
static void t_connection_lost_fails_pending(void)
{
    struct natsfix f;
    struct replica r;
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_manager *m;
    sage_future *fut;
    sage_value ms = sage_int(20000);
    double t0;

    natsfix_start(&f, 1, NULL);
    r = spawn_replica(&f, 0, &testsvc, "testsvc", 0);
    m = natsfix_manager(&f, 0, 30, &nc, &co);
    ASSERT_OK(sage_manager_call(&fut, m, &(sage_request){.service = "testsvc", .method = "sleep", .args = &ms, .nargs = 1}));
    usleep(300000); /* the call is running on the replica */
    t0 = th_now_ms();
    natsfix_kill(&f, 0);
    ASSERT_ERR(sage_future_wait(fut, 10000) == SAGE_OK ? sage_future_result(NULL, fut)
                                                        : SAGE_ETIMEDOUT,
               SAGE_ECONNECT);
    ASSERT_TRUE(th_now_ms() - t0 < 5000);
    sage_future_free(fut);
    sage_manager_free(m);
    kill(r.pid, SIGKILL); /* mid-sleep: no need to wait for it */
    forget_ctl(r.ctl);
    close(r.ctl);
    th_wait_child(r.pid, 15000);
    natsfix_stop(&f);
}

/* a replica stopped while a call runs on one of its workers answers it
 * first: the answer goes out before its connection closes */
static void t_stop_answers_in_flight(void)
{
    struct natsfix f;
    struct replica r;
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_manager *m;
    sage_future *fut;
    sage_value ms = sage_int(1000);

    natsfix_start(&f, 1, NULL);
    r = spawn_replica(&f, 0, &testsvc, "testsvc", 0);
    m = natsfix_manager(&f, 0, 10, &nc, &co);
    ASSERT_OK(sage_manager_call(&fut, m, &(sage_request){.service = "testsvc", .method = "sleep", .args = &ms, .nargs = 1}));
    usleep(300000); /* the call is running on the replica */
    stop_replica(r);
    ASSERT_OK(sage_future_wait(fut, 5000));
    ASSERT_OK(sage_future_result(NULL, fut));
    sage_future_free(fut);
    sage_manager_free(m);
    natsfix_stop(&f);
}


/* ------------------------------------------------- replicated state */

/* stream_copies: stream's replica count and leader, through natsio */
static int stream_copies(struct sage__nio *n, const char *stream, char *leader, size_t cap)
{
    int copies = 0;
    char dummy[64];

    ASSERT_OK(sage__nio_stream_info(n, stream, &copies, leader ? leader : dummy,
                                    leader ? cap : sizeof dummy));
    return copies;
}

static struct sage__nio *connect_nio(sage_nats_conf *nc)
{
    struct sage__nio_opts no;
    struct sage__nio *n;

    memset(&no, 0, sizeof no);
    no.conf = nc;
    no.name = "replicas test";
    ASSERT_OK(sage__nio_connect(&n, &no));
    return n;
}

/* on 3 servers, what sagesvc creates has 3 copies (the service registry, a
 * durable service's stream); a bucket found with 1 is raised to 3;
 * nats.replicas chooses another count */
static void t_replicas_three_servers(void)
{
    static const struct sage__nio_kv_opts one = {.history = 1, .replicas = 1}, dflt = {.history = 1};
    struct natsfix f;
    struct replica r[2];
    struct sage__nio *n;
    struct sage__nio_kv *kv;
    sage_nats_conf nc;
    char stream[200];

    natsfix_start(&f, 3, NULL);
    r[0] = spawn_replica(&f, 0, &sage_example_kv, "kv", 0);
    r[1] = spawn_replica(&f, 1, &sage_example_kv, "dkv", 1);
    natsfix_conf(&f, &nc, 2);
    n = connect_nio(&nc);
    ASSERT_EQ(stream_copies(n, "KV_" SAGE__SERVICES_BUCKET, NULL, 0), 3);
    snprintf(stream, sizeof stream, "SAGE_%s_dkv", th_prefix());
    ASSERT_EQ(stream_copies(n, stream, NULL, 0), 3);
    /* an older bucket of one copy is raised when opened to be written */
    ASSERT_OK(sage__nio_kv_open(n, "sagetest_old", &one, &kv));
    sage__nio_kv_close(kv);
    ASSERT_EQ(stream_copies(n, "KV_sagetest_old", NULL, 0), 1);
    ASSERT_OK(sage__nio_kv_open(n, "sagetest_old", &dflt, &kv));
    ASSERT_OK(sage__nio_kv_put(kv, "k", "v", 1, NULL)); /* writable while it grows */
    sage__nio_kv_close(kv);
    ASSERT_EQ(stream_copies(n, "KV_sagetest_old", NULL, 0), 3);
    sage__nio_close(n);
    /* nats.replicas: 2 */
    nc.replicas = 2;
    n = connect_nio(&nc);
    ASSERT_OK(sage__nio_kv_open(n, "sagetest_two", &dflt, &kv));
    sage__nio_kv_close(kv);
    ASSERT_EQ(stream_copies(n, "KV_sagetest_two", NULL, 0), 2);
    sage__nio_close(n);
    stop_replica(r[0]);
    stop_replica(r[1]);
    natsfix_stop(&f);
}

/* one server, no cluster: one copy, without being asked; asking for 3
 * there is a clear error */
static void t_replicas_one_server(void)
{
    static const struct sage__nio_kv_opts dflt = {.history = 1};
    struct natsfix f;
    struct replica r;
    struct sage__nio *n;
    struct sage__nio_kv *kv = NULL;
    sage_nats_conf nc;

    natsfix_start(&f, 1, NULL);
    r = spawn_replica(&f, 0, &sage_example_kv, "dkv", 1);
    natsfix_conf(&f, &nc, 0);
    n = connect_nio(&nc);
    ASSERT_EQ(stream_copies(n, "KV_" SAGE__SERVICES_BUCKET, NULL, 0), 1);
    sage__nio_close(n);
    nc.replicas = 3;
    n = connect_nio(&nc);
    ASSERT_ERR(sage__nio_kv_open(n, "sagetest_three", &dflt, &kv), SAGE_ECONFIG);
    printf("  nats.replicas 3 on one server: %s\n", sage_errdetail());
    ASSERT_TRUE(strstr(sage_errdetail(), "sagetest_three") != NULL);
    ASSERT_TRUE(kv == NULL);
    sage__nio_close(n);
    stop_replica(r);
    natsfix_stop(&f);
}

/* ---------------------------------------------------- what errors say */

/* a registry that cannot be read (its server hangs) is EUNAVAILABLE with
 * the reason, never "no such service" */
static void t_registry_unreadable(void)
{
    struct natsfix f;
    struct replica r;
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_manager *m;
    sage_err e;
    double t0;

    natsfix_start(&f, 1, NULL);
    r = spawn_replica(&f, 0, &sage_example_kv, "kv", 0);
    m = natsfix_manager(&f, 0, 10, &nc, &co);
    th_stop_child(f.pid[0]); /* stopped, not stopping: no request slips through */
    t0 = th_now_ms();
    e = sage_manager_callf(NULL, m, NULL, "kv", "size", "[]");
    t0 = th_now_ms() - t0;
    ASSERT_EQ(kill(f.pid[0], SIGCONT), 0);
    printf("  registry unreadable: %s: %s\n", sage_errname(e), sage_errdetail());
    ASSERT_ERR(e, SAGE_EUNAVAILABLE);
    ASSERT_TRUE(strstr(sage_errdetail(), "service registry") != NULL);
    ASSERT_LE(t0, 6000); /* a bounded wait for the record (twice 2 s at most) */
    /* readable again: the service is there */
    ASSERT_OK(sage_manager_callf(NULL, m, NULL, "kv", "size", "[]"));
    sage_manager_free(m);
    stop_replica(r);
    natsfix_stop(&f);
}

/* a durable call waits for the stream's acknowledgement at most its own
 * remaining time (1 s), not the service's queue_timeout (30 s) */
static void t_durable_publish_bounded(void)
{
    struct natsfix f;
    struct replica r;
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_manager *m;
    double t0, took;
    sage_err e;

    natsfix_start(&f, 1, NULL);
    r = spawn_replica(&f, 0, &sage_example_kv, "dkv", 1);
    m = natsfix_manager(&f, 0, 1, &nc, &co);
    ASSERT_OK(sage_manager_callf(NULL, m, NULL, "dkv", "size", "[]")); /* resolved */
    th_stop_child(f.pid[0]); /* stopped, not stopping: no request slips through */
    t0 = th_now_ms();
    e = sage_manager_callf(NULL, m, NULL, "dkv", "size", "[]");
    took = th_now_ms() - t0;
    ASSERT_EQ(kill(f.pid[0], SIGCONT), 0);
    printf("  durable call, server hung: %s after %.0f ms: %s\n", sage_errname(e), took,
           sage_errdetail());
    ASSERT_ERR(e, SAGE_ETIMEDOUT);
    ASSERT_LE(took, 3000);
    ASSERT_TRUE(strstr(sage_errdetail(), "died") == NULL);
    sage_manager_free(m);
    stop_replica(r);
    natsfix_stop(&f);
}

/* sending while the connection is down and its reconnect buffer is full
 * is a connection error (retried when idempotent), not a system error */
static void t_send_on_broken_connection(void)
{
    struct natsfix f;
    struct replica r;
    sage_nats_conf nc;
    sage_cluster_opts co;
    sage_manager *m;
    sage_arena *a;
    sage_value big;
    sage_err e = SAGE_OK;
    char *blob = malloc(900000);
    int sent = 0;

    ASSERT_TRUE(blob != NULL);
    memset(blob, 'x', 900000);
    natsfix_start(&f, 1, NULL);
    r = spawn_replica(&f, 0, &testsvc, "testsvc", 0);
    m = natsfix_manager(&f, 0, 30, &nc, &co);
    ASSERT_OK(sage_arena_new(&a, 0));
    ASSERT_OK(sage_manager_callf(NULL, m, NULL, "testsvc", "count", "[]")); /* resolved */
    natsfix_kill(&f, 0); /* the client reconnects, forever, buffering what is sent */
    big = sage_bin(blob, 900000);
    /* a send that finds the dead socket before the client noticed fails
     * at once (a broken pipe: ECONNECT too); then the client buffers */
    for (int i = 0; i < 40 && (e == SAGE_OK || sent == 0); i++) {
        sage_future *fut = NULL;

        e = sage_manager_call(&fut, m, &(sage_request){.service = "testsvc", .method = "echo",
                                                      .args = &big, .nargs = 1});
        if (e == SAGE_OK) {
            sent++;
            sage_future_free(fut);
        } else if (sent == 0) {
            ASSERT_ERR(e, SAGE_ECONNECT);
        }
    }
    printf("  %d big calls buffered, then %s: %s\n", sent, sage_errname(e), sage_errdetail());
    ASSERT_ERR(e, SAGE_ECONNECT);
    ASSERT_TRUE(sent >= 1);
    sage_arena_free(a);
    sage_manager_free(m);
    kill(r.pid, SIGKILL);
    forget_ctl(r.ctl);
    close(r.ctl);
    th_wait_child(r.pid, 15000);
    free(blob);
    natsfix_stop(&f);
}

static const struct th_case cases[] = {
    {"calls_cross_servers", t_calls_cross_servers, 60},
    {"load_balanced", t_load_balanced, 120},
    {"kill_replica_plain", t_kill_replica_plain, 120},
    {"kill_replica_idempotent", t_kill_replica_idempotent, 120},
    {"kill_replica_durable", t_kill_replica_durable, 120},
    {"nats_server_killed", t_nats_server_killed, 120},
    {"connection_lost_fails_pending", t_connection_lost_fails_pending, 60},
    {"credentials", t_credentials, 60},
    {"srv_protocol", t_srv_protocol, 60},
    {"stop_answers_in_flight", t_stop_answers_in_flight, 60},
    {"replicas_three_servers", t_replicas_three_servers, 60},
    {"replicas_one_server", t_replicas_one_server, 60},
    {"registry_unreadable", t_registry_unreadable, 60},
    {"durable_publish_bounded", t_durable_publish_bounded, 60},
    {"send_on_broken_connection", t_send_on_broken_connection, 60},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
