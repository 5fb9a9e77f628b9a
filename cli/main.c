/*
 * main.c - sagesvc: the dispatcher. It finds the command named by the first
 * word and hands it the rest of argv, its own name first.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "sage/cluster.h"

#ifndef SAGESVC_VERSION
#define SAGESVC_VERSION "unknown"
#endif

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
    bool cluster; /* needs cluster support (sage_cluster_supported) */
};

/* One line per command: name, function, summary for the help, cluster. */
static const struct command commands[] = {
    {"run", cmd_run, "host the services of a configuration file", false},
    {"call", cmd_call, "call a method of a service and print its result as JSON", false},
    {"ls", cmd_ls, "list the services on this host", false},
    {"status", cmd_status, "show the health figures of services", false},
    {"queue", cmd_queue, "list, inspect and remove shared-memory queues", false},
    {"bench", cmd_bench, "measure round trips and throughput of a running service", false},
    {"host", cmd_host, "run this node's share of the cluster's replicas (a daemon)", true},
    {"deploy", cmd_deploy, "place a configuration's services on the cluster's hosts", true},
    {"undeploy", cmd_undeploy, "remove deployed services from the cluster", true},
    {"scale", cmd_scale, "change the replica count of a deployed service in place", true},
    {"replica", cmd_replica, "serve one replica of a deployed service (started by host)", true},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out,
            "NAME\n"
            "    sagesvc - host named services and call their methods\n"
            "\n"
            "SYNOPSIS\n"
            "    sagesvc [--version] [--help] COMMAND [ARGS]\n"
            "    sagesvc help COMMAND\n"
            "\n"
            "DESCRIPTION\n"
            "    sagesvc hosts services (sagesvc run) and lets programs and people call\n"
            "    their methods. Services hosted over shared memory are found by name by\n"
            "    every process of the same user on this machine, within a namespace.\n"
            "\n"
            "COMMANDS\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "    %-8s %s%s\n", commands[i].name, commands[i].summary,
                commands[i].cluster && !sage_cluster_supported() ? " [not built in]" : "");
    fprintf(out,
            "\n"
            "    Run 'sagesvc COMMAND --help' or 'sagesvc help COMMAND' for a command's\n"
            "    options.\n"
            "\n"
            "OPTIONS\n"
            "    -h, --help     print this help and exit\n"
            "    --version      print the version and exit\n"
            "\n" CLI_CONFIG_HELP "\n" CLI_EXIT_STATUS_HELP);
}

static const struct command *find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* run runs command c with its argv; a cluster command of a sagesvc
 * without cluster support says so instead, whatever its arguments. */
static int run(const struct command *c, int argc, char **argv)
{
    int status;

    if (c->cluster && (status = cli_need_cluster(c->name, NULL)) != CLI_OK)
        return status;
    return c->fn(argc, argv);
}

static int unknown(const char *name)
{
    fprintf(stderr, "sagesvc: unknown command '%s'\n\n", name);
    usage(stderr);
    return CLI_USAGE;
}

/* `sagesvc help [COMMAND]`: a command's help is its own --help. */
static int help(int argc, char **argv)
{
    const struct command *c;
    char *hargv[3];

    if (argc < 2) {
        usage(stdout);
        return CLI_OK;
    }
    if ((c = find(argv[1])) == NULL)
        return unknown(argv[1]);
    hargv[0] = argv[1];
    hargv[1] = "--help";
    hargv[2] = NULL;
    return run(c, 2, hargv);
}

int main(int argc, char **argv)
{
    const struct command *c;

    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("sagesvc %s\n", SAGESVC_VERSION);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "help") == 0)
        return help(argc - 1, argv + 1);
    if (argv[1][0] == '-') {
        fprintf(stderr, "sagesvc: unknown option '%s'\n\n", argv[1]);
        usage(stderr);
        return CLI_USAGE;
    }
    if ((c = find(argv[1])) == NULL)
        return unknown(argv[1]);
    return run(c, argc - 1, argv + 1);
}
