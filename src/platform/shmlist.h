/* shmlist.h - listing POSIX shared memory segments by name. */
#ifndef SAGE_PLATFORM_SHMLIST_H
#define SAGE_PLATFORM_SHMLIST_H

#include "sage/err.h"

/* sage__shm_list_fn receives one segment's name (without the leading "/",
 * borrowed for the call); non-zero ends the listing. */
typedef int (*sage__shm_list_fn)(void *arg, const char *name);

/*
 * sage__shm_list calls fn for each shared memory segment whose name starts
 * with prefix and that is a regular file owned by this process's effective
 * uid. It only reads the directory and stats entries (never following a
 * link); no segment is opened. SAGE_ESYS if the directory cannot be read.
 */
sage_err sage__shm_list(const char *prefix, sage__shm_list_fn fn, void *arg);

#endif
