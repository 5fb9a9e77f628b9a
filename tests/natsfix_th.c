/* natsfix_th.c - the nats-server fixture with the harness's failure handling. */
#include "natsfix_th.h"

#include <stdio.h>
#include <string.h>

#include "harness.h"

void natsfix_start(struct natsfix *f, int n, const char *auth)
{
    char dir[128], err[512];
    int r;

    if (!sage_cluster_supported())
        th_skip("cluster support is not built in (SAGE_WITH_NATS=OFF)");
    snprintf(dir, sizeof dir, "/tmp/sagesvc-nats-%s", th_prefix());
    r = natsfix_open(f, n, auth, dir, err, sizeof err);
    if (r == NATSFIX_MISSING)
        th_skip("nats-server is not installed");
    if (r != 0)
        th_fail(__FILE__, __LINE__, "natsfix: %s", err);
}

void natsfix_restart(struct natsfix *f, int i)
{
    char err[512];

    if (natsfix_revive(f, i, err, sizeof err) != 0) {
        natsfix_show_log(f, i, stderr);
        th_fail(__FILE__, __LINE__, "natsfix: %s", err);
    }
}

void natsfix_stop(struct natsfix *f)
{
    natsfix_close(f);
}

void natsfix_conf(struct natsfix *f, sage_nats_conf *c, int first)
{
    static _Thread_local const char *order[NATSFIX_MAX];
    int k = 0;

    memset(c, 0, sizeof *c);
    if (first >= 0)
        order[k++] = f->urls[first];
    for (int i = 0; i < f->n; i++)
        if (i != first)
            order[k++] = f->urls[i];
    c->servers = order;
    c->nservers = (size_t)f->n;
    c->reconnect_max = -1;
    c->reconnect_wait_ms = 200;
    if (f->auth[0]) {
        static _Thread_local char user[64], pass[64];

        sscanf(f->auth, "%63[^:]:%63s", user, pass);
        c->user = user;
        c->password = pass;
    }
}

sage_manager *natsfix_manager(struct natsfix *f, int first, double timeout, sage_nats_conf *nc,
                              sage_cluster_opts *co)
{
    sage_manager_opts mo;
    sage_manager *m;

    natsfix_conf(f, nc, first);
    memset(co, 0, sizeof *co);
    co->nats = nc;
    sage_manager_opts_init(&mo);
    mo.ns = th_prefix();
    mo.timeout_ms = (int64_t)(timeout * 1000);
    mo.cluster = co;
    ASSERT_OK(sage_manager_new(&m, &mo));
    return m;
}
