/* cmd_status.c - sagesvc status: health figures of host-registered services. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "json.h"
#include "opts.h"
#include "sage/task.h"
#include "replicas.h"
#include "status_cluster.h"

static const char help[] =
    "NAME\n"
    "    sagesvc status - show the health figures of services\n"
    "\n"
    "SYNOPSIS\n"
    "    sagesvc status [SERVICE] [--json] [-c FILE] [-n NS]\n"
    "    sagesvc status --cluster [SERVICE] [--nats URL] [--wait MS] [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Reads the health figures a service publishes in the host registry; any\n"
    "    process of the same user may read them, the service is not called.\n"
    "\n"
    "    Without SERVICE, prints one summary line per service of the namespace:\n"
    "    name, state, pid, uptime, requests, errors, in flight, queue depth, and\n"
    "    the latency p50 and p99 of its methods in microseconds.\n"
    "\n"
    "    With SERVICE, prints every figure:\n"
    "        state, pid, owner alive   lifecycle state and the hosting process\n"
    "        uptime                    time since the service started\n"
    "        requests, errors          calls answered; those answered with an error\n"
    "        in flight, queue depth    calls running now, and waiting in its queue\n"
    "        expired                   calls dropped: their caller had given up\n"
    "        malformed                 undecodable requests\n"
    "        rejected                  calls refused by middleware\n"
    "        queue full                times a caller found the request queue full\n"
    "        latency p50/p99 (us)      method run time, all methods\n"
    "        last activity             time since the last call (never if none)\n"
    "        heartbeat age             time since its listener last proved alive\n"
    "        workers, queue size, queue timeout   its configuration\n"
    "        last drop                 why the last request was dropped unanswered\n"
    "    and a table of its methods: requests, errors, latency p50 and p99 (us).\n"
    "\n"
    "    With --cluster, asks the replicas in the cluster (NATS) instead, with\n"
    "    $SRV.STATS, and reads their hosts' records: one line per replica, with\n"
    "    its id, host id (the `sagesvc host` running it, '-' if none), machine,\n"
    "    pid, state, requests, errors, average processing time (us), delivery\n"
    "    and last error. STATE is its host's word: running; unhealthy (it left\n"
    "    its host's last ping unanswered; after probe_timeout its host restarts\n"
    "    it); starting, backoff, stopping, failed; unknown when its host is down.\n"
    "    A replica that does not answer within --wait is still listed, from its\n"
    "    host's record, with no figures.\n"
    "\n"
    "OPTIONS\n"
    "    --json\n"
    "        Print JSON: one object for SERVICE, else an array of them, with the\n"
    "        keys name, namespace, transport, state, pid, owner_alive, uptime_s,\n"
    "        requests, errors, in_flight, queue_depth, expired, malformed,\n"
    "        rejected, queue_full, latency_p50_us, latency_p99_us,\n"
    "        last_activity_ns, last_activity_age_s (null if never), heartbeat_ns,\n"
    "        heartbeat_age_s, max_workers, request_queue_size, queue_timeout_s,\n"
    "        last_drop, and methods: an array of {name, requests, errors,\n"
    "        latency_p50_us, latency_p99_us}. With --cluster, an array of\n"
    "        {name, namespace, id, host (machine), host_id, pid, state, answered,\n"
    "        heartbeat_age_s, started, version, requests, errors, average_us,\n"
    "        durable, last_error, subject}.\n"
    "    --cluster\n"
    "        Ask the cluster's replicas, on the NATS servers of the configuration's\n"
    "        nats section (default nats://127.0.0.1:4222).\n"
    CLI_NATS_CLUSTER_HELP
    "    --wait MS\n"
    "        How long to collect the replicas' answers (1..60000). Default 500.\n"
    CLI_CONFIG_OPT_HELP
    "        Read the configuration from FILE (for its namespace).\n"
    CLI_NAMESPACE_OPT_HELP
    "        The namespace. Default: the configuration's, else \"default\".\n"
    CLI_HELP_HELP
    "\n" CLI_CONFIG_HELP "\n" CLI_EXIT_STATUS_HELP
    "\n"
    "EXAMPLES\n"
    "    sagesvc status\n"
    "    sagesvc status kv\n"
    "    sagesvc status kv --json | jq .requests\n"
    "    sagesvc status --cluster kv\n";

static const struct option own_options[] = {
    {"wait", required_argument, NULL, 'W'},
    {NULL, 0, NULL, 0},
};

static void print_help(FILE *out)
{
    fputs(help, out);
}

static const struct cli_optspec spec = {
    .shared = CLI_OPT_CONFIG | CLI_OPT_NAMESPACE | CLI_OPT_JSON | CLI_OPT_CLUSTER | CLI_OPT_NATS,
    .own = own_options,
    .help = print_help,
};

static void age(char *buf, size_t cap, long long now, long long then)
{
    if (then == 0)
        snprintf(buf, cap, "never");
    else
        cli_format_age(buf, cap, now > then ? now - then : 0);
}

static void print_one(const sage_status *st, long long now)
{
    char up[32], last[32], hb[32];

    cli_format_age(up, sizeof up, st->owner_alive ? (long long)(st->uptime_s * 1e9) : -1);
    age(last, sizeof last, now, st->last_activity_ns);
    age(hb, sizeof hb, now, st->heartbeat_ns);
    printf("service:        %s\n", st->name);
    printf("namespace:      %s\n", st->ns);
    printf("transport:      %s\n", sage_transport_name(st->transport));
    printf("state:          %s%s%s\n", sage_state_name(st->state), st->reason[0] ? ": " : "",
           st->reason);
    printf("pid:            %d\n", (int)st->pid);
    printf("owner alive:    %s\n", st->owner_alive ? "yes" : "no (dead)");
    printf("uptime:         %s\n", up);
    printf("requests:       %llu\n", (unsigned long long)st->requests);
    printf("errors:         %llu\n", (unsigned long long)st->errors);
    printf("in flight:      %llu\n", (unsigned long long)st->in_flight);
    printf("queue depth:    %llu\n", (unsigned long long)st->queue_depth);
    printf("expired:        %llu\n", (unsigned long long)st->expired);
    printf("malformed:      %llu\n", (unsigned long long)st->malformed);
    printf("rejected:       %llu\n", (unsigned long long)st->rejected);
    printf("queue full:     %llu\n", (unsigned long long)st->queue_full);
    printf("latency p50:    %.1f us\n", st->latency_p50_us);
    printf("latency p99:    %.1f us\n", st->latency_p99_us);
    printf("last activity:  %s%s\n", last, st->last_activity_ns ? " ago" : "");
    printf("heartbeat age:  %s\n", hb);
    printf("workers:        %u\n", (unsigned)st->max_workers);
    printf("queue size:     %u\n", (unsigned)st->request_queue_size);
    printf("queue timeout:  %g s\n", st->queue_timeout_ms / 1e3);
    printf("dropped:        %llu\n", (unsigned long long)st->dropped);
    printf("last drop:      %s\n", st->last_drop[0] ? st->last_drop : "-");
    if (st->nmethods == 0)
        return;
    printf("\n%-24s %10s %10s %12s %12s\n", "METHOD", "REQUESTS", "ERRORS", "P50_US", "P99_US");
    for (size_t i = 0; i < st->nmethods; i++) {
        const sage_method_status *m = &st->methods[i];

        printf("%-24s %10llu %10llu %12.1f %12.1f\n", m->name, (unsigned long long)m->requests,
               (unsigned long long)m->errors, m->latency_p50_us, m->latency_p99_us);
    }
}

static void print_header(void)
{
    printf("%-20s %-9s %8s %10s %10s %8s %8s %7s %10s %10s\n", "NAME", "STATE", "PID", "UPTIME",
           "REQUESTS", "ERRORS", "INFLIGHT", "QUEUE", "P50_US", "P99_US");
}

static void print_line(const sage_status *st)
{
    char up[32];

    cli_format_age(up, sizeof up, st->owner_alive ? (long long)(st->uptime_s * 1e9) : -1);
    printf("%-20s %-9s %8d %10s %10llu %8llu %8llu %7llu %10.1f %10.1f\n", st->name,
           st->owner_alive ? sage_state_name(st->state) : "dead", (int)st->pid, up,
           (unsigned long long)st->requests, (unsigned long long)st->errors,
           (unsigned long long)st->in_flight, (unsigned long long)st->queue_depth,
           st->latency_p50_us, st->latency_p99_us);
}

/* The statuses to print as JSON, and the time their ages count to. */
struct statuses {
    const sage_status *v;
    long long now;
};

/* Builds status i of the statuses (arg) as a map in a. */
static sage_err to_value(sage_arena *a, const void *arg, size_t i, sage_value *out)
{
    const struct statuses *l = arg;
    const sage_status *st = &l->v[i];
    long long now = l->now;
    sage_value *methods = sage_arena_alloc(a, (st->nmethods ? st->nmethods : 1) * sizeof *methods);
    sage_value last_age = sage_nil(), marr;
    sage_err r;

    if (methods == NULL)
        return SAGE_ENOMEM;
    for (size_t k = 0; k < st->nmethods; k++) {
        const sage_method_status *m = &st->methods[k];

        r = sage_pack(&methods[k], a, "{s:s s:u s:u s:f s:f}", "name", m->name, "requests", m->requests, "errors", m->errors, "latency_p50_us", m->latency_p50_us, "latency_p99_us", m->latency_p99_us);
        if (r != SAGE_OK)
            return r;
    }
    marr = sage_array(methods, st->nmethods);
    if (st->last_activity_ns != 0)
        last_age = sage_double((double)(now - st->last_activity_ns) / 1e9);
    return sage_pack(out, a, "{s:s s:s s:s s:s s:i s:b s:f s:u s:u s:u s:u s:u s:u s:u s:u s:f s:f "
                     "s:I s:v s:I s:f s:u s:u s:f s:s s:u s:s s:v}", "name", st->name, "namespace", st->ns, "transport", sage_transport_name(st->transport), "state", sage_state_name(st->state), "pid", (int)st->pid, "owner_alive", st->owner_alive != 0, "uptime_s", st->uptime_s, "requests", st->requests, "errors", st->errors, "in_flight", st->in_flight, "queue_depth", st->queue_depth, "expired", st->expired, "malformed", st->malformed, "rejected", st->rejected, "queue_full", st->queue_full, "latency_p50_us", st->latency_p50_us, "latency_p99_us", st->latency_p99_us, "last_activity_ns", (int64_t)st->last_activity_ns, "last_activity_age_s", &last_age, "heartbeat_ns", (int64_t)st->heartbeat_ns, "heartbeat_age_s", st->heartbeat_ns ? (double)(now - st->heartbeat_ns) / 1e9 : -1.0, "max_workers", (uint64_t)st->max_workers, "request_queue_size", (uint64_t)st->request_queue_size, "queue_timeout_s", st->queue_timeout_ms / 1e3, "last_drop", st->last_drop, "dropped", st->dropped, "reason", st->reason, "methods", &marr);
}

static int print_json(const sage_status *sts, size_t n, int one)
{
    struct statuses l = {sts, cli_now_ns()};

    return cli_print_items(n, one, to_value, &l, "printing the status");
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const sage_status *)a)->name, ((const sage_status *)b)->name);
}

/* Every service of ns: a summary line each, or a JSON array. */
static int status_all(const char *ns, int json)
{
    sage_host_entry *es = NULL;
    sage_status *sts = NULL;
    size_t nes = 0, n = 0;
    int status = CLI_OK;
    sage_err r;

    r = cli_host_entries(ns, 0, &es, &nes);
    if (r == SAGE_OK && nes > 0 && (sts = calloc(nes, sizeof *sts)) == NULL)
        r = SAGE_ENOMEM;
    if (r != SAGE_OK) {
        cli_error(r, "reading the host registry");
        free(es);
        return cli_exit_for(r);
    }
    /* A service that left between listing and reading is simply gone. */
    for (size_t i = 0; i < nes; i++)
        if (sage_host_status(&sts[n], ns, es[i].name) == SAGE_OK)
            n++;
    if (n > 0)
        qsort(sts, n, sizeof *sts, by_name);
    if (json) {
        status = print_json(sts, n, 0);
    } else {
        print_header();
        for (size_t i = 0; i < n; i++)
            print_line(&sts[i]);
    }
    free(sts);
    free(es);
    return status;
}

int cmd_status(int argc, char **argv)
{
    struct cli_common c;
    struct cli_opts o;
    const char *ns;
    sage_config *cfg = NULL;
    int opt, status;
    long wait_ms = CLI_REPLICAS_WAIT_MS;
    sage_status st;
    sage_err r;

    cli_opts_init(&o, argv[0], &spec, &c);
    while ((opt = cli_opts_next(&o, argc, argv)) >= 0) {
        if (opt == 'W' && (status = cli_replicas_wait(argv[0], optarg, &wait_ms)) != CLI_OK)
            return status;
    }
    if (opt == CLI_OPTS_STOP)
        return cli_opts_exit(&o);
    if (argc - optind > 1)
        return cli_usage(argv[0], "unexpected argument '%s'", argv[optind + 1]);
    if ((status = cli_load_config_or_fail(c.config, &cfg)) != CLI_OK)
        return status;
    ns = cli_namespace(c.ns, cfg);
    if (c.cluster) {
        status = cli_status_cluster(cfg, c.nats, ns, optind < argc ? argv[optind] : NULL,
                                    wait_ms, c.json);
    } else if (optind == argc) {
        status = status_all(ns, c.json);
    } else if ((r = sage_host_status(&st, ns, argv[optind])) != SAGE_OK) {
        cli_error(r, "%s", argv[optind]);
        status = cli_exit_for(r);
    } else if (c.json) {
        status = print_json(&st, 1, 1);
    } else {
        print_one(&st, cli_now_ns());
        status = CLI_OK;
    }
    sage_config_free(cfg);
    return status;
}
