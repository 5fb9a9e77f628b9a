/*
 * builtins.h - services compiled into sagesvc.
 *
 * When a service's plugin is a bare name and no plugin file of that name is
 * found, `sagesvc run` falls back to a built-in service of the same name,
 * so the examples run without installing anything.
 */
#ifndef SAGESVC_CLI_BUILTINS_H
#define SAGESVC_CLI_BUILTINS_H

#include <stddef.h>

#include "sage/service.h"

/* cli_builtin_find returns the built-in service called name, or NULL. The
 * table is static. Thread-safe. */
const sage_service *cli_builtin_find(const char *name);

/* cli_builtin_name returns the i-th built-in's name, or NULL past the
 * last (for help texts). Thread-safe. */
const char *cli_builtin_name(size_t i);

#endif
