/*
 * test_dedupe.c - cluster dedupe: a request id runs once across all the
 * replicas of a NATS service. Two replicas; a hedged call reaches both and
 * runs on one; a repeat after the answer (a retry, a redelivery) gets the
 * first answer without running, whichever replica takes it. Without
 * dedupe, the same hedged call runs twice.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "harness.h"
#include "natsfix_th.h"
#include "sage/cluster.h"
#include "sage/manager.h"
#include "sage/task.h"
#include "testsvc.h"
#include "transport/natsio.h"
#include "wire/wire.h"

#define REPLICAS 2

struct rig {
    struct natsfix nf;
    sage_nats_conf nc;
    sage_cluster_opts co;
    int pid[REPLICAS];
};

static void rig_up(struct rig *r, bool dedupe)
{
    natsfix_start(&r->nf, 1, NULL);
    natsfix_conf(&r->nf, &r->nc, 0);
    memset(&r->co, 0, sizeof r->co);
    r->co.nats = &r->nc;
    r->co.dedupe = dedupe;
    for (int i = 0; i < REPLICAS; i++)
        r->pid[i] = th_serve_child(&testsvc, SAGE_TRANSPORT_NATS, &r->co);
}

static void rig_down(struct rig *r)
{
    for (int i = 0; i < REPLICAS; i++) {
        kill(r->pid[i], SIGKILL);
        th_wait_child(r->pid[i], 5000);
    }
    natsfix_stop(&r->nf);
}

static _Atomic uint64_t total;

static void add_requests(void *arg, const sage_cluster_instance *in)
{
    (void)arg;
    atomic_fetch_add(&total, in->requests);
}

/* runs: the calls the replicas ran, all together ($SRV.STATS) */
static uint64_t runs(struct rig *r)
{
    atomic_store(&total, 0);
    ASSERT_OK(sage_cluster_discover(&r->nc, th_prefix(), "STATS", "testsvc", 500, add_requests,
                                    NULL));
    return atomic_load(&total);
}

/* hedged sends one idempotent sleep(300) hedged after 50 ms: both
 * replicas are asked */
static void hedged(struct rig *r)
{
    sage_manager_opts mo;
    sage_manager *m;
    sage_manager_stats st;
    sage_value ms[1] = {sage_int(300)};

    sage_manager_opts_init(&mo);
    mo.ns = th_prefix();
    mo.cluster = &r->co;
    ASSERT_OK(sage_manager_new(&m, &mo));
    ASSERT_OK(sage_manager_call_sync(NULL, m,
                                     &(sage_request){.service = "testsvc", .method = "sleep",
                                                     .args = ms, .nargs = 1, .idempotent = true,
                                                     .hedge_after_ms = 50, .timeout_ms = 5000},
                                     NULL));
    ASSERT_OK(sage_manager_stats_read(&st, m));
    ASSERT_EQ(st.hedges, 1);
    usleep(400 * 1000); /* a second run, if any, ends within its own 300 ms */
    sage_manager_free(m);
}

static void t_hedged_runs_once(void)
{
    static struct rig r;

    rig_up(&r, true);
    hedged(&r);
    ASSERT_EQ(runs(&r), 1);
    rig_down(&r);
}

static void t_hedged_runs_twice_without(void)
{
    static struct rig r;

    rig_up(&r, false);
    hedged(&r);
    ASSERT_EQ(runs(&r), 2);
    rig_down(&r);
}

/* answers on our inbox */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int answers;
static uint8_t answer[4][256];
static size_t answer_len[4];

static void on_answer(void *arg, struct sage__nio_msg *m)
{
    size_t len;
    const void *d = sage__nio_msg_data(m, &len);
    int i = atomic_load(&answers);

    (void)arg;
    if (i >= 4 || len > sizeof answer[0])
        return;
    pthread_mutex_lock(&lock);
    memcpy(answer[i], d, len);
    answer_len[i] = len;
    pthread_mutex_unlock(&lock);
    atomic_store(&answers, i + 1);
}

/* the same request four times, one after the other, through the queue
 * group (a caller retrying, a stream redelivering): the repeats get the
 * first answer, byte for byte, and do not run, whichever replica takes
 * them */
static void t_repeat_after_answer(void)
{
    static struct rig r;
    struct sage__nio_opts no = {0};
    struct sage__nio *n;
    struct sage__nio_sub *sub;
    sage_value args[2] = {sage_int(20), sage_int(22)};
    sage__req q = {0};
    sage__resp resp;
    char subject[160], inbox[128], reply[160], pattern[160];
    uint8_t buf[512];
    size_t len;
    sage_arena *a;

    rig_up(&r, true);
    no.conf = &r.nc;
    no.name = "dedupe test";
    ASSERT_OK(sage__nio_connect(&n, &no));
    ASSERT_OK(sage__nio_inbox(n, inbox, sizeof inbox));
    snprintf(pattern, sizeof pattern, "%s.*", inbox);
    ASSERT_OK(sage__nio_subscribe(n, pattern, NULL, on_answer, NULL, &sub));
    ASSERT_OK(sage__nio_flush(n, 2000));
    snprintf(reply, sizeof reply, "%s.77", inbox); /* as sagesvc's callers make it */
    snprintf(subject, sizeof subject, "sage.%s.svc.testsvc", th_prefix());
    q.id = 77;
    q.service = "testsvc";
    q.service_len = 7;
    q.method = "add";
    q.method_len = 3;
    q.args = sage_array(args, 2);
    q.kwargs = sage_map(NULL, 0);
    q.reply_to = reply;
    q.reply_to_len = strlen(reply);
    q.timeout_ms = 5000;
    ASSERT_OK(sage__wire_req_encode(&q, buf, sizeof buf, &len));
    for (int i = 0; i < 4; i++) {
        double end = th_now_ms() + 3000;

        ASSERT_OK(sage__nio_publish(n, subject, NULL, buf, len, NULL, 0));
        while (atomic_load(&answers) <= i && th_now_ms() < end)
            usleep(1000);
        ASSERT_EQ(atomic_load(&answers), i + 1);
    }
    ASSERT_OK(sage_arena_new(&a, 0));
    ASSERT_OK(sage__wire_resp_decode(answer[0], answer_len[0], a, &resp));
    ASSERT_TRUE(resp.ok && resp.id == 77 && resp.result.as.i == 42);
    for (int i = 1; i < 4; i++) {
        ASSERT_EQ(answer_len[i], answer_len[0]);
        ASSERT_TRUE(memcmp(answer[i], answer[0], answer_len[0]) == 0);
    }
    ASSERT_EQ(runs(&r), 1);
    sage_arena_free(a);
    sage__nio_unsubscribe(sub);
    sage__nio_close(n);
    rig_down(&r);
}

static const struct th_case cases[] = {
    {"hedged_runs_once", t_hedged_runs_once, 60},
    {"hedged_runs_twice_without", t_hedged_runs_twice_without, 60},
    {"repeat_after_answer", t_repeat_after_answer, 60},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
