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
#include <getopt.h>
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
#include "natsopt.h"
#include "sage/cluster.h"

static void usage(FILE *out)
{
    fputs("NAME\n"
          "    sagesvc host - run this node's share of the cluster's replicas\n"
          "\n"
          "SYNOPSIS\n"
          "    sagesvc host [--nats URL[,URL...]] [-c CONFIG] [--id ID] [--cpus N]\n"
          "                 [--memory SIZE]\n"
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
          "    -c FILE, --config FILE\n"
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
          "    --list\n"
          "        Print every host (up or down), its free and offered resources and\n"
          "        its replicas (state, restarts, instance id; those of a host that is\n"
          "        down as unknown), then exit.\n"
          "    -h, --help\n"
          "        Print this help and exit.\n"
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
    const char *config_path, *urls, *id;
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

static int parse_options(struct host_cmd *hc, int argc, char **argv)
{
    static const struct option options[] = {
        {"nats", required_argument, NULL, 'N'}, {"config", required_argument, NULL, 'c'},
        {"id", required_argument, NULL, 'i'},   {"cpus", required_argument, NULL, 'C'},
        {"memory", required_argument, NULL, 'm'}, {"list", no_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    char *end;
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", options, NULL)) != -1) {
        switch (c) {
        case 'N':
            hc->urls = optarg;
            break;
        case 'c':
            hc->config_path = optarg;
            break;
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
        case 'h':
            usage(stdout);
            return -1;
        default:
            return cli_bad_option("host", c, argv);
        }
    }
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
    char exe[PATH_MAX];
    const char *rargv[3];
    sigset_t set;
    ssize_t len;
    sage_err r;
    int rc, sfd;

    memset(&hc, 0, sizeof hc);
    if ((rc = parse_options(&hc, argc, argv)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    cli_block_stop_signals(&set); /* before any thread: all inherit it */
    signal(SIGCHLD, SIG_DFL); /* replicas are reaped through their pidfds */
    if ((r = cli_load_config(hc.config_path, &cfg)) != SAGE_OK) {
        cli_error(r, "cannot load the configuration%s%s", hc.config_path ? " " : "",
                  hc.config_path ? hc.config_path : "");
        return CLI_CONFIG;
    }
    if ((r = cli_nats_init(&n, hc.urls, cfg)) != SAGE_OK) {
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
    sage_cluster_host_opts_init(&o);
    o.nats = &n.conf;
    o.id = hc.id;
    o.cpus = hc.cpus;
    o.memory = hc.memory;
    o.replica_argv = rargv;
    o.stop_fd = sfd;
    o.log = log_line;
    r = sage_cluster_host_run(&o);
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
