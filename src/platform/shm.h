/* shm.h - POSIX shared memory segments and anonymous mappings. */
#ifndef SAGE_PLATFORM_SHM_H
#define SAGE_PLATFORM_SHM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sage/err.h"

/*
 * Every segment lives in /dev/shm; a path names it as "/name". Whatever is
 * at a name is opened without following a symbolic link and must be a
 * regular file owned by this process's effective uid and writable by
 * nobody else; anything else is refused with SAGE_EPERM and a detail naming
 * the file, its owner and what is wrong, and is never used or removed.
 * Another user can create files in /dev/shm, so a name alone proves
 * nothing.
 */

/* SAGE__SHM_DIR: the directory whose files the segments are. */
#define SAGE__SHM_DIR "/dev/shm"

/*
 * sage__shm_fs_path writes the file of segment path ("/name") into buf of
 * cap bytes: "/dev/shm/name". Anything but "/" and a file name is a bug of
 * ours or a hostile name: SAGE_EINVAL, as is a buf too small.
 */
sage_err sage__shm_fs_path(char *buf, size_t cap, const char *path);

/* SAGE__SHM_ANY_OWNER skips the owner and mode checks (still no link, and a
 * regular file only): for segments deliberately shared between users. */
#define SAGE__SHM_ANY_OWNER 0x1u

/*
 * sage__shm_create creates the segment path ("/name") exclusively with the
 * given mode (applied exactly, whatever the umask), sizes it to size bytes
 * and maps it read-write into *memp, pre-faulted if it is at most populate
 * bytes (0: pages come in as they are first used). SAGE_EEXIST if a segment this process
 * may use exists already; SAGE_EPERM (with the refusal as detail) if what
 * is there is not ours to use (see above; flags may hold
 * SAGE__SHM_ANY_OWNER).
 */
sage_err sage__shm_create(const char *path, mode_t mode, size_t size, unsigned flags,
                          size_t populate, void **memp);

/*
 * sage__shm_open maps the existing segment path whole (sharing this
 * process's mapping of it, if there is one); its size goes to *sizep.
 * Segments up to populate bytes are pre-faulted so the first messages do
 * not pay page faults. The segment must pass the checks above (flags may
 * hold SAGE__SHM_ANY_OWNER): else SAGE_EPERM. SAGE_ENOENT if there is none.
 */
sage_err sage__shm_open(const char *path, unsigned flags, void **memp, size_t *sizep,
                        size_t populate);

/* sage__shm_unlink removes the segment path if it is this user's regular
 * file: SAGE_EPERM (never removed) for anything else, even as root, who
 * could remove another user's files; SAGE_ENOENT if there is none. */
sage_err sage__shm_unlink(const char *path);

/*
 * sage__shm_lock takes an exclusive flock on the lock file path ("/name"
 * in /dev/shm), creating it 0600 if needed, and writes its descriptor to
 * *fdp. The file must pass the checks above (SAGE_EPERM otherwise, at
 * once). A lock held elsewhere is retried with a backoff from 1 ms to 50 ms
 * for up to wait_ns, then SAGE_EBUSY. The kernel releases the lock when its
 * holder dies. Release with sage__shm_unlock.
 */
sage_err sage__shm_lock(const char *path, int64_t wait_ns, int *fdp);

/* sage__shm_unlock releases a lock taken with sage__shm_lock. */
void sage__shm_unlock(int fd);

/* sage__map_anon maps size bytes of private zeroed memory. */
sage_err sage__map_anon(void **memp, size_t size);

/* sage__unmap releases a mapping made by the functions above; a segment
 * mapped by several handles of this process is unmapped with the last. */
void sage__unmap(void *mem, size_t size);

#endif
