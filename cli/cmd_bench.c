/*
 * cmd_bench.c - sagesvc bench: round trips and throughput of a running
 * service, measured from this process as any caller would see them.
 *
 * Two phases with the same arguments: CALLS synchronous calls one after the
 * other (latency of each round trip), then CALLS asynchronous calls with up
 * to CONCURRENCY outstanding (throughput). The window is a ring of futures
 * waited for oldest first: a service answers roughly in order, and the
 * figure is calls over wall time either way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "common.h"
#include "json.h"
#include "opts.h"
#include "sage/future.h"
#include "sage/manager.h"

static const char help[] =
    "NAME\n"
    "    sagesvc bench - measure round trips and throughput of a running service\n"
    "\n"
    "SYNOPSIS\n"
    "    sagesvc bench [OPTIONS] SERVICE METHOD\n"
    "\n"
    "DESCRIPTION\n"
    "    Calls METHOD of the running service SERVICE, first CALLS times one after\n"
    "    the other (synchronous round trips: their p50, p99, mean and max in\n"
    "    microseconds), then CALLS times with up to CONCURRENCY calls outstanding\n"
    "    at once (asynchronous throughput, in calls per second). One warm-up call\n"
    "    comes first; if it fails, nothing is measured and the exit status is its\n"
    "    error's. A failed call during the measurement is counted; the exit\n"
    "    status is then the first failure's.\n"
    "\n"
    "    The figures include this process's side of each call (encoding, the\n"
    "    response queue, waking the waiting thread): what any caller sees.\n"
    "\n"
    "OPTIONS\n"
    "    --args JSON\n"
    "        Positional arguments of every call, a JSON array. Default [].\n"
    "    --calls N\n"
    "        Calls per phase, 1..10000000. Default 10000.\n"
    "    --concurrency C\n"
    "        Calls outstanding at once in the throughput phase, 1..100000.\n"
    "        Default 64.\n"
    CLI_TIMEOUT_HELP
    "    --json\n"
    "        Print one JSON object: service, method, calls, concurrency, errors,\n"
    "        sync_p50_us, sync_p99_us, sync_mean_us, sync_max_us, sync_calls_per_s,\n"
    "        async_calls_per_s, async_seconds.\n"
    CLI_CONFIG_OPT_HELP
    "        Read the configuration from FILE.\n"
    CLI_NAMESPACE_OPT_HELP
    "        The namespace of SERVICE. Default: the configuration's, else\n"
    "        \"default\".\n"
    CLI_HELP_HELP
    "\n" CLI_CONFIG_HELP "\n" CLI_EXIT_STATUS_HELP
    "\n"
    "EXAMPLES\n"
    "    sagesvc bench kv get --args '[\"answer\"]'\n"
    "    sagesvc bench kv size --calls 100000 --concurrency 256 --json\n";

enum { OPT_ARGS = 256, OPT_CALLS, OPT_CONCURRENCY };

static const struct option own_options[] = {
    {"args", required_argument, NULL, OPT_ARGS},
    {"calls", required_argument, NULL, OPT_CALLS},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {NULL, 0, NULL, 0},
};

static void print_help(FILE *out)
{
    fputs(help, out);
}

static const struct cli_optspec spec = {
    .shared = CLI_OPT_CONFIG | CLI_OPT_NAMESPACE | CLI_OPT_JSON | CLI_OPT_TIMEOUT,
    .own = own_options,
    .help = print_help,
};

struct bench {
    const char *service, *method, *args_json;
    struct cli_common common; /* -c, -n, --timeout, --json */
    long calls, concurrency;
    sage_value args;
    /* results */
    long errors;
    int first_status;
    double p50, p99, mean, max, sync_s, async_s;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Remembers a failed call; the first one's error decides the exit status
 * and is reported once, with its detail. */
static void failed(struct bench *b, sage_err r)
{
    if (b->errors++ == 0) {
        b->first_status = cli_exit_for_answer(r);
        cli_error(r, "%s.%s", b->service, b->method);
    }
}

/* One synchronous call, its result discarded. */
static sage_err call_once(struct bench *b, sage_manager *m)
{
    return sage_manager_call_sync(NULL, m, &(sage_request){.service = b->service, .method = b->method, .args = b->args.as.array.items, .nargs = b->args.as.array.len}, NULL);
}

static sage_err run_sync(struct bench *b, sage_manager *m)
{
    double *lat = malloc((size_t)b->calls * sizeof *lat), sum = 0, t0 = now_s();

    if (lat == NULL)
        return cli_fail(SAGE_ENOMEM, "out of memory for %ld latencies", b->calls);
    for (long i = 0; i < b->calls; i++) {
        double t = now_s();
        sage_err r = call_once(b, m);

        lat[i] = (now_s() - t) * 1e6;
        if (r != SAGE_OK)
            failed(b, r);
    }
    b->sync_s = now_s() - t0;
    for (long i = 0; i < b->calls; i++) /* in call order, before the sort */
        sum += lat[i];
    qsort(lat, (size_t)b->calls, sizeof *lat, by_double);
    b->p50 = lat[(size_t)((double)(b->calls - 1) * 0.50)];
    b->p99 = lat[(size_t)((double)(b->calls - 1) * 0.99)];
    b->max = lat[b->calls - 1];
    b->mean = sum / (double)b->calls;
    free(lat);
    return SAGE_OK;
}

static void finish(struct bench *b, sage_future *f)
{
    sage_err r;

    sage_future_wait(f, -1); /* bounded by the call's timeout */
    if ((r = sage_future_result(NULL, f)) != SAGE_OK)
        failed(b, r);
    sage_future_free(f);
}

static sage_err run_async(struct bench *b, sage_manager *m)
{
    sage_future **ring = calloc((size_t)b->concurrency, sizeof *ring);
    long head = 0, outstanding = 0;
    double t0;

    if (ring == NULL)
        return cli_fail(SAGE_ENOMEM, "out of memory for %ld futures", b->concurrency);
    t0 = now_s();
    for (long i = 0; i < b->calls; i++) {
        sage_future *f;
        sage_err r;

        if (outstanding == b->concurrency) {
            finish(b, ring[head]);
            head = (head + 1) % b->concurrency;
            outstanding--;
        }
        r = sage_manager_call(&f, m, &(sage_request){.service = b->service, .method = b->method, .args = b->args.as.array.items, .nargs = b->args.as.array.len});
        if (r != SAGE_OK) {
            failed(b, r);
            continue;
        }
        ring[(head + outstanding) % b->concurrency] = f;
        outstanding++;
    }
    while (outstanding > 0) {
        finish(b, ring[head]);
        head = (head + 1) % b->concurrency;
        outstanding--;
    }
    b->async_s = now_s() - t0;
    free(ring);
    return SAGE_OK;
}

static int report(const struct bench *b)
{
    double sync_rate = (double)b->calls / b->sync_s, async_rate = (double)b->calls / b->async_s;
    sage_arena *a = NULL;
    sage_value v;
    sage_err r;
    int status;

    if (!b->common.json) {
        printf("%s.%s: %ld calls per phase, %ld errors\n", b->service, b->method, b->calls,
               b->errors);
        printf("%-30s %14s\n", "FIGURE", "VALUE");
        printf("%-30s %14.1f\n", "sync round trip p50 (us)", b->p50);
        printf("%-30s %14.1f\n", "sync round trip p99 (us)", b->p99);
        printf("%-30s %14.1f\n", "sync round trip mean (us)", b->mean);
        printf("%-30s %14.1f\n", "sync round trip max (us)", b->max);
        printf("%-30s %14.0f\n", "sync calls/s", sync_rate);
        printf("%-30s %14.0f\n", "async calls/s", async_rate);
        printf("%-30s %14ld\n", "async concurrency", b->concurrency);
        return CLI_OK;
    }
    if ((r = sage_arena_new(&a, 0)) == SAGE_OK)
        r = sage_pack(&v, a, "{s:s s:s s:I s:I s:I s:f s:f s:f s:f s:f s:f s:f}", "service", b->service, "method", b->method, "calls", (int64_t)b->calls, "concurrency", (int64_t)b->concurrency, "errors", (int64_t)b->errors, "sync_p50_us", b->p50, "sync_p99_us", b->p99, "sync_mean_us", b->mean, "sync_max_us", b->max, "sync_calls_per_s", sync_rate, "async_calls_per_s", async_rate, "async_seconds", b->async_s);
    if (r == SAGE_OK) {
        status = cli_print_value(&v, 0, "printing the figures");
    } else {
        cli_error(r, "printing the figures");
        status = cli_exit_for(r);
    }
    sage_arena_free(a);
    return status;
}

static int parse(struct bench *b, int argc, char **argv)
{
    struct cli_opts o;
    int opt;

    cli_opts_init(&o, argv[0], &spec, &b->common);
    while ((opt = cli_opts_next(&o, argc, argv)) >= 0) {
        switch (opt) {
        case OPT_ARGS:
            b->args_json = optarg;
            break;
        case OPT_CALLS:
            if (cli_parse_count("--calls", optarg, 1, 10000000, &b->calls) != SAGE_OK)
                return cli_usage(argv[0], "--calls: expected a count in 1..10000000, got '%s'",
                                 optarg);
            break;
        case OPT_CONCURRENCY:
            if (cli_parse_count("--concurrency", optarg, 1, 100000, &b->concurrency) != SAGE_OK)
                return cli_usage(argv[0],
                                 "--concurrency: expected a count in 1..100000, got '%s'",
                                 optarg);
            break;
        }
    }
    if (opt == CLI_OPTS_STOP)
        return o.status;
    if (argc - optind != 2)
        return cli_usage(argv[0], argc - optind < 2 ? "expected SERVICE METHOD"
                                                    : "unexpected argument (use --args JSON)");
    b->service = argv[optind];
    b->method = argv[optind + 1];
    return CLI_OK;
}

static int measure(struct bench *b, sage_manager *m)
{
    sage_err r = call_once(b, m);
    int status;

    if (r != SAGE_OK) {
        cli_error(r, "%s.%s: warm-up call", b->service, b->method);
        return cli_exit_for(r);
    }
    if ((r = run_sync(b, m)) != SAGE_OK || (r = run_async(b, m)) != SAGE_OK) {
        cli_error(r, "measuring");
        return cli_exit_for(r);
    }
    if ((status = report(b)) != CLI_OK)
        return status;
    return b->errors ? b->first_status : CLI_OK;
}

int cmd_bench(int argc, char **argv)
{
    struct bench b = {.args_json = "[]", .calls = 10000, .concurrency = 64};
    sage_config *cfg = NULL;
    sage_manager_opts mo;
    sage_manager *m = NULL;
    sage_arena *a = NULL;
    int status;
    sage_err r;

    if ((status = parse(&b, argc, argv)) != CLI_OK)
        return status < 0 ? CLI_OK : status;
    if ((r = sage_arena_new(&a, 0)) != SAGE_OK) {
        cli_error(r, "starting");
        return cli_exit_for(r);
    }
    if ((status = cli_json_arg("--args", b.args_json, a, &b.args)) != CLI_OK)
        goto out;
    if (b.args.type != SAGE_ARRAY) {
        status = cli_usage(argv[0], "--args must be a JSON array, got %s",
                           sage_type_name(b.args.type));
        goto out;
    }
    if ((status = cli_load_config_or_fail(b.common.config, &cfg)) != CLI_OK)
        goto out;
    sage_manager_opts_init(&mo);
    mo.ns = cli_namespace(b.common.ns, cfg);
    if (cfg != NULL)
        mo.timeout_ms = sage_config_call(cfg)->timeout_ms;
    if (b.common.timeout_ms > 0)
        mo.timeout_ms = b.common.timeout_ms;
    if ((r = sage_manager_new(&m, &mo)) != SAGE_OK) {
        cli_error(r, "starting the call manager (namespace '%s')", mo.ns);
        status = cli_exit_for(r);
        goto out;
    }
    status = measure(&b, m);
out:
    sage_manager_free(m);
    sage_config_free(cfg);
    sage_arena_free(a);
    return status;
}
