/*
 * scan.h - reading MessagePack bytes without msgpack-c: a structural walk
 * (salvage.c uses it to read what it can of a malformed request) and the
 * envelope header.
 */
#ifndef SAGE_WIRE_SCAN_H
#define SAGE_WIRE_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "sage/err.h"

/*
 * Deepest nesting of arrays and maps in a message, the envelope array
 * counting as 1 (so args is at 2). The decoder and the encoder both enforce
 * it; it bounds the decoder's recursion, and matches what other MessagePack
 * implementations (msgpack-c's default parse stack) accept.
 */
#define SAGE__WIRE_MAX_DEPTH 32

/*
 * sage__wire_scan walks the one MessagePack object at the start of buf and
 * writes its length to *usedp, so that msgpack-c only ever sees complete,
 * sane input. SAGE_EPROTO, with a detail starting with what ("request"), for:
 * truncation, nesting deeper than SAGE__WIRE_MAX_DEPTH, a str/bin longer
 * than the bytes left, an array/map declaring more elements than bytes left
 * (each takes at least one), ext types and the reserved byte 0xc1. Linear in
 * the bytes scanned; allocates nothing.
 */
sage_err sage__wire_scan(const void *buf, size_t len, const char *what, size_t *usedp);

/*
 * sage__wire_header reads the envelope's array header, version, kind and id
 * (any integer encoding): the array's element count to *countp, the kind to
 * *kindp and the id to *idp. A version other than 1 gives SAGE_EVERSION;
 * anything else wrong (not an array, fewer than 3 elements, a field of the
 * wrong type, truncation) SAGE_EPROTO. The kind is not judged here.
 */
sage_err sage__wire_header(const void *buf, size_t len, const char *what, uint32_t *countp,
                           uint64_t *kindp, uint64_t *idp);

#endif
