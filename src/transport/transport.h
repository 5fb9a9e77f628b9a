/*
 * transport.h - the one interface between the runtime and the ways a call
 * travels: in process (local), between processes of one machine (shm), and
 * between machines (nats).
 *
 * A transport is a table of operations (struct sage__tp_ops), in the spirit
 * of nng's transport ops: the runtime calls transports only through it and
 * never names one; a transport hands what it receives back to the runtime
 * only through the callbacks the runtime registered, never by naming
 * runtime functions.
 *
 * Two sides:
 * - A client is one manager's side of a transport. It resolves service
 *   names to destinations and sends requests to them. Answers come back in
 *   one of three ways, whichever the transport can do best:
 *     * into the client's inbox, a sage_queue the runtime drains (shm: the
 *       caller's named reply queue, written by the serving process);
 *     * through on_answer, with the encoded response (nats: on a nats.c
 *       thread);
 *     * through on_value, with the decoded response (local: on the serving
 *       task's thread, no encoding at all).
 *   Events that end calls (no responder, a serving process died, the
 *   connection was lost) come through on_event, or, when they must be
 *   ordered after answers already in the inbox, as control records in the
 *   inbox itself (sage__tp_ctl below).
 * - A server is one task's side. Requests come in either by pull (the
 *   transport offers a queue that the runtime's listener thread drains and
 *   unwraps: local, shm) or by push (the transport calls on_request from
 *   its own threads: nats). Answers go out through reply().
 *
 * Every function here is thread-safe unless it says otherwise.
 */
#ifndef SAGE_TRANSPORT_TRANSPORT_H
#define SAGE_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sage/cluster.h"
#include "sage/err.h"
#include "sage/queue.h"
#include "sage/task.h"
#include "transport/figures.h"
#include "wire/wire.h"

struct sage__tp_client;
struct sage__tp_dest;
struct sage__tp_server;

/* ------------------------------------------------------------- caller side */

/* Events a client reports through on_event. */
enum sage__tp_event_kind {
    SAGE__TP_FAIL_ID,   /* the call with this id gets no answer: fail it (or retry) */
    SAGE__TP_FAIL_DEST, /* every call sent to the destination with this serial */
    SAGE__TP_FAIL_ALL,  /* every call sent through this client (connection lost) */
    SAGE__TP_FINISH,    /* the runtime's own: the call with this id has its answer
                         * in its future already; finish it on this thread */
    SAGE__TP_NOBODY,    /* nobody took an attempt of the call with this id (its
                         * replica is gone): FAIL_ID, unless it can go elsewhere */
};

struct sage__tp_event {
    enum sage__tp_event_kind kind;
    uint64_t key; /* the id, or the destination's serial; unused for FAIL_ALL */
    sage_err err;
    const char *why;
};

/* What the runtime gives a client when it opens it. Copied by the client,
 * but for cluster (borrowed until close). */
struct sage__tp_client_conf {
    const char *ns;
    size_t max_response;             /* largest answer accepted, bytes */
    const sage_cluster_opts *cluster; /* nats: where and how; NULL: no cluster */
    void *arg;                        /* the runtime's, for the callbacks */
    /* an encoded answer (any thread of the transport; data borrowed) */
    void (*on_answer)(void *arg, const void *data, size_t len);
    /* a decoded answer (local; resp and what it points to borrowed) */
    void (*on_value)(void *arg, const sage__resp *resp);
    /* calls end without an answer (any thread of the transport) */
    void (*on_event)(void *arg, sage_transport from, const struct sage__tp_event *ev);
};

/* What a client says about a destination it resolved. */
struct sage__tp_dest_info {
    sage_transport transport;
    char address[SAGE_ADDRESS_MAX + 1]; /* queue name, subject, "(in-process)" */
    int32_t pid;                        /* serving process, 0 if unknown */
    int64_t queue_timeout_ms;           /* how long a send waits for room */
    size_t max_request;                 /* largest request it takes */
    bool via_inbox;                     /* its answers arrive in the client's inbox */
    char idempotent[512];               /* its idempotent methods, comma-separated */
};

/* sage__tp_listed tells whether method is in list (comma-separated names). */
bool sage__tp_listed(const char *list, const char *method);

/*
 * Control records share a client's inbox with response envelopes; their
 * first byte is 0xc1, which MessagePack never uses, so they cannot be
 * mistaken for one. A death reported this way is ordered after every
 * answer the dead process put in the inbox.
 */
#define SAGE__TP_CTL_TAG 0xc1u

struct sage__tp_ctl {
    uint8_t tag;  /* SAGE__TP_CTL_TAG */
    uint8_t kind; /* enum sage__tp_event_kind */
    uint16_t why_len;
    int32_t err;
    uint64_t key;
    char why[200];
};

/* sage__tp_ctl_parse reads a control record; false if data is none. */
bool sage__tp_ctl_parse(const void *data, size_t len, struct sage__tp_event *ev, char *why,
                        size_t cap);

/* sage__tp_ctl_make fills c from ev and returns the record's length. */
size_t sage__tp_ctl_make(struct sage__tp_ctl *c, const struct sage__tp_event *ev);

/* ------------------------------------------------------------ serving side */

/* A request as a transport hands it in. Either the encoded envelope (bytes,
 * len) or, for in-process calls, the decoded request (req, borrowed until
 * the call is released). ticket is the transport's own (answer routing);
 * the runtime only carries it back to reply() and release(). */
struct sage__tp_req {
    const void *bytes;
    size_t len;
    const sage__req *req;
    void *ticket;
    const char *fallback_reply; /* nats: the message's reply subject, or NULL (borrowed) */
    /* how far the sender's wall clock (sent_ns) may be off ours: 0 on this
     * machine; a request older than its timeout by more is expired */
    int64_t skew_ns;
};

/* How a push transport wants a request run. */
enum sage__tp_mode {
    SAGE__TP_DISPATCH, /* run it here or hand it to a worker, as the runtime likes */
    SAGE__TP_RUN_HERE, /* run it to the end on this thread (acknowledge after) */
};

/* What the runtime gives a server when it opens it. Copied by the server,
 * but for methods and cluster (borrowed until close). */
struct sage__tp_serve_conf {
    const char *ns;
    const char *name;
    const char *const *methods; /* names, for discovery */
    size_t nmethods;
    uint32_t max_workers;
    uint32_t request_queue_size;
    size_t max_request;
    int64_t queue_timeout_ms;
    const sage_cluster_opts *cluster; /* nats */
    void *arg; /* the runtime's, for the callbacks */
    /* push transports: wait until a worker slot is free (or stopping) */
    void (*wait_room)(void *arg);
    /* push transports: one request (r borrowed during the call) */
    void (*on_request)(void *arg, const struct sage__tp_req *r, enum sage__tp_mode mode);
};

/* sage__tp_encode_req encodes req into this thread's reusable buffer:
 * *bufp is valid until the thread's next encode. */
sage_err sage__tp_encode_req(const sage__req *req, const void **bufp, size_t *lenp);

/* sage__tp_encode_resp is sage__tp_encode_req for an answer. */
sage_err sage__tp_encode_resp(const sage__resp *resp, const void **bufp, size_t *lenp);

/* ------------------------------------------------------------ the table */

struct sage__tp_ops {
    const char *name;
    sage_transport kind;
    /* remote: serves and resolves only with cluster options, and answers
     * take a network round trip (callers do not spin for them) */
    bool remote;

    /* ---- caller side (NULL for a transport that cannot be resolved by name) */

    /* client_open opens this transport's side of a manager; SAGE_ENOTSUP
     * when the transport is not usable with conf (nats without a cluster). */
    sage_err (*client_open)(struct sage__tp_client **cp, const struct sage__tp_client_conf *conf);
    /* client_close: no callback runs once it returns. */
    void (*client_close)(struct sage__tp_client *c);
    /* client_inbox: the queue this client's answers arrive in, or NULL. Only
     * one thread drains it at a time (the runtime's rule). */
    sage_queue *(*client_inbox)(struct sage__tp_client *c);
    /* client_inbox_reset replaces a corrupt inbox with a fresh one (new
     * name); answers sent to the old one are lost. Called by its drainer. */
    sage_err (*client_inbox_reset)(struct sage__tp_client *c);
    /* client_post puts a record of the runtime's into the inbox (a wake). */
    sage_err (*client_post)(struct sage__tp_client *c, const void *data, size_t len);
    /* resolve finds service; SAGE_ENOSERVICE if this transport does not
     * know it (the runtime then asks the next). serial names the
     * destination in events. */
    sage_err (*resolve)(struct sage__tp_client *c, const char *service, uint64_t serial,
                        struct sage__tp_dest **dp, struct sage__tp_dest_info *info);
    /* attach makes a destination of a server of this transport in this
     * process (an in-process service found by name in an environment). */
    sage_err (*attach)(struct sage__tp_client *c, struct sage__tp_server *s, uint64_t serial,
                       struct sage__tp_dest **dp, struct sage__tp_dest_info *info);
    /* send sends req (reply_to is the transport's to set), waiting up to
     * timeout_ms for room. Errors come with their detail: SAGE_EFULL,
     * SAGE_EMSGSIZE, SAGE_EUNAVAILABLE (stopping, dead, no connection),
     * SAGE_ECONNECT. *stalep says the destination must not be used for new
     * calls any more (resolve again); calls already sent to it are not
     * failed by that. */
    sage_err (*send)(struct sage__tp_dest *d, const sage__req *req, int timeout_ms, bool *stalep);
    /* send_to (NULL if the transport has no replicas to choose from) is
     * send to one replica of the service, not the one numbered avoid
     * (SAGE__TP_NONE: any): the attempts of a hedged call go to different
     * replicas, and avoid, given up on, is not chosen by later calls
     * either until it shows it answers again. *chosen gets the replica's
     * number, or SAGE__TP_NONE when none is known and the service's usual
     * route was taken. */
    sage_err (*send_to)(struct sage__tp_dest *d, const sage__req *req, int timeout_ms,
                        uint32_t avoid, uint32_t *chosen, bool *stalep);
    /* dest_close releases a destination (calls sent through it may still
     * be answered). */
    void (*dest_close)(struct sage__tp_dest *d);

    /* ---- serving side */

    /* serve_open claims the name and prepares to take calls (callers do
     * not see the service before ready()). *figp gets the figures block the
     * runtime updates (in shared memory for shm, so other processes read
     * it); the server owns it until serve_close. */
    sage_err (*serve_open)(struct sage__tp_server **sp, const struct sage__tp_serve_conf *conf,
                           struct sage__figures **figp);
    /* ready: the runtime has filled the figures' identity and takes calls
     * now; the service becomes visible to callers (push transports start
     * calling on_request). */
    sage_err (*ready)(struct sage__tp_server *s);
    /* serve_queue: the queue a pull server's calls arrive in, or NULL (push) */
    sage_queue *(*serve_queue)(struct sage__tp_server *s);
    /* unwrap turns a record drained from serve_queue into a request */
    sage_err (*unwrap)(struct sage__tp_server *s, const void *data, size_t len,
                       struct sage__tp_req *out);
    /* dedupe_begin / dedupe_finish (NULL: the transport has none): a store
     * of request ids and answers shared by every replica of the service,
     * when the server was opened with dedupe. begin looks up (caller, id),
     * recording it as running when new; for DONE, *bytesp and *lenp get a
     * malloc'd copy of the encoded answer. finish records the answer of a
     * call begun NEW (bytes NULL: forget the call). A store that cannot be
     * reached answers NEW: the call runs (dedupe is best effort). */
    enum sage__tp_seen (*dedupe_begin)(struct sage__tp_server *s, const char *caller, uint64_t id,
                                       uint32_t timeout_ms, void **bytesp, size_t *lenp);
    void (*dedupe_finish)(struct sage__tp_server *s, const char *caller, uint64_t id,
                          const void *bytes, size_t len);
    /* tick: periodic housekeeping from the listener (heartbeat, releasing
     * departed callers); returns the ms until it wants the next one. */
    int (*tick)(struct sage__tp_server *s, int64_t now_ns);
    /* quiesce stops taking new calls; calls already taken stay answerable.
     * Push transports have delivered every request taken when it returns. */
    void (*quiesce)(struct sage__tp_server *s);
    /* reply sends resp to the caller of the request r came from (reply_to:
     * the decoded envelope's, or NULL). Failures are the transport's to
     * count (as drops, with the reason). */
    void (*reply)(struct sage__tp_server *s, const struct sage__tp_req *r, const char *reply_to,
                  const sage__resp *resp, const void *bytes, size_t len);
    /* release: the runtime is done with r (after its answer, or dropping it) */
    void (*release)(struct sage__tp_server *s, const struct sage__tp_req *r);
    /* serve_close closes the server: the name is free again. */
    void (*serve_close)(struct sage__tp_server *s);
};

/* What a dedupe store knows of a request id (dedupe_begin). */
enum sage__tp_seen {
    SAGE__TP_SEEN_NEW,     /* first sighting: run it, then call dedupe_finish */
    SAGE__TP_SEEN_RUNNING, /* a repeat of a call still running: drop it */
    SAGE__TP_SEEN_DONE,    /* a repeat of a finished call: resend *bytesp */
};

/* No replica in particular (send_to). */
#define SAGE__TP_NONE UINT32_MAX

/* The kinds are 0 .. SAGE__TP_KINDS - 1; a task's default is in-process. */
#define SAGE__TP_KINDS 3
#define SAGE__TP_DEFAULT SAGE_TRANSPORT_LOCAL

/* sage__tp_for returns the transport of that kind, or NULL when it is not
 * built in (nats without SAGE_WITH_NATS). */
const struct sage__tp_ops *sage__tp_for(sage_transport kind);

/* sage__tp_all returns the transports a name is resolved through, in
 * order (*np of them): on this machine first, then the cluster. */
const struct sage__tp_ops *const *sage__tp_all(size_t *np);

#endif
