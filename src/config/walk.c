/* walk.c - paths, error messages and the checks that apply to every node. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "config/walk.h"

void sage__cf_walk_init(struct cf_walk *w, const char *file, struct cf_pool *pool)
{
    w->file = file;
    w->pool = pool;
    w->path[0] = '\0';
    w->plen = 0;
}

static size_t append(struct cf_walk *w, const char *s, size_t n)
{
    size_t mark = w->plen;

    if (w->plen > CF_PATH_MAX)
        return mark; /* already cut short */
    if (w->plen + n > CF_PATH_MAX) {
        memcpy(w->path + w->plen, "...", 4);
        w->plen += 3;
        return mark;
    }
    memcpy(w->path + w->plen, s, n);
    w->plen += n;
    w->path[w->plen] = '\0';
    return mark;
}

size_t sage__cf_push_key(struct cf_walk *w, const char *key)
{
    size_t mark = w->plen;

    if (w->plen > 0)
        append(w, ".", 1);
    append(w, key, strlen(key));
    return mark;
}

size_t sage__cf_push_index(struct cf_walk *w, size_t i)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "[%zu]", i);

    return append(w, buf, (size_t)n);
}

void sage__cf_pop(struct cf_walk *w, size_t mark)
{
    w->plen = mark;
    w->path[mark] = '\0';
}

const char *sage__cf_where(const struct cf_walk *w)
{
    return w->plen > 0 ? w->path : "document";
}

sage_err sage__cf_error(const struct cf_walk *w, const struct cf_node *at, const char *fmt, ...)
{
    char reason[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return SAGE_SETERR(SAGE_ECONFIG, "%s:%d:%d: %s: %s", w->file, at->line, at->col,
                       sage__cf_where(w), reason);
}

sage_err sage__cf_nomem(const struct cf_walk *w)
{
    return SAGE_SETERR(SAGE_ENOMEM, "%s: out of memory while reading the config", w->file);
}

#define EXCERPT_MAX 40

/* excerpt copies at most EXCERPT_MAX bytes of s into buf (EXCERPT_MAX + 4
 * bytes), cut on a character boundary and marked with "...", control
 * characters shown as '?'. */
static void excerpt(const char *s, size_t len, char *buf)
{
    size_t n = len;

    if (n > EXCERPT_MAX) {
        n = EXCERPT_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    strcpy(buf + n, n < len ? "..." : "");
}

const char *sage__cf_describe(const struct cf_node *n, char *buf, size_t size)
{
    char text[EXCERPT_MAX + 4];

    switch (n->kind) {
    case CF_MAP:
        snprintf(buf, size, "a mapping");
        break;
    case CF_SEQ:
        snprintf(buf, size, "a sequence");
        break;
    case CF_ALIAS:
        snprintf(buf, size, "an alias");
        break;
    case CF_SCALAR:
        excerpt(n->str, n->len, text);
        if (n->quoted)
            snprintf(buf, size, "a quoted string \"%s\"", text);
        else if (n->len == 0)
            snprintf(buf, size, "an empty value");
        else
            snprintf(buf, size, "'%s'", text);
        break;
    }
    return buf;
}

const struct cf_node *sage__cf_get(const struct cf_node *map, const char *key)
{
    if (map == NULL || map->kind != CF_MAP)
        return NULL;
    for (const struct cf_node *v = map->first; v != NULL; v = v->next)
        if (v->key->kind == CF_SCALAR && strcmp(v->key->str, key) == 0 &&
            strlen(key) == v->key->len)
            return v;
    return NULL;
}

/* ---------------------------------------------------------------- checks */

static sage_err check_self(const struct cf_walk *w, const struct cf_node *n)
{
    static const char yaml_tag[] = "tag:yaml.org,2002:";
    char shown[80];

    if (n->kind == CF_ALIAS)
        return sage__cf_error(w, n, "aliases (*%s) are not supported; write the value out",
                              n->anchor);
    if (n->anchor != NULL)
        return sage__cf_error(w, n, "anchors (&%s) are not supported; write the values out",
                              n->anchor);
    if (n->tag != NULL) {
        if (strncmp(n->tag, yaml_tag, sizeof yaml_tag - 1) == 0)
            snprintf(shown, sizeof shown, "!!%s", n->tag + sizeof yaml_tag - 1);
        else
            snprintf(shown, sizeof shown, "%s", n->tag);
        return sage__cf_error(w, n, "explicit tags (%s) are not supported", shown);
    }
    return SAGE_OK;
}

struct keyref {
    const struct cf_node *key;
    size_t idx;
};

static int keyref_cmp(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    int c;

    if (x->key->len != y->key->len)
        return x->key->len < y->key->len ? -1 : 1;
    c = memcmp(x->key->str, y->key->str, x->key->len);
    if (c != 0)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* check_duplicates finds the first key (in file order) that repeats an
 * earlier one, by sorting: a mapping may be large free-form data. */
static sage_err check_duplicates(struct cf_walk *w, const struct cf_node *map)
{
    struct keyref *refs, *dup = NULL, *first = NULL;
    size_t i = 0, group = 0;
    sage_err r = SAGE_OK;

    if (map->n < 2)
        return SAGE_OK;
    refs = malloc(map->n * sizeof *refs);
    if (refs == NULL)
        return sage__cf_nomem(w);
    for (const struct cf_node *v = map->first; v != NULL; v = v->next, i++) {
        refs[i].key = v->key;
        refs[i].idx = i;
    }
    qsort(refs, map->n, sizeof *refs, keyref_cmp);
    for (i = 1; i < map->n; i++) {
        const struct cf_node *a = refs[group].key, *b = refs[i].key;

        if (a->len != b->len || memcmp(a->str, b->str, a->len) != 0) {
            group = i;
        } else if (dup == NULL || refs[i].idx < dup->idx) {
            dup = &refs[i];
            first = &refs[group];
        }
    }
    if (dup != NULL) {
        size_t mark = sage__cf_push_key(w, dup->key->str);

        r = sage__cf_error(w, dup->key, "duplicate key '%s' (first at %d:%d)", dup->key->str,
                           first->key->line, first->key->col);
        sage__cf_pop(w, mark);
    }
    free(refs);
    return r;
}

sage_err sage__cf_check(struct cf_walk *w, const struct cf_node *n)
{
    sage_err r = check_self(w, n);
    size_t i = 0;

    if (r != SAGE_OK || (n->kind != CF_MAP && n->kind != CF_SEQ))
        return r;
    for (const struct cf_node *v = n->first; v != NULL; v = v->next) {
        if (n->kind == CF_MAP && v->key->kind != CF_SCALAR) {
            r = v->key->kind == CF_ALIAS ? check_self(w, v->key)
                                         : sage__cf_error(w, v->key, "a key must be a scalar");
            if (r != SAGE_OK)
                return r;
        }
    }
    if (n->kind == CF_MAP && (r = check_duplicates(w, n)) != SAGE_OK)
        return r;
    for (const struct cf_node *v = n->first; v != NULL; v = v->next, i++) {
        size_t mark = n->kind == CF_MAP ? sage__cf_push_key(w, v->key->str)
                                        : sage__cf_push_index(w, i);

        if (n->kind == CF_MAP)
            r = check_self(w, v->key);
        if (r == SAGE_OK)
            r = sage__cf_check(w, v);
        sage__cf_pop(w, mark);
        if (r != SAGE_OK)
            return r;
    }
    return SAGE_OK;
}

/* ----------------------------------------------------------- suggestions */

/* distance is the Levenshtein distance of a and b ignoring case, both at
 * most 64 bytes. */
static size_t distance(const char *a, size_t na, const char *b, size_t nb)
{
    size_t row[65];

    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = diag + cost;

            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

const char *sage__cf_suggest(const char *s, const char *const *words, size_t nwords)
{
    const char *best = NULL;
    size_t best_d = 3, ns = strlen(s);

    if (ns > 64)
        return NULL;
    for (size_t i = 0; i < nwords; i++) {
        size_t nw, d;

        if (words[i] == NULL || (nw = strlen(words[i])) > 64)
            continue;
        d = distance(s, ns, words[i], nw);
        /* A word shorter than the distance shares nothing worth naming. */
        if (d < best_d && d < nw) {
            best = words[i];
            best_d = d;
        }
    }
    return best;
}
