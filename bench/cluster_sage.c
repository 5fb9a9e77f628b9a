/*
 * cluster_sage.c - the sage impl of "sage-bench cluster": call.h's echo
 * service hosted in one process as a SAGE_TRANSPORT_NATS task, called from
 * another through a sage_manager whose cluster connection points at the
 * same nats-server. Default task and manager options otherwise; no
 * reconnection (a dead server fails the run, at worst after one call's
 * timeout, CALL_OP_TIMEOUT_MS).
 *
 * The caller's loops are "sage-bench call"'s (call_sage_measure): sync is
 * sage_manager_call_sync one call at a time, async is
 * sage_manager_call_async with a window of calls outstanding, each result
 * checked in its future's callback.
 *
 * Names: the task makes nothing in /dev/shm over NATS, but the manager's
 * response queue is a named segment (UID.NS.reply.PID.0): call_names.c
 * registers it for removal before the caller starts, and its cleanup sweeps
 * /dev/shm for anything else of the namespace.
 */
#include <stdio.h>
#include <string.h>

#include "bench_util.h"
#include "cluster.h"
#include "sage/cluster.h"
#include "sage/task.h"

struct conf {
    const char *servers[1];
    sage_nats_conf nats;
    sage_cluster_opts cluster;
};

static int fail(const char *who, const char *what, sage_err e)
{
    fprintf(stderr, "sage-bench: cluster: sage %s: %s: %s (%s)\n", who, what, sage_strerror(e),
            sage_errdetail());
    return -1;
}

static void conf_init(struct conf *c, const char *url)
{
    memset(c, 0, sizeof *c);
    c->servers[0] = url;
    sage_nats_conf_init(&c->nats);
    c->nats.servers = c->servers;
    c->nats.nservers = 1;
    c->nats.reconnect_max = 0;
    c->cluster.nats = &c->nats;
}

/* serve hosts the echo task, with cluster dedupe or without */
static int serve(struct call_run *r, bool dedupe)
{
    struct conf c;
    sage_task_opts o;

    if (call_gate_wait(&r->ctl->go, "go from the parent") != 0)
        return -1;
    conf_init(&c, r->url);
    c.cluster.dedupe = dedupe;
    sage_task_opts_init(&o);
    o.transport = SAGE_TRANSPORT_NATS;
    o.ns = r->ns;
    o.cluster = &c.cluster;
    return call_sage_serve(&o, &r->ctl->ready, &r->ctl->done, CLUSTER_RUN_TIMEOUT_S,
                           "cluster: sage");
}

static int host(struct call_run *r)
{
    return serve(r, false);
}

static int host_dedupe(struct call_run *r)
{
    return serve(r, true);
}

static int caller(struct call_run *r)
{
    struct conf c;
    sage_manager_opts o;
    sage_manager *m;
    sage_err e;
    int rc;

    if (call_gate_wait(&r->ctl->go, "go from the parent") != 0 ||
        call_gate_wait(&r->ctl->ready, "ready from the sage host") != 0) {
        bench_gate_open(&r->ctl->done);
        return -1;
    }
    conf_init(&c, r->url);
    sage_manager_opts_init(&o);
    o.ns = r->ns;
    o.timeout_ms = CALL_OP_TIMEOUT_MS;
    o.cluster = &c.cluster;
    if ((e = sage_manager_new(&m, &o)) != SAGE_OK) {
        bench_gate_open(&r->ctl->done);
        return fail("caller", "manager", e);
    }
    rc = call_sage_measure(r->kase, r->par, m, &r->ctl->fig);
    sage_manager_free(m);
    bench_gate_open(&r->ctl->done);
    return rc;
}

const struct call_impl cluster_sage_impl = {
    .name = "sage",
    .two_procs = true,
    .spawned = call_names_caller,
    .host = host,
    .caller = caller,
    .cleanup = call_names_cleanup,
};

/* the same, the service with cluster dedupe: what a shared store costs */
const struct call_impl cluster_dedupe_impl = {
    .name = "sage_dedupe",
    .two_procs = true,
    .spawned = call_names_caller,
    .host = host_dedupe,
    .caller = caller,
    .cleanup = call_names_cleanup,
};
