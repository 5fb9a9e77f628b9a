/*
 * fuzz_queue.c - random segment contents against sage_queue.
 *
 * The input's first byte picks a mode; the rest is written over a segment:
 * - raw: over the whole segment, header included (attach must refuse or
 *   accept it without reading out of bounds);
 * - shaped: a valid header is built first (4 KiB ring, a few slots) and the
 *   input overwrites everything after the identity block: head, tail,
 *   counters, slots and ring, as a hostile peer could.
 * Then a bounded sequence of non-blocking consumer and producer operations,
 * stats reads (which check the positions) and a close runs. Nothing may
 * crash, hang or touch memory outside the segment (ASan guards the
 * segment's edges: it is a heap block of exactly its size).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue_internal.h"
#include "sage/queue.h"

#define CAP 4096u

static void take(void *arg, const void *data, size_t len)
{
    volatile const uint8_t *p = data;
    uint8_t x = 0;

    for (size_t i = 0; i < len; i++) /* touch every byte handed out */
        x ^= p[i];
    *(uint8_t *)arg ^= x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t nslots;
    uint64_t ring_off, seg;
    uint8_t *mem, mode, sink = 0, buf[CAP];
    sage_queue *q = NULL;

    if (size < 1)
        return 0;
    mode = data[0];
    data++;
    size--;
    nslots = 1 + (mode >> 4 & 7);
    ring_off = sage__sq_ring_off(nslots);
    seg = ring_off + CAP;
    mem = calloc(1, seg);
    if (mem == NULL)
        return 0;
    if (mode & 1) {
        memcpy(mem, data, size < seg ? size : seg);
    } else {
        size_t off = offsetof(struct sq_hdr, tail);

        sage__sq_init_segment(mem, CAP, 1 + (mode >> 1 & 7) * 200, (mode & 0x80) ? 7 : 0, nslots,
                              ring_off, seg);
        memcpy(mem + off, data, size < seg - off ? size : seg - off);
        if (mode & 0x8) /* let the consumer role be taken */
            atomic_store(&((struct sq_hdr *)mem)->cons, 0);
    }
    if (sage__sq_open_mem(&q, mem, seg) == SAGE_OK) {
        sage_queue_stats st;

        for (int i = 0; i < 16; i++) {
            size_t n = 0, len = 0;
            void *claim;

            switch ((size + (size_t)i) % 6) {
            case 0:
                sage_queue_drain(&n, q, take, &sink, 0, 0);
                break;
            case 1:
                sage_queue_recv(&len, q, buf, sizeof buf, 0);
                break;
            case 2:
                sage_queue_send(q, data, size % 300, 0);
                break;
            case 3:
                if (sage_queue_claim(&claim, q, size % 100, 0) == SAGE_OK)
                    sage_queue_commit(q, claim);
                break;
            case 4:
                sage_queue_stats_read(&st, q);
                if (st.corrupt && st.corrupt_reason[0] == '\0')
                    abort(); /* corrupt says why */
                break;
            default:
                if (i > 8) /* late, so most sequences run open first */
                    sage_queue_shutdown(q);
                break;
            }
        }
        sage_queue_stats_read(&st, q);
        sage_queue_close(q);
    }
    free(mem);
    return 0;
}
