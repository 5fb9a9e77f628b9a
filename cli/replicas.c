/* replicas.c - collecting the cluster's replicas ($SRV.STATS), and the
 * options that ask for them. */
#include "replicas.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "natsopt.h"

static void collect(void *arg, const sage_cluster_instance *inst)
{
    struct cli_replicas *l = arg;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        sage_cluster_instance *v = realloc(l->v, cap * sizeof *v);

        if (v == NULL) {
            l->failed = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *inst;
}

static int order(const void *a, const void *b)
{
    const sage_cluster_instance *x = a, *y = b;
    int c = strcmp(x->ns, y->ns);

    if (c == 0)
        c = strcmp(x->name, y->name);
    if (c == 0)
        c = strcmp(x->host, y->host);
    return c != 0 ? c : strcmp(x->id, y->id);
}

int cli_replicas_collect(const sage_config *cfg, const char *urls, const char *ns, const char *name,
                         int wait_ms, struct cli_replicas *l)
{
    struct cli_nats nats;
    char servers[512];
    sage_err r;

    memset(l, 0, sizeof *l);
    if ((r = cli_nats_init(&nats, urls, cfg)) != SAGE_OK) {
        cli_error(r, "--nats");
        return CLI_USAGE;
    }
    cli_nats_servers(&nats, servers, sizeof servers);
    r = sage_cluster_discover(&nats.conf, ns, "STATS", name, wait_ms, collect, l);
    cli_nats_fini(&nats);
    if (r == SAGE_OK && l->failed)
        r = SAGE_ENOMEM;
    if (r != SAGE_OK) {
        cli_error(r, "asking the cluster on %s", servers);
        return cli_exit_for(r);
    }
    if (l->n > 0)
        qsort(l->v, l->n, sizeof *l->v, order);
    return CLI_OK;
}

void cli_replicas_free(struct cli_replicas *l)
{
    free(l->v);
    memset(l, 0, sizeof *l);
}

int cli_cluster_view_option(struct cli_cluster_view *v, int opt, const char *arg, const char *cmd)
{
    if (opt == 'W') {
        if (cli_parse_count("--wait", arg, 1, 60000, &v->wait_ms) != SAGE_OK)
            return cli_usage(cmd, "--wait: expected milliseconds in 1..60000, got '%s'", arg);
        return CLI_OK;
    }
    if (opt == 'N')
        v->urls = arg;
    v->on = 1; /* --cluster, or --nats, which implies it */
    return cli_need_cluster(cmd, opt == 'N' ? "--nats" : "--cluster");
}

long long cli_replica_started_ns(const sage_cluster_instance *x)
{
    struct tm tm;
    const char *rest;
    double frac = 0;

    memset(&tm, 0, sizeof tm);
    rest = strptime(x->started, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL)
        return 0;
    if (*rest == '.')
        frac = strtod(rest, NULL);
    return (long long)timegm(&tm) * 1000000000LL + (long long)(frac * 1e9);
}
