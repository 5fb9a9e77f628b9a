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
 * stored value is deep-copied (sage_value_copy) into an arena of its own,
 * so it outlives the call that brought it and goes with one free.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "sage/service.h"

struct item {
    char *key;
    sage_arena *arena; /* holds val and everything it points to */
    sage_value val;
    struct item *next;
};

struct kv {
    pthread_rwlock_t lock;
    struct item **buckets;
    size_t nbuckets, count, capacity;
};

/* KEEP_CHUNK: the arena chunk of a stored value, the smallest an arena
 * takes: a small value fits in it whole, a larger piece gets its own. */
#define KEEP_CHUNK 256

/* keep copies v into a new arena of its own, for a value to keep. */
static sage_err keep(const sage_value *v, sage_arena **ap, sage_value *out)
{
    sage_arena *a;
    sage_err r;

    if ((r = sage_arena_new(&a, KEEP_CHUNK)) != SAGE_OK)
        return r;
    if ((r = sage_value_copy(out, a, v)) != SAGE_OK) {
        sage_arena_free(a);
        return r;
    }
    *ap = a;
    return SAGE_OK;
}

static void item_free(struct item *it)
{
    sage_arena_free(it->arena);
    free(it->key);
    free(it);
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
    sage_arena *arena, *old = NULL;
    sage_value copy;

    if (sage_call_unpack(call, "[s#v]", &key, &klen, &val) != SAGE_OK)
        return SAGE_EBADARGS;
    if (keep(val, &arena, &copy) != SAGE_OK)
        return sage_call_error(call, SAGE_ENOMEM, "no memory for the value of '%s'", key);
    pthread_rwlock_wrlock(&kv->lock);
    pp = slot(kv, key, klen);
    if (*pp) {
        old = (*pp)->arena;
        (*pp)->arena = arena;
        (*pp)->val = copy;
    } else if (kv->capacity && kv->count >= kv->capacity) {
        pthread_rwlock_unlock(&kv->lock);
        sage_arena_free(arena);
        return sage_call_error(call, SAGE_EFULL, "store full: capacity is %zu keys", kv->capacity);
    } else {
        it = calloc(1, sizeof *it);
        if (it == NULL || (it->key = strndup(key, klen)) == NULL) {
            pthread_rwlock_unlock(&kv->lock);
            free(it);
            sage_arena_free(arena);
            return sage_call_error(call, SAGE_ENOMEM, "no memory for key '%s'", key);
        }
        it->arena = arena;
        it->val = copy;
        *pp = it;
        if (++kv->count > kv->nbuckets)
            grow(kv);
    }
    pthread_rwlock_unlock(&kv->lock);
    sage_arena_free(old); /* the replaced value, freed outside the lock */
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
        r = sage_value_copy(&out, sage_call_arena(call), &it->val);
    else if (dflt)
        r = sage_value_copy(&out, sage_call_arena(call), dflt);
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
    if (it)
        item_free(it);
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
            item_free(it);
        }
    }
    free(kv->buckets);
    pthread_rwlock_destroy(&kv->lock);
    free(kv);
}

static const sage_method kv_methods[] = {
    {"put", kv_put, SAGE_METHOD_IDEMPOTENT},
    {"get", kv_get, SAGE_METHOD_IDEMPOTENT},
    {"delete", kv_delete, SAGE_METHOD_IDEMPOTENT},
    {"keys", kv_keys, SAGE_METHOD_IDEMPOTENT},
    {"size", kv_size, SAGE_METHOD_IDEMPOTENT},
    {0},
};

const sage_service sage_example_kv = {
    .abi = SAGE_SERVICE_ABI,
    .name = "kv",
    .create = kv_create,
    .destroy = kv_destroy,
    .methods = kv_methods,
};
