/*
 * replica.c - one replica of a deployed service: what a host starts for
 * each replica placed on it (`sagesvc replica`, `python3 -m sagesvc
 * replica`, or any program calling sage_cluster_replica_run).
 *
 * Design notes
 * - The deployment's spec carries the deploying configuration's full text,
 *   so a replica serves exactly what was deployed, whatever the files on its
 *   own machine say. The code of the service comes from the caller's
 *   resolver (a C plugin, a built-in, a Python object): the library does
 *   not load code of its own accord.
 * - The replica serves over NATS with the host's connection settings (not
 *   the deploying file's: the host knows how its machine reaches NATS), in
 *   the service's namespace, with its service.local settings, middleware,
 *   config map and delivery.
 * - Once it serves, it tells its host "R<instance id>\n" on the ready
 *   descriptor: the host probes it by that id ($SRV.PING.NAME.ID).
 * - Stopping is the task's: no new calls, every call taken answered, then
 *   the connection closed.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "runtime/manager_internal.h"
#include "runtime/task_internal.h"
#include "transport/nats_serve.h"
#include "sage/cluster.h"
#include "sage/task.h"

struct deployed {
    char *yaml;
    size_t len;
    char *path;
};

static void on_deployment(void *arg, const sage_cluster_deployment *d)
{
    struct deployed *dep = arg;

    free(dep->yaml);
    free(dep->path);
    dep->yaml = malloc(d->config_len + 1);
    dep->path = strdup(d->config_path ? d->config_path : "");
    if (dep->yaml) {
        memcpy(dep->yaml, d->config_yaml, d->config_len);
        dep->yaml[d->config_len] = '\0';
        dep->len = d->config_len;
    }
}

void sage_cluster_replica_opts_init(sage_cluster_replica_opts *o)
{
    memset(o, 0, sizeof *o);
    o->ready_fd = -1;
    o->stop_fd = -1;
}

/* wait_stop blocks until fd is readable or hung up */
static void wait_stop(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    while (poll(&p, 1, -1) < 0 && errno == EINTR)
        ;
}

sage_err sage_cluster_replica_run(const sage_cluster_replica_opts *o)
{
    struct deployed dep = {NULL, 0, NULL};
    const sage_service_conf *sc;
    const sage_service *svc = NULL;
    sage_config *cfg = NULL;
    sage_task *t = NULL;
    sage_err r;

    if (o == NULL || o->nats == NULL || o->ns == NULL || o->service == NULL ||
        o->resolve == NULL || o->stop_fd < 0)
        return SAGE_SETERR(SAGE_EINVAL, "sage_cluster_replica_run: nats, ns, service, resolve "
                                        "and stop_fd are required");
    r = sage_cluster_deployments(o->nats, o->ns, o->service, on_deployment, &dep);
    if (r == SAGE_OK && (dep.yaml == NULL || dep.path == NULL))
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    if (r != SAGE_OK) {
        r = SAGE_SETERR(r, "replica of %s.%s: reading its deployment: %s", o->ns, o->service,
                        sage_errdetail());
        goto out;
    }
    r = sage_config_parse(&cfg, dep.yaml, dep.len, dep.path[0] ? dep.path : NULL);
    if (r != SAGE_OK) {
        r = SAGE_SETERR(r, "replica of %s.%s: the deployed configuration: %s", o->ns, o->service,
                        sage_errdetail());
        goto out;
    }
    if ((sc = sage_config_find(cfg, o->service)) == NULL) {
        r = SAGE_SETERR(SAGE_ECONFIG, "replica of %s.%s: the deployed configuration has no "
                                      "service '%s'",
                        o->ns, o->service, o->service);
        goto out;
    }
    if ((r = o->resolve(o->arg, cfg, sc, &svc)) != SAGE_OK)
        goto out; /* the resolver said why */
    r = sage__task_new_conf(&t, svc, cfg, sc, o->ns, SAGE_TRANSPORT_NATS, o->nats);
    if (r == SAGE_OK)
        r = sage_task_start(t);
    if (r != SAGE_OK) {
        r = SAGE_SETERR(r, "replica of %s.%s cannot serve: %s", o->ns, o->service,
                        sage_errdetail());
        goto out;
    }
    if (o->ready_fd >= 0) {
        /* "R", the instance id its host probes ($SRV.PING.NAME.ID), a
         * newline: one write, so the host reads it whole */
        struct sage__tp_server *srv = NULL;
        sage_transport kind;
        char line[64] = "R\n";
        ssize_t w;

        if (sage__task_server(t, &srv, &kind)) {
            if (kind == SAGE_TRANSPORT_NATS)
                snprintf(line, sizeof line, "R%s\n", sage__nats_instance_id(srv));
            sage__task_server_put(t);
        }
        w = write(o->ready_fd, line, strlen(line)); /* a host that is gone is no error here */
        (void)w;
    }
    wait_stop(o->stop_fd);
    r = sage_task_stop(t);
out:
    sage_task_free(t);
    sage_config_free(cfg);
    free(dep.yaml);
    free(dep.path);
    return r;
}
