/* barrier.c - membarrier(2), registered once per process. */
#include "platform/barrier.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool have_global, have_private; /* kernel supports the heavy commands */
static _Atomic int reg_global = -1, reg_private = -1; /* -1 unknown, 0 no, 1 yes */

static int membarrier(int cmd)
{
    return (int)syscall(__NR_membarrier, cmd, 0, 0);
}

static void query(void)
{
    int q = membarrier(MEMBARRIER_CMD_QUERY);

    if (q < 0)
        return;
    have_global = (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED) && (q & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
    have_private = (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
                   (q & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED);
}

bool sage__asym_register(bool shared)
{
    _Atomic int *reg = shared ? &reg_global : &reg_private;
    int v = atomic_load_explicit(reg, memory_order_acquire);

    if (v >= 0)
        return v == 1;
    pthread_once(&once, query);
    if (shared)
        v = have_global && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
    else
        v = have_private && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
    atomic_store_explicit(reg, v, memory_order_release);
    return v == 1;
}

bool sage__asym_heavy_ok(bool shared)
{
    pthread_once(&once, query);
    /* the private command needs the caller registered; the global one not */
    return shared ? have_global : sage__asym_register(false);
}

bool sage__asym_heavy(bool shared)
{
    if (sage__asym_heavy_ok(shared) &&
        membarrier(shared ? MEMBARRIER_CMD_GLOBAL_EXPEDITED : MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
        return true;
    atomic_thread_fence(memory_order_seq_cst);
    return false;
}
