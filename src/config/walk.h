/* walk.h - walking the tree with a path, for errors that say where and what. */
#ifndef SAGE_CONFIG_WALK_H
#define SAGE_CONFIG_WALK_H

#include <stddef.h>

#include "config/node.h"
#include "config/pool.h"
#include "sage/err.h"

#define CF_PATH_MAX 200

/*
 * A walk through the tree: the file name for messages, the pool the results
 * go to, and the dotted path of the node being looked at ("service.local",
 * "services[0].cluster.resources"); the empty path is the document.
 */
struct cf_walk {
    const char *file;
    struct cf_pool *pool;
    char path[CF_PATH_MAX + 4];
    size_t plen;
};

/* sage__cf_walk_init starts a walk at the document of file. */
void sage__cf_walk_init(struct cf_walk *w, const char *file, struct cf_pool *pool);

/* sage__cf_push_key appends ".key" to the path and returns the mark to pop
 * back to; sage__cf_push_index appends "[i]". */
size_t sage__cf_push_key(struct cf_walk *w, const char *key);
size_t sage__cf_push_index(struct cf_walk *w, size_t i);

/* sage__cf_pop returns the path to what it was at mark. */
void sage__cf_pop(struct cf_walk *w, size_t mark);

/* sage__cf_where returns the path for messages: "document" when empty. */
const char *sage__cf_where(const struct cf_walk *w);

/*
 * sage__cf_error records SAGE_ECONFIG with the detail
 * "FILE:LINE:COL: PATH: reason", the position being at's, and returns
 * SAGE_ECONFIG.
 */
sage_err sage__cf_error(const struct cf_walk *w, const struct cf_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* sage__cf_nomem records SAGE_ENOMEM for the file being read. */
sage_err sage__cf_nomem(const struct cf_walk *w);

/*
 * sage__cf_describe writes how a value reads in a message into buf: 'ten'
 * for a plain scalar (shortened when long), a quoted string "4", an empty
 * value, a mapping, a sequence, an alias. Returns buf.
 */
const char *sage__cf_describe(const struct cf_node *n, char *buf, size_t size);

/*
 * sage__cf_check refuses what no part of a config may hold, anywhere under
 * n: anchors and aliases, explicit tags, keys that are not scalars, and a key
 * twice in one mapping. SAGE_ECONFIG (detail set) or SAGE_OK;
 * SAGE_ENOMEM if memory runs out.
 */
sage_err sage__cf_check(struct cf_walk *w, const struct cf_node *n);

/* sage__cf_get returns the value of key in mapping map, or NULL (also when
 * map is NULL or not a mapping). */
const struct cf_node *sage__cf_get(const struct cf_node *map, const char *key);

/*
 * sage__cf_suggest returns the one of the nwords words (NULL entries are
 * skipped) closest to s, compared without regard to case, when it is at most
 * two edits away and closer than its own length; the first such on a tie;
 * NULL otherwise.
 */
const char *sage__cf_suggest(const char *s, const char *const *words, size_t nwords);

#endif
