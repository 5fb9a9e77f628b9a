/*
 * conn.c - the manager's destinations: resolve, cache, send.
 *
 * Design notes
 * - Resolution order: the manager's sage_env (a task of this process, its
 *   own transport attaching to it), then every transport that resolves
 *   names, in the table's order (this machine, then the cluster). A name
 *   found nowhere is SAGE_ENOSERVICE at once, never a timeout.
 * - A destination is counted: one reference for the cache, one per send in
 *   progress; it is closed when the last goes, after it left the cache
 *   (evicted, idle, or the manager closing). Calls remember a destination
 *   by its serial, never by pointer, so a call outliving it is safe.
 * - A destination that must not take new calls (its service stopping, its
 *   process dead) is evicted: the next call resolves afresh. Calls already
 *   sent through it are not failed by that: they are answered, or fail
 *   when their service's death is known (behind its answers), or time out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "base/name.h"
#include "platform/clock.h"
#include "runtime/manager_internal.h"

static void conn_free(struct sage__conn *c)
{
    if (c->dest)
        c->ops->dest_close(c->dest);
    sage__direct_unref(c->direct);
    free(c);
}

void sage__conn_put(sage_manager *m, struct sage__conn *c)
{
    (void)m;
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        conn_free(c);
}

/* resolve_env: service is a task of m's environment: attach to it through
 * its own transport. SAGE_ENOSERVICE when it is not one. */
static sage_err resolve_env(sage_manager *m, const char *service, struct sage__conn *c)
{
    struct sage__tp_server *s = NULL;
    sage_transport kind = SAGE__TP_DEFAULT;
    sage_task *t = NULL;
    sage_err r;

    switch (sage__env_server(m->env, service, &s, &kind, &t, &c->direct)) {
    case 0:
        return SAGE_ENOSERVICE;
    case 1:
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s' is registered but not running",
                           service);
    default:
        break;
    }
    c->ops = sage__tp_for(kind);
    if (c->ops == NULL || c->ops->attach == NULL || m->clients[kind] == NULL) {
        sage__task_server_put(t);
        return SAGE_ENOSERVICE; /* reached through the table, by name */
    }
    r = c->ops->attach(m->clients[kind], s, c->serial, &c->dest, &c->info);
    sage__task_server_put(t);
    return r;
}

static sage_err resolve(sage_manager *m, const char *service, struct sage__conn *c)
{
    const struct sage__tp_ops *const *all;
    size_t n;
    sage_err r = resolve_env(m, service, c);

    if (r != SAGE_ENOSERVICE)
        return r;
    all = sage__tp_all(&n);
    for (size_t i = 0; i < n; i++) {
        struct sage__tp_client *client = m->clients[all[i]->kind];

        if (client == NULL)
            continue;
        c->ops = all[i];
        r = all[i]->resolve(client, service, c->serial, &c->dest, &c->info);
        if (r != SAGE_ENOSERVICE)
            return r;
    }
    return SAGE_SETERR(SAGE_ENOSERVICE, "no service '%s' (namespace '%s') in this process%s",
                       service, m->ns,
                       m->has_cluster ? ", on this host or in the cluster" : " or on this host");
}

/* find_live returns the cached destination of service, or NULL; lock held */
static struct sage__conn *find_live(sage_manager *m, const char *service)
{
    struct sage__conn *c;

    for (c = m->conns; c; c = c->next)
        if (strcmp(c->name, service) == 0)
            break;
    return c;
}

sage_err sage__conn_get(sage_manager *m, const char *service, struct sage__conn **cp)
{
    struct sage__conn *c, *e;
    int64_t now = sage__now_coarse_ns(); /* for idle_close only */
    sage_err r;

    pthread_mutex_lock(&m->conn_lock);
    if ((c = find_live(m, service)) != NULL) {
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
        atomic_store_explicit(&c->last_used_ns, now, memory_order_relaxed);
        pthread_mutex_unlock(&m->conn_lock);
        *cp = c;
        return SAGE_OK;
    }
    pthread_mutex_unlock(&m->conn_lock);

    if ((r = sage__check_name(service, "service", 0)) != SAGE_OK)
        return r;
    if ((c = calloc(1, sizeof *c)) == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    snprintf(c->name, sizeof c->name, "%s", service);
    atomic_store(&c->refs, 2); /* the cache's and the caller's */
    atomic_store(&c->last_used_ns, now);
    pthread_mutex_lock(&m->conn_lock);
    c->serial = ++m->conn_serial; /* events name it from its resolve on */
    pthread_mutex_unlock(&m->conn_lock);
    if ((r = resolve(m, service, c)) != SAGE_OK) {
        conn_free(c);
        return r;
    }
    pthread_mutex_lock(&m->conn_lock);
    if ((e = find_live(m, service)) != NULL) { /* resolved twice at once: keep the first */
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        pthread_mutex_unlock(&m->conn_lock);
        conn_free(c);
        *cp = e;
        return SAGE_OK;
    }
    c->next = m->conns;
    m->conns = c;
    pthread_mutex_unlock(&m->conn_lock);
    *cp = c;
    return SAGE_OK;
}

/* unlink_locked takes c out of the list; lock held. true if it was there. */
static bool unlink_locked(sage_manager *m, struct sage__conn *c)
{
    for (struct sage__conn **pp = &m->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return true;
        }
    return false;
}

void sage__conn_evict(sage_manager *m, struct sage__conn *c)
{
    bool was;

    atomic_store_explicit(&c->stale, 1, memory_order_release);
    pthread_mutex_lock(&m->conn_lock);
    was = unlink_locked(m, c);
    pthread_mutex_unlock(&m->conn_lock);
    if (was)
        sage__conn_put(m, c); /* the cache's reference */
}

void sage__conn_evict_serial(sage_manager *m, uint64_t serial)
{
    struct sage__conn *c;

    pthread_mutex_lock(&m->conn_lock);
    for (c = m->conns; c; c = c->next)
        if (c->serial == serial)
            break;
    if (c && !unlink_locked(m, c))
        c = NULL;
    pthread_mutex_unlock(&m->conn_lock);
    if (c) {
        atomic_store_explicit(&c->stale, 1, memory_order_release);
        sage__conn_put(m, c);
    }
}

void sage__conn_sweep(sage_manager *m, int64_t now)
{
    struct sage__conn **pp, *gone = NULL;
    int64_t idle = m->idle_close_ms * 1000000;

    pthread_mutex_lock(&m->conn_lock);
    pp = &m->conns;
    while (*pp) {
        struct sage__conn *c = *pp;

        if (atomic_load_explicit(&c->refs, memory_order_acquire) == 1 &&
            now - atomic_load_explicit(&c->last_used_ns, memory_order_relaxed) > idle) {
            *pp = c->next;
            c->next = gone;
            gone = c;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&m->conn_lock);
    while (gone) {
        struct sage__conn *c = gone;

        gone = c->next;
        sage__conn_put(m, c);
    }
}

void sage__conn_free_all(sage_manager *m)
{
    struct sage__conn *c, *n;

    pthread_mutex_lock(&m->conn_lock);
    c = m->conns;
    m->conns = NULL;
    pthread_mutex_unlock(&m->conn_lock);
    for (; c; c = n) {
        n = c->next;
        sage__conn_put(m, c);
    }
}

/* send_timeout_ms: how long a send may wait for room */
static int send_timeout_ms(const struct sage__conn *c, int64_t deadline_ns, int timeout_cap_ms)
{
    int64_t timeout_ms = c->info.queue_timeout_ms;

    if (timeout_cap_ms >= 0 && timeout_ms > timeout_cap_ms)
        timeout_ms = timeout_cap_ms;
    if (deadline_ns >= 0) {
        /* a coarse clock: a few ms of waiting more at worst */
        int64_t left = (deadline_ns - sage__now_coarse_ns()) / 1000000;

        if (left < timeout_ms)
            timeout_ms = left > 0 ? left : 0;
    }
    return timeout_ms > INT32_MAX ? INT32_MAX : (int)timeout_ms;
}

/* sent: a destination that must not take new calls any more is evicted */
static sage_err sent(sage_manager *m, struct sage__conn *c, sage_err r, bool stale)
{
    if (stale) {
        char why[512];

        snprintf(why, sizeof why, "%s", sage_errdetail());
        sage__conn_evict(m, c);
        SAGE_SETERR(r, "%s", why);
    }
    return r;
}

sage_err sage__conn_send(sage_manager *m, struct sage__conn *c, const sage__req *req,
                         int64_t deadline_ns, int timeout_cap_ms)
{
    bool stale = false;
    sage_err r = c->ops->send(c->dest, req, send_timeout_ms(c, deadline_ns, timeout_cap_ms),
                              &stale);

    return sent(m, c, r, stale);
}

sage_err sage__conn_send_to(sage_manager *m, struct sage__conn *c, const sage__req *req,
                            int64_t deadline_ns, int timeout_cap_ms, uint32_t avoid,
                            uint32_t *chosen)
{
    bool stale = false;
    sage_err r = c->ops->send_to(c->dest, req,
                                 send_timeout_ms(c, deadline_ns, timeout_cap_ms), avoid,
                                 chosen, &stale);

    return sent(m, c, r, stale);
}
