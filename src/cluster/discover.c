/*
 * discover.c - finding services in the cluster through the NATS
 * micro-service protocol (ADR-32): $SRV.PING, $SRV.INFO, $SRV.STATS.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err_internal.h"
#include "cluster/ops.h"

struct gather {
    const char *ns;
    sage_cluster_instance_fn fn;
    void *arg;
};

/* copy_str copies member key of o ("" when absent) into dst */
static void copy_str(char *dst, size_t cap, const json_t *o, const char *key)
{
    snprintf(dst, cap, "%s", sage__jstr(o, key));
}

/* on_answer runs on the inbox subscription's thread, one answer at a time */
static void on_answer(void *arg, struct sage__nio_msg *m)
{
    struct gather *g = arg;
    sage_cluster_instance inst;
    size_t len;
    const char *data = sage__nio_msg_data(m, &len);
    json_t *o = json_loadb(data, len, 0, NULL), *md, *e;

    if (o == NULL || !json_is_object(o))
        goto out;
    memset(&inst, 0, sizeof inst);
    copy_str(inst.name, sizeof inst.name, o, "name");
    copy_str(inst.id, sizeof inst.id, o, "id");
    copy_str(inst.version, sizeof inst.version, o, "version");
    copy_str(inst.started, sizeof inst.started, o, "started");
    md = json_object_get(o, "metadata");
    copy_str(inst.ns, sizeof inst.ns, md, "sagesvc.namespace");
    copy_str(inst.host, sizeof inst.host, md, "sagesvc.host");
    inst.pid = atoi(sage__jstr(md, "sagesvc.pid"));
    inst.durable = strcmp(sage__jstr(md, "sagesvc.delivery"), "durable") == 0;
    if (g->ns && strcmp(g->ns, inst.ns) != 0)
        goto out;
    e = json_array_get(json_object_get(o, "endpoints"), 0); /* NULL if none */
    copy_str(inst.subject, sizeof inst.subject, e, "subject");
    inst.requests = (uint64_t)sage__jint(e, "num_requests");
    inst.errors = (uint64_t)sage__jint(e, "num_errors");
    inst.average_us = (double)sage__jint(e, "average_processing_time") / 1000.0;
    copy_str(inst.last_error, sizeof inst.last_error, e, "last_error");
    g->fn(g->arg, &inst);
out:
    json_decref(o);
}

sage_err sage_cluster_discover(const sage_nats_conf *nats, const char *ns, const char *verb,
                               const char *name, int64_t wait_ms, sage_cluster_instance_fn fn,
                               void *arg)
{
    struct sage__nio_opts no = {nats, "sagesvc discover", NULL, NULL};
    struct sage__nio *n = NULL;
    struct sage__nio_sub *sub = NULL;
    struct gather g = {ns, fn, arg};
    char inbox[128], subject[200];
    struct timespec ts;
    sage_err r;

    if (verb == NULL || fn == NULL ||
        (strcmp(verb, "PING") && strcmp(verb, "INFO") && strcmp(verb, "STATS")))
        return SAGE_SETERR(SAGE_EINVAL, "discover: verb must be PING, INFO or STATS");
    if ((r = sage__nio_connect(&n, &no)) != SAGE_OK)
        return r;
    if ((r = sage__nio_inbox(n, inbox, sizeof inbox)) != SAGE_OK ||
        (r = sage__nio_subscribe(n, inbox, NULL, on_answer, &g, &sub)) != SAGE_OK)
        goto out;
    if (name)
        snprintf(subject, sizeof subject, "$SRV.%s.%s", verb, name);
    else
        snprintf(subject, sizeof subject, "$SRV.%s", verb);
    if ((r = sage__nio_publish(n, subject, inbox, "", 0, NULL, 0)) != SAGE_OK)
        goto out;
    /* answers arrive on the subscription's thread while we wait: how many
     * replicas will answer is unknown, so the window is the only end */
    if (wait_ms > 0) {
        ts.tv_sec = (time_t)(wait_ms / 1000);
        ts.tv_nsec = (long)(wait_ms % 1000) * 1000000L;
        nanosleep(&ts, NULL);
    }
out:
    sage__nio_unsubscribe(sub);
    sage__nio_close(n);
    return r;
}
