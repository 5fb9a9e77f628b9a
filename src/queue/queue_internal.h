/* queue_internal.h - the handle of a sage_queue and the helpers its files share. */
#ifndef SAGE_QUEUE_INTERNAL_H
#define SAGE_QUEUE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "queue/layout.h"
#include "sage/queue.h"

#define SQ_WHY_MAX 96 /* a corruption's reason, as sage_queue_stats carries it */

/*
 * The handle. Everything the ring's geometry depends on is copied out of the
 * shared header once, at open, after validation: a peer that scribbles on the
 * header later cannot make this process index outside its mapping.
 */
struct sage_queue {
    struct sq_hdr *hdr;
    struct sq_slot *slots;
    uint8_t *ring;
    size_t map_size;   /* bytes this handle unmaps at free; 0: the caller's memory */
    uint64_t cap;      /* ring bytes, a power of two */
    uint64_t mask;     /* cap - 1 */
    uint64_t max_msg;  /* largest payload */
    uint64_t max_msgs; /* effective message bound */
    uint32_t nslots;
    bool shared; /* named (process-shared futexes) or private */
    int ncpu;
    int64_t spin_ns;
    char name[SAGE_QUEUE_NAME_MAX + 1];

    /* producer side */
    _Atomic uint64_t head_cache; /* last head seen by this process's producers */
    bool asym;                   /* this process may skip the commit fence */

    /* consumer side: one thread at a time, guarded by consuming */
    _Atomic int consuming;
    bool is_consumer;
    uint32_t cons_gen;  /* fork generation in which is_consumer was set */
    uint64_t cons_head; /* consumed (and, between batches, given back) to here */
    bool cons_asym;     /* this consumer sleeps behind a heavy barrier */
    uint64_t unclear_head; /* cons_head when the record there became unclear */
    int64_t unclear_since; /* since when (0: it is not) (recover.c) */
    int64_t closed_stuck;  /* when a closed queue was first seen stuck (consume.c) */

    /* health (health.c): 0 sound, 1 being marked, 2 corrupt with why set */
    _Atomic int corrupt;
    char why[SQ_WHY_MAX];

    /* slot bookkeeping (slots.c), under the registry lock */
    uint64_t serial;
    uint32_t owned_gen;   /* fork generation the owned bitmap belongs to */
    uint64_t *owned;      /* bitmap of slots this process took through q */
    sage_queue *reg_next; /* registry of live handles */
    sage_queue *reg_prev;
};

/* ident.c: process identity words (layout.h, "Processes"). */

/* sage__sq_me returns the calling process's identity word (no system call). */
uint64_t sage__sq_me(void);

/* sage__sq_alive tells whether the identity word id names a live process:
 * its pid is alive and, when both start times are known, started when id
 * says. 0 names nobody. Costs a system call and a /proc read. */
bool sage__sq_alive(uint64_t id);

/* health.c: the corrupt state. */

/* sage__sq_fail marks q corrupt: this handle (every later receive fails;
 * the reason, printf-style and without the queue's name, is kept for
 * stats) and the shared header (code, and the SQ_ST_CORRUPT bit, so every
 * process's senders and receivers fail too), wakes every waiter of both
 * sides, and returns SAGE_EPROTO with a detail naming the queue and reason. */
sage_err sage__sq_fail(sage_queue *q, enum sq_bad code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* sage__sq_corrupt is sage__sq_fail for a malformed record: the detail
 * names the record at pos, its word w, and why. */
sage_err sage__sq_corrupt(sage_queue *q, uint64_t pos, uint64_t w, const char *why);

/* sage__sq_shut_err returns what a send gets from a queue whose state word
 * is st (non-zero): SAGE_EPROTO with the header's reason if it is corrupt,
 * else SAGE_ECLOSED. */
sage_err sage__sq_shut_err(sage_queue *q, uint32_t st);

/* sage__sq_bad_positions tells why tail T and head H cannot both hold (an
 * SQ_BAD_ code), or SQ_BAD_NONE. The pair must have been true at one
 * moment: H read while tail stayed T, or T read while head stayed H. */
enum sq_bad sage__sq_bad_positions(const sage_queue *q, uint64_t T, uint64_t H);

/* sage__sq_reason returns the text for a corrupt_code read from a header
 * (any value: an unknown one gets a generic text). */
const char *sage__sq_reason(uint32_t code);

/* sage__sq_health fills st's corrupt and corrupt_reason: what this handle
 * found, else what the header says, else a cheap look at the positions. */
void sage__sq_health(sage_queue *q, sage_queue_stats *st);

/* slots.c: per-thread producer slots. */

/* sage__sq_register adds q to the registry of live handles (at open). */
void sage__sq_register(sage_queue *q);

/* sage__sq_unregister removes q and releases every slot this process took
 * through it (at free). */
void sage__sq_unregister(sage_queue *q);

/* sage__sq_slot returns the calling thread's slot in q, taking one on first
 * use, and its index in *idx; NULL when every slot is in use (detail set). */
struct sq_slot *sage__sq_slot(sage_queue *q, uint32_t *idx);

/* layout.c */

/* sage__sq_init_segment writes a fresh header and slot table into mem. */
void sage__sq_init_segment(void *mem, uint64_t cap, uint64_t max_msg, uint32_t max_msgs,
                           uint32_t nslots, uint64_t ring_off, uint64_t seg_size);

/* sage__sq_attach validates the header at mem (size bytes) and fills q's
 * geometry from it. Never reads outside [mem, mem + size). */
sage_err sage__sq_attach(sage_queue *q, void *mem, size_t size);

/* sage__sq_ring_off returns where the ring starts for nslots slots. */
uint64_t sage__sq_ring_off(uint32_t nslots);

/* consume.c */

/* A consume callback that may decline a message: non-zero leaves it queued
 * and ends the batch. */
typedef int (*sage__sq_take_fn)(void *arg, const void *data, size_t len);

/* sage__sq_consume is drain with a declining callback. */
sage_err sage__sq_consume(sage_queue *q, sage__sq_take_fn fn, void *arg, size_t max, int timeout_ms,
                          size_t *countp);

/* queue.c */

/* sage__sq_open_mem wraps a handle around a segment in caller-owned memory
 * (validated like any other; private futexes). For the fuzzer and tests. */
sage_err sage__sq_open_mem(sage_queue **qp, void *mem, size_t size);

/* produce.c */

#ifdef SAGE_TEST_HOOKS
/* Test hook, in test builds only (SAGE_TEST_HOOKS; never in the shipped
 * libraries): when set, called by a producer between winning its claim and
 * marking the record in progress (the narrowest window a crash can hit). */
extern void (*sage__sq_hook_after_claim)(void);
#endif

#endif
