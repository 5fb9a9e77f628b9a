/*
 * ident.c - process identity words: how the queue tells a live process from
 * a dead one whose pid was taken by another (the word: layout.h,
 * "Processes").
 *
 * Liveness by pid alone breaks when a pid is reused: a producer killed
 * holding a claim, whose pid then goes to an unrelated long-lived process,
 * would look alive for as long as that process lives, and the queue would
 * wait for it. The start time (clock ticks since boot, /proc/PID/stat field
 * 22) differs between the two, and is readable for any process; a random
 * incarnation number would not be checkable from outside.
 */
#include "platform/proc.h"
#include "queue/queue_internal.h"

uint64_t sage__sq_me(void)
{
    return sq_ident(sage__pid(), sage__start_time());
}

bool sage__sq_alive(uint64_t id)
{
    uint64_t start;
    uint32_t want = sq_ident_start(id);

    if (id == 0 || !sage__pid_alive_start(sq_ident_pid(id), &start))
        return false;
    return want == 0 || start == 0 || (uint32_t)start == want;
}
