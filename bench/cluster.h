/*
 * cluster.h - "sage-bench cluster": a method call across NATS, made through
 * sagesvc (a SAGE_TRANSPORT_NATS task and a manager with a cluster
 * connection) and through raw nats.c request/reply, against the same
 * nats-server, with the same payload, in the same run.
 *
 * A run measures one impl in one case (call.h's sync or async) in fresh
 * children, as "sage-bench call" does: the parent forks the host (the
 * service or the responder) and the caller, each pinned to its own CPU
 * first, opens the go gate, reaps both and calls cleanup; the figures come
 * back through a shared page. The nats-server is one for the whole
 * benchmark (cluster_server.c), unless --nats names one.
 */
#ifndef SAGE_BENCH_CLUSTER_H
#define SAGE_BENCH_CLUSTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "call.h"

/* The raw impl's subject prefix and queue group; sagesvc's are its own
 * ("sage.NS.svc.NAME", group "q"). */
#define CLUSTER_QUEUE_GROUP "q"

/* Longest life of a child (alarm): a full run of one case takes seconds. */
#define CLUSTER_RUN_TIMEOUT_S 40
/* ...and of a child that probes the server or cleans up after the runs */
#define CLUSTER_ERRAND_TIMEOUT_S 10

/* The shared page of a run (MAP_SHARED). */
struct cluster_ctl {
    _Atomic uint32_t go;    /* parent: every name is registered, start */
    _Atomic uint32_t ready; /* host: serving */
    _Atomic uint32_t done;  /* caller: finished, the host may stop */
    struct call_fig fig;    /* written by the caller */
};

/* A run as both children see it. */
struct cluster_run {
    const struct cluster_impl *impl;
    enum call_case kase;
    const struct call_params *par;
    struct cluster_ctl *ctl;
    const char *url;      /* the nats-server, "nats://127.0.0.1:PORT" */
    char ns[64];          /* sage: the namespace, "benchc<pid>" */
    char subject[96];     /* nats: the service's subject, unique to the run */
    int res;              /* bench_res handle of the caller's response queue */
    bool ok;              /* parent, for cleanup: both children exited 0 */
};

/* An impl. Calls return 0 on success, -1 with a message on stderr. */
struct cluster_impl {
    const char *name; /* "sage", "nats" */
    /* parent, after fork, before the go gate: names that need a pid (or NULL) */
    void (*spawned)(struct cluster_run *r, int caller_pid);
    /* host child, after pinning: serve until ctl->done */
    int (*host)(struct cluster_run *r);
    /* caller child, after pinning: measure r->kase into r->ctl->fig */
    int (*caller)(struct cluster_run *r);
    /* parent, after both children have gone (or NULL) */
    void (*cleanup)(struct cluster_run *r);
};

extern const struct cluster_impl cluster_sage_impl;
extern const struct cluster_impl cluster_nats_impl;

/* ---- cluster_server.c: a private nats-server */

/* cluster_server_path returns the nats-server binary (/usr/sbin/nats-server,
 * else the first on PATH), or NULL if none is installed. */
const char *cluster_server_path(void);

/*
 * cluster_server_start starts nats-server on 127.0.0.1 (a port of its own
 * choosing, JetStream on, its store and log in a fresh directory under
 * /tmp), unpinned, and waits up to 10 s until it accepts connections. Its
 * URL goes to url. From here on a signal (SIGINT, SIGTERM, SIGHUP) kills it
 * and removes the directory before the benchmark's own cleanup runs. 0, or
 * -1 with a message naming the log on stderr (nothing left behind).
 */
int cluster_server_start(const char *path, char *url, size_t cap);

/* cluster_server_alive tells whether the private server still runs (true
 * when none was started); the first time it finds the server dead it says
 * so on stderr, with the log's end. */
bool cluster_server_alive(void);

/* cluster_server_stop stops the server (SIGTERM, SIGKILL after 5 s), reaps
 * it and removes its directory. A no-op when none runs. */
void cluster_server_stop(void);

/* ---- cluster_nats.c: raw nats.c, and the one door to <nats/nats.h>
 *
 * Only ever in a child: nats.c's library threads, started on first use, do
 * not survive a fork, so a child forked after the parent used nats.c would
 * wait forever for callbacks (connection closed, timers) that never come. */

/* cluster_nats_probe connects to url and checks JetStream is on: 0, or -1
 * with the reason on stderr. */
int cluster_nats_probe(const char *url);

/* cluster_nats_forget removes the service record of ns.name from sagesvc's
 * registry bucket on the server at url (used with --nats: a private server
 * goes away whole). Best effort; notes a failure. */
void cluster_nats_forget(const char *url, const char *ns, const char *name);

/* ---- cluster_print.c: the output */

/* The rows are call.h's struct call_result. */

/* cluster_print_json prints x as one JSON line and flushes it. */
void cluster_print_json(const struct call_result *x);

/* cluster_print_table prints the rows with sage's ratio to nats. */
void cluster_print_table(const struct call_result *res, size_t n);

/* cluster_print_targets sets the figures beside the targets (table). */
void cluster_print_targets(const struct call_result *res, size_t n);

#endif
