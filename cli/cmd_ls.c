/* cmd_ls.c - sagesvc ls: the services in the host registry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "json.h"
#include "opts.h"
#include "replicas.h"
#include "sage/task.h"

static const char help[] =
    "NAME\n"
    "    sagesvc ls - list the services on this host\n"
    "\n"
    "SYNOPSIS\n"
    "    sagesvc ls [--all] [--clean] [--json] [--cluster] [--nats URL] [-c FILE]\n"
    "               [-n NS]\n"
    "\n"
    "DESCRIPTION\n"
    "    Lists the services of the current user registered in the host registry\n"
    "    (those hosted with the shm transport, callable by name from any process\n"
    "    of that user on this machine), one line each:\n"
    "\n"
    "        NAME       the service's registered name\n"
    "        NAMESPACE  its namespace\n"
    "        TRANSPORT  shm\n"
    "        PID        the process hosting it\n"
    "        STATE      created, starting, running, degraded, stopping, stopped or\n"
    "                   failed; dead when the hosting process is gone\n"
    "        UPTIME     time since it started (- when its process is dead)\n"
    "        ALIVE      yes, or dead when the hosting process is gone\n"
    "\n"
    "    Entries of dead processes (killed before they could unregister) stay\n"
    "    until removed with --clean; calling them fails with status 8.\n"
    "\n"
    "    When the namespace has no services but others do, a note on stderr\n"
    "    says how many, and that --all lists them (not with --json or --cluster).\n"
    "\n"
    "    With --cluster, the replicas in the cluster (NATS) follow, as they answer\n"
    "    $SRV.STATS within --wait and as their hosts' records say: TRANSPORT nats;\n"
    "    HOST_ID, the `sagesvc host` running it ('-' when none does, as for this\n"
    "    host's shm services); MACHINE, its machine's hostname; STATE, its host's\n"
    "    word (running, unhealthy: it left its host's last ping unanswered,\n"
    "    starting, backoff, stopping, failed; unknown when its host is down);\n"
    "    ALIVE no for one that did not answer.\n"
    "\n"
    "OPTIONS\n"
    "    --all\n"
    "        List every namespace, not only the current one.\n"
    "    --clean\n"
    "        After listing, remove the entries of dead processes and their request\n"
    "        queues.\n"
    "    --json\n"
    "        Print a JSON array of objects with the keys name, namespace,\n"
    "        transport, pid, state (as in the table), alive (boolean), uptime_s,\n"
    "        started_ns, heartbeat_age_s and queue; cluster replicas have\n"
    "        transport nats and the keys host (its machine), host_id (its sagesvc\n"
    "        host, \"\" if none), id, requests, errors and durable instead of\n"
    "        queue; their heartbeat_age_s is the time since they last answered (0\n"
    "        for an answer now; -1 if never).\n"
    "    --cluster\n"
    "        Also list the cluster's replicas, from the NATS servers of the\n"
    "        configuration's nats section (default nats://127.0.0.1:4222).\n"
    CLI_NATS_CLUSTER_HELP
    "    --wait MS\n"
    "        How long to collect the replicas' answers (1..60000). Default 500.\n"
    CLI_CONFIG_OPT_HELP
    "        Read the configuration from FILE (for its namespace).\n"
    CLI_NAMESPACE_OPT_HELP
    "        List namespace NS. Default: the configuration's, else \"default\".\n"
    CLI_HELP_HELP
    "\n" CLI_CONFIG_HELP "\n" CLI_EXIT_STATUS_HELP
    "\n"
    "EXAMPLES\n"
    "    sagesvc ls\n"
    "    sagesvc ls --all --json\n"
    "    sagesvc ls -n demo --clean\n"
    "    sagesvc ls --cluster --nats nats://10.0.0.5:4222\n";

static const struct option own_options[] = {
    {"all", no_argument, NULL, 'A'},
    {"clean", no_argument, NULL, 'C'},
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

/* This host's entries (cli_host_entries). */
struct entries {
    sage_host_entry *v;
    size_t n;
};

static int by_ns_name(const void *a, const void *b)
{
    const sage_host_entry *x = a, *y = b;
    int c = strcmp(x->ns, y->ns);

    return c != 0 ? c : strcmp(x->name, y->name);
}

/* The STATE of e: its lifecycle state, or "dead" once its process is gone,
 * whatever state that process left behind (as sagesvc status says). */
static const char *entry_state(const sage_host_entry *e)
{
    return e->owner_alive ? sage_state_name(e->state) : "dead";
}

static void print_table(const struct entries *l, const struct cli_replicas *rl, long long now)
{
    if (rl == NULL)
        printf("%-20s %-16s %-9s %8s %-9s %10s %s\n", "NAME", "NAMESPACE", "TRANSPORT", "PID",
               "STATE", "UPTIME", "ALIVE");
    else
        printf("%-20s %-16s %-9s %-20s %-16s %8s %-9s %10s %s\n", "NAME", "NAMESPACE",
               "TRANSPORT", "HOST_ID", "MACHINE", "PID", "STATE", "UPTIME", "ALIVE");
    for (size_t i = 0; i < l->n; i++) {
        const sage_host_entry *e = &l->v[i];
        char up[32];

        cli_format_age(up, sizeof up, e->owner_alive ? now - e->started_ns : -1);
        if (rl == NULL)
            printf("%-20s %-16s %-9s %8d %-9s %10s %s\n", e->name, e->ns, "shm", (int)e->pid,
                   entry_state(e), up, e->owner_alive ? "yes" : "dead");
        else
            printf("%-20s %-16s %-9s %-20s %-16s %8d %-9s %10s %s\n", e->name, e->ns, "shm", "-",
                   "-", (int)e->pid, entry_state(e), up, e->owner_alive ? "yes" : "dead");
    }
    for (size_t i = 0; rl && i < rl->n; i++) {
        const struct cli_replica *r = &rl->v[i];
        const sage_cluster_instance *x = &r->inst;
        long long t0 = cli_replica_started_ns(x);
        char up[32];

        cli_format_age(up, sizeof up, t0 > 0 && now > t0 ? now - t0 : -1);
        printf("%-20s %-16s %-9s %-20s %-16s %8d %-9s %10s %s\n", x->name, x->ns, "nats",
               r->host_id[0] ? r->host_id : "-", x->host, (int)x->pid, r->state, up,
               r->answered ? "yes" : "no");
    }
}

/* What print_json lists: this host's entries, then the replicas (if any). */
struct listing {
    const struct entries *l;
    const struct cli_replicas *rl; /* NULL: no --cluster */
    long long now;
};

static sage_err entry_value(sage_arena *a, const sage_host_entry *e, long long now,
                            sage_value *out)
{
    return sage_pack(out, a, "{s:s s:s s:s s:i s:s s:b s:f s:I s:f s:s}", "name", e->name,
                     "namespace", e->ns, "transport", "shm", "pid", (int)e->pid, "state",
                     entry_state(e), "alive", e->owner_alive != 0, "uptime_s",
                     e->owner_alive ? (double)(now - e->started_ns) / 1e9 : 0.0, "started_ns",
                     (int64_t)e->started_ns, "heartbeat_age_s",
                     e->heartbeat_ns ? (double)(now - e->heartbeat_ns) / 1e9 : -1.0, "queue",
                     e->queue);
}

static sage_err replica_value(sage_arena *a, const struct cli_replica *r, long long now,
                              sage_value *out)
{
    const sage_cluster_instance *x = &r->inst;
    long long t0 = cli_replica_started_ns(x);

    return sage_pack(out, a, "{s:s s:s s:s s:i s:s s:b s:f s:I s:f s:s s:s s:s s:I s:I s:b}",
                     "name", x->name, "namespace", x->ns, "transport", "nats", "pid", (int)x->pid,
                     "state", r->state, "alive", r->answered, "uptime_s",
                     t0 > 0 && now > t0 ? (double)(now - t0) / 1e9 : 0.0, "started_ns",
                     (int64_t)t0, "heartbeat_age_s", r->heartbeat_age_s, "host", x->host,
                     "host_id", r->host_id, "id", x->id, "requests", (int64_t)x->requests,
                     "errors", (int64_t)x->errors, "durable", x->durable != 0);
}

/* Builds item i of the listing (arg) as a map in a. */
static sage_err item_value(sage_arena *a, const void *arg, size_t i, sage_value *out)
{
    const struct listing *li = arg;

    if (i < li->l->n)
        return entry_value(a, &li->l->v[i], li->now, out);
    return replica_value(a, &li->rl->v[i - li->l->n], li->now, out);
}

static int print_json(const struct entries *l, const struct cli_replicas *rl, long long now)
{
    struct listing li = {l, rl, now};

    return cli_print_items(l->n + (rl ? rl->n : 0), 0, item_value, &li, "printing the list");
}

/* others counts the host registry's services outside namespace ns; 0 if
 * the registry cannot be read (the count only feeds a note). */
static size_t others(const char *ns)
{
    sage_host_entry *v = NULL;
    size_t n = 0, k = 0;

    if (cli_host_entries(NULL, 0, &v, &n) != SAGE_OK)
        return 0;
    for (size_t i = 0; i < n; i++)
        k += strcmp(v[i].ns, ns) != 0;
    free(v);
    return k;
}

int cmd_ls(int argc, char **argv)
{
    struct cli_common c;
    struct cli_opts o;
    const char *ns;
    int all = 0, clean = 0, opt, status;
    long wait_ms = CLI_REPLICAS_WAIT_MS;
    struct entries l = {NULL, 0};
    struct cli_replicas rl = {NULL, 0, 0, 0};
    sage_config *cfg = NULL;
    size_t dead = 0, elsewhere = 0;
    sage_err r;

    cli_opts_init(&o, argv[0], &spec, &c);
    while ((opt = cli_opts_next(&o, argc, argv)) >= 0) {
        switch (opt) {
        case 'A':
            all = 1;
            break;
        case 'C':
            clean = 1;
            break;
        case 'W':
            if ((status = cli_replicas_wait(argv[0], optarg, &wait_ms)) != CLI_OK)
                return status;
            break;
        }
    }
    if (opt == CLI_OPTS_STOP)
        return cli_opts_exit(&o);
    if (optind < argc)
        return cli_usage(argv[0], "unexpected argument '%s'", argv[optind]);
    if ((status = cli_load_config_or_fail(c.config, &cfg)) != CLI_OK)
        return status;
    ns = cli_namespace(c.ns, cfg);
    r = cli_host_entries(all ? NULL : ns, clean, &l.v, &l.n);
    if (r != SAGE_OK) {
        cli_error(r, "reading the host registry");
        sage_config_free(cfg);
        return cli_exit_for(r);
    }
    if (c.cluster &&
        (status = cli_replicas_collect(cfg, c.nats, all ? NULL : ns, NULL, wait_ms,
                                       &rl)) != CLI_OK) {
        sage_config_free(cfg);
        free(l.v);
        cli_replicas_free(&rl);
        return status;
    }
    if (l.n > 0) /* qsort must not see NULL, even for no items */
        qsort(l.v, l.n, sizeof *l.v, by_ns_name);
    if (c.json) {
        status = print_json(&l, c.cluster ? &rl : NULL, cli_now_ns());
    } else {
        print_table(&l, c.cluster ? &rl : NULL, cli_now_ns());
        status = CLI_OK;
    }
    for (size_t i = 0; i < l.n; i++)
        dead += !l.v[i].owner_alive;
    if (clean && dead > 0 && !c.json)
        fprintf(stderr, "sagesvc ls: removed %zu entr%s of dead processes\n", dead,
                dead == 1 ? "y" : "ies");
    /* An empty namespace while others have services: the user most likely
     * looks in the wrong one. */
    if (!all && !c.json && !c.cluster && l.n == 0 && (elsewhere = others(ns)) > 0)
        fprintf(stderr, "sagesvc ls: no services in namespace '%s'; %zu in other namespaces "
                        "(sagesvc ls --all)\n",
                ns, elsewhere);
    sage_config_free(cfg); /* it owns ns */
    free(l.v);
    cli_replicas_free(&rl);
    return status;
}
