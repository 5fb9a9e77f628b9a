/* names.h - names the runtime derives: queues, registry entries, replies. */
#ifndef SAGE_RUNTIME_NAMES_H
#define SAGE_RUNTIME_NAMES_H

#include <stddef.h>

#include "sage/err.h"

/* Room for any name built here, terminator included. */
#define SAGE__NAME_BUF 192

/* sage__check_name validates a service, method or namespace name:
 * [A-Za-z0-9_-] (methods also '.'), 1..64 bytes. what names it in the
 * detail ("service", "namespace"). */
sage_err sage__check_name(const char *name, const char *what, int allow_dot);

/* sage__req_queue_name: "<uid>.<ns>.<name>.req", the shm request queue of a
 * host-registered service. Per user (the effective uid), so users never
 * collide; callers derive it, never read it from a registry entry. */
void sage__req_queue_name(char *buf, size_t cap, const char *ns, const char *name);

/* sage__reg_path: "/sage.r.<uid>.<ns>.<name>", the service's registry entry
 * (a shm segment that also carries its live figures). */
void sage__reg_path(char *buf, size_t cap, const char *ns, const char *name);

/* sage__reply_queue_name: "<uid>.<ns>.reply.<pid>.<serial>", a manager's
 * response queue: unique among live processes. */
void sage__reply_queue_name(char *buf, size_t cap, const char *ns, unsigned serial);

#endif
