/*
 * metrics.c - Prometheus text exposition (format 0.0.4) of hosted tasks
 * (`sagesvc run`) or of a host's replicas (`sagesvc host`), served over
 * HTTP by libmicrohttpd. The only file that includes <microhttpd.h>.
 *
 * Every scrape gathers the figures (sage_task_status: lock-free for the
 * task's hot path; or the replicas' answers) and writes the families in a
 * fixed order. The format wants a family's samples together, so the loops
 * run family first, service second. Names of namespaces, services and methods are restricted to
 * [A-Za-z0-9_.-] by the runtime, so escaping is a formality, but it is
 * done as the format says, in case that rule ever loosens.
 */
#include "metrics.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

/* ------------------------------------------------------------ rendering */

struct out {
    char *p;
    size_t len, cap;
    int oom; /* sticky: once memory ran out, the rest is skipped */
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->oom)
        return;
    if (o->p == NULL && (o->p = malloc(o->cap = 16384)) == NULL) {
        o->oom = 1;
        return;
    }
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = (o->cap + (size_t)n + 1) * 2;
        char *p = realloc(o->p, cap);

        if (p == NULL) {
            o->oom = 1;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
}

/* put_label writes name="value" with \, " and newline escaped (format 0.0.4);
 * the runs between escapes go out whole, as names rarely have any */
static void put_label(struct out *o, const char *name, const char *value)
{
    put(o, "%s=\"", name);
    for (const char *s = value; *s;) {
        size_t run = strcspn(s, "\\\"\n");

        if (run > 0) {
            put(o, "%.*s", (int)run, s);
            s += run;
        } else {
            put(o, "%s", *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n");
            s++;
        }
    }
    put(o, "\"");
}

/* put_labels writes {namespace="..",service=".."[,host="..",replica=".."]
 * [,method=".."][,le=".."]} */
static void put_labels(struct out *o, const struct cli_metrics_item *it, const char *method,
                       const char *le)
{
    put(o, "{");
    put_label(o, "namespace", it->ns);
    put(o, ",");
    put_label(o, "service", it->name);
    if (it->host) {
        put(o, ",");
        put_label(o, "host", it->host);
    }
    if (it->replica) {
        put(o, ",");
        put_label(o, "replica", it->replica);
    }
    if (method) {
        put(o, ",");
        put_label(o, "method", method);
    }
    if (le) {
        put(o, ",");
        put_label(o, "le", le);
    }
    put(o, "}");
}

static void put_family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A per-service figure: an integer field of sage_status, or a computed one. */
enum kind { U64, UPTIME, UP, DEGRADED, QUEUE_CAP, WORKERS };

static const struct task_family {
    const char *name, *type, *help;
    enum kind kind;
    size_t off; /* of the uint64_t in sage_status, for U64 */
} task_families[] = {
    {"sagesvc_up", "gauge", "1 if the service is running (or running degraded), else 0.", UP, 0},
    {"sagesvc_degraded", "gauge",
     "1 while the service runs degraded (failing calls or a full queue; sagesvc status says why).",
     DEGRADED, 0},
    {"sagesvc_uptime_seconds", "gauge", "Seconds since the service started.", UPTIME, 0},
    {"sagesvc_in_flight", "gauge", "Calls running now.", U64, offsetof(sage_status, in_flight)},
    {"sagesvc_queue_depth", "gauge", "Requests waiting in the request queue.", U64,
     offsetof(sage_status, queue_depth)},
    {"sagesvc_queue_capacity", "gauge", "Requests the request queue holds (request_queue_size).",
     QUEUE_CAP, 0},
    {"sagesvc_max_workers", "gauge", "Worker threads of the service (max_workers).", WORKERS, 0},
    {"sagesvc_expired_total", "counter",
     "Requests dropped because their caller had given up before they could run.", U64,
     offsetof(sage_status, expired)},
    {"sagesvc_malformed_total", "counter", "Undecodable requests.", U64,
     offsetof(sage_status, malformed)},
    {"sagesvc_rejected_total", "counter", "Calls refused by middleware.", U64,
     offsetof(sage_status, rejected)},
    {"sagesvc_queue_full_total", "counter", "Times a caller found the request queue full.", U64,
     offsetof(sage_status, queue_full)},
    {"sagesvc_service_requests_total", "counter",
     "Calls answered by the service, successfully or not, calls to methods it does not have "
     "included.",
     U64, offsetof(sage_status, requests)},
    {"sagesvc_service_errors_total", "counter",
     "Calls the service answered with an error, calls to methods it does not have included.",
     U64, offsetof(sage_status, errors)},
};

static void put_task_family(struct out *o, const struct task_family *f,
                            const struct cli_metrics_item *items, size_t n)
{
    put_family(o, f->name, f->type, f->help);
    for (size_t i = 0; i < n; i++) {
        const sage_status *st = items[i].st;

        if (st == NULL && f->kind != UP)
            continue; /* it did not answer: only sagesvc_up says so */
        put(o, "%s", f->name);
        put_labels(o, &items[i], NULL, NULL);
        switch (f->kind) {
        case U64:
            put(o, " %llu\n", (unsigned long long)*(const uint64_t *)((const char *)st + f->off));
            break;
        case UPTIME:
            put(o, " %.3f\n", st->uptime_s);
            break;
        case UP:
            put(o, " %d\n", st && (st->state == SAGE_STATE_RUNNING ||
                                  st->state == SAGE_STATE_DEGRADED));
            break;
        case DEGRADED:
            put(o, " %d\n", st->state == SAGE_STATE_DEGRADED);
            break;
        case QUEUE_CAP:
            put(o, " %lu\n", (unsigned long)st->request_queue_size);
            break;
        case WORKERS:
            put(o, " %lu\n", (unsigned long)st->max_workers);
            break;
        }
    }
}

static void put_method_counter(struct out *o, const char *name, const char *help, int errors,
                               const struct cli_metrics_item *items, size_t n)
{
    put_family(o, name, "counter", help);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; items[i].st && j < items[i].st->nmethods; j++) {
            const sage_method_status *m = &items[i].st->methods[j];

            put(o, "%s", name);
            put_labels(o, &items[i], m->name, NULL);
            put(o, " %llu\n", (unsigned long long)(errors ? m->errors : m->requests));
        }
}

static void put_histogram(struct out *o, const struct cli_metrics_item *items, size_t n)
{
    static const char name[] = "sagesvc_call_duration_seconds";
    char le[SAGE_LATENCY_BUCKETS][32]; /* the bounds' labels, the same for every method */

    for (size_t b = 0; b < SAGE_LATENCY_BUCKETS; b++)
        snprintf(le[b], sizeof le[b], "%.9g", sage_latency_bounds[b]);
    put_family(o, name, "histogram", "Run time of calls, by method (queueing not included).");
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; items[i].st && j < items[i].st->nmethods; j++) {
            const sage_method_status *m = &items[i].st->methods[j];

            for (size_t b = 0; b < SAGE_LATENCY_BUCKETS; b++) {
                put(o, "%s_bucket", name);
                put_labels(o, &items[i], m->name, le[b]);
                put(o, " %llu\n", (unsigned long long)m->latency.le[b]);
            }
            put(o, "%s_bucket", name);
            put_labels(o, &items[i], m->name, "+Inf");
            put(o, " %llu\n", (unsigned long long)m->latency.count);
            put(o, "%s_sum", name);
            put_labels(o, &items[i], m->name, NULL);
            put(o, " %.9g\n", m->latency.sum_s);
            put(o, "%s_count", name);
            put_labels(o, &items[i], m->name, NULL);
            put(o, " %llu\n", (unsigned long long)m->latency.count);
        }
}

sage_err cli_metrics_render_items(const struct cli_metrics_item *items, size_t n, char **textp,
                                  size_t *lenp)
{
    struct out o = {0};

    put(&o, "%s", ""); /* allocates: the buffer exists even with nothing to say */
    for (size_t f = 0; f < sizeof task_families / sizeof task_families[0]; f++)
        put_task_family(&o, &task_families[f], items, n);
    put_method_counter(&o, "sagesvc_requests_total", "Calls answered, successfully or not.", 0,
                       items, n);
    put_method_counter(&o, "sagesvc_errors_total", "Calls answered with an error.", 1, items, n);
    put_histogram(&o, items, n);
    if (o.oom) {
        free(o.p);
        return SAGE_ENOMEM;
    }
    *textp = o.p;
    *lenp = o.len;
    return SAGE_OK;
}

sage_err cli_metrics_render(sage_task *const *tasks, size_t n, char **textp, size_t *lenp)
{
    sage_status *sts = calloc(n ? n : 1, sizeof *sts);
    struct cli_metrics_item *items = calloc(n ? n : 1, sizeof *items);
    sage_err r;

    if (sts == NULL || items == NULL) {
        free(sts);
        free(items);
        return SAGE_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (sage_task_status(&sts[i], tasks[i]) != SAGE_OK)
            snprintf(sts[i].name, sizeof sts[i].name, "%s", sage_task_name(tasks[i]));
        items[i].st = &sts[i];
        items[i].ns = sts[i].ns;
        items[i].name = sts[i].name;
    }
    r = cli_metrics_render_items(items, n, textp, lenp);
    free(items);
    free(sts);
    return r;
}

/* ---------------------------------------------------------------- serving */

struct cli_metrics {
    struct MHD_Daemon *d;
    cli_metrics_render_fn render;
    void *arg;
    sage_task **tasks; /* cli_metrics_open's */
    size_t n;
    char url[300];
};

static sage_err render_tasks(void *arg, char **textp, size_t *lenp)
{
    cli_metrics *m = arg;

    return cli_metrics_render(m->tasks, m->n, textp, lenp);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ok;

    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    ok = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ok;
}

/* answer runs on libmicrohttpd's thread. A GET has no body, so it can be
 * answered on the first call for the request. */
static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **req)
{
    cli_metrics *m = cls;
    struct MHD_Response *r;
    enum MHD_Result ok;
    char *text;
    size_t len;

    if (strcmp(url, "/metrics") != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (m->render(m->arg, &text, &len) != SAGE_OK)
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot gather the figures\n");
    r = MHD_create_response_from_buffer_with_free_callback(len, text, free);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    ok = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

/* split_addr parses "HOST:PORT" or "[V6]:PORT" */
static sage_err split_addr(const char *addr, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon = strrchr(addr, ':');
    const char *h = addr;
    size_t hn;
    char *end;
    long p;

    if (colon == NULL || colon == addr)
        return cli_fail(SAGE_EINVAL, "--metrics: expected ADDR:PORT (127.0.0.1:9464), got '%s'", addr);
    hn = (size_t)(colon - addr);
    if (addr[0] == '[') {
        if (colon[-1] != ']')
            return cli_fail(SAGE_EINVAL, "--metrics: expected [IPV6]:PORT, got '%s'", addr);
        h++;
        hn -= 2;
    } else if (memchr(addr, ':', hn) != NULL) {
        return cli_fail(SAGE_EINVAL, "--metrics: write an IPv6 address in brackets: [::1]:PORT");
    }
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno || p < 0 || p > 65535)
        return cli_fail(SAGE_EINVAL, "--metrics: port must be 0..65535, got '%s'", colon + 1);
    if (hn == 0 || hn >= hcap)
        return cli_fail(SAGE_EINVAL, "--metrics: no address before the port in '%s'", addr);
    memcpy(host, h, hn);
    host[hn] = '\0';
    snprintf(port, pcap, "%ld", p);
    return SAGE_OK;
}

sage_err cli_metrics_check(const char *addr)
{
    char host[256], port[16];

    return split_addr(addr, host, sizeof host, port, sizeof port);
}

/* bind_error finds out why the server could not bind: libmicrohttpd only
 * says NULL, so try the same bind once to learn errno */
static int bind_error(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol), e = 0, on = 1;

    if (fd < 0)
        return errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1) != 0)
        e = errno;
    close(fd);
    return e;
}

/* start binds addr and starts serving m (filled but for d and url) */
static sage_err start(cli_metrics *m, const char *addr)
{
    struct addrinfo hints, *ai = NULL;
    const union MHD_DaemonInfo *info;
    char host[256], port[16];
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    sage_err r;
    int g;

    if ((r = split_addr(addr, host, sizeof host, port, sizeof port)) != SAGE_OK)
        return r;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if ((g = getaddrinfo(host, port, &hints, &ai)) != 0)
        return cli_fail(SAGE_EINVAL, "--metrics: cannot resolve '%s': %s", host, gai_strerror(g));
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* the first address only: the endpoint listens exactly where asked */
    m->d = MHD_start_daemon(flags, 0, NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (m->d == NULL) {
        int e = bind_error(ai);

        freeaddrinfo(ai);
        return cli_fail(SAGE_ESYS, "cannot serve metrics on %s: %s", addr,
                        e ? strerror(e) : "libmicrohttpd refused to start");
    }
    freeaddrinfo(ai);
    info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(m->url, sizeof m->url, "http://%s%s%s:%u/metrics", strchr(host, ':') ? "[" : "", host,
             strchr(host, ':') ? "]" : "", info ? (unsigned)info->port : 0u);
    return SAGE_OK;
}

sage_err cli_metrics_open_fn(cli_metrics **mp, const char *addr, cli_metrics_render_fn render,
                             void *arg)
{
    cli_metrics *m = calloc(1, sizeof *m);
    sage_err r;

    if (m == NULL)
        return SAGE_ENOMEM;
    m->render = render;
    m->arg = arg;
    if ((r = start(m, addr)) != SAGE_OK) {
        free(m);
        return r;
    }
    *mp = m;
    return SAGE_OK;
}

sage_err cli_metrics_open(cli_metrics **mp, const char *addr, sage_task *const *tasks, size_t n)
{
    cli_metrics *m = calloc(1, sizeof *m);
    sage_err r;

    if (m == NULL || (m->tasks = calloc(n ? n : 1, sizeof *m->tasks)) == NULL) {
        free(m);
        return SAGE_ENOMEM;
    }
    memcpy(m->tasks, tasks, n * sizeof *tasks);
    m->n = n;
    m->render = render_tasks;
    m->arg = m;
    if ((r = start(m, addr)) != SAGE_OK) {
        free(m->tasks);
        free(m);
        return r;
    }
    *mp = m;
    return SAGE_OK;
}

const char *cli_metrics_url(const cli_metrics *m)
{
    return m->url;
}

void cli_metrics_close(cli_metrics *m)
{
    if (m == NULL)
        return;
    MHD_stop_daemon(m->d);
    free(m->tasks);
    free(m);
}
