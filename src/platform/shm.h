/* shm.h - POSIX shared memory segments and anonymous mappings. */
#ifndef SAGE_PLATFORM_SHM_H
#define SAGE_PLATFORM_SHM_H

#include <stddef.h>
#include <sys/types.h>

#include "sage/err.h"

/*
 * sage__shm_create creates the segment path ("/name") exclusively with the
 * given mode (applied exactly, whatever the umask), sizes it to size bytes
 * and maps it read-write into *memp, pre-faulted if it is at most populate
 * bytes (0: pages come in as they are first used). SAGE_EEXIST if it
 * exists already.
 */
sage_err sage__shm_create(const char *path, mode_t mode, size_t size, size_t populate,
                          void **memp);

/*
 * sage__shm_open maps the existing segment path whole (sharing this
 * process's mapping of it, if there is one); its size goes to *sizep.
 * Segments up to populate bytes are pre-faulted so the first messages do
 * not pay page faults. SAGE_ENOENT, SAGE_EPERM as the OS says.
 */
sage_err sage__shm_open(const char *path, void **memp, size_t *sizep, size_t populate);

/* sage__shm_unlink removes the segment path. */
sage_err sage__shm_unlink(const char *path);

/* sage__map_anon maps size bytes of private zeroed memory. */
sage_err sage__map_anon(void **memp, size_t size);

/* sage__unmap releases a mapping made by the functions above; a segment
 * mapped by several handles of this process is unmapped with the last. */
void sage__unmap(void *mem, size_t size);

#endif
