/* common.c - exit statuses, error messages, configuration search, parsing,
 * the host registry's listing, stop signals. */
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sage/cluster.h"

int cli_exit_for(sage_err e)
{
    switch (e) {
    case SAGE_OK:
        return CLI_OK;
    case SAGE_EINVAL:
        return CLI_USAGE;
    case SAGE_ENOSERVICE:
        return CLI_NOSERVICE;
    case SAGE_ENOMETHOD:
        return CLI_NOMETHOD;
    case SAGE_EBADARGS:
        return CLI_BADARGS;
    case SAGE_ETIMEDOUT:
        return CLI_TIMEOUT;
    case SAGE_EUNAVAILABLE:
    case SAGE_EFULL:
    case SAGE_ECLOSED:
        return CLI_UNAVAILABLE;
    case SAGE_ECONFIG:
        return CLI_CONFIG;
    case SAGE_EPLUGIN:
        return CLI_PLUGIN;
    /* Only a service's method or middleware makes these. Other codes a
     * service answers with (ENOENT, EEXIST, ...) also arise locally, so the
     * code alone cannot say whose they are: cli_exit_for_answer, for a
     * call's outcome, classes them as 6. */
    case SAGE_EHANDLER:
    case SAGE_EREJECTED:
        return CLI_HANDLER;
    default:
        return CLI_ERR;
    }
}

int cli_exit_for_answer(sage_err e)
{
    int code = cli_exit_for(e);

    if (code != CLI_ERR && code != CLI_USAGE)
        return code;
    switch (e) {
    case SAGE_ENOMEM:
    case SAGE_ESYS:
    case SAGE_EPROTO:
    case SAGE_EVERSION:
    case SAGE_EMSGSIZE:
    case SAGE_ECANCELED:
        return code;
    default:
        return CLI_HANDLER;
    }
}

/* The CLI's own detail (per thread, like the library's) for failures the
 * library did not see. It is tied to the code it was recorded with, so that
 * a stale one never labels a later, unrelated library failure. */
static _Thread_local char own_detail[512];
static _Thread_local sage_err own_code = SAGE_OK;

int cli_need_cluster(const char *cmd, const char *opt)
{
    if (sage_cluster_supported())
        return CLI_OK;
    fprintf(stderr,
            "sagesvc %s%s%s: cluster support is not built in (this sagesvc was built with "
            "SAGE_WITH_NATS=OFF)\n",
            cmd, opt ? " " : "", opt ? opt : "");
    return CLI_ERR;
}

sage_err cli_fail(sage_err e, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(own_detail, sizeof own_detail, fmt, ap);
    va_end(ap);
    own_code = e;
    return e;
}

void cli_error(sage_err e, const char *fmt, ...)
{
    const char *detail = sage_errdetail();
    char msg[1024];
    va_list ap;

    if (own_code != SAGE_OK && own_code == e)
        detail = own_detail;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (detail[0] != '\0')
        fprintf(stderr, "sagesvc: %s: %s (%s)\n", msg, sage_errname(e), detail);
    else
        fprintf(stderr, "sagesvc: %s: %s\n", msg, sage_errname(e));
    own_code = SAGE_OK;
    own_detail[0] = '\0';
}

static int file_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

sage_err cli_load_config(const char *explicit_path, sage_config **cfgp)
{
    char xdg[4096];
    const char *env, *path = NULL;
    sage_err r;

    if (explicit_path != NULL) {
        path = explicit_path;
    } else if (file_exists("services.yaml")) {
        path = "services.yaml";
    } else {
        env = getenv("XDG_CONFIG_HOME");
        if (env != NULL && env[0] != '\0')
            snprintf(xdg, sizeof xdg, "%s/sagesvc/services.yaml", env);
        else if ((env = getenv("HOME")) != NULL && env[0] != '\0')
            snprintf(xdg, sizeof xdg, "%s/.config/sagesvc/services.yaml", env);
        else
            xdg[0] = '\0';
        if (xdg[0] != '\0' && file_exists(xdg))
            path = xdg;
        else if (file_exists("/etc/sagesvc/services.yaml"))
            path = "/etc/sagesvc/services.yaml";
    }
    if (path == NULL) {
        *cfgp = NULL;
        return SAGE_OK;
    }
    r = sage_config_load(cfgp, path);
    /* A file the user named (or that exists) but cannot be read is a
     * configuration problem to the user, whatever the system said; the
     * library's detail, which names the path, stays. */
    if (r == SAGE_ENOENT || r == SAGE_EPERM || r == SAGE_ESYS)
        r = SAGE_ECONFIG;
    return r;
}

int cli_load_config_or_fail(const char *explicit_path, sage_config **cfgp)
{
    sage_err r = cli_load_config(explicit_path, cfgp);

    if (r != SAGE_OK) {
        cli_error(r, "loading the configuration");
        return cli_exit_for(r);
    }
    return CLI_OK;
}

const char *cli_namespace(const char *opt_ns, const sage_config *cfg)
{
    if (opt_ns != NULL)
        return opt_ns;
    if (cfg != NULL)
        return sage_config_namespace(cfg);
    return "default";
}

sage_err cli_parse_seconds(const char *opt, const char *text, double *out)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(text, &end);
    if (text[0] == '\0' || *end != '\0' || errno != 0 || isnan(d) || d < 0 || d > 86400)
        return cli_fail(SAGE_EINVAL, "%s: expected seconds in 0..86400, got '%s'", opt, text);
    *out = d;
    return SAGE_OK;
}

sage_err cli_parse_count(const char *opt, const char *text, long min, long max, long *out)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(text, &end, 10);
    if (text[0] == '\0' || *end != '\0' || errno != 0 || n < min || n > max)
        return cli_fail(SAGE_EINVAL, "%s: expected an integer in %ld..%ld, got '%s'", opt, min,
                        max, text);
    *out = n;
    return SAGE_OK;
}

struct entries {
    sage_host_entry *v;
    size_t n, cap;
    int failed; /* out of memory while collecting */
};

static void collect(void *arg, const sage_host_entry *e)
{
    struct entries *l = arg;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        sage_host_entry *v = realloc(l->v, cap * sizeof *v);

        if (v == NULL) {
            l->failed = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *e;
}

sage_err cli_host_entries(const char *ns, int clean, sage_host_entry **vp, size_t *np)
{
    struct entries l = {NULL, 0, 0, 0};
    sage_err r = sage_host_list(ns, clean, collect, &l);

    if (r == SAGE_OK && l.failed)
        r = SAGE_ENOMEM;
    if (r != SAGE_OK) {
        free(l.v);
        return r;
    }
    *vp = l.v;
    *np = l.n;
    return SAGE_OK;
}

long long cli_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void cli_format_age(char *buf, size_t cap, long long ns)
{
    long long s = ns / 1000000000LL;

    if (ns < 0)
        snprintf(buf, cap, "-");
    else if (s < 60)
        snprintf(buf, cap, "%.1fs", (double)ns / 1e9);
    else if (s < 3600)
        snprintf(buf, cap, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, cap, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, cap, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "sagesvc %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'sagesvc %s --help' for more information.\n", cmd);
    return CLI_USAGE;
}

int cli_bad_option(const char *cmd, int c, char **argv)
{
    /* getopt leaves optind past the offending word; optopt names a short
     * option, or is 0 for a long one. */
    const char *word = optind > 0 ? argv[optind - 1] : "?";

    if (c == ':')
        return cli_usage(cmd, "option '%s' needs an argument", word);
    if (optopt != 0 && optopt != '?')
        return cli_usage(cmd, "unknown option '-%c'", optopt);
    return cli_usage(cmd, "unknown option '%s'", word);
}

void cli_block_stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout or socket must not kill the command */
}
