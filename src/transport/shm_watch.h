/* shm_watch.h - a client's watch on the processes that serve it. */
#ifndef SAGE_TRANSPORT_SHM_WATCH_H
#define SAGE_TRANSPORT_SHM_WATCH_H

#include <stdint.h>

#include "sage/err.h"

struct sage__watch;

/* sage__watch_new makes a watcher; on_death runs on its thread, once per
 * watched process that exits, with no lock of the watcher held. */
sage_err sage__watch_new(struct sage__watch **wp,
                         void (*on_death)(void *arg, uint64_t serial, int32_t pid), void *arg);

/* sage__watch_free stops the thread (no callback runs once it returns) and
 * frees w. NULL is ignored. */
void sage__watch_free(struct sage__watch *w);

/* sage__watch_add watches process pid (with that start time, if not 0) on
 * behalf of destination serial. SAGE_EUNAVAILABLE if it is gone already;
 * SAGE_OK without watching where pidfds do not exist. */
sage_err sage__watch_add(struct sage__watch *w, uint64_t serial, int32_t pid, uint64_t start);

/* sage__watch_remove stops watching for serial (its destination closed). */
void sage__watch_remove(struct sage__watch *w, uint64_t serial);

#endif
