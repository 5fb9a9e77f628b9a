/*
 * hostreg.h - the host registry: one shm segment per host-registered
 * service ("/sage.r.<uid>.<ns>.<name>"), holding who serves it, where, and
 * its live figures. Any process of the same user can open it to check that
 * the service's owner lives and read its status; callers derive the request
 * queue's name themselves (names.h) rather than trust the queue field.
 * Entries of other users are refused (hostreg.c's design notes).
 *
 * The same struct, in heap memory, carries the figures of local tasks: one
 * code path updates both.
 */
#ifndef SAGE_RUNTIME_HOSTREG_H
#define SAGE_RUNTIME_HOSTREG_H

#include <stdatomic.h>
#include <stdint.h>

#include "runtime/hist.h"
#include "sage/task.h"

#define SAGE__REG_MAGIC 0x3147455245474153ull /* "SAGEREG1" */
#define SAGE__REG_VERSION 1u
#define SAGE__REG_METHODS 32

/* Calls served are not counted apart: each adds one to its latency
 * histograms, whose totals are the request counts. */
struct sage__reg_method {
    char name[72];
    _Atomic uint64_t errors;
    _Atomic uint64_t lat_sum_ns;
    struct sage__hist lat;
};

/* The segment. Identity fields are written once before magic is published;
 * the rest are atomics updated while the task runs. */
struct sage__reg {
    _Atomic uint64_t magic;
    uint32_t version;
    uint32_t size; /* sizeof(struct sage__reg) of the writer */
    char name[72];
    char ns[72];
    char queue[160];
    int32_t pid;
    uint32_t uid;
    uint64_t pid_start; /* the owner's start time: (pid, start) names a process */
    int64_t started_ns; /* wall clock */
    int64_t started_mono_ns;
    uint32_t transport;
    uint32_t max_workers;
    uint32_t request_queue_size;
    uint32_t queue_timeout_ms;
    uint64_t max_request;

    _Atomic uint32_t state; /* sage_state */
    _Atomic int64_t heartbeat_ns;
    _Atomic int64_t last_activity_ns;
    _Atomic uint64_t errors;
    _Atomic uint64_t in_flight;
    _Atomic uint64_t expired;
    _Atomic uint64_t malformed;
    _Atomic uint64_t rejected;
    _Atomic uint32_t drop_seq; /* odd while last_drop is being written */
    char last_drop[128];
    uint32_t nmethods;
    struct sage__reg_method methods[SAGE__REG_METHODS];
    _Atomic uint64_t lat_sum_ns;
    struct sage__hist lat;
};

/*
 * sage__reg_create makes this process's registry entry for ns/name, taking
 * over (and cleaning) an entry whose owner died. SAGE_EEXIST, with the
 * owner's pid in the detail, if a live process holds the name; SAGE_EPERM,
 * naming the file and its owner, if the entry or the registry lock is not
 * this user's own; SAGE_EBUSY if the lock stays held for 5 s. The entry is
 * mapped into *regp; unmap with sage__reg_destroy.
 */
sage_err sage__reg_create(struct sage__reg **regp, const char *ns, const char *name);

/* sage__reg_remove_stale removes ns/name's entry and its request queue if
 * the entry's owner is dead (under the registry lock: never an entry that
 * a new owner has just taken over). */
void sage__reg_remove_stale(const char *ns, const char *name);

/* sage__reg_publish makes a created entry visible to readers: call it once
 * every identity field is written (release ordering on magic). */
void sage__reg_publish(struct sage__reg *reg);

/* sage__reg_destroy removes the entry (if still ours) and unmaps it. */
void sage__reg_destroy(struct sage__reg *reg, const char *ns, const char *name);

/* sage__reg_open maps ns/name's entry read-write for reading its figures and
 * identity; SAGE_ENOSERVICE if there is none, SAGE_EPERM if the file is not
 * this user's own or records another uid. Unmap with sage__reg_close. */
sage_err sage__reg_open(struct sage__reg **regp, const char *ns, const char *name);

/* sage__reg_close unmaps an entry opened with sage__reg_open. */
void sage__reg_close(struct sage__reg *reg);

/* sage__reg_owner_alive tells whether the entry's owner process lives (pid
 * and start time both match). */
int sage__reg_owner_alive(const struct sage__reg *reg);

/* sage__reg_set_drop records why a request was dropped unanswered. */
void sage__reg_set_drop(struct sage__reg *reg, const char *why);

/* sage__reg_status fills *st from the entry (queue_depth from queue_depth). */
void sage__reg_status(const struct sage__reg *reg, uint64_t queue_depth, sage_status *st);

#endif
