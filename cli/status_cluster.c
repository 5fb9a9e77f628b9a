/* status_cluster.c - sagesvc status --cluster: the replicas' $SRV.STATS. */
#include "status_cluster.h"

#include <stdio.h>
#include <string.h>

#include "common.h"
#include "json.h"
#include "replicas.h"

static void print_table(const struct cli_replicas *l)
{
    printf("%-20s %-22s %-20s %-16s %8s %-9s %10s %8s %10s %-8s %s\n", "NAME", "ID", "HOST_ID",
           "MACHINE", "PID", "STATE", "REQUESTS", "ERRORS", "AVG_US", "DELIVERY", "LAST_ERROR");
    for (size_t i = 0; i < l->n; i++) {
        const struct cli_replica *r = &l->v[i];
        const sage_cluster_instance *x = &r->inst;

        if (r->answered)
            printf("%-20s %-22s %-20s %-16s %8d %-9s %10llu %8llu %10.1f %-8s %s\n", x->name,
                   x->id, r->host_id[0] ? r->host_id : "-", x->host, (int)x->pid, r->state,
                   (unsigned long long)x->requests, (unsigned long long)x->errors, x->average_us,
                   x->durable ? "durable" : "at-most", x->last_error[0] ? x->last_error : "-");
        else /* no figures: it did not answer */
            printf("%-20s %-22s %-20s %-16s %8d %-9s %10s %8s %10s %-8s %s\n", x->name, x->id,
                   r->host_id[0] ? r->host_id : "-", x->host, (int)x->pid, r->state, "-", "-", "-",
                   "-", "(no answer)");
    }
}

/* Builds replica i of the list (arg) as a map in a. */
static sage_err replica_value(sage_arena *a, const void *list, size_t i, sage_value *out)
{
    const struct cli_replica *r = &((const struct cli_replicas *)list)->v[i];
    const sage_cluster_instance *x = &r->inst;

    return sage_pack(out, a,
                     "{s:s s:s s:s s:s s:s s:i s:s s:b s:f s:s s:s s:I s:I s:f s:b s:s s:s}",
                     "name", x->name, "namespace", x->ns, "id", x->id, "host", x->host, "host_id",
                     r->host_id, "pid", (int)x->pid, "state", r->state, "answered", r->answered,
                     "heartbeat_age_s", r->heartbeat_age_s, "started", x->started, "version",
                     x->version, "requests", (int64_t)x->requests, "errors", (int64_t)x->errors,
                     "average_us", x->average_us, "durable", x->durable != 0, "last_error",
                     x->last_error, "subject", x->subject);
}

int cli_status_cluster(const sage_config *cfg, const char *urls, const char *ns, const char *name,
                       int64_t wait_ms, int json)
{
    struct cli_replicas l;
    int status = cli_replicas_collect(cfg, urls, ns, name, wait_ms, &l);

    if (status == CLI_OK && name != NULL && l.n == 0) {
        cli_error(SAGE_ENOSERVICE, "no replica of '%s' in namespace '%s' answered within %lld ms",
                  name, ns, (long long)wait_ms);
        status = CLI_NOSERVICE;
    } else if (status == CLI_OK && json) {
        status = cli_print_items(l.n, 0, replica_value, &l, "printing the status");
    } else if (status == CLI_OK) {
        print_table(&l);
    }
    cli_replicas_free(&l);
    return status;
}
