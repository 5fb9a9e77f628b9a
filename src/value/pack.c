/*
 * pack.c - sage_pack and sage_unpack: values built from and read into C
 * variables by a format string, in the spirit of jansson's json_pack and
 * json_unpack. Both walk the format once, recursively; an array or map first
 * counts its items (count_items) so pack can size it in one allocation and
 * unpack can check the length before touching any element.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "base/err_internal.h"
#include "value/arena.h"

#define PATH_CAP 256

/* fmt: a cursor over a format string. */
struct fmt {
    const char *start;
    const char *p;
};

static void skip_sep(struct fmt *f)
{
    while (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' || *f->p == '\r' || *f->p == ',' ||
           *f->p == ':')
        f->p++;
}

static sage_err fmt_error(const struct fmt *f, const char *what)
{
    size_t pos = (size_t)(f->p - f->start);

    if (*f->p == '\0')
        return SAGE_SETERR(SAGE_EINVAL, "format \"%s\": %s, got end of format", f->start, what);
    return SAGE_SETERR(SAGE_EINVAL, "format \"%s\": %s, got '%c' at position %zu", f->start, what,
                       *f->p, pos);
}

/*
 * count_items counts the items of the array or map whose opening bracket was
 * just passed, up to its closing bracket, without moving the cursor. A '*'
 * sets *star and is not an item; '#' and '?' belong to their item. Anything
 * unknown counts as an item, for the parser to reject.
 */
static size_t count_items(const char *p, bool *star)
{
    size_t n = 0;
    int depth = 0;

    *star = false;
    for (; *p; p++) {
        switch (*p) {
        case ' ':
        case '\t':
        case '\n':
        case '\r':
        case ',':
        case ':':
        case '#':
        case '?':
            break;
        case '*':
            if (depth == 0)
                *star = true;
            break;
        case '[':
        case '{':
            if (depth++ == 0)
                n++;
            break;
        case ']':
        case '}':
            if (depth-- == 0)
                return n;
            break;
        default:
            if (depth == 0)
                n++;
        }
    }
    return n;
}

/* ------------------------------------------------------------------ pack */

struct packer {
    sage_arena *a;
    struct fmt f;
    va_list ap;
};

static sage_err pack_value(struct packer *st, sage_value *out);

static sage_err no_memory(void)
{
    return SAGE_SETERR(SAGE_ENOMEM, "pack: arena out of memory");
}

/* 's', 's#' or 'y#', the letter already consumed. */
static sage_err pack_bytes(struct packer *st, sage_value *out, bool bin)
{
    bool hash = *st->f.p == '#';
    const char *s, *copy;
    size_t n;

    if (hash)
        st->f.p++;
    else if (bin)
        return fmt_error(&st->f, "'y' must be followed by '#'");
    s = va_arg(st->ap, const char *); /* const void * for y#: same representation */
    n = hash ? va_arg(st->ap, size_t) : (s ? strlen(s) : 0);
    if (s == NULL && !(bin && n == 0))
        return SAGE_SETERR(SAGE_EINVAL, "format \"%s\": NULL %s argument at position %zu",
                           st->f.start, bin ? "bytes" : "string",
                           (size_t)(st->f.p - st->f.start) - 1 - hash);
    copy = sage__arena_strndup(st->a, s, n);
    if (copy == NULL)
        return no_memory();
    *out = bin ? sage_bin(copy, n) : sage_strn(copy, n);
    return SAGE_OK;
}

static sage_err pack_array(struct packer *st, sage_value *out)
{
    bool star;
    size_t n = count_items(st->f.p, &star);
    sage_value *items = sage_arena_alloc(st->a, n * sizeof *items);

    if (items == NULL)
        return no_memory();
    for (size_t i = 0; i < n; i++) {
        sage_err err = pack_value(st, &items[i]);

        if (err)
            return err;
    }
    skip_sep(&st->f);
    if (*st->f.p != ']')
        return fmt_error(&st->f, "expected ']'");
    st->f.p++;
    *out = sage_array(items, n);
    return SAGE_OK;
}

static sage_err pack_map(struct packer *st, sage_value *out)
{
    bool star;
    size_t n = (count_items(st->f.p, &star) + 1) / 2;
    sage_pair *pairs = sage_arena_alloc(st->a, n * sizeof *pairs);

    if (pairs == NULL)
        return no_memory();
    for (size_t i = 0; i < n; i++) {
        sage_err err;

        skip_sep(&st->f);
        if (*st->f.p != 's')
            return fmt_error(&st->f, "expected a map key 's'");
        err = pack_value(st, &pairs[i].key);
        if (err == SAGE_OK)
            err = pack_value(st, &pairs[i].val);
        if (err)
            return err;
    }
    skip_sep(&st->f);
    if (*st->f.p != '}')
        return fmt_error(&st->f, "expected '}'");
    st->f.p++;
    *out = sage_map(pairs, n);
    return SAGE_OK;
}

static sage_err pack_value(struct packer *st, sage_value *out)
{
    skip_sep(&st->f);
    switch (*st->f.p++) {
    case 'n':
        *out = sage_nil();
        return SAGE_OK;
    case 'b':
        *out = sage_bool(va_arg(st->ap, int) != 0);
        return SAGE_OK;
    case 'i':
        *out = sage_int(va_arg(st->ap, int));
        return SAGE_OK;
    case 'I':
        *out = sage_int(va_arg(st->ap, int64_t));
        return SAGE_OK;
    case 'u':
        *out = sage_uint(va_arg(st->ap, uint64_t));
        return SAGE_OK;
    case 'f':
        *out = sage_double(va_arg(st->ap, double));
        return SAGE_OK;
    case 's':
        return pack_bytes(st, out, false);
    case 'y':
        return pack_bytes(st, out, true);
    case 'v': {
        const sage_value *src = va_arg(st->ap, const sage_value *);

        if (src == NULL)
            return SAGE_SETERR(SAGE_EINVAL, "format \"%s\": NULL value argument at position %zu",
                               st->f.start, (size_t)(st->f.p - st->f.start) - 1);
        return sage_value_copy(out, st->a, src);
    }
    case '[':
        return pack_array(st, out);
    case '{':
        return pack_map(st, out);
    default:
        st->f.p--;
        return fmt_error(&st->f, "expected a value");
    }
}

sage_err sage_vpack(sage_value *out, sage_arena *a, const char *fmt, va_list ap)
{
    struct packer st;
    sage_value v;
    sage_err err;

    if (a == NULL || out == NULL || fmt == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "pack: NULL argument");
    st.a = a;
    st.f.start = st.f.p = fmt;
    va_copy(st.ap, ap);
    err = pack_value(&st, &v);
    if (err == SAGE_OK) {
        skip_sep(&st.f);
        if (*st.f.p != '\0')
            err = fmt_error(&st.f, "expected end of format after one value");
    }
    va_end(st.ap);
    if (err == SAGE_OK)
        *out = v;
    return err;
}

sage_err sage_pack(sage_value *out, sage_arena *a, const char *fmt, ...)
{
    va_list ap;
    sage_err err;

    va_start(ap, fmt);
    err = sage_vpack(out, a, fmt, ap);
    va_end(ap);
    return err;
}

/* ---------------------------------------------------------------- unpack */

struct unpacker {
    struct fmt f;
    va_list ap;
    char path[PATH_CAP]; /* where we are in the value, for error details */
    size_t plen;
};

static size_t path_push(struct unpacker *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* path_push appends to the path and returns the length to pop back to. */
static size_t path_push(struct unpacker *st, const char *fmt, ...)
{
    size_t old = st->plen;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(st->path + old, sizeof st->path - old, fmt, ap);
    va_end(ap);
    if (n > 0)
        st->plen = old + (size_t)n < sizeof st->path ? old + (size_t)n : sizeof st->path - 1;
    return old;
}

static void path_pop(struct unpacker *st, size_t old)
{
    st->plen = old;
    st->path[old] = '\0';
}

static sage_err type_error(struct unpacker *st, const char *want, const sage_value *v)
{
    return SAGE_SETERR(SAGE_EBADARGS, "%s: expected %s, got %s", st->path, want,
                       sage_type_name(v->type));
}

/* with_path prefixes the detail an accessor just recorded with the path. */
static sage_err with_path(struct unpacker *st, sage_err err)
{
    char d[256];

    snprintf(d, sizeof d, "%s", sage_errdetail());
    return SAGE_SETERR(err, "%s: %s", st->path, d);
}

static sage_err unpack_value(struct unpacker *st, const sage_value *v);

static sage_err unpack_array(struct unpacker *st, const sage_value *v)
{
    bool star;
    size_t n = count_items(st->f.p, &star);

    if (v && v->type != SAGE_ARRAY)
        return type_error(st, "array", v);
    if (v && (star ? v->as.array.len < n : v->as.array.len != n))
        return SAGE_SETERR(SAGE_EBADARGS, "%s: expected %s%zu item%s, got %zu", st->path,
                           star ? "at least " : "", n, n == 1 ? "" : "s", v->as.array.len);
    for (size_t i = 0; i < n; i++) {
        size_t old = path_push(st, "[%zu]", i);
        sage_err err = unpack_value(st, v ? &v->as.array.items[i] : NULL);

        if (err)
            return err;
        path_pop(st, old);
    }
    skip_sep(&st->f);
    if (star && *st->f.p == '*') {
        st->f.p++;
        skip_sep(&st->f);
    }
    if (*st->f.p != ']')
        return fmt_error(&st->f, "expected ']'");
    st->f.p++;
    return SAGE_OK;
}

static sage_err unpack_map(struct unpacker *st, const sage_value *v)
{
    if (v && v->type != SAGE_MAP)
        return type_error(st, "map", v);
    for (;;) {
        const sage_value *item = NULL;
        const char *key;
        bool optional = false;
        size_t old;
        sage_err err;

        skip_sep(&st->f);
        if (*st->f.p == '}')
            break;
        if (*st->f.p != 's')
            return fmt_error(&st->f, "expected a map key 's' or '}'");
        st->f.p++;
        key = va_arg(st->ap, const char *);
        if (key == NULL)
            return SAGE_SETERR(SAGE_EINVAL, "format \"%s\": NULL key argument at position %zu",
                               st->f.start, (size_t)(st->f.p - st->f.start) - 1);
        skip_sep(&st->f);
        if (*st->f.p == '?') {
            optional = true;
            st->f.p++;
            skip_sep(&st->f);
        }
        if (v) {
            item = sage_map_get(v, key);
            if (item == NULL && !optional)
                return SAGE_SETERR(SAGE_EBADARGS, "%s: missing key '%s'", st->path, key);
            /* an optional nil is "not given", except to 'v', which takes anything */
            if (item && optional && item->type == SAGE_NIL && *st->f.p != 'v')
                item = NULL;
        }
        old = path_push(st, ".%s", key);
        err = unpack_value(st, item);
        if (err)
            return err;
        path_pop(st, old);
    }
    st->f.p++;
    return SAGE_OK;
}

/* 's', 's#' or 'y#', the letter already consumed. */
static sage_err unpack_bytes(struct unpacker *st, const sage_value *v, bool bin)
{
    bool hash = *st->f.p == '#';
    const char **s = NULL;
    const void **p = NULL;
    size_t *n = NULL;

    if (hash)
        st->f.p++;
    else if (bin)
        return fmt_error(&st->f, "'y' must be followed by '#'");
    if (bin)
        p = va_arg(st->ap, const void **);
    else
        s = va_arg(st->ap, const char **);
    if (hash)
        n = va_arg(st->ap, size_t *);
    if (v == NULL)
        return SAGE_OK;
    if (v->type != (bin ? SAGE_BIN : SAGE_STR))
        return type_error(st, bin ? "bin" : "string", v);
    if (bin)
        *p = v->as.bin.ptr;
    else
        *s = v->as.str.ptr;
    if (n)
        *n = bin ? v->as.bin.len : v->as.str.len;
    return SAGE_OK;
}

/* 'i', 'I', 'u' or 'f': each reads its own pointer type. */
static sage_err unpack_number(struct unpacker *st, const sage_value *v, char c)
{
    sage_err err;
    int64_t i;
    int *ip;

    switch (c) {
    case 'i':
        ip = va_arg(st->ap, int *);
        if (v == NULL)
            return SAGE_OK;
        err = sage_value_get_int(&i, v);
        if (err)
            return with_path(st, err);
        if (i < INT_MIN || i > INT_MAX)
            return SAGE_SETERR(SAGE_EBADARGS, "%s: %" PRId64 " does not fit in int", st->path, i);
        *ip = (int)i;
        return SAGE_OK;
    case 'I': {
        int64_t *out = va_arg(st->ap, int64_t *);

        err = v ? sage_value_get_int(out, v) : SAGE_OK;
        break;
    }
    case 'u': {
        uint64_t *out = va_arg(st->ap, uint64_t *);

        err = v ? sage_value_get_uint(out, v) : SAGE_OK;
        break;
    }
    default: {
        double *out = va_arg(st->ap, double *);

        err = v ? sage_value_get_double(out, v) : SAGE_OK;
    }
    }
    return err ? with_path(st, err) : SAGE_OK;
}

static sage_err unpack_value(struct unpacker *st, const sage_value *v)
{
    char c;

    skip_sep(&st->f);
    c = *st->f.p++;
    switch (c) {
    case 'n':
        if (v && v->type != SAGE_NIL)
            return type_error(st, "nil", v);
        return SAGE_OK;
    case 'b': {
        bool *out = va_arg(st->ap, bool *);

        if (v && v->type != SAGE_BOOL)
            return type_error(st, "bool", v);
        if (v)
            *out = v->as.b;
        return SAGE_OK;
    }
    case 'i':
    case 'I':
    case 'u':
    case 'f':
        return unpack_number(st, v, c);
    case 's':
        return unpack_bytes(st, v, false);
    case 'y':
        return unpack_bytes(st, v, true);
    case 'v': {
        const sage_value **out = va_arg(st->ap, const sage_value **);

        if (v)
            *out = v;
        return SAGE_OK;
    }
    case '[':
        return unpack_array(st, v);
    case '{':
        return unpack_map(st, v);
    default:
        st->f.p--;
        return fmt_error(&st->f, "expected a value");
    }
}

sage_err sage_vunpack(const sage_value *v, const char *fmt, va_list ap)
{
    struct unpacker st;
    sage_err err;

    if (v == NULL || fmt == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "unpack: NULL argument");
    st.f.start = st.f.p = fmt;
    st.plen = 0;
    path_push(&st, "value");
    va_copy(st.ap, ap);
    err = unpack_value(&st, v);
    if (err == SAGE_OK) {
        skip_sep(&st.f);
        if (*st.f.p != '\0')
            err = fmt_error(&st.f, "expected end of format after one value");
    }
    va_end(st.ap);
    return err;
}

sage_err sage_unpack(const sage_value *v, const char *fmt, ...)
{
    va_list ap;
    sage_err err;

    va_start(ap, fmt);
    err = sage_vunpack(v, fmt, ap);
    va_end(ap);
    return err;
}
