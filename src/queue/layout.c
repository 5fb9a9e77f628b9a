/* layout.c - writing and validating a segment's header (the layout: layout.h). */
#include "base/err_internal.h"
#include "platform/clock.h"
#include "platform/proc.h"
#include "queue/queue_internal.h"

uint64_t sage__sq_ring_off(uint32_t nslots)
{
    return (SQ_HDR_SIZE + (uint64_t)nslots * SQ_SLOT_SIZE + 4095) & ~(uint64_t)4095;
}

void sage__sq_init_segment(void *mem, uint64_t cap, uint64_t max_msg, uint32_t max_msgs,
                           uint32_t nslots, uint64_t ring_off, uint64_t seg_size)
{
    struct sq_hdr *h = mem;
    struct sq_slot *slots = (struct sq_slot *)((uint8_t *)mem + SQ_HDR_SIZE);

    h->version = SQ_VERSION;
    h->hdr_size = SQ_HDR_SIZE;
    h->capacity = cap;
    h->max_msg = max_msg;
    h->max_msgs = max_msgs;
    h->nslots = nslots;
    h->slots_off = SQ_HDR_SIZE;
    h->ring_off = ring_off;
    h->seg_size = seg_size;
    h->creator = sage__sq_me();
    h->created_ns = sage__wall_ns();
    for (uint32_t i = 0; i < nslots; i++)
        atomic_store_explicit(&slots[i].claim, SQ_CLAIM_NONE, memory_order_relaxed);
    /* release: openers that acquire the magic see every field above */
    atomic_store_explicit(&h->magic, SQ_MAGIC, memory_order_release);
}

sage_err sage__sq_attach(sage_queue *q, void *mem, size_t size)
{
    struct sq_hdr *h = mem;
    uint64_t cap, ring_off;

    if (size < SQ_HDR_SIZE)
        return SAGE_SETERR(SAGE_EPROTO, "queue '%s': segment of %zu bytes is too small", q->name,
                           size);
    if (atomic_load_explicit(&h->magic, memory_order_acquire) != SQ_MAGIC)
        return SAGE_SETERR(SAGE_EPROTO, "queue '%s': not a sage queue (bad magic)", q->name);
    if (h->version != SQ_VERSION)
        return SAGE_SETERR(SAGE_EVERSION, "queue '%s': layout version %u, this library speaks %u",
                           q->name, h->version, SQ_VERSION);
    cap = h->capacity;
    if (h->hdr_size != SQ_HDR_SIZE || cap < SQ_MIN_CAPACITY || cap > SQ_MAX_CAPACITY ||
        (cap & (cap - 1)) != 0 || h->nslots == 0 || h->nslots > SQ_MAX_SLOTS ||
        h->slots_off != SQ_HDR_SIZE || h->max_msg > cap / 2 - SQ_REC_HDR ||
        h->max_msgs > SQ_MAX_MSGS)
        return SAGE_SETERR(SAGE_EPROTO, "queue '%s': corrupt header (sizes out of range)",
                           q->name);
    ring_off = sage__sq_ring_off(h->nslots);
    if (h->ring_off != ring_off || h->seg_size != ring_off + cap || h->seg_size != size)
        return SAGE_SETERR(SAGE_EPROTO,
                           "queue '%s': corrupt header (segment is %zu bytes, header says %llu)",
                           q->name, size, (unsigned long long)h->seg_size);
    q->hdr = h;
    q->slots = (struct sq_slot *)((uint8_t *)mem + SQ_HDR_SIZE);
    q->ring = (uint8_t *)mem + ring_off;
    q->cap = cap;
    q->mask = cap - 1;
    q->max_msg = h->max_msg;
    q->max_msgs = h->max_msgs ? h->max_msgs : SQ_MAX_MSGS;
    q->nslots = h->nslots;
    return SAGE_OK;
}
