/*
 * fuzz_wire.c - libFuzzer target for the envelope decoders.
 *
 * Each input goes to both decoders, to peek and to salvage. Whatever a
 * decoder accepts must survive a round trip: the exact size matches the
 * encoding, decoding the encoding gives equal fields, and encoding that
 * again gives the same bytes (the encoding is canonical). Salvage must read
 * the id and reply-to of every request the decoder accepts. Any difference
 * aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sage/value.h"
#include "wire/salvage.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sage_arena *arena1, *arena2;
static uint8_t *out1, *out2;
static size_t out_cap;

#define CHECK(c)                                                                 \
    do {                                                                         \
        if (!(c)) {                                                              \
            fprintf(stderr, "fuzz_wire: %s:%d: %s (%s)\n", __FILE__, __LINE__, #c, \
                    sage_errdetail());                                           \
            abort();                                                             \
        }                                                                        \
    } while (0)

static void setup(void)
{
    if (arena1 != NULL)
        return;
    CHECK(sage_arena_new(&arena1, 0) == SAGE_OK);
    CHECK(sage_arena_new(&arena2, 0) == SAGE_OK);
}

static void reserve(size_t n)
{
    if (n <= out_cap)
        return;
    out1 = realloc(out1, n);
    out2 = realloc(out2, n);
    CHECK(out1 != NULL && out2 != NULL);
    out_cap = n;
}

static bool same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Values a decoder made are sound: strings terminated, prints bounded. */
static void check_value(const sage_value *v)
{
    char small[16];
    int n = sage_value_snprint(small, sizeof small, v);
    sage_value copy;

    CHECK(n >= 0 && strlen(small) == ((size_t)n < sizeof small ? (size_t)n : sizeof small - 1));
    CHECK(sage_value_copy(&copy, arena2, v) == SAGE_OK);
    CHECK(sage_value_equal(&copy, v));
}

static void fuzz_request(const uint8_t *data, size_t size)
{
    sage__req q, q2, s = {0};
    size_t need, len, len2;
    int kind;
    uint64_t id;
    sage_err salvaged = sage__wire_req_salvage(data, size, arena2, &s);

    if (salvaged == SAGE_OK)
        CHECK(s.reply_to[s.reply_to_len] == '\0');
    if (sage__wire_req_decode(data, size, arena1, &q) != SAGE_OK)
        return;
    CHECK(salvaged == SAGE_OK && s.id == q.id);
    CHECK(same_bytes(s.reply_to, s.reply_to_len, q.reply_to, q.reply_to_len));
    CHECK(sage__wire_peek(data, size, &kind, &id) == SAGE_OK);
    CHECK(kind == SAGE__WIRE_REQUEST && id == q.id);
    CHECK(q.args.type == SAGE_ARRAY && q.kwargs.type == SAGE_MAP);
    CHECK(q.service[q.service_len] == '\0' && q.method[q.method_len] == '\0' &&
          q.reply_to[q.reply_to_len] == '\0');
    check_value(&q.args);
    check_value(&q.kwargs);

    need = sage__wire_req_size(&q);
    CHECK(need > 0);
    reserve(need);
    CHECK(sage__wire_req_encode(&q, out1, need, &len) == SAGE_OK && len == need);
    CHECK(sage__wire_req_decode(out1, len, arena2, &q2) == SAGE_OK);
    CHECK(q2.id == q.id && q2.timeout_ms == q.timeout_ms && q2.flags == q.flags &&
          q2.sent_ns == q.sent_ns);
    CHECK(same_bytes(q2.service, q2.service_len, q.service, q.service_len));
    CHECK(same_bytes(q2.method, q2.method_len, q.method, q.method_len));
    CHECK(same_bytes(q2.reply_to, q2.reply_to_len, q.reply_to, q.reply_to_len));
    CHECK(sage_value_equal(&q2.args, &q.args) && sage_value_equal(&q2.kwargs, &q.kwargs));
    CHECK(sage__wire_req_encode(&q2, out2, need, &len2) == SAGE_OK);
    CHECK(len2 == len && memcmp(out1, out2, len) == 0);
}

static void fuzz_response(const uint8_t *data, size_t size)
{
    sage__resp p, p2;
    size_t need, len, len2;
    int kind;
    uint64_t id;

    if (sage__wire_resp_decode(data, size, arena1, &p) != SAGE_OK)
        return;
    CHECK(sage__wire_peek(data, size, &kind, &id) == SAGE_OK);
    CHECK(kind == SAGE__WIRE_RESPONSE && id == p.id);
    CHECK(p.ok == (p.err_code == 0));
    CHECK(p.err_msg[p.err_msg_len] == '\0');
    check_value(&p.result);

    need = sage__wire_resp_size(&p);
    CHECK(need > 0);
    reserve(need);
    CHECK(sage__wire_resp_encode(&p, out1, need, &len) == SAGE_OK && len == need);
    CHECK(sage__wire_resp_decode(out1, len, arena2, &p2) == SAGE_OK);
    CHECK(p2.id == p.id && p2.ok == p.ok && p2.err_code == p.err_code);
    CHECK(same_bytes(p2.err_msg, p2.err_msg_len, p.err_msg, p.err_msg_len));
    CHECK(sage_value_equal(&p2.result, &p.result));
    CHECK(sage__wire_resp_encode(&p2, out2, need, &len2) == SAGE_OK);
    CHECK(len2 == len && memcmp(out1, out2, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int kind;
    uint64_t id;

    setup();
    (void)sage__wire_peek(data, size, &kind, &id);
    fuzz_request(data, size);
    sage_arena_reset(arena1);
    sage_arena_reset(arena2);
    fuzz_response(data, size);
    sage_arena_reset(arena1);
    sage_arena_reset(arena2);
    return 0;
}
