/*
 * natsio.h - the door to NATS. natsio.c is the only file of the project that
 * includes <nats/nats.h>; everything else in src/cluster talks to NATS
 * through these calls, in sage_err terms.
 *
 * Threads: nats.c delivers each subscription's messages on its own thread
 * (one per subscription); callbacks below run there, one at a time per
 * subscription. Connection event callbacks run on a nats.c thread too.
 * Every function here is thread-safe.
 */
#ifndef SAGE_CLUSTER_NATSIO_H
#define SAGE_CLUSTER_NATSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sage/config.h"
#include "sage/err.h"

struct sage__nio;     /* a connection */
struct sage__nio_sub; /* a subscription */
struct sage__nio_msg; /* a received message, borrowed by callbacks */
struct sage__nio_kv;  /* a key-value bucket */

/* Connection events, for logs and for reconnect-aware callers. */
enum sage__nio_event { SAGE__NIO_DISCONNECTED, SAGE__NIO_RECONNECTED, SAGE__NIO_CLOSED };

struct sage__nio_opts {
    const sage_nats_conf *conf; /* servers, credentials, TLS, reconnect */
    const char *name;           /* connection name shown by the server */
    void (*on_event)(void *arg, enum sage__nio_event ev, const char *url);
    void *arg;
};

/*
 * sage__nio_connect connects (send-ASAP on: no 1 ms write coalescing).
 * SAGE_EAUTH for refused credentials, SAGE_ECONNECT when no server answers,
 * SAGE_ECONFIG for unusable TLS files; the detail names the servers tried.
 */
sage_err sage__nio_connect(struct sage__nio **np, const struct sage__nio_opts *o);

/* sage__nio_close drains and closes, then frees n. NULL is ignored. */
void sage__nio_close(struct sage__nio *n);

/* sage__nio_connected tells whether n is connected now (not reconnecting). */
bool sage__nio_connected(struct sage__nio *n);

/* sage__nio_url returns the URL of the server n is connected to (a copy in
 * buf), or "" when disconnected. */
const char *sage__nio_url(struct sage__nio *n, char *buf, size_t cap);

/* sage__nio_inbox writes a fresh unique inbox subject into buf. */
sage_err sage__nio_inbox(struct sage__nio *n, char *buf, size_t cap);

/* sage__nio_uid writes a unique id (22 characters of [A-Za-z0-9]). */
void sage__nio_uid(char *buf, size_t cap);

/* ------------------------------------------------------------ messages */

typedef void (*sage__nio_fn)(void *arg, struct sage__nio_msg *m);

/*
 * sage__nio_subscribe subscribes fn to subject (wildcards allowed), in queue
 * group queue when it is not NULL. fn runs on the subscription's thread.
 */
sage_err sage__nio_subscribe(struct sage__nio *n, const char *subject, const char *queue,
                             sage__nio_fn fn, void *arg, struct sage__nio_sub **sp);

/* sage__nio_unsubscribe drains s (messages already received are still
 * delivered), waits until no callback runs, and frees s. Not from s's own
 * callback. */
void sage__nio_unsubscribe(struct sage__nio_sub *s);

/* Accessors of a message in a callback (borrowed, valid during it). */
const void *sage__nio_msg_data(const struct sage__nio_msg *m, size_t *lenp);
const char *sage__nio_msg_subject(const struct sage__nio_msg *m);
const char *sage__nio_msg_reply(const struct sage__nio_msg *m); /* NULL if none */
/* sage__nio_msg_header returns a header's first value, or NULL. */
const char *sage__nio_msg_header(const struct sage__nio_msg *m, const char *key);
/* sage__nio_msg_no_responders: the server's 503 status for a request
 * nobody subscribes to. */
bool sage__nio_msg_no_responders(const struct sage__nio_msg *m);

/* A header to publish: key and value. */
struct sage__nio_hdr {
    const char *key;
    const char *value;
};

/*
 * sage__nio_publish publishes data to subject, with reply subject reply
 * (may be NULL) and nhdr headers. Buffered by nats.c but flushed at once
 * (send-ASAP). SAGE_ECONNECT if the connection is closed; while
 * reconnecting, publishes are buffered (up to the reconnect buffer).
 */
sage_err sage__nio_publish(struct sage__nio *n, const char *subject, const char *reply,
                           const void *data, size_t len, const struct sage__nio_hdr *hdr,
                           size_t nhdr);

/*
 * sage__nio_request publishes data to subject and waits up to timeout_ms
 * for one reply, copied into a malloc'd buffer (*outp, *outlenp; free()).
 * SAGE_ETIMEDOUT when none comes, SAGE_EUNAVAILABLE when nobody listens on
 * subject (no responders).
 */
sage_err sage__nio_request(struct sage__nio *n, const char *subject, const void *data, size_t len,
                           int timeout_ms, void **outp, size_t *outlenp);

/* sage__nio_flush waits up to timeout_ms until the server has processed
 * everything sent so far (a round trip). */
sage_err sage__nio_flush(struct sage__nio *n, int timeout_ms);

/* ------------------------------------------------------ key-value buckets */

struct sage__nio_kv_opts {
    int history;        /* values kept per key; 0: 1 */
    int64_t ttl_ms;     /* entries older than this expire; 0: never */
    int replicas;       /* JetStream copies; 0: the connection's nats.replicas, where 0
                         * is min(3, servers in the cluster) */
    bool memory;        /* kept in memory, not on disk (a cache) */
};

/*
 * sage__nio_kv_open opens bucket. With o (not NULL) it creates the bucket
 * if it does not exist, and raises an existing one's copies to o's (and
 * sets its TTL to o's when o has one), where the servers allow it.
 */
sage_err sage__nio_kv_open(struct sage__nio *n, const char *bucket,
                           const struct sage__nio_kv_opts *o, struct sage__nio_kv **kvp);

void sage__nio_kv_close(struct sage__nio_kv *kv);

/* sage__nio_kv_get reads key: a malloc'd copy of its value (free()) and its
 * revision. SAGE_ENOENT if absent or deleted. */
sage_err sage__nio_kv_get(struct sage__nio_kv *kv, const char *key, void **valp, size_t *lenp,
                          uint64_t *revp);

/*
 * sage__nio_kv_get_direct reads key of bucket without opening it, from
 * whichever server holds a copy (a JetStream direct get): it answers while
 * the bucket's servers elect a leader, when opening the bucket cannot. A
 * malloc'd, NUL-terminated copy of the value (free()). SAGE_ENOENT if the
 * key is absent or deleted, SAGE_ENOTSUP when no server answers directly
 * (no such bucket, or one without direct gets: open it instead).
 */
sage_err sage__nio_kv_get_direct(struct sage__nio *n, const char *bucket, const char *key,
                                 void **valp, size_t *lenp);

/* sage__nio_kv_put writes key unconditionally; *revp (may be NULL) gets the
 * new revision. */
sage_err sage__nio_kv_put(struct sage__nio_kv *kv, const char *key, const void *val, size_t len,
                          uint64_t *revp);

/* sage__nio_kv_create writes key only if it does not exist: SAGE_EEXIST. */
sage_err sage__nio_kv_create(struct sage__nio_kv *kv, const char *key, const void *val, size_t len,
                             uint64_t *revp);

/* sage__nio_kv_update writes key only if its revision is still rev (a
 * compare-and-set): SAGE_EBUSY when someone wrote it meanwhile. */
sage_err sage__nio_kv_update(struct sage__nio_kv *kv, const char *key, const void *val, size_t len,
                             uint64_t rev, uint64_t *revp);

/* sage__nio_kv_delete deletes key (a tombstone; absent keys are fine). */
sage_err sage__nio_kv_delete(struct sage__nio_kv *kv, const char *key);

/* sage__nio_kv_keys calls fn for every key of the bucket's stream (a
 * deleted key's tombstone too: a read says it is gone), in no order. */
sage_err sage__nio_kv_keys(struct sage__nio_kv *kv, void (*fn)(void *arg, const char *key),
                           void *arg);

/* sage__nio_kv_delete_rev deletes key only if its revision is still rev (a
 * compare-and-delete): SAGE_EBUSY when someone wrote it meanwhile. */
sage_err sage__nio_kv_delete_rev(struct sage__nio_kv *kv, const char *key, uint64_t rev);

struct sage__nio_watch; /* a watch of a bucket's keys */

/*
 * A watch's callback: one put (deleted false, val/len the value) or delete
 * or purge (deleted true, val NULL) of key, at revision rev; all borrowed
 * for the call. Once the values current when the watch began have all been
 * delivered, it is called once with key NULL.
 */
typedef void (*sage__nio_watch_fn)(void *arg, const char *key, const void *val, size_t len,
                                   uint64_t rev, bool deleted);

/*
 * sage__nio_kv_watch delivers the current value of every key matching keys
 * (a subject pattern: "*", "NS.>"; NULL: all), then every later change, to
 * fn, on a thread of the watch's own, one call at a time.
 */
sage_err sage__nio_kv_watch(struct sage__nio_kv *kv, const char *keys, sage__nio_watch_fn fn,
                            void *arg, struct sage__nio_watch **wp);

/* sage__nio_kv_unwatch stops w, waits until its callback no longer runs,
 * and frees w. Not from w's own callback. NULL is ignored. */
void sage__nio_kv_unwatch(struct sage__nio_watch *w);

/* ------------------------------------------------------------ JetStream */

/* sage__nio_stream_ensure creates a work-queue stream name capturing
 * subject (each message kept until acknowledged once) with the
 * connection's nats.replicas copies, if it does not exist; an existing one
 * with fewer copies is raised where the servers allow it. */
sage_err sage__nio_stream_ensure(struct sage__nio *n, const char *name, const char *subject);

/* sage__nio_stream_info reports stream name's copies and the server that
 * leads it ("" while none does), for tests and tools. SAGE_ENOENT if the
 * stream does not exist. */
sage_err sage__nio_stream_info(struct sage__nio *n, const char *name, int *replicasp, char *leader,
                               size_t cap);

/* sage__nio_stream_delete deletes stream name and everything in it; an
 * absent stream is fine. */
sage_err sage__nio_stream_delete(struct sage__nio *n, const char *name);

/*
 * sage__nio_js_publish publishes to subject of stream and waits up to
 * timeout_ms for the server's acknowledgement that it is stored. With
 * msg_id (unique per message; the stream drops a repeat of a stored one
 * within its duplicate window, 2 minutes), it tries again every 2 s
 * without an acknowledgement, and while the stream has no leader (its
 * servers elect one, seconds after one died), until timeout_ms.
 * SAGE_EUNAVAILABLE when the stream does not exist or never took the call,
 * SAGE_ETIMEDOUT when no acknowledgement came (the call may be stored).
 */
sage_err sage__nio_js_publish(struct sage__nio *n, const char *stream, const char *subject,
                              const char *msg_id, const void *data, size_t len, int timeout_ms);

struct sage__nio_pull; /* a pull consumer shared by replicas (durable name) */

/* sage__nio_pull_open binds to (creating if needed) the durable pull
 * consumer durable on stream; unacknowledged messages are redelivered after
 * ack_wait_ms. */
sage_err sage__nio_pull_open(struct sage__nio *n, const char *stream, const char *subject,
                             const char *durable, int64_t ack_wait_ms, struct sage__nio_pull **pp);

/* sage__nio_pull_close releases p (the durable consumer stays). Call it
 * after sage__nio_close of its connection, or when no fetch answer can
 * still be on its way: nats.c's reader thread may be delivering one. */
void sage__nio_pull_close(struct sage__nio_pull *p);

/* sage__nio_pull_fetch waits up to timeout_ms for up to max messages and
 * calls fn for each; fn acknowledges with sage__nio_msg_ack. SAGE_ETIMEDOUT
 * when none came. */
sage_err sage__nio_pull_fetch(struct sage__nio_pull *p, int max, int timeout_ms, sage__nio_fn fn,
                              void *arg);

/* sage__nio_msg_ack acknowledges a JetStream message (done: not redelivered). */
sage_err sage__nio_msg_ack(struct sage__nio_msg *m);

#endif
