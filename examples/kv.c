/*
 * kv.c - an example service: a key-value store.
 *
 * Methods (args are positional):
 *   put(key: str, value: any) -> true
 *   get(key: str [, default: any]) -> the value, or default (nil if none)
 *   delete(key: str) -> true if the key existed
 *   keys() -> the keys, sorted
 *   size() -> the number of keys
 * Configuration (optional map): {capacity: int} caps the number of keys;
 * a put beyond it fails with SAGE_EFULL.
 *
 * State is shared by every worker thread, so it sits behind a rwlock. A
 * stored value is deep-copied into one malloc'd block (value_dup), so it
 * outlives the call that brought it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "sage/service.h"

struct item {
    char *key;
    sage_value *val; /* one block: the value and everything it points to */
    struct item *next;
};

struct kv {
    pthread_rwlock_t lock;
    struct item **buckets;
    size_t nbuckets, count, capacity;
};

/* ------------------------------------------------ values in one block */

static size_t value_size(const sage_value *v)
{
    size_t n = 0;

    switch (v->type) {
    case SAGE_STR:
        return v->as.str.len + 1;
    case SAGE_BIN:
        return v->as.bin.len;
    case SAGE_ARRAY:
        n = v->as.array.len * sizeof(sage_value);
        for (size_t i = 0; i < v->as.array.len; i++)
            n += value_size(&v->as.array.items[i]);
        return n;
    case SAGE_MAP:
        n = v->as.map.len * sizeof(sage_pair);
        for (size_t i = 0; i < v->as.map.len; i++)
            n += value_size(&v->as.map.items[i].key) + value_size(&v->as.map.items[i].val);
        return n;
    default:
        return 0;
    }
}

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* place copies v's storage at *cur (advancing it) and fixes dst's pointers */
static void place(sage_value *dst, const sage_value *v, char **cur)
{
    *dst = *v;
    switch (v->type) {
    case SAGE_STR:
        memcpy(*cur, v->as.str.ptr, v->as.str.len);
        (*cur)[v->as.str.len] = '\0';
        dst->as.str.ptr = *cur;
        *cur += align8(v->as.str.len + 1);
        break;
    case SAGE_BIN:
        if (v->as.bin.len)
            memcpy(*cur, v->as.bin.ptr, v->as.bin.len);
        dst->as.bin.ptr = *cur;
        *cur += align8(v->as.bin.len);
        break;
    case SAGE_ARRAY: {
        sage_value *items = (sage_value *)*cur;

        *cur += align8(v->as.array.len * sizeof *items);
        for (size_t i = 0; i < v->as.array.len; i++)
            place(&items[i], &v->as.array.items[i], cur);
        dst->as.array.items = items;
        break;
    }
    case SAGE_MAP: {
        sage_pair *items = (sage_pair *)*cur;

        *cur += align8(v->as.map.len * sizeof *items);
        for (size_t i = 0; i < v->as.map.len; i++) {
            place(&items[i].key, &v->as.map.items[i].key, cur);
            place(&items[i].val, &v->as.map.items[i].val, cur);
        }
        dst->as.map.items = items;
        break;
    }
    default:
        break;
    }
}

/* value_dup: the worst-case padding of each piece is 7 bytes; count items */
static size_t count_pieces(const sage_value *v)
{
    size_t n = 1;

    if (v->type == SAGE_ARRAY)
        for (size_t i = 0; i < v->as.array.len; i++)
            n += count_pieces(&v->as.array.items[i]);
    if (v->type == SAGE_MAP)
        for (size_t i = 0; i < v->as.map.len; i++)
            n += count_pieces(&v->as.map.items[i].key) + count_pieces(&v->as.map.items[i].val);
    return n;
}

static sage_value *value_dup(const sage_value *v)
{
    size_t size = sizeof(sage_value) + value_size(v) + 8 * count_pieces(v);
    sage_value *copy = malloc(size);
    char *cur;

    if (copy == NULL)
        return NULL;
    cur = (char *)(copy + 1);
    place(copy, v, &cur);
    return copy;
}

/* ---------------------------------------------------------- the table */

static size_t hash(const char *s, size_t n)
{
    size_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static struct item **slot(struct kv *kv, const char *key, size_t n)
{
    struct item **pp = &kv->buckets[hash(key, n) % kv->nbuckets];

    while (*pp && !(strlen((*pp)->key) == n && memcmp((*pp)->key, key, n) == 0))
        pp = &(*pp)->next;
    return pp;
}

static void grow(struct kv *kv)
{
    size_t nb = kv->nbuckets * 2;
    struct item **b = calloc(nb, sizeof *b);

    if (b == NULL)
        return; /* stay at this size: correct, a little slower */
    for (size_t i = 0; i < kv->nbuckets; i++) {
        struct item *it = kv->buckets[i], *next;

        for (; it; it = next) {
            size_t h = hash(it->key, strlen(it->key)) % nb;

            next = it->next;
            it->next = b[h];
            b[h] = it;
        }
    }
    free(kv->buckets);
    kv->buckets = b;
    kv->nbuckets = nb;
}

/* ---------------------------------------------------------- methods */

static sage_err kv_put(void *state, sage_call *call)
{
    struct kv *kv = state;
    const char *key;
    size_t klen;
    const sage_value *val;
    struct item **pp, *it;
    sage_value *copy;

    if (sage_call_unpack(call, "[s#v]", &key, &klen, &val) != SAGE_OK)
        return SAGE_EBADARGS;
    copy = value_dup(val);
    if (copy == NULL)
        return sage_call_error(call, SAGE_ENOMEM, "no memory for the value of '%s'", key);
    pthread_rwlock_wrlock(&kv->lock);
    pp = slot(kv, key, klen);
    if (*pp) {
        free((*pp)->val);
        (*pp)->val = copy;
    } else if (kv->capacity && kv->count >= kv->capacity) {
        pthread_rwlock_unlock(&kv->lock);
        free(copy);
        return sage_call_error(call, SAGE_EFULL, "store full: capacity is %zu keys", kv->capacity);
    } else {
        it = calloc(1, sizeof *it);
        if (it == NULL || (it->key = strndup(key, klen)) == NULL) {
            pthread_rwlock_unlock(&kv->lock);
            free(it);
            free(copy);
            return sage_call_error(call, SAGE_ENOMEM, "no memory for key '%s'", key);
        }
        it->val = copy;
        *pp = it;
        if (++kv->count > kv->nbuckets)
            grow(kv);
    }
    pthread_rwlock_unlock(&kv->lock);
    return sage_call_resultf(call, "b", 1);
}

static sage_err kv_get(void *state, sage_call *call)
{
    struct kv *kv = state;
    const sage_value *args = sage_call_args(call);
    const sage_value *dflt = NULL;
    const char *key;
    size_t klen;
    struct item *it;
    sage_value out;
    sage_err r;

    if (sage_call_unpack(call, "[s#*]", &key, &klen) != SAGE_OK)
        return SAGE_EBADARGS;
    if (args->as.array.len > 2)
        return sage_call_error(call, SAGE_EBADARGS, "get takes a key and an optional default");
    if (args->as.array.len == 2)
        dflt = &args->as.array.items[1];
    pthread_rwlock_rdlock(&kv->lock);
    it = *slot(kv, key, klen);
    /* copy out under the lock: a put may replace the value right after */
    if (it)
        r = sage_value_copy(sage_call_arena(call), &out, it->val);
    else if (dflt)
        r = sage_value_copy(sage_call_arena(call), &out, dflt);
    else
        out = sage_nil(), r = SAGE_OK;
    pthread_rwlock_unlock(&kv->lock);
    if (r != SAGE_OK)
        return r;
    return sage_call_result(call, &out);
}

static sage_err kv_delete(void *state, sage_call *call)
{
    struct kv *kv = state;
    const char *key;
    size_t klen;
    struct item **pp, *it;
    int existed = 0;

    if (sage_call_unpack(call, "[s#]", &key, &klen) != SAGE_OK)
        return SAGE_EBADARGS;
    pthread_rwlock_wrlock(&kv->lock);
    pp = slot(kv, key, klen);
    if ((it = *pp) != NULL) {
        *pp = it->next;
        kv->count--;
        existed = 1;
    }
    pthread_rwlock_unlock(&kv->lock);
    if (it) {
        free(it->val);
        free(it->key);
        free(it);
    }
    return sage_call_resultf(call, "b", existed);
}

static int cmp_str(const void *a, const void *b)
{
    const sage_value *x = a, *y = b;

    return strcmp(x->as.str.ptr, y->as.str.ptr);
}

static sage_err kv_keys(void *state, sage_call *call)
{
    struct kv *kv = state;
    sage_arena *a = sage_call_arena(call);
    sage_value *keys, out;
    size_t n = 0;

    if (sage_call_unpack(call, "[]") != SAGE_OK)
        return SAGE_EBADARGS;
    pthread_rwlock_rdlock(&kv->lock);
    keys = sage_arena_alloc(a, (kv->count ? kv->count : 1) * sizeof *keys);
    for (size_t i = 0; keys && i < kv->nbuckets; i++)
        for (struct item *it = kv->buckets[i]; it; it = it->next) {
            size_t len = strlen(it->key);
            char *k = sage_arena_alloc(a, len + 1);

            if (k == NULL)
                break;
            memcpy(k, it->key, len + 1);
            keys[n++] = sage_strn(k, len);
        }
    pthread_rwlock_unlock(&kv->lock);
    if (keys == NULL)
        return SAGE_ENOMEM;
    qsort(keys, n, sizeof *keys, cmp_str);
    out = sage_array(keys, n);
    return sage_call_result(call, &out);
}

static sage_err kv_size(void *state, sage_call *call)
{
    struct kv *kv = state;
    size_t n;

    pthread_rwlock_rdlock(&kv->lock);
    n = kv->count;
    pthread_rwlock_unlock(&kv->lock);
    return sage_call_resultf(call, "I", (int64_t)n);
}

/* ---------------------------------------------------------- factory */

static sage_err kv_create(void **statep, const sage_value *config)
{
    struct kv *kv = calloc(1, sizeof *kv);
    int64_t cap = 0;

    if (kv == NULL)
        return SAGE_ENOMEM;
    if (config && config->type == SAGE_MAP && sage_unpack(config, "{s:?I}", "capacity", &cap) != SAGE_OK) {
        free(kv);
        return SAGE_ECONFIG;
    }
    if (cap < 0) {
        free(kv);
        return SAGE_ECONFIG;
    }
    kv->capacity = (size_t)cap;
    kv->nbuckets = 64;
    kv->buckets = calloc(kv->nbuckets, sizeof *kv->buckets);
    if (kv->buckets == NULL) {
        free(kv);
        return SAGE_ENOMEM;
    }
    pthread_rwlock_init(&kv->lock, NULL);
    *statep = kv;
    return SAGE_OK;
}

static void kv_destroy(void *state)
{
    struct kv *kv = state;

    for (size_t i = 0; i < kv->nbuckets; i++) {
        struct item *it = kv->buckets[i], *next;

        for (; it; it = next) {
            next = it->next;
            free(it->val);
            free(it->key);
            free(it);
        }
    }
    free(kv->buckets);
    pthread_rwlock_destroy(&kv->lock);
    free(kv);
}

static const sage_method kv_methods[] = {
    {"put", kv_put},   {"get", kv_get},   {"delete", kv_delete},
    {"keys", kv_keys}, {"size", kv_size}, {NULL, NULL},
};

const sage_service sage_example_kv = {
    .abi = SAGE_SERVICE_ABI,
    .name = "kv",
    .create = kv_create,
    .destroy = kv_destroy,
    .methods = kv_methods,
};
