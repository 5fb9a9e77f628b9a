/*
 * json.c - JSON text to sage values and back, through jansson; and the
 * commands' JSON listings, built as values and printed the same way.
 *
 * The one door to jansson. Parsing builds values in the caller's arena;
 * printing writes containers itself and has jansson write the leaves, so
 * that each double gets the fewest digits that read back as exactly it.
 *
 * Losses, all deliberate and documented in json.h and the help of call:
 * an unsigned integer above INT64_MAX prints as a JSON real (53 bits of
 * precision); NaN and infinities, which JSON cannot write, print as the
 * strings "NaN", "Infinity", "-Infinity"; bytes that are not UTF-8 in a
 * string print as U+FFFD; a non-string map key prints as its JSON text.
 */
#include "json.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* ------------------------------------------------------------- base64 */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_index(char c)
{
    const char *p = c != '\0' ? strchr(b64, c) : NULL;

    return p != NULL ? (int)(p - b64) : -1;
}

/* Decodes standard base64 with padding (or without); returns the length
 * written to out (room for len * 3 / 4 + 3 bytes), or -1 if text is not
 * base64. */
static long b64_decode(const char *text, size_t len, unsigned char *out)
{
    unsigned acc = 0;
    int bits = 0;
    long n = 0;
    size_t i = 0;

    for (; i < len && text[i] != '='; i++) {
        int v = b64_index(text[i]);

        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Up to two '=' of padding, nothing after them, and no stray bits. */
    for (size_t pad = 0; i < len; i++, pad++)
        if (text[i] != '=' || pad >= 2)
            return -1;
    if (bits >= 6 || acc != 0)
        return -1;
    return n;
}

/* Returns the base64 text of len bytes at p, malloc'd, or NULL. */
static char *b64_encode(const unsigned char *p, size_t len)
{
    char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;

        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        *o++ = b64[v >> 18 & 63];
        *o++ = b64[v >> 12 & 63];
        *o++ = i + 1 < len ? b64[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? b64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* ------------------------------------------------------ JSON to values */

struct parse {
    sage_arena *a;
    const char *what;
};

static sage_err no_memory(const struct parse *p)
{
    return cli_fail(SAGE_ENOMEM, "%s: out of memory", p->what);
}

static char *copy_bytes(const struct parse *p, const char *s, size_t n)
{
    char *c = sage_arena_alloc(p->a, n + 1);

    if (c != NULL) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

static sage_err from_json(const struct parse *p, json_t *j, sage_value *out);

static sage_err from_bin(const struct parse *p, json_t *s, sage_value *out)
{
    const char *text = json_string_value(s);
    size_t len = json_string_length(s);
    unsigned char *buf;
    long n;

    if (text == NULL)
        return cli_fail(SAGE_EBADARGS, "%s: \"$bin\" must be a base64 string", p->what);
    buf = sage_arena_alloc(p->a, len / 4 * 3 + 3);
    if (buf == NULL)
        return no_memory(p);
    n = b64_decode(text, len, buf);
    if (n < 0)
        return cli_fail(SAGE_EBADARGS, "%s: \"$bin\": not base64: '%.40s'", p->what, text);
    *out = sage_bin(buf, (size_t)n);
    return SAGE_OK;
}

static sage_err from_object(const struct parse *p, json_t *j, sage_value *out)
{
    size_t n = json_object_size(j), i = 0;
    sage_pair *pairs;
    const char *key;
    json_t *val;
    sage_err r;

    if (n == 1 && json_object_get(j, "$bin") != NULL)
        return from_bin(p, json_object_get(j, "$bin"), out);
    pairs = n > 0 ? sage_arena_alloc(p->a, n * sizeof *pairs) : NULL;
    if (n > 0 && pairs == NULL)
        return no_memory(p);
    json_object_foreach(j, key, val) {
        size_t klen = json_object_iter_key_len(json_object_key_to_iter(key));
        char *k = copy_bytes(p, key, klen);

        if (k == NULL)
            return no_memory(p);
        pairs[i].key = sage_strn(k, klen);
        if ((r = from_json(p, val, &pairs[i].val)) != SAGE_OK)
            return r;
        i++;
    }
    *out = sage_map(pairs, n);
    return SAGE_OK;
}

static sage_err from_json(const struct parse *p, json_t *j, sage_value *out)
{
    switch (json_typeof(j)) {
    case JSON_NULL:
        *out = sage_nil();
        return SAGE_OK;
    case JSON_TRUE:
        *out = sage_bool(true);
        return SAGE_OK;
    case JSON_FALSE:
        *out = sage_bool(false);
        return SAGE_OK;
    case JSON_INTEGER:
        *out = sage_int((int64_t)json_integer_value(j));
        return SAGE_OK;
    case JSON_REAL:
        *out = sage_double(json_real_value(j));
        return SAGE_OK;
    case JSON_STRING: {
        size_t n = json_string_length(j);
        char *s = copy_bytes(p, json_string_value(j), n);

        if (s == NULL)
            return no_memory(p);
        *out = sage_strn(s, n);
        return SAGE_OK;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        sage_value *items = n > 0 ? sage_arena_alloc(p->a, n * sizeof *items) : NULL;
        sage_err r;

        if (n > 0 && items == NULL)
            return no_memory(p);
        for (size_t i = 0; i < n; i++)
            if ((r = from_json(p, json_array_get(j, i), &items[i])) != SAGE_OK)
                return r;
        *out = sage_array(items, n);
        return SAGE_OK;
    }
    case JSON_OBJECT:
        return from_object(p, j, out);
    }
    return cli_fail(SAGE_EBADARGS, "%s: unknown JSON type", p->what);
}

sage_err cli_json_to_value(const char *text, const char *what, sage_arena *a, sage_value *out)
{
    struct parse p = {a, what};
    json_error_t err;
    json_t *j;
    sage_value v;
    sage_err r;

    /* Any value at the top, so that "5" is reported as "not an array" by the
     * caller rather than as a syntax error; duplicate keys are refused, as
     * which one wins would be a guess. */
    j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (j == NULL)
        return cli_fail(SAGE_EBADARGS, "%s: line %d column %d: %s", what, err.line, err.column,
                        err.text);
    r = from_json(&p, j, &v);
    json_decref(j);
    if (r == SAGE_OK)
        *out = v;
    return r;
}

int cli_json_arg(const char *what, const char *text, sage_arena *a, sage_value *out)
{
    sage_err r = cli_json_to_value(text, what, a, out);

    if (r == SAGE_OK)
        return CLI_OK;
    if (r == SAGE_EBADARGS) {
        cli_error(r, "%s is not valid JSON", what);
        return CLI_USAGE;
    }
    cli_error(r, "reading the arguments");
    return cli_exit_for(r);
}

/* ------------------------------------------------------ values to JSON */

/*
 * Containers are written here, leaves by jansson (string escaping, number
 * syntax): jansson applies one real precision to a whole document, and each
 * double deserves the fewest digits that read back as exactly it (0.1, not
 * 0.10000000000000001 because another number needed 17). Indentation
 * follows jansson's JSON_INDENT(2).
 */
struct out {
    char *buf;
    size_t len, cap;
    int pretty;
    int failed; /* out of memory: the text is abandoned */
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        char *b;

        while (cap < o->len + n + 1)
            cap *= 2;
        if ((b = realloc(o->buf, cap)) == NULL) {
            o->failed = 1;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Writes the leaf j (taking its reference) as jansson formats it. */
static void put_leaf(struct out *o, json_t *j, size_t flags)
{
    char *text = j != NULL ? json_dumps(j, JSON_ENCODE_ANY | flags) : NULL;

    json_decref(j);
    if (text == NULL) {
        o->failed = 1;
        return;
    }
    put_str(o, text);
    free(text);
}

static void newline(struct out *o, int depth)
{
    if (!o->pretty)
        return;
    put(o, "\n", 1);
    for (int i = 0; i < depth; i++)
        put(o, "  ", 2);
}

/* The fewest significant digits that read back as exactly d. */
static int digits_for(double d)
{
    char buf[40];

    for (int prec = 1; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return prec;
    }
    return 17;
}

static void put_real(struct out *o, double x)
{
    if (isnan(x))
        put_str(o, "\"NaN\"");
    else if (isinf(x))
        put_str(o, x > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    else
        put_leaf(o, json_real(x), JSON_REAL_PRECISION(digits_for(x)));
}

/* A string as jansson will take it: valid UTF-8, other bytes as U+FFFD. */
static json_t *utf8_string(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    char *fixed, *o;

    if (j != NULL)
        return j;
    /* Invalid UTF-8. Every byte becomes at most 3, and valid sequences pass
     * through untouched: try the length each lead byte announces. */
    fixed = malloc(n * 3 + 1);
    if (fixed == NULL)
        return NULL;
    o = fixed;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        json_t *probe = len > 0 && i + len <= n ? json_stringn(s + i, len) : NULL;

        if (probe != NULL) {
            json_decref(probe);
            memcpy(o, s + i, len);
            o += len;
            i += len;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    j = json_stringn(fixed, (size_t)(o - fixed));
    free(fixed);
    return j;
}

static void emit(struct out *o, const sage_value *v, int depth);

static void put_key(struct out *o, const sage_value *key)
{
    char *text;

    if (key->type == SAGE_STR) {
        put_leaf(o, utf8_string(key->as.str.ptr, key->as.str.len), 0);
    } else {
        /* A key of another type is written as its own compact JSON. */
        text = cli_value_to_json(key, 0);
        put_leaf(o, text != NULL ? json_string(text) : NULL, 0);
        free(text);
    }
    put_str(o, o->pretty ? ": " : ":");
}

static void emit_bin(struct out *o, const sage_value *v, int depth)
{
    char *text = b64_encode(v->as.bin.ptr, v->as.bin.len);

    if (text == NULL) {
        o->failed = 1;
        return;
    }
    put(o, "{", 1);
    newline(o, depth + 1);
    put_str(o, o->pretty ? "\"$bin\": \"" : "\"$bin\":\"");
    put_str(o, text); /* base64 needs no escaping */
    put(o, "\"", 1);
    newline(o, depth);
    put(o, "}", 1);
    free(text);
}

static void emit(struct out *o, const sage_value *v, int depth)
{
    char num[32];
    size_t n;

    switch (v->type) {
    case SAGE_NIL:
        put_str(o, "null");
        return;
    case SAGE_BOOL:
        put_str(o, v->as.b ? "true" : "false");
        return;
    case SAGE_INT:
        snprintf(num, sizeof num, "%lld", (long long)v->as.i);
        put_str(o, num);
        return;
    case SAGE_UINT:
        if (v->as.u > INT64_MAX) {
            put_real(o, (double)v->as.u); /* JSON readers rarely take more */
            return;
        }
        snprintf(num, sizeof num, "%llu", (unsigned long long)v->as.u);
        put_str(o, num);
        return;
    case SAGE_DOUBLE:
        put_real(o, v->as.d);
        return;
    case SAGE_STR:
        put_leaf(o, utf8_string(v->as.str.ptr, v->as.str.len), 0);
        return;
    case SAGE_BIN:
        emit_bin(o, v, depth);
        return;
    case SAGE_ARRAY:
        if ((n = v->as.array.len) == 0) {
            put_str(o, "[]");
            return;
        }
        put(o, "[", 1);
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                put(o, ",", 1);
            newline(o, depth + 1);
            emit(o, &v->as.array.items[i], depth + 1);
        }
        newline(o, depth);
        put(o, "]", 1);
        return;
    case SAGE_MAP:
        if ((n = v->as.map.len) == 0) {
            put_str(o, "{}");
            return;
        }
        put(o, "{", 1);
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                put(o, ",", 1);
            newline(o, depth + 1);
            put_key(o, &v->as.map.items[i].key);
            emit(o, &v->as.map.items[i].val, depth + 1);
        }
        newline(o, depth);
        put(o, "}", 1);
        return;
    }
    o->failed = 1; /* a type this code does not know */
}

char *cli_value_to_json(const sage_value *v, int pretty)
{
    struct out o = {NULL, 0, 0, pretty, 0};

    emit(&o, v, 0);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    return o.buf;
}

int cli_print_value(const sage_value *v, int pretty, const char *what)
{
    char *text = cli_value_to_json(v, pretty);

    if (text == NULL) {
        cli_error(SAGE_ENOMEM, "%s", what);
        return CLI_ERR;
    }
    puts(text);
    free(text);
    return CLI_OK;
}

int cli_print_items(size_t n, int one, cli_item_fn item, const void *arg, const char *what)
{
    sage_value *items = calloc(n ? n : 1, sizeof *items), arr;
    sage_arena *a = NULL;
    sage_err r = SAGE_ENOMEM;
    int status;

    if (items != NULL && sage_arena_new(&a, 0) == SAGE_OK) {
        r = SAGE_OK;
        for (size_t i = 0; i < n && r == SAGE_OK; i++)
            r = item(a, arg, i, &items[i]);
    }
    if (r == SAGE_OK) {
        arr = sage_array(items, n);
        status = cli_print_value(one ? &items[0] : &arr, 1, what);
    } else {
        cli_error(r, "%s", what);
        status = cli_exit_for(r);
    }
    sage_arena_free(a);
    free(items);
    return status;
}
