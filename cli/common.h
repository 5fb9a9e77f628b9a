/*
 * common.h - what every sagesvc command shares: exit statuses, error
 * messages, the configuration search, number parsing, the host registry's
 * listing, and the stop signals of the long-running commands. (The shared
 * options and their rules are opts.h's.)
 */
#ifndef SAGE_CLI_COMMON_H
#define SAGE_CLI_COMMON_H

#include <signal.h>

#include "sage/config.h"
#include "sage/err.h"
#include "sage/task.h"

/* The exit statuses of every command, one per class of failure (the help's
 * shared "EXIT STATUS" section, CLI_EXIT_STATUS_HELP, lists them). */
enum cli_exit { CLI_OK = 0, CLI_ERR = 1, CLI_USAGE = 2, CLI_NOSERVICE = 3, CLI_NOMETHOD = 4,
                CLI_BADARGS = 5, CLI_HANDLER = 6, CLI_TIMEOUT = 7, CLI_UNAVAILABLE = 8,
                CLI_CONFIG = 9, CLI_PLUGIN = 10 };

/*
 * cli_exit_for maps an error to its exit status: ENOSERVICE->3, ENOMETHOD->4,
 * EBADARGS->5, EHANDLER and EREJECTED (only services report them)->6,
 * ETIMEDOUT->7, EUNAVAILABLE/EFULL/ECLOSED->8, ECONFIG->9, EPLUGIN->10,
 * EINVAL->2, else 1. For the outcome of a call, see cli_exit_for_answer.
 */
int cli_exit_for(sage_err e);

/*
 * cli_exit_for_answer is cli_exit_for for the error a call's future
 * completed with. The runtime completes futures itself only with a timeout,
 * unavailability, a close, a cancel or a local failure (memory, a malformed
 * answer), which keep their class; any other error is the service's own
 * answer (ENOENT from a method, say), and is 6.
 */
int cli_exit_for_answer(sage_err e);

/*
 * cli_error prints "sagesvc: <message>: <ERRNAME> (<sage_errdetail()>)" to
 * stderr; the detail is omitted if empty. Read the detail before any other
 * library call on this thread, as a later failure replaces it.
 */
void cli_error(sage_err e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * cli_load_config loads the configuration: an explicit path (-c FILE) must
 * load; else the first that exists of ./services.yaml,
 * $XDG_CONFIG_HOME/sagesvc/services.yaml (default
 * ~/.config/sagesvc/services.yaml), /etc/sagesvc/services.yaml. *cfgp = NULL
 * (and SAGE_OK) if none exists and none was asked for. The caller frees the
 * config with sage_config_free.
 */
sage_err cli_load_config(const char *explicit_path, sage_config **cfgp);

/*
 * cli_load_config_or_fail is cli_load_config for a command that goes on
 * only with its configuration: on failure it prints "loading the
 * configuration" with the error and returns its exit status; else CLI_OK.
 */
int cli_load_config_or_fail(const char *explicit_path, sage_config **cfgp);

/*
 * cli_fail records detail (printf-style) as the CLI's own detail for error e
 * and returns e, for failures found by the CLI itself (bad JSON, a bad
 * number), where the library has no detail to give. The next cli_error for
 * the same code prints it instead of sage_errdetail() and forgets it.
 */
sage_err cli_fail(sage_err e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* cli_namespace returns the namespace to use: --namespace > config's
 * namespace > "default". Borrowed from its arguments or static. */
const char *cli_namespace(const char *opt_ns, const sage_config *cfg);

/*
 * cli_parse_seconds parses a non-negative number of seconds ("0.2", "30")
 * into *out. Anything else (empty, trailing text, negative, NaN, above
 * 86400) is SAGE_EINVAL with a cli_fail detail naming opt.
 */
sage_err cli_parse_seconds(const char *opt, const char *text, double *out);

/*
 * cli_parse_count parses a decimal integer in min..max into *out; anything
 * else is SAGE_EINVAL with a cli_fail detail naming opt.
 */
sage_err cli_parse_count(const char *opt, const char *text, long min, long max, long *out);

/*
 * cli_host_entries lists the host registry's services of namespace ns (NULL:
 * every namespace) with sage_host_list, clean included, into a malloc'd
 * array written to *vp (the caller frees it) with its length in *np, in the
 * registry's order. SAGE_ENOMEM when memory runs out, else sage_host_list's
 * error; *vp and *np are written only on success.
 */
sage_err cli_host_entries(const char *ns, int clean, sage_host_entry **vp, size_t *np);

/* cli_now_ns returns the wall clock in nanoseconds since the epoch. */
long long cli_now_ns(void);

/* cli_format_age writes a duration of ns nanoseconds for people ("3.2s",
 * "4m12s", "2h05m", "3d04h"), or "-" when ns is negative, into buf. */
void cli_format_age(char *buf, size_t cap, long long ns);

/*
 * cli_need_cluster is for command cmd, or its option opt (NULL: the
 * command itself), when that needs the cluster. Returns CLI_OK when this
 * sagesvc has cluster support; else prints "sagesvc CMD [OPT]: cluster
 * support is not built in ..." on stderr and returns CLI_ERR.
 */
int cli_need_cluster(const char *cmd, const char *opt);

/*
 * cli_usage prints "sagesvc CMD: <message>" and a pointer to CMD's --help
 * on stderr and returns CLI_USAGE, for a command to return at once.
 */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * cli_bad_option reports what getopt_long (run with opterr = 0 and an
 * optstring starting with ':') refused in argv, for cli_usage: an unknown
 * option, or one missing its argument. Returns CLI_USAGE.
 */
int cli_bad_option(const char *cmd, int c, char **argv);

/*
 * cli_block_stop_signals blocks SIGINT, SIGTERM and SIGHUP in the calling
 * thread, leaving them in *set for sigwait or a signalfd, and ignores
 * SIGPIPE. Call it before any thread starts, so that every thread
 * inherits the mask.
 */
void cli_block_stop_signals(sigset_t *set);

/* CLI_EXIT_STATUS_HELP: the shared "EXIT STATUS" section of every
 * command's help. CLI_CONFIG_HELP: where the configuration is looked for. */
#define CLI_EXIT_STATUS_HELP                                                           \
    "EXIT STATUS\n"                                                                     \
    "    0   success\n"                                                                 \
    "    1   other error (out of memory, system or protocol error)\n"                   \
    "    2   usage: unknown command or option, bad JSON, a bad number or namespace\n" \
    "    3   no such service (ENOSERVICE)\n"                                            \
    "    4   no such method (ENOMETHOD)\n"                                              \
    "    5   bad arguments, as the service judged them (EBADARGS)\n"                    \
    "    6   the service's handler failed (EHANDLER), its middleware refused the\n"     \
    "        call (EREJECTED), or it answered with another error\n"                   \
    "    7   timed out (ETIMEDOUT)\n"                                                   \
    "    8   service unavailable: stopping, its process dead, its queue full or\n"      \
    "        closed (EUNAVAILABLE, EFULL, ECLOSED)\n"                                   \
    "    9   bad configuration (ECONFIG), or the -c file cannot be read\n"              \
    "    10  plugin load failed (EPLUGIN)\n"

#define CLI_CONFIG_HELP                                                                \
    "CONFIGURATION\n"                                                                   \
    "    With -c FILE, FILE must load. Otherwise the first file that exists of\n"       \
    "        ./services.yaml\n"                                                         \
    "        $XDG_CONFIG_HOME/sagesvc/services.yaml (default ~/.config/sagesvc/...)\n"  \
    "        /etc/sagesvc/services.yaml\n"                                              \
    "    is read; with none, built-in defaults apply. The configuration gives the\n"    \
    "    namespace (overridden by --namespace) and call defaults (service.call).\n"

#endif
