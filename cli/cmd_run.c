/*
 * cmd_run.c - `sagesvc run`: host the services of a configuration over
 * shared memory until a signal says stop.
 *
 * Design notes: every signal run reacts to (SIGINT, SIGTERM, SIGHUP) is
 * blocked before the first thread starts, so each task's threads and the
 * metrics server's inherit the mask and the main thread alone takes them,
 * with sigwait: no handler, no flag, no polling. Everything that can be
 * refused (transport, middleware, plugins, options) is checked before the
 * first task starts, so a bad entry late in the file never leaves half a
 * deployment running; a start that fails stops the tasks already started.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtins.h"
#include "commands.h"
#include "common.h"
#include "metrics.h"
#include "plugins.h"
#include "sage/cluster.h"
#include "sage/config.h"
#include "sage/plugin.h"
#include "sage/service.h"
#include "sage/task.h"

/* One service of the configuration, on its way to running. */
struct hosted {
    const sage_service_conf *conf;
    size_t index;             /* in the configuration */
    sage_plugin *plugin;      /* NULL for a built-in */
    const sage_service *svc;  /* the plugin's table or a built-in */
    const sage_middleware **mw;
    sage_arena *arena;        /* holds params */
    sage_value params;        /* the entry's `config:` map */
    sage_task *task;
    sage_cluster_opts copts;  /* transport nats */
    int started;
};

struct run {
    const char *config_path;
    const char *metrics_addr;
    const char *ns;
    sage_config *cfg;
    struct hosted *h;
    size_t n;
    cli_metrics *metrics;
};

static void usage(FILE *out)
{
    fputs("NAME\n"
          "    sagesvc run - host the services of a configuration on this machine\n"
          "\n"
          "SYNOPSIS\n"
          "    sagesvc run [CONFIG.yaml] [-c CONFIG] [-n NS] [--metrics ADDR:PORT]\n"
          "    sagesvc run -h\n"
          "\n"
          "DESCRIPTION\n"
          "    Loads the configuration and hosts every service it lists, in this\n"
          "    process, over shared memory (transport shm), until SIGINT, SIGTERM or\n"
          "    SIGHUP. Every process of the same user on this machine can then call\n"
          "    them by name within the namespace: `sagesvc call`, or a program with a\n"
          "    sage_manager. A name already served on this host by a live process is\n"
          "    refused.\n"
          "\n"
          "    A service's `plugin` names the code that implements it:\n"
          "      - a path (it contains '/' or ends in .so) loads that file; a relative\n"
          "        path is taken from the configuration file's directory;\n"
          "      - a bare name N loads the first N.so or libsage_N.so found in\n"
          "            each directory of $SAGE_PLUGIN_PATH (colon-separated),\n"
          "            the configuration file's directory,\n"
          "            BIN/plugins and BIN/../lib/sagesvc/plugins, BIN being the\n"
          "            directory of the sagesvc binary,\n"
          "        and with no such file, the service built into sagesvc under that\n"
          "        name (kv and text, the examples).\n"
          "    A plugin file that exists but cannot be used (not a shared object, no\n"
          "    sage_plugin_entry, built for another service ABI, or its entry\n"
          "    refuses) is an error: it is never replaced by a built-in.\n"
          "\n"
          "    Each service gets max_workers, queue_timeout and request_queue_size\n"
          "    from service.local merged with its own entry, the middleware named by\n"
          "    `middleware` (logging, deadline) in that order, and its `config:` map\n"
          "    as its factory's configuration. Transport local is in-process only and\n"
          "    is refused here. Transport nats serves the service as one replica on\n"
          "    the NATS servers of section nats (subject sage.NS.svc.NAME, queue group\n"
          "    q; with delivery: durable, from a JetStream work queue): run the same\n"
          "    file on several machines for several replicas.\n"
          "\n"
          "    Once every service runs, one line each says where it listens:\n"
          "        kv: shm /dev/shm/sage.q.1000.demo.kv.req (pid 4242, 4 workers, plugin builtin)\n"
          "\n"
          "OPTIONS\n"
          "    CONFIG.yaml, -c FILE, --config FILE\n"
          "        The configuration file (one of the two forms). Without it, the first\n"
          "        that exists of ./services.yaml, $XDG_CONFIG_HOME/sagesvc/services.yaml\n"
          "        (default ~/.config/sagesvc/services.yaml), /etc/sagesvc/services.yaml.\n"
          "    -n NS, --namespace NS\n"
          "        Host the services in namespace NS instead of the configuration's.\n"
          "    --metrics ADDR:PORT\n"
          "        Serve Prometheus metrics (text format 0.0.4) on GET /metrics, bound\n"
          "        to exactly that address: 127.0.0.1:9464, [::1]:9464. Port 0 picks a\n"
          "        free port; the URL is printed at start.\n"
          "    -h, --help\n"
          "        Print this help and exit.\n"
          "\n"
          "SIGNALS\n"
          "    SIGINT, SIGTERM, SIGHUP\n"
          "        Stop. Each service stops taking calls (new callers get\n"
          "        EUNAVAILABLE), answers every call already queued, waits for calls in\n"
          "        flight, and leaves the host registry; then run exits with status 0.\n"
          "        A second signal during that drain exits at once, with status 1.\n"
          "\n"
          "EXIT STATUS\n"
          "    0   stopped by a signal, every service drained\n"
          "    1   a service is already served on this host, or failed to start; the\n"
          "        metrics address cannot be bound; a second signal cut the drain short\n"
          "    2   usage: unknown option, two configuration files, a bad namespace or\n"
          "        --metrics address\n"
          "    9   configuration: none found, unreadable or invalid (FILE:LINE:COL), no\n"
          "        services in it, an unknown middleware, transport local, or\n"
          "        a service's factory refused its config: map\n"
          "    10  plugin: not found (and no built-in of that name), or refused\n"
          "\n"
          "EXAMPLE\n"
          "    $ sagesvc run examples/services.yaml --metrics 127.0.0.1:9464 &\n"
          "    kv: shm /dev/shm/sage.q.1000.demo.kv.req (pid 4242, 4 workers, plugin builtin)\n"
          "    text: shm /dev/shm/sage.q.1000.demo.text.req (pid 4242, 10 workers, plugin builtin)\n"
          "    metrics: http://127.0.0.1:9464/metrics\n"
          "    $ sagesvc call -n demo kv put '[\"greeting\", \"hello\"]'\n"
          "    $ curl -s http://127.0.0.1:9464/metrics | grep requests_total\n"
          "    $ kill %1\n",
          out);
}

/* ------------------------------------------------------------- options */

static int parse_options(struct run *run, int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"namespace", required_argument, NULL, 'n'},
        {"metrics", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    optind = 1;
    opterr = 0; /* our own messages, in our own words */
    while ((opt = getopt_long(argc, argv, ":c:n:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            run->config_path = optarg;
            break;
        case 'n':
            run->ns = optarg;
            break;
        case 'm':
            run->metrics_addr = optarg;
            break;
        case 'h':
            usage(stdout);
            return -1;
        case ':':
            fprintf(stderr, "sagesvc run: option '%s' needs a value\n", argv[optind - 1]);
            return CLI_USAGE;
        default:
            fprintf(stderr, "sagesvc run: unknown option '%s' (see sagesvc run --help)\n",
                    argv[optind - 1]);
            return CLI_USAGE;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "sagesvc run: one configuration file at most, got '%s' and '%s'\n",
                argv[optind], argv[optind + 1]);
        return CLI_USAGE;
    }
    if (argc - optind == 1) {
        if (run->config_path) {
            fprintf(stderr, "sagesvc run: two configuration files: '%s' and -c '%s'\n", argv[optind],
                    run->config_path);
            return CLI_USAGE;
        }
        run->config_path = argv[optind];
    }
    if (run->metrics_addr && cli_metrics_check(run->metrics_addr) != SAGE_OK) {
        cli_error(SAGE_EINVAL, "bad --metrics address");
        return CLI_USAGE;
    }
    if (run->ns && cli_check_namespace("run", "-n/--namespace", run->ns) != CLI_OK)
        return CLI_USAGE;
    return CLI_OK;
}

/* ------------------------------------------------------- plugin search */

/* load_plugin finds the code of h's service (cli_plugin_resolve: a plugin
 * file, else a built-in; a file that exists but fails is never replaced) */
static int load_plugin(struct run *run, struct hosted *h)
{
    return cli_plugin_resolve(run->cfg, h->conf, &h->plugin, &h->svc) == SAGE_OK ? CLI_OK
                                                                                : CLI_PLUGIN;
}

/* ------------------------------------------------------------- preparing */

static int check_transport(struct run *run, const struct hosted *h)
{
    const char *t = h->conf->transport;
    const char *file = sage_config_path(run->cfg);

    if (strcmp(t, "shm") == 0 || strcmp(t, "nats") == 0)
        return CLI_OK;
    if (strcmp(t, "local") == 0)
        fprintf(stderr,
                "sagesvc: %s:%d: service '%s': transport local is in-process only, so no other "
                "process could call it; `sagesvc run` hosts services for other processes: use "
                "transport shm\n",
                file, h->conf->line, h->conf->name);
    else
        fprintf(stderr, "sagesvc: %s:%d: service '%s': unknown transport '%s'\n", file,
                h->conf->line, h->conf->name, t);
    return CLI_CONFIG;
}

static int find_middleware(struct run *run, struct hosted *h)
{
    size_t n = h->conf->nmiddleware;

    h->mw = calloc(n ? n : 1, sizeof *h->mw);
    if (h->mw == NULL) {
        fprintf(stderr, "sagesvc: out of memory\n");
        return CLI_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        h->mw[i] = sage_middleware_find(h->conf->middleware[i]);
        if (h->mw[i] == NULL) {
            fprintf(stderr,
                    "sagesvc: %s:%d: service '%s': unknown middleware '%s' (built-ins: logging, "
                    "deadline)\n",
                    sage_config_path(run->cfg), h->conf->line, h->conf->name,
                    h->conf->middleware[i]);
            return CLI_CONFIG;
        }
    }
    return CLI_OK;
}

static int make_task(struct run *run, struct hosted *h)
{
    sage_task_opts o;
    sage_err r;

    if ((r = sage_arena_new(&h->arena, 0)) != SAGE_OK ||
        (r = sage_config_service_params(run->cfg, h->index, h->arena, &h->params)) != SAGE_OK) {
        cli_error(r, "service '%s': reading its config", h->conf->name);
        return CLI_ERR;
    }
    sage_task_opts_init(&o);
    o.name = h->conf->name;
    o.ns = run->ns;
    o.transport = SAGE_TRANSPORT_SHM;
    if (strcmp(h->conf->transport, "nats") == 0) {
        h->copts.nats = sage_config_nats(run->cfg);
        h->copts.durable = h->conf->cluster.durable;
        o.transport = SAGE_TRANSPORT_NATS;
        o.transport_opts = &h->copts;
    }
    o.max_workers = h->conf->local.max_workers;
    o.queue_timeout = h->conf->local.queue_timeout;
    o.request_queue_size = h->conf->local.request_queue_size;
    o.config = &h->params;
    o.middleware = h->mw;
    o.nmiddleware = h->conf->nmiddleware;
    if ((r = sage_task_new(&h->task, h->svc, &o)) != SAGE_OK) {
        cli_error(r, "%s:%d: service '%s'", sage_config_path(run->cfg), h->conf->line,
                  h->conf->name);
        return r == SAGE_EINVAL || r == SAGE_ECONFIG ? CLI_CONFIG : CLI_ERR;
    }
    return CLI_OK;
}

/* prepare checks and loads everything, starting nothing */
static int prepare(struct run *run)
{
    int rc;

    run->n = sage_config_nservices(run->cfg);
    if (run->n == 0) {
        fprintf(stderr, "sagesvc: %s lists no services: nothing to run\n",
                sage_config_path(run->cfg));
        return CLI_CONFIG;
    }
    run->h = calloc(run->n, sizeof *run->h);
    if (run->h == NULL) {
        fprintf(stderr, "sagesvc: out of memory\n");
        return CLI_ERR;
    }
    for (size_t i = 0; i < run->n; i++) {
        struct hosted *h = &run->h[i];

        h->index = i;
        h->conf = sage_config_service(run->cfg, i);
        if ((rc = check_transport(run, h)) != CLI_OK || (rc = find_middleware(run, h)) != CLI_OK ||
            (rc = load_plugin(run, h)) != CLI_OK || (rc = make_task(run, h)) != CLI_OK)
            return rc;
    }
    return CLI_OK;
}

/* ------------------------------------------------------------- running */

struct find_queue {
    const char *name;
    char queue[160];
};

static void on_entry(void *arg, const sage_host_entry *e)
{
    struct find_queue *fq = arg;

    if (strcmp(e->name, fq->name) == 0)
        snprintf(fq->queue, sizeof fq->queue, "%s", e->queue);
}

static void print_listening(struct run *run, const struct hosted *h)
{
    struct find_queue fq = {h->conf->name, ""};

    if (strcmp(h->conf->transport, "nats") == 0) {
        printf("%s: nats sage.%s.svc.%s via %s (pid %d, %u workers, %s, plugin %s)\n",
               h->conf->name, run->ns, h->conf->name, sage_config_nats(run->cfg)->servers[0],
               (int)getpid(), (unsigned)h->conf->local.max_workers,
               h->copts.durable ? "durable" : "at most once",
               h->plugin ? sage_plugin_path(h->plugin) : "builtin");
        return;
    }
    sage_host_list(run->ns, 0, on_entry, &fq);
    printf("%s: shm /dev/shm/sage.q.%s (pid %d, %u workers, plugin %s)\n", h->conf->name,
           fq.queue[0] ? fq.queue : "?", (int)getpid(), (unsigned)h->conf->local.max_workers,
           h->plugin ? sage_plugin_path(h->plugin) : "builtin");
}

static int start_one(struct run *run, struct hosted *h)
{
    sage_err r = sage_task_start(h->task);
    sage_status st;

    if (r == SAGE_OK) {
        h->started = 1;
        print_listening(run, h);
        return CLI_OK;
    }
    if (r == SAGE_EEXIST) {
        if (sage_host_status(run->ns, h->conf->name, &st) == SAGE_OK && st.pid > 0)
            fprintf(stderr,
                    "sagesvc: service '%s' is already served on this host by pid %d: stop it "
                    "first\n",
                    h->conf->name, (int)st.pid);
        else
            cli_error(r, "service '%s' is already served on this host: stop it first",
                      h->conf->name);
        return CLI_ERR;
    }
    cli_error(r, "%s:%d: service '%s'", sage_config_path(run->cfg), h->conf->line, h->conf->name);
    return r == SAGE_ECONFIG || r == SAGE_EINVAL ? CLI_CONFIG : CLI_ERR;
}

/* stop_all drains and stops the started tasks, last started first */
static void stop_all(struct run *run, int verbose)
{
    for (size_t i = run->n; i-- > 0;) {
        struct hosted *h = &run->h[i];
        sage_status st;
        sage_err r;

        if (!h->started)
            continue;
        r = sage_task_stop(h->task);
        h->started = 0;
        if (r != SAGE_OK)
            cli_error(r, "service '%s': stopping", h->conf->name);
        else if (verbose && sage_task_status(h->task, &st) == SAGE_OK)
            printf("%s: stopped after %llu request%s, %llu error%s\n", h->conf->name,
                   (unsigned long long)st.requests, st.requests == 1 ? "" : "s",
                   (unsigned long long)st.errors, st.errors == 1 ? "" : "s");
    }
}

static void cleanup(struct run *run)
{
    cli_metrics_close(run->metrics);
    stop_all(run, 0);
    /* tasks before plugins: a task's code lives in its plugin */
    for (size_t i = 0; run->h && i < run->n; i++) {
        sage_task_free(run->h[i].task);
        sage_plugin_close(run->h[i].plugin);
        sage_arena_free(run->h[i].arena);
        free(run->h[i].mw);
    }
    free(run->h);
    sage_config_free(run->cfg);
}

static const char *signame(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "signal";
}

/* impatient runs during the drain: a second signal means "now" */
static void *impatient(void *arg)
{
    const sigset_t *set = arg;
    int sig;

    if (sigwait(set, &sig) == 0) {
        fprintf(stderr, "sagesvc: %s again: exiting without draining\n", signame(sig));
        _exit(CLI_ERR);
    }
    return NULL;
}

static int serve(struct run *run, const sigset_t *set)
{
    pthread_t t;
    sage_err r;
    int sig, rc;

    for (size_t i = 0; i < run->n; i++)
        if ((rc = start_one(run, &run->h[i])) != CLI_OK)
            return rc;
    if (run->metrics_addr) {
        sage_task **tasks = calloc(run->n, sizeof *tasks);

        if (tasks == NULL)
            return CLI_ERR;
        for (size_t i = 0; i < run->n; i++)
            tasks[i] = run->h[i].task;
        r = cli_metrics_open(&run->metrics, run->metrics_addr, tasks, run->n);
        free(tasks);
        if (r != SAGE_OK) {
            cli_error(r, "--metrics %s", run->metrics_addr);
            return r == SAGE_EINVAL ? CLI_USAGE : CLI_ERR;
        }
        printf("metrics: %s\n", cli_metrics_url(run->metrics));
    }
    printf("sagesvc: serving %zu service%s in namespace '%s' (pid %d); stop with Ctrl-C or "
           "SIGTERM\n",
           run->n, run->n == 1 ? "" : "s", run->ns, (int)getpid());
    fflush(stdout);
    do {
        rc = sigwait(set, &sig);
    } while (rc == EINTR);
    printf("sagesvc: %s: stopping %zu service%s (answering queued calls first)\n", signame(sig),
           run->n, run->n == 1 ? "" : "s");
    fflush(stdout);
    if (pthread_create(&t, NULL, impatient, (void *)set) == 0)
        pthread_detach(t);
    /* metrics first: a stopped task's figures would read as a counter reset */
    cli_metrics_close(run->metrics);
    run->metrics = NULL;
    stop_all(run, 1);
    printf("sagesvc: stopped\n");
    fflush(stdout);
    return CLI_OK;
}

int cmd_run(int argc, char **argv)
{
    struct run run;
    static sigset_t set; /* static: the impatient thread reads it after serve returns */
    sage_err r;
    int rc;

    memset(&run, 0, sizeof run);
    if ((rc = parse_options(&run, argc, argv)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    /* before any thread exists, so that every thread inherits the mask; a
     * closed stdout must not kill the host */
    cli_block_stop_signals(&set);

    r = cli_load_config(run.config_path, &run.cfg);
    if (r != SAGE_OK) {
        cli_error(r, "cannot load the configuration%s%s", run.config_path ? " " : "",
                  run.config_path ? run.config_path : "");
        return CLI_CONFIG;
    }
    if (run.cfg == NULL) {
        fprintf(stderr, "sagesvc run: no configuration: give a file, or create ./services.yaml, "
                        "$XDG_CONFIG_HOME/sagesvc/services.yaml or /etc/sagesvc/services.yaml\n");
        return CLI_CONFIG;
    }
    run.ns = cli_namespace(run.ns, run.cfg);
    rc = prepare(&run);
    if (rc == CLI_OK)
        rc = serve(&run, &set);
    cleanup(&run);
    return rc;
}
