/* dedupe.h - remembering recent answers by (caller, request id), in this
 * process (the transport's store, when it has one, spans replicas). */
#ifndef SAGE_RUNTIME_DEDUPE_H
#define SAGE_RUNTIME_DEDUPE_H

#include <stddef.h>
#include <stdint.h>

#include "sage/err.h"
#include "transport/transport.h"

struct sage__dedupe;

/* sage__dedupe_new makes a cache of the last cap calls. */
sage_err sage__dedupe_new(struct sage__dedupe **dp, uint32_t cap);
void sage__dedupe_free(struct sage__dedupe *d);

/* sage__dedupe_begin looks (caller, id) up, recording it as running when
 * new. For DONE, *bytesp and *lenp get a malloc'd copy of the answer
 * (free() it). */
enum sage__tp_seen sage__dedupe_begin(struct sage__dedupe *d, const char *caller, uint64_t id,
                                           void **bytesp, size_t *lenp);

/* sage__dedupe_finish records the encoded answer of a call begun as NEW
 * (bytes NULL: no answer to remember, forget the call). */
void sage__dedupe_finish(struct sage__dedupe *d, const char *caller, uint64_t id,
                         const void *bytes, size_t len);

#endif
