/* salvage.h - reading what can be read of a broken request. */
#ifndef SAGE_WIRE_SALVAGE_H
#define SAGE_WIRE_SALVAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/wire.h"

/*
 * sage__wire_req_salvage reads only the id and reply-to of a request whose
 * full decode failed, so the task can still answer "malformed request" (or
 * "another version") to someone. SAGE_OK once the head's id could be read,
 * with req->id set and req->reply_to/_len those of a version 1 request
 * when readable (copied into a, NUL-terminated), else "" (the transport's
 * own reply address is then the one left); SAGE_EPROTO (id 0, reply-to "")
 * when not even the id can be read.
 * Never reads outside buf[0, len).
 */
sage_err sage__wire_req_salvage(const void *buf, size_t len, sage_arena *a, sage__req *req);

#endif
