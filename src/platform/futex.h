/* futex.h - the futex wait/wake pair, the only blocking primitive of the queue. */
#ifndef SAGE_PLATFORM_FUTEX_H
#define SAGE_PLATFORM_FUTEX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sage/err.h"

/*
 * sage__futex_wait blocks while *word == expected, until woken, until the
 * CLOCK_MONOTONIC deadline deadline_ns passes (negative: no deadline), or a
 * signal arrives. shared selects a process-shared futex (shm) over a private
 * one. Returns SAGE_OK when woken or the value differed, SAGE_ETIMEDOUT at the
 * deadline, SAGE_EINTR on a signal. Spurious returns are possible: callers
 * always re-check their condition.
 */
sage_err sage__futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline_ns,
                          bool shared);

/* sage__futex_wake wakes up to n waiters of word; returns how many woke. */
int sage__futex_wake(_Atomic uint32_t *word, int n, bool shared);

#endif
