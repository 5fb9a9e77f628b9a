/*
 * cmd_queue.c - sagesvc queue: the shared-memory queues of this machine.
 *
 * The names come from sage_queue_list: only the current user's queues are
 * listed (others' cannot be opened anyway).
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "common.h"
#include "json.h"
#include "opts.h"
#include "sage/queue.h"

/* The help, in two parts around the line that says where queue NAME lives
 * (print_help). */
static const char help_head[] =
    "NAME\n"
    "    sagesvc queue - list, inspect and remove shared-memory queues\n"
    "\n"
    "SYNOPSIS\n"
    "    sagesvc queue ls [--json] [PATTERN...]\n"
    "    sagesvc queue stat [--json] NAME\n"
    "    sagesvc queue rm NAME...\n"
    "    sagesvc queue rm --stale [PATTERN...]\n"
    "\n"
    "DESCRIPTION\n"
    "    Every service's request queue and every caller's response queue is a\n"
    "    sage_queue: a ring in POSIX shared memory. Queue NAME is the file\n";

static const char help[] =
    "    A service's request queue is UID.NAMESPACE.SERVICE.req; a caller's\n"
    "    response queue UID.NAMESPACE.reply.PID.N. Queues outlive processes\n"
    "    killed before they could remove them; these commands find and remove\n"
    "    them.\n"
    "\n"
    "    ls      lists the current user's queues (those whose name matches one of\n"
    "            the shell PATTERNs, when given): name, capacity in bytes,\n"
    "            messages queued (depth), messages in and out since creation, the\n"
    "            consumer's pid and its state: alive, stale (the consumer process\n"
    "            is dead), none (no consumer yet) or closed. A segment that is not\n"
    "            a readable queue shows its error instead.\n"
    "    stat    prints every figure of queue NAME.\n"
    "    rm      removes the named queues. Processes that have one open keep\n"
    "            using it until they close it; nobody can open it any more.\n"
    "    rm --stale\n"
    "            removes every queue (matching a PATTERN, when given) whose\n"
    "            consumer process is dead, printing each name. Queues that never\n"
    "            had a consumer are kept.\n"
    "\n"
    "OPTIONS\n"
    "    --json\n"
    "        (ls, stat) Print JSON: an array of objects for ls, one object for\n"
    "        stat, with the figures' names as keys.\n"
    "    --stale\n"
    "        (rm) Remove the queues of dead consumers.\n"
    CLI_HELP_HELP
    "\n" CLI_EXIT_STATUS_HELP
    "    A queue that does not exist (stat, rm) exits with 1.\n"
    "\n"
    "EXAMPLES\n"
    "    sagesvc queue ls\n"
    "    sagesvc queue ls '*.demo.*'\n"
    "    sagesvc queue stat 1000.demo.kv.req --json\n"
    "    sagesvc queue rm --stale\n";

static const struct option own_options[] = {
    {"stale", no_argument, NULL, 's'},
    {NULL, 0, NULL, 0},
};

static void print_help(FILE *out)
{
    char path[SAGE_QUEUE_PATH_MAX];

    if (sage_queue_path(path, sizeof path, "NAME") != SAGE_OK)
        snprintf(path, sizeof path, "of its shared-memory segment");
    fputs(help_head, out);
    fprintf(out, "        %s\n", path);
    fputs(help, out);
}

static const struct cli_optspec spec = {
    .shared = CLI_OPT_JSON,
    .own = own_options,
    .help = print_help,
};

/* What one queue looked like when read. */
struct qinfo {
    char name[SAGE_QUEUE_NAME_MAX + 1];
    sage_err err; /* SAGE_OK: st is valid */
    char detail[160];
    sage_queue_stats st;
};

static const char *consumer_state(const sage_queue_stats *st)
{
    if (st->closed)
        return "closed";
    if (st->consumer_pid == 0)
        return "none";
    return st->consumer_alive ? "alive" : "stale";
}

/* Reads queue name's figures without creating it. Opening as a producer
 * takes no slot until the first send, so this leaves no trace. */
static void read_queue(const char *name, struct qinfo *qi)
{
    sage_queue_opts o;
    sage_queue *q;

    memset(qi, 0, sizeof *qi);
    snprintf(qi->name, sizeof qi->name, "%s", name);
    sage_queue_opts_init(&o);
    o.flags = 0;
    qi->err = sage_queue_open(&q, name, &o);
    if (qi->err == SAGE_OK) {
        qi->err = sage_queue_stats_read(&qi->st, q);
        sage_queue_close(q);
    }
    if (qi->err != SAGE_OK)
        snprintf(qi->detail, sizeof qi->detail, "%s", sage_errdetail());
}

static int matches(const char *name, char **patterns, int npatterns)
{
    if (npatterns == 0)
        return 1;
    for (int i = 0; i < npatterns; i++)
        if (fnmatch(patterns[i], name, 0) == 0)
            return 1;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct qinfo *)a)->name, ((const struct qinfo *)b)->name);
}

/* What read_all collects, through sage_queue_list. */
struct listing {
    char **patterns;
    int npatterns;
    struct qinfo *v;
    size_t n, cap;
    int nomem;
};

static bool list_one(void *arg, const char *name)
{
    struct listing *l = arg;

    if (!matches(name, l->patterns, l->npatterns))
        return true;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 32;
        struct qinfo *nv = realloc(l->v, ncap * sizeof *nv);

        if (nv == NULL) {
            l->nomem = 1;
            return false;
        }
        l->v = nv;
        l->cap = ncap;
    }
    read_queue(name, &l->v[l->n++]);
    return true;
}

/* Reads every queue of this user matching patterns into *out, sorted. */
static sage_err read_all(char **patterns, int npatterns, struct qinfo **out, size_t *np)
{
    struct listing l = {.patterns = patterns, .npatterns = npatterns};
    sage_err r = sage_queue_list(NULL, list_one, &l);

    if (r == SAGE_OK && l.nomem)
        r = cli_fail(SAGE_ENOMEM, "out of memory listing queues");
    if (r != SAGE_OK) {
        free(l.v);
        return r;
    }
    if (l.n > 0)
        qsort(l.v, l.n, sizeof *l.v, by_name);
    *out = l.v;
    *np = l.n;
    return SAGE_OK;
}

/* scan is read_all for a subcommand: CLI_OK, or the exit status after
 * reporting the failure. */
static int scan(char **patterns, int npatterns, struct qinfo **out, size_t *np)
{
    sage_err r = read_all(patterns, npatterns, out, np);

    if (r != SAGE_OK) {
        cli_error(r, "listing queues");
        return cli_exit_for(r);
    }
    return CLI_OK;
}

/* Builds queue i of qis (arg) as a map in a: its figures, or its error. */
static sage_err stats_value(sage_arena *a, const void *qis, size_t i, sage_value *out)
{
    const struct qinfo *qi = (const struct qinfo *)qis + i;
    const sage_queue_stats *s = &qi->st;

    if (qi->err != SAGE_OK)
        return sage_pack(out, a, "{s:s s:s s:s}", "name", qi->name, "error", sage_errname(qi->err), "detail", qi->detail);
    return sage_pack(out, a, "{s:s s:u s:u s:u s:u s:u s:u s:u s:u s:u s:u s:u s:u s:u s:i s:i s:b s:b "
                     "s:I s:s}", "name", qi->name, "capacity", s->capacity, "max_msg", s->max_msg, "max_msgs", s->max_msgs, "msgs_in", s->msgs_in, "bytes_in", s->bytes_in, "msgs_out", s->msgs_out, "bytes_out", s->bytes_out, "depth_msgs", s->depth_msgs, "depth_bytes", s->depth_bytes, "full_events", s->full_events, "wakeups", s->wakeups, "recovered", s->recovered, "aborted", s->aborted, "creator_pid", (int)s->creator_pid, "consumer_pid", (int)s->consumer_pid, "consumer_alive", s->consumer_alive != 0, "closed", s->closed != 0, "created_ns", (int64_t)s->created_ns, "consumer", consumer_state(s));
}

/* Prints qis as JSON: an array, or the first alone when one is set. */
static int print_json(const struct qinfo *qis, size_t n, int one)
{
    return cli_print_items(n, one, stats_value, qis, "printing the queues");
}

static int queue_ls(char **patterns, int npatterns, int json)
{
    struct qinfo *qis = NULL;
    size_t n = 0;
    int status = scan(patterns, npatterns, &qis, &n);

    if (status != CLI_OK)
        return status;
    if (json) {
        status = print_json(qis, n, 0);
    } else {
        printf("%-48s %10s %8s %12s %12s %8s %s\n", "NAME", "CAPACITY", "DEPTH", "MSGS_IN",
               "MSGS_OUT", "CONSUMER", "STATE");
        for (size_t i = 0; i < n; i++) {
            const sage_queue_stats *s = &qis[i].st;

            if (qis[i].err != SAGE_OK)
                printf("%-48s %s (%s)\n", qis[i].name, sage_errname(qis[i].err), qis[i].detail);
            else
                printf("%-48s %10llu %8llu %12llu %12llu %8d %s\n", qis[i].name,
                       (unsigned long long)s->capacity, (unsigned long long)s->depth_msgs,
                       (unsigned long long)s->msgs_in, (unsigned long long)s->msgs_out,
                       (int)s->consumer_pid, consumer_state(s));
        }
    }
    free(qis);
    return status;
}

static int queue_stat(const char *name, int json)
{
    struct qinfo qi;
    const sage_queue_stats *s = &qi.st;
    char created[64];
    time_t t;
    struct tm tm;

    read_queue(name, &qi);
    if (qi.err != SAGE_OK) {
        cli_error(qi.err, "queue '%s'", name);
        return cli_exit_for(qi.err);
    }
    if (json)
        return print_json(&qi, 1, 1);
    t = (time_t)(s->created_ns / 1000000000LL);
    localtime_r(&t, &tm);
    strftime(created, sizeof created, "%Y-%m-%d %H:%M:%S %z", &tm);
    printf("name:           %s\n", qi.name);
    printf("capacity:       %llu bytes\n", (unsigned long long)s->capacity);
    printf("max message:    %llu bytes\n", (unsigned long long)s->max_msg);
    printf("max messages:   %llu%s\n", (unsigned long long)s->max_msgs,
           s->max_msgs ? "" : " (bounded by bytes only)");
    printf("depth:          %llu messages, %llu bytes\n", (unsigned long long)s->depth_msgs,
           (unsigned long long)s->depth_bytes);
    printf("in:             %llu messages, %llu bytes\n", (unsigned long long)s->msgs_in,
           (unsigned long long)s->bytes_in);
    printf("out:            %llu messages, %llu bytes\n", (unsigned long long)s->msgs_out,
           (unsigned long long)s->bytes_out);
    printf("full events:    %llu\n", (unsigned long long)s->full_events);
    printf("wakeups:        %llu\n", (unsigned long long)s->wakeups);
    printf("recovered:      %llu\n", (unsigned long long)s->recovered);
    printf("aborted:        %llu\n", (unsigned long long)s->aborted);
    printf("creator pid:    %d\n", (int)s->creator_pid);
    printf("consumer pid:   %d (%s)\n", (int)s->consumer_pid, consumer_state(s));
    printf("closed:         %s\n", s->closed ? "yes" : "no");
    printf("created:        %s\n", created);
    return CLI_OK;
}

static int queue_rm(char **names, int n)
{
    int status = CLI_OK;

    for (int i = 0; i < n; i++) {
        sage_err r = sage_queue_unlink(names[i]);

        if (r != SAGE_OK) {
            cli_error(r, "removing queue '%s'", names[i]);
            if (status == CLI_OK)
                status = cli_exit_for(r);
        }
    }
    return status;
}

static int queue_rm_stale(char **patterns, int npatterns)
{
    struct qinfo *qis = NULL;
    size_t n = 0;
    int status = scan(patterns, npatterns, &qis, &n);
    sage_err r;

    if (status != CLI_OK)
        return status;
    for (size_t i = 0; i < n; i++) {
        const sage_queue_stats *s = &qis[i].st;

        if (qis[i].err != SAGE_OK || s->consumer_pid == 0 || s->consumer_alive)
            continue;
        r = sage_queue_unlink(qis[i].name);
        if (r == SAGE_OK) {
            printf("removed %s (consumer %d is dead)\n", qis[i].name, (int)s->consumer_pid);
        } else if (r != SAGE_ENOENT) { /* ENOENT: someone removed it first */
            cli_error(r, "removing queue '%s'", qis[i].name);
            if (status == CLI_OK)
                status = cli_exit_for(r);
        }
    }
    free(qis);
    return status;
}

int cmd_queue(int argc, char **argv)
{
    struct cli_common c;
    struct cli_opts o;
    int json, stale = 0, opt, nargs;
    const char *sub;
    char **args;

    cli_opts_init(&o, argv[0], &spec, &c);
    while ((opt = cli_opts_next(&o, argc, argv)) >= 0)
        if (opt == 's')
            stale = 1;
    if (opt == CLI_OPTS_STOP)
        return cli_opts_exit(&o);
    json = c.json;
    if (optind == argc)
        return cli_usage(argv[0], "expected a subcommand: ls, stat or rm");
    sub = argv[optind];
    args = argv + optind + 1;
    nargs = argc - optind - 1;
    if (stale && strcmp(sub, "rm") != 0)
        return cli_usage(argv[0], "--stale belongs to 'rm'");
    if (strcmp(sub, "ls") == 0)
        return queue_ls(args, nargs, json);
    if (json && strcmp(sub, "stat") != 0)
        return cli_usage(argv[0], "--json belongs to 'ls' and 'stat'");
    if (strcmp(sub, "stat") == 0) {
        if (nargs != 1)
            return cli_usage(argv[0], "stat takes one queue NAME");
        return queue_stat(args[0], json);
    }
    if (strcmp(sub, "rm") == 0) {
        if (stale)
            return queue_rm_stale(args, nargs);
        if (nargs == 0)
            return cli_usage(argv[0], "rm takes queue NAMEs, or --stale");
        return queue_rm(args, nargs);
    }
    return cli_usage(argv[0], "unknown subcommand '%s' (ls, stat, rm)", sub);
}
