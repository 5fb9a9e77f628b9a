/* kv.h - the example key-value service's table (see kv.c). */
#ifndef SAGE_EXAMPLES_KV_H
#define SAGE_EXAMPLES_KV_H

#include "sage/service.h"

extern const sage_service sage_example_kv;

#endif
