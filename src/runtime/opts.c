/*
 * opts.c - copies of the options a task or manager keeps: what the caller
 * passed is borrowed only during the call that takes it.
 */
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "runtime/manager_internal.h"
#include "sage/config.h"

/* a bump allocator over one block, sized by a first pass */
struct block {
    char *base;
    size_t used, cap;
};

static void *take(struct block *b, size_t n, size_t align)
{
    size_t at = (b->used + align - 1) / align * align;

    b->used = at + n;
    return b->base && b->used <= b->cap ? b->base + at : NULL;
}

static const char *str(struct block *b, const char *s)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = take(b, strlen(s) + 1, 1);
    if (d)
        memcpy(d, s, strlen(s) + 1);
    return d;
}

/* lay_out copies src into b (or, with b->base NULL, only measures) */
static void lay_out(struct block *b, sage_cluster_opts *dst, const sage_cluster_opts *src)
{
    const sage_nats_conf *n = src->nats;
    sage_nats_conf *nc;
    const char **servers;

    *dst = *src;
    if (n == NULL)
        return;
    nc = take(b, sizeof *nc, _Alignof(sage_nats_conf));
    servers = take(b, (n->nservers ? n->nservers : 1) * sizeof *servers, _Alignof(const char *));
    if (nc)
        *nc = *n;
    for (size_t i = 0; i < n->nservers; i++) {
        const char *s = str(b, n->servers[i]);

        if (servers)
            servers[i] = s;
    }
    if (nc) {
        nc->servers = servers;
        nc->name = str(b, n->name);
        nc->user = str(b, n->user);
        nc->password = str(b, n->password);
        nc->token = str(b, n->token);
        nc->creds = str(b, n->creds);
        nc->tls_ca = str(b, n->tls_ca);
        nc->tls_cert = str(b, n->tls_cert);
        nc->tls_key = str(b, n->tls_key);
    } else { /* measuring: count the strings too */
        str(b, n->name);
        str(b, n->user);
        str(b, n->password);
        str(b, n->token);
        str(b, n->creds);
        str(b, n->tls_ca);
        str(b, n->tls_cert);
        str(b, n->tls_key);
    }
    dst->nats = nc;
}

sage_err sage__cluster_opts_copy(sage_cluster_opts *dst, void **memp, const sage_cluster_opts *src)
{
    struct block b = {NULL, 0, 0};
    sage_cluster_opts scratch;

    if (src->nats && src->nats->nservers && src->nats->servers == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "cluster options: nservers without servers");
    lay_out(&b, &scratch, src); /* measure */
    b.cap = b.used;
    b.used = 0;
    b.base = b.cap ? malloc(b.cap) : NULL;
    if (b.cap && b.base == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    lay_out(&b, dst, src);
    *memp = b.base;
    return SAGE_OK;
}

/* --------------------------------------------------- from a configuration */

#define MAX_MIDDLEWARE 32

sage_err sage_task_new_from_conf(sage_task **tp, const sage_service *svc, const sage_config *c,
                                 const sage_service_conf *sc, const char *ns)
{
    sage_transport kind;
    sage_err r;

    if (sc == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_task_new_from_conf: invalid argument");
    if ((r = sage_transport_parse(&kind, sc->transport)) != SAGE_OK)
        return r;
    return sage__task_new_conf(tp, svc, c, sc, ns, kind, NULL);
}

sage_err sage__task_new_conf(sage_task **tp, const sage_service *svc, const sage_config *c,
                             const sage_service_conf *sc, const char *ns, sage_transport kind,
                             const sage_nats_conf *nats)
{
    const sage_middleware *mw[MAX_MIDDLEWARE];
    sage_cluster_opts co;
    sage_arena *a = NULL;
    sage_task_opts o;
    sage_value params = sage_nil();
    size_t index = 0;
    sage_err r;

    if (tp == NULL || svc == NULL || c == NULL || sc == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_task_new_from_conf: invalid argument");
    while (index < sage_config_nservices(c) && sage_config_service(c, index) != sc)
        index++;
    if (index == sage_config_nservices(c))
        return SAGE_SETERR(SAGE_EINVAL, "sage_task_new_from_conf: service '%s' is not of config",
                           sc->name);
    if (sc->nmiddleware > MAX_MIDDLEWARE)
        return SAGE_SETERR(SAGE_ECONFIG, "%s:%d: service '%s': more than %d middleware",
                           sage_config_path(c), sc->line, sc->name, MAX_MIDDLEWARE);
    for (size_t i = 0; i < sc->nmiddleware; i++)
        if ((mw[i] = sage_middleware_find(sc->middleware[i])) == NULL)
            return SAGE_SETERR(SAGE_ECONFIG,
                               "%s:%d: service '%s': unknown middleware '%s' (built in: logging, "
                               "deadline)",
                               sage_config_path(c), sc->line, sc->name, sc->middleware[i]);
    sage_task_opts_init(&o);
    o.name = sc->name;
    o.ns = ns ? ns : sage_config_namespace(c);
    o.transport = kind;
    o.max_workers = sc->local.max_workers;
    o.queue_timeout_ms = sc->local.queue_timeout_ms;
    o.request_queue_size = sc->local.request_queue_size;
    o.error_threshold = sc->local.error_threshold;
    o.middleware = mw;
    o.nmiddleware = sc->nmiddleware;
    o.idempotent = sc->idempotent;
    o.nidempotent = sc->nidempotent;
    if (sage__tp_for(o.transport) != NULL && sage__tp_for(o.transport)->remote) {
        memset(&co, 0, sizeof co);
        co.nats = nats ? nats : sage_config_nats(c);
        co.durable = sc->cluster.durable;
        co.dedupe = sc->cluster.dedupe;
        co.dedupe_ttl_ms = sc->cluster.dedupe_ttl_ms;
        o.cluster = &co;
    }
    if ((r = sage_arena_new(&a, 0)) != SAGE_OK ||
        (r = sage_config_service_params(&params, c, index, a)) != SAGE_OK) {
        sage_arena_free(a);
        return r;
    }
    o.config = &params;
    r = sage_task_new(tp, svc, &o); /* copies everything it keeps */
    sage_arena_free(a);
    return r;
}

void sage_manager_opts_from_conf(sage_manager_opts *o, const sage_config *c)
{
    const sage_call_conf *cc = sage_config_call(c);

    o->ns = sage_config_namespace(c);
    o->timeout_ms = cc->timeout_ms;
    o->retries = cc->retries;
    o->retry_backoff_ms = cc->retry_backoff_ms;
    o->idle_close_ms = cc->idle_close_ms;
    o->hedge_after_ms = cc->hedge_after_ms;
}
