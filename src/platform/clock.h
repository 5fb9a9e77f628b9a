/* clock.h - monotonic and wall clocks in nanoseconds. */
#ifndef SAGE_PLATFORM_CLOCK_H
#define SAGE_PLATFORM_CLOCK_H

#include <stdint.h>
#include <time.h>

/* sage__now_ns: CLOCK_MONOTONIC in nanoseconds (vDSO, no system call). */
static inline int64_t sage__now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* sage__now_coarse_ns: CLOCK_MONOTONIC_COARSE (behind sage__now_ns by at
 * most a tick, a few ms; a quarter of its cost): for idle times and for
 * deadlines where a few ms late is fine. Never ahead of sage__now_ns. */
static inline int64_t sage__now_coarse_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* sage__wall_ns: CLOCK_REALTIME in nanoseconds since the epoch. */
static inline int64_t sage__wall_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* sage__wall_coarse_ns: CLOCK_REALTIME_COARSE (a few ms of resolution, and
 * much cheaper than the precise clock): for heartbeats and "last seen". */
static inline int64_t sage__wall_coarse_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * sage__deadline turns a timeout in milliseconds into an absolute monotonic
 * deadline: negative stays negative (forever), 0 is "now".
 */
static inline int64_t sage__deadline(int timeout_ms)
{
    if (timeout_ms < 0)
        return -1;
    return sage__now_ns() + (int64_t)timeout_ms * 1000000;
}

/*
 * sage__after_ms returns the time ms milliseconds after t_ns, in
 * nanoseconds, saturating at INT64_MAX: a wait of centuries is forever,
 * not an overflow. A negative ms counts as 0.
 */
static inline int64_t sage__after_ms(int64_t t_ns, int64_t ms)
{
    if (ms <= 0)
        return t_ns;
    if (ms > (INT64_MAX - (t_ns > 0 ? t_ns : 0)) / 1000000)
        return INT64_MAX;
    return t_ns + ms * 1000000;
}

#endif
