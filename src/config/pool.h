/* pool.h - the bump allocator that owns everything of one sage_config. */
#ifndef SAGE_CONFIG_POOL_H
#define SAGE_CONFIG_POOL_H

#include <stddef.h>

/*
 * A pool hands out zeroed, max_align_t-aligned blocks from large chunks and
 * frees them all at once: a config's tree, strings and arrays die together,
 * so nothing in them is freed one by one and nothing can leak alone.
 */
struct cf_pool {
    struct cf_chunk *head;
};

/* sage__cf_pool_init makes p an empty pool. */
void sage__cf_pool_init(struct cf_pool *p);

/* sage__cf_pool_fini frees every block of p; p is then empty again. */
void sage__cf_pool_fini(struct cf_pool *p);

/* sage__cf_alloc returns size zeroed bytes owned by p, or NULL when memory
 * runs out. */
void *sage__cf_alloc(struct cf_pool *p, size_t size);

/* sage__cf_strndup copies n bytes of s into p with a terminating NUL, or
 * returns NULL when memory runs out. */
char *sage__cf_strndup(struct cf_pool *p, const char *s, size_t n);

#endif
