/*
 * probe.c - noticing a hung replica: the host pings each serving replica
 * ($SRV.PING.NAME.ID, which its $SRV handlers answer) every
 * probe_interval; one that leaves a probe unanswered is unhealthy (the
 * record says so, and `sagesvc status --cluster` shows it), one silent for
 * probe_timeout is killed (SIGKILL: a stopped or wedged process cannot act
 * on SIGTERM) and restarted like any replica that died.
 *
 * Design notes
 * - Probes go out from the host's thread, with the reply subject
 *   INBOX.TOKEN, TOKEN naming the slot (a counter, never reused); answers
 *   arrive on a nats.c thread, which only queues the token (under h->lock)
 *   and pokes the host's eventfd. No slot pointer crosses threads.
 * - A probe proves the replica's process answers on its connection, not
 *   that its workers are free: that is what the call timeouts are for.
 * - An outage of the host's own connection says nothing about its
 *   replicas: while it is down no probe is judged, and once it is back
 *   every replica's clock starts afresh; so after the host's own thread
 *   stalled (its answers went unread). A replica's own reconnect (its
 *   server died) takes about a second, well within the timeouts.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "cluster/host.h"
#include "platform/clock.h"

#define MS 1000000LL
#define STALL_NS (2000 * MS) /* a pass this late means the host's thread stalled */

/* on_answer runs on the subscription's thread */
static void on_answer(void *arg, struct sage__nio_msg *m)
{
    struct sage__host *h = arg;
    const char *dot = strrchr(sage__nio_msg_subject(m), '.');
    uint64_t token = dot ? strtoull(dot + 1, NULL, 10) : 0;

    if (token == 0)
        return;
    pthread_mutex_lock(&h->lock);
    if (h->nanswers == h->answers_cap) {
        size_t cap = h->answers_cap ? 2 * h->answers_cap : 64;
        uint64_t *v = realloc(h->answers, cap * sizeof *v);

        if (v == NULL) { /* the next probe asks again */
            pthread_mutex_unlock(&h->lock);
            return;
        }
        h->answers = v;
        h->answers_cap = cap;
    }
    h->answers[h->nanswers++] = token;
    pthread_mutex_unlock(&h->lock);
    sage__host_wake(h);
}

sage_err sage__host_probe_open(struct sage__host *h)
{
    char subject[160];
    sage_err r = sage__nio_inbox(h->ops.nio, h->probe_inbox, sizeof h->probe_inbox);

    if (r != SAGE_OK)
        return r;
    snprintf(subject, sizeof subject, "%s.*", h->probe_inbox);
    return sage__nio_subscribe(h->ops.nio, subject, NULL, on_answer, h, &h->probe_sub);
}

void sage__host_probe_close(struct sage__host *h)
{
    sage__nio_unsubscribe(h->probe_sub);
    h->probe_sub = NULL;
    free(h->answers);
    h->answers = NULL;
    h->nanswers = h->answers_cap = 0;
}

void sage__slot_serving(struct sage__slot *s)
{
    s->last_ok_ns = sage__now_ns();
    s->seen_ms = sage__wall_ms();
    s->next_probe_ns = s->last_ok_ns;
    s->probe_out = false;
}

static bool probed(const struct sage__slot *s)
{
    return (s->state == SAGE__SLOT_RUNNING || s->state == SAGE__SLOT_UNHEALTHY) &&
           s->id[0] != '\0' && s->child.pid > 0;
}

/* answered applies one answer */
static void answered(struct sage__host *h, uint64_t token)
{
    for (struct sage__group *g = h->groups; g; g = g->next)
        for (size_t i = 0; i < g->nslots; i++) {
            struct sage__slot *s = &g->slots[i];

            if (s->token != token || !probed(s))
                continue;
            s->last_ok_ns = sage__now_ns();
            s->seen_ms = sage__wall_ms();
            s->probe_out = false;
            if (s->state == SAGE__SLOT_UNHEALTHY) {
                s->state = SAGE__SLOT_RUNNING;
                sage__host_log(h, "%s: replica pid %d answers again", g->key, (int)s->child.pid);
                sage__host_dirty(h);
            }
            return;
        }
}

/* check judges s (its last probe unanswered?) and sends the next probe */
static void check(struct sage__host *h, struct sage__group *g, struct sage__slot *s, int64_t now)
{
    char subject[256], reply[200];
    int64_t silent = now - s->last_ok_ns;

    if (now < s->next_probe_ns)
        return;
    if (silent >= g->probe_timeout_ms * MS) {
        sage__host_log(h, "%s: replica pid %d answered no probe for %.1f s (probe_timeout %.1f s): "
                          "killing it (SIGKILL) to start another",
                       g->key, (int)s->child.pid, silent / 1e9, g->probe_timeout_ms / 1e3);
        s->hung = true;
        sage__child_signal(&s->child, SIGKILL);
        s->next_probe_ns = INT64_MAX; /* its pidfd tells when it is gone */
        return;
    }
    if (s->probe_out && s->state == SAGE__SLOT_RUNNING) {
        s->state = SAGE__SLOT_UNHEALTHY;
        sage__host_log(h, "%s: replica pid %d left a probe unanswered (%.1f s): unhealthy",
                       g->key, (int)s->child.pid, silent / 1e9);
        sage__host_dirty(h);
    }
    s->token = ++h->next_token;
    snprintf(subject, sizeof subject, "$SRV.PING.%s.%s", g->name, s->id);
    snprintf(reply, sizeof reply, "%s.%llu", h->probe_inbox, (unsigned long long)s->token);
    if (sage__nio_publish(h->ops.nio, subject, reply, "", 0, NULL, 0) == SAGE_OK)
        s->probe_out = true;
    s->next_probe_ns = now + g->probe_interval_ms * MS;
}

void sage__host_probe(struct sage__host *h)
{
    uint64_t *answers;
    size_t n;
    bool grace;
    int64_t now = sage__now_ns();

    pthread_mutex_lock(&h->lock);
    answers = h->answers;
    n = h->nanswers;
    h->answers = NULL;
    h->nanswers = h->answers_cap = 0;
    grace = h->probe_grace;
    h->probe_grace = false;
    pthread_mutex_unlock(&h->lock);
    for (size_t i = 0; i < n; i++)
        answered(h, answers[i]);
    free(answers);
    if (h->probe_sub == NULL)
        return;
    if (!sage__nio_connected(h->ops.nio))
        grace = true; /* judge nobody while we cannot hear them */
    if (h->last_probe_pass_ns > 0 && now - h->last_probe_pass_ns > STALL_NS)
        grace = true; /* nor after this thread stalled: answers went unread */
    h->last_probe_pass_ns = now;
    for (struct sage__group *g = h->groups; g; g = g->next)
        for (size_t i = 0; g->probe_interval_ms > 0 && i < g->nslots; i++) {
            struct sage__slot *s = &g->slots[i];

            if (!probed(s))
                continue;
            if (grace) {
                s->last_ok_ns = now;
                s->probe_out = false;
                s->next_probe_ns = now + g->probe_interval_ms * MS;
                continue;
            }
            check(h, g, s, now);
        }
}

int64_t sage__host_probe_next(const struct sage__host *h)
{
    int64_t next = INT64_MAX;

    for (const struct sage__group *g = h->groups; g; g = g->next)
        for (size_t i = 0; g->probe_interval_ms > 0 && i < g->nslots; i++)
            if (probed(&g->slots[i]) && g->slots[i].next_probe_ns < next)
                next = g->slots[i].next_probe_ns;
    return next;
}
