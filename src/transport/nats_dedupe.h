/*
 * nats_dedupe.h - request ids and answers shared by every replica of a
 * NATS service (cluster dedupe): a repeat of a request (a retry, a hedge,
 * a redelivery) that reaches any replica gets the first one's answer
 * instead of running again.
 *
 * The store is a JetStream key-value bucket per service,
 * "sagesvc_dedupe_<len(NS)>_<NS>_<NAME>", history 1, in memory (a cache:
 * no disk write per call), entries expiring after the service's
 * dedupe_ttl. The key of a request is
 * "h<fnv-1a 64 of its caller (reply_to), 16 hex digits>.<id>"; its value
 * is "R" and the wall-clock ms (8 bytes, big-endian) when it started
 * running (written with a create: the first replica wins), then "D" and
 * the encoded response once answered (published to the bucket's subject,
 * not waited for). A running mark older than the request's timeout is
 * taken over (its runner died). An answer larger than the bucket takes is
 * not kept: its repeats run again.
 */
#ifndef SAGE_TRANSPORT_NATS_DEDUPE_H
#define SAGE_TRANSPORT_NATS_DEDUPE_H

#include <stddef.h>
#include <stdint.h>

#include "transport/natsio.h"
#include "transport/transport.h"

struct sage__ndedupe;

/* sage__ndedupe_open opens (creating it) the store of service ns.name. */
sage_err sage__ndedupe_open(struct sage__ndedupe **dp, struct sage__nio *nio, const char *ns,
                            const char *name, int64_t ttl_ms);
void sage__ndedupe_close(struct sage__ndedupe *d);

/* The transport's dedupe_begin and dedupe_finish (transport.h), on d. */
enum sage__tp_seen sage__ndedupe_begin(struct sage__ndedupe *d, const char *caller, uint64_t id,
                                       uint32_t timeout_ms, void **bytesp, size_t *lenp);
void sage__ndedupe_finish(struct sage__ndedupe *d, const char *caller, uint64_t id,
                          const void *bytes, size_t len);

#endif
