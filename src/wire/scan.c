/*
 * scan.c - a structural walk over MessagePack bytes, in front of msgpack-c.
 *
 * msgpack_unpack allocates an array's or map's elements as soon as it reads
 * the header, so 5 bytes claiming 2^32 - 1 elements would ask for ~100 GiB.
 * The walk here proves first that every declared element and byte is
 * actually present, and that nesting stays within what msgpack-c (and we)
 * accept. It keeps the count of elements declared but not yet seen
 * ("owed"); since each takes at least one byte, owed can never exceed the
 * bytes left, which rejects a lying header the moment it is read.
 */
#include <inttypes.h>
#include <stdbool.h>

#include "base/err_internal.h"
#include "wire/scan.h"

static uint64_t be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* type_at names the MessagePack family whose encoding starts with byte b. */
static const char *type_at(unsigned char b)
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

/*
 * shape: how to read one element, from its first byte: the header size
 * (first byte included), how many of its bytes hold a big-endian length,
 * or else the mask that extracts the length from the first byte (fix*
 * types), and what the length counts: bytes for str/bin, elements for an
 * array, pairs for a map.
 */
struct shape {
    uint8_t hdr;
    uint8_t lenbytes;
    uint8_t kind;
    uint8_t mask;
};

enum { SH_SCALAR, SH_BYTES, SH_ARRAY, SH_MAP, SH_BAD };

/* Classes of first bytes, and the shape of each: a table beats a chain of
 * comparisons on the one loop every decoded byte goes through. */
enum { S1, S2, S3, S5, S9, FM, FA, FS, B8, B16, B32, A16, A32, M16, M32, XX };

static const struct shape shapes[] = {
    [S1] = {1, 0, SH_SCALAR, 0},   [S2] = {2, 0, SH_SCALAR, 0},   [S3] = {3, 0, SH_SCALAR, 0},
    [S5] = {5, 0, SH_SCALAR, 0},   [S9] = {9, 0, SH_SCALAR, 0},   [FM] = {1, 0, SH_MAP, 0x0f},
    [FA] = {1, 0, SH_ARRAY, 0x0f}, [FS] = {1, 0, SH_BYTES, 0x1f}, [B8] = {2, 1, SH_BYTES, 0},
    [B16] = {3, 2, SH_BYTES, 0},   [B32] = {5, 4, SH_BYTES, 0},   [A16] = {3, 2, SH_ARRAY, 0},
    [A32] = {5, 4, SH_ARRAY, 0},   [M16] = {3, 2, SH_MAP, 0},     [M32] = {5, 4, SH_MAP, 0},
    [XX] = {1, 0, SH_BAD, 0},
};

static const uint8_t class_of[256] = {
    S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, /* 00 positive fixint */
    S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, /* 10 */
    S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, /* 20 */
    S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, /* 30 */
    S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, /* 40 */
    S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, /* 50 */
    S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, /* 60 */
    S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, /* 70 */
    FM, FM, FM, FM, FM, FM, FM, FM, FM, FM, FM, FM, FM, FM, FM, FM, /* 80 fixmap */
    FA, FA, FA, FA, FA, FA, FA, FA, FA, FA, FA, FA, FA, FA, FA, FA, /* 90 fixarray */
    FS, FS, FS, FS, FS, FS, FS, FS, FS, FS, FS, FS, FS, FS, FS, FS, /* a0 fixstr */
    FS, FS, FS, FS, FS, FS, FS, FS, FS, FS, FS, FS, FS, FS, FS, FS, /* b0 */
    /* c0 nil, c1 -, c2 c3 bool, c4-c6 bin, c7-c9 ext, ca cb float, cc-cf uint */
    S1, XX, S1, S1, B8, B16, B32, XX, XX, XX, S5, S9, S2, S3, S5, S9,
    /* d0-d3 int, d4-d8 fixext, d9-db str, dc dd array, de df map */
    S2, S3, S5, S9, XX, XX, XX, XX, XX, B8, B16, B32, A16, A32, M16, M32,
    S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, /* e0 negative fixint */
    S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, S1, /* f0 */
};

sage_err sage__wire_scan(const void *buf, size_t len, const char *what, size_t *usedp)
{
    const unsigned char *p = buf;
    uint64_t outer[SAGE__WIRE_MAX_DEPTH]; /* elements still due at each enclosing level */
    uint64_t cur = 1;                     /* ... and at the current one */
    uint64_t owed = 1;                    /* ... and at all levels together */
    size_t off = 0;
    int depth = 0;

    if (len > 0 && p == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "%s: NULL buffer", what);
    for (;;) {
        size_t at = off;
        struct shape s;
        uint64_t n;

        if (off >= len)
            return SAGE_SETERR(SAGE_EPROTO, "%s: truncated at byte %zu", what, off);
        s = shapes[class_of[p[off]]];
        if (s.kind == SH_BAD)
            return SAGE_SETERR(SAGE_EPROTO, "%s: %s (0x%02x) at byte %zu is not allowed", what,
                               type_at(p[off]), p[off], off);
        if (len - off < s.hdr)
            return SAGE_SETERR(SAGE_EPROTO, "%s: truncated at byte %zu (%s header)", what, off,
                               type_at(p[off]));
        n = s.lenbytes ? be(p + off + 1, s.lenbytes) : (uint64_t)(p[off] & s.mask);
        off += s.hdr;
        owed--;
        cur--;
        if (s.kind == SH_BYTES) {
            if (n > len - off)
                return SAGE_SETERR(SAGE_EPROTO,
                                   "%s: %s at byte %zu declares %" PRIu64
                                   " bytes, only %zu remain",
                                   what, type_at(p[at]), at, n, len - off);
            off += (size_t)n;
        } else if (s.kind != SH_SCALAR && n > 0) {
            if (s.kind == SH_MAP)
                n *= 2;
            if (n > len - off || owed + n > len - off)
                return SAGE_SETERR(SAGE_EPROTO,
                                   "%s: %s at byte %zu declares %" PRIu64
                                   " elements, only %zu bytes remain",
                                   what, type_at(p[at]), at, n, len - off);
            if (depth == SAGE__WIRE_MAX_DEPTH)
                return SAGE_SETERR(SAGE_EPROTO, "%s: nested deeper than %d at byte %zu", what,
                                   SAGE__WIRE_MAX_DEPTH, at);
            outer[depth++] = cur;
            cur = n;
            owed += n;
        }
        while (cur == 0) {
            if (depth == 0) {
                *usedp = off;
                return SAGE_OK;
            }
            cur = outer[--depth];
        }
    }
}

enum { INT_OK, INT_TRUNCATED, INT_NOT_INT };

/* read_int reads one integer of any encoding at *off; *neg tells a negative
 * one, whose two's-complement bits are then in *u. */
static int read_int(const unsigned char *p, size_t len, size_t *off, bool *neg, uint64_t *u)
{
    unsigned char b;
    size_t n;

    if (*off >= len)
        return INT_TRUNCATED;
    b = p[*off];
    if (b <= 0x7f || b >= 0xe0) {
        *neg = b >= 0xe0;
        *u = *neg ? (uint64_t)(int64_t)(int8_t)b : b;
        *off += 1;
        return INT_OK;
    }
    if (!(b >= 0xcc && b <= 0xd3))
        return INT_NOT_INT;
    n = (size_t)1 << (b & 3); /* cc/d0: 1, cd/d1: 2, ce/d2: 4, cf/d3: 8 */
    if (len - *off - 1 < n)
        return INT_TRUNCATED;
    *u = be(p + *off + 1, n);
    *neg = false;
    if (b >= 0xd0 && n < 8 && (*u >> (8 * n - 1)) != 0) { /* sign-extend */
        *u |= ~(uint64_t)0 << (8 * n);
        *neg = true;
    } else if (b == 0xd3 && (*u >> 63) != 0) {
        *neg = true;
    }
    *off += 1 + n;
    return INT_OK;
}

static sage_err uint_field(const unsigned char *p, size_t len, size_t *off, const char *what,
                           const char *field, uint64_t *out)
{
    bool neg;
    int r;

    r = read_int(p, len, off, &neg, out);
    if (r == INT_TRUNCATED)
        return SAGE_SETERR(SAGE_EPROTO, "%s: truncated in %s", what, field);
    if (r == INT_NOT_INT)
        return SAGE_SETERR(SAGE_EPROTO, "%s.%s: expected uint, got %s", what, field,
                           type_at(p[*off]));
    if (neg)
        return SAGE_SETERR(SAGE_EPROTO, "%s.%s: expected uint, got %" PRId64, what, field,
                           (int64_t)*out);
    return SAGE_OK;
}

sage_err sage__wire_header(const void *buf, size_t len, const char *what, uint32_t *countp,
                           uint64_t *kindp, uint64_t *idp)
{
    const unsigned char *p = buf;
    uint64_t count, version, kind, id;
    size_t off;
    sage_err err;

    if (len == 0 || p == NULL)
        return SAGE_SETERR(SAGE_EPROTO, "%s: empty message", what);
    if (p[0] >= 0x90 && p[0] <= 0x9f) {
        count = p[0] & 0x0fu;
        off = 1;
    } else if (p[0] == 0xdc || p[0] == 0xdd) {
        off = p[0] == 0xdc ? 3 : 5;
        if (len < off)
            return SAGE_SETERR(SAGE_EPROTO, "%s: truncated in the array header", what);
        count = be(p + 1, off - 1);
    } else {
        return SAGE_SETERR(SAGE_EPROTO, "%s: expected array, got %s", what, type_at(p[0]));
    }
    if (count < 1)
        return SAGE_SETERR(SAGE_EPROTO, "%s.version: missing (empty array)", what);
    err = uint_field(p, len, &off, what, "version", &version);
    if (err)
        return err;
    if (version != 1)
        return SAGE_SETERR(SAGE_EVERSION, "%s: protocol version %" PRIu64 ", this side speaks 1",
                           what, version);
    if (count < 2)
        return SAGE_SETERR(SAGE_EPROTO, "%s.kind: missing (array of 1)", what);
    err = uint_field(p, len, &off, what, "kind", &kind);
    if (err)
        return err;
    if (count < 3)
        return SAGE_SETERR(SAGE_EPROTO, "%s.id: missing (array of 2)", what);
    err = uint_field(p, len, &off, what, "id", &id);
    if (err)
        return err;
    *countp = (uint32_t)count;
    *kindp = kind;
    *idp = id;
    return SAGE_OK;
}
