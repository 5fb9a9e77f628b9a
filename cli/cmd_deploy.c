/*
 * cmd_deploy.c - `sagesvc deploy` and `sagesvc undeploy`: services placed
 * on the cluster's hosts, and removed.
 *
 * Design notes: deploy blocks SIGINT, SIGTERM and SIGHUP before any thread
 * starts and, while it holds the lease of owned services, waits with poll
 * on a signalfd and an eventfd that the lease's on_lost callback writes: no
 * handler, no flag. On a signal it undeploys the owned services itself (at
 * once, rather than 15 s later when the lease would lapse), then ends the
 * lease.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "natsopt.h"
#include "opts.h"
#include "sage/cluster.h"

#define MAX_SELECT 64

static void deploy_usage(FILE *out)
{
    fputs("NAME\n"
          "    sagesvc deploy - place a configuration's services on the cluster's hosts\n"
          "\n"
          "SYNOPSIS\n"
          "    sagesvc deploy CONFIG.yaml [-s NAME]... [-n NS] [--nats URL[,URL...]]\n"
          "                   [--wait SECONDS]\n"
          "    sagesvc deploy --list [-n NS] [-c CONFIG] [--nats URL[,URL...]]\n"
          "\n"
          "DESCRIPTION\n"
          "    Deploys every service of CONFIG whose transport is nats (or those named\n"
          "    with -s) onto the hosts running `sagesvc host`: `replicas` replicas of\n"
          "    each (service.cluster.replicas), each reserving `resources` (CPU, memory)\n"
          "    on its host. Replicas are spread over the live hosts with room (the host\n"
          "    with the fewest replicas of that service first, then the most free\n"
          "    CPUs); each reservation is a compare-and-set on the host's record in the\n"
          "    bucket sagesvc_hosts, so concurrent deployments never over-commit a\n"
          "    host. When the replicas do not fit, nothing is deployed and the error\n"
          "    lists what was asked and what each host has free. The deployment (with\n"
          "    CONFIG's full text, from which replicas configure themselves) is kept in\n"
          "    the bucket sagesvc_deploy, key NS.NAME.\n"
          "\n"
          "    Lifetimes (service.cluster.lifetime):\n"
          "      detached  replicas outlive this command, which returns once they run;\n"
          "                remove them with `sagesvc undeploy`.\n"
          "      owned     (the default) replicas live while this command does: it stays\n"
          "                in the foreground holding a lease, refreshed every second,\n"
          "                until SIGINT or SIGTERM, then undeploys them. If it dies, the\n"
          "                lease lapses 15 s later and the hosts remove the replicas.\n"
          "    Deploying a service that is deployed already changes it in place (when\n"
          "    it is detached, or owned by this command's lease; one owned by another\n"
          "    deployer is refused): more or fewer replicas (`sagesvc scale` does only\n"
          "    that), new settings, and, when anything its replicas serve differently\n"
          "    changed (code, service.local, middleware, config, service.call), a new\n"
          "    generation of its configuration, rolled out one replica at a time on\n"
          "    each host: a new replica starts beside the old ones and an old one stops\n"
          "    once it serves, so the service never has fewer replicas serving. A new\n"
          "    replica that fails for good stops the roll; the old ones keep serving.\n"
          "    Resources and delivery cannot change in place. Such a change is not\n"
          "    undone on a failure.\n"
          "\n"
          "    Health (service.cluster): each host pings its replicas every\n"
          "    probe_interval (default 1 s; 0: never); one that leaves a ping\n"
          "    unanswered is unhealthy, one silent for probe_timeout (default 10 s) is\n"
          "    killed and restarted. A host silent for replace_after (default 10 s, at\n"
          "    least 5) has its replicas placed on other hosts with room.\n"
          "    All or nothing: if any service cannot be placed or its replicas do not\n"
          "    all run within --wait, every service this command deployed is removed;\n"
          "    so it is when a signal arrives before they all run (it is acted on once\n"
          "    the placing and the wait are over).\n"
          "\n"
          "OPTIONS\n"
          "    CONFIG.yaml\n"
          "        The configuration to deploy (required, except with --list).\n"
          "    -s, --service NAME\n"
          "        Deploy only NAME (repeatable); it must have transport nats.\n"
          CLI_NAMESPACE_OPT_HELP
          "        Deploy into namespace NS instead of the configuration's.\n" CLI_NATS_HELP
          "    --wait SECONDS\n"
          "        How long to wait for every replica to run (default 30; 0: return once\n"
          "        placed, without waiting).\n"
          CLI_CONFIG_OPT_HELP
          "        With --list: where the NATS section comes from.\n"
          "    --list\n"
          "        Print the deployments (of namespace NS when -n is given) and exit:\n"
          "        how many replicas run (as the live hosts say now: replicas of hosts\n"
          "        that are down, and unhealthy ones, do not count) of how many asked.\n"
          CLI_HELP_HELP
          "\n"
          "SIGNALS\n"
          "    SIGINT, SIGTERM, SIGHUP\n"
          "        Before every replica runs: undo the deployment, exit with status 1.\n"
          "        While holding owned services: undeploy them, end the lease, exit with\n"
          "        status 0.\n"
          "\n"
          "EXIT STATUS\n"
          "    0   deployed (detached), or owned services undeployed after a signal\n"
          "    1   the replicas do not fit (EBUSY), the name is deployed already\n"
          "        (EEXIST), NATS unreachable, the lease was lost, interrupted\n"
          "    2   usage\n"
          "    7   the replicas did not all run within --wait\n"
          "    8   no host is up, or a service failed while starting\n"
          "    9   configuration: unreadable, invalid, or no service to deploy\n"
          "\n"
          "EXAMPLE\n"
          "    $ sagesvc deploy app.yaml\n"
          "    kv: 3 of 3 replicas running, placed on node1 (2), node2 (1); detached\n"
          "    $ sagesvc scale -n demo kv 5\n"
          "    kv: 5 of 5 replicas running, placed on node1 (3), node2 (2); detached\n"
          "    $ sagesvc undeploy -n demo kv\n",
          out);
}

static void undeploy_usage(FILE *out)
{
    fputs("NAME\n"
          "    sagesvc undeploy - remove deployed services from the cluster\n"
          "\n"
          "SYNOPSIS\n"
          "    sagesvc undeploy NAME... [-n NS] [-c CONFIG] [--nats URL[,URL...]]\n"
          "                     [--wait SECONDS]\n"
          "\n"
          "DESCRIPTION\n"
          "    Removes each named service of namespace NS: its deployment, its hosts'\n"
          "    reservations and its replicas (their hosts stop them: SIGTERM, SIGKILL\n"
          "    after 5 s), then its service record, so callers get ENOSERVICE, and, for\n"
          "    a durable service, its work-queue stream with any calls still queued.\n"
          "\n"
          "OPTIONS\n"
          "    NAME...\n"
          "        The services to remove.\n"
          CLI_NAMESPACE_OPT_HELP
          "        Their namespace: --namespace > the configuration's > \"default\".\n"
          CLI_CONFIG_OPT_HELP
          "        The configuration giving the namespace and the NATS section.\n" CLI_NATS_HELP
          "    --wait SECONDS\n"
          "        How long to wait for the replicas to stop (default 10).\n"
          CLI_HELP_HELP
          "\n" CLI_CONFIG_HELP "\n"
          "EXIT STATUS\n"
          "    0   every service removed\n"
          "    1   NATS unreachable or another error\n"
          "    2   usage\n"
          "    3   a service is not deployed (ENOSERVICE)\n"
          "    7   a replica still ran after --wait (it is stopped all the same)\n"
          "    9   configuration: unreadable or invalid\n",
          out);
}

struct deploy_cmd {
    struct cli_common common; /* -c, -n, --nats */
    const char *config_path;  /* -c, or deploy's CONFIG.yaml */
    const char *services[MAX_SELECT];
    size_t nservices;
    double wait_s;
    int list;
};

static const struct option deploy_options[] = {
    {"service", required_argument, NULL, 's'},
    {"wait", required_argument, NULL, 'w'},
    {"list", no_argument, NULL, 'l'},
    {NULL, 0, NULL, 0},
};

/* parse_deploy parses the options of deploy, undeploy and scale (cmd),
 * whose help is help's. */
static int parse_deploy(struct deploy_cmd *dc, int argc, char **argv, const char *cmd,
                        void (*help)(FILE *out))
{
    const struct cli_optspec spec = {
        .shared = CLI_OPT_CONFIG | CLI_OPT_NAMESPACE | CLI_OPT_NATS,
        .own = deploy_options,
        .own_short = "s:",
        .help = help,
    };
    struct cli_opts o;
    int c;

    cli_opts_init(&o, cmd, &spec, &dc->common);
    while ((c = cli_opts_next(&o, argc, argv)) >= 0) {
        switch (c) {
        case 's':
            if (dc->nservices == MAX_SELECT)
                return cli_usage(cmd, "at most %d services with -s", MAX_SELECT);
            dc->services[dc->nservices++] = optarg;
            break;
        case 'w':
            if (cli_parse_seconds("--wait", optarg, &dc->wait_s) != SAGE_OK) {
                cli_error(SAGE_EINVAL, "%s", cmd);
                return CLI_USAGE;
            }
            break;
        case 'l':
            dc->list = 1;
            break;
        }
    }
    if (c == CLI_OPTS_STOP)
        return o.status;
    dc->config_path = dc->common.config;
    return CLI_OK;
}

/* ------------------------------------------------------------ printing */

/* print_deployment prints d; arg: "v" (verbose), "p" (placed, not waited
 * for) or NULL. How many run is what the live hosts say now, not what was
 * asked for. */
static void print_deployment(void *arg, const sage_cluster_deployment *d)
{
    int verbose = arg && strcmp(arg, "v") == 0;
    int placed = arg && strcmp(arg, "p") == 0 && strcmp(d->status, "running") == 0;

    if (placed)
        printf("%s: %u replica%s placed", d->name, d->replicas, d->replicas == 1 ? "" : "s");
    else
        printf("%s: %u of %u replica%s running%s%s%s", d->name, d->running, d->replicas,
               d->replicas == 1 ? "" : "s", strcmp(d->status, "running") ? " (" : "",
               strcmp(d->status, "running") ? d->status : "",
               strcmp(d->status, "running") ? ")" : "");
    for (size_t i = 0; i < d->nplacement; i++)
        printf("%s %s (%u)", i ? "," : placed ? " on" : ", placed on", d->placement[i].host,
               d->placement[i].count);
    printf("; %s", d->detached ? "detached" : "owned");
    if (verbose || d->generation > 1)
        printf("; generation %llu", (unsigned long long)d->generation);
    if (verbose)
        printf("; namespace %s, %g CPU%s each, max_restarts %u, deployment %s", d->ns, d->cpus,
               d->cpus == 1 ? "" : "s", d->max_restarts, d->id);
    if (d->reason[0])
        printf("; %s", d->reason);
    printf("\n");
}

/* ------------------------------------------------------------- holding */

static int lost_fd = -1;

static void on_lost(void *arg)
{
    uint64_t one = 1;

    (void)arg;
    if (write(lost_fd, &one, sizeof one) < 0)
        fprintf(stderr, "sagesvc deploy: lease lost\n");
}

/* hold waits for a signal or the loss of the lease, then undeploys the
 * owned services */
static int hold(const struct cli_nats *n, const char *ns, const sage_service_conf **owned,
                size_t nowned, const sigset_t *set)
{
    struct pollfd pf[2];
    int sfd = signalfd(-1, set, SFD_CLOEXEC), rc = CLI_OK;

    printf("sagesvc deploy: holding %zu owned service%s (pid %d); Ctrl-C or SIGTERM removes "
           "them\n",
           nowned, nowned == 1 ? "" : "s", (int)getpid());
    fflush(stdout);
    pf[0] = (struct pollfd){sfd, POLLIN, 0};
    pf[1] = (struct pollfd){lost_fd, POLLIN, 0};
    while (poll(pf, 2, -1) < 0 && errno == EINTR)
        ;
    if (pf[1].revents) {
        fprintf(stderr, "sagesvc deploy: the lease was lost (NATS unreachable for 15 s): the "
                        "hosts remove the owned services\n");
        rc = CLI_ERR;
    } else {
        printf("sagesvc deploy: stopping: undeploying %zu owned service%s\n", nowned,
               nowned == 1 ? "" : "s");
        fflush(stdout);
    }
    for (size_t i = 0; i < nowned; i++) {
        sage_err r = sage_cluster_undeploy(&n->conf, ns, owned[i]->name, 10000);

        if (r == SAGE_OK)
            printf("%s: undeployed\n", owned[i]->name);
        else if (r != SAGE_ENOSERVICE)
            cli_error(r, "undeploying %s", owned[i]->name);
    }
    if (sfd >= 0)
        close(sfd);
    return rc;
}

/* interrupted tells whether a signal of set arrived (and consumes it) */
static int interrupted(const sigset_t *set)
{
    struct timespec zero = {0, 0};

    return sigtimedwait(set, NULL, &zero) > 0;
}

/* selected lists the services deploy will take (the library's rule) */
static size_t selected(const struct deploy_cmd *dc, const sage_config *cfg,
                       const sage_service_conf **out, size_t cap, int owned_only)
{
    size_t k = 0, n = dc->nservices ? dc->nservices : sage_config_nservices(cfg);

    for (size_t i = 0; i < n && k < cap; i++) {
        const sage_service_conf *sc = dc->nservices ? sage_config_find(cfg, dc->services[i])
                                                    : sage_config_service(cfg, i);

        if (sc == NULL || strcmp(sc->transport, "nats") != 0)
            continue;
        if (!owned_only || !sc->cluster.detached)
            out[k++] = sc;
    }
    return k;
}

static int list(const struct deploy_cmd *dc)
{
    struct cli_nats n;
    sage_config *cfg = NULL;
    sage_err r = cli_load_config(dc->config_path, &cfg);

    if (r != SAGE_OK) {
        cli_error(r, "cannot load the configuration");
        return CLI_CONFIG;
    }
    if ((r = cli_nats_init(&n, dc->common.nats, cfg)) == SAGE_OK) {
        r = sage_cluster_deployments(&n.conf, dc->common.ns, NULL, print_deployment, "v");
        cli_nats_fini(&n);
    }
    if (r != SAGE_OK)
        cli_error(r, "cannot list the deployments");
    sage_config_free(cfg);
    return r == SAGE_OK ? CLI_OK : cli_exit_for(r);
}

int cmd_deploy(int argc, char **argv)
{
    struct deploy_cmd dc;
    struct cli_nats n;
    sage_config *cfg = NULL;
    sage_cluster_lease *lease = NULL;
    sage_cluster_deploy_opts o;
    const sage_service_conf *owned[MAX_SELECT * 4], *all[MAX_SELECT * 4];
    size_t nowned, nall;
    char *text = NULL, abs[PATH_MAX];
    size_t len = 0;
    const char *ns;
    sigset_t set;
    sage_err r;
    int rc;

    memset(&dc, 0, sizeof dc);
    dc.wait_s = 30;
    memset(&n, 0, sizeof n);
    if ((rc = parse_deploy(&dc, argc, argv, "deploy", deploy_usage)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    if (dc.list)
        return list(&dc);
    if (argc - optind != 1)
        return cli_usage("deploy", argc - optind ? "one configuration file, please"
                                                 : "which configuration? (sagesvc deploy "
                                                   "CONFIG.yaml)");
    dc.config_path = argv[optind];
    cli_block_stop_signals(&set); /* before any thread: all inherit it */
    if ((r = cli_read_file(dc.config_path, &text, &len)) != SAGE_OK ||
        (r = sage_config_parse(&cfg, text, len, dc.config_path)) != SAGE_OK) {
        cli_error(r, "cannot load the configuration %s", dc.config_path);
        rc = CLI_CONFIG;
        goto out;
    }
    ns = cli_namespace(dc.common.ns, cfg);
    if ((r = cli_nats_init(&n, dc.common.nats, cfg)) != SAGE_OK) {
        cli_error(r, "deploy");
        rc = cli_exit_for(r);
        goto out;
    }
    nall = selected(&dc, cfg, all, sizeof all / sizeof all[0], 0);
    nowned = selected(&dc, cfg, owned, sizeof owned / sizeof owned[0], 1);
    if (nowned > 0) {
        lost_fd = eventfd(0, EFD_CLOEXEC);
        if (lost_fd < 0 || (r = sage_cluster_lease_new(&lease, &n.conf, on_lost, NULL)) !=
                               SAGE_OK) {
            cli_error(lost_fd < 0 ? SAGE_ESYS : r, "cannot take a lease for the owned services");
            rc = CLI_ERR;
            goto out;
        }
    }
    sage_cluster_deploy_opts_init(&o);
    o.nats = &n.conf;
    o.config_text = text;
    o.config_len = len;
    o.config_path = realpath(dc.config_path, abs) ? abs : dc.config_path;
    o.ns = ns;
    o.services = dc.nservices ? dc.services : NULL;
    o.nservices = dc.nservices;
    o.lease = lease;
    o.wait_ms = (int64_t)(dc.wait_s * 1000);
    if ((r = sage_cluster_deploy(&o)) != SAGE_OK) {
        cli_error(r, "cannot deploy %s", dc.config_path);
        rc = r == SAGE_EBUSY || r == SAGE_EEXIST ? CLI_ERR : cli_exit_for(r);
        goto out;
    }
    if (interrupted(&set)) {
        /* Ctrl-C while placing or waiting: the deployment is undone */
        fprintf(stderr, "sagesvc deploy: interrupted: undeploying what was deployed\n");
        for (size_t i = 0; i < nall; i++)
            sage_cluster_undeploy(&n.conf, ns, all[i]->name, 10000);
        rc = CLI_ERR;
        goto out;
    }
    for (size_t i = 0; i < nall; i++)
        sage_cluster_deployments(&n.conf, ns, all[i]->name, print_deployment,
                                 o.wait_ms > 0 ? NULL : "p");
    fflush(stdout);
    rc = nowned ? hold(&n, ns, owned, nowned, &set) : CLI_OK;
out:
    sage_cluster_lease_free(lease);
    if (lost_fd >= 0)
        close(lost_fd);
    cli_nats_fini(&n);
    sage_config_free(cfg);
    free(text);
    return rc;
}

int cmd_undeploy(int argc, char **argv)
{
    struct deploy_cmd dc;
    struct cli_nats n;
    sage_config *cfg = NULL;
    const char *ns;
    sage_err r;
    int rc;

    memset(&dc, 0, sizeof dc);
    dc.wait_s = 10;
    if ((rc = parse_deploy(&dc, argc, argv, "undeploy", undeploy_usage)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    if (dc.nservices || dc.list)
        return cli_usage("undeploy", "name the services as arguments");
    if (optind >= argc)
        return cli_usage("undeploy", "which service? (sagesvc undeploy NAME...)");
    if ((r = cli_load_config(dc.config_path, &cfg)) != SAGE_OK) {
        cli_error(r, "cannot load the configuration");
        return CLI_CONFIG;
    }
    ns = cli_namespace(dc.common.ns, cfg);
    if ((r = cli_nats_init(&n, dc.common.nats, cfg)) != SAGE_OK) {
        cli_error(r, "undeploy");
        sage_config_free(cfg);
        return cli_exit_for(r);
    }
    for (int i = optind; i < argc; i++) {
        r = sage_cluster_undeploy(&n.conf, ns, argv[i], (int64_t)(dc.wait_s * 1000));
        if (r == SAGE_OK) {
            printf("%s: undeployed\n", argv[i]);
            continue;
        }
        cli_error(r, "cannot undeploy %s", argv[i]);
        if (rc == CLI_OK)
            rc = cli_exit_for(r);
    }
    cli_nats_fini(&n);
    sage_config_free(cfg);
    return rc;
}

/* ------------------------------------------------------------------ scale */

static void scale_usage(FILE *out)
{
    fputs("NAME\n"
          "    sagesvc scale - change the replica count of a deployed service in place\n"
          "\n"
          "SYNOPSIS\n"
          "    sagesvc scale NAME REPLICAS [-n NS] [-c CONFIG] [--nats URL[,URL...]]\n"
          "                  [--wait SECONDS]\n"
          "\n"
          "DESCRIPTION\n"
          "    Sets the number of replicas of the deployed service NAME of namespace NS\n"
          "    to REPLICAS (1..1000), without stopping the others: more are placed on\n"
          "    live hosts with room (when they do not fit, nothing changes and the\n"
          "    error lists what each host has free), or the newest stop (those placed\n"
          "    on hosts that are down first). Then it waits until exactly that many\n"
          "    run. Its configuration stays as deployed; to change it, deploy the\n"
          "    changed file (see `sagesvc help deploy`).\n"
          "\n"
          "OPTIONS\n"
          "    NAME, REPLICAS\n"
          "        The service and its new replica count.\n"
          CLI_NAMESPACE_OPT_HELP
          "        Its namespace: --namespace > the configuration's > \"default\".\n"
          CLI_CONFIG_OPT_HELP
          "        The configuration giving the namespace and the NATS section.\n" CLI_NATS_HELP
          "    --wait SECONDS\n"
          "        How long to wait for the count to be reached (default 30; 0: do not\n"
          "        wait).\n"
          CLI_HELP_HELP
          "\n" CLI_CONFIG_HELP "\n"
          "EXIT STATUS\n"
          "    0   the count is reached (or changed, with --wait 0)\n"
          "    1   the new replicas do not fit (EBUSY), NATS unreachable, another error\n"
          "    2   usage\n"
          "    3   the service is not deployed (ENOSERVICE)\n"
          "    7   the count was not reached within --wait (the change stays)\n"
          "    8   the new replicas failed while starting\n"
          "    9   configuration: unreadable or invalid\n",
          out);
}

int cmd_scale(int argc, char **argv)
{
    struct deploy_cmd dc;
    struct cli_nats n;
    sage_config *cfg = NULL;
    const char *ns;
    long replicas = 0;
    sage_err r;
    int rc;

    memset(&dc, 0, sizeof dc);
    dc.wait_s = 30;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            scale_usage(stdout);
            return CLI_OK;
        }
    if ((rc = parse_deploy(&dc, argc, argv, "scale", scale_usage)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    if (dc.nservices || dc.list)
        return cli_usage("scale", "name the service as an argument");
    if (argc - optind != 2)
        return cli_usage("scale", "which service, and how many replicas? (sagesvc scale NAME "
                                  "REPLICAS)");
    if (cli_parse_count("REPLICAS", argv[optind + 1], 1, 1000, &replicas) != SAGE_OK)
        return cli_usage("scale", "REPLICAS: expected a count in 1..1000, got '%s'",
                         argv[optind + 1]);
    if ((r = cli_load_config(dc.config_path, &cfg)) != SAGE_OK) {
        cli_error(r, "cannot load the configuration");
        return CLI_CONFIG;
    }
    ns = cli_namespace(dc.common.ns, cfg);
    if ((r = cli_nats_init(&n, dc.common.nats, cfg)) != SAGE_OK) {
        cli_error(r, "scale");
        sage_config_free(cfg);
        return cli_exit_for(r);
    }
    r = sage_cluster_scale(&n.conf, ns, argv[optind], (uint32_t)replicas,
                           (int64_t)(dc.wait_s * 1000));
    if (r == SAGE_OK) {
        sage_cluster_deployments(&n.conf, ns, argv[optind], print_deployment,
                                 dc.wait_s > 0 ? NULL : "p");
        rc = CLI_OK;
    } else {
        cli_error(r, "cannot scale %s", argv[optind]);
        rc = r == SAGE_EBUSY ? CLI_ERR : cli_exit_for(r);
    }
    cli_nats_fini(&n);
    sage_config_free(cfg);
    return rc;
}
