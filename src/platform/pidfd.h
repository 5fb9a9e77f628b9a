/* pidfd.h - process descriptors: a handle on one process, never on a
 * recycled pid. */
#ifndef SAGE_PLATFORM_PIDFD_H
#define SAGE_PLATFORM_PIDFD_H

#include <stdint.h>
#include <sys/types.h>

/*
 * sage__pidfd_open returns a descriptor that becomes readable when process
 * pid exits (Linux 5.3+), or -1 with errno set (ESRCH: no such process;
 * ENOSYS: no pidfds here). With start non-zero, the process must also have
 * that start time (sage__pid_start_time), else -1 with ESRCH: the pid was
 * reused between the moment it was learned and now. Close-on-exec.
 */
int sage__pidfd_open(pid_t pid, uint64_t start);

/* sage__pidfd_signal sends sig to the process of fd (never to a recycled
 * pid); 0 or -1 with errno. */
int sage__pidfd_signal(int fd, int sig);

#endif
