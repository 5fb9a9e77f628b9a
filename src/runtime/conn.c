/*
 * conn.c - the manager's connections to services: resolve, cache, send.
 *
 * Design notes
 * - Resolution order: the manager's sage_env (a local task: its private
 *   queue), then the host registry (an shm task: its named queue), then the
 *   cluster when one is configured. A name found nowhere is SAGE_ENOSERVICE
 *   at once, never a timeout.
 * - A connection is counted: one reference for the cache, one per send in
 *   progress. It is freed when the last goes, after it left the cache
 *   (killed, idle, or the manager closing). Calls remember a connection by
 *   its serial, never by pointer, so a call outliving its connection is
 *   safe.
 * - An shm connection's serving process is watched through a pidfd
 *   (watch.c): its death kills the connection at once.
 * - Nothing of another user is trusted: the registry entry and the request
 *   queue must pass the owner checks (platform/shm.c, hostreg.c), and the
 *   queue's name is derived from (uid, namespace, service), never read from
 *   the entry. A refusal is SAGE_EPERM, and nothing is sent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "platform/proc.h"
#include "runtime/hostreg.h"
#include "runtime/manager_internal.h"
#include "runtime/names.h"

static void conn_free(struct sage__conn *c)
{
    if (c->pidfd >= 0)
        close(c->pidfd); /* also leaves the watcher's epoll set */
    sage_queue_free(c->q);
    sage__lep_unref(c->lep);
    if (c->remote)
        sage__cluster_conn_free(c);
    free(c);
}

void sage__conn_put(sage_manager *m, struct sage__conn *c)
{
    (void)m;
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        conn_free(c);
}

static sage_err resolve_host(sage_manager *m, const char *service, struct sage__conn *c)
{
    struct sage__reg *reg = NULL;
    sage_state state;
    sage_err r = sage__reg_open(&reg, m->ns, service);

    if (r != SAGE_OK)
        return r;
    if (!sage__reg_owner_alive(reg)) {
        r = SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s': its process (pid %d) died", service,
                        (int)reg->pid);
        goto out;
    }
    state = (sage_state)atomic_load_explicit(&reg->state, memory_order_acquire);
    if (state != SAGE_STATE_RUNNING && state != SAGE_STATE_DEGRADED) {
        r = SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s' is %s", service, sage_state_name(state));
        goto out;
    }
    /* the queue's name is derived from ours, never taken from the entry, and
     * opening it checks that it is ours too */
    sage__req_queue_name(c->where, sizeof c->where, m->ns, service);
    c->transport = SAGE_TRANSPORT_SHM;
    c->pid = reg->pid;
    c->pid_start = reg->pid_start;
    c->queue_timeout_ms = reg->queue_timeout_ms;
    c->max_request = reg->max_request;
    r = sage_queue_open(&c->q, c->where, NULL);
    if (r == SAGE_EPERM)
        r = SAGE_SETERR(SAGE_EPERM, "service '%s': refusing its request queue: %s", service,
                        sage_errdetail());
    else if (r != SAGE_OK)
        r = SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s': cannot open its queue: %s", service,
                        sage_errdetail());
out:
    sage__reg_close(reg);
    return r;
}

static sage_err resolve(sage_manager *m, const char *service, struct sage__conn *c)
{
    sage_task *t = NULL;
    sage_err r;

    if (m->env) {
        struct sage__lep *ep = sage__env_lep(m->env, service, &t);

        if (ep) {
            c->transport = SAGE_TRANSPORT_LOCAL;
            c->lep = ep;
            c->pid = sage__pid();
            c->queue_timeout_ms = ep->queue_timeout_ms;
            c->max_request = ep->max_request;
            snprintf(c->where, sizeof c->where, "(in-process)");
            return SAGE_OK;
        }
    }
    r = resolve_host(m, service, c);
    if (r != SAGE_ENOSERVICE)
        return r;
    if (m->cluster) {
        r = sage__cluster_resolve(m, service, c);
        if (r != SAGE_ENOSERVICE)
            return r;
    }
    if (t != NULL)
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s' is registered but not running",
                           service);
    return SAGE_SETERR(SAGE_ENOSERVICE, "no service '%s' (namespace '%s') in this process%s",
                       service, m->ns, m->cluster ? ", on this host or in the cluster" : " or on this host");
}

/* find_live returns the cached live connection to service, or NULL; lock held */
static struct sage__conn *find_live(sage_manager *m, const char *service)
{
    struct sage__conn *c;

    for (c = m->conns; c; c = c->next)
        if (strcmp(c->name, service) == 0 && !atomic_load_explicit(&c->dead, memory_order_acquire))
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
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    snprintf(c->name, sizeof c->name, "%s", service);
    c->pidfd = -1;
    atomic_store(&c->refs, 2); /* the cache's and the caller's */
    atomic_store(&c->last_used_ns, now);
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
    c->serial = ++m->conn_serial;
    c->next = m->conns;
    m->conns = c;
    pthread_mutex_unlock(&m->conn_lock);
    if (c->transport == SAGE_TRANSPORT_SHM && c->pid != sage__pid() &&
        sage__watch_add(m, c) != SAGE_OK) {
        /* its process is already gone */
        sage__conn_kill(m, c, SAGE_EUNAVAILABLE, sage_errdetail());
        sage__conn_put(m, c);
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s': its process (pid %d) died", service,
                           (int)c->pid);
    }
    *cp = c;
    return SAGE_OK;
}

void sage__conn_kill(sage_manager *m, struct sage__conn *c, sage_err err, const char *why)
{
    struct sage__conn **pp;
    int expect = 0;
    bool unlinked = false;

    if (!atomic_compare_exchange_strong(&c->dead, &expect, 1))
        return; /* already dead: its calls were failed then */
    pthread_mutex_lock(&m->conn_lock);
    for (pp = &m->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            unlinked = true;
            break;
        }
    pthread_mutex_unlock(&m->conn_lock);
    sage__mgr_fail_conn(m, c->serial, err, why);
    if (unlinked)
        sage__conn_put(m, c); /* the cache's reference */
}

void sage__conn_sweep(sage_manager *m, int64_t now)
{
    struct sage__conn **pp, *gone = NULL;
    int64_t idle = (int64_t)(m->idle_close * 1e9);

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

/* scratch returns this thread's encoding buffer, grown to n bytes. */
static _Thread_local void *scratch_buf;
static _Thread_local size_t scratch_cap;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_init(void)
{
    pthread_key_create(&scratch_key, free); /* frees a thread's buffer at its exit */
}

static void *scratch(size_t n)
{
    if (n > scratch_cap) {
        size_t cap = n < 4096 ? 4096 : n;
        void *b = realloc(scratch_buf, cap);

        if (b == NULL)
            return NULL;
        pthread_once(&scratch_once, scratch_init);
        pthread_setspecific(scratch_key, b);
        scratch_buf = b;
        scratch_cap = cap;
    }
    return scratch_buf;
}

sage_err sage__conn_transmit(sage_manager *m, struct sage__conn *c, const void *data, size_t len,
                             int timeout_ms, bool *deadp)
{
    sage_err r = c->remote ? sage__cluster_send(m, c, data, len)
                           : sage_queue_send(c->lep ? c->lep->q : c->q, data, len, timeout_ms);

    *deadp = r == SAGE_ECLOSED || r == SAGE_EUNAVAILABLE;
    switch (r) {
    case SAGE_OK:
        return SAGE_OK;
    case SAGE_EFULL:
        return SAGE_SETERR(SAGE_EFULL, "service '%s': request queue full for %d ms", c->name,
                           timeout_ms);
    case SAGE_ECLOSED:
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s' stopped", c->name);
    case SAGE_EUNAVAILABLE:
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s': its process died", c->name);
    default:
        return r;
    }
}

sage_err sage__conn_send(sage_manager *m, struct sage__conn *c, const sage__req *req,
                         int64_t deadline_ns, const void **copyp, size_t *lenp,
                         sage_arena *copy_arena, bool *deadp)
{
    int timeout_ms = (int)c->queue_timeout_ms;
    size_t len = 0;
    void *buf;
    sage_err r;

    *deadp = false;
    /* encode once into this thread's scratch (grown and redone only when a
     * request outgrows it), then one copy into the ring: cheaper than a
     * sizing pass plus an encoding in place */
    buf = scratch(4096);
    if (buf == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    r = sage__wire_req_encode(req, buf, scratch_cap, &len);
    if (r == SAGE_EMSGSIZE) {
        size_t size = sage__wire_req_size(req);

        if (size > c->max_request)
            return SAGE_SETERR(SAGE_EMSGSIZE, "request of %zu bytes exceeds service '%s''s max %zu",
                               size, c->name, c->max_request);
        if ((buf = scratch(size)) == NULL)
            return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        r = sage__wire_req_encode(req, buf, scratch_cap, &len);
    }
    if (r != SAGE_OK)
        return r;
    if (len > c->max_request)
        return SAGE_SETERR(SAGE_EMSGSIZE, "request of %zu bytes exceeds service '%s''s max %zu",
                           len, c->name, c->max_request);
    if (deadline_ns >= 0) {
        /* the request was stamped just now: no second clock read */
        int64_t left = (deadline_ns - (int64_t)req->sent_ns) / 1000000;

        if (left < timeout_ms)
            timeout_ms = left > 0 ? (int)left : 0;
    }
    if (copyp) { /* kept for retries */
        void *copy = sage_arena_alloc(copy_arena, len);

        if (copy == NULL)
            return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        memcpy(copy, buf, len);
        *copyp = copy;
        *lenp = len;
    }
    return sage__conn_transmit(m, c, buf, len, timeout_ms, deadp);
}
