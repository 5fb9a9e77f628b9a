/* replicas.h - the cluster's replicas, as they answer $SRV.STATS and as
 * their hosts' records say, and how long to wait for them, for the
 * --cluster views of `sagesvc ls` and `sagesvc status`. */
#ifndef SAGE_CLI_REPLICAS_H
#define SAGE_CLI_REPLICAS_H

#include <stdbool.h>
#include <stddef.h>

#include "sage/cluster.h"
#include "sage/config.h"

/* One replica. A replica that did not answer $SRV.STATS (hung, starting,
 * waiting to restart, or on a host that is down) is listed from its host's
 * record: inst then holds its name, namespace, id, machine and pid only. */
struct cli_replica {
    sage_cluster_instance inst;
    char host_id[SAGE_CLUSTER_HOST_SIZE]; /* the sagesvc host running it, "" if none */
    char state[24];         /* its host's word ("running", "unhealthy", ...), "unknown"
                             * when that host is down, "running" with no host */
    bool answered;          /* it answered $SRV.STATS */
    double heartbeat_age_s; /* since it last proved alive: 0 for an answer, else since
                             * its host last heard from it; -1 if never */
};

struct cli_replicas {
    struct cli_replica *v; /* sorted by namespace, name, host id, machine, id */
    size_t n, cap;
    int failed; /* out of memory while collecting */
};

/*
 * cli_replicas_collect asks the NATS servers urls (comma-separated; NULL:
 * cfg's nats section, cfg may be NULL) for the replicas of namespace ns
 * (NULL: all) and service name (NULL: all) that answer $SRV.STATS within
 * wait_ms, and adds what the hosts' records say of them and of those that
 * did not answer. Returns CLI_OK, or the exit status after printing the
 * error. Free l with cli_replicas_free either way.
 */
int cli_replicas_collect(const sage_config *cfg, const char *urls, const char *ns, const char *name,
                         int64_t wait_ms, struct cli_replicas *l);

void cli_replicas_free(struct cli_replicas *l);

/* How long the --cluster views collect the replicas' answers, without --wait. */
#define CLI_REPLICAS_WAIT_MS 500

/*
 * cli_replicas_wait parses the --wait MS of the --cluster views, 1..60000,
 * into *ms. Returns CLI_OK, or CLI_USAGE after the message for command cmd.
 * (--cluster and --nats are shared options: opts.h.)
 */
int cli_replicas_wait(const char *cmd, const char *arg, long *ms);

/* cli_replica_started_ns parses a replica's start time (ISO-8601, UTC, as
 * in $SRV.STATS) into nanoseconds since the epoch; 0 if it cannot. */
long long cli_replica_started_ns(const sage_cluster_instance *x);

#endif
