/*
 * builtins.c - the services compiled into sagesvc: the examples kv and
 * text (examples/kv.c, examples/text.c, linked in as static libraries).
 */
#include "builtins.h"

#include <string.h>

#include "kv.h"
#include "text.h"

static const sage_service *const builtins[] = {&sage_example_kv, &sage_example_text};

const sage_service *cli_builtin_find(const char *name)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (strcmp(builtins[i]->name, name) == 0)
            return builtins[i];
    return NULL;
}

const char *cli_builtin_name(size_t i)
{
    return i < sizeof builtins / sizeof builtins[0] ? builtins[i]->name : NULL;
}
