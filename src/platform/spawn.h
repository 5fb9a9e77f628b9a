/* spawn.h - child processes: starting another program, signalling it,
 * collecting its exit, and saying how it ended. */
#ifndef SAGE_PLATFORM_SPAWN_H
#define SAGE_PLATFORM_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "sage/err.h"

/* the descriptor a child gets the write end of its ready pipe on */
#define SAGE__CHILD_READY_FD 3

/* One child process. */
struct sage__child {
    pid_t pid;   /* 0: none */
    int pidfd;   /* readable once the process exited; -1: none */
    int readyfd; /* read end of the ready pipe (the child writes to it to
                  * say it is ready); -1: closed */
};

/*
 * sage__child_spawn starts argv (argv[0] a path, or a name looked up in
 * PATH) with envp, stdin from /dev/null, a pipe's write end as descriptor
 * SAGE__CHILD_READY_FD, no other inherited descriptor above it, default
 * signal dispositions and an empty signal mask, in our process group.
 * SAGE_ESYS (detail: why) if it cannot; c says "none" then.
 */
sage_err sage__child_spawn(struct sage__child *c, char *const *argv, char *const *envp);

/* sage__child_signal sends sig to c if it runs (through its pidfd: never
 * to a recycled pid). */
void sage__child_signal(struct sage__child *c, int sig);

/* sage__child_reap collects c's exit status without blocking: true and
 * *statusp (a wait status) once it exited, false while it runs. */
bool sage__child_reap(struct sage__child *c, int *statusp);

/* sage__child_close closes c's descriptors (after reaping). */
void sage__child_close(struct sage__child *c);

/* sage__child_describe writes "exited with status N" or "was killed by
 * SIGX" for wait status status. */
void sage__child_describe(char *buf, size_t cap, int status);

#endif
