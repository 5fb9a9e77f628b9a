/*
 * cmd_call.c - sagesvc call: one call, or N at once, printed as JSON.
 *
 * Every call goes through sage_manager_call_async and a wait on its future
 * (a synchronous call is exactly that in the library too), so that a
 * failure to send (no such service, service dead) can be told from an
 * error the service answered with: the latter is the service's word, and
 * gets exit status 6 unless it belongs to a more precise class
 * (cli_exit_for_answer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "json.h"
#include "natsopt.h"
#include "opts.h"
#include "sage/cluster.h"
#include "sage/future.h"
#include "sage/manager.h"

static const char help[] =
    "NAME\n"
    "    sagesvc call - call a method of a service and print its result as JSON\n"
    "\n"
    "SYNOPSIS\n"
    "    sagesvc call [OPTIONS] SERVICE METHOD [ARGS_JSON]\n"
    "\n"
    "DESCRIPTION\n"
    "    Calls METHOD of the service registered as SERVICE in the namespace, with\n"
    "    the positional arguments ARGS_JSON (a JSON array; default []) and the\n"
    "    keyword arguments of --kwargs (a JSON object), waits for the answer, and\n"
    "    prints the result on stdout as one line of JSON. An error goes to stderr\n"
    "    as 'sagesvc: SERVICE.METHOD: ENAME (message)' and the exit status tells\n"
    "    its class (see EXIT STATUS). All JSON is checked before any call is made.\n"
    "\n"
    "    The service is found in the host registry: any service hosted with the\n"
    "    shm transport by a process of the same user on this machine, in the same\n"
    "    namespace. A service stopped cleanly leaves the registry (status 3); one\n"
    "    whose process died stays there, and calls fail with status 8 until\n"
    "    'sagesvc ls --clean' removes it. A call is delivered at most once: one\n"
    "    that timed out may or may not have run.\n"
    "\n"
    "    With --cluster or --nats, a service not hosted on this machine is looked\n"
    "    up in the cluster (NATS) next: a service deployed there, or run with\n"
    "    transport nats, answers from whichever replica NATS picks.\n"
    "\n"
    "    JSON and service values map one to one: null, true and false, integers\n"
    "    (signed 64-bit), reals (double), strings, arrays, and objects (maps with\n"
    "    string keys). Bytes are written {\"$bin\": \"<base64>\"}, in arguments and\n"
    "    results. Results that JSON cannot hold exactly: an unsigned integer\n"
    "    above 2^63-1 prints as a real (53 bits of precision survive); NaN and\n"
    "    infinities print as the strings \"NaN\", \"Infinity\" and \"-Infinity\";\n"
    "    a map key that is not a string prints as its JSON text (\"1\", \"[1,2]\");\n"
    "    bytes of a string that are not UTF-8 print as U+FFFD.\n"
    "\n"
    "OPTIONS\n"
    "    --kwargs JSON\n"
    "        Keyword arguments, a JSON object. Default {}.\n"
    CLI_TIMEOUT_HELP
    "    --async N\n"
    "        Make N identical calls (1..100000), all outstanding at once, then wait\n"
    "        for every answer. Results print one line each, in request order; a\n"
    "        failed call is reported on stderr, with its number (from 1), where its\n"
    "        line would be. The exit status is the first failure's, in request\n"
    "        order, or 0.\n"
    "    --idempotent\n"
    "        Mark the call idempotent: it may then be retried, with the same\n"
    "        request id, when it times out or the service is unavailable or full.\n"
    "        The timeout covers all attempts.\n"
    "    --retries N\n"
    "        Retries of an idempotent call (0..100). Needs --idempotent. Default:\n"
    "        service.call.retries of the configuration, else 0.\n"
    "    --pretty\n"
    "        Print results indented over several lines.\n"
    "    --cluster\n"
    "        Also look in the cluster, on the servers of the configuration's nats\n"
    "        section (default nats://127.0.0.1:4222).\n"
    CLI_NATS_CLUSTER_HELP
    CLI_CONFIG_OPT_HELP
    "        Read the configuration from FILE (see CONFIGURATION).\n"
    CLI_NAMESPACE_OPT_HELP
    "        Look SERVICE up in namespace NS. Default: the configuration's\n"
    "        namespace, else \"default\".\n"
    CLI_HELP_HELP
    "\n" CLI_CONFIG_HELP "\n" CLI_EXIT_STATUS_HELP
    "\n"
    "EXAMPLES\n"
    "    sagesvc call kv put '[\"answer\", 42]'\n"
    "        true\n"
    "    sagesvc call kv get '[\"answer\"]'\n"
    "        42\n"
    "    sagesvc call -n demo text freq '[\"to be or not to be\", 2]'\n"
    "        {\"be\":2,\"to\":2}\n"
    "    sagesvc call search query '[\"sagesvc\"]' --kwargs '{\"limit\": 5}'\n"
    "    sagesvc call kv keys --pretty\n"
    "    sagesvc call kv get '[\"answer\"]' --async 100 --timeout 2\n"
    "    sagesvc call kv put '[\"blob\", {\"$bin\": \"AAEC\"}]' --idempotent --retries 3\n";

enum { OPT_KWARGS = 256, OPT_ASYNC, OPT_IDEMPOTENT, OPT_RETRIES, OPT_PRETTY };

static const struct option own_options[] = {
    {"kwargs", required_argument, NULL, OPT_KWARGS},
    {"async", required_argument, NULL, OPT_ASYNC},
    {"idempotent", no_argument, NULL, OPT_IDEMPOTENT},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"pretty", no_argument, NULL, OPT_PRETTY},
    {NULL, 0, NULL, 0},
};

static void print_help(FILE *out)
{
    fputs(help, out);
}

static const struct cli_optspec spec = {
    .shared = CLI_OPT_CONFIG | CLI_OPT_NAMESPACE | CLI_OPT_CLUSTER | CLI_OPT_NATS |
              CLI_OPT_TIMEOUT,
    .own = own_options,
    .help = print_help,
};

struct call {
    const char *service, *method;
    const char *args_json, *kwargs_json;
    struct cli_common common; /* -c, -n, --cluster, --nats, --timeout */
    long count;     /* calls; 1 unless --async */
    long retries;   /* -1: not given */
    int idempotent, pretty, async;
    sage_value args, kwargs;
};

static int parse(struct call *c, int argc, char **argv)
{
    struct cli_opts o;
    int opt;
    long n;

    cli_opts_init(&o, argv[0], &spec, &c->common);
    while ((opt = cli_opts_next(&o, argc, argv)) >= 0) {
        switch (opt) {
        case OPT_KWARGS:
            c->kwargs_json = optarg;
            break;
        case OPT_ASYNC:
            if (cli_parse_count("--async", optarg, 1, 100000, &n) != SAGE_OK)
                return cli_usage(argv[0], "--async: expected a count in 1..100000, got '%s'",
                                 optarg);
            c->count = n;
            c->async = 1;
            break;
        case OPT_IDEMPOTENT:
            c->idempotent = 1;
            break;
        case OPT_RETRIES:
            if (cli_parse_count("--retries", optarg, 0, 100, &c->retries) != SAGE_OK)
                return cli_usage(argv[0], "--retries: expected a count in 0..100, got '%s'",
                                 optarg);
            break;
        case OPT_PRETTY:
            c->pretty = 1;
            break;
        }
    }
    if (opt == CLI_OPTS_STOP)
        return o.status;
    if (argc - optind < 2)
        return cli_usage(argv[0], "expected SERVICE METHOD [ARGS_JSON]");
    if (argc - optind > 3)
        return cli_usage(argv[0], "unexpected argument '%s' (ARGS_JSON is one JSON array: "
                                  "quote it)", argv[optind + 3]);
    if (c->retries >= 0 && !c->idempotent)
        return cli_usage(argv[0], "--retries applies to idempotent calls: add --idempotent");
    c->service = argv[optind];
    c->method = argv[optind + 1];
    if (argc - optind == 3)
        c->args_json = argv[optind + 2];
    return CLI_OK;
}

/* Parses ARGS_JSON and --kwargs into a, checking their shapes. */
static int parse_values(struct call *c, const char *cmd, sage_arena *a)
{
    int status;

    if ((status = cli_json_arg("ARGS_JSON", c->args_json, a, &c->args)) != CLI_OK)
        return status;
    if (c->args.type != SAGE_ARRAY)
        return cli_usage(cmd, "ARGS_JSON must be a JSON array of positional arguments, got %s "
                              "(write [%s] for one argument)",
                         sage_type_name(c->args.type), c->args_json);
    if ((status = cli_json_arg("--kwargs", c->kwargs_json, a, &c->kwargs)) != CLI_OK)
        return status;
    if (c->kwargs.type != SAGE_MAP)
        return cli_usage(cmd, "--kwargs must be a JSON object, got %s",
                         sage_type_name(c->kwargs.type));
    return CLI_OK;
}

/* Reports call i's failure e, whose detail is the thread's (or the CLI's
 * own) at this moment. stdout is flushed first, so that on a terminal the
 * message stands where the call's result would have. */
static void report(const struct call *c, long i, sage_err e)
{
    fflush(stdout);
    if (c->async)
        cli_error(e, "%s.%s: call %ld of %ld", c->service, c->method, i + 1, c->count);
    else
        cli_error(e, "%s.%s", c->service, c->method);
}

/* Sends the calls, all of them before waiting for any, then reports each
 * in request order. Returns the exit status: the first failure's. */
static int run_calls(const struct call *c, sage_manager *m)
{
    sage_future **fs = calloc((size_t)c->count, sizeof *fs);
    sage_err *sent = calloc((size_t)c->count, sizeof *sent);
    char **why = calloc((size_t)c->count, sizeof *why); /* details of failed sends */
    int status = CLI_OK;

    if (fs == NULL || sent == NULL || why == NULL) {
        free(fs);
        free(sent);
        free(why);
        cli_error(SAGE_ENOMEM, "%s.%s", c->service, c->method);
        return CLI_ERR;
    }
    for (long i = 0; i < c->count; i++) {
        sent[i] = sage_manager_call(&fs[i], m, &(sage_request){.service = c->service, .method = c->method, .args = c->args.as.array.items, .nargs = c->args.as.array.len, .kwargs = c->kwargs.as.map.items, .nkwargs = c->kwargs.as.map.len, .idempotent = c->idempotent != 0});
        /* The next call replaces the detail: keep it for the report, which
         * waits for this call's turn in request order. */
        if (sent[i] != SAGE_OK)
            why[i] = strdup(sage_errdetail());
    }
    for (long i = 0; i < c->count; i++) {
        const sage_value *v;
        sage_err r;
        int code;

        if (sent[i] != SAGE_OK) {
            cli_fail(sent[i], "%s", why[i] != NULL ? why[i] : "");
            report(c, i, sent[i]);
            code = cli_exit_for(sent[i]);
        } else {
            sage_future_wait(fs[i], -1); /* the call's own timeout bounds it */
            r = sage_future_result(&v, fs[i]);
            if (r == SAGE_OK) {
                code = cli_print_value(v, c->pretty, "printing the result");
            } else {
                report(c, i, r);
                code = cli_exit_for_answer(r);
            }
            sage_future_free(fs[i]);
        }
        if (status == CLI_OK)
            status = code;
        free(why[i]);
    }
    fflush(stdout);
    free(fs);
    free(sent);
    free(why);
    return status;
}

int cmd_call(int argc, char **argv)
{
    struct call c = {.args_json = "[]", .kwargs_json = "{}", .count = 1, .retries = -1};
    sage_config *cfg = NULL;
    sage_manager_opts mo;
    struct cli_nats nats = {0};
    sage_cluster_opts co = {0};
    sage_manager *m;
    sage_arena *a;
    sage_err r;
    int status;

    if ((status = parse(&c, argc, argv)) != CLI_OK)
        return status < 0 ? CLI_OK : status;
    if ((r = sage_arena_new(&a, 0)) != SAGE_OK) {
        cli_error(r, "starting");
        return cli_exit_for(r);
    }
    if ((status = parse_values(&c, argv[0], a)) != CLI_OK)
        goto out;
    if ((status = cli_load_config_or_fail(c.common.config, &cfg)) != CLI_OK)
        goto out;
    sage_manager_opts_init(&mo);
    mo.ns = cli_namespace(c.common.ns, cfg);
    if (cfg != NULL) {
        sage_manager_opts_from_conf(&mo, cfg);
        mo.ns = cli_namespace(c.common.ns, cfg);
    }
    if (c.common.timeout_ms > 0)
        mo.timeout_ms = c.common.timeout_ms;
    if (c.retries >= 0)
        mo.retries = (uint32_t)c.retries;
    if (c.common.cluster) {
        if ((r = cli_nats_init(&nats, c.common.nats, cfg)) != SAGE_OK) {
            cli_error(r, "--nats");
            status = CLI_USAGE;
            goto out;
        }
        co.nats = &nats.conf;
        mo.cluster = &co;
    }
    if ((r = sage_manager_new(&m, &mo)) != SAGE_OK) {
        cli_error(r, "starting the call manager (namespace '%s')", mo.ns);
        status = cli_exit_for(r);
        goto out;
    }
    status = run_calls(&c, m);
    sage_manager_free(m);
out:
    cli_nats_fini(&nats);
    sage_config_free(cfg);
    sage_arena_free(a);
    return status;
}
