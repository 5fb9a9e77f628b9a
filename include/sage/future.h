/*
 * sage/future.h - sage_future, the answer to an asynchronous call.
 *
 * A future completes exactly once: with the service's result, its error, a
 * timeout, a cancel, or the manager closing. Waiting, polling, cancelling
 * and one completion callback are all safe from any thread.
 *
 * Callback rules: the callback runs exactly once, with no library lock
 * held: on the manager's response thread when the answer (or the timeout)
 * arrives; on the registering thread if the future had already completed;
 * on the cancelling thread for a cancel. It may call sage_future_result and
 * sage_future_free on its future. A future with a callback belongs to that
 * callback: free it there, not from another thread.
 */
#ifndef SAGE_FUTURE_H
#define SAGE_FUTURE_H

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
 */
sage_err sage_future_wait(sage_future *f, int timeout_ms);

/* sage_future_done returns non-zero once f has completed (a poll). */
int sage_future_done(const sage_future *f);

/*
 * sage_future_result returns the outcome of a completed future: SAGE_OK
 * with the result in *vp (borrowed: valid until sage_future_free), or the
 * call's error with its message as this thread's detail. SAGE_ESTATE if f
 * has not completed. vp may be NULL.
 */
sage_err sage_future_result(sage_future *f, const sage_value **vp);

/*
 * sage_future_cancel completes a pending f with SAGE_ECANCELED (its
 * callback runs now, on this thread); the answer, if it comes, is dropped.
 * SAGE_ESTATE if f had already completed.
 */
sage_err sage_future_cancel(sage_future *f);

/*
 * sage_future_on_done sets f's completion callback. If f has completed the
 * callback runs at once on this thread. SAGE_EBUSY if one is already set.
 */
sage_err sage_future_on_done(sage_future *f, sage_future_fn fn, void *arg);

/* sage_future_id returns the call's request id. */
uint64_t sage_future_id(const sage_future *f);

/*
 * sage_future_free releases f; a pending future is cancelled first. NULL is
 * ignored. Every future must be freed (or its manager freed) exactly once.
 */
void sage_future_free(sage_future *f);

#ifdef __cplusplus
}
#endif
#endif /* SAGE_FUTURE_H */
