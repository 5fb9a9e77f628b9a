/* barrier.h - asymmetric memory barriers (membarrier(2)). */
#ifndef SAGE_PLATFORM_BARRIER_H
#define SAGE_PLATFORM_BARRIER_H

#include <stdbool.h>

/*
 * An asymmetric barrier splits a Dekker handshake into a cheap side run on
 * every message (a compiler barrier) and a heavy side run rarely (a
 * membarrier(2) system call that makes every running thread of the
 * registered processes execute a full fence). The cheap side may skip its
 * fence only if its process is registered.
 */

/* sage__asym_register registers this process as a cheap side, for shared
 * (cross-process) or private use; true if it may skip fences from now on.
 * Idempotent and thread-safe. */
bool sage__asym_register(bool shared);

/* sage__asym_heavy_ok tells whether this process can run the heavy side. */
bool sage__asym_heavy_ok(bool shared);

/* sage__asym_heavy runs the heavy side; falls back to a full fence (and
 * returns false) when the system call fails. */
bool sage__asym_heavy(bool shared);

#endif
