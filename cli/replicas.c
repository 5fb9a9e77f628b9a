/* replicas.c - collecting the cluster's replicas ($SRV.STATS, and what
 * their hosts' records say), and the --wait of the views asking for them. */
#include "replicas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "natsopt.h"

static struct cli_replica *add(struct cli_replicas *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct cli_replica *v = realloc(l->v, cap * sizeof *v);

        if (v == NULL) {
            l->failed = 1;
            return NULL;
        }
        l->v = v;
        l->cap = cap;
    }
    memset(&l->v[l->n], 0, sizeof l->v[l->n]);
    return &l->v[l->n++];
}

static void collect(void *arg, const sage_cluster_instance *inst)
{
    struct cli_replica *r = add(arg);

    if (r == NULL)
        return;
    r->inst = *inst;
    r->answered = true;
    snprintf(r->state, sizeof r->state, "running");
}

/* What the hosts' records add: which host runs each replica, its state,
 * and the replicas that did not answer. */
struct merge {
    struct cli_replicas *l;
    const char *ns, *name;
    long long now_ms;
};

static void merge_host(void *arg, const sage_cluster_host_info *h)
{
    struct merge *m = arg;

    for (size_t i = 0; i < h->nreplicas; i++) {
        const sage_cluster_replica_info *ri = &h->replicas[i];
        struct cli_replica *r = NULL;

        if ((m->ns && strcmp(ri->ns, m->ns) != 0) || (m->name && strcmp(ri->service, m->name) != 0))
            continue;
        for (size_t k = 0; k < m->l->n && r == NULL; k++) {
            struct cli_replica *x = &m->l->v[k];

            if (ri->id[0] ? strcmp(x->inst.id, ri->id) == 0
                          : x->inst.pid == ri->pid && strcmp(x->inst.host, h->hostname) == 0 &&
                                strcmp(x->inst.name, ri->service) == 0)
                r = x;
        }
        if (r == NULL) { /* it did not answer: what its host says */
            if ((r = add(m->l)) == NULL)
                return;
            snprintf(r->inst.name, sizeof r->inst.name, "%s", ri->service);
            snprintf(r->inst.ns, sizeof r->inst.ns, "%s", ri->ns);
            snprintf(r->inst.id, sizeof r->inst.id, "%s", ri->id[0] ? ri->id : "-");
            snprintf(r->inst.host, sizeof r->inst.host, "%s", h->hostname);
            r->inst.pid = ri->pid;
            r->heartbeat_age_s = ri->seen_ms > 0 ? (m->now_ms - ri->seen_ms) / 1e3 : -1;
        }
        snprintf(r->host_id, sizeof r->host_id, "%s", h->id);
        snprintf(r->state, sizeof r->state, "%s", h->alive ? ri->state : "unknown");
    }
}

static int order(const void *a, const void *b)
{
    const struct cli_replica *x = a, *y = b;
    int c = strcmp(x->inst.ns, y->inst.ns);

    if (c == 0)
        c = strcmp(x->inst.name, y->inst.name);
    if (c == 0)
        c = strcmp(x->host_id, y->host_id);
    if (c == 0)
        c = strcmp(x->inst.host, y->inst.host);
    return c != 0 ? c : strcmp(x->inst.id, y->inst.id);
}

int cli_replicas_collect(const sage_config *cfg, const char *urls, const char *ns, const char *name,
                         int64_t wait_ms, struct cli_replicas *l)
{
    struct cli_nats nats;
    struct merge m = {l, ns, name, cli_now_ns() / 1000000};
    char servers[512];
    sage_err r;

    memset(l, 0, sizeof *l);
    if ((r = cli_nats_init(&nats, urls, cfg)) != SAGE_OK) {
        cli_error(r, "--nats");
        return CLI_USAGE;
    }
    cli_nats_servers(&nats, servers, sizeof servers);
    r = sage_cluster_discover(&nats.conf, ns, "STATS", name, wait_ms, collect, l);
    /* the hosts' view: best effort (no host may ever have run) */
    if (r == SAGE_OK)
        sage_cluster_hosts(&nats.conf, merge_host, &m);
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

int cli_replicas_wait(const char *cmd, const char *arg, long *ms)
{
    if (cli_parse_count("--wait", arg, 1, 60000, ms) != SAGE_OK)
        return cli_usage(cmd, "--wait: expected milliseconds in 1..60000, got '%s'", arg);
    return CLI_OK;
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
