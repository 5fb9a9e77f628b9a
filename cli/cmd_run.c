/*
 * cmd_run.c - `sagesvc run`: host the services of a configuration over
 * shared memory until a signal says stop.
 *
 * Design notes
 * - Every signal run reacts to (SIGINT, SIGTERM, SIGHUP) is blocked before
 *   the first thread starts, so each task's threads and the metrics
 *   server's inherit the mask, and one thread of ours, the stopper, takes
 *   them all with sigwait from the very start: no handler, no polling, and
 *   no moment when a stop signal waits behind something slow (a plugin's
 *   factory, the registry lock, a NATS connection).
 * - The main thread starts, serves and stops; it learns of a signal from
 *   the stopper through a condition variable (struct stopper, its lock
 *   guarding sig, phase and starting). While starting, it looks between two
 *   steps and, if a signal came, stops what it started and exits 1. If one
 *   step is still busy GRACE_NS after the signal, the stopper gives up on
 *   it: it marks the run abandoned (the main thread, if it comes back,
 *   parks), stops the services started before that step, and exits 1. The
 *   step's own registry entry is then a dead owner's, which the next start
 *   takes over.
 * - A second signal while stopping exits at once.
 * - Everything that can be refused (transport, middleware, plugins,
 *   options) is checked before the first task starts, so a bad entry late
 *   in the file never leaves half a deployment running; a start that fails
 *   stops the tasks already started.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "builtins.h"
#include "commands.h"
#include "common.h"
#include "metrics.h"
#include "opts.h"
#include "plugins.h"
#include "sage/cluster.h"
#include "sage/config.h"
#include "sage/plugin.h"
#include "sage/queue.h"
#include "sage/service.h"
#include "sage/task.h"

/* One service of the configuration, on its way to running. */
struct hosted {
    const sage_service_conf *conf;
    size_t index;             /* in the configuration */
    sage_plugin *plugin;      /* NULL for a built-in */
    const sage_service *svc;  /* the plugin's table or a built-in */
    sage_task *task;
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
    struct stopper *stopper;
};

/* How long a step of the start may stay busy after a stop signal. */
#define GRACE_NS (1000 * 1000 * 1000LL)

enum phase {
    STARTING,  /* loading, starting services */
    SERVING,   /* every service runs; the main thread waits for sig */
    STOPPING,  /* the main thread took the signal and is stopping */
    ABANDONED, /* the stopper gave up on a busy start and is exiting */
};

/* The stopper thread and what it shares with the main thread. */
struct stopper {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* sig set */
    sigset_t set;
    int sig;             /* the first stop signal, 0 until one comes */
    enum phase phase;
    size_t starting;     /* services [0, starting) are the main thread's done steps */
    const char *current; /* the service being started, NULL between services */
    struct run *run;
};

/* queue_path writes the file of queue name for people, "?" if it has none */
static void queue_path(char *buf, size_t cap, const char *name)
{
    if (name[0] == '\0' || sage_queue_path(buf, cap, name) != SAGE_OK)
        snprintf(buf, cap, "?");
}

static void usage(FILE *out)
{
    char kv[SAGE_QUEUE_PATH_MAX], text[SAGE_QUEUE_PATH_MAX];

    /* the request queues of the example's services, for uid 1000 */
    queue_path(kv, sizeof kv, "1000.demo.kv.req");
    queue_path(text, sizeof text, "1000.demo.text.req");
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
          "    Each service gets max_workers, queue_timeout, request_queue_size and\n"
          "    error_threshold from service.local merged with its own entry, the\n"
          "    middleware named by `middleware` (logging, deadline) in that order,\n"
          "    the methods named by `idempotent` marked so (callers retry and hedge\n"
          "    them unasked), and its `config:` map as its factory's configuration. Transport local is in-process only and\n"
          "    is refused here. Transport nats serves the service as one replica on\n"
          "    the NATS servers of section nats (subject sage.NS.svc.NAME, queue group\n"
          "    q; with delivery: durable, from a JetStream work queue): run the same\n"
          "    file on several machines for several replicas.\n"
          "\n"
          "    Once every service runs, one line each says where it listens:\n",
          out);
    fprintf(out, "        kv: shm %s (pid 4242, 4 workers, plugin builtin)\n", kv);
    fputs("\n"
          "OPTIONS\n"
          "    CONFIG.yaml, -c FILE, --config FILE\n"
          "        The configuration file (one of the two forms). Without it, the first\n"
          "        that exists of ./services.yaml, $XDG_CONFIG_HOME/sagesvc/services.yaml\n"
          "        (default ~/.config/sagesvc/services.yaml), /etc/sagesvc/services.yaml.\n"
          CLI_NAMESPACE_OPT_HELP
          "        Host the services in namespace NS instead of the configuration's.\n"
          "    --metrics ADDR:PORT\n"
          "        Serve Prometheus metrics (text format 0.0.4) on GET /metrics, bound\n"
          "        to exactly that address: 127.0.0.1:9464, [::1]:9464. Port 0 picks a\n"
          "        free port; the URL is printed at start.\n"
          CLI_HELP_HELP
          "\n"
          "SIGNALS\n"
          "    SIGINT, SIGTERM, SIGHUP\n"
          "        Stop. Each service stops taking calls (new callers get\n"
          "        EUNAVAILABLE), answers every call already queued, waits for calls in\n"
          "        flight, and leaves the host registry; then run exits with status 0.\n"
          "        A second signal during that drain exits at once, with status 1.\n"
          "        A signal before every service runs (while plugins load, a service\n"
          "        starts or the registry lock is awaited) stops the services started\n"
          "        so far and exits with status 1; a start still busy a second later is\n"
          "        abandoned, and its registry entry left to the next start.\n"
          "\n"
          "EXIT STATUS\n"
          "    0   stopped by a signal, every service drained\n"
          "    1   a service is already served on this host, or failed to start (its\n"
          "        registry entry, queue or the registry lock belongs to another user,\n"
          "        or the lock stayed held for 5 s); the metrics address cannot be\n"
          "        bound; a signal came before every service ran; a second signal cut\n"
          "        the drain short; a service had failed (its request queue found\n"
          "        corrupt or closed by another process) or could not be drained within\n"
          "        its queue_timeout, each reported with its reason\n"
          "    2   usage: unknown option, two configuration files, a bad namespace or\n"
          "        --metrics address\n"
          "    9   configuration: none found, unreadable or invalid (FILE:LINE:COL), no\n"
          "        services in it, an unknown middleware, transport local, or\n"
          "        a service's factory refused its config: map\n"
          "    10  plugin: not found (and no built-in of that name), or refused\n"
          "\n"
          "EXAMPLE\n"
          "    $ sagesvc run examples/services.yaml --metrics 127.0.0.1:9464 &\n",
          out);
    fprintf(out,
            "    kv: shm %s (pid 4242, 4 workers, plugin builtin)\n"
            "    text: shm %s (pid 4242, 10 workers, plugin builtin)\n",
            kv, text);
    fputs("    metrics: http://127.0.0.1:9464/metrics\n"
          "    $ sagesvc call -n demo kv put '[\"greeting\", \"hello\"]'\n"
          "    $ curl -s http://127.0.0.1:9464/metrics | grep requests_total\n"
          "    $ kill %1\n",
          out);
}

/* ------------------------------------------------------------- options */

static const struct option own_options[] = {
    {"metrics", required_argument, NULL, 'm'},
    {NULL, 0, NULL, 0},
};

static const struct cli_optspec spec = {
    .shared = CLI_OPT_CONFIG | CLI_OPT_NAMESPACE,
    .own = own_options,
    .help = usage,
};

static int parse_options(struct run *run, int argc, char **argv)
{
    struct cli_common c;
    struct cli_opts o;
    int opt;

    cli_opts_init(&o, "run", &spec, &c);
    while ((opt = cli_opts_next(&o, argc, argv)) >= 0)
        if (opt == 'm')
            run->metrics_addr = optarg;
    if (opt == CLI_OPTS_STOP)
        return o.status;
    run->config_path = c.config;
    run->ns = c.ns;
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

    if (h->conf->python != NULL) {
        fprintf(stderr,
                "sagesvc: %s:%d: service '%s' is a Python service (%s): host it with "
                "`python3 -m sagesvc run %s`\n",
                file, h->conf->line, h->conf->name, h->conf->python, file);
        return CLI_CONFIG;
    }

    if (strcmp(t, "shm") == 0)
        return CLI_OK;
    if (strcmp(t, "nats") == 0) {
        if (sage_cluster_supported())
            return CLI_OK;
        fprintf(stderr,
                "sagesvc: %s:%d: service '%s': transport nats, but cluster support is not built "
                "in (this sagesvc was built with SAGE_WITH_NATS=OFF)\n",
                file, h->conf->line, h->conf->name);
        return CLI_ERR;
    }
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

static int make_task(struct run *run, struct hosted *h)
{
    sage_err r = sage_task_new_from_conf(&h->task, h->svc, run->cfg, h->conf, run->ns);

    if (r != SAGE_OK) {
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
        if ((rc = check_transport(run, h)) != CLI_OK ||
            (rc = load_plugin(run, h)) != CLI_OK || (rc = make_task(run, h)) != CLI_OK)
            return rc;
    }
    return CLI_OK;
}

/* ------------------------------------------------------------- running */

struct find_queue {
    const char *name;
    char queue[SAGE_ADDRESS_MAX + 1];
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
    char path[SAGE_QUEUE_PATH_MAX];

    if (strcmp(h->conf->transport, "nats") == 0) {
        printf("%s: nats sage.%s.svc.%s via %s (pid %d, %u workers, %s, plugin %s)\n",
               h->conf->name, run->ns, h->conf->name, sage_config_nats(run->cfg)->servers[0],
               (int)getpid(), (unsigned)h->conf->local.max_workers,
               h->conf->cluster.durable ? "durable" : "at most once",
               h->plugin ? sage_plugin_path(h->plugin) : "builtin");
        return;
    }
    sage_host_list(run->ns, 0, on_entry, &fq);
    queue_path(path, sizeof path, fq.queue);
    printf("%s: shm %s (pid %d, %u workers, plugin %s)\n", h->conf->name, path, (int)getpid(),
           (unsigned)h->conf->local.max_workers,
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
        if (sage_host_status(&st, run->ns, h->conf->name) == SAGE_OK && st.pid > 0)
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

/* stop_all drains and stops the started tasks, last started first; returns
 * how many did not stop cleanly (a stop that gave up, or a service that had
 * failed), each reported with its reason */
static int stop_all(struct run *run, int verbose)
{
    int bad = 0;

    for (size_t i = run->n; i-- > 0;) {
        struct hosted *h = &run->h[i];
        sage_status st;
        sage_err r;

        if (!h->started)
            continue;
        r = sage_task_stop(h->task);
        h->started = 0;
        if (r != SAGE_OK) {
            cli_error(r, "service '%s': stopping", h->conf->name);
            bad++;
        } else if (sage_task_status(&st, h->task) == SAGE_OK && st.state == SAGE_STATE_FAILED) {
            fprintf(stderr, "sagesvc: service '%s' had failed: %s\n", h->conf->name, st.reason);
            bad++;
        } else if (verbose && sage_task_status(&st, h->task) == SAGE_OK) {
            printf("%s: stopped after %llu request%s, %llu error%s\n", h->conf->name,
                   (unsigned long long)st.requests, st.requests == 1 ? "" : "s",
                   (unsigned long long)st.errors, st.errors == 1 ? "" : "s");
        }
    }
    return bad;
}

static void cleanup(struct run *run)
{
    cli_metrics_close(run->metrics);
    stop_all(run, 0);
    /* tasks before plugins: a task's code lives in its plugin */
    for (size_t i = 0; run->h && i < run->n; i++) {
        sage_task_free(run->h[i].task);
        sage_plugin_close(run->h[i].plugin);
    }
    free(run->h);
    sage_config_free(run->cfg);
}

static const char *signame(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "signal";
}

/* --------------------------------------------------------- the stopper */

/* abandon runs on the stopper when a start stays busy past the grace (the
 * run marked ABANDONED, n services done): stops those, and exits */
static void abandon(struct stopper *s, int sig, size_t n, const char *current)
{
    if (current && n == 0)
        fprintf(stderr,
                "sagesvc: service '%s' is still starting 1 s after %s: exiting without it\n",
                current, signame(sig));
    else if (current)
        fprintf(stderr,
                "sagesvc: service '%s' is still starting 1 s after %s: stopping the %zu started "
                "before it and exiting without it\n",
                current, signame(sig), n);
    else
        fprintf(stderr,
                "sagesvc: still starting 1 s after %s: stopping the %zu started and exiting\n",
                signame(sig), n);
    /* [0, n) are done steps: the main thread, parked or busy further on,
     * no longer touches them */
    for (size_t i = n; i-- > 0;)
        if (s->run->h[i].started)
            sage_task_stop(s->run->h[i].task);
    _exit(CLI_ERR);
}

/* grace waits up to GRACE_NS for a second signal, which exits at once */
static void grace(struct stopper *s)
{
    struct timespec end, now, left;
    int got = -1;

    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += GRACE_NS / 1000000000;
    end.tv_nsec += GRACE_NS % 1000000000;
    if (end.tv_nsec >= 1000000000) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000;
    }
    for (;;) {
        int64_t ns;

        clock_gettime(CLOCK_MONOTONIC, &now);
        ns = (int64_t)(end.tv_sec - now.tv_sec) * 1000000000 + (end.tv_nsec - now.tv_nsec);
        if (ns <= 0)
            return;
        left.tv_sec = (time_t)(ns / 1000000000);
        left.tv_nsec = (long)(ns % 1000000000);
        got = sigtimedwait(&s->set, NULL, &left);
        if (got > 0) {
            fprintf(stderr, "sagesvc: %s again: exiting at once\n", signame(got));
            _exit(CLI_ERR);
        }
        if (errno != EINTR)
            return; /* EAGAIN: the time is up */
    }
}

static void *stopper_main(void *arg)
{
    struct stopper *s = arg;
    int sig;

    for (;;) {
        const char *current;
        int first, starting;
        size_t n;

        if (sigwait(&s->set, &sig) != 0)
            continue;
        pthread_mutex_lock(&s->lock);
        first = s->sig == 0;
        if (first)
            s->sig = sig;
        starting = s->phase == STARTING;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        if (!first) {
            fprintf(stderr, "sagesvc: %s again: exiting without draining\n", signame(sig));
            _exit(CLI_ERR);
        }
        if (!starting)
            continue; /* the main thread is waiting for it, or stopping */
        fprintf(stderr, "sagesvc: %s while starting: stopping what was started\n", signame(sig));
        grace(s); /* for the main thread to come between two steps */
        pthread_mutex_lock(&s->lock);
        starting = s->phase == STARTING;
        if (starting)
            s->phase = ABANDONED;
        n = s->starting;
        current = s->current;
        pthread_mutex_unlock(&s->lock);
        if (starting)
            abandon(s, sig, n, current);
    }
    return NULL;
}

/* stopper_start starts the stopper thread; the stop signals are blocked */
static int stopper_start(struct stopper *s, struct run *run)
{
    pthread_t t;

    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->sig = 0;
    s->phase = STARTING;
    s->starting = 0;
    s->current = NULL;
    s->run = run;
    run->stopper = s;
    if (pthread_create(&t, NULL, stopper_main, s) != 0) {
        fprintf(stderr, "sagesvc: cannot start the signal thread\n");
        return CLI_ERR;
    }
    pthread_detach(t);
    return CLI_OK;
}

/* park waits for good, lock held, if the stopper gave up on the main
 * thread: it is stopping what was started and exiting the process */
static void park(struct stopper *s)
{
    while (s->phase == ABANDONED)
        pthread_cond_wait(&s->cond, &s->lock); /* never signalled again: _exit comes first */
}

/* step_done is the main thread's look between two steps of the start:
 * records that services [0, done) are done steps and that current (or
 * nothing) comes next, and returns the stop signal if one came (the run is
 * then stopping), else 0. */
static int step_done(struct stopper *s, size_t done, const char *current)
{
    int sig;

    pthread_mutex_lock(&s->lock);
    park(s);
    s->starting = done;
    s->current = current;
    sig = s->sig;
    if (sig)
        s->phase = STOPPING;
    pthread_mutex_unlock(&s->lock);
    return sig;
}

/* leave_start ends the start, whatever its outcome: from here on only the
 * main thread stops and frees the services */
static void leave_start(struct stopper *s)
{
    pthread_mutex_lock(&s->lock);
    park(s);
    if (s->phase == STARTING)
        s->phase = STOPPING;
    pthread_mutex_unlock(&s->lock);
}

/* serving ends the start with every service running: returns the stop
 * signal if one came meanwhile (the run is then stopping), else 0 */
static int serving(struct stopper *s)
{
    int sig;

    pthread_mutex_lock(&s->lock);
    park(s);
    sig = s->sig;
    s->phase = sig ? STOPPING : SERVING;
    pthread_mutex_unlock(&s->lock);
    return sig;
}

/* wait_stop waits, serving, for the stop signal */
static int wait_stop(struct stopper *s)
{
    int sig;

    pthread_mutex_lock(&s->lock);
    while (s->sig == 0)
        pthread_cond_wait(&s->cond, &s->lock);
    sig = s->sig;
    s->phase = STOPPING;
    pthread_mutex_unlock(&s->lock);
    return sig;
}

/* stopped_starting stops what started before sig came; exit status 1 */
static int stopped_starting(struct run *run, int sig)
{
    size_t started = 0;

    for (size_t i = 0; run->h && i < run->n; i++)
        started += run->h[i].started != 0;
    cli_metrics_close(run->metrics); /* if it came while they opened */
    run->metrics = NULL;
    stop_all(run, 0);
    fprintf(stderr, "sagesvc: %s before every service ran: stopped the %zu started\n",
            signame(sig), started);
    return CLI_ERR;
}

/* ------------------------------------------------------------- serving */

static int serve(struct run *run)
{
    struct stopper *s = run->stopper;
    sage_err r;
    int sig, rc;

    for (size_t i = 0; i < run->n; i++) {
        if ((sig = step_done(s, i, run->h[i].conf->name)) != 0)
            return stopped_starting(run, sig);
        if ((rc = start_one(run, &run->h[i])) != CLI_OK)
            return rc;
    }
    if ((sig = step_done(s, run->n, NULL)) != 0)
        return stopped_starting(run, sig);
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
    if ((sig = serving(s)) != 0)
        return stopped_starting(run, sig);
    printf("sagesvc: serving %zu service%s in namespace '%s' (pid %d); stop with Ctrl-C or "
           "SIGTERM\n",
           run->n, run->n == 1 ? "" : "s", run->ns, (int)getpid());
    fflush(stdout);
    sig = wait_stop(s);
    printf("sagesvc: %s: stopping %zu service%s (answering queued calls first)\n", signame(sig),
           run->n, run->n == 1 ? "" : "s");
    fflush(stdout);
    /* metrics first: a stopped task's figures would read as a counter reset */
    cli_metrics_close(run->metrics);
    run->metrics = NULL;
    if (stop_all(run, 1) > 0) {
        printf("sagesvc: stopped, not cleanly\n");
        fflush(stdout);
        return CLI_ERR;
    }
    printf("sagesvc: stopped\n");
    fflush(stdout);
    return CLI_OK;
}

int cmd_run(int argc, char **argv)
{
    struct run run;
    static struct stopper stopper; /* static: its thread outlives this frame until exit */
    sage_err r;
    int rc;

    memset(&run, 0, sizeof run);
    if ((rc = parse_options(&run, argc, argv)) != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    /* before any thread exists, so that every thread inherits the mask; a
     * closed stdout must not kill the host. The stopper takes them from
     * here on, whatever the main thread is busy with. */
    cli_block_stop_signals(&stopper.set);
    if ((rc = stopper_start(&stopper, &run)) != CLI_OK)
        return rc;

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
        rc = serve(&run);
    leave_start(&stopper); /* before anything is stopped or freed */
    cleanup(&run);
    return rc;
}
