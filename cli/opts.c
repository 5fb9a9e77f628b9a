/* opts.c - the options the commands share: the table each command's
 * getopt_long runs on, and the rule and message of each shared option. */
#include "opts.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "sage/config.h"

/* The vals of the shared long-only options: far above a command's own
 * (characters, or an enum from 256), so that the two never meet. */
enum {
    VAL_NS = 0x10000,
    VAL_NATS,
    VAL_CLUSTER,
    VAL_CREDS,
    VAL_TLS_CA,
    VAL_TLS_CERT,
    VAL_TLS_KEY,
    VAL_JSON,
    VAL_TIMEOUT,
};

/* Every shared option, with the flag that asks for it (0: always). */
static const struct {
    unsigned flag;
    struct option opt;
} shared[] = {
    {CLI_OPT_CONFIG, {"config", required_argument, NULL, 'c'}},
    {CLI_OPT_NAMESPACE, {"namespace", required_argument, NULL, 'n'}},
    {CLI_OPT_NS, {"ns", required_argument, NULL, VAL_NS}},
    {CLI_OPT_NATS, {"nats", required_argument, NULL, VAL_NATS}},
    {CLI_OPT_CLUSTER, {"cluster", no_argument, NULL, VAL_CLUSTER}},
    {CLI_OPT_TLS, {"creds", required_argument, NULL, VAL_CREDS}},
    {CLI_OPT_TLS, {"tls-ca", required_argument, NULL, VAL_TLS_CA}},
    {CLI_OPT_TLS, {"tls-cert", required_argument, NULL, VAL_TLS_CERT}},
    {CLI_OPT_TLS, {"tls-key", required_argument, NULL, VAL_TLS_KEY}},
    {CLI_OPT_JSON, {"json", no_argument, NULL, VAL_JSON}},
    {CLI_OPT_TIMEOUT, {"timeout", required_argument, NULL, VAL_TIMEOUT}},
    {0, {"help", no_argument, NULL, 'h'}},
};

#define NSHARED (sizeof shared / sizeof shared[0])

/* A spec's own options must not take a name or a character of a shared
 * option it takes: getopt_long would silently pick one of the two. */
static void check_own(const struct cli_optspec *spec)
{
    for (const struct option *own = spec->own; own && own->name; own++) {
        assert(own->val < VAL_NS);
        for (size_t i = 0; i < NSHARED; i++)
            assert(!(shared[i].flag == 0 || (spec->shared & shared[i].flag)) ||
                   strcmp(own->name, shared[i].opt.name) != 0);
    }
    /* (':' after a character says it takes an argument; one first would
     * change how getopt reports a missing one) */
    assert(spec->own_short == NULL || spec->own_short[0] != ':');
    for (const char *s = spec->own_short; s && *s; s++)
        assert(*s != 'h' && !(*s == 'c' && (spec->shared & CLI_OPT_CONFIG)) &&
               !(*s == 'n' && (spec->shared & CLI_OPT_NAMESPACE)));
}

void cli_opts_init(struct cli_opts *o, const char *cmd, const struct cli_optspec *spec,
                   struct cli_common *common)
{
    size_t n = 0;

    check_own(spec);
    memset(o, 0, sizeof *o);
    memset(common, 0, sizeof *common);
    o->cmd = cmd;
    o->spec = spec;
    o->common = common;
    for (const struct option *own = spec->own; own && own->name; own++) {
        assert(n < CLI_OPTS_MAX - 1);
        o->table[n++] = *own;
    }
    for (size_t i = 0; i < NSHARED; i++) {
        if (shared[i].flag != 0 && !(spec->shared & shared[i].flag))
            continue;
        assert(n < CLI_OPTS_MAX - 1);
        o->table[n++] = shared[i].opt;
    }
    /* the table ends with a zeroed entry (memset) */
    /* ':' first: a missing argument is ':', not '?' (cli_bad_option) */
    snprintf(o->shorts, sizeof o->shorts, ":%s%sh%s", spec->shared & CLI_OPT_CONFIG ? "c:" : "",
             spec->shared & CLI_OPT_NAMESPACE ? "n:" : "", spec->own_short ? spec->own_short : "");
    assert(strlen(o->shorts) < sizeof o->shorts - 1);
    optind = 1;
    opterr = 0; /* our own messages, in our own words */
}

/*
 * check_namespace checks a namespace given with option opt: 1..SAGE_NAME_MAX
 * characters of [A-Za-z0-9_-], the library's rule. Checked as it is
 * parsed, so that no command truncates or misreads a namespace.
 */
static int check_namespace(const char *cmd, const char *opt, const char *ns)
{
    size_t n = strlen(ns);

    if (n == 0)
        return cli_usage(cmd, "%s: the namespace is empty; use 1..%d characters of [A-Za-z0-9_-]",
                         opt, SAGE_NAME_MAX);
    /* the start of a long one, and its length: enough to recognise it */
    if (n > SAGE_NAME_MAX)
        return cli_usage(cmd, "%s: namespace '%.20s...' is %zu characters long, at most %d allowed",
                         opt, ns, n, SAGE_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)ns[i];
        char shown[8];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '-')
            continue;
        if (c >= ' ' && c < 0x7f)
            snprintf(shown, sizeof shown, "'%c'", c);
        else
            snprintf(shown, sizeof shown, "0x%02x", c);
        return cli_usage(cmd, "%s: namespace '%s' has character %s; use 1..%d characters of "
                              "[A-Za-z0-9_-]",
                         opt, ns, shown, SAGE_NAME_MAX);
    }
    return CLI_OK;
}

/* check_nats: --nats must name a server; empty entries of the list are
 * skipped (cli_nats_init), so "" and "," name none. Asked for where the
 * cluster is not built in, --nats says so first, whatever its value. */
static int check_nats(const char *cmd, const char *urls)
{
    int status = cli_need_cluster(cmd, "--nats");

    if (status != CLI_OK)
        return status;
    if (urls[strspn(urls, ",")] == '\0')
        return cli_usage(cmd, "--nats: no server URL in '%s'", urls);
    return CLI_OK;
}

/* check_timeout: the --timeout of a call, seconds above 0, at most 86400. */
static int check_timeout(const char *cmd, const char *text, int64_t *out_ms)
{
    double s = 0;

    if (cli_parse_seconds("--timeout", text, &s) != SAGE_OK || s <= 0)
        return cli_usage(cmd, "--timeout: expected seconds above 0 (at most 86400), got '%s'",
                         text);
    *out_ms = (int64_t)(s * 1000 + 0.5);
    if (*out_ms < 1)
        *out_ms = 1;
    return CLI_OK;
}

/* shared_option handles shared option opt (a val of the table); returns
 * CLI_OK or, after the message, the exit status. */
static int shared_option(struct cli_opts *o, int opt, char *arg, char **argv)
{
    struct cli_common *c = o->common;

    switch (opt) {
    case 'c':
        c->config = arg;
        return CLI_OK;
    case 'n':
    case VAL_NS:
        c->ns = arg;
        return check_namespace(o->cmd, opt == 'n' ? "-n/--namespace" : "--ns", arg);
    case VAL_NATS:
        c->nats = arg;
        c->cluster = 1;
        return check_nats(o->cmd, arg);
    case VAL_CLUSTER:
        c->cluster = 1;
        return cli_need_cluster(o->cmd, "--cluster");
    case VAL_CREDS:
        c->creds = arg;
        return CLI_OK;
    case VAL_TLS_CA:
        c->tls_ca = arg;
        return CLI_OK;
    case VAL_TLS_CERT:
        c->tls_cert = arg;
        return CLI_OK;
    case VAL_TLS_KEY:
        c->tls_key = arg;
        return CLI_OK;
    case VAL_JSON:
        c->json = 1;
        return CLI_OK;
    case VAL_TIMEOUT:
        return check_timeout(o->cmd, arg, &c->timeout_ms);
    case 'h':
        o->spec->help(stdout);
        return CLI_HELPED;
    default: /* '?' or ':' */
        return cli_bad_option(o->cmd, opt, argv);
    }
}

/* is_own: whether val is one of the command's own options */
static int is_own(const struct cli_opts *o, int val)
{
    const char *s = o->spec->own_short;

    for (const struct option *own = o->spec->own; own && own->name; own++)
        if (own->val == val)
            return 1;
    return val > 0 && val < 256 && val != ':' && s && strchr(s, val) != NULL;
}

int cli_opts_next(struct cli_opts *o, int argc, char **argv)
{
    int opt;

    while ((opt = getopt_long(argc, argv, o->shorts, o->table, NULL)) != -1) {
        if (is_own(o, opt))
            return opt;
        if ((o->status = shared_option(o, opt, optarg, argv)) != CLI_OK)
            return CLI_OPTS_STOP;
    }
    return CLI_OPTS_END;
}

int cli_opts_exit(const struct cli_opts *o)
{
    return o->status == CLI_HELPED ? CLI_OK : o->status;
}
