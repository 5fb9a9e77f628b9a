/* cluster_internal.h - how tasks and managers reach the cluster code. */
#ifndef SAGE_CLUSTER_INTERNAL_H
#define SAGE_CLUSTER_INTERNAL_H

#include "transport/natsio.h"
#include "runtime/manager_internal.h"
#include "runtime/task_internal.h"
#include "sage/cluster.h"

#define SAGE__VERSION_STRING "0.1.0"

/* A served task's cluster state (t->cluster). */
struct sage__serve;

/* ---- serve.c: the task side */

/* sage__cluster_serve_start connects the task and starts taking calls:
 * from its subject (queue group "q"), or from its stream when durable. */
sage_err sage__cluster_serve_start(struct sage_task *t);

/* sage__cluster_serve_stop stops taking calls (calls already received are
 * answered), then disconnects. */
void sage__cluster_serve_stop(struct sage_task *t);

/* sage__cluster_reply publishes c's answer to its caller's inbox. */
void sage__cluster_reply(struct sage_call *c, const sage__resp *resp);

/* sage__cluster_reply_bytes publishes an encoded answer (a remembered one). */
void sage__cluster_reply_bytes(struct sage_call *c, const void *bytes, size_t len);

/* ---- srv.c: the ADR-32 discovery handlers of a served task */
struct sage__srv;
sage_err sage__srv_start(struct sage__srv **sp, struct sage__nio *n, struct sage_task *t,
                         const char *id, const char *subject, int durable);
void sage__srv_stop(struct sage__srv *s);
/* sage__srv_error records the last error message (STATS last_error). */
void sage__srv_error(struct sage__srv *s, const char *msg);

/* ---- client.c: the manager side (the weak hooks of manager_internal.h) */

/* sage__cluster_reply_to writes the reply subject for call id into buf. */
const char *sage__cluster_reply_to(sage_manager *m, uint64_t id, char *buf, size_t cap);

#endif
