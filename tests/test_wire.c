/* test_wire.c - the MessagePack envelope: round trips, limits, hostile input. */
#include <malloc.h>
#include <math.h>
#include <pthread.h>

#include "harness.h"
#include "sage/value.h"
#include "value/arena.h"
#include "wire/salvage.h"
#include "wire/wire.h"

#define ASSERT_DETAIL(want) ASSERT_STREQ(sage_errdetail(), want)

/* ASSERT_DETAIL_HAS: the thread's error detail contains sub. */
#define ASSERT_DETAIL_HAS(sub)                                                                 \
    do {                                                                                       \
        if (strstr(sage_errdetail(), (sub)) == NULL)                                           \
            th_fail(__FILE__, __LINE__, "detail \"%s\" lacks \"%s\"", sage_errdetail(), (sub)); \
    } while (0)

/* --------------------------------------- a tiny MessagePack writer for tests */

struct mp {
    uint8_t b[1 << 17];
    size_t n;
};

static void mp_raw(struct mp *m, const void *p, size_t n)
{
    ASSERT_TRUE(m->n + n <= sizeof m->b);
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

static void mp_byte(struct mp *m, uint8_t b)
{
    mp_raw(m, &b, 1);
}

static void mp_be(struct mp *m, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        mp_byte(m, (uint8_t)(v >> (8 * i)));
}

static void mp_head(struct mp *m, uint64_t n, uint8_t fix, uint8_t fixmax, uint8_t b16)
{
    if (n <= fixmax) {
        mp_byte(m, (uint8_t)(fix | n));
    } else if (n <= 0xffff) {
        mp_byte(m, b16);
        mp_be(m, n, 2);
    } else {
        mp_byte(m, (uint8_t)(b16 + 1));
        mp_be(m, n, 4);
    }
}

static void mp_arr(struct mp *m, uint64_t n)
{
    mp_head(m, n, 0x90, 15, 0xdc);
}

static void mp_map(struct mp *m, uint64_t n)
{
    mp_head(m, n, 0x80, 15, 0xde);
}

static void mp_uint(struct mp *m, uint64_t v)
{
    if (v <= 0x7f) {
        mp_byte(m, (uint8_t)v);
    } else if (v <= 0xff) {
        mp_byte(m, 0xcc);
        mp_be(m, v, 1);
    } else if (v <= 0xffff) {
        mp_byte(m, 0xcd);
        mp_be(m, v, 2);
    } else if (v <= 0xffffffff) {
        mp_byte(m, 0xce);
        mp_be(m, v, 4);
    } else {
        mp_byte(m, 0xcf);
        mp_be(m, v, 8);
    }
}

static void mp_str(struct mp *m, const char *s)
{
    size_t n = strlen(s);

    if (n <= 31) {
        mp_byte(m, (uint8_t)(0xa0 | n));
    } else {
        mp_byte(m, 0xd9);
        mp_be(m, n, 1);
    }
    mp_raw(m, s, n);
}

/* req_head writes a request's first five fields; args comes next. */
static void req_head(struct mp *m)
{
    m->n = 0;
    mp_arr(m, 10);
    mp_uint(m, 1);
    mp_uint(m, 0);
    mp_uint(m, 7);
    mp_str(m, "kv");
    mp_str(m, "put");
}

/* req_tail writes a request's last four fields, after args. */
static void req_tail(struct mp *m)
{
    mp_map(m, 0);
    mp_str(m, "r1");
    mp_uint(m, 5000);
    mp_uint(m, 0);
}

/* ------------------------------------------------- fixtures and helpers */

static sage_arena *arena(void)
{
    sage_arena *a = NULL;

    ASSERT_OK(sage_arena_new(&a, 0));
    return a;
}

/* The worked examples of docs/PROTOCOL.md. */
static const uint8_t doc_req[] = {0x9a, 0x01, 0x00, 0x07, 0xa2, 0x6b, 0x76, 0xa3,
                                  0x70, 0x75, 0x74, 0x92, 0xa1, 0x6b, 0x01, 0x80,
                                  0xa2, 0x72, 0x31, 0xcd, 0x13, 0x88, 0x00};
static const uint8_t doc_resp[] = {0x97, 0x01, 0x01, 0x07, 0xc3, 0xc3, 0x00, 0xa0};
/* PROTOCOL.md's failure example: had kv no method put (the runtime's
 * message, call.c) */
static const uint8_t doc_fail[] = {
    0x97, 0x01, 0x01, 0x07, 0xc2, 0xc0, 0x10, 0xd9, 0x20, 0x73, 0x65, 0x72, 0x76, 0x69,
    0x63, 0x65, 0x20, 0x27, 0x6b, 0x76, 0x27, 0x20, 0x68, 0x61, 0x73, 0x20, 0x6e, 0x6f,
    0x20, 0x6d, 0x65, 0x74, 0x68, 0x6f, 0x64, 0x20, 0x27, 0x70, 0x75, 0x74, 0x27};

static sage__req simple_req(const sage_value *args)
{
    sage__req r;

    memset(&r, 0, sizeof r);
    r.id = 7;
    r.service = "kv";
    r.service_len = 2;
    r.method = "put";
    r.method_len = 3;
    r.args = *args;
    r.kwargs = sage_map(NULL, 0);
    r.reply_to = "r1";
    r.reply_to_len = 2;
    r.timeout_ms = 5000;
    return r;
}

static size_t encode_req(const sage__req *r, uint8_t *buf, size_t cap)
{
    size_t len = 0;

    ASSERT_OK(sage__wire_req_encode(r, buf, cap, &len));
    ASSERT_EQ(len, sage__wire_req_size(r));
    return len;
}

static size_t encode_resp(const sage__resp *r, uint8_t *buf, size_t cap)
{
    size_t len = 0;

    ASSERT_OK(sage__wire_resp_encode(r, buf, cap, &len));
    ASSERT_EQ(len, sage__wire_resp_size(r));
    return len;
}

static void req_equal(const sage__req *a, const sage__req *b)
{
    ASSERT_TRUE(a->id == b->id);
    ASSERT_TRUE(a->service_len == b->service_len &&
                memcmp(a->service, b->service, a->service_len) == 0);
    ASSERT_TRUE(a->method_len == b->method_len &&
                memcmp(a->method, b->method, a->method_len) == 0);
    ASSERT_TRUE(a->reply_to_len == b->reply_to_len &&
                (a->reply_to_len == 0 || memcmp(a->reply_to, b->reply_to, a->reply_to_len) == 0));
    ASSERT_TRUE(sage_value_equal(&a->args, &b->args));
    ASSERT_TRUE(sage_value_equal(&a->kwargs, &b->kwargs));
    ASSERT_EQ(a->timeout_ms, b->timeout_ms);
    ASSERT_EQ(a->flags, b->flags);
    ASSERT_EQ(a->sent_ns, b->sent_ns);
}

/* Every string and value the decoder returns is NUL-terminated in place. */
static void assert_terminated(const sage_value *v)
{
    switch (v->type) {
    case SAGE_STR:
        ASSERT_EQ(v->as.str.ptr[v->as.str.len], '\0');
        break;
    case SAGE_ARRAY:
        for (size_t i = 0; i < v->as.array.len; i++)
            assert_terminated(&v->as.array.items[i]);
        break;
    case SAGE_MAP:
        for (size_t i = 0; i < v->as.map.len; i++) {
            assert_terminated(&v->as.map.items[i].key);
            assert_terminated(&v->as.map.items[i].val);
        }
        break;
    default:
        break;
    }
}

/*
 * A value of every type and encoding width, built in arena a. Indices:
 * 0 nil, 1-2 bools, 3-16 ints (0, -1, -32, -33, 127, 128, 255, 256, 65535,
 * 65536, INT32_MIN, INT64_MIN, INT64_MAX, 2^32), 17-18 uints (5, UINT64_MAX),
 * 19-22 doubles (1.5, -0.0, 1e300, NaN), 23-25 strs ("", "a\0b", 300 bytes),
 * 26-28 bins (empty, NULs, 300 bytes), 29 nested, 30 array16, 31 map16,
 * 32 a map with non-string keys; with huge, 33-34 str32 and bin32.
 */
static sage_value every_type(sage_arena *a, bool huge)
{
    static const int64_t ints[] = {0,   -1,    -32,   -33,       127,       128,       255,
                                   256, 65535, 65536, INT32_MIN, INT64_MIN, INT64_MAX, 1LL << 32};
    static char big[70000], mid[300];
    static const char nuls[] = {0, 'x', 0, 0};
    sage_value *v = sage_arena_alloc(a, 40 * sizeof *v);
    sage_value *many = sage_arena_alloc(a, 20 * sizeof *many);
    sage_pair *pairs = sage_arena_alloc(a, 20 * sizeof *pairs);
    sage_pair *odd = sage_arena_alloc(a, 6 * sizeof *odd);
    sage_value *one = sage_arena_alloc(a, sizeof *one);
    size_t n = 0;

    ASSERT_TRUE(v && many && pairs && odd && one);
    memset(big, 'b', sizeof big);
    memset(mid, 'm', sizeof mid);
    v[n++] = sage_nil();
    v[n++] = sage_bool(true);
    v[n++] = sage_bool(false);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        v[n++] = sage_int(ints[i]);
    v[n++] = sage_uint(5);
    v[n++] = sage_uint(UINT64_MAX);
    v[n++] = sage_double(1.5);
    v[n++] = sage_double(-0.0);
    v[n++] = sage_double(1e300);
    v[n++] = sage_double(NAN);
    v[n++] = sage_str("");
    v[n++] = sage_strn("a\0b", 3);
    v[n++] = sage_strn(mid, sizeof mid);
    v[n++] = sage_bin(NULL, 0);
    v[n++] = sage_bin(nuls, sizeof nuls);
    v[n++] = sage_bin(mid, sizeof mid);
    ASSERT_OK(sage_pack(&v[n++], a, "[[[]], {}, {s:[n]}]", "x"));
    for (int i = 0; i < 20; i++) {
        char key[8];

        snprintf(key, sizeof key, "k%d", i);
        many[i] = sage_int(i * 1000);
        ASSERT_OK(sage_pack(&pairs[i].key, a, "s", key));
        pairs[i].val = sage_int(-i);
    }
    v[n++] = sage_array(many, 20);
    v[n++] = sage_map(pairs, 20);
    *one = sage_int(1);
    odd[0] = (sage_pair){sage_int(-7), sage_str("int key")};
    odd[1] = (sage_pair){sage_str("k"), sage_bool(true)};
    odd[2] = (sage_pair){sage_nil(), sage_nil()};
    odd[3] = (sage_pair){sage_array(one, 1), sage_int(2)};
    odd[4] = (sage_pair){sage_double(2.5), sage_double(3.0)};
    odd[5] = (sage_pair){sage_bin("b", 1), sage_bool(false)};
    v[n++] = sage_map(odd, 6);
    if (huge) {
        v[n++] = sage_strn(big, sizeof big);
        v[n++] = sage_bin(big, sizeof big);
    }
    return sage_array(v, n);
}

/* ------------------------------------------------------------------ cases */

static void t_doc_examples(void)
{
    sage_value items[] = {sage_str("k"), sage_int(1)};
    sage_value args = sage_array(items, 2);
    sage__req r = simple_req(&args), q;
    sage__resp p = {.id = 7, .ok = true, .result = sage_bool(true)}, s;
    uint8_t buf[256];
    size_t len;
    sage_arena *a = arena();
    int kind;
    uint64_t id;

    len = encode_req(&r, buf, sizeof buf);
    ASSERT_EQ(len, sizeof doc_req);
    ASSERT_TRUE(memcmp(buf, doc_req, len) == 0);
    len = encode_resp(&p, buf, sizeof buf);
    ASSERT_EQ(len, sizeof doc_resp);
    ASSERT_TRUE(memcmp(buf, doc_resp, len) == 0);
    {
        char msg[64];
        sage__resp f = {.id = 7, .ok = false, .result = sage_nil(), .err_code = SAGE_ENOMETHOD};

        snprintf(msg, sizeof msg, "service '%s' has no method '%s'", "kv", "put");
        f.err_msg = msg;
        f.err_msg_len = strlen(msg);
        len = encode_resp(&f, buf, sizeof buf);
        ASSERT_EQ(len, sizeof doc_fail);
        ASSERT_TRUE(memcmp(buf, doc_fail, len) == 0);
    }

    ASSERT_OK(sage__wire_req_decode(doc_req, sizeof doc_req, a, &q));
    req_equal(&r, &q);
    ASSERT_STREQ(q.service, "kv");
    ASSERT_STREQ(q.method, "put");
    ASSERT_STREQ(q.reply_to, "r1");
    ASSERT_OK(sage__wire_resp_decode(doc_resp, sizeof doc_resp, a, &s));
    ASSERT_TRUE(s.id == 7 && s.ok && s.err_code == 0 && s.err_msg_len == 0);
    ASSERT_STREQ(s.err_msg, "");
    ASSERT_TRUE(s.result.type == SAGE_BOOL && s.result.as.b);

    ASSERT_OK(sage__wire_peek(doc_req, sizeof doc_req, &kind, &id));
    ASSERT_TRUE(kind == SAGE__WIRE_REQUEST && id == 7);
    ASSERT_OK(sage__wire_peek(doc_resp, sizeof doc_resp, &kind, &id));
    ASSERT_TRUE(kind == SAGE__WIRE_RESPONSE && id == 7);
    sage_arena_free(a);
}

static void t_roundtrip_request(void)
{
    static uint8_t buf[1 << 18];
    sage_arena *a = arena(), *b = arena();
    sage_value args = every_type(a, true), kw;
    sage__req r, q;
    size_t len;

    ASSERT_OK(sage_pack(&kw, a, "{s:i, s:s, s:{s:[y#]}, s:n}", "a", 1, "", "empty key", "nested", "bytes", "\0\0", (size_t)2, "nil"));
    r = simple_req(&args);
    r.kwargs = kw;
    r.id = UINT64_MAX;
    r.timeout_ms = UINT32_MAX;
    r.flags = SAGE__REQ_IDEMPOTENT | 0x80000000u;
    r.sent_ns = UINT64_MAX - 1; /* the optional 11th field travels too */
    r.reply_to = NULL;
    r.reply_to_len = 0;
    len = encode_req(&r, buf, sizeof buf);
    ASSERT_OK(sage__wire_req_decode(buf, len, b, &q));
    req_equal(&r, &q);
    ASSERT_STREQ(q.reply_to, ""); /* never NULL once decoded */
    assert_terminated(&q.args);
    assert_terminated(&q.kwargs);
    /* the integer rule: INT whenever it fits int64, UINT only above */
    ASSERT_EQ(q.args.as.array.items[16].type, SAGE_INT);  /* I 4294967296 */
    ASSERT_EQ(q.args.as.array.items[17].type, SAGE_INT);  /* u 5 */
    ASSERT_EQ(q.args.as.array.items[18].type, SAGE_UINT); /* u UINT64_MAX */
    ASSERT_EQ(q.args.as.array.items[15].type, SAGE_INT);  /* INT64_MAX */
    ASSERT_TRUE(q.args.as.array.items[15].as.i == INT64_MAX);
    ASSERT_TRUE(q.args.as.array.items[14].as.i == INT64_MIN);
    ASSERT_TRUE(signbit(q.args.as.array.items[20].as.d)); /* -0.0 survives */
    ASSERT_TRUE(isnan(q.args.as.array.items[22].as.d));
    ASSERT_EQ(q.args.as.array.len, 35);
    ASSERT_EQ(q.args.as.array.items[26].as.bin.len, 0);
    ASSERT_TRUE(memcmp(q.args.as.array.items[27].as.bin.ptr, "\0x\0\0", 4) == 0);
    ASSERT_EQ(q.args.as.array.items[34].as.bin.len, 70000);

    /* the decoded copy lives in b alone: wipe the buffer and a, compare again */
    {
        sage_arena *c = arena();
        sage__req again;
        static uint8_t buf2[1 << 18];
        size_t len2 = encode_req(&q, buf2, sizeof buf2);

        memset(buf, 0xee, len);
        ASSERT_EQ(len2, len);
        ASSERT_OK(sage__wire_req_decode(buf2, len2, c, &again));
        req_equal(&q, &again);
        sage_arena_free(c);
    }
    sage_arena_free(a);
    sage_arena_free(b);
}

static void t_roundtrip_response(void)
{
    uint8_t buf[4096];
    sage_arena *a = arena(), *b = arena();
    sage__resp r = {0}, p;
    size_t len;

    ASSERT_OK(sage_pack(&r.result, a, "{s:[i, f, s], s:y#}", "rows", -5, 0.5, "x", "raw", "\0", (size_t)1));
    r.id = 1ull << 40;
    r.ok = true;
    len = encode_resp(&r, buf, sizeof buf);
    ASSERT_OK(sage__wire_resp_decode(buf, len, b, &p));
    ASSERT_TRUE(p.id == r.id && p.ok && p.err_code == 0);
    ASSERT_TRUE(sage_value_equal(&p.result, &r.result));

    memset(&r, 0, sizeof r);
    r.id = 9;
    r.ok = false;
    r.err_code = SAGE_ENOMETHOD;
    r.err_msg = "no method 'get' in service 'kv'";
    r.err_msg_len = strlen(r.err_msg);
    len = encode_resp(&r, buf, sizeof buf);
    ASSERT_OK(sage__wire_resp_decode(buf, len, b, &p));
    ASSERT_TRUE(p.id == 9 && !p.ok && p.err_code == SAGE_ENOMETHOD);
    ASSERT_EQ(p.result.type, SAGE_NIL);
    ASSERT_STREQ(p.err_msg, "no method 'get' in service 'kv'");

    r.err_code = -70000; /* unknown codes from a newer peer still travel */
    len = encode_resp(&r, buf, sizeof buf);
    ASSERT_OK(sage__wire_resp_decode(buf, len, b, &p));
    ASSERT_EQ(p.err_code, -70000);
    r.err_code = INT32_MIN;
    len = encode_resp(&r, buf, sizeof buf);
    ASSERT_OK(sage__wire_resp_decode(buf, len, b, &p));
    ASSERT_EQ(p.err_code, INT32_MIN);
    sage_arena_free(a);
    sage_arena_free(b);
}

static void t_nil_args_kwargs(void)
{
    sage__req r, q;
    uint8_t buf[64];
    size_t len;
    sage_arena *a = arena();

    memset(&r, 0, sizeof r); /* every field empty: args and kwargs nil */
    len = encode_req(&r, buf, sizeof buf);
    ASSERT_OK(sage__wire_req_decode(buf, len, a, &q));
    ASSERT_TRUE(q.args.type == SAGE_ARRAY && q.args.as.array.len == 0);
    ASSERT_TRUE(q.kwargs.type == SAGE_MAP && q.kwargs.as.map.len == 0);
    ASSERT_STREQ(q.service, "");
    ASSERT_STREQ(q.method, "");
    ASSERT_EQ(len, 11);
    sage_arena_free(a);
}

static void t_msgsize(void)
{
    sage_arena *a = arena();
    sage_value args = every_type(a, true);
    sage__req r = simple_req(&args);
    sage__resp p = {.id = 3, .ok = true, .result = args};
    static uint8_t buf[1 << 18];
    size_t need = sage__wire_req_size(&r), len = 12345;

    ASSERT_TRUE(need > 70000);
    ASSERT_ERR(sage__wire_req_encode(&r, buf, need - 1, &len), SAGE_EMSGSIZE);
    ASSERT_EQ(len, 12345);
    ASSERT_DETAIL_HAS("request needs");
    ASSERT_ERR(sage__wire_req_encode(&r, buf, 0, &len), SAGE_EMSGSIZE);
    ASSERT_ERR(sage__wire_req_encode(&r, NULL, 0, &len), SAGE_EMSGSIZE);
    ASSERT_OK(sage__wire_req_encode(&r, buf, need, &len));
    ASSERT_EQ(len, need);

    need = sage__wire_resp_size(&p);
    ASSERT_ERR(sage__wire_resp_encode(&p, buf, need - 1, &len), SAGE_EMSGSIZE);
    ASSERT_DETAIL_HAS("response needs");
    ASSERT_OK(sage__wire_resp_encode(&p, buf, need, &len));
    ASSERT_EQ(len, need);

    /* the doc example, byte-exact edge */
    {
        sage_value items[] = {sage_str("k"), sage_int(1)};
        sage_value small = sage_array(items, 2);
        sage__req s = simple_req(&small);

        ASSERT_ERR(sage__wire_req_encode(&s, buf, sizeof doc_req - 1, &len), SAGE_EMSGSIZE);
        ASSERT_DETAIL("request needs 23 bytes, the buffer has 22");
    }
    sage_arena_free(a);
}

static void t_encode_errors(void)
{
    sage_value items[] = {sage_str("k")};
    sage_value args = sage_array(items, 1), bad;
    sage_pair kp[] = {{sage_int(1), sage_nil()}};
    sage__req r = simple_req(&args);
    sage__resp p = {.id = 1};
    uint8_t buf[4096];
    size_t len;
    sage_value nest[40];

    r.args = sage_str("x");
    ASSERT_ERR(sage__wire_req_encode(&r, buf, sizeof buf, &len), SAGE_EINVAL);
    ASSERT_DETAIL("request.args: expected array, got string");
    ASSERT_EQ(sage__wire_req_size(&r), 0);
    r.args = args;
    r.kwargs = sage_array(items, 1);
    ASSERT_ERR(sage__wire_req_encode(&r, buf, sizeof buf, &len), SAGE_EINVAL);
    ASSERT_DETAIL("request.kwargs: expected map, got array");
    r.kwargs = sage_map(kp, 1);
    ASSERT_ERR(sage__wire_req_encode(&r, buf, sizeof buf, &len), SAGE_EINVAL);
    ASSERT_DETAIL("request.kwargs: key #0 is int, not string");
    r.kwargs = sage_nil();
    r.service = NULL;
    ASSERT_ERR(sage__wire_req_encode(&r, buf, sizeof buf, &len), SAGE_EINVAL);
    ASSERT_DETAIL("request.service: 2-byte string at NULL");
    r.service = "kv";
    bad.type = (sage_type)42;
    r.args = sage_array(&bad, 1);
    ASSERT_ERR(sage__wire_req_encode(&r, buf, sizeof buf, &len), SAGE_EINVAL);
    ASSERT_DETAIL("request.args: unknown value type 42");
    r.args = sage_array(NULL, 3);
    ASSERT_ERR(sage__wire_req_encode(&r, buf, sizeof buf, &len), SAGE_EINVAL);
    ASSERT_DETAIL("request.args: array of 3 items at NULL");
    bad = sage_bin(NULL, 1);
    r.args = sage_array(&bad, 1);
    ASSERT_ERR(sage__wire_req_encode(&r, buf, sizeof buf, &len), SAGE_EINVAL);
    ASSERT_DETAIL("request.args: 1-byte bin at NULL");

    /* nesting: args is level 2, so 30 arrays inside it reach the limit of 32 */
    nest[0] = sage_int(1);
    for (int i = 1; i < 40; i++)
        nest[i] = sage_array(&nest[i - 1], 1);
    r.args = sage_array(&nest[29], 1); /* nest[k] is k arrays deep: 2 + 29 levels */
    ASSERT_OK(sage__wire_req_encode(&r, buf, sizeof buf, &len));
    r.args = sage_array(&nest[30], 1);
    ASSERT_OK(sage__wire_req_encode(&r, buf, sizeof buf, &len)); /* 32 */
    r.args = sage_array(&nest[31], 1);
    ASSERT_ERR(sage__wire_req_encode(&r, buf, sizeof buf, &len), SAGE_EINVAL);
    ASSERT_DETAIL("request.args: values nested deeper than 32 (envelope included)");

    p.ok = true;
    p.err_code = SAGE_EPROTO;
    ASSERT_ERR(sage__wire_resp_encode(&p, buf, sizeof buf, &len), SAGE_EINVAL);
    ASSERT_DETAIL("response: ok is true but err_code is 10");
    ASSERT_EQ(sage__wire_resp_size(&p), 0);
    p.ok = false;
    p.err_code = 0;
    ASSERT_ERR(sage__wire_resp_encode(&p, buf, sizeof buf, &len), SAGE_EINVAL);
    ASSERT_DETAIL("response: ok is false but err_code is 0");
    p.err_code = 1;
    p.result = sage_array(&nest[31], 1);
    ASSERT_ERR(sage__wire_resp_encode(&p, buf, sizeof buf, &len), SAGE_EINVAL);
    ASSERT_DETAIL("response.result: values nested deeper than 32 (envelope included)");
}

static void t_depth_limit_decode(void)
{
    struct mp *m = calloc(1, sizeof *m);
    sage_arena *a = arena();
    sage__req q;

    for (int extra = 29; extra <= 31; extra++) {
        m->n = 0;
        mp_arr(m, 10);
        mp_uint(m, 1);
        mp_uint(m, 0);
        mp_uint(m, 1);
        mp_str(m, "s");
        mp_str(m, "m");
        mp_arr(m, 1); /* args: level 2 */
        for (int i = 0; i < extra; i++)
            mp_arr(m, 1);
        mp_uint(m, 5);
        mp_map(m, 0);
        mp_str(m, "");
        mp_uint(m, 0);
        mp_uint(m, 0);
        if (extra <= 30) {
            ASSERT_OK(sage__wire_req_decode(m->b, m->n, a, &q));
        } else {
            ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
            ASSERT_DETAIL("request: nested deeper than 32 at byte 39");
        }
    }
    sage_arena_free(a);
    free(m);
}

/* every prefix of a valid message is refused, by decode and (short ones) peek */
static void t_truncations(void)
{
    static uint8_t req[1 << 18], resp[1 << 18];
    sage_arena *a = arena(), *b = arena();
    sage_value args = every_type(a, false), kw;
    sage__req r = simple_req(&args), q;
    sage__resp p = {.id = 1, .ok = true}, s;
    size_t rlen, plen;
    int kind;
    uint64_t id;

    ASSERT_OK(sage_pack(&kw, a, "{s:i, s:[s]}", "x", 1, "y", "z"));
    r.kwargs = kw;
    p.result = args;
    rlen = encode_req(&r, req, sizeof req);
    plen = encode_resp(&p, resp, sizeof resp);
    for (size_t n = 0; n < rlen; n++) {
        sage_err e = sage__wire_req_decode(req, n, b, &q);

        if (e != SAGE_EPROTO)
            th_fail(__FILE__, __LINE__, "request prefix %zu/%zu: %s (%s)", n, rlen,
                    sage_errname(e), sage_errdetail());
        sage_arena_reset(b);
    }
    for (size_t n = 0; n < plen; n++) {
        sage_err e = sage__wire_resp_decode(resp, n, b, &s);

        if (e != SAGE_EPROTO)
            th_fail(__FILE__, __LINE__, "response prefix %zu/%zu: %s (%s)", n, plen,
                    sage_errname(e), sage_errdetail());
        sage_arena_reset(b);
    }
    ASSERT_OK(sage__wire_req_decode(req, rlen, b, &q));
    ASSERT_OK(sage__wire_resp_decode(resp, plen, b, &s));
    ASSERT_ERR(sage__wire_req_decode(req, 0, b, &q), SAGE_EPROTO);
    ASSERT_DETAIL("request: empty message");

    /* peek needs the array header, version, kind and id: 4 bytes here */
    for (size_t n = 0; n < 4; n++)
        ASSERT_ERR(sage__wire_peek(req, n, &kind, &id), SAGE_EPROTO);
    ASSERT_OK(sage__wire_peek(req, 4, &kind, &id));
    ASSERT_TRUE(kind == 0 && id == 7);
    sage_arena_free(a);
    sage_arena_free(b);
}

typedef void (*writer)(struct mp *m);

static void w_str(struct mp *m)
{
    mp_str(m, "x");
}
static void w_int(struct mp *m)
{
    mp_uint(m, 5);
}
static void w_neg(struct mp *m)
{
    mp_byte(m, 0xff); /* -1 */
}
static void w_nil(struct mp *m)
{
    mp_byte(m, 0xc0);
}
static void w_true(struct mp *m)
{
    mp_byte(m, 0xc3);
}
static void w_false(struct mp *m)
{
    mp_byte(m, 0xc2);
}
static void w_two(struct mp *m)
{
    mp_uint(m, 2);
}
static void w_big(struct mp *m)
{
    mp_uint(m, 1ull << 32);
}
static void w_huge(struct mp *m)
{
    mp_uint(m, 1ull << 40);
}
static void w_intkey(struct mp *m)
{
    mp_map(m, 2);
    mp_str(m, "ok");
    mp_uint(m, 1);
    mp_uint(m, 1);
    mp_uint(m, 2);
}
static void w_ext(struct mp *m)
{
    mp_arr(m, 1);
    mp_raw(m, "\xd4\x01\x00", 3); /* fixext1 */
}
static void w_c1(struct mp *m)
{
    mp_arr(m, 1);
    mp_byte(m, 0xc1);
}
static void w_float32(struct mp *m)
{
    mp_arr(m, 2);
    mp_raw(m, "\xca\x3f\xc0\x00\x00", 5);                 /* 1.5f */
    mp_raw(m, "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", 9); /* 1.5 */
}
static void w_wide_id(struct mp *m)
{
    mp_raw(m, "\xcf\x00\x00\x00\x00\x00\x00\x00\x07", 9); /* 7 as uint64 */
}
static void w_int8_id(struct mp *m)
{
    mp_raw(m, "\xd0\x07", 2); /* 7 as int8 */
}
static void w_neg_int64(struct mp *m)
{
    mp_raw(m, "\xd3\xff\xff\xff\xff\xff\xff\xff\xfe", 9); /* -2 as int64 */
}
static void w_arr32(struct mp *m)
{
    mp_raw(m, "\xdd\xff\xff\xff\xff", 5);
}
static void w_map32(struct mp *m)
{
    mp_raw(m, "\xdf\x80\x00\x00\x00", 5);
}
static void w_str32(struct mp *m)
{
    mp_raw(m, "\xdb\xff\xff\xff\xff", 5);
}
static void w_bin32(struct mp *m)
{
    mp_raw(m, "\xc6\x7f\xff\xff\xff", 5);
}

static const char *const defaults_req[] = {"version", "kind",   "id",       "service",    "method",
                                           "args",    "kwargs", "reply_to", "timeout_ms", "flags"};

/* make_req writes a request array of count elements, element bad written by
 * w instead of its valid default; elements past 10 are extras. */
static void make_req(struct mp *m, unsigned count, unsigned bad, writer w)
{
    m->n = 0;
    mp_arr(m, count);
    for (unsigned i = 0; i < count; i++) {
        if (i == bad) {
            w(m);
            continue;
        }
        switch (i) {
        case 0:
            mp_uint(m, 1);
            break;
        case 1:
            mp_uint(m, 0);
            break;
        case 2:
            mp_uint(m, 7);
            break;
        case 3:
            mp_str(m, "kv");
            break;
        case 4:
            mp_str(m, "put");
            break;
        case 5:
            mp_arr(m, 2);
            mp_str(m, "k");
            mp_uint(m, 1);
            break;
        case 6:
            mp_map(m, 0);
            break;
        case 7:
            mp_str(m, "r1");
            break;
        case 8:
            mp_uint(m, 5000);
            break;
        case 9:
            mp_uint(m, 0);
            break;
        case 10: /* the optional sent_ns */
            mp_uint(m, 123456789012ull);
            break;
        default:
            mp_map(m, 1); /* extras of any shape */
            mp_str(m, "future");
            mp_arr(m, 0);
        }
    }
}

static void make_resp(struct mp *m, unsigned count, unsigned bad, writer w)
{
    m->n = 0;
    mp_arr(m, count);
    for (unsigned i = 0; i < count; i++) {
        if (i == bad) {
            w(m);
            continue;
        }
        switch (i) {
        case 0:
        case 1:
            mp_uint(m, 1);
            break;
        case 2:
            mp_uint(m, 7);
            break;
        case 3:
            mp_byte(m, 0xc3);
            break;
        case 4:
            mp_byte(m, 0xc0);
            break;
        case 5:
            mp_uint(m, 0);
            break;
        case 6:
            mp_str(m, "");
            break;
        default:
            mp_str(m, "extra");
        }
    }
}

struct bad_case {
    unsigned count, bad;
    writer w;
    sage_err want;
    const char *detail;
};

static void t_bad_requests(void)
{
    static const struct bad_case cases[] = {
        {10, 0, w_two, SAGE_EVERSION, "request: protocol version 2, this side speaks 1"},
        {10, 0, w_str, SAGE_EPROTO, "request.version: expected uint, got str"},
        {10, 0, w_neg, SAGE_EPROTO, "request.version: expected uint, got -1"},
        {10, 1, w_two, SAGE_EPROTO, "request.kind: expected 0 (request), got 2"},
        {10, 1, w_int, SAGE_EPROTO, "request.kind: expected 0 (request), got 5"},
        {10, 1, w_nil, SAGE_EPROTO, "request.kind: expected uint, got nil"},
        {10, 2, w_neg, SAGE_EPROTO, "request.id: expected uint, got -1"},
        {10, 2, w_neg_int64, SAGE_EPROTO, "request.id: expected uint, got -2"},
        {10, 2, w_str, SAGE_EPROTO, "request.id: expected uint, got str"},
        {10, 3, w_int, SAGE_EPROTO, "request.service: expected str, got int"},
        {10, 4, w_int, SAGE_EPROTO, "request.method: expected str, got int"},
        {10, 4, w_nil, SAGE_EPROTO, "request.method: expected str, got nil"},
        {10, 5, w_str, SAGE_EPROTO, "request.args: expected array, got str"},
        {10, 5, w_intkey, SAGE_EPROTO, "request.args: expected array, got map"},
        {10, 6, w_nil, SAGE_EPROTO, "request.kwargs: expected map, got nil"},
        {10, 6, w_intkey, SAGE_EPROTO, "request.kwargs: key #1 is int, not str"},
        {10, 7, w_nil, SAGE_EPROTO, "request.reply_to: expected str, got nil"},
        {10, 8, w_big, SAGE_EPROTO, "request.timeout_ms: 4294967296 does not fit in uint32"},
        {10, 8, w_neg, SAGE_EPROTO, "request.timeout_ms: expected uint32, got -1"},
        {10, 8, w_true, SAGE_EPROTO, "request.timeout_ms: expected uint32, got bool"},
        {10, 9, w_str, SAGE_EPROTO, "request.flags: expected uint32, got str"},
        {10, 5, w_ext, SAGE_EPROTO, "request: ext (0xd4) at byte 12 is not allowed"},
        {10, 5, w_c1, SAGE_EPROTO, "request: reserved (0xc1) at byte 12 is not allowed"},
        {10, 5, w_arr32, SAGE_EPROTO,
         "request: array at byte 11 declares 4294967295 elements, only 8 bytes remain"},
        {10, 6, w_map32, SAGE_EPROTO,
         "request: map at byte 15 declares 4294967296 elements, only 7 bytes remain"},
        {10, 7, w_str32, SAGE_EPROTO,
         "request: str at byte 16 declares 4294967295 bytes, only 4 remain"},
        {10, 5, w_bin32, SAGE_EPROTO,
         "request: bin at byte 11 declares 2147483647 bytes, only 8 remain"},
        {0, 99, NULL, SAGE_EPROTO, "request.version: missing (empty array)"},
        {1, 99, NULL, SAGE_EPROTO, "request.kind: missing (array of 1)"},
        {2, 99, NULL, SAGE_EPROTO, "request.id: missing (array of 2)"},
        {3, 99, NULL, SAGE_EPROTO, "request.service: missing (array of 3, 10 fields needed)"},
        {9, 99, NULL, SAGE_EPROTO, "request.flags: missing (array of 9, 10 fields needed)"},
    };
    struct mp *m = calloc(1, sizeof *m);
    sage_arena *a = arena();
    sage__req q;

    memset(&q, 0x5a, sizeof q);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_case *c = &cases[i];
        sage_err e;

        make_req(m, c->count, c->bad, c->w);
        e = sage__wire_req_decode(m->b, m->n, a, &q);
        if (e != c->want || strcmp(sage_errdetail(), c->detail) != 0)
            th_fail(__FILE__, __LINE__, "case %zu (%s): got %s \"%s\", want %s \"%s\"", i,
                    c->bad < 10 ? defaults_req[c->bad] : "-", sage_errname(e), sage_errdetail(),
                    sage_errname(c->want), c->detail);
        ASSERT_EQ(q.id, 0x5a5a5a5a5a5a5a5aull); /* untouched on failure */
    }
    sage_arena_free(a);
    free(m);
}

static void t_bad_responses(void)
{
    static const struct bad_case cases[] = {
        {7, 0, w_two, SAGE_EVERSION, "response: protocol version 2, this side speaks 1"},
        {7, 1, w_nil, SAGE_EPROTO, "response.kind: expected uint, got nil"},
        {10, 99, NULL, SAGE_EPROTO, "response.kind: expected 1 (response), got 0"}, /* a request */
        {7, 3, w_int, SAGE_EPROTO, "response.ok: expected bool, got int"},
        {7, 5, w_str, SAGE_EPROTO, "response.err_code: expected int, got str"},
        {7, 5, w_int, SAGE_EPROTO, "response.err_code: 5 with ok true"},
        {7, 5, w_huge, SAGE_EPROTO, "response.err_code: does not fit in int32"},
        {7, 6, w_nil, SAGE_EPROTO, "response.err_msg: expected str, got nil"},
        {7, 4, w_ext, SAGE_EPROTO, "response: ext (0xd4) at byte 6 is not allowed"},
        {6, 99, NULL, SAGE_EPROTO, "response.err_msg: missing (array of 6, 7 fields needed)"},
    };
    struct mp *m = calloc(1, sizeof *m);
    sage_arena *a = arena();
    sage__resp p;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_case *c = &cases[i];
        sage_err e;

        if (c->count == 10)
            make_req(m, 10, 99, NULL);
        else
            make_resp(m, c->count, c->bad, c->w);
        e = sage__wire_resp_decode(m->b, m->n, a, &p);
        if (e != c->want || strcmp(sage_errdetail(), c->detail) != 0)
            th_fail(__FILE__, __LINE__, "case %zu: got %s \"%s\", want %s \"%s\"", i,
                    sage_errname(e), sage_errdetail(), sage_errname(c->want), c->detail);
    }
    /* ok false with code 0 */
    make_resp(m, 7, 3, w_false);
    ASSERT_ERR(sage__wire_resp_decode(m->b, m->n, a, &p), SAGE_EPROTO);
    ASSERT_DETAIL("response.err_code: 0 with ok false");
    sage_arena_free(a);
    free(m);
}

/* what decoders must accept: any integer width, float32, extra elements */
static void t_lenient_forms(void)
{
    struct mp *m = calloc(1, sizeof *m);
    sage_arena *a = arena();
    sage__req q;
    sage__resp p;

    make_req(m, 10, 2, w_wide_id);
    ASSERT_OK(sage__wire_req_decode(m->b, m->n, a, &q));
    ASSERT_EQ(q.id, 7);
    make_req(m, 10, 2, w_int8_id);
    ASSERT_OK(sage__wire_req_decode(m->b, m->n, a, &q));
    ASSERT_EQ(q.id, 7);
    make_req(m, 10, 5, w_float32);
    ASSERT_OK(sage__wire_req_decode(m->b, m->n, a, &q));
    ASSERT_TRUE(q.args.as.array.items[0].type == SAGE_DOUBLE &&
                q.args.as.array.items[0].as.d == 1.5);
    ASSERT_TRUE(q.args.as.array.items[1].as.d == 1.5);

    /* forward compatibility: extra trailing elements are ignored */
    make_req(m, 14, 99, NULL);
    ASSERT_OK(sage__wire_req_decode(m->b, m->n, a, &q));
    ASSERT_TRUE(q.id == 7 && q.timeout_ms == 5000 && q.method_len == 3);
    ASSERT_EQ(q.sent_ns, 123456789012ull);
    /* sent_ns is optional: 10 elements mean "unknown" */
    make_req(m, 10, 99, NULL);
    ASSERT_OK(sage__wire_req_decode(m->b, m->n, a, &q));
    ASSERT_EQ(q.sent_ns, 0);
    /* but when present it is a uint64 */
    make_req(m, 11, 10, w_str);
    ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
    ASSERT_DETAIL("request.sent_ns: expected uint64, got str");
    make_resp(m, 9, 99, NULL);
    ASSERT_OK(sage__wire_resp_decode(m->b, m->n, a, &p));
    ASSERT_TRUE(p.ok && p.id == 7);
    /* a 10-element array with an array16 header is still just an array */
    make_req(m, 10, 99, NULL);
    memmove(m->b + 3, m->b + 1, m->n - 1); /* 0x9a becomes dc 00 0a */
    memcpy(m->b, "\xdc\x00\x0a", 3);
    m->n += 2;
    ASSERT_OK(sage__wire_req_decode(m->b, m->n, a, &q));
    ASSERT_EQ(q.id, 7);
    sage_arena_free(a);
    free(m);
}

static void t_trailing_garbage(void)
{
    uint8_t buf[64];
    sage_arena *a = arena();
    sage__req q;
    sage__resp p;

    memcpy(buf, doc_req, sizeof doc_req);
    buf[sizeof doc_req] = 0xc0;
    ASSERT_ERR(sage__wire_req_decode(buf, sizeof doc_req + 1, a, &q), SAGE_EPROTO);
    ASSERT_DETAIL("request: 1 trailing bytes after the envelope");
    memcpy(buf, doc_resp, sizeof doc_resp);
    memcpy(buf + sizeof doc_resp, doc_resp, sizeof doc_resp);
    ASSERT_ERR(sage__wire_resp_decode(buf, 2 * sizeof doc_resp, a, &p), SAGE_EPROTO);
    ASSERT_DETAIL("response: 8 trailing bytes after the envelope");
    sage_arena_free(a);
}

static void t_hostile_fast(void)
{
    static const uint8_t five[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t lying[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x07};
    static uint8_t deep[100000];
    sage_arena *a = arena();
    sage__req q;
    sage__resp p;
    size_t held;
    double t0 = th_now_ms();

    ASSERT_ERR(sage__wire_req_decode(five, sizeof five, a, &q), SAGE_EPROTO);
    ASSERT_DETAIL("request: truncated in version");
    ASSERT_ERR(sage__wire_resp_decode(five, sizeof five, a, &p), SAGE_EPROTO);
    ASSERT_ERR(sage__wire_req_decode(lying, sizeof lying, a, &q), SAGE_EPROTO);
    ASSERT_DETAIL("request: array at byte 0 declares 4294967295 elements, only 3 bytes remain");

    /* 1000 nested arrays, bare and inside a valid header */
    memset(deep, 0x91, 1000);
    deep[1000] = 0x01;
    ASSERT_ERR(sage__wire_req_decode(deep, 1001, a, &q), SAGE_EPROTO);
    ASSERT_DETAIL("request.version: expected uint, got array");
    memcpy(deep, "\x9a\x01\x00\x07\xa1s\xa1m", 8);
    memset(deep + 8, 0x91, sizeof deep - 8);
    ASSERT_ERR(sage__wire_req_decode(deep, sizeof deep, a, &q), SAGE_EPROTO);
    ASSERT_DETAIL("request: nested deeper than 32 at byte 39");
    memset(deep + 8, 0xdc, sizeof deep - 8); /* array16 of 0xdcdc elements, nested */
    ASSERT_ERR(sage__wire_req_decode(deep, sizeof deep, a, &q), SAGE_EPROTO);
    ASSERT_DETAIL_HAS("request: array at byte");

    ASSERT_LE(th_now_ms() - t0, 200);
    sage__arena_stats(a, &held, NULL);
    ASSERT_LE(held, 8192); /* nothing got allocated for the lies */
    sage_arena_free(a);
}

static void t_peek(void)
{
    struct mp *m = calloc(1, sizeof *m);
    int kind = -1;
    uint64_t id = 0;

    make_req(m, 10, 2, w_wide_id);
    ASSERT_OK(sage__wire_peek(m->b, m->n, &kind, &id));
    ASSERT_TRUE(kind == SAGE__WIRE_REQUEST && id == 7);
    make_req(m, 10, 1, w_two);
    ASSERT_ERR(sage__wire_peek(m->b, m->n, &kind, &id), SAGE_EPROTO);
    ASSERT_DETAIL("message.kind: unknown kind 2");
    make_req(m, 10, 0, w_two);
    ASSERT_ERR(sage__wire_peek(m->b, m->n, &kind, &id), SAGE_EVERSION);
    ASSERT_DETAIL("message: protocol version 2, this side speaks 1");
    ASSERT_ERR(sage__wire_peek("\xc0", 1, &kind, &id), SAGE_EPROTO);
    ASSERT_DETAIL("message: expected array, got nil");
    ASSERT_ERR(sage__wire_peek("\xdc\x00", 2, &kind, &id), SAGE_EPROTO);
    ASSERT_DETAIL("message: truncated in the array header");
    ASSERT_ERR(sage__wire_peek(NULL, 0, &kind, &id), SAGE_EPROTO);
    ASSERT_TRUE(kind == SAGE__WIRE_REQUEST && id == 7); /* untouched on failure */
    free(m);
}

static void t_arena_reuse_100k(void)
{
    sage_value items[] = {sage_str("key"), sage_int(12345)};
    sage_value args = sage_array(items, 2);
    sage__req r = simple_req(&args), q;
    sage__resp p = {.id = 1, .ok = true, .result = sage_str("value")}, s;
    uint8_t req[128], resp[128];
    size_t rlen = encode_req(&r, req, sizeof req), plen = encode_resp(&p, resp, sizeof resp);
    sage_arena *a = arena();
    uint64_t m0, m1;
    size_t h0, h1, heap0 = 0, heap1 = 0;

    for (int i = 0; i < 100; i++) { /* warm up: the arena */
        ASSERT_OK(sage__wire_req_decode(req, rlen, a, &q));
        sage_arena_reset(a);
    }
    sage__arena_stats(a, &h0, &m0);
    heap0 = mallinfo2().uordblks;
    for (int i = 0; i < 100000; i++) {
        ASSERT_OK(sage__wire_req_decode(req, rlen, a, &q));
        if (q.id != 7 || q.args.as.array.items[1].as.i != 12345)
            th_fail(__FILE__, __LINE__, "decode %d went wrong", i);
        ASSERT_OK(sage__wire_resp_decode(resp, plen, a, &s));
        sage_arena_reset(a);
    }
    heap1 = mallinfo2().uordblks;
    sage__arena_stats(a, &h1, &m1);
    ASSERT_EQ(m1, m0);
    ASSERT_EQ(h1, h0);
#ifndef SAGE_SANITIZED
    ASSERT_LE(heap1, heap0 + 1024); /* nor does decoding malloc anything else */
#endif
    (void)heap0;
    (void)heap1;
    sage_arena_free(a);
}

static void *decode_thread(void *arg)
{
    const uint8_t *req = arg;
    sage_arena *a = NULL;
    sage__req q;

    if (sage_arena_new(&a, 0) != SAGE_OK)
        return (void *)1;
    for (int i = 0; i < 20000; i++) {
        if (sage__wire_req_decode(req, sizeof doc_req, a, &q) != SAGE_OK || q.id != 7 ||
            q.args.as.array.len != 2)
            return (void *)1;
        sage_arena_reset(a);
    }
    sage_arena_free(a);
    return NULL;
}

static void t_threads(void)
{
    pthread_t th[4];
    void *ret;

    for (int i = 0; i < 4; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, decode_thread, (void *)doc_req), 0);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(pthread_join(th[i], &ret), 0);
        ASSERT_TRUE(ret == NULL);
    }
}

/* ------------------------------------ the decoder, format by format */

/* same_value: a and b are the same value, types included (sage_value_equal
 * takes INT 5 and UINT 5, or 0.0 and -0.0, as equal; the decoder may not
 * confuse them), and every str and bin is NUL-terminated. */
static bool same_value(const sage_value *a, const sage_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case SAGE_NIL:
        return true;
    case SAGE_BOOL:
        return a->as.b == b->as.b;
    case SAGE_INT:
    case SAGE_UINT:
        return a->as.u == b->as.u;
    case SAGE_DOUBLE:
        return memcmp(&a->as.d, &b->as.d, sizeof a->as.d) == 0;
    case SAGE_STR:
    case SAGE_BIN:
        return a->as.str.len == b->as.str.len && a->as.str.ptr[a->as.str.len] == '\0' &&
               memcmp(a->as.str.ptr, b->as.str.ptr, a->as.str.len) == 0;
    case SAGE_ARRAY:
        if (a->as.array.len != b->as.array.len)
            return false;
        for (size_t i = 0; i < a->as.array.len; i++)
            if (!same_value(&a->as.array.items[i], &b->as.array.items[i]))
                return false;
        return true;
    case SAGE_MAP:
        if (a->as.map.len != b->as.map.len)
            return false;
        for (size_t i = 0; i < a->as.map.len; i++)
            if (!same_value(&a->as.map.items[i].key, &b->as.map.items[i].key) ||
                !same_value(&a->as.map.items[i].val, &b->as.map.items[i].val))
                return false;
        return true;
    }
    return false;
}

/*
 * One encoding of each MessagePack format and the value it must decode to.
 * Containers hold small ints: array items 1, 2, ...; map pairs 1: 101,
 * 2: 102, ... (n counts items or pairs).
 */
struct fmt_case {
    const char *name;
    const char *enc;
    size_t enc_len;
    sage_type type;
    int64_t i;     /* SAGE_INT, SAGE_BOOL */
    uint64_t u;    /* SAGE_UINT */
    double d;      /* SAGE_DOUBLE */
    const char *s; /* SAGE_STR, SAGE_BIN */
    size_t n;      /* str/bin bytes, array items, map pairs */
};

#define ENC(lit) lit, sizeof lit - 1

static const struct fmt_case fmt_cases[] = {
    {"positive fixint 0", ENC("\x00"), SAGE_INT, .i = 0},
    {"positive fixint 127", ENC("\x7f"), SAGE_INT, .i = 127},
    {"negative fixint -32", ENC("\xe0"), SAGE_INT, .i = -32},
    {"negative fixint -1", ENC("\xff"), SAGE_INT, .i = -1},
    {"uint8 0", ENC("\xcc\x00"), SAGE_INT, .i = 0},
    {"uint8 255", ENC("\xcc\xff"), SAGE_INT, .i = 255},
    {"uint16", ENC("\xcd\xff\xfe"), SAGE_INT, .i = 65534},
    {"uint32", ENC("\xce\xff\xff\xff\xfd"), SAGE_INT, .i = 4294967293},
    {"uint64 7", ENC("\xcf\x00\x00\x00\x00\x00\x00\x00\x07"), SAGE_INT, .i = 7},
    {"uint64 INT64_MAX", ENC("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff"), SAGE_INT, .i = INT64_MAX},
    {"uint64 2^63", ENC("\xcf\x80\x00\x00\x00\x00\x00\x00\x00"), SAGE_UINT, .u = 1ull << 63},
    {"uint64 max", ENC("\xcf\xff\xff\xff\xff\xff\xff\xff\xfe"), SAGE_UINT, .u = UINT64_MAX - 1},
    {"int8 -128", ENC("\xd0\x80"), SAGE_INT, .i = -128},
    {"int8 127", ENC("\xd0\x7f"), SAGE_INT, .i = 127},
    {"int16 -32768", ENC("\xd1\x80\x00"), SAGE_INT, .i = -32768},
    {"int16 258", ENC("\xd1\x01\x02"), SAGE_INT, .i = 258},
    {"int32 min", ENC("\xd2\x80\x00\x00\x00"), SAGE_INT, .i = INT32_MIN},
    {"int32 -2", ENC("\xd2\xff\xff\xff\xfe"), SAGE_INT, .i = -2},
    {"int64 min", ENC("\xd3\x80\x00\x00\x00\x00\x00\x00\x00"), SAGE_INT, .i = INT64_MIN},
    {"int64 -1", ENC("\xd3\xff\xff\xff\xff\xff\xff\xff\xff"), SAGE_INT, .i = -1},
    {"int64 2^40", ENC("\xd3\x00\x00\x01\x00\x00\x00\x00\x00"), SAGE_INT, .i = 1ll << 40},
    {"float32 1.5", ENC("\xca\x3f\xc0\x00\x00"), SAGE_DOUBLE, .d = 1.5},
    {"float32 -0.0", ENC("\xca\x80\x00\x00\x00"), SAGE_DOUBLE, .d = -0.0},
    {"float32 max", ENC("\xca\x7f\x7f\xff\xff"), SAGE_DOUBLE, .d = 3.4028234663852886e38},
    {"float32 tiny", ENC("\xca\x00\x00\x00\x01"), SAGE_DOUBLE, .d = 1.401298464324817e-45},
    {"float64 -2.5", ENC("\xcb\xc0\x04\x00\x00\x00\x00\x00\x00"), SAGE_DOUBLE, .d = -2.5},
    {"float64 1e300", ENC("\xcb\x7e\x37\xe4\x3c\x88\x00\x75\x9c"), SAGE_DOUBLE, .d = 1e300},
    {"nil", ENC("\xc0"), SAGE_NIL, .i = 0},
    {"false", ENC("\xc2"), SAGE_BOOL, .i = 0},
    {"true", ENC("\xc3"), SAGE_BOOL, .i = 1},
    {"fixstr empty", ENC("\xa0"), SAGE_STR, .s = "", .n = 0},
    {"fixstr", ENC("\xa3" "abc"), SAGE_STR, .s = "abc", .n = 3},
    {"fixstr 31", ENC("\xbf" "0123456789abcdef0123456789abcde"), SAGE_STR,
     .s = "0123456789abcdef0123456789abcde", .n = 31},
    {"str8 empty", ENC("\xd9\x00"), SAGE_STR, .s = "", .n = 0},
    {"str8 with NUL", ENC("\xd9\x03" "a\0c"), SAGE_STR, .s = "a\0c", .n = 3},
    {"str16", ENC("\xda\x00\x03" "xyz"), SAGE_STR, .s = "xyz", .n = 3},
    {"str32", ENC("\xdb\x00\x00\x00\x04" "wxyz"), SAGE_STR, .s = "wxyz", .n = 4},
    {"bin8 empty", ENC("\xc4\x00"), SAGE_BIN, .s = "", .n = 0},
    {"bin8", ENC("\xc4\x02\x00\x01"), SAGE_BIN, .s = "\x00\x01", .n = 2},
    {"bin16", ENC("\xc5\x00\x03\xff\x00\xfe"), SAGE_BIN, .s = "\xff\x00\xfe", .n = 3},
    {"bin32", ENC("\xc6\x00\x00\x00\x01\x00"), SAGE_BIN, .s = "\x00", .n = 1},
    {"fixarray empty", ENC("\x90"), SAGE_ARRAY, .n = 0},
    {"fixarray", ENC("\x92\x01\x02"), SAGE_ARRAY, .n = 2},
    {"array16", ENC("\xdc\x00\x03\x01\x02\x03"), SAGE_ARRAY, .n = 3},
    {"array32", ENC("\xdd\x00\x00\x00\x02\x01\x02"), SAGE_ARRAY, .n = 2},
    {"array16 empty", ENC("\xdc\x00\x00"), SAGE_ARRAY, .n = 0},
    {"fixmap empty", ENC("\x80"), SAGE_MAP, .n = 0},
    {"fixmap", ENC("\x82\x01\x65\x02\x66"), SAGE_MAP, .n = 2},
    {"map16", ENC("\xde\x00\x01\x01\x65"), SAGE_MAP, .n = 1},
    {"map32", ENC("\xdf\x00\x00\x00\x02\x01\x65\x02\x66"), SAGE_MAP, .n = 2},
    {"map32 empty", ENC("\xdf\x00\x00\x00\x00"), SAGE_MAP, .n = 0},
};

/* fmt_want builds a case's expected value, in a. */
static sage_value fmt_want(const struct fmt_case *c, sage_arena *a)
{
    sage_value *items;
    sage_pair *pairs;

    switch (c->type) {
    case SAGE_NIL:
        return sage_nil();
    case SAGE_BOOL:
        return sage_bool(c->i != 0);
    case SAGE_INT:
        return sage_int(c->i);
    case SAGE_UINT:
        return sage_uint(c->u);
    case SAGE_DOUBLE:
        return sage_double(c->d);
    case SAGE_STR:
        return sage_strn(c->s, c->n);
    case SAGE_BIN:
        return sage_bin(c->s, c->n);
    case SAGE_ARRAY:
        items = sage_arena_alloc(a, (c->n + 1) * sizeof *items);
        ASSERT_TRUE(items != NULL);
        for (size_t i = 0; i < c->n; i++)
            items[i] = sage_int((int64_t)i + 1);
        return sage_array(items, c->n);
    case SAGE_MAP:
        pairs = sage_arena_alloc(a, (c->n + 1) * sizeof *pairs);
        ASSERT_TRUE(pairs != NULL);
        for (size_t i = 0; i < c->n; i++)
            pairs[i] = (sage_pair){sage_int((int64_t)i + 1), sage_int((int64_t)i + 101)};
        return sage_map(pairs, c->n);
    }
    return sage_nil();
}

/* every format decodes to its type and value, as an argument, a kwargs
 * value and a result, and is refused cleanly when cut anywhere */
static void t_every_format(void)
{
    struct mp *m = calloc(1, sizeof *m);
    sage_arena *a = arena(), *b = arena();
    sage__req q;
    sage__resp p;

    for (size_t k = 0; k < sizeof fmt_cases / sizeof fmt_cases[0]; k++) {
        const struct fmt_case *c = &fmt_cases[k];
        sage_value want = fmt_want(c, a);
        size_t start, stop;
        sage_err e;

        /* as the one argument and as the kwargs value of "v" */
        req_head(m);
        mp_arr(m, 1);
        mp_raw(m, c->enc, c->enc_len);
        mp_map(m, 1);
        mp_str(m, "v");
        mp_raw(m, c->enc, c->enc_len);
        mp_str(m, "r");
        mp_uint(m, 0);
        mp_uint(m, 0);
        e = sage__wire_req_decode(m->b, m->n, b, &q);
        if (e != SAGE_OK)
            th_fail(__FILE__, __LINE__, "%s: %s (%s)", c->name, sage_errname(e), sage_errdetail());
        if (q.args.type != SAGE_ARRAY || q.args.as.array.len != 1 ||
            !same_value(&q.args.as.array.items[0], &want))
            th_fail(__FILE__, __LINE__, "%s: wrong argument", c->name);
        if (q.kwargs.as.map.len != 1 || !same_value(&q.kwargs.as.map.items[0].val, &want))
            th_fail(__FILE__, __LINE__, "%s: wrong kwargs value", c->name);
        sage_arena_reset(b);

        /* as the result: then cut the message at every byte */
        m->n = 0;
        mp_arr(m, 7);
        mp_uint(m, 1);
        mp_uint(m, 1);
        mp_uint(m, 7);
        mp_byte(m, 0xc3);
        start = m->n;
        mp_raw(m, c->enc, c->enc_len);
        stop = m->n;
        mp_uint(m, 0);
        mp_str(m, "");
        e = sage__wire_resp_decode(m->b, m->n, b, &p);
        if (e != SAGE_OK || !same_value(&p.result, &want))
            th_fail(__FILE__, __LINE__, "%s: wrong result (%s)", c->name, sage_errname(e));
        for (size_t n = 0; n < m->n; n++) {
            memset(&p, 0x5a, sizeof p);
            e = sage__wire_resp_decode(m->b, n, b, &p);
            if (e != SAGE_EPROTO || strncmp(sage_errdetail(), "response", 8) != 0)
                th_fail(__FILE__, __LINE__, "%s cut at %zu: %s (%s)", c->name, n,
                        sage_errname(e), sage_errdetail());
            /* inside the value, the structure is what is wrong, not a field */
            if (n > start && n < stop && strncmp(sage_errdetail(), "response: ", 10) != 0)
                th_fail(__FILE__, __LINE__, "%s cut at %zu: \"%s\"", c->name, n, sage_errdetail());
            ASSERT_EQ(p.id, 0x5a5a5a5a5a5a5a5aull);
            sage_arena_reset(b);
        }
    }
    sage_arena_free(a);
    sage_arena_free(b);
    free(m);
}

/* The decoder's result is a copy: the buffer can be wiped at once. */
static void t_decoded_copy(void)
{
    struct mp *m = calloc(1, sizeof *m);
    sage_arena *a = arena();
    sage__req q;

    make_req(m, 10, 5, w_float32);
    ASSERT_OK(sage__wire_req_decode(m->b, m->n, a, &q));
    memset(m->b, 0xee, sizeof m->b);
    ASSERT_STREQ(q.service, "kv");
    ASSERT_STREQ(q.method, "put");
    ASSERT_STREQ(q.reply_to, "r1");
    ASSERT_TRUE(q.args.as.array.items[0].as.d == 1.5);

    req_head(m); /* a bin, an array and a map inside args */
    mp_arr(m, 2);
    mp_raw(m, "\xc4\x03\x00\x01\x02", 5);
    mp_map(m, 1);
    mp_str(m, "key");
    mp_arr(m, 1);
    mp_str(m, "deep");
    req_tail(m);
    ASSERT_OK(sage__wire_req_decode(m->b, m->n, a, &q));
    memset(m->b, 0xee, sizeof m->b);
    ASSERT_TRUE(memcmp(q.args.as.array.items[0].as.bin.ptr, "\x00\x01\x02", 3) == 0);
    ASSERT_STREQ(q.args.as.array.items[1].as.map.items[0].key.as.str.ptr, "key");
    ASSERT_STREQ(q.args.as.array.items[1].as.map.items[0].val.as.array.items[0].as.str.ptr,
                 "deep");
    sage_arena_free(a);
    free(m);
}

/* large arrays and maps: decoded whole, or refused before their items are
 * allocated when anything in them is wrong */
static void t_large_containers(void)
{
    struct mp *m = calloc(1, sizeof *m);
    sage_arena *a = arena();
    sage__req q;
    size_t h0, h1, bad_at = 0;
    uint64_t m0, m1;
    char want[128];

    req_head(m); /* 1000 ints */
    mp_arr(m, 1000);
    for (int i = 0; i < 1000; i++)
        mp_uint(m, (uint64_t)i * 1000);
    req_tail(m);
    ASSERT_OK(sage__wire_req_decode(m->b, m->n, a, &q));
    ASSERT_EQ(q.args.as.array.len, 1000);
    for (int i = 0; i < 1000; i++)
        ASSERT_EQ(q.args.as.array.items[i].as.i, i * 1000);
    sage_arena_reset(a);

    req_head(m); /* 40 arrays of 40 maps of 1 pair, then 100 kwargs */
    mp_arr(m, 40);
    for (int i = 0; i < 40; i++) {
        mp_arr(m, 40);
        for (int j = 0; j < 40; j++) {
            mp_map(m, 1);
            mp_uint(m, (uint64_t)i);
            mp_uint(m, (uint64_t)j);
        }
    }
    mp_map(m, 100);
    for (int i = 0; i < 100; i++) {
        char key[8];

        snprintf(key, sizeof key, "k%d", i);
        mp_str(m, key);
        mp_uint(m, (uint64_t)i);
    }
    mp_str(m, "r1");
    mp_uint(m, 5000);
    mp_uint(m, 0);
    ASSERT_OK(sage__wire_req_decode(m->b, m->n, a, &q));
    ASSERT_EQ(q.args.as.array.len, 40);
    ASSERT_EQ(q.args.as.array.items[39].as.array.len, 40);
    ASSERT_EQ(q.args.as.array.items[39].as.array.items[38].as.map.items[0].key.as.i, 39);
    ASSERT_EQ(q.args.as.array.items[39].as.array.items[38].as.map.items[0].val.as.i, 38);
    ASSERT_EQ(q.kwargs.as.map.len, 100);
    ASSERT_STREQ(q.kwargs.as.map.items[99].key.as.str.ptr, "k99");
    ASSERT_EQ(q.kwargs.as.map.items[99].val.as.i, 99);
    sage_arena_free(a);

    /* an ext deep in a large array: refused before its 300 items (7 KiB) are
     * allocated, so the fresh arena's first chunk is all it ever holds */
    a = arena();
    sage__arena_stats(a, &h0, &m0);
    req_head(m);
    mp_arr(m, 300);
    for (int i = 0; i < 300; i++) {
        if (i == 250) {
            bad_at = m->n;
            mp_raw(m, "\xd4\x01\x00", 3);
        } else {
            mp_uint(m, 1);
        }
    }
    req_tail(m);
    ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
    snprintf(want, sizeof want, "request: ext (0xd4) at byte %zu is not allowed", bad_at);
    ASSERT_DETAIL(want);
    sage__arena_stats(a, &h1, &m1);
    ASSERT_EQ(h1, h0);
    ASSERT_EQ(m1, m0);

    /* the same array cut short: the bytes do cover the count, not the items */
    req_head(m);
    mp_arr(m, 300);
    for (int i = 0; i < 299; i++)
        mp_raw(m, "\xd3\x00\x00\x00\x00\x00\x00\x00\x01", 9);
    ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
    snprintf(want, sizeof want, "request: truncated at byte %zu", m->n);
    ASSERT_DETAIL(want);
    sage__arena_stats(a, &h1, &m1);
    ASSERT_EQ(h1, h0);
    ASSERT_EQ(m1, m0);

    /* a large map in args whose pairs the bytes cannot hold */
    req_head(m);
    mp_arr(m, 1);
    mp_raw(m, "\xde\xff\xff", 3);
    req_tail(m);
    ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
    ASSERT_DETAIL("request: map at byte 12 declares 131070 elements, only 8 bytes remain");
    sage_arena_free(a);
    free(m);
}

/* nesting of maps and of empty containers, at the limit of 32 levels */
static void t_depth_maps(void)
{
    struct mp *m = calloc(1, sizeof *m);
    sage_arena *a = arena();
    sage__req q;

    for (int extra = 30; extra <= 31; extra++) {
        req_head(m);
        mp_arr(m, 1); /* args: level 2, then maps to level 2 + extra */
        for (int i = 0; i < extra; i++) {
            mp_map(m, 1);
            mp_str(m, "k");
        }
        mp_uint(m, 5);
        req_tail(m);
        if (extra == 30) {
            ASSERT_OK(sage__wire_req_decode(m->b, m->n, a, &q));
        } else {
            ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
            ASSERT_DETAIL("request: nested deeper than 32 at byte 102");
        }
    }
    /* an empty array or map counts as a level too: fine at 32, not at 33
     * (where the msgpack-c decoder said ENOMEM, "msgpack-c refused") */
    for (int empty = 0x80; empty <= 0x90; empty += 0x10) {
        for (int extra = 29; extra <= 30; extra++) {
            req_head(m);
            mp_arr(m, 1);
            for (int i = 0; i < extra; i++)
                mp_arr(m, 1);
            mp_byte(m, (uint8_t)empty);
            req_tail(m);
            if (extra == 29) {
                ASSERT_OK(sage__wire_req_decode(m->b, m->n, a, &q));
                ASSERT_EQ(q.args.as.array.items[0].type, SAGE_ARRAY);
            } else {
                ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
                ASSERT_DETAIL("request: nested deeper than 32 at byte 42");
            }
        }
    }
    sage_arena_free(a);
    free(m);
}

/*
 * docs/PROTOCOL.md, "Order of checks": with several things wrong, the head,
 * then missing fields, then the structure of the whole message, then the
 * fields in index order. A decoder in one pass meets a wrong field before
 * the broken structure after it, and must still report the structure.
 */
static void t_check_order(void)
{
    struct mp *m = calloc(1, sizeof *m);
    sage_arena *a = arena();
    sage__req q;
    sage__resp p;
    size_t at;
    char want[128];

    /* a wrong service, then trailing bytes */
    make_req(m, 10, 3, w_int);
    mp_byte(m, 0xc0);
    ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
    ASSERT_DETAIL("request: 1 trailing bytes after the envelope");

    /* a wrong service, then an ext inside args */
    m->n = 0;
    mp_arr(m, 10);
    mp_uint(m, 1);
    mp_uint(m, 0);
    mp_uint(m, 7);
    mp_uint(m, 5); /* service */
    mp_str(m, "put");
    mp_arr(m, 2);
    mp_uint(m, 1);
    at = m->n;
    mp_raw(m, "\xc7\x00\x01", 3); /* ext8 */
    req_tail(m);
    ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
    snprintf(want, sizeof want, "request: ext (0xc7) at byte %zu is not allowed", at);
    ASSERT_DETAIL(want);
    /* ... and without the ext, the service */
    memcpy(m->b + at, "\xc0\xc0\xc0", 3);
    m->b[at - 2] = 0x94;
    ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
    ASSERT_DETAIL("request.service: expected str, got int");

    /* a non-str kwargs key, then a reply_to longer than the message */
    req_head(m);
    mp_arr(m, 0);
    mp_map(m, 1);
    mp_uint(m, 1);
    mp_uint(m, 2);
    at = m->n;
    mp_raw(m, "\xda\x01\x00", 3);
    mp_uint(m, 5000);
    mp_uint(m, 0);
    ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
    snprintf(want, sizeof want, "request: str at byte %zu declares 256 bytes, only 4 remain", at);
    ASSERT_DETAIL(want);

    /* two wrong fields: the first by index */
    make_req(m, 10, 4, w_int); /* method */
    m->n -= 4;                 /* timeout_ms 5000 (cd 13 88) and flags 0 */
    mp_byte(m, 0xc3);          /* timeout_ms true */
    mp_uint(m, 0);
    ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
    ASSERT_DETAIL("request.method: expected str, got int");
    make_req(m, 11, 10, w_str); /* sent_ns a str */
    m->b[m->n - 3] = 0xc0;      /* and flags nil */
    ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
    ASSERT_DETAIL("request.flags: expected uint32, got nil");

    /* responses: ok wrong and err_msg cut; err_code wrong and a reserved
     * byte for err_msg; a mismatch and an ext among the extra elements */
    make_resp(m, 7, 3, w_int);
    m->b[m->n - 1] = 0xa5; /* err_msg "" becomes a 5-byte string, missing */
    ASSERT_ERR(sage__wire_resp_decode(m->b, m->n, a, &p), SAGE_EPROTO);
    snprintf(want, sizeof want, "response: str at byte %zu declares 5 bytes, only 0 remain",
             m->n - 1);
    ASSERT_DETAIL(want);
    make_resp(m, 7, 5, w_str);
    m->b[m->n - 1] = 0xc1; /* err_msg */
    ASSERT_ERR(sage__wire_resp_decode(m->b, m->n, a, &p), SAGE_EPROTO);
    ASSERT_DETAIL("response: reserved (0xc1) at byte 8 is not allowed");
    make_resp(m, 8, 5, w_int);
    m->n -= 6; /* the extra "extra" */
    mp_raw(m, "\xd5\x01\x00\x00", 4);
    ASSERT_ERR(sage__wire_resp_decode(m->b, m->n, a, &p), SAGE_EPROTO);
    snprintf(want, sizeof want, "response: ext (0xd5) at byte %zu is not allowed", m->n - 4);
    ASSERT_DETAIL(want);
    make_resp(m, 8, 5, w_int);
    ASSERT_ERR(sage__wire_resp_decode(m->b, m->n, a, &p), SAGE_EPROTO);
    ASSERT_DETAIL("response.err_code: 5 with ok true");
    sage_arena_free(a);
    free(m);
}

/* salvage reads the id and reply-to of a request the decoder refuses, so
 * the caller can still be told why */
static void t_salvage(void)
{
    struct mp *m = calloc(1, sizeof *m);
    sage_arena *a = arena();
    sage__req q;

    make_req(m, 10, 8, w_true); /* timeout_ms a bool */
    ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
    memset(&q, 0, sizeof q);
    ASSERT_OK(sage__wire_req_salvage(m->b, m->n, a, &q));
    ASSERT_EQ(q.id, 7);
    ASSERT_EQ(q.reply_to_len, 2);
    ASSERT_STREQ(q.reply_to, "r1");
    /* an envelope count that lies: the fields up to reply_to still read */
    memmove(m->b + 3, m->b + 1, m->n - 1); /* 0x9a becomes dc ff ff */
    memcpy(m->b, "\xdc\xff\xff", 3);
    m->n += 2;
    ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EPROTO);
    memset(&q, 0, sizeof q);
    ASSERT_OK(sage__wire_req_salvage(m->b, m->n, a, &q));
    ASSERT_EQ(q.id, 7);
    ASSERT_STREQ(q.reply_to, "r1");
    /* ... and cut right after reply_to */
    make_req(m, 10, 99, NULL);
    memset(&q, 0, sizeof q);
    ASSERT_OK(sage__wire_req_salvage(m->b, m->n - 4, a, &q));
    ASSERT_EQ(q.id, 7);
    ASSERT_EQ(q.reply_to_len, 2);
    ASSERT_STREQ(q.reply_to, "r1");
    memset(&q, 0, sizeof q);
    ASSERT_OK(sage__wire_req_salvage(m->b, m->n - 5, a, &q)); /* the id, no reply_to */
    ASSERT_EQ(q.id, 7);
    ASSERT_EQ(q.reply_to_len, 0);

    /* the id but no reply_to: none, a broken field before it, too few
     * fields, another version (whose layout past the head is unknown) */
    {
        static const struct {
            unsigned count, bad;
            writer w;
        } idonly[] = {
            {10, 7, w_nil}, {7, 99, NULL}, {10, 5, w_ext}, {10, 6, w_map32}, {10, 5, w_c1},
        };

        for (size_t i = 0; i < sizeof idonly / sizeof idonly[0]; i++) {
            make_req(m, idonly[i].count, idonly[i].bad, idonly[i].w);
            q.id = 99;
            ASSERT_OK(sage__wire_req_salvage(m->b, m->n, a, &q));
            ASSERT_EQ(q.id, 7);
            ASSERT_EQ(q.reply_to_len, 0);
        }
        make_req(m, 10, 0, w_two); /* version 2 */
        ASSERT_ERR(sage__wire_req_decode(m->b, m->n, a, &q), SAGE_EVERSION);
        ASSERT_OK(sage__wire_req_salvage(m->b, m->n, a, &q));
        ASSERT_EQ(q.id, 7);
        ASSERT_EQ(q.reply_to_len, 0);
    }
    /* nothing at all: the head itself is broken */
    make_req(m, 10, 1, w_str);
    ASSERT_ERR(sage__wire_req_salvage(m->b, m->n, a, &q), SAGE_EPROTO);
    make_req(m, 10, 0, w_str);
    ASSERT_ERR(sage__wire_req_salvage(m->b, m->n, a, &q), SAGE_EPROTO);
    ASSERT_ERR(sage__wire_req_salvage(NULL, 0, a, &q), SAGE_EPROTO);
    ASSERT_EQ(q.id, 0);

    sage_arena_free(a);
    free(m);
}

static const struct th_case cases[] = {
    {"doc_examples", t_doc_examples, 10},
    {"roundtrip_request", t_roundtrip_request, 10},
    {"roundtrip_response", t_roundtrip_response, 10},
    {"nil_args_kwargs", t_nil_args_kwargs, 10},
    {"msgsize", t_msgsize, 10},
    {"encode_errors", t_encode_errors, 10},
    {"depth_limit_decode", t_depth_limit_decode, 10},
    {"truncations", t_truncations, 30},
    {"bad_requests", t_bad_requests, 10},
    {"bad_responses", t_bad_responses, 10},
    {"lenient_forms", t_lenient_forms, 10},
    {"trailing_garbage", t_trailing_garbage, 10},
    {"hostile_fast", t_hostile_fast, 10},
    {"peek", t_peek, 10},
    {"arena_reuse_100k", t_arena_reuse_100k, 60},
    {"threads", t_threads, 60},
    {"every_format", t_every_format, 30},
    {"decoded_copy", t_decoded_copy, 10},
    {"large_containers", t_large_containers, 10},
    {"depth_maps", t_depth_maps, 10},
    {"check_order", t_check_order, 10},
    {"salvage", t_salvage, 10},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
