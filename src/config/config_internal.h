/* config_internal.h - the sage_config handle, shared by the files of the layer. */
#ifndef SAGE_CONFIG_INTERNAL_H
#define SAGE_CONFIG_INTERNAL_H

#include "config/node.h"
#include "config/pool.h"
#include "sage/config.h"

/* A service as read: its public settings and, for
 * sage_config_service_params, its free-form `config:` mapping. */
struct cf_service {
    sage_service_conf pub;
    const struct cf_node *params; /* a mapping, or NULL when absent or empty */
    const struct cf_node *name_at; /* where the name was written, for messages */
};

/* The handle: everything, the handle included, lives in pool. */
struct sage_config {
    struct cf_pool pool;
    const char *path; /* NULL when parsed without a file name */
    const char *ns;
    const char *transport;
    sage_local_conf local;
    sage_call_conf call;
    sage_cluster_conf cluster;
    sage_nats_conf nats;
    struct cf_service *services;
    size_t nservices;
};

/*
 * sage__cf_build validates the document root (NULL for an empty file) of
 * file against the schema and fills c, whose defaults are already set;
 * everything it keeps is allocated from c->pool. SAGE_ECONFIG with the
 * detail "FILE:LINE:COL: PATH: reason", or SAGE_ENOMEM.
 */
sage_err sage__cf_build(sage_config *c, const struct cf_node *root, const char *file);

#endif
