/*
 * cluster.h - "sage-bench cluster": a method call across NATS, made through
 * sagesvc (a SAGE_TRANSPORT_NATS task and a manager with a cluster
 * connection) and through raw nats.c request/reply, against the same
 * nats-server, with the same payload, in the same run.
 *
 * A run measures one impl in one case (call.h's sync or async) in fresh
 * children, with "sage-bench call"'s run (call_run_one): the parent forks
 * the host (the service or the responder) and the caller, each pinned to
 * its own CPU first, opens the go gate, reaps both and calls cleanup; the
 * figures come back through a shared page. The impls are call.h's struct
 * call_impl, both with a host process; the run's url and subject are
 * theirs. The nats-server is one for the whole benchmark
 * (cluster_server.c), unless --nats names one.
 */
#ifndef SAGE_BENCH_CLUSTER_H
#define SAGE_BENCH_CLUSTER_H

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

/* The impls: sagesvc's NATS transport, and raw nats.c. */
extern const struct call_impl cluster_sage_impl;
extern const struct call_impl cluster_nats_impl;
extern const struct call_impl cluster_dedupe_impl; /* sage, the service with cluster dedupe */

/* ---- cluster_server.c: a private nats-server (tests/fixture/natsfix.h) */

/* cluster_server_path returns the nats-server binary (/usr/sbin/nats-server,
 * else the first on PATH), or NULL if none is installed. */
const char *cluster_server_path(void);

/*
 * cluster_server_start starts nats-server (path: the one the fixture finds
 * too) on 127.0.0.1 (a free port, JetStream on, its store and log in a
 * fresh directory under /tmp), unpinned, and waits up to 15 s until it is
 * ready. Its URL goes to url. From here on a signal (SIGINT, SIGTERM,
 * SIGHUP) kills it and removes the directory before the benchmark's own
 * cleanup runs. 0, or -1 with the reason and the log on stderr (nothing
 * left behind).
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

/* ---- cluster_hedge.c: three replicas, one frozen mid-run */

/* The hedge delay of the hedging case, ms. */
#define CLUSTER_HEDGE_MS 10

/* What a hedging run reports. */
struct cluster_hedge_fig {
    bool hedge;     /* hedged calls (hedge_after CLUSTER_HEDGE_MS), or none */
    double p50_us;  /* of the calls that succeeded */
    double p99_us;
    int64_t calls;  /* measured */
    int64_t errors; /* of which failed (timed out) */
    int64_t hedges; /* second attempts sent */
};

/*
 * cluster_hedge_run starts three replicas of the echo service in namespace
 * ns (on host_cpu) and a caller (on caller_cpu) that calls for run_ns (after
 * a warm-up of a sixth of that), freezing replica 1 with SIGSTOP for the
 * middle third; with hedge, its idempotent calls are hedged. 0 with the
 * figures in *out, or -1 with the reason on stderr.
 */
int cluster_hedge_run(const char *url, const char *ns, bool hedge, int64_t run_ns, int caller_cpu,
                      int host_cpu, struct cluster_hedge_fig *out);

/* ---- cluster_print.c: the output */

/* The rows are call.h's struct call_result. */

/* cluster_print_json prints x as one JSON line and flushes it. */
void cluster_print_json(const struct call_result *x);

/* cluster_print_table prints the rows with sage's ratio to nats. */
void cluster_print_table(const struct call_result *res, size_t n);

/* cluster_print_hedge prints the hedging rows (n of them): JSON lines, or a
 * table with the target. */
void cluster_print_hedge(bool json, const struct cluster_hedge_fig *h, size_t n);

/* cluster_print_targets sets the figures beside the targets (table). */
void cluster_print_targets(const struct call_result *res, size_t n);

#endif
