/* proc.h - facts about processes: our pid and start time, another's
 * liveness, our CPU. */
#ifndef SAGE_PLATFORM_PROC_H
#define SAGE_PLATFORM_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * sage__pid returns this process's pid from a cache that a fork handler
 * refreshes, so it costs no system call.
 */
pid_t sage__pid(void);

/*
 * sage__fork_gen counts forks survived by this process image: a value cached
 * before a fork differs in the child, which tells per-process state copied by
 * fork (thread-local caches, handles) that it belongs to the parent.
 */
uint32_t sage__fork_gen(void);

/*
 * sage__start_time returns this process's start time in clock ticks since
 * boot (as sage__pid_start_time), or 0 if unknown. Read once and refreshed
 * by the same fork handler as sage__pid, so it costs no system call.
 */
uint64_t sage__start_time(void);

/*
 * sage__pid_alive tells whether pid names a live process. A zombie (exited,
 * not yet reaped) counts as dead; a process we may not signal counts as
 * alive. Costs a system call and, when the pid exists, a /proc read.
 */
bool sage__pid_alive(pid_t pid);

/*
 * sage__pid_alive_start is sage__pid_alive that also writes the live
 * process's start time to *startp (0 if unknown, as when /proc cannot be
 * read), from the same read of /proc/PID/stat: together they tell whether
 * pid still names the process that was seen earlier.
 */
bool sage__pid_alive_start(pid_t pid, uint64_t *startp);

/* sage__pid_start_time returns pid's start time in clock ticks since boot
 * (field 22 of /proc/PID/stat), or 0 if unknown; (pid, start) names a process
 * even across pid reuse. */
uint64_t sage__pid_start_time(pid_t pid);

/* sage__cpu returns the CPU this thread runs on now (rseq/vDSO, cheap), or 0. */
int sage__cpu(void);

/* sage__ncpu returns the number of CPUs online on this machine. */
int sage__ncpu(void);

/* sage__thread_name names the calling thread (at most 15 bytes), as ps -L,
 * top -H and debuggers show it: "sage-complete", "sage-listen", ... */
void sage__thread_name(const char *name);

#endif
