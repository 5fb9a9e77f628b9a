/* natskv.c - JSON records in NATS key-value buckets. */
#include "transport/natskv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "platform/clock.h"

#define MODIFY_TRIES 64 /* compare-and-set attempts of sage__kv_modify */

void sage__nats_key(char *buf, size_t cap, const char *ns, const char *name)
{
    snprintf(buf, cap, "%s.%s", ns, name);
}

void sage__stream_name(char *buf, size_t cap, const char *ns, const char *name)
{
    snprintf(buf, cap, "SAGE_%s_%s", ns, name);
}

int64_t sage__wall_ms(void)
{
    return sage__wall_ns() / 1000000;
}

sage_err sage__kv_get_json(struct sage__nio_kv *kv, const char *key, json_t **op, uint64_t *revp)
{
    void *val = NULL;
    size_t len = 0;
    json_t *o;
    sage_err r = sage__nio_kv_get(kv, key, &val, &len, revp);

    if (r != SAGE_OK)
        return r;
    o = json_loadb(val, len, 0, NULL);
    free(val);
    if (!json_is_object(o)) {
        json_decref(o);
        return SAGE_SETERR(SAGE_EPROTO, "'%s' is not a JSON object", key);
    }
    *op = o;
    return SAGE_OK;
}

sage_err sage__kv_put_json(struct sage__nio_kv *kv, const char *key, const json_t *o, bool create,
                           uint64_t rev, uint64_t *revp)
{
    char *text = json_dumps(o, JSON_COMPACT);
    sage_err r;

    if (text == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    if (create)
        r = sage__nio_kv_create(kv, key, text, strlen(text), revp);
    else if (rev)
        r = sage__nio_kv_update(kv, key, text, strlen(text), rev, revp);
    else
        r = sage__nio_kv_put(kv, key, text, strlen(text), revp);
    free(text);
    return r;
}

const char *sage__jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    return json_is_string(v) ? json_string_value(v) : "";
}

double sage__jnum(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    return json_is_number(v) ? json_number_value(v) : 0;
}

int64_t sage__jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    return json_is_real(v) ? (int64_t)json_real_value(v) : 0;
}

/* try_write applies fn to rec (revision rev; absent: none) and writes it
 * with a compare-and-set. 1: written (*written: the record, *revp: its
 * revision, when asked for), 0: fn declined, -1: failed (*rp), 2: someone
 * wrote first */
static int try_write(struct sage__nio_kv *kv, const char *key, json_t *rec, bool absent,
                     uint64_t rev, sage__kv_modify_fn fn, void *arg, sage_err *rp,
                     json_t **written, uint64_t *revp)
{
    sage_err err = SAGE_OK, r;
    int w = fn(arg, rec, absent, &err);

    if (w <= 0) {
        *rp = err;
        return w < 0 ? -1 : 0;
    }
    r = sage__kv_put_json(kv, key, rec, absent, absent ? 0 : rev, revp);
    if (r == SAGE_OK) {
        if (written)
            *written = json_incref(rec);
        return 1;
    }
    *rp = r;
    return r == SAGE_EBUSY || r == SAGE_EEXIST ? 2 : -1;
}

sage_err sage__kv_modify(struct sage__nio_kv *kv, const char *key, sage__kv_modify_fn fn,
                         void *arg, json_t **cachep, uint64_t *revp)
{
    sage_err r = SAGE_OK;

    if (cachep && *cachep) { /* our last write, if nobody wrote since */
        json_t *rec = json_deep_copy(*cachep), *written = NULL;
        uint64_t rev = *revp;
        int w = rec ? try_write(kv, key, rec, false, rev, fn, arg, &r, &written, &rev) : 2;

        json_decref(rec);
        if (w == 1) {
            json_decref(*cachep);
            *cachep = written;
            *revp = rev;
            return SAGE_OK;
        }
        if (w <= 0)
            return w == 0 ? SAGE_OK : r;
        json_decref(*cachep); /* stale: read it */
        *cachep = NULL;
    }
    for (int attempt = 0; attempt < MODIFY_TRIES; attempt++) {
        json_t *rec = NULL, *written = NULL;
        uint64_t rev = 0;
        bool absent = false;
        int w;

        r = sage__kv_get_json(kv, key, &rec, &rev);
        if (r == SAGE_ENOENT || r == SAGE_EPROTO) { /* a garbled record is replaced */
            absent = r == SAGE_ENOENT;
            rec = json_object();
        } else if (r != SAGE_OK) {
            return r;
        }
        if (rec == NULL)
            return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        w = try_write(kv, key, rec, absent, rev, fn, arg, &r, cachep ? &written : NULL, &rev);
        json_decref(rec);
        if (w == 1 && cachep) {
            *cachep = written;
            *revp = rev;
        }
        if (w == 1 || w == 0)
            return SAGE_OK;
        if (w < 0)
            return r;
        /* someone wrote first: read again and redo the change */
    }
    return SAGE_SETERR(SAGE_EBUSY, "'%s': kept changing under %d attempts", key, MODIFY_TRIES);
}

struct keys {
    char **v;
    size_t n, cap;
    bool nomem;
};

static void collect(void *arg, const char *key)
{
    struct keys *k = arg;

    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 16;
        char **v = realloc(k->v, cap * sizeof *v);

        if (v == NULL) {
            k->nomem = true;
            return;
        }
        k->v = v;
        k->cap = cap;
    }
    if ((k->v[k->n] = strdup(key)) == NULL)
        k->nomem = true;
    else
        k->n++;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

sage_err sage__kv_each(struct sage__nio_kv *kv,
                       void (*fn)(void *arg, const char *key, json_t *o, uint64_t rev), void *arg)
{
    struct keys k = {NULL, 0, 0, false};
    sage_err r = sage__nio_kv_keys(kv, collect, &k);

    if (r == SAGE_OK && k.nomem)
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    if (r == SAGE_OK && k.n > 1)
        qsort(k.v, k.n, sizeof *k.v, by_name);
    for (size_t i = 0; r == SAGE_OK && i < k.n; i++) {
        json_t *o = NULL;
        uint64_t rev = 0;
        sage_err e = sage__kv_get_json(kv, k.v[i], &o, &rev);

        if (e == SAGE_OK) {
            fn(arg, k.v[i], o, rev);
            json_decref(o);
        } else if (e != SAGE_ENOENT && e != SAGE_EPROTO) {
            r = e;
        }
    }
    for (size_t i = 0; i < k.n; i++)
        free(k.v[i]);
    free(k.v);
    return r;
}
