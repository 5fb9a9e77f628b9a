/*
 * call_wire.h - sagesvc's MessagePack envelope for the zmq impl of
 * "sage-bench call", so that zmq carries the same bytes and does the same
 * encode/decode work per call as the runtime: the client encodes a request
 * and decodes the response, the server decodes the request, runs the
 * method (call_echo) and encodes the response.
 *
 * call_wire.c is the only file of sage-bench below the public API (it uses
 * src/wire/wire.h). One struct call_wire per thread.
 */
#ifndef SAGE_BENCH_CALL_WIRE_H
#define SAGE_BENCH_CALL_WIRE_H

#include <stddef.h>
#include <stdint.h>

struct call_wire;

/* call_wire_new makes the codec state: an arena, a buffer, and the reply_to
 * string requests carry (as long as a manager's response queue name, so
 * the envelope is the size the runtime sends). 0 or -1. */
int call_wire_new(struct call_wire **wp, const char *reply_to);

/* call_wire_free frees w; NULL is a no-op. */
void call_wire_free(struct call_wire *w);

/* call_wire_request encodes the payload's request with id into w's buffer
 * (valid until the next call on w). 0 or -1 (message printed). */
int call_wire_request(struct call_wire *w, uint64_t id, const void **bufp, size_t *lenp);

/* call_wire_response decodes a response, checks it is the payload's echo and
 * writes its id. 0 or -1 (message printed). */
int call_wire_response(struct call_wire *w, const void *buf, size_t len, uint64_t *idp);

/* call_wire_serve decodes a request, runs the method and encodes the answer
 * into w's buffer (valid until the next call on w). 0 or -1. */
int call_wire_serve(struct call_wire *w, const void *in, size_t len, const void **outp,
                    size_t *outlenp);

/* call_wire_sizes tells the encoded sizes of the payload's args array, of
 * its request and of the response (for a note; reply_to as for w). */
void call_wire_sizes(const char *reply_to, size_t *args, size_t *req, size_t *resp);

#endif
