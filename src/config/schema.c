/*
 * schema.c - what a sagesvc config file may say, and what it means.
 *
 * The sections are tables of typed fields (fields.h) laid over the public
 * structs; the few keys that need more than a type and a range (byte sizes,
 * server lists, plugins, the services themselves) have readers here. Global
 * sections are read first, whatever their order in the file, so that every
 * service starts from them and applies its own overrides field by field.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "config/config_internal.h"
#include "config/fields.h"
#include "config/scalar.h"

static const char *const transports[] = {"local", "shm", "nats", NULL};
static const char *const lifetimes[] = {"owned", "detached", NULL};
static const char *const deliveries[] = {"at_most_once", "durable", NULL};
static const char *const dedupes[] = {"none", "cluster", NULL};

#define FIELD(k, fn, type, member) \
    {.key = (k), .read = (fn), .off = offsetof(type, member)}
#define INT(k, fn, type, member, lo_, hi_) \
    {.key = (k), .read = (fn), .off = offsetof(type, member), .lo = (lo_), .hi = (hi_)}
#define NUM(k, type, member, lo_, hi_, open_)                                     \
    {.key = (k), .read = sage__cf_read_num, .off = offsetof(type, member), .lo = (lo_), \
     .hi = (hi_), .lo_open = (open_)}
#define MS(k, type, member, lo_, hi_, open_)                                      \
    {.key = k, .read = sage__cf_read_ms, .off = offsetof(type, member), .lo = lo_, .hi = hi_, \
     .lo_open = open_}
#define WORDS(k, fn, type, member, list) \
    {.key = (k), .read = (fn), .off = offsetof(type, member), .words = (list)}
#define SECTION(k, alias_, type, member, table) \
    {.key = (k), .alias = (alias_), .read = sage__cf_read_section, .off = offsetof(type, member), \
     .sub = (table)}
#define END {.key = NULL}

/* ------------------------------------------------------------ readers */

static sage_err read_memory(struct cf_walk *w, const struct cf_node *v, const struct cf_field *f,
                            void *dst)
{
    struct cf_scalar s;
    uint64_t bytes = 0;
    int ok = 0;
    char got[80];

    sage__cf_resolve(v, &s);
    if (s.type == CF_INT && s.i >= 0) {
        bytes = (uint64_t)s.i;
        ok = 1;
    } else if (s.type == CF_FLOAT && s.d >= 0 && s.d < 18446744073709551616.0 &&
               s.d == (double)(uint64_t)s.d) {
        bytes = (uint64_t)s.d;
        ok = 1;
    } else if (s.type == CF_STR && v->kind == CF_SCALAR && strlen(v->str) == v->len) {
        ok = sage__cf_parse_size(v->str, &bytes) == 0;
    }
    if (!ok)
        return sage__cf_error(w, v,
                              "expected a byte count (an integer, or a number with a unit: B, KB, "
                              "MB, GB, TB, KiB, MiB, GiB, TiB), got %s",
                              sage__cf_describe(v, got, sizeof got));
    *(uint64_t *)sage__cf_at(dst, f) = bytes;
    return SAGE_OK;
}

/* read_probe_interval: seconds in lo..hi, or 0 (no probes) */
static sage_err read_probe_interval(struct cf_walk *w, const struct cf_node *v,
                                    const struct cf_field *f, void *dst)
{
    struct cf_scalar s;
    char got[80];

    sage__cf_resolve(v, &s);
    if ((s.type == CF_INT && s.i == 0) || (s.type == CF_FLOAT && s.d == 0)) {
        *(int64_t *)sage__cf_at(dst, f) = 0;
        return SAGE_OK;
    }
    if ((s.type == CF_INT || s.type == CF_FLOAT) &&
        (s.type == CF_INT ? (double)s.i : s.d) >= f->lo &&
        (s.type == CF_INT ? (double)s.i : s.d) <= f->hi)
        return sage__cf_read_ms(w, v, f, dst);
    return sage__cf_error(w, v, "expected 0 (no probes) or a number in %g..%g, got %s", f->lo,
                          f->hi, sage__cf_describe(v, got, sizeof got));
}

static int is_url(const struct cf_node *v)
{
    if (v->kind != CF_SCALAR || v->len == 0)
        return 0;
    for (size_t i = 0; i < v->len; i++)
        if ((unsigned char)v->str[i] <= ' ')
            return 0;
    return 1;
}

/* read_servers takes one URL or a non-empty sequence of them. */
static sage_err read_servers(struct cf_walk *w, const struct cf_node *v, const struct cf_field *f,
                             void *dst)
{
    sage_nats_conf *nats = dst;
    const char **urls;
    char got[80];
    size_t n = v->kind == CF_SEQ ? v->n : 1, i = 0;

    (void)f;
    if (v->kind == CF_MAP || (v->kind == CF_SEQ && v->n == 0) ||
        (v->kind == CF_SCALAR && sage__cf_is_null(v)))
        return sage__cf_error(w, v, "expected a server URL or a non-empty sequence of them, got %s",
                              v->kind == CF_SEQ ? "an empty sequence"
                                                : sage__cf_describe(v, got, sizeof got));
    urls = sage__cf_alloc(w->pool, n * sizeof *urls);
    if (urls == NULL)
        return sage__cf_nomem(w);
    for (const struct cf_node *u = v->kind == CF_SEQ ? v->first : v; i < n; u = u->next, i++) {
        size_t mark = v->kind == CF_SEQ ? sage__cf_push_index(w, i) : w->plen;
        sage_err r;

        if (!is_url(u))
            r = sage__cf_error(w, u, "expected a server URL (no spaces), got %s",
                               sage__cf_describe(u, got, sizeof got));
        else
            r = sage__cf_string(w, u, "a server URL", &urls[i]);
        sage__cf_pop(w, mark);
        if (r != SAGE_OK)
            return r;
    }
    nats->servers = urls;
    nats->nservers = n;
    return SAGE_OK;
}

static sage_err read_plugin(struct cf_walk *w, const struct cf_node *v, const struct cf_field *f,
                            void *dst)
{
    char got[80];
    const char **out = sage__cf_at(dst, f);

    if (v->kind == CF_SCALAR && v->len > 0 && !sage__cf_is_null(v) &&
        (memchr(v->str, '/', v->len) != NULL ||
         (v->len > 3 && memcmp(v->str + v->len - 3, ".so", 3) == 0)))
        return sage__cf_string(w, v, "a plugin path", out);
    if (v->kind == CF_SCALAR && v->len > 0 && v->len <= SAGE_NAME_MAX &&
        strspn(v->str, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") ==
            v->len)
        return sage__cf_string(w, v, "a plugin name", out);
    return sage__cf_error(w, v,
                          "expected a plugin path (containing '/' or ending in .so) or a plugin "
                          "name of [A-Za-z0-9_-], got %s",
                          sage__cf_describe(v, got, sizeof got));
}

/* dotted tells whether the n bytes at p are identifiers joined by dots */
static bool dotted(const char *p, size_t n)
{
    bool start = true;

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];

        if (ch == '.') {
            if (start)
                return false; /* an empty part */
            start = true;
        } else if (ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                   (!start && ch >= '0' && ch <= '9')) {
            start = false;
        } else {
            return false;
        }
    }
    return !start;
}

/* read_python reads "package.module:factory": a Python service */
static sage_err read_python(struct cf_walk *w, const struct cf_node *v, const struct cf_field *f,
                            void *dst)
{
    const char **out = sage__cf_at(dst, f);
    const char *colon = v->kind == CF_SCALAR ? memchr(v->str, ':', v->len) : NULL;
    char got[80];

    if (colon != NULL && v->len <= 256 && dotted(v->str, (size_t)(colon - v->str)) &&
        dotted(colon + 1, v->len - (size_t)(colon - v->str) - 1))
        return sage__cf_string(w, v, "a Python factory", out);
    return sage__cf_error(w, v, "expected a Python factory as package.module:callable, got %s",
                          sage__cf_describe(v, got, sizeof got));
}

/* read_names reads a sequence of names (what: "middleware", "method") into
 * a pool array; the count to *np */
static sage_err read_names(struct cf_walk *w, const struct cf_node *v, const char *what,
                           const char *const **outp, size_t *np)
{
    const char **names;
    char got[80];
    size_t i = 0;

    if (sage__cf_is_null(v))
        return SAGE_OK;
    if (v->kind != CF_SEQ)
        return sage__cf_error(w, v, "expected a sequence of %s names, got %s", what,
                              sage__cf_describe(v, got, sizeof got));
    names = sage__cf_alloc(w->pool, (v->n ? v->n : 1) * sizeof *names);
    if (names == NULL)
        return sage__cf_nomem(w);
    for (const struct cf_node *m = v->first; m != NULL; m = m->next, i++) {
        size_t mark = sage__cf_push_index(w, i);
        sage_err r = sage__cf_name(w, m, &names[i]);

        sage__cf_pop(w, mark);
        if (r != SAGE_OK)
            return r;
    }
    *outp = names;
    *np = v->n;
    return SAGE_OK;
}

static sage_err read_middleware(struct cf_walk *w, const struct cf_node *v,
                                const struct cf_field *f, void *dst)
{
    sage_service_conf *s = &((struct cf_service *)dst)->pub;

    (void)f;
    return read_names(w, v, "middleware", &s->middleware, &s->nmiddleware);
}

static sage_err read_idempotent(struct cf_walk *w, const struct cf_node *v,
                                const struct cf_field *f, void *dst)
{
    sage_service_conf *s = &((struct cf_service *)dst)->pub;

    (void)f;
    return read_names(w, v, "method", &s->idempotent, &s->nidempotent);
}

/* check_numbers refuses numbers in free-form data that no sage_value holds. */
static sage_err check_numbers(struct cf_walk *w, const struct cf_node *n)
{
    struct cf_scalar s;
    char got[80];
    size_t i = 0;

    if (n->kind == CF_SCALAR) {
        sage__cf_resolve(n, &s);
        if (s.type == CF_BIG)
            return sage__cf_error(w, n,
                                  "number %s is out of range (integers are 64-bit, floats double)",
                                  sage__cf_describe(n, got, sizeof got));
        return SAGE_OK;
    }
    for (const struct cf_node *c = n->first; c != NULL; c = c->next, i++) {
        size_t mark = n->kind == CF_MAP ? sage__cf_push_key(w, c->key->str)
                                        : sage__cf_push_index(w, i);
        sage_err r = check_numbers(w, c);

        sage__cf_pop(w, mark);
        if (r != SAGE_OK)
            return r;
    }
    return SAGE_OK;
}

static sage_err read_params(struct cf_walk *w, const struct cf_node *v, const struct cf_field *f,
                            void *dst)
{
    char got[80];
    sage_err r;

    (void)f;
    if (sage__cf_is_null(v))
        return SAGE_OK;
    if (v->kind != CF_MAP)
        return sage__cf_error(w, v, "expected a mapping, got %s",
                              sage__cf_describe(v, got, sizeof got));
    r = check_numbers(w, v);
    if (r == SAGE_OK)
        ((struct cf_service *)dst)->params = v;
    return r;
}

static sage_err read_service_name(struct cf_walk *w, const struct cf_node *v,
                                  const struct cf_field *f, void *dst)
{
    struct cf_service *s = dst;

    (void)f;
    s->name_at = v;
    return sage__cf_name(w, v, &s->pub.name);
}

/* read_services only checks the shape: the services are read once the
 * global sections they start from are known (read_all_services). */
static sage_err read_services(struct cf_walk *w, const struct cf_node *v, const struct cf_field *f,
                              void *dst)
{
    char got[80];

    (void)f;
    (void)dst;
    if (v->kind == CF_SEQ || sage__cf_is_null(v))
        return SAGE_OK;
    return sage__cf_error(w, v, "expected a sequence of services, got %s",
                          sage__cf_describe(v, got, sizeof got));
}

/* ------------------------------------------------------------- tables */

/* The keys of service.local, which a service also takes at its own top
 * level: LOCAL(base) lays them over a sage_local_conf base bytes into the
 * destination, one definition for both places. */
#define LOCAL(base)                                                                         \
    {.key = "max_workers", .read = sage__cf_read_u32,                                       \
     .off = (base) + offsetof(sage_local_conf, max_workers), .lo = 1, .hi = 1024},          \
    {.key = "queue_timeout", .read = sage__cf_read_ms,                                      \
     .off = (base) + offsetof(sage_local_conf, queue_timeout_ms), .lo = 0, .hi = 86400},    \
    {.key = "request_queue_size", .read = sage__cf_read_u32,                                \
     .off = (base) + offsetof(sage_local_conf, request_queue_size), .lo = 1, .hi = 8388607}, \
    {.key = "error_threshold", .read = sage__cf_read_num,                                   \
     .off = (base) + offsetof(sage_local_conf, error_threshold), .lo = 0, .hi = 1}

static const struct cf_field local_fields[] = {
    LOCAL(0),
    END,
};

static const struct cf_field call_fields[] = {
    MS("timeout", sage_call_conf, timeout_ms, 0, 86400, 1),
    INT("retries", sage__cf_read_u32, sage_call_conf, retries, 0, 100),
    MS("retry_backoff", sage_call_conf, retry_backoff_ms, 0, 60, 0),
    MS("idle_close", sage_call_conf, idle_close_ms, 0, 86400, 0),
    MS("hedge_after", sage_call_conf, hedge_after_ms, 0, 86400, 0),
    END,
};

static const struct cf_field resource_fields[] = {
    NUM("CPU", sage_cluster_conf, cpus, 0, 65536, 1),
    FIELD("memory", read_memory, sage_cluster_conf, memory),
    END,
};

static const struct cf_field cluster_fields[] = {
    {.key = "resources", .read = sage__cf_read_section, .off = 0, .sub = resource_fields},
    WORDS("lifetime", sage__cf_read_flag, sage_cluster_conf, detached, lifetimes),
    INT("max_restarts", sage__cf_read_u32, sage_cluster_conf, max_restarts, 0, 1000),
    INT("replicas", sage__cf_read_u32, sage_cluster_conf, replicas, 1, 1000),
    WORDS("delivery", sage__cf_read_flag, sage_cluster_conf, durable, deliveries),
    WORDS("dedupe", sage__cf_read_flag, sage_cluster_conf, dedupe, dedupes),
    MS("dedupe_ttl", sage_cluster_conf, dedupe_ttl_ms, 1, 2592000, 0),
    MS("replace_after", sage_cluster_conf, replace_after_ms, 5, 86400, 0),
    {.key = "probe_interval", .read = read_probe_interval,
     .off = offsetof(sage_cluster_conf, probe_interval_ms), .lo = 0.05, .hi = 3600},
    MS("probe_timeout", sage_cluster_conf, probe_timeout_ms, 0.1, 3600, 0),
    END,
};

static const struct cf_field service_fields[] = {
    SECTION("local", NULL, struct sage_config, local, local_fields),
    SECTION("cluster", "ray", struct sage_config, cluster, cluster_fields),
    SECTION("call", NULL, struct sage_config, call, call_fields),
    END,
};

static const struct cf_field tls_fields[] = {
    FIELD("ca", sage__cf_read_str, sage_nats_conf, tls_ca),
    FIELD("cert", sage__cf_read_str, sage_nats_conf, tls_cert),
    FIELD("key", sage__cf_read_str, sage_nats_conf, tls_key),
    END,
};

static const struct cf_field reconnect_fields[] = {
    INT("max", sage__cf_read_i32, sage_nats_conf, reconnect_max, -1, 1000000),
    MS("wait", sage_nats_conf, reconnect_wait_ms, 0, 3600, 0),
    END,
};

static const struct cf_field nats_fields[] = {
    {.key = "servers", .read = read_servers},
    FIELD("name", sage__cf_read_str, sage_nats_conf, name),
    FIELD("user", sage__cf_read_str, sage_nats_conf, user),
    FIELD("password", sage__cf_read_str, sage_nats_conf, password),
    FIELD("token", sage__cf_read_str, sage_nats_conf, token),
    FIELD("creds", sage__cf_read_str, sage_nats_conf, creds),
    {.key = "tls", .read = sage__cf_read_section, .off = 0, .sub = tls_fields},
    {.key = "reconnect", .read = sage__cf_read_section, .off = 0, .sub = reconnect_fields},
    INT("replicas", sage__cf_read_i32, sage_nats_conf, replicas, 0, 5),
    END,
};

static const struct cf_field top_fields[] = {
    FIELD("namespace", sage__cf_read_name, struct sage_config, ns),
    WORDS("transport", sage__cf_read_choice, struct sage_config, transport, transports),
    SECTION("nats", NULL, struct sage_config, nats, nats_fields),
    {.key = "service", .read = sage__cf_read_section, .off = 0, .sub = service_fields},
    {.key = "services", .read = read_services},
    END,
};

static const struct cf_field one_service_fields[] = {
    {.key = "name", .read = read_service_name},
    FIELD("plugin", read_plugin, struct cf_service, pub.plugin),
    FIELD("python", read_python, struct cf_service, pub.python),
    WORDS("transport", sage__cf_read_choice, struct cf_service, pub.transport, transports),
    LOCAL(offsetof(struct cf_service, pub.local)),
    SECTION("cluster", "ray", struct cf_service, pub.cluster, cluster_fields),
    {.key = "middleware", .read = read_middleware},
    {.key = "idempotent", .read = read_idempotent},
    {.key = "config", .read = read_params},
    END,
};

/* ------------------------------------------------------ cross-checks */

/* need refuses key a of map given without key b. */
static sage_err need(struct cf_walk *w, const struct cf_node *map, const char *a, const char *b)
{
    const struct cf_node *va = sage__cf_get(map, a);
    size_t mark;
    sage_err r;

    if (va == NULL || sage__cf_get(map, b) != NULL)
        return SAGE_OK;
    mark = sage__cf_push_key(w, a);
    r = sage__cf_error(w, va, "'%s' needs '%s' beside it", a, b);
    sage__cf_pop(w, mark);
    return r;
}

static sage_err check_nats(struct cf_walk *w, const struct cf_node *nats)
{
    const struct cf_node *token = sage__cf_get(nats, "token");
    size_t mark = sage__cf_push_key(w, "nats");
    sage_err r = need(w, nats, "user", "password");

    if (r == SAGE_OK)
        r = need(w, nats, "password", "user");
    if (r == SAGE_OK && token != NULL && sage__cf_get(nats, "user") != NULL) {
        size_t m = sage__cf_push_key(w, "token");

        r = sage__cf_error(w, token, "'token' and 'user'/'password' exclude each other");
        sage__cf_pop(w, m);
    }
    if (r == SAGE_OK) {
        const struct cf_node *tls = sage__cf_get(nats, "tls");
        size_t m = sage__cf_push_key(w, "tls");

        r = need(w, tls, "cert", "key");
        if (r == SAGE_OK)
            r = need(w, tls, "key", "cert");
        sage__cf_pop(w, m);
    }
    sage__cf_pop(w, mark);
    return r;
}

/* ----------------------------------------------------------- services */

static sage_err read_one_service(struct cf_walk *w, sage_config *c, const struct cf_node *v,
                                 struct cf_service *s)
{
    char got[80];
    sage_err r;

    s->pub.transport = c->transport;
    s->pub.local = c->local;
    s->pub.cluster = c->cluster;
    s->pub.line = v->line;
    if (v->kind != CF_MAP)
        return sage__cf_error(w, v, "expected a mapping describing a service, got %s",
                              sage__cf_describe(v, got, sizeof got));
    r = sage__cf_walk_map(w, v, one_service_fields, s);
    if (r == SAGE_OK && s->pub.name == NULL)
        r = sage__cf_error(w, v, "missing key 'name'");
    if (r == SAGE_OK && s->pub.plugin == NULL && s->pub.python == NULL)
        r = sage__cf_error(w, v, "missing key 'plugin' (a C service) or 'python' (a Python one)");
    if (r == SAGE_OK && s->pub.plugin != NULL && s->pub.python != NULL)
        r = sage__cf_error(w, v, "'plugin' and 'python' exclude each other: a service is one or "
                                 "the other");
    return r;
}

static sage_err read_all_services(struct cf_walk *w, sage_config *c, const struct cf_node *seq)
{
    size_t i = 0;

    if (seq == NULL || seq->kind != CF_SEQ || seq->n == 0)
        return SAGE_OK;
    c->services = sage__cf_alloc(&c->pool, seq->n * sizeof *c->services);
    if (c->services == NULL)
        return sage__cf_nomem(w);
    for (const struct cf_node *v = seq->first; v != NULL; v = v->next, i++) {
        struct cf_service *s = &c->services[i];
        size_t mark = sage__cf_push_key(w, "services");
        sage_err r;

        sage__cf_push_index(w, i);
        r = read_one_service(w, c, v, s);
        for (size_t j = 0; r == SAGE_OK && j < i; j++) {
            if (strcmp(c->services[j].pub.name, s->pub.name) == 0) {
                sage__cf_push_key(w, "name");
                r = sage__cf_error(w, s->name_at, "duplicate service name '%s' (first at line %d)",
                                   s->pub.name, c->services[j].name_at->line);
            }
        }
        sage__cf_pop(w, mark);
        if (r != SAGE_OK)
            return r;
        c->nservices = i + 1;
    }
    return SAGE_OK;
}

sage_err sage__cf_build(sage_config *c, const struct cf_node *root, const char *file)
{
    struct cf_walk w;
    char got[80];
    sage_err r;

    sage__cf_walk_init(&w, file, &c->pool);
    if (root == NULL)
        return SAGE_OK;
    r = sage__cf_check(&w, root);
    if (r != SAGE_OK || sage__cf_is_null(root))
        return r;
    if (root->kind != CF_MAP)
        return sage__cf_error(&w, root, "expected a mapping at the top level, got %s",
                              sage__cf_describe(root, got, sizeof got));
    r = sage__cf_walk_map(&w, root, top_fields, c);
    if (r == SAGE_OK)
        r = check_nats(&w, sage__cf_get(root, "nats"));
    if (r == SAGE_OK)
        r = read_all_services(&w, c, sage__cf_get(root, "services"));
    return r;
}
