/* print.c - sage_value_snprint: compact JSON-like text for logs and the CLI. */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sage/value.h"

/* out collects text into a bounded buffer while counting what it needs. */
struct out {
    char *buf;
    size_t cap;
    size_t len; /* bytes the full text needs so far */
};

static void put(struct out *o, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;

        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void put_cstr(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Shortest of %.15g..%.17g that reads back as the same double, and a ".0"
 * when it would otherwise look like an integer. */
static void put_double(struct out *o, double d)
{
    char t[40];

    if (isnan(d)) {
        put_cstr(o, "NaN");
        return;
    }
    if (isinf(d)) {
        put_cstr(o, d < 0 ? "-Infinity" : "Infinity");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, d);
        if (strtod(t, NULL) == d)
            break;
    }
    put_cstr(o, t);
    if (strspn(t, "-0123456789") == strlen(t))
        put_cstr(o, ".0");
}

static void put_string(struct out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* start of the pending run of plain bytes */

    put(o, "\"", 1);
    if (n == 0) { /* s may be NULL */
        put(o, "\"", 1);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t elen = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        esc[0] = '\\';
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        put(o, s + run, i - run);
        put(o, esc, elen);
        run = i + 1;
    }
    put(o, s + run, n - run);
    put(o, "\"", 1);
}

static void put_value(struct out *o, const sage_value *v)
{
    char t[48];

    switch (v->type) {
    case SAGE_NIL:
        put_cstr(o, "null");
        break;
    case SAGE_BOOL:
        put_cstr(o, v->as.b ? "true" : "false");
        break;
    case SAGE_INT:
        snprintf(t, sizeof t, "%" PRId64, v->as.i);
        put_cstr(o, t);
        break;
    case SAGE_UINT:
        snprintf(t, sizeof t, "%" PRIu64, v->as.u);
        put_cstr(o, t);
        break;
    case SAGE_DOUBLE:
        put_double(o, v->as.d);
        break;
    case SAGE_STR:
        put_string(o, v->as.str.ptr, v->as.str.len);
        break;
    case SAGE_BIN:
        snprintf(t, sizeof t, "<%zu bytes>", v->as.bin.len);
        put_cstr(o, t);
        break;
    case SAGE_ARRAY:
        put(o, "[", 1);
        for (size_t i = 0; i < v->as.array.len; i++) {
            if (i)
                put(o, ",", 1);
            put_value(o, &v->as.array.items[i]);
        }
        put(o, "]", 1);
        break;
    case SAGE_MAP:
        put(o, "{", 1);
        for (size_t i = 0; i < v->as.map.len; i++) {
            if (i)
                put(o, ",", 1);
            put_value(o, &v->as.map.items[i].key);
            put(o, ":", 1);
            put_value(o, &v->as.map.items[i].val);
        }
        put(o, "}", 1);
        break;
    default:
        snprintf(t, sizeof t, "<type %d>", (int)v->type);
        put_cstr(o, t);
    }
}

int sage_value_snprint(char *buf, size_t cap, const sage_value *v)
{
    struct out o = {buf, cap, 0};

    put_value(&o, v);
    if (cap > 0)
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    return o.len > INT_MAX ? -1 : (int)o.len;
}
