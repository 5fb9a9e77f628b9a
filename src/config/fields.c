/* fields.c - typed readers for the keys of a section, and the section walker. */
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "config/fields.h"
#include "config/scalar.h"
#include "sage/config.h"

#define MAX_FIELDS 32

/* integer reads v as an integer within lo..hi. */
static sage_err integer(struct cf_walk *w, const struct cf_node *v, const struct cf_field *f,
                        int64_t *out)
{
    struct cf_scalar s;
    char got[80];

    sage__cf_resolve(v, &s);
    if (s.type == CF_FLOAT && s.d >= f->lo && s.d <= f->hi && s.d == (double)(int64_t)s.d) {
        *out = (int64_t)s.d;
        return SAGE_OK;
    }
    if (s.type == CF_INT && (double)s.i >= f->lo && (double)s.i <= f->hi) {
        *out = s.i;
        return SAGE_OK;
    }
    return sage__cf_error(w, v, "expected an integer in %.0f..%.0f, got %s", f->lo, f->hi,
                          sage__cf_describe(v, got, sizeof got));
}

sage_err sage__cf_read_u32(struct cf_walk *w, const struct cf_node *v,
                           const struct cf_field *f, void *dst)
{
    int64_t i = 0;
    sage_err r = integer(w, v, f, &i);

    if (r == SAGE_OK)
        *(uint32_t *)sage__cf_at(dst, f) = (uint32_t)i;
    return r;
}

sage_err sage__cf_read_i32(struct cf_walk *w, const struct cf_node *v,
                           const struct cf_field *f, void *dst)
{
    int64_t i = 0;
    sage_err r = integer(w, v, f, &i);

    if (r == SAGE_OK)
        *(int *)sage__cf_at(dst, f) = (int)i;
    return r;
}

/* number reads v as a number in f's range */
static sage_err number(struct cf_walk *w, const struct cf_node *v, const struct cf_field *f,
                       double *out)
{
    struct cf_scalar s;
    double d;
    char got[80], range[64];

    sage__cf_resolve(v, &s);
    if (s.type == CF_INT || s.type == CF_FLOAT) {
        d = s.type == CF_INT ? (double)s.i : s.d;
        if ((f->lo_open ? d > f->lo : d >= f->lo) && d <= f->hi) {
            *out = d;
            return SAGE_OK;
        }
    }
    if (f->lo_open)
        snprintf(range, sizeof range, "> %g and <= %g", f->lo, f->hi);
    else
        snprintf(range, sizeof range, "in %g..%g", f->lo, f->hi);
    return sage__cf_error(w, v, "expected a number %s, got %s", range,
                          sage__cf_describe(v, got, sizeof got));
}

sage_err sage__cf_read_num(struct cf_walk *w, const struct cf_node *v,
                           const struct cf_field *f, void *dst)
{
    double d = 0;
    sage_err r = number(w, v, f, &d);

    if (r == SAGE_OK)
        *(double *)sage__cf_at(dst, f) = d;
    return r;
}

sage_err sage__cf_read_ms(struct cf_walk *w, const struct cf_node *v,
                          const struct cf_field *f, void *dst)
{
    double d = 0;
    sage_err r = number(w, v, f, &d);

    if (r == SAGE_OK) { /* seconds in the file, milliseconds in the struct */
        int64_t ms = (int64_t)(d * 1000 + 0.5);

        *(int64_t *)sage__cf_at(dst, f) = ms == 0 && d > 0 ? 1 : ms; /* never 0 for > 0 */
    }
    return r;
}

sage_err sage__cf_string(struct cf_walk *w, const struct cf_node *v, const char *what,
                         const char **out)
{
    char got[80];
    const char *s;

    if (v->kind != CF_SCALAR || sage__cf_is_null(v))
        return sage__cf_error(w, v, "expected %s, got %s", what,
                              sage__cf_describe(v, got, sizeof got));
    if (strlen(v->str) != v->len)
        return sage__cf_error(w, v, "expected %s, got one with a NUL byte", what);
    s = sage__cf_strndup(w->pool, v->str, v->len);
    if (s == NULL)
        return sage__cf_nomem(w);
    *out = s;
    return SAGE_OK;
}

sage_err sage__cf_read_str(struct cf_walk *w, const struct cf_node *v,
                           const struct cf_field *f, void *dst)
{
    return sage__cf_string(w, v, "a string", (const char **)sage__cf_at(dst, f));
}

sage_err sage__cf_name(struct cf_walk *w, const struct cf_node *v, const char **out)
{
    char got[80];
    size_t i;

    if (v->kind == CF_SCALAR && v->len >= 1 && v->len <= SAGE_NAME_MAX) {
        for (i = 0; i < v->len; i++) {
            char c = v->str[i];

            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-'))
                break;
        }
        if (i == v->len)
            return sage__cf_string(w, v, "a name", out);
    }
    return sage__cf_error(w, v, "expected a name of 1..%d characters from [A-Za-z0-9_-], got %s",
                          SAGE_NAME_MAX, sage__cf_describe(v, got, sizeof got));
}

sage_err sage__cf_read_name(struct cf_walk *w, const struct cf_node *v,
                            const struct cf_field *f, void *dst)
{
    return sage__cf_name(w, v, (const char **)sage__cf_at(dst, f));
}

/* word finds v among f->words; on failure the message lists them and
 * suggests the closest. */
static sage_err word(struct cf_walk *w, const struct cf_node *v, const struct cf_field *f,
                     int *index)
{
    char list[160] = "", got[80];
    const char *hint;
    size_t n;

    for (n = 0; f->words[n] != NULL; n++) {
        if (v->kind == CF_SCALAR && strlen(f->words[n]) == v->len &&
            memcmp(f->words[n], v->str, v->len) == 0) {
            *index = (int)n;
            return SAGE_OK;
        }
        if (n > 0)
            strncat(list, ", ", sizeof list - strlen(list) - 1);
        strncat(list, f->words[n], sizeof list - strlen(list) - 1);
    }
    sage__cf_describe(v, got, sizeof got);
    hint = v->kind == CF_SCALAR ? sage__cf_suggest(v->str, f->words, n) : NULL;
    if (hint != NULL)
        return sage__cf_error(w, v, "expected one of %s, got %s (did you mean '%s'?)", list, got,
                              hint);
    return sage__cf_error(w, v, "expected one of %s, got %s", list, got);
}

sage_err sage__cf_read_word(struct cf_walk *w, const struct cf_node *v,
                            const struct cf_field *f, void *dst)
{
    int i;
    sage_err r = word(w, v, f, &i);

    if (r == SAGE_OK)
        *(int *)sage__cf_at(dst, f) = i;
    return r;
}

sage_err sage__cf_read_flag(struct cf_walk *w, const struct cf_node *v,
                            const struct cf_field *f, void *dst)
{
    int i;
    sage_err r = word(w, v, f, &i);

    if (r == SAGE_OK)
        *(bool *)sage__cf_at(dst, f) = i != 0;
    return r;
}

sage_err sage__cf_read_choice(struct cf_walk *w, const struct cf_node *v,
                              const struct cf_field *f, void *dst)
{
    int i;
    sage_err r = word(w, v, f, &i);

    if (r == SAGE_OK)
        *(const char **)sage__cf_at(dst, f) = f->words[i];
    return r;
}

sage_err sage__cf_read_section(struct cf_walk *w, const struct cf_node *v,
                               const struct cf_field *f, void *dst)
{
    return sage__cf_walk_map(w, v, f->sub, sage__cf_at(dst, f));
}

/* unknown refuses key k of the mapping at w's path. */
static sage_err unknown(struct cf_walk *w, const struct cf_node *k, const struct cf_field *table)
{
    const char *words[2 * MAX_FIELDS], *hint;
    char in[CF_PATH_MAX + 24];
    size_t n = 0, mark;
    sage_err r;

    for (size_t i = 0; table[i].key != NULL && i < MAX_FIELDS; i++) {
        words[n++] = table[i].key;
        words[n++] = table[i].alias;
    }
    if (w->plen > 0)
        snprintf(in, sizeof in, "in %s", w->path);
    else
        snprintf(in, sizeof in, "at the top level");
    hint = sage__cf_suggest(k->str, words, n);
    mark = sage__cf_push_key(w, k->str);
    if (hint != NULL)
        r = sage__cf_error(w, k, "unknown key '%s' %s (did you mean '%s'?)", k->str, in, hint);
    else
        r = sage__cf_error(w, k, "unknown key '%s' %s", k->str, in);
    sage__cf_pop(w, mark);
    return r;
}

static int is_key(const struct cf_node *k, const char *name)
{
    return name != NULL && strlen(name) == k->len && memcmp(name, k->str, k->len) == 0;
}

sage_err sage__cf_walk_map(struct cf_walk *w, const struct cf_node *map,
                           const struct cf_field *table, void *dst)
{
    const struct cf_node *seen[MAX_FIELDS] = {NULL};
    char got[80];

    if (map == NULL || sage__cf_is_null(map))
        return SAGE_OK;
    if (map->kind != CF_MAP)
        return sage__cf_error(w, map, "expected a mapping, got %s",
                              sage__cf_describe(map, got, sizeof got));
    for (const struct cf_node *v = map->first; v != NULL; v = v->next) {
        const struct cf_node *k = v->key;
        size_t i, mark;
        sage_err r;

        for (i = 0; table[i].key != NULL; i++)
            if (is_key(k, table[i].key) || is_key(k, table[i].alias))
                break;
        if (table[i].key == NULL)
            return unknown(w, k, table);
        mark = sage__cf_push_key(w, k->str);
        if (i < MAX_FIELDS && seen[i] != NULL) {
            /* Same key twice was refused by the checks: this is an alias. */
            r = sage__cf_error(w, k, "'%s' and '%s' name the same section; give only one",
                               seen[i]->str, k->str);
            sage__cf_pop(w, mark);
            return r;
        }
        if (i < MAX_FIELDS)
            seen[i] = k;
        r = table[i].read(w, v, &table[i], dst);
        sage__cf_pop(w, mark);
        if (r != SAGE_OK)
            return r;
    }
    return SAGE_OK;
}
