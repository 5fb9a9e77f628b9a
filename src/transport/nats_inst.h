/*
 * nats_inst.h - the replicas of one NATS service that a caller knows of,
 * so that the attempts of a hedged call go to different ones.
 *
 * Every plain (not durable) replica also listens on its own subject,
 * "sage.NS.inst.NAME.ID" (sage__nats_inst_subject), where a message reaches
 * that replica alone. The caller learns the IDs from $SRV.PING.NAME answers
 * (the NATS micro-service protocol), asked for again at most every
 * SAGE__NINST_ASK_MS while calls are made; a replica that stopped answering
 * pings for SAGE__NINST_STALE_MS is no longer picked, and one the caller
 * gave up waiting for (a hedge or retry went elsewhere) is not picked until
 * it answers a ping again: a frozen replica costs one hedge delay, not one
 * per call until it goes stale. A table is used by
 * one destination and filled from the client's subscription thread: its
 * calls take its lock.
 */
#ifndef SAGE_TRANSPORT_NATS_INST_H
#define SAGE_TRANSPORT_NATS_INST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sage/err.h"
#include "transport/transport.h"

#define SAGE__NINST_MAX 32          /* replicas tracked per service */
#define SAGE__NINST_ASK_MS 500      /* pings at most this often */
#define SAGE__NINST_STALE_MS 1500   /* unseen for this long: not picked */
#define SAGE__NINST_FRESH_MS 100    /* a pong this long after giving up is a new one */
#define SAGE__NINST_NONE SAGE__TP_NONE /* no replica in particular */

struct sage__ninst;

/* sage__ninst_new makes an empty table for service name of namespace ns. */
sage_err sage__ninst_new(struct sage__ninst **ip, const char *ns, const char *name);
void sage__ninst_free(struct sage__ninst *t);

/* sage__ninst_due tells whether to ask again now (and notes that it will). */
bool sage__ninst_due(struct sage__ninst *t, int64_t now_ms);

/* sage__ninst_pong takes one $SRV.PING answer (JSON); answers of other
 * services or namespaces, or malformed ones, are ignored. */
void sage__ninst_pong(struct sage__ninst *t, const void *data, size_t len, int64_t now_ms);

/* sage__ninst_suspect notes that replica i (a sage__ninst_pick result) did
 * not answer in time: it is not picked again until a ping of it is answered
 * at least SAGE__NINST_FRESH_MS later (an answer already on its way when
 * the caller gave up proves nothing). */
void sage__ninst_suspect(struct sage__ninst *t, uint32_t i, int64_t now_ms);

/* sage__ninst_pick picks a replica seen lately other than avoid, in turn:
 * its subject into buf, its slot returned; SAGE__NINST_NONE if none. */
uint32_t sage__ninst_pick(struct sage__ninst *t, uint32_t avoid, int64_t now_ms, char *buf,
                          size_t cap);

/* sage__nats_inst_subject writes "sage.NS.inst.NAME.ID". */
void sage__nats_inst_subject(char *buf, size_t cap, const char *ns, const char *name,
                             const char *id);

#endif
