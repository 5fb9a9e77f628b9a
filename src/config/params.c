/* params.c - a service's free-form `config:` mapping as a sage_value tree.
 * The only file of the layer that knows sage_value. */
#include "base/err_internal.h"
#include "config/config_internal.h"
#include "config/scalar.h"
#include "value/arena.h"

/* copy_str copies n bytes of s into a as a NUL-terminated string value. */
static sage_err copy_str(sage_arena *a, const char *s, size_t n, sage_value *out)
{
    const char *d = sage__arena_strndup(a, s, n);

    if (d == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "service params: arena out of memory");
    *out = sage_strn(d, n);
    return SAGE_OK;
}

static sage_err convert(sage_arena *a, const struct cf_node *n, sage_value *out)
{
    struct cf_scalar s;
    size_t i = 0;
    sage_err r;

    switch (n->kind) {
    case CF_SCALAR:
        sage__cf_resolve(n, &s);
        switch (s.type) {
        case CF_NULL:
            *out = sage_nil();
            return SAGE_OK;
        case CF_BOOL:
            *out = sage_bool(s.b != 0);
            return SAGE_OK;
        case CF_INT:
            *out = sage_int(s.i);
            return SAGE_OK;
        case CF_FLOAT:
            *out = sage_double(s.d);
            return SAGE_OK;
        default: /* strings; CF_BIG was refused when the file was read */
            return copy_str(a, n->str, n->len, out);
        }
    case CF_SEQ: {
        sage_value *items = NULL;

        if (n->n > 0 && (items = sage_arena_alloc(a, n->n * sizeof *items)) == NULL)
            return SAGE_SETERR(SAGE_ENOMEM, "service params: arena out of memory");
        for (const struct cf_node *c = n->first; c != NULL; c = c->next, i++)
            if ((r = convert(a, c, &items[i])) != SAGE_OK)
                return r;
        *out = sage_array(items, n->n);
        return SAGE_OK;
    }
    case CF_MAP: {
        sage_pair *pairs = NULL;

        if (n->n > 0 && (pairs = sage_arena_alloc(a, n->n * sizeof *pairs)) == NULL)
            return SAGE_SETERR(SAGE_ENOMEM, "service params: arena out of memory");
        for (const struct cf_node *c = n->first; c != NULL; c = c->next, i++) {
            r = copy_str(a, c->key->str, c->key->len, &pairs[i].key);
            if (r == SAGE_OK)
                r = convert(a, c, &pairs[i].val);
            if (r != SAGE_OK)
                return r;
        }
        *out = sage_map(pairs, n->n);
        return SAGE_OK;
    }
    default: /* aliases were refused when the file was read */
        *out = sage_nil();
        return SAGE_OK;
    }
}

sage_err sage_config_service_params(sage_value *out, const sage_config *c, size_t i,
                                    sage_arena *a)
{
    sage_value v;
    sage_err r;

    if (c == NULL || a == NULL || out == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_config_service_params: NULL argument");
    if (i >= c->nservices)
        return SAGE_SETERR(SAGE_EINVAL, "service index %zu out of range (%zu services)", i,
                           c->nservices);
    if (c->services[i].params == NULL) {
        *out = sage_nil();
        return SAGE_OK;
    }
    r = convert(a, c->services[i].params, &v);
    if (r == SAGE_OK)
        *out = v;
    return r;
}
