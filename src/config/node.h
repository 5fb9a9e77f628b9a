/* node.h - the YAML document as a tree of nodes that remember where they were. */
#ifndef SAGE_CONFIG_NODE_H
#define SAGE_CONFIG_NODE_H

#include <stddef.h>

#include "config/pool.h"
#include "sage/err.h"

/* The deepest nesting of mappings and sequences a file may use. */
#define CF_MAX_DEPTH 64

enum cf_kind {
    CF_SCALAR,
    CF_MAP,
    CF_SEQ,
    CF_ALIAS, /* *name: refused by the checks, kept so they can say where */
};

/*
 * A node of the document, allocated from the config's pool. The tree is
 * independent of libyaml (load.c is the only door to it) and of sage_value
 * (params.c converts). Children form a list; in a mapping each child is a
 * value and its key hangs off it, so file order is kept and a value can
 * always name its key.
 */
struct cf_node {
    enum cf_kind kind;
    int line, col;      /* 1-based position of the node's first character */
    int quoted;         /* scalar written quoted or as a block (or !!str): always a string */
    const char *str;    /* scalar text, NUL-terminated (it may hold NULs: use len) */
    size_t len;
    const char *anchor; /* &name on this node, or on an alias the name it refers to */
    const char *tag;    /* an explicit tag other than !!str, or NULL */
    struct cf_node *key;   /* in a mapping: this value's key */
    struct cf_node *first; /* children, in file order */
    struct cf_node *last;
    struct cf_node *next; /* next sibling */
    size_t n;             /* number of children */
};

/*
 * sage__cf_load parses the len bytes at text into a tree allocated from p
 * and writes its root to *rootp: NULL for a stream without a document (an
 * empty file). Only syntax is checked here; a syntax error, a second
 * document or nesting deeper than CF_MAX_DEPTH gives SAGE_ECONFIG with the
 * detail "FILE:LINE:COL: ...", running out of memory SAGE_ENOMEM.
 */
sage_err sage__cf_load(struct cf_pool *p, const char *file, const char *text, size_t len,
                       struct cf_node **rootp);

#endif
