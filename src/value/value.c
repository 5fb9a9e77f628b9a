/* value.c - reading, comparing and copying sage_values. */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "base/err_internal.h"
#include "value/arena.h"

/* Deeper than this, sage_value_copy assumes a cycle. */
#define COPY_MAX_DEPTH 1000

const char *sage_type_name(sage_type t)
{
    switch (t) {
    case SAGE_NIL:
        return "nil";
    case SAGE_BOOL:
        return "bool";
    case SAGE_INT:
        return "int";
    case SAGE_UINT:
        return "uint";
    case SAGE_DOUBLE:
        return "double";
    case SAGE_STR:
        return "string";
    case SAGE_BIN:
        return "bin";
    case SAGE_ARRAY:
        return "array";
    case SAGE_MAP:
        return "map";
    }
    return "unknown";
}

static sage_err mismatch(const char *want, const sage_value *v)
{
    return SAGE_SETERR(SAGE_EBADARGS, "expected %s, got %s", want, sage_type_name(v->type));
}

sage_err sage_value_get_bool(bool *out, const sage_value *v)
{
    if (v->type != SAGE_BOOL)
        return mismatch("bool", v);
    *out = v->as.b;
    return SAGE_OK;
}

sage_err sage_value_get_int(int64_t *out, const sage_value *v)
{
    if (v->type == SAGE_INT) {
        *out = v->as.i;
        return SAGE_OK;
    }
    if (v->type != SAGE_UINT)
        return mismatch("int", v);
    if (v->as.u > (uint64_t)INT64_MAX)
        return SAGE_SETERR(SAGE_EBADARGS, "%" PRIu64 " does not fit in int64", v->as.u);
    *out = (int64_t)v->as.u;
    return SAGE_OK;
}

sage_err sage_value_get_uint(uint64_t *out, const sage_value *v)
{
    if (v->type == SAGE_UINT) {
        *out = v->as.u;
        return SAGE_OK;
    }
    if (v->type != SAGE_INT)
        return mismatch("uint", v);
    if (v->as.i < 0)
        return SAGE_SETERR(SAGE_EBADARGS, "%" PRId64 " does not fit in uint64", v->as.i);
    *out = (uint64_t)v->as.i;
    return SAGE_OK;
}

sage_err sage_value_get_double(double *out, const sage_value *v)
{
    switch (v->type) {
    case SAGE_DOUBLE:
        *out = v->as.d;
        return SAGE_OK;
    case SAGE_INT:
        *out = (double)v->as.i;
        return SAGE_OK;
    case SAGE_UINT:
        *out = (double)v->as.u;
        return SAGE_OK;
    default:
        return mismatch("double", v);
    }
}

sage_err sage_value_get_str(const char **s, size_t *len, const sage_value *v)
{
    if (v->type != SAGE_STR)
        return mismatch("string", v);
    *s = v->as.str.ptr;
    if (len)
        *len = v->as.str.len;
    return SAGE_OK;
}

sage_err sage_value_get_bin(const void **p, size_t *len, const sage_value *v)
{
    if (v->type != SAGE_BIN)
        return mismatch("bin", v);
    *p = v->as.bin.ptr;
    if (len)
        *len = v->as.bin.len;
    return SAGE_OK;
}

const sage_value *sage_map_get(const sage_value *map, const char *key)
{
    size_t n;

    if (map == NULL || key == NULL || map->type != SAGE_MAP)
        return NULL;
    n = strlen(key);
    for (size_t i = 0; i < map->as.map.len; i++) {
        const sage_pair *p = &map->as.map.items[i];

        if (p->key.type == SAGE_STR && p->key.as.str.len == n &&
            (n == 0 || memcmp(p->key.as.str.ptr, key, n) == 0))
            return &p->val;
    }
    return NULL;
}

/* Byte ranges compare without calling memcmp on a NULL pointer of length 0. */
static bool bytes_equal(const void *a, const void *b, size_t n)
{
    return n == 0 || memcmp(a, b, n) == 0;
}

static bool is_integer(const sage_value *v)
{
    return v->type == SAGE_INT || v->type == SAGE_UINT;
}

static bool integers_equal(const sage_value *a, const sage_value *b)
{
    if (a->type == b->type)
        return a->as.u == b->as.u; /* same bits, same number */
    if (a->type == SAGE_UINT)
        return b->as.i >= 0 && (uint64_t)b->as.i == a->as.u;
    return a->as.i >= 0 && (uint64_t)a->as.i == b->as.u;
}

bool sage_value_equal(const sage_value *a, const sage_value *b)
{
    if (is_integer(a) && is_integer(b))
        return integers_equal(a, b);
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case SAGE_NIL:
        return true;
    case SAGE_BOOL:
        return a->as.b == b->as.b;
    case SAGE_DOUBLE:
        return a->as.d == b->as.d || (isnan(a->as.d) && isnan(b->as.d));
    case SAGE_STR:
        return a->as.str.len == b->as.str.len &&
               bytes_equal(a->as.str.ptr, b->as.str.ptr, a->as.str.len);
    case SAGE_BIN:
        return a->as.bin.len == b->as.bin.len &&
               bytes_equal(a->as.bin.ptr, b->as.bin.ptr, a->as.bin.len);
    case SAGE_ARRAY:
        if (a->as.array.len != b->as.array.len)
            return false;
        for (size_t i = 0; i < a->as.array.len; i++)
            if (!sage_value_equal(&a->as.array.items[i], &b->as.array.items[i]))
                return false;
        return true;
    case SAGE_MAP:
        if (a->as.map.len != b->as.map.len)
            return false;
        for (size_t i = 0; i < a->as.map.len; i++) {
            const sage_pair *pa = &a->as.map.items[i], *pb = &b->as.map.items[i];

            if (!sage_value_equal(&pa->key, &pb->key) || !sage_value_equal(&pa->val, &pb->val))
                return false;
        }
        return true;
    default:
        return false;
    }
}

static sage_err copy_value(sage_arena *a, sage_value *dst, const sage_value *src, int depth);

static sage_err copy_items(sage_arena *a, sage_value *out, const sage_value *src, int depth)
{
    size_t n = src->as.array.len;
    sage_value *items;

    if (n > SIZE_MAX / sizeof *items)
        return SAGE_SETERR(SAGE_ENOMEM, "copy: array of %zu items is too large", n);
    items = sage_arena_alloc(a, n * sizeof *items);
    if (items == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "copy: arena out of memory");
    for (size_t i = 0; i < n; i++) {
        sage_err err = copy_value(a, &items[i], &src->as.array.items[i], depth + 1);

        if (err)
            return err;
    }
    *out = sage_array(items, n);
    return SAGE_OK;
}

static sage_err copy_pairs(sage_arena *a, sage_value *out, const sage_value *src, int depth)
{
    size_t n = src->as.map.len;
    sage_pair *pairs;

    if (n > SIZE_MAX / sizeof *pairs)
        return SAGE_SETERR(SAGE_ENOMEM, "copy: map of %zu pairs is too large", n);
    pairs = sage_arena_alloc(a, n * sizeof *pairs);
    if (pairs == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "copy: arena out of memory");
    for (size_t i = 0; i < n; i++) {
        const sage_pair *p = &src->as.map.items[i];
        sage_err err = copy_value(a, &pairs[i].key, &p->key, depth + 1);

        if (err == SAGE_OK)
            err = copy_value(a, &pairs[i].val, &p->val, depth + 1);
        if (err)
            return err;
    }
    *out = sage_map(pairs, n);
    return SAGE_OK;
}

static sage_err copy_value(sage_arena *a, sage_value *dst, const sage_value *src, int depth)
{
    sage_value out = *src;
    sage_err err = SAGE_OK;

    if (depth > COPY_MAX_DEPTH)
        return SAGE_SETERR(SAGE_EINVAL, "copy: value nested deeper than %d (a cycle?)",
                           COPY_MAX_DEPTH);
    switch (src->type) {
    case SAGE_NIL:
    case SAGE_BOOL:
    case SAGE_INT:
    case SAGE_UINT:
    case SAGE_DOUBLE:
        break;
    case SAGE_STR:
        if (src->as.str.ptr == NULL && src->as.str.len > 0)
            return SAGE_SETERR(SAGE_EINVAL, "copy: string of %zu bytes at NULL", src->as.str.len);
        out.as.str.ptr = sage__arena_strndup(a, src->as.str.ptr, src->as.str.len);
        if (out.as.str.ptr == NULL)
            return SAGE_SETERR(SAGE_ENOMEM, "copy: arena out of memory");
        break;
    case SAGE_BIN:
        if (src->as.bin.ptr == NULL && src->as.bin.len > 0)
            return SAGE_SETERR(SAGE_EINVAL, "copy: bin of %zu bytes at NULL", src->as.bin.len);
        /* strndup: bytes get a harmless terminator too, and "" when empty */
        out.as.bin.ptr = sage__arena_strndup(a, src->as.bin.ptr, src->as.bin.len);
        if (out.as.bin.ptr == NULL)
            return SAGE_SETERR(SAGE_ENOMEM, "copy: arena out of memory");
        break;
    case SAGE_ARRAY:
        if (src->as.array.items == NULL && src->as.array.len > 0)
            return SAGE_SETERR(SAGE_EINVAL, "copy: array of %zu items at NULL",
                               src->as.array.len);
        err = copy_items(a, &out, src, depth);
        break;
    case SAGE_MAP:
        if (src->as.map.items == NULL && src->as.map.len > 0)
            return SAGE_SETERR(SAGE_EINVAL, "copy: map of %zu pairs at NULL", src->as.map.len);
        err = copy_pairs(a, &out, src, depth);
        break;
    default:
        return SAGE_SETERR(SAGE_EINVAL, "copy: unknown value type %d", (int)src->type);
    }
    if (err == SAGE_OK)
        *dst = out;
    return err;
}

sage_err sage_value_copy(sage_value *dst, sage_arena *a, const sage_value *src)
{
    if (a == NULL || dst == NULL || src == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "copy: NULL argument");
    return copy_value(a, dst, src, 0);
}
