/* pool.c - chunks of memory freed all at once with their sage_config. */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/pool.h"

#define CHUNK_SIZE 8192

struct cf_chunk {
    struct cf_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

void sage__cf_pool_init(struct cf_pool *p)
{
    p->head = NULL;
}

void sage__cf_pool_fini(struct cf_pool *p)
{
    struct cf_chunk *c = p->head;

    while (c != NULL) {
        struct cf_chunk *next = c->next;

        free(c);
        c = next;
    }
    p->head = NULL;
}

void *sage__cf_alloc(struct cf_pool *p, size_t size)
{
    const size_t align = alignof(max_align_t);
    struct cf_chunk *c = p->head;
    void *mem;

    if (size == 0)
        size = 1;
    if (size > SIZE_MAX / 2)
        return NULL;
    size = (size + align - 1) & ~(align - 1);
    if (c == NULL || c->cap - c->used < size) {
        size_t cap = size > CHUNK_SIZE / 2 ? size : CHUNK_SIZE;

        c = calloc(1, sizeof *c + cap);
        if (c == NULL)
            return NULL;
        c->cap = cap;
        /* A big block gets a chunk of its own behind the current one, so the
         * current chunk's free space is not abandoned. */
        if (size > CHUNK_SIZE / 2 && p->head != NULL) {
            c->next = p->head->next;
            p->head->next = c;
        } else {
            c->next = p->head;
            p->head = c;
        }
    }
    mem = (char *)c->data + c->used;
    c->used += size;
    return mem;
}

char *sage__cf_strndup(struct cf_pool *p, const char *s, size_t n)
{
    char *d;

    if (n == SIZE_MAX)
        return NULL;
    d = sage__cf_alloc(p, n + 1);
    if (d != NULL && n > 0)
        memcpy(d, s, n);
    return d;
}
