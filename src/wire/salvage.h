/* salvage.h - reading and patching envelopes without decoding them. */
#ifndef SAGE_WIRE_SALVAGE_H
#define SAGE_WIRE_SALVAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/wire.h"

/*
 * sage__wire_req_salvage reads only the id and reply-to of a request whose
 * full decode failed, so the task can still answer "malformed request" to
 * someone. Writes req->id and req->reply_to/_len (copied into a,
 * NUL-terminated) on success; SAGE_EPROTO when even those cannot be read.
 * Never reads outside buf[0, len).
 */
sage_err sage__wire_req_salvage(const void *buf, size_t len, sage_arena *a, sage__req *req);

/*
 * sage__wire_req_restamp rewrites the sent_ns of an encoded request in
 * place (a retry sends stored bytes again). Returns false if the request
 * carries no 64-bit sent_ns to rewrite.
 */
bool sage__wire_req_restamp(void *buf, size_t len, uint64_t sent_ns);

#endif
