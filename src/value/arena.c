/*
 * arena.c - sage_arena, the bump allocator behind decoded and packed values.
 *
 * Memory comes in chunks linked from the current one (head), which serves
 * small requests; a request above a quarter chunk gets a chunk of its own,
 * linked behind head so head keeps serving. Reset keeps a single chunk so a
 * loop of decode-handle-reset reaches a steady state without malloc: the
 * largest chunk held (not above KEEP_MAX), or, when the round just ended
 * needed several chunks, one new chunk sized for the whole round.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "value/arena.h"

#define DEFAULT_CHUNK 4096u
#define MIN_CHUNK 256u
#define KEEP_MAX ((size_t)1 << 20)
#define ALIGN 8u

struct chunk {
    struct chunk *next;
    size_t size; /* usable bytes in data */
    alignas(ALIGN) unsigned char data[];
};

struct sage_arena {
    struct chunk *head; /* never NULL: the chunk small requests bump from */
    size_t used;        /* bytes of head in use */
    size_t chunk;       /* size of a regular chunk */
    size_t round;       /* bytes handed out since the last reset */
    size_t held;        /* bytes malloc'ed for chunks, headers included */
    uint64_t mallocs;   /* chunks ever malloc'ed */
};

static struct chunk *chunk_new(sage_arena *a, size_t size)
{
    struct chunk *c;

    if (size > SIZE_MAX - sizeof *c)
        return NULL;
    c = malloc(sizeof *c + size);
    if (c == NULL)
        return NULL;
    c->next = NULL;
    c->size = size;
    a->held += sizeof *c + size;
    a->mallocs++;
    return c;
}

static void chunk_free(sage_arena *a, struct chunk *c)
{
    a->held -= sizeof *c + c->size;
    free(c);
}

sage_err sage_arena_new(sage_arena **ap, size_t chunk)
{
    sage_arena *a;

    if (ap == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "arena: NULL result pointer");
    if (chunk == 0)
        chunk = DEFAULT_CHUNK;
    if (chunk < MIN_CHUNK)
        chunk = MIN_CHUNK;
    chunk = (chunk + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    a = calloc(1, sizeof *a);
    if (a == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "arena: out of memory");
    a->chunk = chunk;
    a->head = chunk_new(a, chunk);
    if (a->head == NULL) {
        free(a);
        return SAGE_SETERR(SAGE_ENOMEM, "arena: cannot allocate a %zu-byte chunk", chunk);
    }
    *ap = a;
    return SAGE_OK;
}

void sage_arena_free(sage_arena *a)
{
    struct chunk *c, *next;

    if (a == NULL)
        return;
    for (c = a->head; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

static size_t round_pow2(size_t n)
{
    size_t p = MIN_CHUNK;

    while (p < n)
        p <<= 1;
    return p;
}

void sage_arena_reset(sage_arena *a)
{
    struct chunk *keep, *c, *next;

    if (a == NULL)
        return;
    if (a->head->next == NULL) { /* the common case: one chunk was enough */
        a->used = 0;
        a->round = 0;
        return;
    }
    keep = a->head;
    for (c = a->head; c != NULL; c = c->next)
        if (c->size <= KEEP_MAX && c->size > keep->size)
            keep = c;
    /* The round spilled over: one chunk that holds it all makes the next
     * identical round malloc-free. If that malloc fails, keep the largest. */
    if (a->round > keep->size && a->round <= KEEP_MAX) {
        struct chunk *fit = chunk_new(a, round_pow2(a->round));

        if (fit != NULL) {
            fit->next = a->head;
            a->head = fit;
            keep = fit;
        }
    }
    for (c = a->head; c != NULL; c = next) {
        next = c->next;
        if (c != keep)
            chunk_free(a, c);
    }
    keep->next = NULL;
    a->head = keep;
    a->used = 0;
    a->round = 0;
}

void *sage_arena_alloc(sage_arena *a, size_t n)
{
    struct chunk *c;
    size_t need;

    if (n > SIZE_MAX - ALIGN)
        return NULL;
    need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (need <= a->head->size - a->used) {
        void *p = a->head->data + a->used;

        a->used += need;
        a->round += need;
        return p;
    }
    if (need > a->chunk / 4) { /* big: a chunk of its own, behind head */
        c = chunk_new(a, need);
        if (c == NULL)
            return NULL;
        c->next = a->head->next;
        a->head->next = c;
        a->round += need;
        return c->data;
    }
    c = chunk_new(a, a->chunk);
    if (c == NULL)
        return NULL;
    c->next = a->head;
    a->head = c;
    a->used = need;
    a->round += need;
    return c->data;
}

const char *sage__arena_strndup(sage_arena *a, const char *s, size_t n)
{
    char *p;

    if (n == 0)
        return "";
    if (n == SIZE_MAX)
        return NULL;
    p = sage_arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void sage__arena_stats(const sage_arena *a, size_t *heldp, uint64_t *mallocsp)
{
    if (heldp)
        *heldp = a->held;
    if (mallocsp)
        *mallocsp = a->mallocs;
}
