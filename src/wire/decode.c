/*
 * decode.c - MessagePack bytes straight into sage_values, in one pass.
 *
 * Design notes. The structural rules (docs/PROTOCOL.md, "Limits") are
 * applied element by element as the values are built: "owed" counts the
 * elements declared and not yet started at every level, and since each takes
 * at least one byte, a header declaring more than the bytes left can hold is
 * refused the moment it is read, before anything is allocated for it. Small
 * arrays and maps are allocated right after that check; an array or map of
 * more than PROVE_OVER elements is first walked to its end (skip_n on a copy
 * of the cursor), so no lie costs more than a few hundred bytes of arena,
 * and "proven" remembers the walked bytes so that arrays nested in them are
 * not walked again.
 *
 * Errors come in three strengths. A broken structure sets mode FAILED: the
 * message is beyond reading, nothing more happens. A wrong field (type,
 * range, a non-string kwargs key) sets SKIP: the rest is only checked for
 * structure, which the protocol reports first. An arena out of memory sets
 * CHECK: the rest is checked for structure and field types without
 * allocating, so malformed input still gets SAGE_EPROTO. A field reader that
 * fails mid-value puts the cursor back at the field's start and skips it
 * whole, so the walk goes on from a known place.
 */
#include "wire/decode.h"

#include <inttypes.h>
#include <string.h>

#include "base/err_internal.h"
#include "wire/wire.h"

/* Arrays and maps of more elements than this (pairs count twice) are
 * walked before their items are allocated. */
#define PROVE_OVER 32

enum { DECODE, CHECK, SKIP, FAILED }; /* sage__dec.mode, by increasing damage */

enum { K_SCALAR, K_BYTES, K_ARRAY, K_MAP, K_BAD };

/* The formats 0xc0-0xdf: header size (payload included for scalars), kind. */
static const struct {
    uint8_t hdr, kind;
} formats[32] = {
    {1, K_SCALAR}, {1, K_BAD},    {1, K_SCALAR}, {1, K_SCALAR}, /* c0 nil, c1, c2 c3 bool */
    {2, K_BYTES},  {3, K_BYTES},  {5, K_BYTES},                 /* c4-c6 bin */
    {1, K_BAD},    {1, K_BAD},    {1, K_BAD},                   /* c7-c9 ext */
    {5, K_SCALAR}, {9, K_SCALAR},                               /* ca cb float */
    {2, K_SCALAR}, {3, K_SCALAR}, {5, K_SCALAR}, {9, K_SCALAR}, /* cc-cf uint */
    {2, K_SCALAR}, {3, K_SCALAR}, {5, K_SCALAR}, {9, K_SCALAR}, /* d0-d3 int */
    {1, K_BAD},    {1, K_BAD},    {1, K_BAD},    {1, K_BAD},    /* d4-d8 fixext */
    {1, K_BAD},    {2, K_BYTES},  {3, K_BYTES},  {5, K_BYTES},  /* d9-db str */
    {3, K_ARRAY},  {5, K_ARRAY},  {3, K_MAP},    {5, K_MAP},    /* dc dd array, de df map */
};

#define COLD __attribute__((cold, noinline))

static inline uint64_t be16(const unsigned char *p)
{
    return (uint64_t)p[0] << 8 | p[1];
}

static inline uint64_t be32(const unsigned char *p)
{
    return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
}

static inline uint64_t be64(const unsigned char *p)
{
    return be32(p) << 32 | be32(p + 4);
}

/* family names the MessagePack family whose encoding starts with byte b. */
static const char *family(unsigned char b)
{
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3))
        return "int";
    if (b <= 0x8f || b == 0xde || b == 0xdf)
        return "map";
    if (b <= 0x9f || b == 0xdc || b == 0xdd)
        return "array";
    if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb))
        return "str";
    switch (b) {
    case 0xc0:
        return "nil";
    case 0xc1:
        return "reserved";
    case 0xc2:
    case 0xc3:
        return "bool";
    case 0xc4:
    case 0xc5:
    case 0xc6:
        return "bin";
    case 0xca:
    case 0xcb:
        return "float";
    default:
        return "ext";
    }
}

static inline bool is_str(unsigned b)
{
    return (b & 0xe0) == 0xa0 || (b >= 0xd9 && b <= 0xdb);
}

static inline bool is_array(unsigned b)
{
    return (b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd;
}

static inline bool is_map(unsigned b)
{
    return (b & 0xf0) == 0x80 || b == 0xde || b == 0xdf;
}

/* ------------------------------------------------------------- errors */

static size_t byte_at(const sage__dec *d, const unsigned char *at)
{
    return (size_t)(at - d->base);
}

/* broken: the structure is; err's detail is set. Returns false for the
 * readers' convenience. */
static COLD bool broken(sage__dec *d, sage_err err)
{
    d->err = err;
    d->mode = FAILED;
    return false;
}

static COLD bool truncated(sage__dec *d, const unsigned char *at)
{
    return broken(d, SAGE_SETERR(SAGE_EPROTO, "%s: truncated at byte %zu", d->what,
                                 byte_at(d, at)));
}

static COLD bool truncated_head(sage__dec *d, const unsigned char *at)
{
    return broken(d, SAGE_SETERR(SAGE_EPROTO, "%s: truncated at byte %zu (%s header)", d->what,
                                 byte_at(d, at), family(*at)));
}

static COLD bool not_allowed(sage__dec *d, const unsigned char *at)
{
    return broken(d, SAGE_SETERR(SAGE_EPROTO, "%s: %s (0x%02x) at byte %zu is not allowed",
                                 d->what, family(*at), *at, byte_at(d, at)));
}

static COLD bool too_long(sage__dec *d, const unsigned char *at, uint64_t n, size_t left)
{
    return broken(d, SAGE_SETERR(SAGE_EPROTO,
                                 "%s: %s at byte %zu declares %" PRIu64 " bytes, only %zu remain",
                                 d->what, family(*at), byte_at(d, at), n, left));
}

static COLD bool too_many(sage__dec *d, const unsigned char *at, uint64_t n, size_t left)
{
    return broken(d, SAGE_SETERR(SAGE_EPROTO,
                                 "%s: %s at byte %zu declares %" PRIu64
                                 " elements, only %zu bytes remain",
                                 d->what, family(*at), byte_at(d, at), n, left));
}

static COLD bool too_deep(sage__dec *d, const unsigned char *at)
{
    return broken(d, SAGE_SETERR(SAGE_EPROTO, "%s: nested deeper than %d at byte %zu", d->what,
                                 SAGE__WIRE_MAX_DEPTH, byte_at(d, at)));
}

static COLD bool no_memory(sage__dec *d)
{
    sage__dec_fail(d, SAGE_SETERR(SAGE_ENOMEM, "%s.%s: arena out of memory", d->what, d->field));
    return false;
}

void sage__dec_fail(sage__dec *d, sage_err err)
{
    if (d->mode == FAILED)
        return;
    if (d->err == SAGE_OK || (d->err == SAGE_ENOMEM && err != SAGE_ENOMEM))
        d->err = err;
    d->mode = d->err == SAGE_ENOMEM ? CHECK : SKIP;
}

/* ---------------------------------------------------- structure alone */

/* length reads the byte or element count in the header (hdr bytes) of the
 * str, bin, array or map at the cursor; left bytes remain from there. */
static inline bool length(sage__dec *d, size_t left, size_t *hdr, uint64_t *n)
{
    const unsigned char *at = d->cur;
    unsigned b = *at;

    if (b < 0xc0) { /* fixmap, fixarray, fixstr */
        *hdr = 1;
        *n = b < 0xa0 ? b & 0x0fu : b & 0x1fu;
        return true;
    }
    *hdr = formats[b - 0xc0].hdr;
    if (left < *hdr)
        return truncated_head(d, at);
    *n = *hdr == 2 ? at[1] : *hdr == 3 ? be16(at + 1) : be32(at + 1);
    return true;
}

/*
 * open enters the array or map whose header (hdr bytes) is at the cursor
 * and declares n elements (pairs count twice), if they can fit. An empty
 * one opens no level, but may not sit deeper than the limit either: the
 * protocol counts every array and map, and so did msgpack-c's parse stack,
 * which refused an empty one at level 33.
 */
static inline bool open(sage__dec *d, size_t hdr, uint64_t n)
{
    const unsigned char *at = d->cur;
    size_t left;

    d->owed--;
    d->cur = at + hdr;
    if (n == 0)
        return d->depth < SAGE__WIRE_MAX_DEPTH || too_deep(d, at);
    left = (size_t)(d->end - d->cur);
    if (n > left || d->owed + n > left)
        return too_many(d, at, n, left);
    if (d->depth == SAGE__WIRE_MAX_DEPTH)
        return too_deep(d, at);
    d->owed += n;
    d->depth++;
    return true;
}

/* skip_n checks and skips n elements at the current level, allocating
 * nothing: the structural walk alone, from anywhere in a message. */
static void skip_n(sage__dec *d, uint64_t n)
{
    uint64_t outer[SAGE__WIRE_MAX_DEPTH]; /* elements still due at each level opened here */
    int top = 0;

    for (;;) {
        const unsigned char *at = d->cur;
        size_t left = (size_t)(d->end - at), hdr;
        uint64_t k = 0;
        unsigned b, kind;

        while (n == 0) {
            if (top == 0)
                return;
            n = outer[--top];
            d->depth--;
        }
        n--;
        if (left == 0) {
            truncated(d, at);
            return;
        }
        b = *at;
        if (b <= 0x7f || b >= 0xe0) {
            d->owed--;
            d->cur = at + 1;
            continue;
        }
        kind = b < 0x90 ? K_MAP : b < 0xa0 ? K_ARRAY : b < 0xc0 ? K_BYTES : formats[b - 0xc0].kind;
        if (kind == K_BAD) {
            not_allowed(d, at);
            return;
        }
        if (kind == K_SCALAR) {
            if (left < formats[b - 0xc0].hdr) {
                truncated_head(d, at);
                return;
            }
            d->owed--;
            d->cur = at + formats[b - 0xc0].hdr;
            continue;
        }
        if (!length(d, left, &hdr, &k))
            return;
        if (kind == K_BYTES) {
            d->owed--;
            if (k > left - hdr) {
                too_long(d, at, k, left - hdr);
                return;
            }
            d->cur = at + hdr + k;
            continue;
        }
        if (!open(d, hdr, kind == K_MAP ? 2 * k : k))
            return;
        if (k > 0) {
            outer[top++] = n; /* open refused depth SAGE__WIRE_MAX_DEPTH: top stays in range */
            n = kind == K_MAP ? 2 * k : k;
        }
    }
}

void sage__dec_skip(sage__dec *d, uint64_t n)
{
    if (d->mode != FAILED)
        skip_n(d, n);
}

void sage__dec_alone(sage__dec *d)
{
    d->owed = 1;
    d->depth = 0;
}

/* prove walks the n elements just entered, on a copy of the cursor, before
 * anything is allocated for them. */
static COLD bool prove(sage__dec *d, uint64_t n)
{
    sage__dec c = *d;

    skip_n(&c, n);
    if (c.mode == FAILED)
        return broken(d, c.err);
    d->proven = c.cur;
    return true;
}

/* ------------------------------------------------------------- values */

/*
 * The put_* write a value in place, as sage/value.h's constructors would
 * but for the padding after type, which nothing reads: GCC builds a
 * constructor's value in a zeroed temporary, writes it in pieces and reads
 * it back whole, which stalls store forwarding on every value decoded.
 */
static inline void put_scalar(sage_value *out, sage_type t)
{
    out->type = t;
    out->as.str.len = 0; /* the half of the union no scalar uses, zero as sage_nil leaves it */
}

static inline void put_int(sage_value *out, int64_t i)
{
    put_scalar(out, SAGE_INT);
    out->as.i = i;
}

static inline void put_bytes(sage_value *out, sage_type t, const char *s, size_t n)
{
    out->type = t;
    if (t == SAGE_STR) {
        out->as.str.ptr = s;
        out->as.str.len = n;
    } else {
        out->as.bin.ptr = s;
        out->as.bin.len = n;
    }
}

static bool get(sage__dec *d, sage_value *out);

/* step ends a scalar of size bytes. */
static inline bool step(sage__dec *d, size_t size)
{
    d->owed--;
    d->cur += size;
    return true;
}

static bool get_bytes(sage__dec *d, size_t hdr, uint64_t n, sage_type type, sage_value *out)
{
    const unsigned char *at = d->cur, *p = at + hdr;
    size_t left = (size_t)(d->end - p);
    const char *s = ""; /* as sage__arena_strndup gives for 0 bytes, without the call */

    if (n > left)
        return too_long(d, at, n, left);
    if (n > 0) {
        char *c = sage_arena_alloc(d->a, (size_t)n + 1);

        if (c == NULL)
            return no_memory(d);
        memcpy(c, p, (size_t)n);
        c[n] = '\0';
        s = c;
    }
    d->owed--;
    d->cur = p + n;
    put_bytes(out, type, s, (size_t)n);
    return true;
}

static bool get_array(sage__dec *d, size_t hdr, uint64_t n, sage_value *out)
{
    sage_value *items;

    if (!open(d, hdr, n))
        return false;
    if (n > PROVE_OVER && d->cur >= d->proven && !prove(d, n))
        return false;
    items = sage_arena_alloc(d->a, (size_t)n * sizeof *items);
    if (items == NULL)
        return no_memory(d);
    for (size_t i = 0; i < n; i++)
        if (!get(d, &items[i]))
            return false;
    if (n > 0)
        d->depth--;
    out->type = SAGE_ARRAY;
    out->as.array.items = items;
    out->as.array.len = (size_t)n;
    return true;
}

static COLD bool key_not_str(sage__dec *d, uint64_t i)
{
    sage__dec_fail(d, SAGE_SETERR(SAGE_EPROTO, "%s.%s: key #%" PRIu64 " is %s, not str", d->what,
                                  d->field, i, family(*d->cur)));
    return false;
}

/* get_map: with strkeys, every key must be a str (kwargs). */
static bool get_map(sage__dec *d, size_t hdr, uint64_t n, bool strkeys, sage_value *out)
{
    sage_pair *pairs;

    if (!open(d, hdr, 2 * n))
        return false;
    if (2 * n > PROVE_OVER && d->cur >= d->proven && !prove(d, 2 * n))
        return false;
    pairs = sage_arena_alloc(d->a, (size_t)n * sizeof *pairs);
    if (pairs == NULL)
        return no_memory(d);
    for (size_t i = 0; i < n; i++) {
        if (strkeys && d->cur < d->end && !is_str(*d->cur))
            return key_not_str(d, i);
        if (!get(d, &pairs[i].key) || !get(d, &pairs[i].val))
            return false;
    }
    if (n > 0)
        d->depth--;
    out->type = SAGE_MAP;
    out->as.map.items = pairs;
    out->as.map.len = (size_t)n;
    return true;
}

/* get decodes the element at the cursor into *out. */
static bool get(sage__dec *d, sage_value *out)
{
    const unsigned char *at = d->cur;
    size_t left = (size_t)(d->end - at);
    uint64_t u;
    unsigned b;

    if (left == 0)
        return truncated(d, at);
    b = *at;
    if (b <= 0x7f) { /* positive fixint: the commonest element */
        put_int(out, b);
        return step(d, 1);
    }
    if (b >= 0xe0) {
        put_int(out, (int64_t)b - 0x100);
        return step(d, 1);
    }
    if (b < 0x90)
        return get_map(d, 1, b & 0x0fu, false, out);
    if (b < 0xa0)
        return get_array(d, 1, b & 0x0fu, out);
    if (b < 0xc0)
        return get_bytes(d, 1, b & 0x1fu, SAGE_STR, out);
    if (formats[b - 0xc0].kind == K_BAD)
        return not_allowed(d, at);
    if (left < formats[b - 0xc0].hdr)
        return truncated_head(d, at);
    switch (b) {
    case 0xc0:
        put_scalar(out, SAGE_NIL);
        out->as.u = 0;
        return step(d, 1);
    case 0xc2:
    case 0xc3:
        put_scalar(out, SAGE_BOOL);
        out->as.u = 0;
        out->as.b = b == 0xc3;
        return step(d, 1);
    case 0xc4:
    case 0xd9:
        return get_bytes(d, 2, at[1], b == 0xd9 ? SAGE_STR : SAGE_BIN, out);
    case 0xc5:
    case 0xda:
        return get_bytes(d, 3, be16(at + 1), b == 0xda ? SAGE_STR : SAGE_BIN, out);
    case 0xc6:
    case 0xdb:
        return get_bytes(d, 5, be32(at + 1), b == 0xdb ? SAGE_STR : SAGE_BIN, out);
    case 0xca: {
        uint32_t bits = (uint32_t)be32(at + 1);
        float f;

        memcpy(&f, &bits, sizeof f);
        put_scalar(out, SAGE_DOUBLE);
        out->as.d = f;
        return step(d, 5);
    }
    case 0xcb: {
        double x;

        u = be64(at + 1);
        memcpy(&x, &u, sizeof x);
        put_scalar(out, SAGE_DOUBLE);
        out->as.d = x;
        return step(d, 9);
    }
    case 0xcc:
        put_int(out, at[1]);
        return step(d, 2);
    case 0xcd:
        put_int(out, (int64_t)be16(at + 1));
        return step(d, 3);
    case 0xce:
        put_int(out, (int64_t)be32(at + 1));
        return step(d, 5);
    case 0xcf: /* an integer is SAGE_INT whenever it fits int64 */
        u = be64(at + 1);
        put_scalar(out, u <= INT64_MAX ? SAGE_INT : SAGE_UINT);
        out->as.u = u;
        return step(d, 9);
    case 0xd0:
        put_int(out, (int8_t)at[1]);
        return step(d, 2);
    case 0xd1:
        put_int(out, (int16_t)be16(at + 1));
        return step(d, 3);
    case 0xd2:
        put_int(out, (int32_t)be32(at + 1));
        return step(d, 5);
    case 0xd3:
        put_int(out, (int64_t)be64(at + 1));
        return step(d, 9);
    case 0xdc:
        return get_array(d, 3, be16(at + 1), out);
    case 0xdd:
        return get_array(d, 5, be32(at + 1), out);
    case 0xde:
        return get_map(d, 3, be16(at + 1), false, out);
    default: /* 0xdf: the K_BAD formats went above */
        return get_map(d, 5, be32(at + 1), false, out);
    }
}

/* ------------------------------------------------------------- fields */

void sage__dec_init(sage__dec *d, const void *buf, size_t len, sage_arena *a, const char *what)
{
    memset(d, 0, sizeof *d);
    /* no arithmetic on a NULL buffer, not even + 0 */
    d->base = buf != NULL ? buf : (const void *)"";
    d->end = d->base + (buf != NULL ? len : 0);
    d->cur = d->body = d->proven = d->base;
    d->mode = DECODE;
    d->err = SAGE_OK;
    d->a = a;
    d->what = what;
    d->field = "";
}

enum { INT_OK, INT_SHORT, INT_NOT };

/* read_int reads an integer of any encoding at the cursor, without moving
 * it: its size, whether it is negative, and its bits. */
static inline int read_int(const sage__dec *d, size_t *size, bool *neg, uint64_t *u)
{
    const unsigned char *at = d->cur;
    size_t left = (size_t)(d->end - at), n;
    unsigned b;

    if (left == 0)
        return INT_SHORT;
    b = *at;
    if (b <= 0x7f) {
        *size = 1;
        *neg = false;
        *u = b;
        return INT_OK;
    }
    if (b >= 0xe0) {
        *size = 1;
        *neg = true;
        *u = (uint64_t)((int64_t)b - 0x100);
        return INT_OK;
    }
    if (b < 0xcc || b > 0xd3)
        return INT_NOT;
    n = (size_t)1 << (b & 3); /* cc/d0: 1, cd/d1: 2, ce/d2: 4, cf/d3: 8 */
    if (left - 1 < n)
        return INT_SHORT;
    *u = n == 1 ? at[1] : n == 2 ? be16(at + 1) : n == 4 ? be32(at + 1) : be64(at + 1);
    *size = 1 + n;
    *neg = false;
    if (b >= 0xd0) { /* signed: sign-extend */
        int64_t s = n == 1 ? (int8_t)*u : n == 2 ? (int16_t)*u : n == 4 ? (int32_t)*u : (int64_t)*u;

        *neg = s < 0;
        *u = (uint64_t)s;
    }
    return INT_OK;
}

/* head_uint reads one of the head's fields. */
static sage_err head_uint(sage__dec *d, const char *field, uint64_t *out)
{
    size_t size;
    bool neg;
    int r = read_int(d, &size, &neg, out);

    if (r == INT_SHORT)
        return SAGE_SETERR(SAGE_EPROTO, "%s: truncated in %s", d->what, field);
    if (r == INT_NOT)
        return SAGE_SETERR(SAGE_EPROTO, "%s.%s: expected uint, got %s", d->what, field,
                           family(*d->cur));
    if (neg)
        return SAGE_SETERR(SAGE_EPROTO, "%s.%s: expected uint, got %" PRId64, d->what, field,
                           (int64_t)*out);
    d->cur += size;
    return SAGE_OK;
}

sage_err sage__dec_head_any(sage__dec *d, uint32_t *countp, uint64_t *versionp, uint64_t *kindp,
                            uint64_t *idp)
{
    const unsigned char *p = d->base;
    size_t len = (size_t)(d->end - p), hdr;
    uint64_t count, version;
    sage_err err;

    if (len == 0)
        return SAGE_SETERR(SAGE_EPROTO, "%s: empty message", d->what);
    if ((p[0] & 0xf0) == 0x90) {
        count = p[0] & 0x0fu;
        hdr = 1;
    } else if (p[0] == 0xdc || p[0] == 0xdd) {
        hdr = p[0] == 0xdc ? 3 : 5;
        if (len < hdr)
            return SAGE_SETERR(SAGE_EPROTO, "%s: truncated in the array header", d->what);
        count = hdr == 3 ? be16(p + 1) : be32(p + 1);
    } else {
        return SAGE_SETERR(SAGE_EPROTO, "%s: expected array, got %s", d->what, family(p[0]));
    }
    d->cur = d->body = p + hdr;
    if (count < 1)
        return SAGE_SETERR(SAGE_EPROTO, "%s.version: missing (empty array)", d->what);
    if ((err = head_uint(d, "version", &version)) != SAGE_OK)
        return err;
    *versionp = version;
    if (count < 2)
        return SAGE_SETERR(SAGE_EPROTO, "%s.kind: missing (array of 1)", d->what);
    if ((err = head_uint(d, "kind", kindp)) != SAGE_OK)
        return err;
    if (count < 3)
        return SAGE_SETERR(SAGE_EPROTO, "%s.id: missing (array of 2)", d->what);
    if ((err = head_uint(d, "id", idp)) != SAGE_OK)
        return err;
    *countp = (uint32_t)count;
    return SAGE_OK;
}

sage_err sage__dec_head(sage__dec *d, uint32_t *countp, uint64_t *kindp, uint64_t *idp)
{
    uint64_t version = 1; /* stays 1 unless one was read */
    sage_err err = sage__dec_head_any(d, countp, &version, kindp, idp);

    /* a version this side does not speak is the first thing to say */
    if (version != 1)
        return SAGE_SETERR(SAGE_EVERSION, "%s: protocol version %" PRIu64 ", this side speaks 1",
                           d->what, version);
    return err;
}

sage_err sage__dec_body(sage__dec *d, uint32_t count)
{
    size_t left = (size_t)(d->end - d->body);

    if (count > left) {
        too_many(d, d->base, count, left);
        return d->err;
    }
    d->owed = count - 3; /* version, kind and id are read */
    d->depth = 1;
    return SAGE_OK;
}

/* odd reads a field off the fast path: the cursor only checks or skips, the
 * bytes ran out, or the element is not of the family wanted (fam). */
static COLD bool odd(sage__dec *d, const char *field, const char *want, const char *fam)
{
    if (d->mode >= SKIP) {
        sage__dec_skip(d, 1);
        return false;
    }
    if (d->cur >= d->end)
        return truncated(d, d->cur);
    if (strcmp(family(*d->cur), fam) != 0)
        sage__dec_fail(d, SAGE_SETERR(SAGE_EPROTO, "%s.%s: expected %s, got %s", d->what, field,
                                      want, family(*d->cur)));
    skip_n(d, 1);
    return false;
}

/* redo: a field read from at (owed and depth as given) has failed. Unless
 * the structure broke, skip the field whole, from its start. */
static COLD bool redo(sage__dec *d, const unsigned char *at, uint64_t owed, int depth)
{
    if (d->mode != FAILED) {
        d->cur = at;
        d->owed = owed;
        d->depth = depth;
        skip_n(d, 1);
    }
    return false;
}

bool sage__dec_str(sage__dec *d, const char *field, const char **s, size_t *n)
{
    const unsigned char *at = d->cur;
    uint64_t owed = d->owed;
    int depth = d->depth;
    sage_value v;

    if (d->mode != DECODE || at == d->end || !is_str(*at))
        return odd(d, field, "str", "str");
    d->field = field;
    if (!get(d, &v))
        return redo(d, at, owed, depth);
    *s = v.as.str.ptr;
    *n = v.as.str.len;
    return true;
}

bool sage__dec_array(sage__dec *d, const char *field, sage_value *out)
{
    const unsigned char *at = d->cur;
    uint64_t owed = d->owed;
    int depth = d->depth;

    if (d->mode != DECODE || at == d->end || !is_array(*at))
        return odd(d, field, "array", "array");
    d->field = field;
    return get(d, out) || redo(d, at, owed, depth);
}

/* check_keys: kwargs while only checking: the keys' type, then skip. */
static COLD bool check_keys(sage__dec *d, const char *field)
{
    const unsigned char *at = d->cur;
    uint64_t owed = d->owed, n = 0;
    int depth = d->depth;
    size_t hdr;

    d->field = field;
    if (!length(d, (size_t)(d->end - at), &hdr, &n) || !open(d, hdr, 2 * n))
        return false;
    for (uint64_t i = 0; i < n && d->mode == CHECK; i++) {
        if (d->cur < d->end && !is_str(*d->cur)) {
            key_not_str(d, i);
            return redo(d, at, owed, depth);
        }
        skip_n(d, 2);
    }
    if (n > 0)
        d->depth--;
    return false;
}

bool sage__dec_kwargs(sage__dec *d, const char *field, sage_value *out)
{
    const unsigned char *at = d->cur;
    uint64_t owed = d->owed, n = 0;
    int depth = d->depth;
    size_t hdr;

    if (d->mode != DECODE || at == d->end || !is_map(*at)) {
        if (d->mode == CHECK && at < d->end && is_map(*at))
            return check_keys(d, field);
        return odd(d, field, "map", "map");
    }
    d->field = field;
    if (length(d, (size_t)(d->end - at), &hdr, &n) && get_map(d, hdr, n, true, out))
        return true;
    if (d->mode != CHECK)
        return redo(d, at, owed, depth);
    d->cur = at; /* out of memory: the keys left unread must still be strs */
    d->owed = owed;
    d->depth = depth;
    return check_keys(d, field);
}

bool sage__dec_value(sage__dec *d, const char *field, sage_value *out)
{
    const unsigned char *at = d->cur;
    uint64_t owed = d->owed;
    int depth = d->depth;

    if (d->mode != DECODE) {
        sage__dec_skip(d, 1);
        return false;
    }
    d->field = field;
    return get(d, out) || redo(d, at, owed, depth);
}

bool sage__dec_int(sage__dec *d, const char *field, const char *want, bool *neg, uint64_t *u)
{
    size_t size;
    int r;

    if (d->mode >= SKIP)
        return odd(d, field, want, "int");
    r = read_int(d, &size, neg, u);
    if (r == INT_OK)
        return step(d, size);
    if (r == INT_SHORT && d->cur < d->end)
        return truncated_head(d, d->cur);
    return odd(d, field, want, "int");
}

bool sage__dec_bool(sage__dec *d, const char *field, bool *b)
{
    if (d->mode >= SKIP || d->cur == d->end || (*d->cur & 0xfe) != 0xc2)
        return odd(d, field, "bool", "bool");
    *b = *d->cur == 0xc3;
    return step(d, 1);
}

sage_err sage__dec_end(sage__dec *d)
{
    if (d->mode != FAILED && d->cur != d->end)
        broken(d, SAGE_SETERR(SAGE_EPROTO, "%s: %zu trailing bytes after the envelope", d->what,
                              (size_t)(d->end - d->cur)));
    return d->err;
}
