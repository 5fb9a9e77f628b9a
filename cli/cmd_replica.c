/*
 * cmd_replica.c - `sagesvc replica`: one replica of a deployed service,
 * started by `sagesvc host`.
 *
 * Design notes: the signals that stop it are blocked before any thread
 * exists and taken with sigwait, as in `sagesvc run`. Started by a host, it
 * asks the kernel for SIGTERM when the host dies (PR_SET_PDEATHSIG), so a
 * killed host leaves no unsupervised replica serving; --host-pid closes the
 * race of a host that died before that request.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "natsopt.h"
#include "opts.h"
#include "plugins.h"
#include "sage/cluster.h"
#include "sage/plugin.h"
#include "sage/task.h"

static void usage(FILE *out)
{
    fputs("NAME\n"
          "    sagesvc replica - serve one replica of a deployed service (started by a host)\n"
          "\n"
          "SYNOPSIS\n"
          "    sagesvc replica --ns NS --service NAME [--nats URL[,URL...]]\n"
          "                    [--creds FILE] [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]\n"
          "                    [--nats-replicas N] [--ready-fd FD] [--host-pid PID]\n"
          "\n"
          "DESCRIPTION\n"
          "    `sagesvc host` runs this command for every replica placed on its node;\n"
          "    people rarely do. It reads the deployment of service NAME in namespace\n"
          "    NS from the bucket sagesvc_deploy, parses the configuration stored in it\n"
          "    (the deploying file's full text), loads the service's plugin exactly as\n"
          "    `sagesvc run` does (a relative path from the deploying file's directory;\n"
          "    a bare name from $SAGE_PLUGIN_PATH, that directory, BIN/plugins,\n"
          "    BIN/../lib/sagesvc/plugins, else the built-in service of that name), and\n"
          "    serves the service over NATS: subject sage.NS.svc.NAME in queue group q\n"
          "    (or its JetStream work queue when the service says delivery: durable),\n"
          "    with the service's max_workers, queue_timeout, request_queue_size,\n"
          "    middleware and config, until SIGTERM, SIGINT or SIGHUP.\n"
          "\n"
          "OPTIONS\n"
          "    --ns NS, --service NAME\n"
          "        The deployed service to serve (both required).\n" CLI_NATS_HELP CLI_TLS_HELP
          "    --nats-replicas N\n"
          "        Copies (1..5) of the JetStream buckets and streams it creates (the\n"
          "        host passes its nats.replicas). Default: min(3, servers).\n"
          "    --ready-fd FD\n"
          "        Write 'R' to descriptor FD once serving, then close it.\n"
          "    --host-pid PID\n"
          "        The supervising host's pid: exit at once if it is not our parent,\n"
          "        and stop (as on SIGTERM) when it dies.\n"
          CLI_HELP_HELP
          "\n"
          "SIGNALS\n"
          "    SIGTERM, SIGINT, SIGHUP\n"
          "        Stop taking calls, answer those received, exit with status 0.\n"
          "\n"
          "EXIT STATUS\n"
          "    0   stopped by a signal\n"
          "    1   cannot connect, serve or read the deployment; the host is gone\n"
          "    2   usage\n"
          "    3   the service is not deployed (ENOSERVICE)\n"
          "    9   the stored configuration is invalid or lacks the service, or an\n"
          "        unknown middleware\n"
          "    10  its plugin cannot be found or used\n",
          out);
}

struct replica {
    struct cli_common common; /* --ns, --nats, --creds, --tls-* */
    const char *service;
    long ready_fd, host_pid, nats_replicas;
};

/* resolve: the code of the deployed service, as `sagesvc run` finds it */
static sage_err resolve(void *arg, const sage_config *c, const sage_service_conf *sc,
                        const sage_service **svcp)
{
    sage_plugin **pp = arg;

    if (sc->python != NULL)
        return cli_fail(SAGE_ENOTSUP,
                        "service '%s' is a Python service (%s): its replicas run with "
                        "`python3 -m sagesvc replica`",
                        sc->name, sc->python);
    return cli_plugin_resolve(c, sc, pp, svcp);
}

static const struct option own_options[] = {
    {"service", required_argument, NULL, 's'},
    {"ready-fd", required_argument, NULL, 'r'},
    {"host-pid", required_argument, NULL, 'p'},
    {"nats-replicas", required_argument, NULL, 'R'},
    {NULL, 0, NULL, 0},
};

static const struct cli_optspec spec = {
    .shared = CLI_OPT_NS | CLI_OPT_NATS | CLI_OPT_TLS,
    .own = own_options,
    .help = usage,
};

static int parse_options(struct replica *rp, int argc, char **argv)
{
    struct cli_opts o;
    int c;

    cli_opts_init(&o, "replica", &spec, &rp->common);
    while ((c = cli_opts_next(&o, argc, argv)) >= 0) {
        switch (c) {
        case 's':
            rp->service = optarg;
            break;
        case 'r':
            if (cli_parse_count("--ready-fd", optarg, 0, 1 << 20, &rp->ready_fd) != SAGE_OK)
                return cli_usage("replica", "--ready-fd needs a descriptor number");
            break;
        case 'R':
            if (cli_parse_count("--nats-replicas", optarg, 1, 5, &rp->nats_replicas) != SAGE_OK)
                return cli_usage("replica", "--nats-replicas needs a count of copies, 1..5");
            break;
        case 'p':
            if (cli_parse_count("--host-pid", optarg, 1, 1L << 30, &rp->host_pid) != SAGE_OK)
                return cli_usage("replica", "--host-pid needs a pid");
            break;
        }
    }
    if (c == CLI_OPTS_STOP)
        return o.status;
    if (optind < argc)
        return cli_usage("replica", "unexpected argument '%s'", argv[optind]);
    if (rp->common.ns == NULL || rp->service == NULL)
        return cli_usage("replica", "--ns and --service are required");
    return CLI_OK;
}

int cmd_replica(int argc, char **argv)
{
    struct replica rp;
    struct cli_nats n;
    sage_cluster_replica_opts o;
    sage_plugin *plugin = NULL;
    sigset_t set;
    sage_err r;
    int rc, sfd;

    memset(&rp, 0, sizeof rp);
    rp.ready_fd = -1;
    if ((rc = parse_options(&rp, argc, argv)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    cli_block_stop_signals(&set); /* before any thread: all inherit it */
    if (rp.host_pid > 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != (pid_t)rp.host_pid) {
            fprintf(stderr, "sagesvc replica: host %ld is gone: not starting\n", rp.host_pid);
            return CLI_ERR;
        }
    }
    /* the stop signals, read from a descriptor: the library's stop fd */
    if ((sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
        fprintf(stderr, "sagesvc replica: signalfd: %s\n", strerror(errno));
        return CLI_ERR;
    }
    if ((r = cli_nats_init(&n, rp.common.nats, NULL)) != SAGE_OK) {
        cli_error(r, "replica");
        close(sfd);
        return cli_exit_for(r);
    }
    n.conf.reconnect_max = -1; /* supervised: ride out outages */
    n.conf.reconnect_wait_ms = 1000;
    if (rp.nats_replicas > 0)
        n.conf.replicas = (int)rp.nats_replicas;
    if (rp.common.creds)
        n.conf.creds = rp.common.creds;
    if (rp.common.tls_ca)
        n.conf.tls_ca = rp.common.tls_ca;
    if (rp.common.tls_cert) {
        n.conf.tls_cert = rp.common.tls_cert;
        n.conf.tls_key = rp.common.tls_key;
    }
    sage_cluster_replica_opts_init(&o);
    o.nats = &n.conf;
    o.ns = rp.common.ns;
    o.service = rp.service;
    o.resolve = resolve;
    o.arg = &plugin;
    o.ready_fd = (int)rp.ready_fd;
    o.stop_fd = sfd;
    r = sage_cluster_replica_run(&o);
    if (rp.ready_fd >= 0)
        close((int)rp.ready_fd);
    sage_plugin_close(plugin); /* after the task: its code lives there */
    cli_nats_fini(&n);
    close(sfd);
    if (r == SAGE_OK)
        return CLI_OK;
    cli_error(r, "replica of %s.%s", rp.common.ns, rp.service);
    switch (r) {
    case SAGE_ENOSERVICE:
        return CLI_NOSERVICE;
    case SAGE_ECONFIG:
    case SAGE_EINVAL:
        return CLI_CONFIG;
    case SAGE_ENOENT:
    case SAGE_EPLUGIN:
    case SAGE_ENOTSUP:
        return CLI_PLUGIN;
    default:
        return CLI_ERR;
    }
}
