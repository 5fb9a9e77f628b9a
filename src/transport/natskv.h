/*
 * natskv.h - JSON records in NATS key-value buckets: typed reads, writes,
 * a compare-and-set loop, and the names of the records both the NATS
 * transport (service records) and the cluster's operations keep there.
 * Records are JSON objects, through jansson.
 */
#ifndef SAGE_TRANSPORT_NATSKV_H
#define SAGE_TRANSPORT_NATSKV_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sage/err.h"
#include "transport/natsio.h"

/* Bucket of service records, key "NS.NAME": written by replicas, read by
 * callers (docs/PROTOCOL.md gives the schema). */
#define SAGE__SERVICES_BUCKET "sagesvc_services"

/* sage__nats_key writes "NS.NAME", the key of a service in every bucket. */
void sage__nats_key(char *buf, size_t cap, const char *ns, const char *name);

/* sage__stream_name writes "SAGE_NS_NAME", a durable service's stream. */
void sage__stream_name(char *buf, size_t cap, const char *ns, const char *name);

/* sage__wall_ms: the wall clock in ms since the epoch (heartbeats). */
int64_t sage__wall_ms(void);

/* sage__kv_get_json reads key as a JSON object (*op, json_decref) and its
 * revision. SAGE_ENOENT if absent, SAGE_EPROTO if not a JSON object. */
sage_err sage__kv_get_json(struct sage__nio_kv *kv, const char *key, json_t **op, uint64_t *revp);

/* sage__kv_put_json writes o to key: unconditionally (rev 0 and !create),
 * only if absent (create), or only at revision rev (compare-and-set). */
sage_err sage__kv_put_json(struct sage__nio_kv *kv, const char *key, const json_t *o, bool create,
                           uint64_t rev, uint64_t *revp);

/* Typed reads of a member: "" / 0 when absent or of another type. */
const char *sage__jstr(const json_t *o, const char *key);
double sage__jnum(const json_t *o, const char *key);
int64_t sage__jint(const json_t *o, const char *key);

/*
 * sage__kv_modify reads key's JSON object (an empty one when absent or
 * garbled), lets fn change it, and writes it back with a compare-and-set,
 * re-reading and calling fn again whenever someone else wrote first (so fn
 * may run several times). fn returns 1 to write, 0 to leave the record as
 * it is, or a negative value to stop with the error it recorded in *errp;
 * `absent` tells it the key did not exist (writing then creates it). With
 * cachep (may be NULL), it starts from *cachep at revision *revp - the
 * caller's last write - instead of a read, and updates both after a write.
 */
typedef int (*sage__kv_modify_fn)(void *arg, json_t *rec, bool absent, sage_err *errp);
sage_err sage__kv_modify(struct sage__nio_kv *kv, const char *key, sage__kv_modify_fn fn,
                         void *arg, json_t **cachep, uint64_t *revp);

/* sage__kv_each calls fn with every key of kv, its JSON object and its
 * revision (entries that vanish meanwhile or are not JSON objects are
 * skipped). fn borrows o. */
sage_err sage__kv_each(struct sage__nio_kv *kv,
                       void (*fn)(void *arg, const char *key, json_t *o, uint64_t rev), void *arg);

#endif
