/*
 * wire.h - the MessagePack envelope of requests and responses (R5, R7).
 *
 * An envelope is one MessagePack array, positional, specified byte by byte
 * in docs/PROTOCOL.md:
 *   request:  [1, 0, id, service, method, args, kwargs, reply_to, timeout_ms, flags]
 *   response: [1, 1, id, ok, result, err_code, err_msg]
 * Encoding writes straight into the caller's buffer and never allocates.
 * Decoding (decode.c) reads the bytes in one pass and copies everything it
 * returns (strings NUL-terminated, arrays, maps) into the caller's arena, so
 * the input buffer can be reused at once; it allocates nothing else, and
 * nothing proportional to a count before the bytes for it are proven
 * present. Decoders accept envelopes with extra trailing
 * elements (forward compatibility) and reject everything else malformed with
 * SAGE_EPROTO (or SAGE_EVERSION) and a detail naming the field. All functions
 * are thread-safe; an arena must not be shared by threads at once. On
 * failure the out-structs are not written, but the arena may hold garbage
 * until its next reset.
 */
#ifndef SAGE_WIRE_WIRE_H
#define SAGE_WIRE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sage/err.h"
#include "sage/value.h"

#define SAGE__WIRE_VERSION 1
#define SAGE__WIRE_REQUEST 0  /* kind of a request envelope */
#define SAGE__WIRE_RESPONSE 1 /* kind of a response envelope */

#define SAGE__REQ_IDEMPOTENT 0x1u /* flags: the caller may retry this request */

/*
 * Deepest nesting of arrays and maps in a message, the envelope array
 * counting as 1 (so args is at 2). The decoder and the encoder both enforce
 * it; it bounds the decoder's walk, and matches what other MessagePack
 * implementations (msgpack-c's default parse stack) accept.
 */
#define SAGE__WIRE_MAX_DEPTH 32

/*
 * sage__req: a request, as encoded or decoded. Strings are (pointer, length);
 * a NULL pointer with length 0 encodes as "". args must be an array and
 * kwargs a map with string keys; a nil args or kwargs encodes as empty.
 */
typedef struct sage__req {
    uint64_t id;
    const char *service;
    size_t service_len;
    const char *method;
    size_t method_len;
    sage_value args;
    sage_value kwargs;
    const char *reply_to;
    size_t reply_to_len;
    uint32_t timeout_ms; /* time the caller still waits; 0: no deadline */
    uint32_t flags;      /* SAGE__REQ_*; unknown bits travel untouched */
    uint64_t sent_ns;    /* optional (field 10): the sender's wall clock at send
                          * (CLOCK_REALTIME, ns since the epoch); 0: unknown */
} sage__req;

/*
 * sage__resp: a response. ok is true exactly when err_code is 0 (both
 * encoder and decoder insist); result is nil on failure by convention.
 */
typedef struct sage__resp {
    uint64_t id;
    bool ok;
    sage_value result;
    int32_t err_code; /* a sage_err value; a newer peer may send codes we do not know */
    const char *err_msg;
    size_t err_msg_len;
} sage__resp;

/*
 * sage__wire_req_size returns the exact number of bytes sage__wire_req_encode
 * writes for r, or 0 when r cannot be encoded (the error detail is then set;
 * sage__wire_req_encode reports the error code).
 */
size_t sage__wire_req_size(const sage__req *r);

/*
 * sage__wire_req_encode writes r into buf (cap bytes) and its length to
 * *lenp. SAGE_EMSGSIZE if cap is too small, SAGE_EINVAL for a request that
 * cannot be encoded (args not an array, non-string kwargs key, a string at
 * NULL, a length above 2^32 - 1, nesting deeper than the protocol allows).
 * buf's contents are unspecified after a failure. Does not allocate.
 */
sage_err sage__wire_req_encode(const sage__req *r, void *buf, size_t cap, size_t *lenp);

/*
 * sage__wire_req_decode decodes the request filling exactly len bytes at buf
 * into *out, all of it copied into arena a. SAGE_EVERSION for another
 * protocol version, SAGE_EPROTO for anything else malformed (a response,
 * wrong field types, missing fields, trailing bytes, truncation, hostile
 * lengths or nesting), SAGE_ENOMEM when the arena runs out.
 */
sage_err sage__wire_req_decode(const void *buf, size_t len, sage_arena *a, sage__req *out);

/* sage__wire_resp_size is sage__wire_req_size for a response. */
size_t sage__wire_resp_size(const sage__resp *r);

/* sage__wire_resp_encode is sage__wire_req_encode for a response; ok and
 * err_code must agree (SAGE_EINVAL otherwise). */
sage_err sage__wire_resp_encode(const sage__resp *r, void *buf, size_t cap, size_t *lenp);

/* sage__wire_resp_decode is sage__wire_req_decode for a response. */
sage_err sage__wire_resp_decode(const void *buf, size_t len, sage_arena *a, sage__resp *out);

/*
 * sage__wire_peek reads only the version, kind (SAGE__WIRE_REQUEST or
 * SAGE__WIRE_RESPONSE) and id at the start of buf, without validating the
 * rest: cheap enough to route or drop a message before decoding it.
 * SAGE_EVERSION or SAGE_EPROTO like the decoders. Allocates nothing.
 */
sage_err sage__wire_peek(const void *buf, size_t len, int *kind, uint64_t *id);

#endif
