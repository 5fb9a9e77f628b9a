/* shm_list.c - reading the host registry: list services, read a status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "platform/shmlist.h"
#include "transport/shm_reg.h"
#include "transport/names.h"
#include "sage/queue.h"

struct host_list {
    const char *ns;
    bool clean;
    sage_host_list_fn fn;
    void *arg;
    size_t plen; /* of the prefix "sage.r.UID." */
};

/* host_one reports registry entry seg ("sage.r.UID.<ns>.<name>"), one of
 * this user's files (sage__shm_list checked it) */
static int host_one(void *arg, const char *seg)
{
    struct host_list *l = arg;
    char ens[SAGE_NAME_MAX + 1], ename[SAGE_NAME_MAX + 1], reason[SAGE_REASON_MAX + 1];
    const char *rest = seg + l->plen, *dot;
    struct sage__reg *reg = NULL;
    sage_host_entry e;

    if (strcmp(rest, "lock") == 0)
        return 0;
    dot = strchr(rest, '.'); /* rest: "<ns>.<name>" */
    if (dot == NULL || (size_t)(dot - rest) > SAGE_NAME_MAX || strlen(dot + 1) > SAGE_NAME_MAX)
        return 0;
    snprintf(ens, sizeof ens, "%.*s", (int)(dot - rest), rest);
    snprintf(ename, sizeof ename, "%s", dot + 1);
    if (l->ns && strcmp(l->ns, ens) != 0)
        return 0;
    /* an entry another user planted under our name is refused by the
     * owner checks and skipped: it is no service of ours */
    if (sage__reg_open(&reg, ens, ename) != SAGE_OK)
        return 0;
    memset(&e, 0, sizeof e);
    snprintf(e.name, sizeof e.name, "%s", ename);
    snprintf(e.ns, sizeof e.ns, "%s", ens);
    sage__req_queue_name(e.queue, sizeof e.queue, ens, ename);
    e.pid = reg->fig.pid;
    e.owner_alive = sage__fig_owner_alive(&reg->fig);
    e.state = sage__fig_health(&reg->fig, sage__wall_ns(), reason, sizeof reason);
    e.started_ns = reg->fig.started_ns;
    e.heartbeat_ns = atomic_load_explicit(&reg->fig.heartbeat_ns, memory_order_relaxed);
    sage__reg_close(reg);
    l->fn(l->arg, &e);
    if (l->clean && !e.owner_alive)
        sage__reg_remove_stale(ens, ename); /* looks again, under the lock */
    return 0;
}

sage_err sage_host_list(const char *ns, bool clean, sage_host_list_fn fn, void *arg)
{
    char prefix[32];
    struct host_list l = {ns, clean, fn, arg, 0};
    sage_err r;

    if (fn == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_host_list: fn is NULL");
    snprintf(prefix, sizeof prefix, "sage.r.%u.", (unsigned)geteuid());
    l.plen = strlen(prefix);
    if ((r = sage__shm_list(prefix, host_one, &l)) != SAGE_OK)
        return SAGE_SETERR(r, "listing the host registry: %s", sage_errdetail());
    return SAGE_OK;
}

sage_err sage_host_status(sage_status *st, const char *ns, const char *name)
{
    char queue[SAGE__NAME_BUF];
    struct sage__reg *reg = NULL;
    sage_queue *q = NULL;
    sage_queue_stats qs;
    uint64_t depth = 0, full = 0;
    sage_err r;

    if (name == NULL || st == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_host_status: invalid argument");
    if (ns == NULL)
        ns = "default";
    if ((r = sage__check_name(name, "service", 0)) != SAGE_OK ||
        (r = sage__check_name(ns, "namespace", 0)) != SAGE_OK)
        return r;
    if ((r = sage__reg_open(&reg, ns, name)) != SAGE_OK)
        return r;
    sage__req_queue_name(queue, sizeof queue, ns, name); /* derived, not read from the entry */
    if (sage_queue_open(&q, queue, NULL) == SAGE_OK) {
        if (sage_queue_stats_read(&qs, q) == SAGE_OK) {
            depth = qs.depth_msgs;
            full = qs.full_events;
        }
        sage_queue_close(q);
    }
    sage__fig_status(&reg->fig, depth, full, st);
    sage__reg_close(reg);
    return SAGE_OK;
}
