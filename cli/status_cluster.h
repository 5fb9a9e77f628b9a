/* status_cluster.h - the cluster half of `sagesvc status`. */
#ifndef SAGE_CLI_STATUS_CLUSTER_H
#define SAGE_CLI_STATUS_CLUSTER_H

#include <stdint.h>

#include "sage/config.h"

/*
 * cli_status_cluster prints the figures every replica of namespace ns (of
 * service name, or all when NULL) answers to $SRV.STATS within wait_ms, on
 * the NATS servers urls (comma-separated; NULL: cfg's nats section, cfg may
 * be NULL), as a table or a JSON array. Returns the exit status; asking for
 * one service that no replica answers for is CLI_NOSERVICE.
 */
int cli_status_cluster(const sage_config *cfg, const char *urls, const char *ns, const char *name,
                       int64_t wait_ms, int json);

#endif
