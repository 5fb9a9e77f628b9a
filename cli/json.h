/*
 * json.h - JSON text to sage values and back, and the JSON listings of the
 * commands. json.c is the only file of sagesvc that includes <jansson.h>.
 */
#ifndef SAGE_CLI_JSON_H
#define SAGE_CLI_JSON_H

#include "sage/value.h"

/*
 * cli_json_to_value parses text with jansson and builds the value in arena a.
 * Errors -> SAGE_EBADARGS with "<what>: line L column C: <jansson text>".
 * null->nil, true/false->bool, integer->INT, real->DOUBLE, string->STR,
 * array->ARRAY, object->MAP; an object {"$bin": "<base64>"} (exactly that one
 * key) -> BIN.
 */
sage_err cli_json_to_value(const char *text, const char *what, sage_arena *a, sage_value *out);

/*
 * cli_json_arg is cli_json_to_value for a command's JSON operand or option
 * what ("ARGS_JSON", "--kwargs"): CLI_OK, or the exit status after the
 * message on stderr: CLI_USAGE for text that is not JSON ("WHAT is not valid
 * JSON"), cli_exit_for the error otherwise ("reading the arguments"). The
 * caller checks the value's type.
 */
int cli_json_arg(const char *what, const char *text, sage_arena *a, sage_value *out);

/*
 * cli_value_to_json returns v as JSON text, malloc'd (NULL when out of
 * memory); pretty indents it. BIN -> {"$bin": base64}; UINT > INT64_MAX -> a
 * JSON real (precision beyond 53 bits is lost); non-string map keys -> their
 * JSON text as the key.
 */
char *cli_value_to_json(const sage_value *v, int pretty);

/*
 * cli_print_value prints v as JSON (cli_value_to_json) and a newline on
 * stdout. Returns CLI_OK, or CLI_ERR after reporting "<what>: ENOMEM" on
 * stderr when out of memory.
 */
int cli_print_value(const sage_value *v, int pretty, const char *what);

/* cli_item_fn builds item i of a listing from arg (borrowed) as a value in
 * arena a. */
typedef sage_err (*cli_item_fn)(sage_arena *a, const void *arg, size_t i, sage_value *out);

/*
 * cli_print_items prints n items (built by item) as indented JSON on
 * stdout: an array, or with one set the first item alone (n is then 1).
 * When out of memory, or when item fails, it prints nothing there and
 * reports the error as "<what>" on stderr (cli_error). Returns the exit
 * status.
 */
int cli_print_items(size_t n, int one, cli_item_fn item, const void *arg, const char *what);

#endif
