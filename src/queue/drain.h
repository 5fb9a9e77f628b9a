/* drain.h - a drain that waits until a point in time (CLOCK_MONOTONIC ns)
 * rather than for a number of milliseconds: for a thread that sleeps until
 * its next timer, which a whole-millisecond timeout would overshoot. */
#ifndef SAGE_QUEUE_DRAIN_H
#define SAGE_QUEUE_DRAIN_H

#include <stdint.h>

#include "sage/queue.h"

/* sage__queue_drain_until is sage_queue_drain waiting at most until
 * deadline_ns (sage__now_ns's clock; < 0: forever). */
sage_err sage__queue_drain_until(size_t *countp, sage_queue *q, sage_queue_fn fn, void *arg,
                                 size_t max, int64_t deadline_ns);

#endif
