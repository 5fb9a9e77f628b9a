/*
 * natsopt.h - the NATS connection of the cluster commands (host, deploy,
 * undeploy, replica): --nats URL[,URL...] over the configuration's nats
 * section over the default nats://127.0.0.1:4222.
 */
#ifndef SAGESVC_CLI_NATSOPT_H
#define SAGESVC_CLI_NATSOPT_H

#include <stddef.h>

#include "sage/config.h"
#include "sage/err.h"

/* A NATS connection's settings with the storage its strings need. */
struct cli_nats {
    sage_nats_conf conf;
    char *urls_copy; /* --nats, split in place */
    const char **urls;
};

/*
 * cli_nats_init fills n: servers from urls (comma-separated; NULL: the
 * config's, or the default), everything else from cfg's nats section (cfg
 * may be NULL), then user, password and token from the environment
 * variables SAGESVC_NATS_USER, SAGESVC_NATS_PASSWORD and SAGESVC_NATS_TOKEN
 * when set (how `sagesvc host` hands credentials to its replicas). n
 * borrows cfg's strings: free n first. SAGE_EINVAL (and a cli_fail detail)
 * for an empty URL.
 */
sage_err cli_nats_init(struct cli_nats *n, const char *urls, const sage_config *cfg);

/* cli_nats_fini frees what cli_nats_init allocated. */
void cli_nats_fini(struct cli_nats *n);

/* cli_nats_servers writes the servers, comma-separated, for messages. */
void cli_nats_servers(const struct cli_nats *n, char *buf, size_t cap);

/*
 * cli_read_file reads the whole file at path into a malloc'd buffer (NUL
 * terminated; *lenp excludes it). SAGE_ECONFIG with a cli_fail detail if it
 * cannot be read.
 */
sage_err cli_read_file(const char *path, char **textp, size_t *lenp);

#endif
