/*
 * cmd_host.c - `sagesvc host`: the per-node daemon of the cluster, and
 * `sagesvc host --list`, what every host offers and runs.
 *
 * Design notes: SIGINT, SIGTERM and SIGHUP are blocked before any thread
 * starts and read from a signalfd, which is the library's stop fd: the host
 * loop polls it with its replicas' pidfds, so a signal ends the loop with no
 * handler and no flag. Replicas get an empty mask and default dispositions
 * (the library's spawn resets them).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "metrics.h"
#include "natsopt.h"
#include "opts.h"
#include "sage/cluster.h"
#include "sage/task.h"

static void usage(FILE *out)
{
    fputs("NAME\n"
          "    sagesvc host - run this node's share of the cluster's replicas\n"
          "\n"
          "SYNOPSIS\n"
          "    sagesvc host [--nats URL[,URL...]] [-c CONFIG] [--id ID] [--cpus N]\n"
          "                 [--memory SIZE] [--metrics ADDR:PORT]\n"
          "    sagesvc host --list [--nats URL[,URL...]] [-c CONFIG]\n"
          "\n"
          "DESCRIPTION\n"
          "    Run one host on each node. It publishes what the node offers (CPUs and\n"
          "    memory) and what it runs in the JetStream key-value bucket sagesvc_hosts,\n"
          "    refreshed every second; `sagesvc deploy` reserves room there and places\n"
          "    replicas. The host watches the bucket sagesvc_deploy and starts every\n"
          "    replica placed on it as a child process (`sagesvc replica`, in the host's\n"
          "    process group), serving over NATS.\n"
          "\n"
          "    Supervision: a replica that exits unasked is restarted after a backoff of\n"
          "    100 ms, doubling up to 5 s, until it has been restarted max_restarts\n"
          "    times (service.cluster.max_restarts); its next exit gives it up. When no\n"
          "    replica of the service is left anywhere, the deployment and the service\n"
          "    are marked failed, and callers fail at once with EUNAVAILABLE.\n"
          "\n"
          "    Health: the host pings each serving replica ($SRV.PING.NAME.ID) every\n"
          "    probe_interval (service.cluster.probe_interval, default 1 s; 0: never).\n"
          "    A replica that leaves a ping unanswered is unhealthy (`host --list` and\n"
          "    `status --cluster` say so); one silent for probe_timeout (default 10 s)\n"
          "    is hung: killed (SIGKILL) and restarted as above. While the host's own\n"
          "    connection to NATS is down, nobody is judged.\n"
          "\n"
          "    Replicas no longer placed here - undeployed, scaled down, moved away, or\n"
          "    owned by a deployer whose lease lapsed (15 s after it stopped\n"
          "    refreshing) - are stopped (SIGTERM, SIGKILL after 5 s) and their\n"
          "    reservations released. A host whose heartbeat is more than 5 s old is\n"
          "    down: nothing new is placed on it, and once it has been silent for its\n"
          "    deployments' replace_after (service.cluster.replace_after, default 10 s)\n"
          "    the live host with the smallest id places its replicas on other hosts\n"
          "    with room. A host that comes back runs none of the replicas moved away.\n"
          "\n"
          "    NATS state: the buckets and work queues sagesvc creates keep\n"
          "    nats.replicas copies (default: min(3, servers)), so a NATS cluster of 3\n"
          "    servers survives the loss of any one.\n"
          "\n"
          "OPTIONS\n" CLI_NATS_HELP
          CLI_CONFIG_OPT_HELP
          "        Take the NATS section from FILE (else the usual search, see below).\n"
          "    --id ID\n"
          "        The host's id in the cluster, 1..64 of [A-Za-z0-9_-]. Default: the\n"
          "        hostname (other characters become '-'). Two live hosts cannot share\n"
          "        an id.\n"
          "    --cpus N\n"
          "        CPUs offered to replicas (0.5 is fine). Default: the CPUs online.\n"
          "    --memory SIZE\n"
          "        Memory offered: bytes, or with a unit KB, MB, GB, TB (powers of\n"
          "        1000) or KiB, MiB, GiB, TiB (powers of 1024). Default: the physical\n"
          "        memory.\n"
          "    --metrics ADDR:PORT\n"
          "        Serve the figures of this host's replicas in Prometheus text format\n"
          "        (0.0.4) on GET /metrics, bound to ADDR:PORT (port 0: any free one;\n"
          "        the URL is printed): the families of `sagesvc run --metrics`, each\n"
          "        series labelled also host (this host's id) and replica (the\n"
          "        replica's instance id). Every scrape asks the replicas ($SRV.STATS),\n"
          "        waiting up to 1 s; one that does not answer has sagesvc_up 0 and no\n"
          "        other series.\n"
          "    --list\n"
          "        Print every host (up or down), its free and offered resources and\n"
          "        its replicas (state, restarts, instance id; those of a host that is\n"
          "        down as unknown), then exit.\n"
          CLI_HELP_HELP
          "\n"
          "SIGNALS\n"
          "    SIGINT, SIGTERM, SIGHUP\n"
          "        Stop every replica (SIGTERM; SIGKILL after 5 s), remove the host's\n"
          "        record (releasing its reservations) and exit with status 0. Replicas\n"
          "        placed here run again when a host with the same id comes back within\n"
          "        their replace_after; after it they are placed on other hosts.\n"
          "    A host killed outright takes its replicas with it (they get SIGTERM).\n"
          "\n" CLI_CONFIG_HELP "\n"
          "EXIT STATUS\n"
          "    0   stopped by a signal; --list printed\n"
          "    1   cannot reach NATS or its buckets (is JetStream on?), or the id is\n"
          "        taken by a live host\n"
          "    2   usage\n"
          "    9   configuration: unreadable or invalid\n"
          "\n"
          "EXAMPLE\n"
          "    node1$ sagesvc host --nats nats://10.0.0.1:4222 --cpus 8\n"
          "    node2$ sagesvc host --nats nats://10.0.0.2:4222 --cpus 8\n"
          "    any$   sagesvc deploy app.yaml\n"
          "    any$   sagesvc host --list --nats nats://10.0.0.1:4222\n",
          out);
}

struct host_cmd {
    struct cli_common common; /* -c, --nats */
    const char *id, *metrics;
    double cpus;
    uint64_t memory;
    int list;
};

static sage_err parse_size(const char *text, uint64_t *out)
{
    static const struct {
        const char *unit;
        double mul;
    } units[] = {{"", 1},          {"B", 1},       {"KB", 1e3},           {"MB", 1e6},
                 {"GB", 1e9},      {"TB", 1e12},   {"KiB", 1024.0},       {"MiB", 1048576.0},
                 {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
    char *end;
    double v;

    errno = 0;
    v = strtod(text, &end);
    if (end == text || errno || !(v >= 0) || isinf(v))
        return cli_fail(SAGE_EINVAL, "--memory: '%s' is not a size", text);
    while (isspace((unsigned char)*end))
        end++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].unit) == 0 && v * units[i].mul < 1.8e19) {
            *out = (uint64_t)(v * units[i].mul);
            return SAGE_OK;
        }
    return cli_fail(SAGE_EINVAL, "--memory: '%s': use bytes or a unit B, KB, MB, GB, TB, KiB, "
                                 "MiB, GiB, TiB",
                    text);
}

static const struct option own_options[] = {
    {"id", required_argument, NULL, 'i'},
    {"cpus", required_argument, NULL, 'C'},
    {"memory", required_argument, NULL, 'm'},
    {"list", no_argument, NULL, 'l'},
    {"metrics", required_argument, NULL, 'M'},
    {NULL, 0, NULL, 0},
};

static const struct cli_optspec spec = {
    .shared = CLI_OPT_CONFIG | CLI_OPT_NATS,
    .own = own_options,
    .help = usage,
};

static int parse_options(struct host_cmd *hc, int argc, char **argv)
{
    struct cli_opts o;
    char *end;
    int c;

    cli_opts_init(&o, "host", &spec, &hc->common);
    while ((c = cli_opts_next(&o, argc, argv)) >= 0) {
        switch (c) {
        case 'i':
            hc->id = optarg;
            break;
        case 'C':
            errno = 0;
            hc->cpus = strtod(optarg, &end);
            if (end == optarg || *end || errno || !(hc->cpus > 0) || hc->cpus > 1e6)
                return cli_usage("host", "--cpus: '%s' is not a positive number", optarg);
            break;
        case 'm':
            if (parse_size(optarg, &hc->memory) != SAGE_OK) {
                cli_error(SAGE_EINVAL, "host");
                return CLI_USAGE;
            }
            break;
        case 'l':
            hc->list = 1;
            break;
        case 'M':
            if (cli_metrics_check(optarg) != SAGE_OK) {
                cli_error(SAGE_EINVAL, "host");
                return CLI_USAGE;
            }
            hc->metrics = optarg;
            break;
        }
    }
    if (c == CLI_OPTS_STOP)
        return o.status;
    if (optind < argc)
        return cli_usage("host", "unexpected argument '%s'", argv[optind]);
    return CLI_OK;
}

/* ------------------------------------------------------------------ list */

static void print_host(void *arg, const sage_cluster_host_info *h)
{
    long long now_ms = cli_now_ns() / 1000000;
    char age[32];

    (void)arg;
    cli_format_age(age, sizeof age, (now_ms - h->heartbeat_ms) * 1000000LL);
    printf("%s  %s  pid %d on %s  CPUs %g free of %g  memory %.1f MiB free of %.1f MiB  "
           "heartbeat %s ago\n",
           h->id, h->alive ? "up" : "DOWN", (int)h->pid, h->hostname,
           h->cpus - h->reserved_cpus, h->cpus,
           (double)(h->memory - h->reserved_memory) / 1048576.0, (double)h->memory / 1048576.0,
           age);
    for (size_t i = 0; i < h->nreplicas; i++) {
        const sage_cluster_replica_info *r = &h->replicas[i];

        /* a host that is down says nothing true of its replicas any more */
        printf("    %s.%s  pid %d  %s  %u restart%s", r->ns, r->service, (int)r->pid,
               h->alive ? r->state : "unknown (host down)", r->restarts,
               r->restarts == 1 ? "" : "s");
        if (r->id[0])
            printf("  id %s", r->id);
        if (r->generation > 1)
            printf("  generation %llu", (unsigned long long)r->generation);
        if (h->alive && r->seen_ms > 0 && strcmp(r->state, "unhealthy") == 0) {
            cli_format_age(age, sizeof age, (now_ms - r->seen_ms) * 1000000LL);
            printf("  last answered %s ago", age);
        }
        printf("\n");
    }
}

/* --------------------------------------------------------------- metrics */

/* One replica's figures, as a scrape gathers them. */
struct entry {
    sage_status st;
    bool answered;
    char ns[72], name[72], id[72];
};

struct scrape {
    const sage_nats_conf *nats;
    const char *id; /* --id, or NULL: the host of this process */
    struct entry *v;
    size_t n, cap;
    char host[72];
    int oom;
};

static void on_figures(void *arg, const char *host, const sage_cluster_replica_info *r,
                       const sage_status *st)
{
    struct scrape *sc = arg;
    struct entry *e;

    if (r->pid <= 0 || r->id[0] == '\0')
        return; /* no process, or not serving yet: no series */
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? 2 * sc->cap : 8;
        struct entry *v = realloc(sc->v, cap * sizeof *v);

        if (v == NULL) {
            sc->oom = 1;
            return;
        }
        sc->v = v;
        sc->cap = cap;
    }
    e = &sc->v[sc->n++];
    snprintf(sc->host, sizeof sc->host, "%s", host);
    snprintf(e->ns, sizeof e->ns, "%s", r->ns);
    snprintf(e->name, sizeof e->name, "%s", r->service);
    snprintf(e->id, sizeof e->id, "%s", r->id);
    e->answered = st != NULL;
    if (st)
        e->st = *st;
}

/* render_replicas runs on the metrics server's thread, per scrape */
static sage_err render_replicas(void *arg, char **textp, size_t *lenp)
{
    const struct scrape *cfg = arg;
    struct cli_metrics_item *items = NULL;
    struct scrape sc;
    sage_err r;

    memset(&sc, 0, sizeof sc);
    sc.nats = cfg->nats;
    sc.id = cfg->id;
    r = sage_cluster_host_figures(sc.nats, sc.id, 1000, on_figures, &sc);
    if (r == SAGE_ENOENT) /* not up yet (or stopping): nothing to say */
        r = SAGE_OK;
    if (r == SAGE_OK && (sc.oom || (items = calloc(sc.n ? sc.n : 1, sizeof *items)) == NULL))
        r = SAGE_ENOMEM;
    for (size_t i = 0; r == SAGE_OK && i < sc.n; i++) {
        items[i].st = sc.v[i].answered ? &sc.v[i].st : NULL;
        items[i].ns = sc.v[i].ns;
        items[i].name = sc.v[i].name;
        items[i].replica = sc.v[i].id;
        items[i].host = sc.host;
    }
    if (r == SAGE_OK)
        r = cli_metrics_render_items(items, sc.n, textp, lenp);
    free(items);
    free(sc.v);
    return r;
}

/* ------------------------------------------------------------------- run */

static void log_line(void *arg, const char *line)
{
    (void)arg;
    fprintf(stderr, "sagesvc %s\n", line);
}

int cmd_host(int argc, char **argv)
{
    struct host_cmd hc;
    struct cli_nats n;
    sage_config *cfg = NULL;
    sage_cluster_host_opts o;
    struct scrape scrape;
    cli_metrics *metrics = NULL;
    char exe[PATH_MAX];
    const char *rargv[3];
    sigset_t set;
    ssize_t len;
    sage_err r;
    int rc, sfd;

    memset(&hc, 0, sizeof hc);
    memset(&scrape, 0, sizeof scrape);
    if ((rc = parse_options(&hc, argc, argv)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    cli_block_stop_signals(&set); /* before any thread: all inherit it */
    signal(SIGCHLD, SIG_DFL); /* replicas are reaped through their pidfds */
    if ((r = cli_load_config(hc.common.config, &cfg)) != SAGE_OK) {
        cli_error(r, "cannot load the configuration%s%s", hc.common.config ? " " : "",
                  hc.common.config ? hc.common.config : "");
        return CLI_CONFIG;
    }
    if ((r = cli_nats_init(&n, hc.common.nats, cfg)) != SAGE_OK) {
        cli_error(r, "host");
        sage_config_free(cfg);
        return cli_exit_for(r);
    }
    if (hc.list) {
        r = sage_cluster_hosts(&n.conf, print_host, NULL);
        if (r != SAGE_OK)
            cli_error(r, "cannot list the hosts");
        rc = r == SAGE_OK ? CLI_OK : CLI_ERR;
        goto out;
    }
    len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        fprintf(stderr, "sagesvc host: cannot find its own executable: %s\n", strerror(errno));
        rc = CLI_ERR;
        goto out;
    }
    exe[len] = '\0';
    rargv[0] = exe;
    rargv[1] = "replica";
    rargv[2] = NULL;
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        fprintf(stderr, "sagesvc host: signalfd: %s\n", strerror(errno));
        rc = CLI_ERR;
        goto out;
    }
    if (hc.metrics) {
        scrape.nats = &n.conf;
        scrape.id = hc.id;
        if ((r = cli_metrics_open_fn(&metrics, hc.metrics, render_replicas, &scrape)) != SAGE_OK) {
            cli_error(r, "--metrics %s", hc.metrics);
            close(sfd);
            rc = CLI_ERR;
            goto out;
        }
        printf("metrics: %s\n", cli_metrics_url(metrics));
        fflush(stdout);
    }
    sage_cluster_host_opts_init(&o);
    o.nats = &n.conf;
    o.id = hc.id;
    o.cpus = hc.cpus;
    o.memory = hc.memory;
    o.replica_argv = rargv;
    o.stop_fd = sfd;
    o.log = log_line;
    r = sage_cluster_host_run(&o);
    cli_metrics_close(metrics); /* before the configuration it reads goes */
    close(sfd);
    if (r != SAGE_OK) {
        cli_error(r, "host");
        rc = r == SAGE_EINVAL ? CLI_USAGE : CLI_ERR;
    } else {
        rc = CLI_OK;
    }
out:
    cli_nats_fini(&n);
    sage_config_free(cfg);
    return rc;
}
