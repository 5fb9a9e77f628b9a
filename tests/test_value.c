/* test_value.c - sage_value accessors, printing, arenas, copy, pack and unpack. */
#include <float.h>
#include <limits.h>
#include <math.h>

#include "harness.h"
#include "sage/value.h"
#include "value/arena.h"

/* ASSERT_DETAIL: the thread's error detail is exactly want. */
#define ASSERT_DETAIL(want) ASSERT_STREQ(sage_errdetail(), want)

static sage_arena *arena(size_t chunk)
{
    sage_arena *a = NULL;

    ASSERT_OK(sage_arena_new(&a, chunk));
    ASSERT_TRUE(a != NULL);
    return a;
}

static const char *print(const sage_value *v)
{
    static char buf[1024];
    int n = sage_value_snprint(buf, sizeof buf, v);

    ASSERT_EQ(n, strlen(buf));
    return buf;
}

/* ------------------------------------------------------------------ cases */

static void t_constructors(void)
{
    static const char bytes[] = {1, 0, 2};
    sage_value items[2] = {sage_int(1), sage_nil()};
    sage_pair pairs[1] = {{sage_str("k"), sage_bool(true)}};
    sage_value v;

    ASSERT_EQ(sage_nil().type, SAGE_NIL);
    v = sage_bool(true);
    ASSERT_TRUE(v.type == SAGE_BOOL && v.as.b);
    v = sage_int(INT64_MIN);
    ASSERT_TRUE(v.type == SAGE_INT && v.as.i == INT64_MIN);
    v = sage_uint(UINT64_MAX);
    ASSERT_TRUE(v.type == SAGE_UINT && v.as.u == UINT64_MAX);
    v = sage_double(-2.5);
    ASSERT_TRUE(v.type == SAGE_DOUBLE && v.as.d == -2.5);
    v = sage_str("hello");
    ASSERT_TRUE(v.type == SAGE_STR && v.as.str.len == 5 && strcmp(v.as.str.ptr, "hello") == 0);
    v = sage_strn("a\0b", 3);
    ASSERT_TRUE(v.type == SAGE_STR && v.as.str.len == 3);
    v = sage_bin(bytes, sizeof bytes);
    ASSERT_TRUE(v.type == SAGE_BIN && v.as.bin.len == 3 && v.as.bin.ptr == bytes);
    v = sage_array(items, 2);
    ASSERT_TRUE(v.type == SAGE_ARRAY && v.as.array.len == 2 && v.as.array.items == items);
    v = sage_map(pairs, 1);
    ASSERT_TRUE(v.type == SAGE_MAP && v.as.map.len == 1 && v.as.map.items == pairs);
}

static void t_type_names(void)
{
    ASSERT_STREQ(sage_type_name(SAGE_NIL), "nil");
    ASSERT_STREQ(sage_type_name(SAGE_BOOL), "bool");
    ASSERT_STREQ(sage_type_name(SAGE_INT), "int");
    ASSERT_STREQ(sage_type_name(SAGE_UINT), "uint");
    ASSERT_STREQ(sage_type_name(SAGE_DOUBLE), "double");
    ASSERT_STREQ(sage_type_name(SAGE_STR), "string");
    ASSERT_STREQ(sage_type_name(SAGE_BIN), "bin");
    ASSERT_STREQ(sage_type_name(SAGE_ARRAY), "array");
    ASSERT_STREQ(sage_type_name(SAGE_MAP), "map");
    ASSERT_STREQ(sage_type_name((sage_type)99), "unknown");
}

static void t_accessors(void)
{
    sage_value s = sage_str("x"), bin = sage_bin("ab", 2);
    bool b = false;
    int64_t i = 7;
    uint64_t u = 7;
    double d = 0;
    const char *sp = NULL;
    const void *bp = NULL;
    size_t n = 0;

    ASSERT_ERR(sage_value_get_bool(&b, &(sage_value){.type = SAGE_NIL}), SAGE_EBADARGS);
    ASSERT_DETAIL("expected bool, got nil");
    ASSERT_TRUE(!b);
    ASSERT_OK(sage_value_get_bool(&b, &(sage_value){.type = SAGE_BOOL, .as.b = true}));
    ASSERT_TRUE(b);

    ASSERT_OK(sage_value_get_int(&i, &(sage_value){.type = SAGE_INT, .as.i = INT64_MIN}));
    ASSERT_TRUE(i == INT64_MIN);
    ASSERT_OK(sage_value_get_int(&i, &(sage_value){.type = SAGE_UINT, .as.u = INT64_MAX}));
    ASSERT_TRUE(i == INT64_MAX);
    i = 7;
    ASSERT_ERR(sage_value_get_int(&i, &(sage_value){.type = SAGE_UINT, .as.u = (uint64_t)INT64_MAX + 1}),
               SAGE_EBADARGS);
    ASSERT_DETAIL("9223372036854775808 does not fit in int64");
    ASSERT_EQ(i, 7);
    ASSERT_ERR(sage_value_get_int(&i, &s), SAGE_EBADARGS);
    ASSERT_DETAIL("expected int, got string");
    ASSERT_ERR(sage_value_get_int(&i, &(sage_value){.type = SAGE_DOUBLE, .as.d = 1}),
               SAGE_EBADARGS);
    ASSERT_DETAIL("expected int, got double");

    ASSERT_OK(sage_value_get_uint(&u, &(sage_value){.type = SAGE_UINT, .as.u = UINT64_MAX}));
    ASSERT_TRUE(u == UINT64_MAX);
    ASSERT_OK(sage_value_get_uint(&u, &(sage_value){.type = SAGE_INT, .as.i = 0}));
    ASSERT_EQ(u, 0);
    u = 7;
    ASSERT_ERR(sage_value_get_uint(&u, &(sage_value){.type = SAGE_INT, .as.i = -1}),
               SAGE_EBADARGS);
    ASSERT_DETAIL("-1 does not fit in uint64");
    ASSERT_EQ(u, 7);
    ASSERT_ERR(sage_value_get_uint(&u, &bin), SAGE_EBADARGS);
    ASSERT_DETAIL("expected uint, got bin");

    ASSERT_OK(sage_value_get_double(&d, &(sage_value){.type = SAGE_DOUBLE, .as.d = 0.25}));
    ASSERT_TRUE(d == 0.25);
    ASSERT_OK(sage_value_get_double(&d, &(sage_value){.type = SAGE_INT, .as.i = -3}));
    ASSERT_TRUE(d == -3.0);
    ASSERT_OK(sage_value_get_double(&d, &(sage_value){.type = SAGE_UINT, .as.u = UINT64_MAX}));
    ASSERT_TRUE(d == 18446744073709551616.0);
    ASSERT_ERR(sage_value_get_double(&d, &s), SAGE_EBADARGS);
    ASSERT_DETAIL("expected double, got string");

    ASSERT_OK(sage_value_get_str(&sp, &n, &s));
    ASSERT_TRUE(sp == s.as.str.ptr && n == 1);
    ASSERT_OK(sage_value_get_str(&sp, NULL, &s));
    ASSERT_ERR(sage_value_get_str(&sp, &n, &bin), SAGE_EBADARGS);
    ASSERT_DETAIL("expected string, got bin");

    ASSERT_OK(sage_value_get_bin(&bp, &n, &bin));
    ASSERT_TRUE(bp == bin.as.bin.ptr && n == 2);
    ASSERT_OK(sage_value_get_bin(&bp, NULL, &bin));
    ASSERT_ERR(sage_value_get_bin(&bp, &n, &s), SAGE_EBADARGS);
    ASSERT_DETAIL("expected bin, got string");
}

static void t_map_get(void)
{
    sage_pair pairs[] = {
        {sage_int(1), sage_str("int key")},
        {sage_str("a"), sage_int(1)},
        {sage_str(""), sage_int(2)},
        {sage_str("a"), sage_int(3)},
        {sage_strn("b\0c", 3), sage_int(4)},
    };
    sage_value m = sage_map(pairs, 5), notmap = sage_str("a");
    const sage_value *v;

    v = sage_map_get(&m, "a");
    ASSERT_TRUE(v != NULL && v->as.i == 1); /* first of duplicates */
    v = sage_map_get(&m, "");
    ASSERT_TRUE(v != NULL && v->as.i == 2);
    ASSERT_TRUE(sage_map_get(&m, "b") == NULL);
    ASSERT_TRUE(sage_map_get(&m, "1") == NULL);
    ASSERT_TRUE(sage_map_get(&notmap, "a") == NULL);
    ASSERT_TRUE(sage_map_get(NULL, "a") == NULL);
    ASSERT_TRUE(sage_map_get(&m, NULL) == NULL);
}

static void t_equal(void)
{
    sage_value a1[] = {sage_int(1), sage_str("x"), sage_double(NAN)};
    sage_value a2[] = {sage_uint(1), sage_strn("x", 1), sage_double(NAN)};
    sage_value a3[] = {sage_int(1), sage_str("y"), sage_double(NAN)};
    sage_pair m1[] = {{sage_str("k"), sage_array(a1, 3)}, {sage_int(2), sage_nil()}};
    sage_pair m2[] = {{sage_str("k"), sage_array(a2, 3)}, {sage_int(2), sage_nil()}};
    sage_pair m3[] = {{sage_int(2), sage_nil()}, {sage_str("k"), sage_array(a2, 3)}};
    sage_value v1 = sage_map(m1, 2), v2 = sage_map(m2, 2), v3 = sage_map(m3, 2);
    sage_value x, y;

    ASSERT_TRUE(sage_value_equal(&v1, &v2));
    ASSERT_TRUE(!sage_value_equal(&v1, &v3)); /* maps compare in order */
    x = sage_array(a1, 3);
    y = sage_array(a3, 3);
    ASSERT_TRUE(!sage_value_equal(&x, &y));
    y = sage_array(a1, 2);
    ASSERT_TRUE(!sage_value_equal(&x, &y));

    x = sage_int(-1);
    y = sage_uint(UINT64_MAX);
    ASSERT_TRUE(!sage_value_equal(&x, &y));
    x = sage_int(INT64_MAX);
    y = sage_uint(INT64_MAX);
    ASSERT_TRUE(sage_value_equal(&x, &y) && sage_value_equal(&y, &x));
    x = sage_int(1);
    y = sage_double(1.0);
    ASSERT_TRUE(!sage_value_equal(&x, &y));
    x = sage_double(0.0);
    y = sage_double(-0.0);
    ASSERT_TRUE(sage_value_equal(&x, &y));
    x = sage_strn("a\0b", 3);
    y = sage_strn("a\0c", 3);
    ASSERT_TRUE(!sage_value_equal(&x, &y));
    x = sage_bin(NULL, 0);
    y = sage_bin("", 0);
    ASSERT_TRUE(sage_value_equal(&x, &y));
    y = sage_strn("", 0);
    ASSERT_TRUE(!sage_value_equal(&x, &y)); /* bin is not str */
    x = sage_nil();
    y = sage_nil();
    ASSERT_TRUE(sage_value_equal(&x, &y));
    x = sage_bool(true);
    y = sage_bool(false);
    ASSERT_TRUE(!sage_value_equal(&x, &y));
}

static void t_snprint(void)
{
    sage_value inner[] = {sage_int(1), sage_str("x")};
    sage_pair pairs[] = {
        {sage_str("k"), sage_array(inner, 2)},
        {sage_int(2), sage_nil()},
        {sage_nil(), sage_bool(false)},
    };
    sage_value items[] = {
        sage_nil(),           sage_bool(true),       sage_int(-5),
        sage_uint(UINT64_MAX), sage_double(1.5),     sage_strn("a\"b\\c\n\x01\0", 8),
        sage_bin("\0\0\0", 3), sage_map(pairs, 3),   sage_array(NULL, 0),
        sage_map(NULL, 0),     sage_str("caf\xc3\xa9"),
    };
    sage_value v = sage_array(items, sizeof items / sizeof items[0]);
    char small[8];
    int n;

    ASSERT_STREQ(print(&v), "[null,true,-5,18446744073709551615,1.5,\"a\\\"b\\\\c\\n\\u0001\\u0000\","
                            "<3 bytes>,{\"k\":[1,\"x\"],2:null,null:false},[],{},\"caf\xc3\xa9\"]");
    v = sage_int(INT64_MIN);
    ASSERT_STREQ(print(&v), "-9223372036854775808");
    v = sage_double(1.0);
    ASSERT_STREQ(print(&v), "1.0");
    v = sage_double(0.1);
    ASSERT_STREQ(print(&v), "0.1");
    v = sage_double(-1e100);
    ASSERT_STREQ(print(&v), "-1e+100");
    v = sage_double(1.0 / 3);
    ASSERT_STREQ(print(&v), "0.3333333333333333");
    v = sage_double(DBL_MAX);
    ASSERT_STREQ(print(&v), "1.7976931348623157e+308");
    v = sage_double(NAN);
    ASSERT_STREQ(print(&v), "NaN");
    v = sage_double(-INFINITY);
    ASSERT_STREQ(print(&v), "-Infinity");
    v = sage_strn("\t\r\b\f\x7f", 5);
    ASSERT_STREQ(print(&v), "\"\\t\\r\\b\\f\x7f\"");
    v = sage_strn(NULL, 0);
    ASSERT_STREQ(print(&v), "\"\"");

    /* truncation: the needed length comes back, the buffer stays terminated */
    v = sage_array(inner, 2);
    n = sage_value_snprint(small, 4, &v);
    ASSERT_EQ(n, 7); /* [1,"x"] */
    ASSERT_STREQ(small, "[1,");
    ASSERT_EQ(sage_value_snprint(NULL, 0, &v), 7);
    ASSERT_EQ(sage_value_snprint(small, sizeof small, &v), 7);
    ASSERT_STREQ(small, "[1,\"x\"]");
    ASSERT_EQ(sage_value_snprint(small, 1, &v), 7);
    ASSERT_STREQ(small, "");
}

static void t_arena_basics(void)
{
    sage_arena *a = arena(0);
    size_t held;
    uint64_t mallocs, m0;
    char *p, *q, *big;

    sage__arena_stats(a, &held, &mallocs);
    ASSERT_EQ(mallocs, 1);
    for (size_t n = 0; n < 100; n++) {
        p = sage_arena_alloc(a, n);
        ASSERT_TRUE(p != NULL);
        ASSERT_EQ((uintptr_t)p % 8, 0);
        memset(p, 0xab, n);
    }
    p = sage_arena_alloc(a, 3);
    q = sage_arena_alloc(a, 3);
    ASSERT_EQ(q - p, 8);
    sage__arena_stats(a, &held, &m0);
    big = sage_arena_alloc(a, 100000); /* its own chunk, head keeps serving */
    ASSERT_TRUE(big != NULL);
    memset(big, 1, 100000);
    sage__arena_stats(a, &held, &mallocs);
    ASSERT_EQ(mallocs, m0 + 1);
    p = sage_arena_alloc(a, 8);
    ASSERT_TRUE(p == q + 8); /* from head, right after q */
    sage__arena_stats(a, &held, &mallocs);
    ASSERT_EQ(mallocs, m0 + 1);
    ASSERT_TRUE(sage_arena_alloc(a, SIZE_MAX) == NULL);
    ASSERT_TRUE(sage_arena_alloc(a, SIZE_MAX - 4) == NULL);
    sage_arena_reset(a);
    sage__arena_stats(a, &held, &mallocs);
    ASSERT_LE(held, (1 << 20) + 64);
    sage_arena_free(a);
    sage_arena_free(NULL);
    sage_arena_reset(NULL);
    ASSERT_ERR(sage_arena_new(NULL, 0), SAGE_EINVAL);
}

static void t_arena_reuse(void)
{
    sage_arena *a = arena(1024);
    uint64_t m0, m1;
    size_t h0, h1;

    /* steady state within one chunk: no malloc at all */
    for (int round = 0; round < 1000; round++) {
        for (int i = 0; i < 20; i++)
            ASSERT_TRUE(sage_arena_alloc(a, 40) != NULL);
        sage_arena_reset(a);
    }
    sage__arena_stats(a, &h0, &m0);
    ASSERT_EQ(m0, 1);

    /* a round that spills over several chunks: the first reset makes one
     * chunk big enough, and identical rounds after it do no malloc */
    for (int i = 0; i < 100; i++)
        ASSERT_TRUE(sage_arena_alloc(a, 200) != NULL);
    sage_arena_reset(a);
    sage__arena_stats(a, &h0, &m0);
    for (int round = 0; round < 1000; round++) {
        for (int i = 0; i < 100; i++)
            ASSERT_TRUE(sage_arena_alloc(a, 200) != NULL);
        sage_arena_reset(a);
    }
    sage__arena_stats(a, &h1, &m1);
    ASSERT_EQ(m1, m0);
    ASSERT_EQ(h1, h0);

    /* a huge one-off is not kept */
    ASSERT_TRUE(sage_arena_alloc(a, 8 << 20) != NULL);
    sage_arena_reset(a);
    sage__arena_stats(a, &h1, NULL);
    ASSERT_LE(h1, (1 << 20) + 64);
    sage_arena_free(a);
}

static void t_copy(void)
{
    char buf[] = "mutable";
    char bytes[] = {0, 1, 0, 2};
    sage_value inner[] = {sage_str(buf), sage_bin(bytes, 4), sage_strn(NULL, 0)};
    sage_pair pairs[] = {{sage_str("k"), sage_array(inner, 3)}, {sage_int(5), sage_double(2.5)}};
    sage_value src = sage_map(pairs, 2), dst, before;
    sage_arena *a = arena(0);

    ASSERT_OK(sage_value_copy(&dst, a, &src));
    ASSERT_TRUE(sage_value_equal(&src, &dst));
    ASSERT_TRUE(dst.as.map.items != pairs);
    buf[0] = 'X';
    bytes[1] = 9;
    ASSERT_STREQ(dst.as.map.items[0].val.as.array.items[0].as.str.ptr, "mutable");
    ASSERT_EQ(((const char *)dst.as.map.items[0].val.as.array.items[1].as.bin.ptr)[1], 1);
    ASSERT_STREQ(dst.as.map.items[0].val.as.array.items[2].as.str.ptr, ""); /* made non-NULL */
    ASSERT_EQ(dst.as.map.items[0].key.as.str.ptr[1], '\0');

    /* in place */
    before = dst;
    ASSERT_OK(sage_value_copy(&dst, a, &dst));
    ASSERT_TRUE(sage_value_equal(&before, &dst) && dst.as.map.items != before.as.map.items);

    /* errors leave dst alone */
    before = dst;
    src = sage_strn(NULL, 3);
    ASSERT_ERR(sage_value_copy(&dst, a, &src), SAGE_EINVAL);
    ASSERT_DETAIL("copy: string of 3 bytes at NULL");
    src = sage_array(NULL, 2);
    ASSERT_ERR(sage_value_copy(&dst, a, &src), SAGE_EINVAL);
    ASSERT_DETAIL("copy: array of 2 items at NULL");
    src.type = (sage_type)42;
    ASSERT_ERR(sage_value_copy(&dst, a, &src), SAGE_EINVAL);
    ASSERT_DETAIL("copy: unknown value type 42");
    ASSERT_TRUE(dst.as.map.items == before.as.map.items);
    ASSERT_ERR(sage_value_copy(&dst, NULL, &src), SAGE_EINVAL);

    /* a cycle is caught, not followed forever */
    {
        sage_value cyc[1];

        cyc[0] = sage_array(cyc, 1);
        ASSERT_ERR(sage_value_copy(&dst, a, &cyc[0]), SAGE_EINVAL);
        ASSERT_DETAIL("copy: value nested deeper than 1000 (a cycle?)");
    }
    sage_arena_free(a);
}

static void t_pack_letters(void)
{
    sage_arena *a = arena(0);
    sage_value inner = sage_str("deep"), v;
    char *heap = strdup("temp");

    ASSERT_OK(sage_pack(&v, a, "[n, b, b, i, I, u, f, s, s#, y#, v, [], {}]", 1, 0, INT_MIN, (int64_t)INT64_MIN, (uint64_t)UINT64_MAX, 0.5, heap, "a\0bc", (size_t)3, "\0\1", (size_t)2, &inner));
    free(heap); /* copied */
    ASSERT_STREQ(print(&v), "[null,true,false,-2147483648,-9223372036854775808,"
                            "18446744073709551615,0.5,\"temp\",\"a\\u0000b\",<2 bytes>,\"deep\",[],{}]");
    ASSERT_EQ(v.as.array.items[3].type, SAGE_INT);
    ASSERT_EQ(v.as.array.items[5].type, SAGE_UINT);
    ASSERT_EQ(v.as.array.items[8].as.str.ptr[3], '\0'); /* s# copies get a terminator */
    ASSERT_EQ(v.as.array.items[9].type, SAGE_BIN);
    ASSERT_TRUE(v.as.array.items[10].as.str.ptr != inner.as.str.ptr);

    ASSERT_OK(sage_pack(&v, a, "{s:i, s:[s, {s:f}], s#:n}", "a", 1, "b", "x", "c", 2.0, "dd", (size_t)1));
    ASSERT_STREQ(print(&v), "{\"a\":1,\"b\":[\"x\",{\"c\":2.0}],\"d\":null}");
    ASSERT_OK(sage_pack(&v, a, " i ", 0));
    ASSERT_STREQ(print(&v), "0");
    ASSERT_OK(sage_pack(&v, a, "y#", NULL, (size_t)0)); /* empty bytes may be NULL */
    ASSERT_TRUE(v.type == SAGE_BIN && v.as.bin.len == 0);
    ASSERT_OK(sage_pack(&v, a, "[[[[i]]]]", 4));
    ASSERT_STREQ(print(&v), "[[[[4]]]]");
    ASSERT_OK(sage_pack(&v, a, "\t[i\n,\ri]\n", 1, 2));
    ASSERT_STREQ(print(&v), "[1,2]");
    sage_arena_free(a);
}

static void t_pack_errors(void)
{
    sage_arena *a = arena(0);
    sage_value v = sage_int(99);

    ASSERT_ERR(sage_pack(&v, a, "[i, s]", 1, (const char *)NULL), SAGE_EINVAL);
    ASSERT_DETAIL("format \"[i, s]\": NULL string argument at position 4");
    ASSERT_ERR(sage_pack(&v, a, "s#", (const char *)NULL, (size_t)0), SAGE_EINVAL);
    ASSERT_DETAIL("format \"s#\": NULL string argument at position 0");
    ASSERT_ERR(sage_pack(&v, a, "y#", NULL, (size_t)3), SAGE_EINVAL);
    ASSERT_DETAIL("format \"y#\": NULL bytes argument at position 0");
    ASSERT_ERR(sage_pack(&v, a, "v", (const sage_value *)NULL), SAGE_EINVAL);
    ASSERT_DETAIL("format \"v\": NULL value argument at position 0");
    ASSERT_ERR(sage_pack(&v, a, "{s:i}", (const char *)NULL, 1), SAGE_EINVAL);
    ASSERT_ERR(sage_pack(&v, a, ""), SAGE_EINVAL);
    ASSERT_DETAIL("format \"\": expected a value, got end of format");
    ASSERT_ERR(sage_pack(&v, a, "q"), SAGE_EINVAL);
    ASSERT_DETAIL("format \"q\": expected a value, got 'q' at position 0");
    ASSERT_ERR(sage_pack(&v, a, "ii", 1, 2), SAGE_EINVAL);
    ASSERT_DETAIL("format \"ii\": expected end of format after one value, got 'i' at position 1");
    ASSERT_ERR(sage_pack(&v, a, "[i", 1), SAGE_EINVAL);
    ASSERT_DETAIL("format \"[i\": expected ']', got end of format");
    ASSERT_ERR(sage_pack(&v, a, "[i}", 1), SAGE_EINVAL);
    ASSERT_DETAIL("format \"[i}\": expected ']', got '}' at position 2");
    ASSERT_ERR(sage_pack(&v, a, "{i:i}", 1, 2), SAGE_EINVAL);
    ASSERT_DETAIL("format \"{i:i}\": expected a map key 's', got 'i' at position 1");
    ASSERT_ERR(sage_pack(&v, a, "{s}", "k"), SAGE_EINVAL);
    ASSERT_DETAIL("format \"{s}\": expected a value, got '}' at position 2");
    ASSERT_ERR(sage_pack(&v, a, "y", "ab"), SAGE_EINVAL);
    ASSERT_DETAIL("format \"y\": 'y' must be followed by '#', got end of format");
    ASSERT_ERR(sage_pack(&v, a, "[i*]", 1), SAGE_EINVAL);
    ASSERT_DETAIL("format \"[i*]\": expected ']', got '*' at position 2");
    ASSERT_ERR(sage_pack(&v, a, "{s:?i}", "k", 1), SAGE_EINVAL);
    ASSERT_ERR(sage_pack(&v, NULL, "n"), SAGE_EINVAL);
    ASSERT_ERR(sage_pack(NULL, a, "n"), SAGE_EINVAL);
    ASSERT_ERR(sage_pack(&v, a, NULL), SAGE_EINVAL);
    ASSERT_TRUE(v.type == SAGE_INT && v.as.i == 99); /* never written on failure */
    sage_arena_free(a);
}

static void t_unpack_letters(void)
{
    sage_arena *a = arena(0);
    sage_value v, inner = sage_str("in");
    bool b1 = false, b2 = true;
    int i = 0;
    int64_t big = 0;
    uint64_t u = 0;
    double f1 = 0, f2 = 0;
    const char *s = NULL, *s2 = NULL;
    size_t slen = 0, ylen = 0;
    const void *y = NULL;
    const sage_value *pv = NULL;

    ASSERT_OK(sage_pack(&v, a, "[n, b, b, i, I, u, f, i, s, s#, y#, v]", 1, 0, INT_MAX, (int64_t)INT64_MIN, (uint64_t)UINT64_MAX, 0.25, 3, "str", "a\0b", (size_t)3, "\0\1\2", (size_t)3, &inner));
    ASSERT_OK(sage_unpack(&v, "[n b b i I u f f s s# y# v]", &b1, &b2, &i, &big, &u, &f1, &f2,
                          &s, &s2, &slen, &y, &ylen, &pv));
    ASSERT_TRUE(b1 && !b2);
    ASSERT_EQ(i, INT_MAX);
    ASSERT_TRUE(big == INT64_MIN && u == UINT64_MAX);
    ASSERT_TRUE(f1 == 0.25 && f2 == 3.0); /* 'f' accepts integers */
    ASSERT_STREQ(s, "str");
    ASSERT_TRUE(s == v.as.array.items[8].as.str.ptr); /* borrowed */
    ASSERT_TRUE(slen == 3 && memcmp(s2, "a\0b", 3) == 0);
    ASSERT_TRUE(ylen == 3 && memcmp(y, "\0\1\2", 3) == 0);
    ASSERT_TRUE(pv == &v.as.array.items[11]);

    /* '*': at least that many */
    ASSERT_OK(sage_unpack(&v, "[n b *]", &b1));
    ASSERT_OK(sage_unpack(&v, "[*]"));
    ASSERT_OK(sage_pack(&v, a, "[]"));
    ASSERT_OK(sage_unpack(&v, "[]"));
    ASSERT_OK(sage_unpack(&v, "[*]"));
    sage_arena_free(a);
}

static void t_unpack_maps(void)
{
    sage_arena *a = arena(0);
    sage_value v;
    const char *key = NULL;
    int count = -1, skipped = -1, nested1 = -1, nested2 = -1;
    size_t skipped_len = 0;
    double ttl = -1, absent = -1, nilled = -1;
    const sage_value *nilv = NULL;

    ASSERT_OK(sage_pack(&v, a, "{s:s, s:i, s:f, s:n, s:n, s:{s:[i,i]}}", "key", "k1", "count", 3, "ttl", 1.5, "gone", "nv", "sub", "pair", 4, 5));
    ASSERT_OK(sage_unpack(&v, "{s:s s:i s:?f s:?f s:?f s:?v s:{s:[ii]}}", "key", &key, "count",
                          &count, "ttl", &ttl, "absent", &absent, "gone", &nilled, "nv", &nilv,
                          "sub", "pair", &nested1, &nested2));
    ASSERT_STREQ(key, "k1");
    ASSERT_EQ(count, 3);
    ASSERT_TRUE(ttl == 1.5);
    ASSERT_TRUE(absent == -1); /* missing: untouched */
    ASSERT_TRUE(nilled == -1); /* nil counts as not given */
    ASSERT_TRUE(nilv != NULL && nilv->type == SAGE_NIL); /* except for 'v' */
    ASSERT_TRUE(nested1 == 4 && nested2 == 5);

    /* a missing optional key still consumes its arguments, nested ones too */
    ASSERT_OK(sage_unpack(&v, "{s:?[i, {s:i}, s#] s:i}", "nope", &skipped, "x", &skipped, &key,
                          &skipped_len, "count", &count));
    ASSERT_EQ(skipped, -1);
    ASSERT_EQ(skipped_len, 0);
    ASSERT_EQ(count, 3);
    ASSERT_OK(sage_unpack(&v, "{}"));
    sage_arena_free(a);
}

static void t_unpack_errors(void)
{
    sage_arena *a = arena(0);
    sage_value v;
    int i = 11, j = 12;
    uint64_t u = 13;
    int64_t big = 14;
    const char *s = NULL;
    const void *y = NULL;
    const sage_value *pv = NULL;
    bool b = false;
    size_t n = 0;
    double d = 0;

    ASSERT_OK(sage_pack(&v, a, "[s, s, I, I, u]", "k", "x", (int64_t)3000000000LL, (int64_t)-1, (uint64_t)UINT64_MAX));
    ASSERT_ERR(sage_unpack(&v, "[s i *]", &s, &i), SAGE_EBADARGS);
    ASSERT_DETAIL("value[1]: expected int, got string");
    ASSERT_EQ(i, 11);
    ASSERT_ERR(sage_unpack(&v, "[s s i *]", &s, &s, &i), SAGE_EBADARGS);
    ASSERT_DETAIL("value[2]: 3000000000 does not fit in int");
    ASSERT_ERR(sage_unpack(&v, "[s s I u *]", &s, &s, &big, &u), SAGE_EBADARGS);
    ASSERT_DETAIL("value[3]: -1 does not fit in uint64");
    ASSERT_ERR(sage_unpack(&v, "[s s I I I]", &s, &s, &big, &big, &big), SAGE_EBADARGS);
    ASSERT_DETAIL("value[4]: 18446744073709551615 does not fit in int64");
    ASSERT_ERR(sage_unpack(&v, "[s s]", &s, &s), SAGE_EBADARGS);
    ASSERT_DETAIL("value: expected 2 items, got 5");
    ASSERT_ERR(sage_unpack(&v, "[s s s s s s *]", &s, &s, &s, &s, &s, &s), SAGE_EBADARGS);
    ASSERT_DETAIL("value: expected at least 6 items, got 5");
    ASSERT_ERR(sage_unpack(&v, "[n *]"), SAGE_EBADARGS);
    ASSERT_DETAIL("value[0]: expected nil, got string");
    ASSERT_ERR(sage_unpack(&v, "{s:i}", "a", &i), SAGE_EBADARGS);
    ASSERT_DETAIL("value: expected map, got array");
    ASSERT_ERR(sage_unpack(&v, "[b *]", &b), SAGE_EBADARGS);
    ASSERT_DETAIL("value[0]: expected bool, got string");
    ASSERT_ERR(sage_unpack(&v, "[y# *]", &y, &n), SAGE_EBADARGS);
    ASSERT_DETAIL("value[0]: expected bin, got string");
    ASSERT_ERR(sage_unpack(&v, "[f *]", &d), SAGE_EBADARGS);
    ASSERT_DETAIL("value[0]: expected double, got string");
    ASSERT_ERR(sage_unpack(&v, "s", &s), SAGE_EBADARGS);
    ASSERT_DETAIL("value: expected string, got array");

    ASSERT_OK(sage_pack(&v, a, "{s:{s:[i, s]}}", "opts", "list", 1, "two"));
    ASSERT_ERR(sage_unpack(&v, "{s:{s:[i i]}}", "opts", "list", &i, &j), SAGE_EBADARGS);
    ASSERT_DETAIL("value.opts.list[1]: expected int, got string");
    ASSERT_ERR(sage_unpack(&v, "{s:i s:?i}", "ttl", &i, "opts", &j), SAGE_EBADARGS);
    ASSERT_DETAIL("value: missing key 'ttl'");
    ASSERT_ERR(sage_unpack(&v, "{s:?i}", "opts", &i), SAGE_EBADARGS);
    ASSERT_DETAIL("value.opts: expected int, got map");

    /* malformed formats */
    ASSERT_ERR(sage_unpack(&v, ""), SAGE_EINVAL);
    ASSERT_DETAIL("format \"\": expected a value, got end of format");
    ASSERT_ERR(sage_unpack(&v, "{s:v", "opts", &pv), SAGE_EINVAL);
    ASSERT_DETAIL("format \"{s:v\": expected a map key 's' or '}', got end of format");
    ASSERT_ERR(sage_unpack(&v, "{i}", &i), SAGE_EINVAL);
    ASSERT_DETAIL("format \"{i}\": expected a map key 's' or '}', got 'i' at position 1");
    ASSERT_ERR(sage_unpack(&v, "{s:v} x", "opts", &pv), SAGE_EINVAL);
    ASSERT_DETAIL("format \"{s:v} x\": expected end of format after one value, got 'x' at position 6");
    ASSERT_ERR(sage_unpack(&v, "{s:v}", (const char *)NULL, &pv), SAGE_EINVAL);
    ASSERT_DETAIL("format \"{s:v}\": NULL key argument at position 1");
    ASSERT_ERR(sage_unpack(&v, "y", &y), SAGE_EINVAL);
    ASSERT_ERR(sage_unpack(&v, "?v", &pv), SAGE_EINVAL);
    ASSERT_DETAIL("format \"?v\": expected a value, got '?' at position 0");
    ASSERT_OK(sage_pack(&v, a, "[i i]", 1, 2));
    ASSERT_ERR(sage_unpack(&v, "[* i]", &i), SAGE_EINVAL);
    ASSERT_DETAIL("format \"[* i]\": expected a value, got '*' at position 1");
    ASSERT_ERR(sage_unpack(&v, "[i i", &i, &j), SAGE_EINVAL);
    ASSERT_ERR(sage_unpack(NULL, "n"), SAGE_EINVAL);
    ASSERT_ERR(sage_unpack(&v, NULL), SAGE_EINVAL);
    sage_arena_free(a);
}

static const struct th_case cases[] = {
    {"constructors", t_constructors, 10},
    {"type_names", t_type_names, 10},
    {"accessors", t_accessors, 10},
    {"map_get", t_map_get, 10},
    {"equal", t_equal, 10},
    {"snprint", t_snprint, 10},
    {"arena_basics", t_arena_basics, 10},
    {"arena_reuse", t_arena_reuse, 10},
    {"copy", t_copy, 10},
    {"pack_letters", t_pack_letters, 10},
    {"pack_errors", t_pack_errors, 10},
    {"unpack_letters", t_unpack_letters, 10},
    {"unpack_maps", t_unpack_maps, 10},
    {"unpack_errors", t_unpack_errors, 10},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
