/* ops.c - the connection to the operations' buckets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "cluster/ops.h"
#include "platform/clock.h"

sage_err sage__ops_open(struct sage__ops *o, const sage_nats_conf *nats, const char *name,
                        void (*on_event)(void *arg, enum sage__nio_event ev, const char *url),
                        void *arg)
{
    static const struct sage__nio_kv_opts plain = {.history = 1};
    static const struct sage__nio_kv_opts leases = {.history = 1, .ttl_ms = SAGE__LEASE_TTL_MS};
    struct sage__nio_opts no;
    sage_err r;

    memset(o, 0, sizeof *o);
    memset(&no, 0, sizeof no);
    no.conf = nats;
    no.name = name;
    no.on_event = on_event;
    no.arg = arg;
    if ((r = sage__nio_connect(&o->nio, &no)) != SAGE_OK)
        return r;
    if ((r = sage__nio_kv_open(o->nio, SAGE__HOSTS_BUCKET, &plain, &o->hosts)) != SAGE_OK ||
        (r = sage__nio_kv_open(o->nio, SAGE__DEPLOY_BUCKET, &plain, &o->deploy)) != SAGE_OK ||
        (r = sage__nio_kv_open(o->nio, SAGE__LEASES_BUCKET, &leases, &o->leases)) != SAGE_OK ||
        (r = sage__nio_kv_open(o->nio, SAGE__SERVICES_BUCKET, &plain, &o->services)) != SAGE_OK) {
        char why[512];

        /* the detail is formatted into the buffer it comes from: copy it */
        snprintf(why, sizeof why, "%s", sage_errdetail());
        r = SAGE_SETERR(r, "cannot open the cluster's key-value buckets (is JetStream enabled on "
                           "the NATS server?): %s",
                        why);
        sage__ops_close(o);
        return r;
    }
    return SAGE_OK;
}

void sage__ops_close(struct sage__ops *o)
{
    sage__nio_kv_close(o->hosts);
    sage__nio_kv_close(o->deploy);
    sage__nio_kv_close(o->leases);
    sage__nio_kv_close(o->services);
    sage__nio_close(o->nio);
    memset(o, 0, sizeof *o);
}


