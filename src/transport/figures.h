/*
 * figures.h - the live figures of one serving task: who it is, what it has
 * done, how long its calls took, and whether it is healthy.
 *
 * The runtime updates them on every call; a transport decides where they
 * live: in the heap (local, nats), or in the service's registry entry in
 * shared memory (shm), so that any process of the same user reads them
 * (`sagesvc status`). Identity fields are written once before the block is
 * published; the rest are atomics. A reader in another process may see a
 * block written by a hostile or dying peer: every string read from it is
 * bounded, every count taken as it is.
 *
 * Health (sage__fig_health): a task is degraded while, over the last
 * SAGE__FIG_WINDOW_S seconds, at least SAGE__FIG_MIN_CALLS calls were
 * answered and the share of them that failed on the service's side (an
 * error other than the caller's own: no such method, bad arguments,
 * rejected, malformed) is at or above its error threshold; or while its
 * request queue has stayed full for longer than its queue timeout. It
 * leaves that state as soon as neither holds.
 */
#ifndef SAGE_TRANSPORT_FIGURES_H
#define SAGE_TRANSPORT_FIGURES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sage/task.h"
#include "transport/hist.h"

#define SAGE__FIG_METHODS 32 /* methods with figures of their own */
#define SAGE__FIG_WINDOW_S 10
#define SAGE__FIG_MIN_CALLS 10

/* One method's figures. Calls served are not counted apart: each adds one
 * to its histogram, whose total is the request count. */
struct sage__fig_method {
    char name[72];
    _Atomic uint64_t errors;
    _Atomic uint64_t lat_sum_ns;
    struct sage__hist lat;
};

/* A one-second slot of the health window. */
struct sage__fig_slot {
    _Atomic int64_t second; /* wall-clock second it counts, 0: unused */
    _Atomic uint64_t calls;
    _Atomic uint64_t failures;
};

struct sage__figures {
    /* identity: written once, before the block is published */
    char name[72];
    char ns[72];
    int32_t pid;
    uint32_t transport; /* sage_transport */
    uint64_t pid_start; /* the owner's start time: (pid, start) names a process */
    int64_t started_ns; /* wall clock */
    int64_t started_mono_ns;
    uint32_t max_workers;
    uint32_t request_queue_size;
    uint32_t queue_timeout_ms;
    uint32_t error_threshold_ppm; /* degraded at this failure share (parts per million) */
    uint64_t max_request;
    char idempotent[512]; /* its idempotent methods, comma-separated (a prefix of them) */

    /* live */
    _Atomic uint32_t state; /* sage_state as the task set it */
    _Atomic int64_t heartbeat_ns;
    _Atomic int64_t last_activity_ns;
    _Atomic int64_t full_since_ns; /* wall clock the queue was first seen full, 0: not full */
    _Atomic uint64_t errors;
    _Atomic uint64_t in_flight;
    _Atomic uint64_t expired;
    _Atomic uint64_t malformed;
    _Atomic uint64_t rejected;
    _Atomic uint64_t dropped;
    _Atomic uint32_t drop_seq; /* odd while last_drop is being written */
    _Atomic char last_drop[SAGE_REASON_MAX + 1];
    _Atomic uint32_t reason_seq;  /* odd while reason is being written */
    _Atomic char reason[SAGE_REASON_MAX + 1]; /* why the state is what it is (failed, ...) */
    struct sage__fig_slot window[SAGE__FIG_WINDOW_S];
    uint32_t nmethods;
    struct sage__fig_method methods[SAGE__FIG_METHODS];
    _Atomic uint64_t lat_sum_ns;
    struct sage__hist lat;
};

/* sage__fig_init fills the identity of a zeroed block (this process as
 * its owner). */
void sage__fig_init(struct sage__figures *f, const char *ns, const char *name,
                    sage_transport transport);

/* sage__fig_count records one answered call: took_ns, and whether it
 * failed on the service's side (health) and at all (errors). */
void sage__fig_count(struct sage__figures *f, struct sage__fig_method *m, int64_t took_ns,
                     sage_err status);

/* sage__fig_set_drop records why a request was dropped unanswered. */
void sage__fig_set_drop(struct sage__figures *f, const char *why);

/* sage__fig_set_state sets the task's state and the reason for it ("" for
 * none). */
void sage__fig_set_state(struct sage__figures *f, sage_state s, const char *reason);

/* sage__fig_owner_alive tells whether the block's owner process lives (pid
 * and start time both match). */
bool sage__fig_owner_alive(const struct sage__figures *f);

/* sage__fig_health returns the state a reader should report, with its
 * reason in buf: the task's own state, dead owners as failed, and running
 * turned degraded by the health rule above. */
sage_state sage__fig_health(const struct sage__figures *f, int64_t now_wall_ns, char *buf,
                            size_t cap);

/* sage__fig_status fills *st from the block (queue figures from the
 * caller: queue_depth, queue_full). */
void sage__fig_status(const struct sage__figures *f, uint64_t queue_depth, uint64_t queue_full,
                      sage_status *st);

#endif
