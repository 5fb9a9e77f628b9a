/*
 * sage/queue.h - sage_queue, a ring of variable-length messages from many
 * producers (threads and processes) to one consumer.
 *
 * A named queue lives in POSIX shared memory (/dev/shm/sage.q.NAME) so that
 * processes of the same user can exchange messages at memory speed; a queue
 * opened with a NULL name lives in private memory and serves threads of one
 * process with the same code. Since any user may create a file at any free
 * name in /dev/shm, opening a queue checks that it is this user's own (see
 * SAGE_QUEUE_ANY_OWNER for queues shared between users on purpose).
 *
 * Waiting never polls: a waiter spins briefly when its peer runs on another
 * CPU, then sleeps in the kernel (futex) until the other side wakes it, a
 * timeout passes, or the queue is closed.
 *
 * Crash safety: a producer that dies (even by SIGKILL) holding a claimed
 * record does not wedge the queue; the consumer notices the dead owner and
 * skips the record, and every other message arrives. Processes are told
 * apart by pid and start time, so a dead process's pid taken by another
 * does not pass for it. A corrupt or hostile segment gives SAGE_EPROTO,
 * never an out-of-bounds access or an endless wait; the first process to
 * find it corrupt marks it so for all, and stats report why.
 *
 * Timeouts are in milliseconds: 0 means "do not wait", a negative value
 * means "wait forever". Lifecycle: sage_queue_open/sage_queue_close for a
 * handle; sage_queue_shutdown for the queue itself (its owner only).
 */
#ifndef SAGE_QUEUE_H
#define SAGE_QUEUE_H

#include "sage/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "sage/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* sage_queue: an opaque handle on a queue, owned by the library. */
typedef struct sage_queue sage_queue;

/* Longest queue name (bytes, without terminator). Names use [A-Za-z0-9._-]
 * and do not start with '.' or '-'. */
#define SAGE_QUEUE_NAME_MAX 200

/* Flags for sage_queue_opts.flags. */
#define SAGE_QUEUE_CREATE 0x1u /* create the queue if it does not exist */
#define SAGE_QUEUE_EXCL 0x2u   /* with CREATE: fail with SAGE_EEXIST if it exists */
/* SAGE_QUEUE_ANY_OWNER opens an existing queue whoever owns it and whatever
 * its mode: for a queue deliberately shared between users (created with a
 * mode such as 0660 or 0666), by its creator too. Without it, a queue that
 * is not owned by this process's effective uid, or that its group or others
 * may write, is refused. It never follows a symbolic link either way. */
#define SAGE_QUEUE_ANY_OWNER 0x4u
#define SAGE_QUEUE_LAZY 0x8u   /* do not pre-fault the segment: memory is taken as
                                * the ring is used (small, rarely busy queues) */

/* Options of sage_queue_open; fill with sage_queue_opts_init first. Sizes
 * matter only when the call creates the queue; an existing queue keeps its
 * own, and sage_queue_stats_read() reports them. */
typedef struct sage_queue_opts {
    size_t capacity;        /* ring bytes, rounded up to a power of two; default 1 MiB */
    size_t max_msg;         /* largest payload in bytes, at most capacity/2 - 8; default capacity/4 */
    uint32_t max_msgs;      /* most messages queued at once; 0: bounded by bytes only */
    uint32_t max_producers; /* producer thread slots across all processes; default 1024 */
    unsigned mode;          /* permission bits of a new segment; default 0600 */
    unsigned flags;         /* SAGE_QUEUE_CREATE, SAGE_QUEUE_EXCL, SAGE_QUEUE_ANY_OWNER */
    uint32_t spin_us;       /* longest spin before sleeping; default 20, 0 = never spin */
} sage_queue_opts;

/* sage_queue_opts_init fills opts with the defaults. */
SAGE_API void sage_queue_opts_init(sage_queue_opts *opts);

/*
 * sage_queue_open opens the queue called name, creating it when opts->flags
 * has SAGE_QUEUE_CREATE, and writes the new handle to *qp on success. A NULL
 * name makes a private in-process queue. An existing segment is validated
 * (magic, layout version, sizes): a mismatch gives SAGE_EVERSION or
 * SAGE_EPROTO, a missing one SAGE_ENOENT, a bad name SAGE_EINVAL. Unless
 * opts->flags has SAGE_QUEUE_ANY_OWNER, a segment owned by another user or
 * writable by group or others gives SAGE_EPERM; a symbolic link or a file
 * that is not regular always does; the detail names the file and its owner.
 * opts may be NULL for defaults. Thread-safe.
 */
SAGE_API sage_err sage_queue_open(sage_queue **qp, const char *name, const sage_queue_opts *opts);

/*
 * sage_queue_close releases the handle: unmaps the segment and frees this
 * process's producer slots (the queue itself stays, see sage_queue_unlink
 * and sage_queue_shutdown). No other thread may be using q.
 * sage_queue_close(NULL) does nothing.
 */
SAGE_API void sage_queue_close(sage_queue *q);

/*
 * sage_queue_shutdown shuts the queue itself down, for every process: later
 * sends fail with SAGE_ECLOSED, receives return what is still queued and then
 * SAGE_ECLOSED (a claim still uncommitted at the head gets one second, then
 * is left behind), and every sender and receiver blocked on it, in any
 * process, wakes. Only the process that created the queue or its current
 * consumer may shut a named queue down; any other gets SAGE_EPERM. The stats
 * record who did. The handle stays valid until sage_queue_close.
 * Thread-safe; does not block; shutting down twice is harmless.
 */
SAGE_API sage_err sage_queue_shutdown(sage_queue *q);

/*
 * sage_queue_unlink removes the named queue's segment; handles already open
 * keep working until freed. SAGE_ENOENT if there is none; SAGE_EPERM, and
 * nothing removed, if it is not this user's own regular file (even for
 * root, who could remove any file).
 */
SAGE_API sage_err sage_queue_unlink(const char *name);

/*
 * sage_queue_send copies len bytes from data in as one message. When the
 * queue is full it waits up to timeout_ms for room, then fails with
 * SAGE_EFULL (also at once with timeout 0). SAGE_EMSGSIZE if len exceeds
 * max_msg, SAGE_ECLOSED if closed, SAGE_EPROTO if the queue is corrupt,
 * SAGE_EUNAVAILABLE if the queue stays full and its consumer process has
 * died. Thread-safe, any number of threads and processes.
 */
SAGE_API sage_err sage_queue_send(sage_queue *q, const void *data, size_t len, int timeout_ms);

/* sage_queue_sendv is sage_queue_send gathering the message from iovcnt
 * pieces; it is sent as one message. */
SAGE_API sage_err sage_queue_sendv(sage_queue *q, const struct iovec *iov, int iovcnt, int timeout_ms);

/*
 * sage_queue_claim reserves room in q for a len-byte message and writes a
 * pointer to it in *bufp, to be filled in place and then published with
 * sage_queue_commit or dropped with sage_queue_abort. Waits for room like
 * sage_queue_send. A thread holds at most one claim per queue at a time
 * (SAGE_EBUSY otherwise). The consumer cannot pass an uncommitted record, so
 * commit promptly.
 */
SAGE_API sage_err sage_queue_claim(void **bufp, sage_queue *q, size_t len, int timeout_ms);

/* sage_queue_commit publishes the message claimed at buf by this thread. */
SAGE_API sage_err sage_queue_commit(sage_queue *q, void *buf);

/* sage_queue_abort gives back the claim at buf; the consumer skips it. */
SAGE_API sage_err sage_queue_abort(sage_queue *q, void *buf);

/*
 * sage_queue_recv takes q's oldest message, copying it to buf (cap bytes)
 * and its length to *lenp. Waits up to timeout_ms for one, then fails with
 * SAGE_ETIMEDOUT. If cap is too small it fails with SAGE_EMSGSIZE, stores the
 * needed size in *lenp, and leaves the message queued. After close: queued
 * messages, then SAGE_ECLOSED. SAGE_EPROTO, for this and every later call,
 * once the queue is found corrupt: a malformed record, impossible positions,
 * or a record no producer accounts for during a second. Only one thread of
 * one process consumes a queue at a time: another live consumer gives
 * SAGE_EBUSY.
 */
SAGE_API sage_err sage_queue_recv(size_t *lenp, sage_queue *q, void *buf, size_t cap,
                                  int timeout_ms);

/*
 * sage_queue_fn receives one message during sage_queue_drain. data is
 * borrowed: it points into the ring and is valid only during the call.
 */
typedef void (*sage_queue_fn)(void *arg, const void *data, size_t len);

/*
 * sage_queue_drain waits up to timeout_ms for at least one message, then
 * hands up to max queued messages (0: no limit) in order to fn on the calling
 * thread, and frees their room at once when fn has seen them all. Stores the
 * number delivered in *countp (may be NULL). Same errors and consumer rule
 * as sage_queue_recv. fn must not call recv or drain on q.
 */
SAGE_API sage_err sage_queue_drain(size_t *countp, sage_queue *q, sage_queue_fn fn, void *arg,
                                   size_t max, int timeout_ms);

/* Figures of a queue, read from its shared header. */
typedef struct sage_queue_stats {
    uint64_t capacity;    /* ring bytes */
    uint64_t max_msg;     /* largest payload */
    uint64_t max_msgs;    /* message bound (0: bytes only) */
    uint64_t msgs_in;     /* messages committed */
    uint64_t bytes_in;    /* payload bytes committed */
    uint64_t msgs_out;    /* messages delivered to the consumer */
    uint64_t bytes_out;   /* payload bytes delivered */
    uint64_t depth_msgs;  /* claims queued now (committed or not) */
    uint64_t depth_bytes; /* ring bytes in use now */
    uint64_t full_events; /* sends that found the queue full */
    uint64_t wakeups;     /* futex wake-ups issued, both directions */
    uint64_t recovered;   /* claims of dead producers skipped */
    uint64_t aborted;     /* claims given back with sage_queue_abort */
    int32_t creator_pid;  /* process that created the segment */
    int32_t consumer_pid; /* current consumer, 0 if none */
    bool consumer_alive;  /* consumer_pid names a live process */
    bool closed;          /* the queue was shut down (sage_queue_shutdown) */
    int64_t created_ns;   /* creation time, ns since the epoch */
    int32_t closed_by_pid; /* process that shut it down; 0 if open, or if closed by
                              a write from outside this library */
    bool corrupt;          /* the queue is known corrupt or its positions are
                              impossible: it will not deliver any more */
    char corrupt_reason[SAGE_REASON_MAX + 1]; /* what is wrong when corrupt, else "" */
} sage_queue_stats;

/*
 * sage_queue_stats_read fills *st with q's figures, read from the shared
 * header without locking (each figure is exact, the set is not a snapshot).
 * It also checks q's health cheaply: corrupt is set if this handle or any
 * process found the queue corrupt, or if head and tail, read as a pair, are
 * impossible. Thread-safe, does not block.
 */
SAGE_API sage_err sage_queue_stats_read(sage_queue_stats *st, sage_queue *q);

/* sage_queue_name returns q's name (borrowed), or "" for a private queue. */
SAGE_API const char *sage_queue_name(const sage_queue *q);

/*
 * sage_queue_check_name returns SAGE_OK if name is a valid queue name, else
 * SAGE_EINVAL with the reason as detail.
 */
SAGE_API sage_err sage_queue_check_name(const char *name);

/* SAGE_QUEUE_PATH_MAX: room enough for any sage_queue_path, terminator
 * included. */
#define SAGE_QUEUE_PATH_MAX (SAGE_QUEUE_NAME_MAX + 32)

/*
 * sage_queue_path writes where the named queue lives, the file of its
 * shared-memory segment (/dev/shm/sage.q.NAME on Linux), into buf of cap
 * bytes, for messages and tools; SAGE_QUEUE_PATH_MAX bytes always suffice.
 * The queue need not exist. SAGE_EINVAL if name is not a valid queue name
 * or buf is too small. Thread-safe, does not block.
 */
SAGE_API sage_err sage_queue_path(char *buf, size_t cap, const char *name);

/*
 * sage_queue_list_fn receives one queue's name during sage_queue_list. name
 * is borrowed, valid during the call only. Return true to go on, false to
 * end the listing.
 */
typedef bool (*sage_queue_list_fn)(void *arg, const char *name);

/*
 * sage_queue_list calls fn for each named queue of this user (a segment
 * /dev/shm/sage.q.NAME owned by the effective uid) whose name starts with
 * prefix (NULL or "": all), in no particular order. It opens no segment;
 * entries that are not regular files or not valid queue names are passed
 * over. SAGE_EINVAL if fn is NULL or prefix is too long, SAGE_ESYS if the
 * directory cannot be read. Thread-safe; fn runs on the calling thread, no
 * lock held, and may open or unlink queues (a queue made or removed during
 * the listing may or may not be reported).
 */
SAGE_API sage_err sage_queue_list(const char *prefix, sage_queue_list_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* SAGE_QUEUE_H */
