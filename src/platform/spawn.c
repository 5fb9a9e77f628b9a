/*
 * spawn.c - starting, signalling and reaping a child process (the cluster's
 * host runs its replicas with it).
 *
 * Design notes
 * - posix_spawn, not fork: the parent may have other threads running
 *   (nats.c's, in a host), and posix_spawn (vfork-like in glibc) runs no
 *   code of ours in the child and reports a failed exec as an error.
 * - The child must not inherit the parent's descriptors (a host's NATS
 *   socket above all: a replica holding it would keep a dead host's
 *   connection open), so everything above the ready pipe is closed in it.
 * - Its exit is seen through a pidfd, polled by the parent's loop with its
 *   other descriptors: no SIGCHLD handler, no sleeping waitpid. A pidfd of
 *   a process not yet reaped stays valid even if the process already died.
 */
#include "platform/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/pidfd.h"

#define READY_FD SAGE__CHILD_READY_FD

/* high_fd moves fd above the range the child's dup2 writes to (0..3) */
static int high_fd(int fd)
{
    int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);

    close(fd);
    return h;
}

sage_err sage__child_spawn(struct sage__child *c, char *const *argv, char *const *envp)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    int p[2], e;
    pid_t pid = 0;

    c->pid = 0;
    c->pidfd = -1;
    c->readyfd = -1;
    if (pipe2(p, O_CLOEXEC) != 0)
        return SAGE_SETERR(SAGE_ESYS, "pipe: %s", strerror(errno));
    p[0] = high_fd(p[0]);
    p[1] = high_fd(p[1]);
    if (p[0] < 0 || p[1] < 0) {
        e = errno;
        if (p[0] >= 0)
            close(p[0]);
        if (p[1] >= 0)
            close(p[1]);
        return SAGE_SETERR(SAGE_ESYS, "fcntl: %s", strerror(e));
    }
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], READY_FD);
    posix_spawn_file_actions_addclosefrom_np(&fa, READY_FD + 1);
    posix_spawnattr_init(&attr);
    /* a host blocks the signals it takes with sigwait/signalfd: a child
     * must start with none blocked and every disposition at its default */
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    e = strchr(argv[0], '/') ? posix_spawn(&pid, argv[0], &fa, &attr, argv, envp)
                             : posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(p[1]);
    if (e != 0) {
        close(p[0]);
        return SAGE_SETERR(SAGE_ESYS, "cannot start %s: %s", argv[0], strerror(e));
    }
    c->pid = pid;
    c->readyfd = p[0];
    c->pidfd = sage__pidfd_open(pid, 0);
    if (c->pidfd < 0) {
        e = errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(p[0]);
        c->pid = 0;
        c->readyfd = -1;
        return SAGE_SETERR(SAGE_ESYS, "pidfd_open: %s (Linux 5.3 or later is needed)",
                           strerror(e));
    }
    return SAGE_OK;
}

void sage__child_signal(struct sage__child *c, int sig)
{
    if (c->pid > 0 && c->pidfd >= 0)
        sage__pidfd_signal(c->pidfd, sig); /* never a recycled pid */
}

bool sage__child_reap(struct sage__child *c, int *statusp)
{
    int status = 0;
    pid_t r;

    if (c->pid <= 0)
        return true;
    do {
        r = waitpid(c->pid, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0)
        return false;
    if (r < 0) /* reaped by someone else (SIGCHLD ignored?): say "killed" */
        status = SIGKILL;
    *statusp = status;
    c->pid = 0;
    return true;
}

void sage__child_close(struct sage__child *c)
{
    if (c->pidfd >= 0)
        close(c->pidfd);
    if (c->readyfd >= 0)
        close(c->readyfd);
    c->pidfd = -1;
    c->readyfd = -1;
}

void sage__child_describe(char *buf, size_t cap, int status)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "was killed by SIG%s", sigabbrev_np(WTERMSIG(status))
                                                      ? sigabbrev_np(WTERMSIG(status))
                                                      : "?");
    else
        snprintf(buf, cap, "ended (wait status %d)", status);
}
