/*
 * sage/future.h - sage_future, the answer to an asynchronous call.
 *
 * A future completes exactly once: with the service's result, its error, a
 * timeout, a cancel, or the manager closing. Waiting, polling, cancelling
 * and adding callbacks are all safe from any thread.
 *
 * Callback rules: a future takes any number of callbacks; each runs exactly
 * once, in the order they were added, on the manager's completion thread
 * (one thread per manager) or inside sage_manager_poll on the polling
 * thread, one callback of a manager at a time, with no library lock held -
 * never inside the call that made the call, cancelled it or added the
 * callback, never on a transport's thread. A callback may call
 * sage_future_result and sage_future_free on its future (the future stays
 * valid until every callback has run), and may make new calls; it must not
 * block for long, nor wait for a future of the same manager (its
 * completion thread is the one running the callback).
 */
#ifndef SAGE_FUTURE_H
#define SAGE_FUTURE_H

#include "sage/export.h"

#include <stdbool.h>
#include <stdint.h>

#include "sage/err.h"
#include "sage/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sage_future sage_future;

/* sage_future_fn: a completion callback (see the rules above). */
typedef void (*sage_future_fn)(void *arg, sage_future *f);

/*
 * sage_future_wait waits up to timeout_ms (negative: forever) for f to
 * complete. SAGE_OK once complete, whatever the outcome; SAGE_ETIMEDOUT if
 * it is still pending (it stays pending: the call's own timeout is separate).
 * Thread-safe; blocks.
 */
SAGE_API sage_err sage_future_wait(sage_future *f, int timeout_ms);

/* sage_future_done returns true once f has completed (a poll; does not
 * block). */
SAGE_API bool sage_future_done(const sage_future *f);

/*
 * sage_future_result returns the outcome of a completed future: SAGE_OK
 * with the result in *vp (borrowed: valid until sage_future_free), or the
 * call's error with its message as this thread's detail. SAGE_ESTATE if f
 * has not completed. vp may be NULL. Does not block.
 */
SAGE_API sage_err sage_future_result(const sage_value **vp, sage_future *f);

/*
 * sage_future_cancel completes a pending f with SAGE_ECANCELED (its
 * callbacks then run on the completion thread); the answer, if it comes, is
 * dropped. SAGE_ESTATE if f had already completed. Does not block.
 */
SAGE_API sage_err sage_future_cancel(sage_future *f);

/*
 * sage_future_on_done adds a callback to f. If f has completed already, the
 * callback is queued to run on the completion thread at once. SAGE_ENOMEM
 * if it cannot be recorded (it will then never run). Thread-safe; does not
 * block.
 */
SAGE_API sage_err sage_future_on_done(sage_future *f, sage_future_fn fn, void *arg);

/* sage_future_id returns the call's request id. */
SAGE_API uint64_t sage_future_id(const sage_future *f);

/*
 * sage_future_free gives f back; a pending future is cancelled first. Its
 * memory is reused once its callbacks have run, so a callback may free it.
 * NULL is ignored. Every future must be freed exactly once (or its manager
 * freed).
 */
SAGE_API void sage_future_free(sage_future *f);

#ifdef __cplusplus
}
#endif
#endif /* SAGE_FUTURE_H */
