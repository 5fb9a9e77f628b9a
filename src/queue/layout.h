/*
 * layout.h - the shared-memory layout of a sage_queue segment (version 2).
 *
 *   [0, 1024)             header: identity, then hot words each on its own
 *                         128-byte block (a block covers the adjacent-line
 *                         prefetcher's pair of cache lines)
 *   [slots_off, +64*n)    producer slots, one per producer thread
 *   [ring_off, +capacity) the ring of records
 *
 * Positions. tail (next free byte, claimed by producers) and head (next byte
 * to consume, written by the consumer alone) are 64-bit words packing a
 * 40-bit byte position (low bits) and a 24-bit claim count (high bits); both
 * wrap modulo their width, and ring index = position & (capacity - 1). A
 * producer claims room for one record with one CAS on tail, which advances
 * position and count together, so the message bound costs nothing extra.
 *
 * Records are 8-byte aligned; each starts with one 64-bit word: low 32 bits
 * the record length (header included, before alignment), high 32 bits a tag.
 * Zero means "not written yet": the consumer zeroes all it consumed before
 * it publishes the new head, so claimed but unwritten room reads as zero.
 *   TAG_MSG     a committed message
 *   TAG_PAD     filler to the ring's end, ahead of a record that did not fit
 *   TAG_SKIP    a claim given back (abort) or recovered from a dead producer
 *   TAG_INPROG  claimed, being written; the low 16 bits name the slot
 *
 * Producer slots. Before its CAS a producer writes the claim it is trying
 * (the tail value and total length) into its own slot; after the CAS it
 * writes TAG_INPROG|slot into the record. A record left INPROG or zero by a
 * dead process is found through the slot and turned into TAG_SKIP.
 *
 * Processes. Wherever the segment records a process (the creator, the
 * consumer, a slot's owner, the closer) it stores one 64-bit identity word:
 * the pid in the low 32 bits and the process's start time (clock ticks since
 * boot, modulo 2^32) in the high 32, so a pid taken over by an unrelated
 * process does not pass for the one recorded. Zero means "nobody"; a start
 * time of 0 means "unknown" (no /proc) and the pid alone is compared. One
 * word, so it is taken and given back by one CAS, never seen half written.
 *
 * State. One word, read by every send: SQ_ST_CLOSED once the creator or the
 * consumer closed the queue (closed_by says who), SQ_ST_CORRUPT once a
 * process found the queue in an impossible state (corrupt_code says which,
 * first finder wins). Both are sticky.
 */
#ifndef SAGE_QUEUE_LAYOUT_H
#define SAGE_QUEUE_LAYOUT_H

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SQ_MAGIC 0x3155455545474153ull /* "SAGEQUE1" little-endian */
#define SQ_VERSION 2u
#define SQ_HDR_SIZE 1024u
#define SQ_SLOT_SIZE 64u
#define SQ_MIN_CAPACITY 4096u
#define SQ_MAX_CAPACITY (1ull << 32)
#define SQ_MAX_SLOTS 65536u

#define SQ_POS_BITS 40
#define SQ_POS_MASK ((1ull << SQ_POS_BITS) - 1)
#define SQ_CNT_MASK ((1ull << (64 - SQ_POS_BITS)) - 1)
#define SQ_MAX_MSGS ((uint32_t)(SQ_CNT_MASK >> 1))

#define SQ_TAG_MSG 0x4753454du  /* "MESG" */
#define SQ_TAG_PAD 0x44444150u  /* "PADD" */
#define SQ_TAG_SKIP 0x50494b53u /* "SKIP" */
#define SQ_TAG_INPROG 0x80000000u
#define SQ_REC_HDR 8u

#define SQ_CLAIM_NONE UINT64_MAX

/* bits of sq_hdr.state */
#define SQ_ST_CLOSED 0x1u
#define SQ_ST_CORRUPT 0x2u

/* sq_hdr.corrupt_code: what made a process declare the queue corrupt */
enum sq_bad {
    SQ_BAD_NONE = 0,
    SQ_BAD_RECORD,         /* a record's word is malformed */
    SQ_BAD_TAIL_ALIGN,     /* tail is not 8-byte aligned */
    SQ_BAD_HEAD_ALIGN,     /* head is not 8-byte aligned */
    SQ_BAD_HEAD_PAST_TAIL, /* head is ahead of tail */
    SQ_BAD_TAIL_AHEAD,     /* tail is more than a ring ahead of head */
    SQ_BAD_COUNT,          /* claim count does not fit the bytes in use */
    SQ_BAD_HEAD_MOVED,     /* head was written by someone else than the consumer */
    SQ_BAD_UNCLEAR,        /* an uncommitted claim no producer slot accounts for */
    SQ_BAD_MAX
};

/* Header of a segment. Fields after the identity block are atomics: they
 * are shared between processes and written concurrently. */
struct sq_hdr {
    /* identity: written once by the creator, before magic is published */
    _Atomic uint64_t magic;
    uint32_t version;
    uint32_t hdr_size;
    uint64_t capacity;
    uint64_t max_msg;
    uint32_t max_msgs;
    uint32_t nslots;
    uint64_t slots_off;
    uint64_t ring_off;
    uint64_t seg_size;
    uint64_t creator; /* identity word of the creating process */
    int64_t created_ns;
    uint32_t flags;
    /* written once each, read by every send (state) */
    _Atomic uint32_t state;        /* SQ_ST_ bits */
    _Atomic uint64_t closed_by;    /* identity word of the process that closed it */
    _Atomic uint32_t corrupt_code; /* enum sq_bad, once SQ_ST_CORRUPT is set */
    uint8_t pad0_[128 - 100];

    /* producers: claimed by CAS, one write per message */
    _Atomic uint64_t tail;
    uint8_t pad1_[128 - 8];

    /* consumer: written once per batch */
    _Atomic uint64_t head;
    _Atomic uint64_t msgs_out;
    _Atomic uint64_t bytes_out;
    _Atomic uint64_t recovered; /* claims of dead producers skipped */
    _Atomic uint64_t skipped;   /* SKIP records consumed (aborted + recovered) */
    uint8_t pad2_[128 - 40];

    /* consumer's wait state: written on park and unpark */
    _Atomic uint32_t data_seq;
    _Atomic uint32_t cons_waiting;
    _Atomic uint64_t cons; /* identity word of the consumer process, 0 if none */
    _Atomic uint32_t cons_cpu;
    _Atomic uint32_t cons_asym; /* 1: the consumer parks behind membarrier(2) */
    uint8_t pad3_[128 - 24];

    /* producers waiting for room: written on park and unpark */
    _Atomic uint32_t space_seq;
    _Atomic uint32_t space_waiters;
    uint8_t pad4_[128 - 8];

    /* rarely written counters */
    _Atomic uint64_t full_events;
    _Atomic uint64_t wakeups;
    _Atomic uint64_t retired_msgs_in;  /* msgs_in of released slots */
    _Atomic uint64_t retired_bytes_in; /* bytes_in of released slots */
    _Atomic uint32_t last_prod_cpu;    /* written only when it changes */
    uint8_t pad5_[128 - 36];

    uint8_t reserved_[SQ_HDR_SIZE - 6 * 128];
};

/* One producer thread's slot. Written by its owner on every claim; read by
 * the consumer only when a record is stuck. */
struct sq_slot {
    _Atomic uint64_t owner; /* identity word of the owner process, 0 when free */
    _Atomic int32_t tid;    /* owner thread, for people reading stats */
    uint32_t pad0_;
    _Atomic uint64_t claim; /* packed tail value being claimed, or SQ_CLAIM_NONE */
    _Atomic uint64_t total; /* bytes of that claim, padding included */
    _Atomic uint64_t msgs;  /* messages committed through this slot */
    _Atomic uint64_t bytes; /* payload bytes committed through this slot */
    uint8_t pad_[SQ_SLOT_SIZE - 48];
};

/* The first word of every record. */
struct sq_rec {
    _Atomic uint64_t word;
};

static_assert(sizeof(struct sq_hdr) == SQ_HDR_SIZE, "header size");
static_assert(offsetof(struct sq_hdr, creator) == 64, "identity block");
static_assert(offsetof(struct sq_hdr, state) == 84, "state word");
static_assert(offsetof(struct sq_hdr, closed_by) == 88, "closed_by");
static_assert(offsetof(struct sq_hdr, corrupt_code) == 96, "corrupt_code");
static_assert(offsetof(struct sq_hdr, tail) == 128, "tail block");
static_assert(offsetof(struct sq_hdr, head) == 256, "head block");
static_assert(offsetof(struct sq_hdr, data_seq) == 384, "consumer wait block");
static_assert(offsetof(struct sq_hdr, cons) == 392, "consumer identity");
static_assert(offsetof(struct sq_hdr, space_seq) == 512, "space wait block");
static_assert(offsetof(struct sq_hdr, full_events) == 640, "counters block");
static_assert(sizeof(struct sq_slot) == SQ_SLOT_SIZE, "slot size");
static_assert(offsetof(struct sq_slot, claim) == 16, "slot claim");
static_assert(sizeof(_Atomic uint64_t) == 8 && sizeof(_Atomic uint32_t) == 4, "atomic widths");

static inline uint64_t sq_pos(uint64_t v)
{
    return v & SQ_POS_MASK;
}

static inline uint64_t sq_cnt(uint64_t v)
{
    return v >> SQ_POS_BITS;
}

static inline uint64_t sq_pack(uint64_t pos, uint64_t cnt)
{
    return (pos & SQ_POS_MASK) | ((cnt & SQ_CNT_MASK) << SQ_POS_BITS);
}

static inline uint64_t sq_word(uint32_t tag, uint32_t len)
{
    return ((uint64_t)tag << 32) | len;
}

/* sq_ident packs a process identity word (see "Processes" above). */
static inline uint64_t sq_ident(int32_t pid, uint64_t start)
{
    return (uint64_t)(uint32_t)pid | (uint64_t)(uint32_t)start << 32;
}

static inline int32_t sq_ident_pid(uint64_t id)
{
    return (int32_t)(uint32_t)id;
}

static inline uint32_t sq_ident_start(uint64_t id)
{
    return (uint32_t)(id >> 32);
}

static inline uint64_t sq_align8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

#endif
