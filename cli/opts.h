/*
 * opts.h - the options the sagesvc commands share: their names, their
 * rules, their messages and their help, in one place.
 *
 * A command says which shared options it takes (CLI_OPT_* flags) and gives
 * its own getopt_long table; cli_opts_next parses both, handles the shared
 * options itself into a struct cli_common, reports unknown options and
 * missing arguments, prints the help for -h, and hands the command only its
 * own options. A shared option therefore means the same, and fails with the
 * same message and status, in every command that takes it.
 */
#ifndef SAGE_CLI_OPTS_H
#define SAGE_CLI_OPTS_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

/* The shared options; -h/--help is always taken. */
enum cli_opt_flag {
    CLI_OPT_CONFIG = 1 << 0,    /* -c, --config FILE */
    CLI_OPT_NAMESPACE = 1 << 1, /* -n, --namespace NS, checked (cli_common.ns) */
    CLI_OPT_NS = 1 << 2,        /* --ns NS: the same, spelled as `sagesvc host` passes it */
    CLI_OPT_NATS = 1 << 3,      /* --nats URL[,URL...]: implies --cluster */
    CLI_OPT_CLUSTER = 1 << 4,   /* --cluster */
    CLI_OPT_TLS = 1 << 5,       /* --creds, --tls-ca, --tls-cert, --tls-key FILE */
    CLI_OPT_JSON = 1 << 6,      /* --json */
    CLI_OPT_TIMEOUT = 1 << 7,   /* --timeout SECONDS, above 0 */
};

/* What the shared options said; NULL or 0 where not given. Strings are
 * borrowed from argv. */
struct cli_common {
    const char *config; /* -c */
    const char *ns;     /* -n or --ns: 1..SAGE_NAME_MAX of [A-Za-z0-9_-] */
    const char *nats;   /* --nats: at least one server URL */
    int cluster;        /* --cluster, or --nats */
    const char *creds, *tls_ca, *tls_cert, *tls_key;
    int json;
    int64_t timeout_ms; /* --timeout; 0: not given */
};

/* What a command takes besides the shared options, and its help. */
struct cli_optspec {
    unsigned shared;          /* CLI_OPT_* */
    const struct option *own; /* its own long options, {NULL}-terminated; NULL: none;
                               * their vals are characters or below 0x10000 */
    const char *own_short;    /* its own short options ("s:"); NULL: none */
    void (*help)(FILE *out);  /* prints its help, for -h/--help */
};

#define CLI_OPTS_MAX 32

/* A parse in progress. Fields are private but status. */
struct cli_opts {
    const char *cmd;
    const struct cli_optspec *spec;
    struct cli_common *common;
    struct option table[CLI_OPTS_MAX];
    char shorts[48];
    int status; /* after CLI_OPTS_STOP: CLI_HELPED, or the exit status */
};

/* cli_opts_next's ends: the options are over (optind is at the first
 * operand), or the command must stop and exit (status says with what). */
#define CLI_OPTS_END (-1)
#define CLI_OPTS_STOP (-2)

/* The status after -h/--help printed the help: the command exits with 0. */
#define CLI_HELPED (-1)

/*
 * cli_opts_init prepares o to parse the options of command cmd (borrowed,
 * for messages) as spec says (borrowed), into common, which it clears.
 * It also resets getopt (optind = 1, opterr = 0). A spec whose own
 * options clash with the shared ones it takes is a bug: it asserts.
 */
void cli_opts_init(struct cli_opts *o, const char *cmd, const struct cli_optspec *spec,
                   struct cli_common *common);

/*
 * cli_opts_next returns the next of the command's own options as
 * getopt_long would (its val, with optarg), after handling any shared ones
 * before it. CLI_OPTS_END once the options are over. CLI_OPTS_STOP when
 * the command must exit: after the help (o->status CLI_HELPED), or after a
 * message on stderr, with o->status the exit status: CLI_USAGE for an
 * unknown option, a missing argument or a bad value, CLI_ERR for --nats or
 * --cluster in a sagesvc without cluster support. Not thread-safe: it is
 * getopt_long, whose state (optind, optarg) is global.
 */
int cli_opts_next(struct cli_opts *o, int argc, char **argv);

/* cli_opts_exit is the exit status of a command stopped by cli_opts_next:
 * CLI_OK after the help, else o->status. */
int cli_opts_exit(const struct cli_opts *o);

/*
 * The help of the shared options, one entry each, for the commands' OPTIONS
 * sections. -c and -n name a file and a namespace whose use each command
 * tells: their macros are the option's line, the command's text follows.
 */
#define CLI_HELP_HELP                                                                   \
    "    -h, --help\n"                                                                   \
    "        Print this help and exit.\n"

#define CLI_CONFIG_OPT_HELP "    -c, --config FILE\n"

#define CLI_NAMESPACE_OPT_HELP "    -n, --namespace NS\n"

/* --nats of the cluster commands (host, deploy, undeploy, scale, replica) */
#define CLI_NATS_HELP                                                                   \
    "    --nats URL[,URL...]\n"                                                          \
    "        The NATS servers (nats://HOST:PORT, tls://HOST:PORT), comma-separated.\n"   \
    "        Default: the configuration's nats.servers, else nats://127.0.0.1:4222.\n"   \
    "        Credentials and TLS come from the configuration's nats section.\n"

/* --nats of the commands for which the cluster is an option (call, ls, status) */
#define CLI_NATS_CLUSTER_HELP                                                           \
    "    --nats URL[,URL...]\n"                                                          \
    "        These NATS servers (nats://HOST:PORT, tls://HOST:PORT, comma-separated)\n"  \
    "        instead of the configuration's. Implies --cluster.\n"

#define CLI_TLS_HELP                                                                    \
    "    --creds FILE, --tls-ca FILE, --tls-cert FILE, --tls-key FILE\n"                 \
    "        NATS credentials file and TLS files, overriding the configuration's.\n"     \
    "        User, password and token come from the environment variables\n"             \
    "        SAGESVC_NATS_USER, SAGESVC_NATS_PASSWORD, SAGESVC_NATS_TOKEN.\n"

#define CLI_TIMEOUT_HELP                                                                \
    "    --timeout SECONDS\n"                                                            \
    "        Give up on each call after SECONDS (a decimal number above 0, at most\n"    \
    "        86400). Default: service.call.timeout of the configuration, else 30.\n"

#endif
