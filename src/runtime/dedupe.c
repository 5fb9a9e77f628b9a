/*
 * dedupe.c - the last N calls of a task, by (caller, request id).
 *
 * A ring of N entries (oldest evicted first) and an open-addressing index
 * over it, under one mutex: a lookup per call, only for services that ask.
 */
#include "runtime/dedupe.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"

struct entry {
    char *caller; /* NULL: free */
    uint64_t id;
    bool done;
    void *bytes;
    size_t len;
};

struct sage__dedupe {
    pthread_mutex_t lock;
    struct entry *ring;
    uint32_t cap, next;
    uint32_t *index; /* ring position + 1, 0 = empty; size icap (power of two) */
    uint32_t icap;
};

static uint64_t hash(const char *caller, uint64_t id)
{
    uint64_t h = 1469598103934665603ull ^ id * 0x9e3779b97f4a7c15ull;

    for (; *caller; caller++)
        h = (h ^ (unsigned char)*caller) * 1099511628211ull;
    return h;
}

sage_err sage__dedupe_new(struct sage__dedupe **dp, uint32_t cap)
{
    struct sage__dedupe *d = calloc(1, sizeof *d);

    if (d == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    d->cap = cap;
    d->icap = 16;
    while (d->icap < 2 * cap)
        d->icap <<= 1;
    d->ring = calloc(cap, sizeof *d->ring);
    d->index = calloc(d->icap, sizeof *d->index);
    if (d->ring == NULL || d->index == NULL) {
        free(d->ring);
        free(d->index);
        free(d);
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&d->lock, NULL);
    *dp = d;
    return SAGE_OK;
}

void sage__dedupe_free(struct sage__dedupe *d)
{
    if (d == NULL)
        return;
    for (uint32_t i = 0; i < d->cap; i++) {
        free(d->ring[i].caller);
        free(d->ring[i].bytes);
    }
    pthread_mutex_destroy(&d->lock);
    free(d->ring);
    free(d->index);
    free(d);
}

/* find returns the index slot of (caller, id), or the empty slot where it
 * would go; lock held */
static uint32_t *find(struct sage__dedupe *d, const char *caller, uint64_t id)
{
    uint32_t mask = d->icap - 1, i = (uint32_t)hash(caller, id) & mask;

    for (;; i = (i + 1) & mask) {
        uint32_t at = d->index[i];

        if (at == 0)
            return &d->index[i];
        if (d->ring[at - 1].id == id && strcmp(d->ring[at - 1].caller, caller) == 0)
            return &d->index[i];
    }
}

/* unindex removes ring entry pos from the index (backward-shift delete) */
static void unindex(struct sage__dedupe *d, uint32_t pos)
{
    struct entry *e = &d->ring[pos];
    uint32_t mask = d->icap - 1, i = (uint32_t)hash(e->caller, e->id) & mask;

    while (d->index[i] != pos + 1)
        i = (i + 1) & mask;
    for (;;) {
        uint32_t j = i, home;

        d->index[i] = 0;
        for (;;) {
            j = (j + 1) & mask;
            if (d->index[j] == 0)
                return;
            home = (uint32_t)hash(d->ring[d->index[j] - 1].caller, d->ring[d->index[j] - 1].id) &
                   mask;
            /* move j back to i unless its home lies cyclically in (i, j] */
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
                break;
        }
        d->index[i] = d->index[j];
        i = j;
    }
}

enum sage__tp_seen sage__dedupe_begin(struct sage__dedupe *d, const char *caller, uint64_t id,
                                           void **bytesp, size_t *lenp)
{
    enum sage__tp_seen st = SAGE__TP_SEEN_NEW;
    uint32_t *slot, pos;
    struct entry *e;

    pthread_mutex_lock(&d->lock);
    slot = find(d, caller, id);
    if (*slot) {
        e = &d->ring[*slot - 1];
        st = SAGE__TP_SEEN_RUNNING;
        if (e->done) {
            *bytesp = malloc(e->len ? e->len : 1);
            if (*bytesp) {
                memcpy(*bytesp, e->bytes, e->len);
                *lenp = e->len;
                st = SAGE__TP_SEEN_DONE;
            }
        }
        pthread_mutex_unlock(&d->lock);
        return st;
    }
    pos = d->next;
    d->next = (d->next + 1) % d->cap;
    e = &d->ring[pos];
    if (e->caller) { /* evict the oldest */
        unindex(d, pos);
        free(e->caller);
        free(e->bytes);
    }
    memset(e, 0, sizeof *e);
    e->caller = strdup(caller);
    e->id = id;
    if (e->caller == NULL) {
        pthread_mutex_unlock(&d->lock);
        return SAGE__TP_SEEN_NEW; /* no memory: run it unremembered */
    }
    *find(d, caller, id) = pos + 1;
    pthread_mutex_unlock(&d->lock);
    return st;
}

void sage__dedupe_finish(struct sage__dedupe *d, const char *caller, uint64_t id,
                         const void *bytes, size_t len)
{
    uint32_t *slot;

    pthread_mutex_lock(&d->lock);
    slot = find(d, caller, id);
    if (*slot) {
        struct entry *e = &d->ring[*slot - 1];

        if (bytes && (e->bytes = malloc(len ? len : 1)) != NULL) {
            memcpy(e->bytes, bytes, len);
            e->len = len;
            e->done = true;
        } else {
            /* nothing to remember: forget it, so a repeat runs again */
            unindex(d, *slot - 1);
            free(e->caller);
            e->caller = NULL;
        }
    }
    pthread_mutex_unlock(&d->lock);
}
