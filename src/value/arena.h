/* arena.h - what the wire layer needs from sage_arena beyond the public API. */
#ifndef SAGE_WIRE_ARENA_H
#define SAGE_WIRE_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "sage/value.h"

/*
 * sage__arena_strndup copies n bytes from s into a and NUL-terminates them;
 * n == 0 gives a static "" (no allocation). NULL when the arena runs out.
 */
const char *sage__arena_strndup(sage_arena *a, const char *s, size_t n);

/*
 * sage__arena_stats reports the bytes a holds from the system (chunks,
 * headers included) and how many chunks it has ever malloc'ed: a loop that
 * reuses an arena shows a constant count. Either pointer may be NULL.
 */
void sage__arena_stats(const sage_arena *a, size_t *heldp, uint64_t *mallocsp);

#endif
