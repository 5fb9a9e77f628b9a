/* shm_reply.h - a serving task's cache of its callers' reply queues. */
#ifndef SAGE_TRANSPORT_SHM_REPLY_H
#define SAGE_TRANSPORT_SHM_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "sage/err.h"
#include "sage/queue.h"
#include "transport/figures.h"
#include "wire/wire.h"

struct sage__replies;

/* sage__replies_new makes an empty cache; drops are recorded in fig. */
sage_err sage__replies_new(struct sage__replies **rp, struct sage__figures *fig);

/* sage__replies_free closes every cached queue and frees r. No other
 * thread may be sending through r. NULL is ignored. */
void sage__replies_free(struct sage__replies *r);

/*
 * sage__replies_send sends an answer to the queue named reply_to: resp,
 * encoded straight into the queue, or (resp NULL) the len bytes at bytes,
 * already encoded. A failure (the queue cannot be opened, stays full, is
 * gone) drops the answer and records why in the figures. Any thread.
 */
void sage__replies_send(struct sage__replies *r, const char *reply_to, uint64_t id,
                        const sage__resp *resp, const void *bytes, size_t len);

/*
 * sage__replies_sweep releases the queues of callers that went away (their
 * queue shut down, or their process died: then it also removes the queue,
 * which nobody else will), of queues that failed, and of queues unused for
 * a while. Returns how many queues stay cached. Any thread.
 */
size_t sage__replies_sweep(struct sage__replies *r, int64_t now_ns);

/* sage__replies_sweep_ms: how often a cache with entries wants a sweep. */
int sage__replies_sweep_ms(void);

#endif
