/*
 * call_wire.c - the runtime's envelope codec (src/wire/wire.h) driven the
 * way the runtime drives it, for the zmq impl: see call_wire.h.
 *
 * Per call, the runtime's caller sizes and encodes a request, and peeks at
 * and decodes the response into an arena; its task decodes the request into
 * the call's arena (reset on reuse), finds the method, runs it, then sizes
 * and encodes the response. The functions below do exactly those steps.
 */
#include "call_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "wire/wire.h"

#define BUF_BYTES 4096

struct call_wire {
    sage_arena *arena;
    sage_value items[2];
    char reply_to[208];
    uint8_t buf[BUF_BYTES];
};

static int fail(const char *what, sage_err e)
{
    fprintf(stderr, "sage-bench: call: zmq: %s: %s (%s)\n", what, sage_strerror(e),
            sage_errdetail());
    return -1;
}

int call_wire_new(struct call_wire **wp, const char *reply_to)
{
    struct call_wire *w = calloc(1, sizeof *w);

    if (w == NULL || sage_arena_new(&w->arena, 4096) != SAGE_OK) {
        free(w);
        fprintf(stderr, "sage-bench: call: zmq: out of memory\n");
        return -1;
    }
    call_payload(w->items);
    snprintf(w->reply_to, sizeof w->reply_to, "%s", reply_to);
    *wp = w;
    return 0;
}

void call_wire_free(struct call_wire *w)
{
    if (w == NULL)
        return;
    sage_arena_free(w->arena);
    free(w);
}

/* request fills the envelope the runtime's manager sends for the payload */
static void request(sage__req *q, const sage_value *items, const char *reply_to, uint64_t id)
{
    memset(q, 0, sizeof *q);
    q->id = id;
    q->service = CALL_SERVICE;
    q->service_len = strlen(CALL_SERVICE);
    q->method = CALL_METHOD;
    q->method_len = strlen(CALL_METHOD);
    q->args = sage_array(items, 2);
    q->kwargs = sage_map(NULL, 0);
    q->reply_to = reply_to;
    q->reply_to_len = strlen(reply_to);
    q->timeout_ms = CALL_OP_TIMEOUT_MS; /* what the managers of the sage impls send */
}

int call_wire_request(struct call_wire *w, uint64_t id, const void **bufp, size_t *lenp)
{
    sage__req q;
    size_t size;
    sage_err e;

    request(&q, w->items, w->reply_to, id);
    size = sage__wire_req_size(&q);
    if (size == 0 || size > sizeof w->buf)
        return fail("request size", SAGE_EMSGSIZE);
    if ((e = sage__wire_req_encode(&q, w->buf, size, lenp)) != SAGE_OK)
        return fail("encode request", e);
    *bufp = w->buf;
    return 0;
}

int call_wire_response(struct call_wire *w, const void *buf, size_t len, uint64_t *idp)
{
    sage__resp resp;
    uint64_t id;
    int kind;
    sage_err e;

    sage_arena_reset(w->arena);
    if ((e = sage__wire_peek(buf, len, &kind, &id)) != SAGE_OK || kind != SAGE__WIRE_RESPONSE)
        return fail("peek response", e != SAGE_OK ? e : SAGE_EPROTO);
    if ((e = sage__wire_resp_decode(buf, len, w->arena, &resp)) != SAGE_OK)
        return fail("decode response", e);
    if (!resp.ok || !call_check_result(&resp.result)) {
        fprintf(stderr, "sage-bench: call: zmq: wrong answer (code %d: %.*s)\n",
                (int)resp.err_code, (int)resp.err_msg_len, resp.err_msg ? resp.err_msg : "");
        return -1;
    }
    *idp = resp.id;
    return 0;
}

int call_wire_serve(struct call_wire *w, const void *in, size_t len, const void **outp,
                    size_t *outlenp)
{
    sage__req q;
    sage__resp resp;
    size_t size;
    sage_err e;

    sage_arena_reset(w->arena);
    if ((e = sage__wire_req_decode(in, len, w->arena, &q)) != SAGE_OK)
        return fail("decode request", e);
    memset(&resp, 0, sizeof resp);
    resp.id = q.id;
    /* the runtime finds the method by name first: so do we */
    if (q.method_len != strlen(CALL_METHOD) || memcmp(q.method, CALL_METHOD, q.method_len) != 0 ||
        call_echo(&q.args, &resp.result) != SAGE_OK) {
        fprintf(stderr, "sage-bench: call: zmq: a request the echo server cannot serve\n");
        return -1;
    }
    resp.ok = true;
    size = sage__wire_resp_size(&resp);
    if (size == 0 || size > sizeof w->buf)
        return fail("response size", SAGE_EMSGSIZE);
    if ((e = sage__wire_resp_encode(&resp, w->buf, size, outlenp)) != SAGE_OK)
        return fail("encode response", e);
    *outp = w->buf;
    return 0;
}

void call_wire_sizes(const char *reply_to, size_t *args, size_t *req, size_t *resp)
{
    sage_value items[2];
    sage__req q;
    sage__resp r;

    call_payload(items);
    request(&q, items, reply_to, 1);
    *req = sage__wire_req_size(&q);
    q.args = sage_array(NULL, 0); /* 0x90, one byte */
    *args = *req - sage__wire_req_size(&q) + 1;
    memset(&r, 0, sizeof r);
    r.id = 1;
    r.ok = true;
    r.result = items[0];
    *resp = sage__wire_resp_size(&r);
}
