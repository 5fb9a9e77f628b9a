/*
 * supervise.c - the life of a replica slot: start, serve, die, restart
 * after a backoff, give up, stop.
 *
 * Design notes
 * - A slot is one replica position of a deployment on this host. Its
 *   process may die and be replaced; its restart count is the slot's, and
 *   never goes down (as Ray's max_restarts: a budget for the actor's life).
 * - Backoff: the n-th restart waits 100 ms * 2^(n-1), at most 5 s, so a
 *   replica that dies at once cannot spin the host.
 * - After max_restarts restarts, the next death fails the slot for good
 *   (sage__host_gave_up decides whether the service as a whole failed).
 * - Stopping: SIGTERM (the replica drains and exits), SIGKILL after 5 s.
 *   A slot waiting to restart or failed has no process and is dropped at
 *   once.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/host.h"
#include "platform/clock.h"

const char *sage__slot_state_name(enum sage__slot_state st)
{
    switch (st) {
    case SAGE__SLOT_STARTING:
        return "starting";
    case SAGE__SLOT_RUNNING:
        return "running";
    case SAGE__SLOT_UNHEALTHY:
        return "unhealthy";
    case SAGE__SLOT_BACKOFF:
        return "backoff";
    case SAGE__SLOT_STOPPING:
        return "stopping";
    case SAGE__SLOT_FAILED:
        return "failed";
    case SAGE__SLOT_DONE:
        return "done";
    }
    return "?";
}

static bool live(const struct sage__slot *s)
{
    return s->state == SAGE__SLOT_STARTING || s->state == SAGE__SLOT_RUNNING ||
           s->state == SAGE__SLOT_UNHEALTHY || s->state == SAGE__SLOT_BACKOFF;
}

static int64_t backoff_ms(uint32_t restarts)
{
    int64_t ms = SAGE__BACKOFF_FIRST_MS;

    for (uint32_t i = 0; i < restarts && ms < SAGE__BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < SAGE__BACKOFF_MAX_MS ? ms : SAGE__BACKOFF_MAX_MS;
}

void sage__slot_stop(struct sage__host *h, struct sage__slot *s)
{
    if (s->state == SAGE__SLOT_STOPPING || s->state == SAGE__SLOT_DONE)
        return;
    if (s->child.pid > 0) {
        sage__child_signal(&s->child, SIGTERM);
        s->state = SAGE__SLOT_STOPPING;
        s->due_ns = sage__now_ns() + (int64_t)SAGE__STOP_GRACE_MS * 1000000;
    } else {
        s->state = SAGE__SLOT_DONE;
    }
    sage__host_dirty(h);
}

/* grow adds a slot to g and starts it */
static void grow(struct sage__host *h, struct sage__group *g)
{
    struct sage__slot *v = realloc(g->slots, (g->nslots + 1) * sizeof *v), *s;

    if (v == NULL) {
        sage__host_log(h, "%s: out of memory starting a replica", g->key);
        return;
    }
    g->slots = v;
    s = &g->slots[g->nslots++];
    memset(s, 0, sizeof *s);
    s->child.pidfd = -1;
    s->child.readyfd = -1;
    sage__host_spawn(h, g, s);
}

/* replaced logs an old replica's stop and the new one that replaces it */
static void replaced(struct sage__host *h, const struct sage__group *g, const struct sage__slot *s)
{
    const struct sage__slot *by = NULL;

    for (size_t i = 0; i < g->nslots; i++)
        if (g->slots[i].gen >= g->gen && live(&g->slots[i]))
            by = &g->slots[i];
    sage__host_log(h, "%s: replica pid %d (generation %llu) stops; pid %d (generation %llu) "
                      "replaces it",
                   g->key, (int)s->child.pid, (unsigned long long)s->gen,
                   by ? (int)by->child.pid : 0, (unsigned long long)g->gen);
}

void sage__group_apply(struct sage__host *h, struct sage__group *g)
{
    size_t nlive = 0, nfailed = 0, nold = 0;
    bool settling = false; /* a replica of the newest generation does not serve yet */

    for (size_t i = 0; i < g->nslots; i++) {
        const struct sage__slot *s = &g->slots[i];

        if (live(s)) {
            nlive++;
            if (s->gen < g->gen)
                nold++;
            else if (s->state != SAGE__SLOT_RUNNING)
                settling = true;
        }
        nfailed += s->state == SAGE__SLOT_FAILED;
    }
    /* too many: older generations go first, then those not serving yet,
     * the newest first; during a rolling replacement, not before its new
     * replica serves */
    if (nlive > g->want && !(nold > 0 && settling && g->want > 0))
        for (int pass = 0; pass < 3 && nlive > g->want; pass++)
            for (size_t i = g->nslots; i-- > 0 && nlive > g->want;) {
                struct sage__slot *s = &g->slots[i];

                if (!live(s) || (pass == 0 && s->gen >= g->gen) ||
                    (pass == 1 && s->state == SAGE__SLOT_RUNNING))
                    continue;
                if (s->gen < g->gen) {
                    nold--;
                    replaced(h, g, s);
                }
                sage__slot_stop(h, s);
                nlive--;
            }
    if (g->want == 0) /* failed slots go too */
        for (size_t i = 0; i < g->nslots; i++)
            if (g->slots[i].state == SAGE__SLOT_FAILED)
                g->slots[i].state = SAGE__SLOT_DONE;
    if (!g->runnable) { /* the deployment failed: nothing restarts */
        for (size_t i = 0; i < g->nslots; i++)
            if (g->slots[i].state == SAGE__SLOT_BACKOFF) {
                g->slots[i].state = SAGE__SLOT_FAILED;
                sage__host_dirty(h);
            }
        return;
    }
    /* a failed slot keeps its place: the budget was spent, not lost */
    while (nlive + nfailed < g->want) {
        size_t before = g->nslots;

        grow(h, g);
        if (g->nslots == before)
            break;
        nlive++;
    }
    /* a rolling replacement, one replica at a time on each host: one of the
     * new generation starts beside the old ones, and an old one stops once
     * it serves (above), so the service never has fewer replicas serving.
     * A new replica that failed for good (its slot kept) stops the roll:
     * the old ones keep serving. */
    if (nold > 0 && !settling && g->want > 0 && nlive + nfailed == g->want) {
        sage__host_log(h, "%s: rolling replacement: a replica of generation %llu starts beside "
                          "%zu older one%s",
                       g->key, (unsigned long long)g->gen, nold, nold == 1 ? "" : "s");
        grow(h, g);
    }
}

void sage__slot_exited(struct sage__host *h, struct sage__group *g, struct sage__slot *s,
                       int status)
{
    char how[64], reason[256];

    sage__child_close(&s->child);
    s->last_status = status;
    sage__host_dirty(h);
    if (s->hung && s->state != SAGE__SLOT_STOPPING)
        snprintf(how, sizeof how, "answered no probe for %.1f s and was killed",
                 g->probe_timeout_ms / 1e3);
    else
        sage__child_describe(how, sizeof how, status);
    s->hung = false;
    if (s->state == SAGE__SLOT_STOPPING) {
        s->state = SAGE__SLOT_DONE;
        if (status != 0) /* asked to stop, it should have exited cleanly */
            sage__host_log(h, "%s: stopped replica %s", g->key, how);
        return;
    }
    if (g->want == 0 || !g->runnable) {
        s->state = SAGE__SLOT_DONE;
        return;
    }
    if (s->restarts >= g->max_restarts) {
        s->state = SAGE__SLOT_FAILED;
        snprintf(reason, sizeof reason,
                 "its replica on host %s %s after %u restart%s (max_restarts %u): gave up",
                 sage__host_id(h), how, s->restarts, s->restarts == 1 ? "" : "s",
                 g->max_restarts);
        sage__host_log(h, "%s: replica %s; max_restarts %u reached: giving up", g->key, how,
                       g->max_restarts);
        sage__host_gave_up(h, g, reason);
        return;
    }
    s->state = SAGE__SLOT_BACKOFF;
    s->due_ns = sage__now_ns() + backoff_ms(s->restarts) * 1000000;
    sage__host_log(h, "%s: replica %s; restart %u of %u in %lld ms", g->key, how,
                   s->restarts + 1, g->max_restarts, (long long)backoff_ms(s->restarts));
}

void sage__slot_due(struct sage__host *h, struct sage__group *g, struct sage__slot *s)
{
    if (s->state == SAGE__SLOT_BACKOFF) {
        s->restarts++;
        sage__host_spawn(h, g, s);
    } else if (s->state == SAGE__SLOT_STOPPING) {
        sage__host_log(h, "%s: replica pid %d did not stop within %d ms: SIGKILL", g->key,
                       (int)s->child.pid, SAGE__STOP_GRACE_MS);
        sage__child_signal(&s->child, SIGKILL);
        s->due_ns = 0; /* its pidfd tells when it is gone */
    }
}
