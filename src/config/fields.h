/* fields.h - mapping sections onto C structs through tables of typed fields. */
#ifndef SAGE_CONFIG_FIELDS_H
#define SAGE_CONFIG_FIELDS_H

#include <stddef.h>

#include "config/walk.h"

struct cf_field;

/* A reader checks the value v of field f and stores it into the struct at
 * dst (at dst + f->off); on a bad value it returns SAGE_ECONFIG with the
 * detail set through sage__cf_error. w's path names v. */
typedef sage_err (*cf_read_fn)(struct cf_walk *w, const struct cf_node *v,
                               const struct cf_field *f, void *dst);

/* One key of a section. Tables end with an entry whose key is NULL. */
struct cf_field {
    const char *key;
    const char *alias; /* a second spelling of the key (both given = error), or NULL */
    cf_read_fn read;
    size_t off;                  /* where the value goes in the destination */
    double lo, hi;               /* numbers: accepted range, inclusive */
    int lo_open;                 /* numbers: lo itself is refused ("> lo") */
    const char *const *words;    /* words: the accepted ones, NULL-terminated */
    const struct cf_field *sub;  /* sections: their own table */
};

/*
 * sage__cf_walk_map reads every key of mapping map (NULL or a null scalar
 * counts as an empty mapping) through table into dst. Unknown keys are
 * refused, naming the closest known key when one is within two edits; a key
 * given under both its names is refused. Anything else is refused with
 * "expected a mapping".
 */
sage_err sage__cf_walk_map(struct cf_walk *w, const struct cf_node *map,
                           const struct cf_field *table, void *dst);

/* sage__cf_at returns where field f's value goes in the struct at dst. */
static inline void *sage__cf_at(void *dst, const struct cf_field *f)
{
    return (char *)dst + f->off;
}

/* Readers, by what they store at dst + f->off:
 * u32: uint32_t, an integer in lo..hi (a float without fraction counts);
 * i32: int, likewise;
 * num: double, a number in lo..hi (or > lo with lo_open);
 * ms: int64_t milliseconds, from a number of seconds in lo..hi;
 * str: const char * copied into the pool, any non-null scalar as written;
 * name: const char *, a name of [A-Za-z0-9_-]{1,SAGE_NAME_MAX};
 * word: int, the index of the value in f->words;
 * flag: bool, whether the value is not f->words[0];
 * choice: const char *, the matching entry of f->words itself (static);
 * section: the sub-table f->sub walked into dst + f->off. */
sage_err sage__cf_read_u32(struct cf_walk *w, const struct cf_node *v,
                           const struct cf_field *f, void *dst);
sage_err sage__cf_read_i32(struct cf_walk *w, const struct cf_node *v,
                           const struct cf_field *f, void *dst);
sage_err sage__cf_read_num(struct cf_walk *w, const struct cf_node *v,
                           const struct cf_field *f, void *dst);
sage_err sage__cf_read_ms(struct cf_walk *w, const struct cf_node *v,
                          const struct cf_field *f, void *dst);
sage_err sage__cf_read_flag(struct cf_walk *w, const struct cf_node *v,
                            const struct cf_field *f, void *dst);
sage_err sage__cf_read_str(struct cf_walk *w, const struct cf_node *v,
                           const struct cf_field *f, void *dst);
sage_err sage__cf_read_name(struct cf_walk *w, const struct cf_node *v,
                            const struct cf_field *f, void *dst);
sage_err sage__cf_read_word(struct cf_walk *w, const struct cf_node *v,
                            const struct cf_field *f, void *dst);
sage_err sage__cf_read_choice(struct cf_walk *w, const struct cf_node *v,
                              const struct cf_field *f, void *dst);
sage_err sage__cf_read_section(struct cf_walk *w, const struct cf_node *v,
                               const struct cf_field *f, void *dst);

/* sage__cf_string checks that v is a non-null scalar without NUL bytes and
 * copies its text into the pool; what names what was expected in the
 * message ("a string", "a server URL"). */
sage_err sage__cf_string(struct cf_walk *w, const struct cf_node *v, const char *what,
                         const char **out);

/* sage__cf_name is sage__cf_string for names of [A-Za-z0-9_-]. */
sage_err sage__cf_name(struct cf_walk *w, const struct cf_node *v, const char **out);

#endif
