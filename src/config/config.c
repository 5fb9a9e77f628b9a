/* config.c - loading a config file, its defaults, and reading it back. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "config/config_internal.h"

/* A config file larger than this is refused rather than read into memory. */
#define MAX_FILE_SIZE (16u << 20)

static const char *const default_servers[] = {SAGE_NATS_DEFAULT_URL};

void sage_local_conf_init(sage_local_conf *c)
{
    c->max_workers = 10;
    c->queue_timeout_ms = 30000;
    c->request_queue_size = 10000;
    c->error_threshold = 0.5;
}

void sage_call_conf_init(sage_call_conf *c)
{
    c->timeout_ms = 30000;
    c->retries = 0;
    c->retry_backoff_ms = 50;
    c->idle_close_ms = 60000;
    c->hedge_after_ms = 0;
}

void sage_cluster_conf_init(sage_cluster_conf *c)
{
    c->cpus = 1.0;
    c->memory = 0;
    c->detached = false;
    c->max_restarts = 3;
    c->replicas = 1;
    c->durable = false;
    c->dedupe = false;
    c->dedupe_ttl_ms = 600000;
    c->replace_after_ms = 10000;
    c->probe_interval_ms = 1000;
    c->probe_timeout_ms = 10000;
}

void sage_nats_conf_init(sage_nats_conf *c)
{
    memset(c, 0, sizeof *c);
    c->servers = default_servers;
    c->nservers = 1;
    c->reconnect_max = 60;
    c->reconnect_wait_ms = 2000;
}

sage_err sage_config_parse(sage_config **cp, const char *text, size_t len, const char *filename)
{
    struct cf_pool pool;
    struct cf_node *root = NULL;
    const char *label = filename != NULL ? filename : "<config>";
    sage_config *c;
    sage_err r;

    if (cp == NULL || (text == NULL && len > 0))
        return SAGE_SETERR(SAGE_EINVAL, "sage_config_parse: NULL argument");
    sage__cf_pool_init(&pool);
    c = sage__cf_alloc(&pool, sizeof *c);
    if (c == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "%s: out of memory", label);
    c->pool = pool; /* from here on, allocate through c->pool only */
    c->ns = "default";
    c->transport = "shm";
    sage_local_conf_init(&c->local);
    sage_call_conf_init(&c->call);
    sage_cluster_conf_init(&c->cluster);
    sage_nats_conf_init(&c->nats);
    r = SAGE_OK;
    if (filename != NULL && (c->path = sage__cf_strndup(&c->pool, filename, strlen(filename))) == NULL)
        r = SAGE_SETERR(SAGE_ENOMEM, "%s: out of memory", label);
    if (r == SAGE_OK)
        r = sage__cf_load(&c->pool, label, text != NULL ? text : "", len, &root);
    if (r == SAGE_OK)
        r = sage__cf_build(c, root, label);
    if (r != SAGE_OK) {
        sage_config_free(c);
        return r;
    }
    *cp = c;
    return SAGE_OK;
}

/* read_file reads all of path into a malloc'ed buffer. Any readable file
 * will do, pipes too (sagesvc run <(generate-config)). */
static sage_err read_file(const char *path, char **bufp, size_t *lenp)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC), e = 0;

    if (fd < 0) {
        e = errno;
        if (e == ENOENT)
            return SAGE_SETERR(SAGE_ENOENT, "%s: no such file", path);
        return SAGE_SETERR(sage__from_errno(e), "%s: cannot open: %s", path, strerror(e));
    }
    for (;;) {
        ssize_t n;

        if (len == cap) {
            char *grown;

            if (cap >= MAX_FILE_SIZE) {
                free(buf);
                close(fd);
                return SAGE_SETERR(SAGE_ECONFIG, "%s: larger than the %u bytes a config may have",
                                   path, MAX_FILE_SIZE);
            }
            cap = cap ? cap * 2 : 16384;
            grown = realloc(buf, cap);
            if (grown == NULL) {
                free(buf);
                close(fd);
                return SAGE_SETERR(SAGE_ENOMEM, "%s: out of memory", path);
            }
            buf = grown;
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            e = errno;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (e != 0) {
        free(buf);
        if (e == EISDIR)
            return SAGE_SETERR(SAGE_ECONFIG, "%s: is a directory", path);
        return SAGE_SETERR(sage__from_errno(e), "%s: cannot read: %s", path, strerror(e));
    }
    *bufp = buf;
    *lenp = len;
    return SAGE_OK;
}

sage_err sage_config_load(sage_config **cp, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    sage_err r;

    if (cp == NULL || path == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_config_load: NULL argument");
    r = read_file(path, &text, &len);
    if (r != SAGE_OK)
        return r;
    r = sage_config_parse(cp, text, len, path);
    free(text);
    return r;
}

void sage_config_free(sage_config *c)
{
    struct cf_pool pool;

    if (c == NULL)
        return;
    pool = c->pool; /* c itself lives in the pool */
    sage__cf_pool_fini(&pool);
}

const char *sage_config_path(const sage_config *c)
{
    return c->path;
}

const char *sage_config_namespace(const sage_config *c)
{
    return c->ns;
}

const char *sage_config_transport(const sage_config *c)
{
    return c->transport;
}

const sage_local_conf *sage_config_local(const sage_config *c)
{
    return &c->local;
}

const sage_call_conf *sage_config_call(const sage_config *c)
{
    return &c->call;
}

const sage_cluster_conf *sage_config_cluster(const sage_config *c)
{
    return &c->cluster;
}

const sage_nats_conf *sage_config_nats(const sage_config *c)
{
    return &c->nats;
}

size_t sage_config_nservices(const sage_config *c)
{
    return c->nservices;
}

const sage_service_conf *sage_config_service(const sage_config *c, size_t i)
{
    return i < c->nservices ? &c->services[i].pub : NULL;
}

const sage_service_conf *sage_config_find(const sage_config *c, const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < c->nservices; i++)
        if (strcmp(c->services[i].pub.name, name) == 0)
            return &c->services[i].pub;
    return NULL;
}
