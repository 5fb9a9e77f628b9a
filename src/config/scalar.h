/* scalar.h - what a YAML scalar means: null, bool, integer, float or string. */
#ifndef SAGE_CONFIG_SCALAR_H
#define SAGE_CONFIG_SCALAR_H

#include <stdint.h>

#include "config/node.h"

enum cf_type {
    CF_NULL,
    CF_BOOL,
    CF_INT,
    CF_FLOAT,
    CF_STR,
    CF_BIG, /* written as a number, but outside int64 or double */
};

struct cf_scalar {
    enum cf_type type;
    int b;     /* CF_BOOL */
    int64_t i; /* CF_INT */
    double d;  /* CF_FLOAT */
};

/*
 * sage__cf_resolve works out the type and value of scalar node n the way
 * YAML 1.1 (and PyYAML, which the seed's users know) does for plain scalars:
 * "", ~, null: null; true/false, yes/no, on/off in three casings: bool;
 * [-+] decimal, 0x hex, 0o or leading-0 octal, 0b binary, '_' between
 * digits: int; decimals with '.' or an exponent, .inf, .nan: float; anything
 * else a string. Quoted scalars are always strings. Sexagesimal (1:30) is a
 * string here.
 */
void sage__cf_resolve(const struct cf_node *n, struct cf_scalar *out);

/* sage__cf_is_null tells whether v is a null scalar (empty, ~ or null): what
 * sage__cf_resolve would call CF_NULL, without resolving the rest. */
int sage__cf_is_null(const struct cf_node *v);

/*
 * sage__cf_parse_size reads a byte count with a unit, "512MiB" or "1.5 GB"
 * (B, KB, MB, GB, TB powers of 1000; KiB, MiB, GiB, TiB powers of 1024),
 * into *bytes, rounding down to a whole byte. Returns 0, or -1 when s is not
 * such a count or it exceeds UINT64_MAX.
 */
int sage__cf_parse_size(const char *s, uint64_t *bytes);

#endif
