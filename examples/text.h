/* text.h - the example text service's table (see text.c). */
#ifndef SAGE_EXAMPLES_TEXT_H
#define SAGE_EXAMPLES_TEXT_H

#include "sage/service.h"

extern const sage_service sage_example_text;

#endif
