/* pidfd.c - process descriptors. */
#include "platform/pidfd.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "platform/proc.h"

int sage__pidfd_open(pid_t pid, uint64_t start)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);

    if (fd < 0)
        return -1;
    /* the pid could have been reused between learning it and now: the
     * descriptor names whatever process has it at this moment */
    if (start != 0 && sage__pid_start_time(pid) != start) {
        close(fd);
        errno = ESRCH;
        return -1;
    }
    return fd;
}

int sage__pidfd_signal(int fd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
}
