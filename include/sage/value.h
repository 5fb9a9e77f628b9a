/*
 * sage/value.h - typed values, arenas, and format-string pack/unpack.
 *
 * Every call carries values: args are an array of them, kwargs a map from
 * name to value, the result is one value. A sage_value is a plain view: it
 * owns nothing, and the arrays, maps, strings and bytes it points at belong
 * to whoever made them (the caller's own variables, or a sage_arena).
 *
 * A sage_arena is the memory behind decoded and packed values: allocation
 * bumps a pointer, and everything is given back at once with
 * sage_arena_reset (keeping memory for the next round, so a loop that
 * decodes, handles and resets does no malloc in steady state) or
 * sage_arena_free. An arena is used by one thread at a time.
 *
 * Values must be acyclic. Integers read from the wire come back as SAGE_INT
 * when they fit int64_t and as SAGE_UINT only above INT64_MAX; the accessors
 * below accept either kind wherever the number fits.
 */
#ifndef SAGE_VALUE_H
#define SAGE_VALUE_H

#include "sage/export.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sage/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* sage_type: what a sage_value holds. Values are stable. */
typedef enum sage_type {
    SAGE_NIL,
    SAGE_BOOL,
    SAGE_INT,
    SAGE_UINT,
    SAGE_DOUBLE,
    SAGE_STR,
    SAGE_BIN,
    SAGE_ARRAY,
    SAGE_MAP
} sage_type;

typedef struct sage_value sage_value;
typedef struct sage_pair sage_pair;

/*
 * sage_value: one typed value, a plain view that owns nothing. Strings made
 * by the library (decoded, packed, copied) are NUL-terminated, and str.len
 * excludes the terminator; strings may contain NUL bytes. An empty array or
 * map may have a NULL items pointer.
 */
struct sage_value {
    sage_type type;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double d;
        struct {
            const char *ptr;
            size_t len;
        } str;
        struct {
            const void *ptr;
            size_t len;
        } bin;
        struct {
            const sage_value *items;
            size_t len;
        } array;
        struct {
            const sage_pair *items;
            size_t len;
        } map;
    } as;
};

/* sage_pair: one entry of a map. Keys are usually strings (kwargs keys must
 * be), but any value may be a key. */
struct sage_pair {
    sage_value key;
    sage_value val;
};

/* ------------------------------------------------------------ constructors */

/* sage_nil returns the nil value. */
static inline sage_value sage_nil(void)
{
    sage_value v;

    memset(&v, 0, sizeof v);
    v.type = SAGE_NIL;
    return v;
}

/* sage_bool returns a boolean value. */
static inline sage_value sage_bool(bool b)
{
    sage_value v = sage_nil();

    v.type = SAGE_BOOL;
    v.as.b = b;
    return v;
}

/* sage_int returns a signed integer value. */
static inline sage_value sage_int(int64_t i)
{
    sage_value v = sage_nil();

    v.type = SAGE_INT;
    v.as.i = i;
    return v;
}

/* sage_uint returns an unsigned integer value. On the wire it is just an
 * integer: values up to INT64_MAX come back as SAGE_INT. */
static inline sage_value sage_uint(uint64_t u)
{
    sage_value v = sage_nil();

    v.type = SAGE_UINT;
    v.as.u = u;
    return v;
}

/* sage_double returns a floating-point value. */
static inline sage_value sage_double(double d)
{
    sage_value v = sage_nil();

    v.type = SAGE_DOUBLE;
    v.as.d = d;
    return v;
}

/* sage_strn returns a string value viewing n bytes at s (borrowed, not
 * copied; need not be NUL-terminated). */
static inline sage_value sage_strn(const char *s, size_t n)
{
    sage_value v = sage_nil();

    v.type = SAGE_STR;
    v.as.str.ptr = s;
    v.as.str.len = n;
    return v;
}

/* sage_str returns a string value viewing the NUL-terminated s (borrowed;
 * s must not be NULL). */
static inline sage_value sage_str(const char *s)
{
    return sage_strn(s, strlen(s));
}

/* sage_bin returns a byte-string value viewing n bytes at p (borrowed). */
static inline sage_value sage_bin(const void *p, size_t n)
{
    sage_value v = sage_nil();

    v.type = SAGE_BIN;
    v.as.bin.ptr = p;
    v.as.bin.len = n;
    return v;
}

/* sage_array returns an array value viewing n items (borrowed). */
static inline sage_value sage_array(const sage_value *items, size_t n)
{
    sage_value v = sage_nil();

    v.type = SAGE_ARRAY;
    v.as.array.items = items;
    v.as.array.len = n;
    return v;
}

/* sage_map returns a map value viewing n pairs (borrowed). */
static inline sage_value sage_map(const sage_pair *pairs, size_t n)
{
    sage_value v = sage_nil();

    v.type = SAGE_MAP;
    v.as.map.items = pairs;
    v.as.map.len = n;
    return v;
}

/* --------------------------------------------------------------- accessors */

/*
 * sage_type_name returns the lower-case name of t ("int", "string", "map"),
 * or "unknown". The string is static. Thread-safe.
 */
SAGE_API const char *sage_type_name(sage_type t);

/*
 * sage_value_get_bool stores v's boolean in *out. A value of another type
 * gives SAGE_EBADARGS ("expected bool, got int") and leaves *out alone.
 * Thread-safe, as are all accessors (they only read v).
 */
SAGE_API sage_err sage_value_get_bool(bool *out, const sage_value *v);

/*
 * sage_value_get_int stores v's integer in *out. SAGE_INT always fits; a
 * SAGE_UINT fits up to INT64_MAX. Another type or a number out of range
 * gives SAGE_EBADARGS and leaves *out alone.
 */
SAGE_API sage_err sage_value_get_int(int64_t *out, const sage_value *v);

/*
 * sage_value_get_uint stores v's integer in *out: a SAGE_UINT, or a
 * non-negative SAGE_INT. Another type or a negative number gives
 * SAGE_EBADARGS and leaves *out alone.
 */
SAGE_API sage_err sage_value_get_uint(uint64_t *out, const sage_value *v);

/*
 * sage_value_get_double stores v's number in *out: a SAGE_DOUBLE, or a
 * SAGE_INT/SAGE_UINT converted (rounded to nearest when large). Another type
 * gives SAGE_EBADARGS and leaves *out alone.
 */
SAGE_API sage_err sage_value_get_double(double *out, const sage_value *v);

/*
 * sage_value_get_str stores a borrowed pointer to v's string bytes in *s and
 * their length in *len (len may be NULL). The pointer is valid as long as v's
 * storage is. Not a string: SAGE_EBADARGS, outputs left alone.
 */
SAGE_API sage_err sage_value_get_str(const char **s, size_t *len, const sage_value *v);

/*
 * sage_value_get_bin stores a borrowed pointer to v's bytes in *p and their
 * length in *len (len may be NULL). Only SAGE_BIN qualifies; anything else is
 * SAGE_EBADARGS with outputs left alone.
 */
SAGE_API sage_err sage_value_get_bin(const void **p, size_t *len, const sage_value *v);

/*
 * sage_map_get returns the value stored under the string key in map, or NULL
 * when map is not a map or has no such string key. With duplicate keys the
 * first wins. The result is borrowed from map. Linear in the map's size.
 */
SAGE_API const sage_value *sage_map_get(const sage_value *map, const char *key);

/*
 * sage_value_equal compares a and b deeply. SAGE_INT and SAGE_UINT holding
 * the same number are equal (the wire does not tell them apart); doubles are
 * equal when == says so or both are NaN; maps compare pair by pair in order.
 * Thread-safe.
 */
SAGE_API bool sage_value_equal(const sage_value *a, const sage_value *b);

/*
 * sage_value_snprint writes v as compact JSON-like text into buf (cap bytes,
 * always NUL-terminated when cap > 0; buf may be NULL when cap is 0): null,
 * true, false, numbers, escaped strings, [arrays] and {objects}; bin as
 * "<N bytes>"; non-string map keys as their own text. Returns the length the
 * full text needs (excluding the NUL), like snprintf, or -1 above INT_MAX.
 * Thread-safe.
 */
SAGE_API int sage_value_snprint(char *buf, size_t cap, const sage_value *v);

/* ------------------------------------------------------------------- arena */

/* sage_arena: an opaque bump allocator, owned by the library. */
typedef struct sage_arena sage_arena;

/*
 * sage_arena_new creates an arena that takes memory from the system in
 * chunks of chunk bytes (0 means 4096; at least 256) and writes it to *ap on
 * success.
 * SAGE_ENOMEM on failure. Thread-safe; the arena itself is not.
 */
SAGE_API sage_err sage_arena_new(sage_arena **ap, size_t chunk);

/*
 * sage_arena_free releases the arena and everything allocated from it; every
 * value viewing that memory becomes invalid. sage_arena_free(NULL) does
 * nothing.
 */
SAGE_API void sage_arena_free(sage_arena *a);

/*
 * sage_arena_reset gives back everything allocated from a at once, keeping
 * one chunk for reuse: the largest, or, when the last round spilled over
 * several chunks, one chunk big enough for that whole round (up to 1 MiB),
 * so a steady loop of allocate-and-reset does no malloc. Values viewing the
 * arena become invalid.
 */
SAGE_API void sage_arena_reset(sage_arena *a);

/*
 * sage_arena_alloc returns n bytes, 8-byte aligned, owned by the arena (valid
 * until the next reset or free), or NULL when memory runs out. Requests
 * larger than a quarter chunk get a chunk of their own. Not thread-safe.
 */
SAGE_API void *sage_arena_alloc(sage_arena *a, size_t n);

/*
 * sage_value_copy deep-copies src into arena a: arrays, maps, strings (made
 * NUL-terminated) and bytes, and writes the copy to *dst on success. dst may
 * equal src. SAGE_ENOMEM when the arena runs out, SAGE_EINVAL for a value of
 * unknown type or nested deeper than 1000 levels (a cycle).
 */
SAGE_API sage_err sage_value_copy(sage_value *dst, sage_arena *a, const sage_value *src);

/* ------------------------------------------------------------ pack, unpack */

/*
 * sage_pack builds a value in arena a following fmt, in the spirit of
 * jansson's json_pack, and writes it to *out on success:
 *   n nil            b bool (int)        i int (int)       I int64_t
 *   u uint64_t       f double            s const char * (copied; NULL is an error)
 *   s# const char *, size_t              y# const void *, size_t (bin, copied)
 *   v const sage_value * (deep-copied)   [ ... ] array     { s:value ... } map
 * Whitespace, ',' and ':' separate items and are ignored; fmt holds exactly
 * one value. A malformed fmt or a NULL string gives SAGE_EINVAL, a full arena
 * SAGE_ENOMEM; what was allocated stays in the arena until reset.
 * Example: sage_pack(&v, a, "[s, i, {s: f}]", "key", 42, "ttl", 1.5).
 */
SAGE_API sage_err sage_pack(sage_value *out, sage_arena *a, const char *fmt, ...);

/* sage_vpack is sage_pack with a va_list. */
SAGE_API sage_err sage_vpack(sage_value *out, sage_arena *a, const char *fmt, va_list ap);

/*
 * sage_unpack checks v against fmt and extracts parts of it, in the spirit
 * of jansson's json_unpack:
 *   n check nil      b bool *            i int * (range-checked)
 *   I int64_t *      u uint64_t *        f double * (integers accepted)
 *   s const char **  s# const char **, size_t *
 *   y# const void **, size_t *           v const sage_value **
 *   [ ... ] an array of exactly that many items; a final '*' inside means
 *           "at least that many" ("[si*]")
 *   { s:value ... } a map looked up by key (const char *); '?' before the
 *           value makes the key optional: when it is missing, or nil and the
 *           item is not v, the outputs are left untouched ("{s:i s:?f}")
 * Extracted strings, bytes and values are borrowed from v. A mismatch gives
 * SAGE_EBADARGS with a detail naming the place ("value[1]: expected int, got
 * string", "value: missing key 'ttl'"); outputs already written by then keep
 * their new contents. A malformed fmt gives SAGE_EINVAL. Thread-safe.
 */
SAGE_API sage_err sage_unpack(const sage_value *v, const char *fmt, ...);

/* sage_vunpack is sage_unpack with a va_list. */
SAGE_API sage_err sage_vunpack(const sage_value *v, const char *fmt, va_list ap);

#ifdef __cplusplus
}
#endif
#endif /* SAGE_VALUE_H */
