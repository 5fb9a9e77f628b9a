/*
 * bench_cluster.c - "sage-bench cluster": what a method call across NATS
 * costs through sagesvc, against raw nats.c request/reply on the same
 * server with the same payload, in the same run; sync (one call at a time:
 * p50/p99) and async (about 1000 outstanding: calls per second).
 *
 * Each row is one run (call_run.c): fresh children, the caller pinned to
 * one CPU and the service (or responder) to another, before they touch
 * anything; figures back through a shared page. The nats-server is started
 * once, unpinned (cluster_server.c), unless --nats names one. JSON lines go
 * out as rows are measured; the table and the targets once all have run.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "benches.h"
#include "call_wire.h"
#include "cluster.h"

#define EXIT_SKIP 77 /* no nats-server to start: ctest's "skipped" */

static const char usage[] =
    "usage: sage-bench cluster [--json] [--quick] [--nats URL]\n"
    "\n"
    "Times a call of a method that echoes its first argument, with 64 bytes of\n"
    "encoded args ([a 52-byte string, an int]), across NATS, two ways:\n"
    "  sage  a SAGE_TRANSPORT_NATS task in one process, a sage_manager with a\n"
    "        cluster connection in another\n"
    "  nats  raw nats.c request/reply carrying sagesvc's MessagePack envelope\n"
    "        both ways (a queue-group responder; send-ASAP on both ends)\n"
    "  sage_dedupe  sage, the service with cluster dedupe (a JetStream key-value\n"
    "        store of request ids and answers shared by its replicas): its cost\n"
    "The caller is pinned to one CPU, the service to another; the nats-server\n"
    "is not pinned.\n"
    "cases:\n"
    "  sync   one call at a time: p50 and p99\n"
    "  async  about 1000 calls outstanding: calls per second\n"
    "  hedging  sage only: 3 replicas, one frozen (SIGSTOP) for the middle third\n"
    "         of the run; idempotent sync calls with and without hedge_after:\n"
    "         p50, p99, errors (timeouts) and hedges sent\n"
    "\n"
    "  --json      one JSON object per line on stdout (notes go to stderr)\n"
    "  --quick     smoke run, a few seconds\n"
    "  --nats URL  use this server (JetStream on) instead of starting one on\n"
    "              127.0.0.1 (exit 77 if none is given and none is installed)\n";

static const struct call_params full = {
    .warm_ns = 300 * 1000000LL,
    .sync_ns = 3000 * 1000000LL,
    .sync_min = 5000,
    .sync_max = 500000,
    .async_ns = 3000 * 1000000LL,
    .window = 1000,
    .hedge_ns = 6000 * 1000000LL,
};

static const struct call_params quick = {
    .warm_ns = 50 * 1000000LL,
    .sync_ns = 400 * 1000000LL,
    .sync_min = 1000,
    .sync_max = 50000,
    .async_ns = 400 * 1000000LL,
    .window = 1000,
    .hedge_ns = 1500 * 1000000LL,
};

/* the reference first, so each sage row follows the row it is compared to */
static const struct call_impl *const impls[] = {&cluster_nats_impl, &cluster_sage_impl,
                                                &cluster_dedupe_impl};
#define NIMPLS (sizeof impls / sizeof impls[0])

/* Where the runs happen. */
struct setting {
    const struct call_params *par;
    const char *url;
    int caller_cpu, host_cpu;
};

static int run_seq; /* makes the raw impl's subjects unique within this process */

/* nats.c starts library threads (timers, callbacks) on first use, and a
 * forked child inherits the library's state without them: the parent must
 * never call it. Its own NATS errands run in a child of their own. */
struct errand {
    const char *url;
    const char *ns; /* forget: the record's namespace; NULL: probe */
};

static int child_errand(void *arg, int index)
{
    const struct errand *e = arg;

    (void)index;
    if (e->ns == NULL)
        return cluster_nats_probe(e->url);
    cluster_nats_forget(e->url, e->ns, CALL_SERVICE);
    return 0;
}

static int errand(const struct setting *s, const char *ns)
{
    struct errand e = {s->url, ns};
    pid_t pid = bench_spawn(s->caller_cpu, CLUSTER_ERRAND_TIMEOUT_S, child_errand, &e, 0);

    return bench_reap(&pid, 1, CLUSTER_ERRAND_TIMEOUT_S + 5, ns ? "cluster cleanup" :
                                                                  "cluster probe");
}

/* run runs impl in kase; 0 with the figures in *fig */
static int run(const struct setting *s, const struct call_impl *impl, enum call_case kase,
               struct call_fig *fig)
{
    struct call_run r;
    struct call_ctl ctl;
    char label[64];
    int rc;

    memset(&r, 0, sizeof r);
    r.impl = impl;
    r.kase = kase;
    r.par = s->par;
    r.bench = "cluster";
    r.caller_cpu = s->caller_cpu;
    r.host_cpu = s->host_cpu;
    r.url = s->url;
    snprintf(r.ns, sizeof r.ns, "benchc%d", (int)getpid());
    snprintf(r.subject, sizeof r.subject, "benchc.%d.%d.%s", (int)getpid(), ++run_seq,
             CALL_SERVICE);
    snprintf(label, sizeof label, "cluster %s %s", impl->name, call_case_names[kase]);
    rc = call_run_one(&r, CLUSTER_RUN_TIMEOUT_S, label, &ctl);
    if (rc == 0)
        *fig = ctl.fig;
    return rc;
}

/* ------------------------------------------------------------------- main */

/* take_nats removes "--nats URL" (or "--nats=URL") from argv, keeping the
 * rest in order for bench_parse_opts; returns the URL, NULL if absent, or
 * "" when --nats lacks its value. */
static const char *take_nats(int *argc, char **argv)
{
    const char *url = NULL;
    int k = 1;

    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--nats") == 0) {
            url = i + 1 < *argc ? argv[++i] : "";
        } else if (strncmp(argv[i], "--nats=", 7) == 0) {
            url = argv[i] + 7;
        } else {
            argv[k++] = argv[i];
        }
    }
    *argc = k;
    return url;
}

static void note_sizes(const char *ns)
{
    size_t args, req, resp, rreq, rresp;
    char reply_to[96];

    /* sagesvc's reply_to over NATS: "<inbox>.<id>", a 29-byte inbox and ids
     * of 10 to 14 digits here; its request adds sent_ns, 9 bytes */
    snprintf(reply_to, sizeof reply_to, "_INBOX.%022d.%014d", 0, 0);
    call_wire_sizes(reply_to, &args, &req, &resp);
    snprintf(reply_to, sizeof reply_to, "_INBOX.%022d.%023d", 0, 0);
    call_wire_sizes(reply_to, &args, &rreq, &rresp);
    if (args != CALL_ARGS_BYTES)
        bench_note("cluster: the args encode to %zu bytes, not %d", args, CALL_ARGS_BYTES);
    bench_note("cluster: envelope sizes: args %zu B; sage request %zu B, response %zu B; nats "
               "request %zu B, response %zu B (namespace %s)",
               args, req + 9, resp, rreq, rresp, ns);
}

int bench_cluster_main(int argc, char **argv)
{
    struct call_result res[CALL_CASE_COUNT * NIMPLS];
    struct cluster_hedge_fig hedges[2];
    size_t nhedges = 0;
    struct bench_opts o;
    struct setting s;
    char url[128], ns[64];
    const char *given, *server = NULL;
    size_t nres = 0;
    int failures = 0, cpus[2], ncpus, rc;
    int64_t t0 = bench_now_ns();

    given = take_nats(&argc, argv);
    if ((rc = bench_parse_opts(argc, argv, &o, usage)) != BENCH_RUN)
        return rc;
    if (given != NULL && given[0] == '\0') {
        fprintf(stderr, "sage-bench cluster: --nats needs a URL\n%s", usage);
        return 2;
    }
    bench_install_signals();
    if (given == NULL) {
        server = cluster_server_path();
        if (server == NULL) {
            bench_note("cluster: no nats-server installed (not in /usr/sbin, not on PATH) and "
                       "no --nats URL: skipped");
            return EXIT_SKIP;
        }
        if (cluster_server_start(server, url, sizeof url) != 0)
            return 1;
    } else {
        snprintf(url, sizeof url, "%s", given);
    }

    memset(&s, 0, sizeof s);
    s.par = o.quick ? &quick : &full;
    s.url = url;
    ncpus = bench_cpus(cpus, 2);
    s.caller_cpu = cpus[0];
    s.host_cpu = ncpus >= 2 ? cpus[1] : cpus[0];
    if (errand(&s, NULL) != 0) {
        cluster_server_stop();
        return 1;
    }
    if (ncpus < 2)
        bench_note("only one CPU (%d): caller and service share it", cpus[0]);
    snprintf(ns, sizeof ns, "benchc%d", (int)getpid());
    bench_note("cluster: %s nats-server at %s, not pinned; caller on CPU %d, service on CPU %d",
               server ? "private" : "given", url, s.caller_cpu, s.host_cpu);
    note_sizes(ns);

    for (int k = 0; k < CALL_CASE_COUNT; k++) {
        for (size_t i = 0; i < NIMPLS; i++) {
            struct call_result *x = &res[nres++];

            memset(x, 0, sizeof *x);
            x->impl = impls[i]->name;
            x->kase = (enum call_case)k;
            snprintf(x->cpus, sizeof x->cpus, "%d,%d", s.caller_cpu, s.host_cpu);
            if (!cluster_server_alive()) {
                failures++; /* the rest would fail the same way */
                continue;
            }
            x->ok = run(&s, impls[i], (enum call_case)k, &x->fig) == 0;
            if (!x->ok)
                failures++;
            else if (o.json)
                cluster_print_json(x);
        }
    }
    /* hedging: without, then with */
    for (int h = 0; h < 2; h++) {
        char hns[64];

        snprintf(hns, sizeof hns, "benchh%d-%d", (int)getpid(), h);
        if (!cluster_server_alive() ||
            cluster_hedge_run(url, hns, h == 1, s.par->hedge_ns, s.caller_cpu, s.host_cpu,
                              &hedges[nhedges]) != 0) {
            failures++;
            continue;
        }
        if (o.json)
            cluster_print_hedge(true, &hedges[nhedges], 1);
        nhedges++;
        if (server == NULL)
            errand(&s, hns);
    }
    if (failures)
        cluster_server_alive(); /* says so if the server died in the last run */
    if (!o.json) {
        cluster_print_table(res, nres);
        cluster_print_hedge(false, hedges, nhedges);
        cluster_print_targets(res, nres);
    }
    fflush(stdout);
    if (server == NULL) /* a private server's records go with it */
        errand(&s, ns);
    cluster_server_stop();
    bench_res_remove_all();

    return bench_finish("cluster", &o, t0, failures);
}
