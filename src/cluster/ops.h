/*
 * ops.h - what the cluster operations share: the three buckets, their
 * records (JSON, through jansson), the compare-and-set loop on them and the
 * timings. sage/cluster.h describes the records' fields.
 *
 * JSON on buckets (reads, writes, compare-and-set) is transport/natskv.h's.
 * Files: ops.c (connection), hostrec.c (host records and
 * reservations), spec.c (deployment specs, service records), place.c (placement), deploy.c
 * and undeploy.c (the public calls), await.c (waiting on a bucket's records),
 * info.c (listings), lease.c, and the host daemon (host.h): host.c (the
 * loop), hostspecs.c (deployments to run), hostbeat.c (its record),
 * supervise.c (replica slots: start, restart, give up, stop); replica
 * processes are spawned through platform/spawn.h.
 */
#ifndef SAGE_CLUSTER_OPS_H
#define SAGE_CLUSTER_OPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "transport/natsio.h"
#include "transport/natskv.h"
#include "sage/cluster.h"

#define SAGE__HOSTS_BUCKET "sagesvc_hosts"
#define SAGE__DEPLOY_BUCKET "sagesvc_deploy"
#define SAGE__LEASES_BUCKET "sagesvc_leases"

#define SAGE__LEASE_TTL_MS 15000     /* a lease lapses this long after its last write: longer
                                      * than a JetStream leader election (seconds) */
#define SAGE__LEASE_REFRESH_MS 1000  /* its owner rewrites it this often */
#define SAGE__HEARTBEAT_MS 1000      /* a host rewrites its record this often */
#define SAGE__HOST_STALE_MS 5000     /* a host silent this long is down */
#define SAGE__PLACING_STALE_MS 60000 /* a deployment placing this long was abandoned */
#define SAGE__PENDING_MS 30000       /* a reservation not yet in its spec's placement is
                                      * kept this long (its placer may still commit it) */
#define SAGE__REPLACE_AFTER_MS 10000 /* defaults of a spec without them (older ones) */
#define SAGE__PROBE_INTERVAL_MS 1000
#define SAGE__PROBE_TIMEOUT_MS 10000

/* A connection with the buckets open (each created if missing). */
struct sage__ops {
    struct sage__nio *nio;
    struct sage__nio_kv *hosts;
    struct sage__nio_kv *deploy;
    struct sage__nio_kv *leases;
    struct sage__nio_kv *services;
};

/* sage__ops_open connects (name labels the connection) and opens every
 * bucket; on_event/arg as in sage__nio_opts (may be NULL). */
sage_err sage__ops_open(struct sage__ops *o, const sage_nats_conf *nats, const char *name,
                        void (*on_event)(void *arg, enum sage__nio_event ev, const char *url),
                        void *arg);

/* sage__ops_close closes what sage__ops_open opened; o may be half open. */
void sage__ops_close(struct sage__ops *o);


/* ----------------------------------------------------- hostrec.c: hosts */

/*
 * sage__hostrec_modify changes host id's record with sage__kv_modify (fn as
 * there); reserved totals are recomputed from "reservations" before each
 * write.
 */
typedef sage__kv_modify_fn sage__hostrec_fn;
sage_err sage__hostrec_modify(struct sage__nio_kv *hosts, const char *id, sage__hostrec_fn fn,
                              void *arg);

/* sage__hostrec_modify_cached is sage__hostrec_modify starting from
 * *cachep at revision *revp (the caller's last write, NULL: none) instead
 * of a read: the host's heartbeat costs one round trip while nobody else
 * writes its record. Updates both after a write. */
sage_err sage__hostrec_modify_cached(struct sage__nio_kv *hosts, const char *id,
                                     sage__hostrec_fn fn, void *arg, json_t **cachep,
                                     uint64_t *revp);

/* sage__hostrec_alive: the record's heartbeat is at most 5 s old. */
bool sage__hostrec_alive(const json_t *rec, int64_t now_ms);

/* sage__replica_count: what live hosts' records (hosts: id -> record) list
 * of deployment deploy: replicas running and failed of generation gen or
 * newer (0: any; a record without one is generation 1), and every other. */
struct sage__replica_count {
    int64_t running, failed, other;
};
struct sage__replica_count sage__replica_count(const json_t *hosts, const char *deploy,
                                               int64_t gen, int64_t now_ms);

/* sage__hostrec_free_cpus / _free_memory: offered minus reserved. */
double sage__hostrec_free_cpus(const json_t *rec);
int64_t sage__hostrec_free_memory(const json_t *rec);

/* sage__hostrec_totals recomputes reserved_cpus and reserved_memory. */
void sage__hostrec_totals(json_t *rec);

/* sage__hostrec_reserve adds one replica of cpus and memory to the
 * reservation of key (a service "NS.NAME") by deployment deploy, marked
 * pending (its spec is about to place it). */
void sage__hostrec_reserve(json_t *rec, const char *key, const char *deploy, double cpus,
                           uint64_t memory);

/* sage__hostrec_unreserve takes n replicas of cpus and memory off key's
 * reservation by deployment deploy (removing it at 0); true if there was
 * one. */
bool sage__hostrec_unreserve(json_t *rec, const char *key, const char *deploy, uint32_t n,
                             double cpus, uint64_t memory);

/* sage__hostrec_normalize makes key's reservation by deploy what spec (as
 * the host last saw it, its status "running") places on host: replicas x
 * (cpus, memory) - removed at 0 - unless it holds more and a placer added
 * to it within SAGE__PENDING_MS (its spec may not say so yet); true if it
 * changed it. */
bool sage__hostrec_normalize(json_t *rec, const char *key, const char *host, const json_t *spec,
                             int64_t now_ms);

/* sage__hostrec_release removes key's reservation if deployment deploy
 * made it (deploy NULL: whoever did); true if there was one. */
bool sage__hostrec_release(json_t *rec, const char *key, const char *deploy);

/* sage__hostrec_set_reservation makes key's reservation exactly replicas x
 * (cpus, memory) for deployment deploy (a host resuming its replicas). */
void sage__hostrec_set_reservation(json_t *rec, const char *key, const char *deploy,
                                   uint32_t replicas, double cpus, uint64_t memory);

/* sage__hostrec_release_all removes deployment deploy's reservation of key
 * from every host named in placement (a JSON object HOST-ID: count). */
void sage__hostrec_release_all(struct sage__nio_kv *hosts, const char *key, const char *deploy,
                               const json_t *placement);

/* ------------------------------------------------------ spec.c: specs */


/* sage__spec_placed returns how many replicas spec places on host. */
uint32_t sage__spec_placed(const json_t *spec, const char *host);

/* sage__spec_abandoned: still placing, SAGE__PLACING_STALE_MS after it was
 * created (its deployer died half way). */
bool sage__spec_abandoned(const json_t *spec, int64_t now_ms);

/*
 * sage__spec_mark_failed sets the spec of key, if it still is deployment
 * deploy, to status "failed" with reason (compare-and-set), and marks the
 * service record failed, so callers fail fast with SAGE_EUNAVAILABLE.
 */
sage_err sage__spec_mark_failed(struct sage__ops *o, const char *key, const char *deploy,
                                const char *reason);


/* sage__service_remove deletes the service record of NS.NAME and, when
 * durable, its stream - unless a deployment of the name exists (a new one,
 * made meanwhile). Best effort. */
void sage__service_remove(struct sage__ops *o, const char *ns, const char *name, bool durable);

/* --------------------------------------------------- place.c: placement */

/*
 * sage__place reserves room for spec's replicas (its "replicas", "cpus",
 * "memory") on live hosts and writes the placement into spec (member
 * "placement"). On failure nothing stays reserved: SAGE_EUNAVAILABLE when
 * no host is live, SAGE_EBUSY when the replicas do not fit (detail: asked
 * and free).
 */
sage_err sage__place(struct sage__ops *o, json_t *spec);

/*
 * sage__place_more reserves n more replicas of key (deployment deploy,
 * cpus and memory each) on live hosts with room, spread by *placement
 * (HOST-ID: count; the ones it reserves are added there and to *added,
 * both JSON objects). all: every one or none (then SAGE_EBUSY or
 * SAGE_EUNAVAILABLE, as sage__place); else as many as fit, SAGE_OK. On an
 * error nothing it reserved stays.
 */
sage_err sage__place_more(struct sage__ops *o, const char *key, const char *deploy, double cpus,
                          uint64_t memory, uint32_t n, json_t *placement, json_t *added, bool all);

/* sage__place_undo takes back the reservations listed in added (HOST-ID:
 * count), best effort. */
void sage__place_undo(struct sage__ops *o, const char *key, const char *deploy, double cpus,
                      uint64_t memory, const json_t *added);

/* ----------------------------------------------- undeploy.c: removing */

/*
 * sage__undeploy_spec removes deployment spec (read at revision rev) of
 * key: the spec (if still that deployment), its reservations, and, once no
 * host lists its replicas (waiting up to wait_ms; 0: not at all), its
 * service record and durable stream. SAGE_ETIMEDOUT if replicas were still
 * listed after wait_ms (everything else is done).
 */
sage_err sage__undeploy_spec(struct sage__ops *o, const char *key, const json_t *spec, uint64_t rev,
                             int64_t wait_ms);

/* ------------------------------------------- update.c: in place */

/*
 * sage__update_spec changes the running deployment of key in place to
 * what want (a spec as deploy makes it) asks: its replica count, and its
 * configuration (a new generation, which hosts roll out) and settings.
 * *nextp gets the spec as written (or as it was, *changedp false, when
 * nothing changed). SAGE_ECONFIG for what cannot change in place
 * (resources, delivery), SAGE_ESTATE when it is not running, SAGE_EBUSY
 * when more replicas do not fit.
 */
sage_err sage__update_spec(struct sage__ops *o, const char *key, const json_t *want,
                           json_t **nextp, bool *changedp);

/* sage__await_settled waits up to wait_ms until each spec of specs (a JSON
 * array) has its count of replicas running its generation on live hosts,
 * and nothing else of it is listed. SAGE_EUNAVAILABLE when replicas of
 * that generation failed, SAGE_ETIMEDOUT. */
sage_err sage__await_settled(struct sage__ops *o, const json_t *specs, int64_t wait_ms);

/* ------------------------------------------------ await.c: waiting */

/*
 * sage__await_kv waits up to timeout_ms until pred, evaluated over the
 * records of kv whose keys match keys (a subject pattern; NULL: all) - a
 * JSON object KEY: record, borrowed - returns 1; a negative return stops
 * the wait with the error pred put in *errp (and recorded). pred runs on
 * the calling thread, with the records' lock held: it must not block.
 * SAGE_ETIMEDOUT when the time is up. The host records (o->hosts) are what
 * deploy and undeploy wait on.
 */
typedef int (*sage__await_pred)(void *arg, const json_t *records, int64_t now_ms, sage_err *errp);
sage_err sage__await_kv(struct sage__nio_kv *kv, const char *keys, sage__await_pred pred, void *arg,
                        int64_t timeout_ms);

#endif
