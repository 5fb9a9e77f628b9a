/*
 * host.c - sage_cluster_host_run: the host daemon's loop, start and stop.
 *
 * Design notes
 * - One thread does everything (the caller's): it polls the stop fd, an
 *   eventfd (watched deployment changes, hostspecs.c), and each replica's
 *   pidfd and ready pipe, with a timeout that is the next heartbeat or slot
 *   timer. No sleeping, no SIGCHLD.
 * - Each turn: handle what became readable, then due slot timers; then
 *   reconcile when the cache changed or a heartbeat is due, drop finished
 *   groups, and write the record (hostbeat.c) when due or dirty.
 * - Stop: every replica gets SIGTERM (SIGKILL after the grace), the loop
 *   waits for them through their pidfds, then the record is deleted, which
 *   releases the host's reservations.
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "cluster/host.h"
#include "platform/clock.h"
#include "platform/proc.h"
#include "platform/spawn.h"
#include "transport/names.h"

#define MS 1000000LL

const char *sage__host_id(const struct sage__host *h)
{
    return h->id;
}

void sage__host_log(struct sage__host *h, const char *fmt, ...)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "host %s: ", h->id);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (h->o->log)
        h->o->log(h->o->arg, line);
    else
        fprintf(stderr, "%s\n", line);
}

void sage__host_dirty(struct sage__host *h)
{
    h->dirty = true;
}

void sage__host_wake(struct sage__host *h)
{
    uint64_t one = 1;

    if (write(h->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        return; /* cannot happen with an eventfd below its maximum */
}

/* ------------------------------------------------------------- replicas */

static char *join_servers(const sage_nats_conf *c)
{
    size_t len = 1;
    char *s;

    for (size_t i = 0; i < c->nservers; i++)
        len += strlen(c->servers[i]) + 1;
    if ((s = calloc(1, len)) == NULL)
        return NULL;
    for (size_t i = 0; i < c->nservers; i++) {
        if (i)
            strcat(s, ",");
        strcat(s, c->servers[i]);
    }
    return s;
}

static bool push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 2) * sizeof *nv);

    if (nv == NULL)
        return false;
    *v = nv;
    if ((nv[*n] = strdup(s)) == NULL)
        return false;
    nv[++*n] = NULL;
    return true;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* build_command makes the replica command line's fixed part and its
 * environment: credentials stay off the command line */
static sage_err build_command(struct sage__host *h)
{
    static const char *const dflt[] = {"nats://127.0.0.1:4222"};
    const sage_nats_conf *c = &h->nats;
    sage_nats_conf servers = *c;
    char *urls, pid[24], fd[16], copies[16], **e;
    size_t ne = 0;
    bool ok = true;

    if (servers.nservers == 0) {
        servers.servers = dflt;
        servers.nservers = 1;
    }
    if ((urls = join_servers(&servers)) == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    static const char *const python_dflt[] = {"python3", "-m", "sagesvc", "replica", NULL};
    const char *const *py = h->o->python_argv ? h->o->python_argv : python_dflt;
    size_t npy = 0;

    for (size_t i = 0; h->o->replica_argv[i]; i++)
        ok = ok && push(&h->argv, &h->nargv, h->o->replica_argv[i]);
    h->nprefix = h->nargv;
    for (size_t i = 0; py[i]; i++)
        ok = ok && push(&h->pyargv, &npy, py[i]);
    ok = ok && push(&h->argv, &h->nargv, "--nats") && push(&h->argv, &h->nargv, urls);
    snprintf(fd, sizeof fd, "%d", SAGE__CHILD_READY_FD);
    ok = ok && push(&h->argv, &h->nargv, "--ready-fd") && push(&h->argv, &h->nargv, fd);
    if (c->replicas > 0) { /* what the replica creates gets as many copies as ours */
        snprintf(copies, sizeof copies, "%d", c->replicas);
        ok = ok && push(&h->argv, &h->nargv, "--nats-replicas") &&
             push(&h->argv, &h->nargv, copies);
    }
    ok = ok && push(&h->argv, &h->nargv, "--host-pid") && push(&h->argv, &h->nargv, pid);
    if (c->creds)
        ok = ok && push(&h->argv, &h->nargv, "--creds") && push(&h->argv, &h->nargv, c->creds);
    if (c->tls_ca)
        ok = ok && push(&h->argv, &h->nargv, "--tls-ca") && push(&h->argv, &h->nargv, c->tls_ca);
    if (c->tls_cert)
        ok = ok && push(&h->argv, &h->nargv, "--tls-cert") &&
             push(&h->argv, &h->nargv, c->tls_cert) && push(&h->argv, &h->nargv, "--tls-key") &&
             push(&h->argv, &h->nargv, c->tls_key ? c->tls_key : "");
    free(urls);
    for (e = environ; ok && e && *e; e++)
        if (strncmp(*e, "SAGESVC_NATS_", 13) != 0)
            ok = push(&h->envp, &ne, *e);
    if (ok && c->user) {
        char *kv1 = NULL, *kv2 = NULL;

        ok = asprintf(&kv1, "SAGESVC_NATS_USER=%s", c->user) > 0 &&
             asprintf(&kv2, "SAGESVC_NATS_PASSWORD=%s", c->password ? c->password : "") > 0 &&
             push(&h->envp, &ne, kv1) && push(&h->envp, &ne, kv2);
        free(kv1);
        free(kv2);
    }
    if (ok && c->token) {
        char *kv = NULL;

        ok = asprintf(&kv, "SAGESVC_NATS_TOKEN=%s", c->token) > 0 && push(&h->envp, &ne, kv);
        free(kv);
    }
    if (ok && h->envp == NULL)
        ok = push(&h->envp, &ne, "SAGESVC_REPLICA=1");
    return ok ? SAGE_OK : SAGE_SETERR(SAGE_ENOMEM, "out of memory");
}

void sage__host_spawn(struct sage__host *h, struct sage__group *g, struct sage__slot *s)
{
    char *argv[64 + 8];
    size_t n = 0;
    sage_err r;

    /* the command that runs this service's code, then the shared options */
    for (size_t i = 0; g->python && h->pyargv[i] && n < 16; i++)
        argv[n++] = h->pyargv[i];
    for (size_t i = g->python ? h->nprefix : 0; i < h->nargv && n < 64; i++)
        argv[n++] = h->argv[i];
    argv[n++] = "--ns";
    argv[n++] = g->ns;
    argv[n++] = "--service";
    argv[n++] = g->name;
    argv[n] = NULL;
    s->gen = g->gen; /* it reads the deployment as it is now */
    s->id[0] = '\0';
    s->rlen = 0;
    s->rbuf[0] = '\0';
    s->hung = false;
    s->probe_out = false;
    r = sage__child_spawn(&s->child, argv, h->envp);
    sage__host_dirty(h);
    if (r == SAGE_OK) {
        s->state = SAGE__SLOT_STARTING;
        sage__host_log(h, "%s: started replica pid %d%s", g->key, (int)s->child.pid,
                       s->restarts ? " (a restart)" : "");
        return;
    }
    sage__host_log(h, "%s: %s", g->key, sage_errdetail());
    s->state = SAGE__SLOT_STARTING; /* counts as a death at start */
    sage__slot_exited(h, g, s, 127 << 8);
}

/* ------------------------------------------------------------- the loop */

struct pollset {
    struct pollfd *fds;
    struct fd_owner {
        struct sage__group *group;
        struct sage__slot *slot; /* NULL for the stop and wake fds */
    } *owner;                    /* per fd */
    size_t n, cap;
};

static bool pollset_add(struct pollset *p, int fd, struct sage__group *g, struct sage__slot *s)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        struct pollfd *f = realloc(p->fds, cap * sizeof *f);
        struct fd_owner *o;

        if (f == NULL)
            return false;
        p->fds = f;
        if ((o = realloc(p->owner, cap * sizeof *o)) == NULL)
            return false;
        p->owner = o;
        p->cap = cap;
    }
    p->fds[p->n] = (struct pollfd){fd, POLLIN, 0};
    p->owner[p->n] = (struct fd_owner){g, s};
    p->n++;
    return true;
}

/* build_pollset lists the descriptors to wait on and returns the poll
 * timeout in ms: until the next heartbeat or slot timer */
static int build_pollset(struct sage__host *h, struct pollset *p, bool stopping)
{
    int64_t now = sage__now_ns(), next = stopping ? now + 1000 * MS : h->next_beat_ns;

    p->n = 0;
    if (!stopping && h->o->stop_fd >= 0)
        pollset_add(p, h->o->stop_fd, NULL, NULL);
    pollset_add(p, h->wake_fd, NULL, NULL);
    for (struct sage__group *g = h->groups; g; g = g->next)
        for (size_t i = 0; i < g->nslots; i++) {
            struct sage__slot *s = &g->slots[i];

            if (s->child.pidfd >= 0)
                pollset_add(p, s->child.pidfd, g, s);
            if (s->child.readyfd >= 0)
                pollset_add(p, s->child.readyfd, g, s);
            if ((s->state == SAGE__SLOT_BACKOFF || s->state == SAGE__SLOT_STOPPING) &&
                s->due_ns > 0 && s->due_ns < next)
                next = s->due_ns;
        }
    if (!stopping && sage__host_probe_next(h) < next)
        next = sage__host_probe_next(h);
    if (!stopping && (h->dirty || h->cache_changed))
        return 0;
    return next <= now ? 0 : (int)((next - now + MS - 1) / MS);
}

/* ready_said reads what a replica wrote on its ready pipe: "R", then its
 * instance id and a newline (an older replica writes "R" alone: it serves,
 * but cannot be probed) */
static void ready_said(struct sage__host *h, struct sage__group *g, struct sage__slot *s)
{
    char *r = strchr(s->rbuf, 'R'), *nl;

    if (r == NULL)
        return;
    if (s->state == SAGE__SLOT_STARTING) {
        s->state = SAGE__SLOT_RUNNING;
        sage__slot_serving(s);
        sage__host_log(h, "%s: replica pid %d serves", g->key, (int)s->child.pid);
        h->dirty = true;
    }
    if (s->id[0] == '\0' && (nl = strchr(r, '\n')) != NULL) {
        size_t len = (size_t)(nl - r - 1);
        bool ok = len > 0 && len < sizeof s->id;

        for (size_t i = 0; ok && i < len; i++)
            ok = isalnum((unsigned char)r[1 + i]) || r[1 + i] == '_' || r[1 + i] == '-';
        if (ok) {
            memcpy(s->id, r + 1, len);
            s->id[len] = '\0';
            h->dirty = true;
        }
    }
}

/* on_fd handles one readable descriptor of a slot */
static void on_fd(struct sage__host *h, struct sage__group *g, struct sage__slot *s, int fd)
{
    if (fd == s->child.readyfd) {
        size_t room = sizeof s->rbuf - 1 - s->rlen;
        ssize_t n = room ? read(fd, s->rbuf + s->rlen, room) : 0;

        if (n > 0) {
            s->rlen += (size_t)n;
            s->rbuf[s->rlen] = '\0';
            ready_said(h, g, s);
        }
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
            close(s->child.readyfd);
            s->child.readyfd = -1;
        }
    } else if (fd == s->child.pidfd) {
        int status = 0;

        if (sage__child_reap(&s->child, &status))
            sage__slot_exited(h, g, s, status);
    }
}

static void run_timers(struct sage__host *h, bool stopping)
{
    int64_t now = sage__now_ns();

    for (struct sage__group *g = h->groups; g; g = g->next)
        for (size_t i = 0; i < g->nslots; i++) {
            struct sage__slot *s = &g->slots[i];

            if (s->due_ns > 0 && s->due_ns <= now &&
                (s->state == SAGE__SLOT_STOPPING ||
                 (s->state == SAGE__SLOT_BACKOFF && !stopping && g->runnable)))
                sage__slot_due(h, g, s);
        }
}

/* turn waits for one event and handles it; returns true when asked to stop */
static bool turn(struct sage__host *h, struct pollset *p, bool stopping)
{
    int timeout = build_pollset(h, p, stopping);
    int n = poll(p->fds, p->n, timeout);
    bool stop = false;

    if (n < 0 && errno != EINTR) {
        sage__host_log(h, "poll: %s", strerror(errno));
        return true;
    }
    for (size_t i = 0; n > 0 && i < p->n; i++) {
        if (p->fds[i].revents == 0)
            continue;
        if (p->fds[i].fd == h->wake_fd)
            sage__host_take_changes(h);
        else if (p->owner[i].slot == NULL)
            stop = true; /* the stop fd */
        else
            on_fd(h, p->owner[i].group, p->owner[i].slot, p->fds[i].fd);
    }
    run_timers(h, stopping);
    if (!stopping)
        sage__host_probe(h);
    return stop;
}

/* ------------------------------------------------------------ start, stop */

static sage_err check_opts(const sage_cluster_host_opts *o)
{
    if (o == NULL || o->replica_argv == NULL || o->replica_argv[0] == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "host: replica_argv must name the replica command");
    if (o->id && sage__check_name(o->id, "host id", 0) != SAGE_OK)
        return SAGE_EINVAL;
    if (o->cpus < 0)
        return SAGE_SETERR(SAGE_EINVAL, "host: cpus must be positive, got %g", o->cpus);
    return SAGE_OK;
}

static void default_id(char *id, size_t cap, const char *hostname)
{
    size_t n = 0;

    for (const char *c = hostname; *c && n < 64 && n + 1 < cap; c++)
        id[n++] = ((unsigned char)*c < 128 && isalnum((unsigned char)*c)) || *c == '_' ? *c : '-';
    id[n] = '\0';
    if (n == 0)
        snprintf(id, cap, "host");
}

/* claim refuses to run when another live host has our id */
static sage_err claim(struct sage__host *h)
{
    json_t *rec = NULL;
    sage_err r = sage__kv_get_json(h->ops.hosts, h->id, &rec, NULL);
    int pid;

    if (r != SAGE_OK)
        return SAGE_OK;
    pid = (int)sage__jint(rec, "pid");
    if (sage__hostrec_alive(rec, sage__wall_ms()) &&
        (strcmp(sage__jstr(rec, "hostname"), h->hostname) != 0 ||
         (pid != getpid() && sage__pid_alive(pid)))) {
        r = SAGE_SETERR(SAGE_EEXIST,
                        "host id '%s' is taken by a live host (pid %d on %s): pick another id, "
                        "or stop that one",
                        h->id, pid, sage__jstr(rec, "hostname"));
    }
    json_decref(rec);
    return r;
}

/* open_buckets connects and opens the buckets; JetStream that does not
 * answer yet (a cluster still electing its leader) is waited for, up to
 * 30 s, while the stop fd is watched */
static sage_err open_buckets(struct sage__host *h, const char *name)
{
    int64_t end = sage__now_ns() + 30000 * MS;
    bool said = false;

    for (;;) {
        sage_err r = sage__ops_open(&h->ops, &h->nats, name, sage__host_on_event, h);
        struct pollfd p = {h->o->stop_fd, POLLIN, 0};

        if (r != SAGE_ETIMEDOUT || sage__now_ns() > end)
            return r;
        if (!said)
            sage__host_log(h, "JetStream does not answer yet: %s; retrying for 30 s",
                           sage_errdetail());
        said = true;
        if (poll(&p, h->o->stop_fd >= 0 ? 1 : 0, 500) > 0)
            return SAGE_SETERR(SAGE_ECLOSED, "host %s: stopped while starting", h->id);
    }
}

static void host_fini(struct sage__host *h)
{
    struct sage__change *c;

    sage__nio_kv_unwatch(h->watch);
    sage__host_view_stop(h);
    sage__host_probe_close(h);
    while ((c = h->changes) != NULL) {
        h->changes = c->next;
        json_decref(c->spec);
        free(c->key);
        free(c);
    }
    sage__ops_close(&h->ops);
    for (struct sage__group *g = h->groups, *next; g; g = next) {
        next = g->next;
        for (size_t i = 0; i < g->nslots; i++)
            sage__child_close(&g->slots[i].child);
        free(g->slots);
        free(g);
    }
    json_decref(h->cache);
    json_decref(h->missing);
    json_decref(h->hosts_view);
    json_decref(h->last);
    free_strv(h->argv);
    free_strv(h->pyargv);
    free_strv(h->envp);
    if (h->wake_fd >= 0)
        close(h->wake_fd);
    if (h->view_cond_ready)
        pthread_cond_destroy(&h->view_cond);
    pthread_mutex_destroy(&h->lock);
}

/* shutdown stops every replica (SIGTERM, SIGKILL after the grace) and waits
 * for them, then deletes the record: its reservations go with it */
static void shutdown_host(struct sage__host *h, struct pollset *p)
{
    int64_t deadline = sage__now_ns() + (SAGE__STOP_GRACE_MS + 2000) * MS;

    for (struct sage__group *g = h->groups; g; g = g->next) {
        g->want = 0;
        g->runnable = false;
        sage__group_apply(h, g);
    }
    for (;;) {
        bool any = false;

        for (struct sage__group *g = h->groups; g; g = g->next)
            for (size_t i = 0; i < g->nslots; i++)
                any = any || g->slots[i].child.pid > 0;
        if (!any || sage__now_ns() > deadline)
            break;
        turn(h, p, true);
    }
    sage__nio_kv_delete(h->ops.hosts, h->id);
    sage__host_log(h, "stopped; record removed");
}

void sage_cluster_host_opts_init(sage_cluster_host_opts *o)
{
    memset(o, 0, sizeof *o);
    o->stop_fd = -1;
}

sage_err sage_cluster_host_run(const sage_cluster_host_opts *o)
{
    struct sage__host h;
    struct pollset p = {0};
    char name[128];
    sage_err r;

    if ((r = check_opts(o)) != SAGE_OK)
        return r;
    memset(&h, 0, sizeof h);
    h.o = o;
    h.wake_fd = -1;
    h.tail = &h.changes;
    pthread_mutex_init(&h.lock, NULL);
    if (o->nats)
        h.nats = *o->nats;
    else
        sage_nats_conf_init(&h.nats);
    h.nats.reconnect_max = -1; /* a daemon rides out outages */
    if (gethostname(h.hostname, sizeof h.hostname - 1) != 0)
        snprintf(h.hostname, sizeof h.hostname, "localhost");
    if (o->id)
        snprintf(h.id, sizeof h.id, "%s", o->id);
    else
        default_id(h.id, sizeof h.id, h.hostname);
    h.cpus = o->cpus > 0 ? o->cpus : (double)sage__ncpu();
    h.memory = o->memory ? o->memory
                         : (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    h.cache = json_object();
    h.missing = json_object();
    h.hosts_view = json_object();
    h.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h.cache == NULL || h.missing == NULL || h.hosts_view == NULL || h.wake_fd < 0) {
        r = SAGE_SETERR(SAGE_ESYS, "host: cannot make its event descriptor: %s",
                        strerror(errno));
        goto out;
    }
    if ((r = build_command(&h)) != SAGE_OK)
        goto out;
    snprintf(name, sizeof name, "sagesvc host %s", h.id);
    if ((r = open_buckets(&h, name)) != SAGE_OK)
        goto out;
    if ((r = claim(&h)) != SAGE_OK)
        goto out;
    if ((r = sage__host_probe_open(&h)) != SAGE_OK)
        goto out;
    if ((r = sage__host_write_record(&h)) != SAGE_OK)
        goto out;
    if ((r = sage__nio_kv_watch(h.ops.deploy, NULL, sage__host_on_watch, &h, &h.watch)) != SAGE_OK)
        goto out;
    if ((r = sage__host_view_start(&h)) != SAGE_OK)
        goto out;
    h.next_resync_ns = sage__now_ns() + SAGE__RESYNC_MS * MS;
    h.next_beat_ns = sage__now_ns() + SAGE__HEARTBEAT_MS * MS;
    sage__host_log(&h, "up: %g CPUs, %llu bytes of memory offered; pid %d", h.cpus,
                   (unsigned long long)h.memory, (int)getpid());
    for (;;) {
        bool beat;

        if (turn(&h, &p, false))
            break;
        beat = sage__now_ns() >= h.next_beat_ns;
        if (beat && sage__now_ns() >= h.next_resync_ns)
            sage__host_take_changes(&h); /* the periodic full reread */
        if (h.cache_changed || beat) {
            h.cache_changed = false;
            sage__host_reconcile(&h);
        }
        sage__host_reap_groups(&h);
        sage__host_relocate(&h);
        if (beat || h.dirty) {
            sage__host_write_record(&h);
            if (beat)
                h.next_beat_ns = sage__now_ns() + SAGE__HEARTBEAT_MS * MS;
        }
    }
    shutdown_host(&h, &p);
    r = SAGE_OK;
out:
    free(p.fds);
    free(p.owner);
    host_fini(&h);
    return r;
}

