/* nats_srv.h - a served task's answers to the NATS micro-service protocol. */
#ifndef SAGE_TRANSPORT_NATS_SRV_H
#define SAGE_TRANSPORT_NATS_SRV_H

#include <stdbool.h>
#include <stddef.h>

#include "sage/err.h"
#include "transport/figures.h"
#include "transport/natsio.h"

struct sage__srv;

/* sage__srv_start answers $SRV.PING/INFO/STATS (bare, .NAME, .NAME.ID) for
 * the task whose figures fig are (borrowed until stop), whose calls come
 * on subject. */
sage_err sage__srv_start(struct sage__srv **sp, struct sage__nio *n,
                         const struct sage__figures *fig, const char *const *methods,
                         size_t nmethods, const char *id, const char *subject, bool durable);

/* sage__srv_stop drains the handlers' subscriptions and frees s. */
void sage__srv_stop(struct sage__srv *s);

/* sage__srv_error records the last error message (STATS last_error). */
void sage__srv_error(struct sage__srv *s, const char *msg);

#endif
