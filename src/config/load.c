/*
 * load.c - YAML text to a tree of cf_node, through libyaml's event API.
 *
 * This is the only file that includes <yaml.h>. The event API is used rather
 * than the document API because it reports anchors, aliases, tags and
 * quoting as written, so the checks (walk.c) can refuse them by name and
 * place instead of seeing aliases silently expanded.
 */
#include <string.h>
#include <yaml.h>

#include "base/err_internal.h"
#include "config/node.h"

struct frame {
    struct cf_node *node;
    struct cf_node *key; /* in a mapping: a key read, its value not yet */
};

struct loader {
    struct cf_pool *pool;
    const char *file;
    struct frame stack[CF_MAX_DEPTH];
    int depth;
    struct cf_node *root;
};

static sage_err syntax_error(const yaml_parser_t *ps, const char *file, const char *text,
                             size_t len)
{
    const char *problem = ps->problem ? ps->problem : "unknown problem";
    size_t line = 1, col = 1;

    switch (ps->error) {
    case YAML_MEMORY_ERROR:
        return SAGE_SETERR(SAGE_ENOMEM, "%s: out of memory while parsing", file);
    case YAML_READER_ERROR:
        /* Bad encoding: libyaml knows the byte offset, not the line. What
         * precedes the offset was decoded fine, so count characters. */
        for (size_t i = 0; i < ps->problem_offset && i < len; i++) {
            if (text[i] == '\n')
                line++, col = 1;
            else if (((unsigned char)text[i] & 0xC0) != 0x80)
                col++;
        }
        if (ps->problem_value != -1)
            return SAGE_SETERR(SAGE_ECONFIG, "%s:%zu:%zu: encoding error: %s (0x%02x)", file,
                               line, col, problem, ps->problem_value);
        return SAGE_SETERR(SAGE_ECONFIG, "%s:%zu:%zu: encoding error: %s", file, line, col,
                           problem);
    default:
        break;
    }
    if (ps->context != NULL)
        return SAGE_SETERR(SAGE_ECONFIG, "%s:%zu:%zu: syntax error: %s (%s at %zu:%zu)", file,
                           ps->problem_mark.line + 1, ps->problem_mark.column + 1, problem,
                           ps->context, ps->context_mark.line + 1,
                           ps->context_mark.column + 1);
    return SAGE_SETERR(SAGE_ECONFIG, "%s:%zu:%zu: syntax error: %s", file,
                       ps->problem_mark.line + 1, ps->problem_mark.column + 1, problem);
}

static sage_err nomem(const struct loader *ld)
{
    return SAGE_SETERR(SAGE_ENOMEM, "%s: out of memory while loading", ld->file);
}

/* make_node allocates a node for ev and hangs it under the open container. */
static sage_err make_node(struct loader *ld, const yaml_event_t *ev, enum cf_kind kind,
                          struct cf_node **np)
{
    struct cf_node *n = sage__cf_alloc(ld->pool, sizeof *n);
    const yaml_char_t *anchor = NULL, *tag = NULL;

    if (n == NULL)
        return nomem(ld);
    n->kind = kind;
    n->line = (int)ev->start_mark.line + 1;
    n->col = (int)ev->start_mark.column + 1;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        n->len = ev->data.scalar.length;
        n->str = sage__cf_strndup(ld->pool, (const char *)ev->data.scalar.value, n->len);
        if (n->str == NULL)
            return nomem(ld);
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;
    case YAML_ALIAS_EVENT:
        anchor = ev->data.alias.anchor;
        break;
    default:
        break;
    }
    if (anchor != NULL) {
        n->anchor = sage__cf_strndup(ld->pool, (const char *)anchor, strlen((const char *)anchor));
        if (n->anchor == NULL)
            return nomem(ld);
    }
    if (tag != NULL && kind == CF_SCALAR && strcmp((const char *)tag, YAML_STR_TAG) == 0) {
        n->quoted = 1; /* !!str 42 is the string "42" */
    } else if (tag != NULL) {
        n->tag = sage__cf_strndup(ld->pool, (const char *)tag, strlen((const char *)tag));
        if (n->tag == NULL)
            return nomem(ld);
    }

    if (ld->depth == 0) {
        ld->root = n;
    } else {
        struct frame *f = &ld->stack[ld->depth - 1];

        if (f->node->kind == CF_MAP && f->key == NULL) {
            f->key = n; /* a key: its value comes next */
        } else {
            if (f->node->kind == CF_MAP) {
                n->key = f->key;
                f->key = NULL;
            }
            if (f->node->last != NULL)
                f->node->last->next = n;
            else
                f->node->first = n;
            f->node->last = n;
            f->node->n++;
        }
    }
    *np = n;
    return SAGE_OK;
}

static sage_err push(struct loader *ld, struct cf_node *n)
{
    if (ld->depth == CF_MAX_DEPTH)
        return SAGE_SETERR(SAGE_ECONFIG, "%s:%d:%d: document: nested deeper than %d levels",
                           ld->file, n->line, n->col, CF_MAX_DEPTH);
    ld->stack[ld->depth].node = n;
    ld->stack[ld->depth].key = NULL;
    ld->depth++;
    return SAGE_OK;
}

/* event handles one parser event; *done is set at the end of the stream. */
static sage_err event(struct loader *ld, const yaml_event_t *ev, int *ndocs, int *done)
{
    struct cf_node *n;
    sage_err r = SAGE_OK;

    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++*ndocs > 1)
            return SAGE_SETERR(SAGE_ECONFIG,
                               "%s:%zu:%zu: document: a second YAML document; a config file "
                               "holds one",
                               ld->file, ev->start_mark.line + 1, ev->start_mark.column + 1);
        break;
    case YAML_SCALAR_EVENT:
        r = make_node(ld, ev, CF_SCALAR, &n);
        break;
    case YAML_ALIAS_EVENT:
        r = make_node(ld, ev, CF_ALIAS, &n);
        break;
    case YAML_SEQUENCE_START_EVENT:
        r = make_node(ld, ev, CF_SEQ, &n);
        if (r == SAGE_OK)
            r = push(ld, n);
        break;
    case YAML_MAPPING_START_EVENT:
        r = make_node(ld, ev, CF_MAP, &n);
        if (r == SAGE_OK)
            r = push(ld, n);
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        ld->depth--; /* libyaml pairs starts and ends */
        break;
    case YAML_STREAM_END_EVENT:
        *done = 1;
        break;
    default:
        break;
    }
    return r;
}

sage_err sage__cf_load(struct cf_pool *p, const char *file, const char *text, size_t len,
                       struct cf_node **rootp)
{
    struct loader ld = {.pool = p, .file = file};
    yaml_parser_t ps;
    int ndocs = 0, done = 0;
    sage_err r = SAGE_OK;

    if (!yaml_parser_initialize(&ps))
        return nomem(&ld);
    yaml_parser_set_input_string(&ps, (const unsigned char *)text, len);
    while (!done && r == SAGE_OK) {
        yaml_event_t ev;

        if (!yaml_parser_parse(&ps, &ev)) {
            r = syntax_error(&ps, file, text, len);
            break;
        }
        r = event(&ld, &ev, &ndocs, &done);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&ps);
    if (r == SAGE_OK)
        *rootp = ld.root;
    return r;
}
