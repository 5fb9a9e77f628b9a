/* futex.c - Linux futex(2) wrappers. */
#include "platform/futex.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

sage_err sage__futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline_ns,
                          bool shared)
{
    struct timespec ts, *tsp = NULL;
    int op = FUTEX_WAIT_BITSET | (shared ? 0 : FUTEX_PRIVATE_FLAG);

    if (deadline_ns >= 0) {
        ts.tv_sec = (time_t)(deadline_ns / 1000000000);
        ts.tv_nsec = (long)(deadline_ns % 1000000000);
        tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a
     * wait interrupted and resumed never stretches the caller's timeout. */
    if (syscall(SYS_futex, (uint32_t *)word, op, expected, tsp, NULL, FUTEX_BITSET_MATCH_ANY) == 0)
        return SAGE_OK;
    switch (errno) {
    case EAGAIN:
        return SAGE_OK;
    case ETIMEDOUT:
        return SAGE_ETIMEDOUT;
    case EINTR:
        return SAGE_EINTR;
    default:
        return SAGE_ESYS;
    }
}

int sage__futex_wake(_Atomic uint32_t *word, int n, bool shared)
{
    int op = FUTEX_WAKE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    long r = syscall(SYS_futex, (uint32_t *)word, op, n < 0 ? INT_MAX : n, NULL, NULL, 0);

    return r < 0 ? 0 : (int)r;
}
