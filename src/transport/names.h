/* names.h - the names of shared-memory objects: queues, registry entries, replies. */
#ifndef SAGE_TRANSPORT_NAMES_H
#define SAGE_TRANSPORT_NAMES_H

#include <stddef.h>

#include "base/name.h"
#include "sage/err.h"

/* Room for any name built here, terminator included. */
#define SAGE__NAME_BUF 192

/* sage__req_queue_name: "<uid>.<ns>.<name>.req", the shm request queue of a
 * host-registered service. Per user (the effective uid), so users never
 * collide; callers derive it, never read it from a registry entry. */
void sage__req_queue_name(char *buf, size_t cap, const char *ns, const char *name);

/* sage__reg_path: "/sage.r.<uid>.<ns>.<name>", the service's registry entry
 * (a shm segment that also carries its live figures). */
void sage__reg_path(char *buf, size_t cap, const char *ns, const char *name);

/* sage__reply_queue_name: "<uid>.<ns>.reply.<pid>.<nonce>", a manager's
 * reply queue. The random 64-bit nonce makes it unique for good: a process
 * that inherits a dead caller's pid never inherits its queue's name. */
void sage__reply_queue_name(char *buf, size_t cap, const char *ns);

#endif
