/*
 * shm_reg.c - the host registry: entries in /dev/shm naming who serves what.
 *
 * Design notes
 * - A name is taken by creating its segment exclusively: of two processes
 *   starting the same service at once, one wins.
 * - An entry whose owner died (pid gone, or reused: start time differs) is
 *   stale: the next process to start that name removes it and its request
 *   queue, then creates its own; listing with clean removes it too. Stale
 *   removal and creation run under an flock on a per-user lock file, and
 *   the creator writes its identity (layout, pid, start time) before it
 *   lets go of the lock, so nobody mistakes an entry being created for a
 *   stale one, and two processes cleaning the same stale entry cannot remove
 *   each other's fresh one. The kernel drops the lock if its holder dies.
 * - The creator fills the remaining identity fields, then publishes magic
 *   with release ordering; readers check magic, version and size first.
 * - Entries are mapped through platform/shm.h, so a process that serves
 *   and calls a service maps its entry once, and every entry, queue and the
 *   lock file pass its owner checks: another user can plant a file at any
 *   free name in /dev/shm, so a name proves nothing. An entry that is not
 *   ours is refused, never used, never removed; on top of the file's owner,
 *   the uid recorded inside must be ours too.
 * - The registry lock is taken with a bounded wait (LOCK_WAIT_NS): our own
 *   processes hold it for microseconds, so a longer wait means something is
 *   wrong, and the caller gets SAGE_EBUSY instead of hanging.
 */
#include "transport/shm_reg.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "platform/proc.h"
#include "platform/shm.h"
#include "transport/names.h"
#include "sage/queue.h"


#define LOCK_WAIT_NS (5 * 1000 * 1000 * 1000LL)
#define DESTROY_LOCK_WAIT_NS (100 * 1000 * 1000LL)

/* lock_registry takes this user's registry lock into *fdp: SAGE_EPERM if
 * the lock file is not ours (at once), SAGE_EBUSY after wait_ns */
static sage_err lock_registry(int *fdp, int64_t wait_ns)
{
    char path[64];
    sage_err r;

    snprintf(path, sizeof path, "/sage.r.%u.lock", (unsigned)geteuid());
    r = sage__shm_lock(path, wait_ns, fdp);
    if (r == SAGE_EBUSY)
        return SAGE_SETERR(SAGE_EBUSY,
                           "the registry lock /dev/shm%s is held by another process for more "
                           "than %g s",
                           path, wait_ns / 1e9);
    if (r != SAGE_OK)
        return SAGE_SETERR(r, "the registry lock: %s", sage_errdetail());
    return SAGE_OK;
}

static void unlock_registry(int fd)
{
    sage__shm_unlock(fd);
}

/* map_entry maps the entry at path: SAGE_ENOSERVICE if there is none,
 * SAGE_EPERM if it is not ours (platform/shm.h), SAGE_EUNAVAILABLE if it is
 * not of our size (being created, or another layout). */
static sage_err map_entry(const char *path, struct sage__reg **regp)
{
    void *mem = NULL;
    size_t size = 0;
    sage_err r = sage__shm_open(path, 0, &mem, &size, 0);

    if (r != SAGE_OK)
        return r == SAGE_ENOENT ? SAGE_ENOSERVICE : r;
    if (size != sizeof(struct sage__reg)) {
        sage__unmap(mem, size);
        return SAGE_EUNAVAILABLE;
    }
    *regp = mem;
    return SAGE_OK;
}

static void unmap_entry(struct sage__reg *reg)
{
    sage__unmap(reg, sizeof *reg);
}

static int valid(const struct sage__reg *reg)
{
    return atomic_load_explicit(&reg->magic, memory_order_acquire) == SAGE__REG_MAGIC &&
           reg->version == SAGE__REG_VERSION && reg->size == sizeof *reg;
}


/* live_owner writes to *pidp the pid of the live process that holds the
 * entry at path (published or still being created), or 0 if none: no
 * entry, or a stale one. SAGE_EPERM (the entry is not ours to judge, nor to
 * remove) if the owner checks refuse it. Registry lock held. */
static sage_err live_owner(const char *path, int32_t *pidp)
{
    struct sage__reg *reg = NULL;
    sage_err r = map_entry(path, &reg);

    *pidp = 0;
    if (r == SAGE_EPERM)
        return r;
    if (r != SAGE_OK)
        return SAGE_OK;
    if (reg->version == SAGE__REG_VERSION && reg->size == sizeof *reg && reg->fig.pid > 0 &&
        sage__fig_owner_alive(&reg->fig))
        *pidp = reg->fig.pid;
    unmap_entry(reg);
    return SAGE_OK;
}

/* remove_entry removes the entry of ns/name and its request queue; lock
 * held. Either is left alone if it is not ours (the owner checks refuse to
 * remove it), and the start that follows reports it. */
static void remove_entry(const char *ns, const char *name)
{
    char path[SAGE__NAME_BUF], queue[SAGE__NAME_BUF];

    sage__reg_path(path, sizeof path, ns, name);
    sage__req_queue_name(queue, sizeof queue, ns, name);
    sage__shm_unlink(path); /* gone already is fine */
    sage_queue_unlink(queue);
}

sage_err sage__reg_create(struct sage__reg **regp, const char *ns, const char *name)
{
    char path[SAGE__NAME_BUF];
    struct sage__reg *reg = NULL;
    void *mem = NULL;
    int32_t owner = 0;
    int lock;
    sage_err r = lock_registry(&lock, LOCK_WAIT_NS);

    if (r != SAGE_OK)
        return SAGE_SETERR(r, "registering service '%s' (namespace '%s'): %s", name, ns,
                           sage_errdetail());
    sage__reg_path(path, sizeof path, ns, name);
    /* a file planted at the name by another user comes back as SAGE_EPERM
     * naming it and its owner: it cannot be removed, so the start fails */
    r = sage__shm_create(path, 0600, sizeof *reg, 0, sizeof *reg, &mem);
    if (r == SAGE_EEXIST && (r = live_owner(path, &owner)) == SAGE_OK) {
        if (owner != 0) {
            unlock_registry(lock);
            return SAGE_SETERR(SAGE_EEXIST,
                               "service '%s' (namespace '%s') is already served by pid %d",
                               name, ns, (int)owner);
        }
        remove_entry(ns, name); /* stale: its owner died without cleaning up */
        r = sage__shm_create(path, 0600, sizeof *reg, 0, sizeof *reg, &mem);
    }
    if (r == SAGE_OK) { /* before the lock goes: see the design notes */
        reg = mem;
        reg->version = SAGE__REG_VERSION;
        reg->size = sizeof *reg;
        reg->uid = (uint32_t)geteuid(); /* the files' owner, which readers check */
        sage__fig_init(&reg->fig, ns, name, SAGE_TRANSPORT_SHM);
    }
    unlock_registry(lock);
    if (r != SAGE_OK)
        return SAGE_SETERR(r, "registering service '%s' (namespace '%s'): %s", name, ns,
                           sage_errdetail());
    atomic_store_explicit(&reg->fig.heartbeat_ns, reg->fig.started_ns, memory_order_relaxed);
    *regp = reg;
    return SAGE_OK;
}

void sage__reg_remove_stale(const char *ns, const char *name)
{
    char path[SAGE__NAME_BUF];
    int32_t owner = 0;
    int lock;

    if (lock_registry(&lock, LOCK_WAIT_NS) != SAGE_OK)
        return; /* never without the lock: it might be a new owner's entry */
    sage__reg_path(path, sizeof path, ns, name);
    if (live_owner(path, &owner) == SAGE_OK && owner == 0)
        remove_entry(ns, name);
    unlock_registry(lock);
}

void sage__reg_publish(struct sage__reg *reg)
{
    atomic_store_explicit(&reg->magic, SAGE__REG_MAGIC, memory_order_release);
}

void sage__reg_destroy(struct sage__reg *reg, const char *ns, const char *name)
{
    char path[SAGE__NAME_BUF];
    struct sage__reg *cur = NULL;
    int lock = -1;

    if (reg == NULL)
        return;
    sage__reg_path(path, sizeof path, ns, name);
    /* briefly: the check below holds even without the lock, since no one
     * takes over the entry of a live owner, which we are; and a stop (say on
     * SIGTERM) must not wait seconds for a lock held elsewhere */
    lock_registry(&lock, DESTROY_LOCK_WAIT_NS);
    /* remove the name only if the entry there is still ours */
    if (map_entry(path, &cur) == SAGE_OK) {
        if (cur->fig.pid == reg->fig.pid && cur->fig.pid_start == reg->fig.pid_start &&
            cur->fig.started_ns == reg->fig.started_ns)
            sage__shm_unlink(path);
        unmap_entry(cur);
    }
    unlock_registry(lock);
    unmap_entry(reg);
}

sage_err sage__reg_open(struct sage__reg **regp, const char *ns, const char *name)
{
    char path[SAGE__NAME_BUF];
    struct sage__reg *reg = NULL;
    sage_err r;

    sage__reg_path(path, sizeof path, ns, name);
    r = map_entry(path, &reg);
    if (r == SAGE_ENOSERVICE)
        return SAGE_SETERR(SAGE_ENOSERVICE, "no service '%s' in namespace '%s' on this host", name,
                           ns);
    if (r == SAGE_OK && !valid(reg)) {
        unmap_entry(reg);
        r = SAGE_EUNAVAILABLE;
    }
    /* an entry being created looks like this for a few microseconds */
    if (r == SAGE_EUNAVAILABLE)
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s' is starting or its entry is corrupt",
                           name);
    if (r != SAGE_OK)
        return SAGE_SETERR(r, "service '%s': its registry entry: %s", name, sage_errdetail());
    if (reg->uid != (uint32_t)geteuid()) { /* a file of ours, but not written for us */
        uint32_t uid = reg->uid;

        unmap_entry(reg);
        return SAGE_SETERR(SAGE_EPERM,
                           "service '%s': its registry entry /dev/shm%s records uid %u, not this "
                           "user's (uid %u): refusing to use it",
                           name, path, (unsigned)uid, (unsigned)geteuid());
    }
    *regp = reg;
    return SAGE_OK;
}

void sage__reg_close(struct sage__reg *reg)
{
    if (reg)
        unmap_entry(reg);
}
