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
 *   and calls a service maps its entry once.
 */
#include "transport/shm_reg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "platform/proc.h"
#include "platform/shm.h"
#include "transport/names.h"
#include "sage/queue.h"

static int lock_registry(void)
{
    char path[64];
    int fd;

    snprintf(path, sizeof path, "/dev/shm/sage.r.%u.lock", (unsigned)getuid());
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
            ;
    return fd; /* -1: proceed unlocked (best effort) */
}

static void unlock_registry(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

/* map_entry maps the entry at path: SAGE_ENOSERVICE if there is none,
 * SAGE_EUNAVAILABLE if it is not of our size (being created, or another
 * layout). */
static sage_err map_entry(const char *path, struct sage__reg **regp)
{
    void *mem = NULL;
    size_t size = 0;
    sage_err r = sage__shm_open(path, &mem, &size, 0);

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

/* live_owner returns the pid of the live process that holds the entry at
 * path (published or still being created), or 0 if none: no entry, or a
 * stale one. Registry lock held. */
static int32_t live_owner(const char *path)
{
    struct sage__reg *reg = NULL;
    int32_t pid = 0;

    if (map_entry(path, &reg) != SAGE_OK)
        return 0;
    if (reg->version == SAGE__REG_VERSION && reg->size == sizeof *reg && reg->fig.pid > 0 &&
        sage__fig_owner_alive(&reg->fig))
        pid = reg->fig.pid;
    unmap_entry(reg);
    return pid;
}

/* remove_entry removes the entry of ns/name and its request queue; lock held */
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
    int lock = lock_registry();
    void *mem = NULL;
    int32_t owner;
    sage_err r;

    sage__reg_path(path, sizeof path, ns, name);
    r = sage__shm_create(path, 0600, sizeof *reg, sizeof *reg, &mem);
    if (r == SAGE_EEXIST) {
        if ((owner = live_owner(path)) != 0) {
            unlock_registry(lock);
            return SAGE_SETERR(SAGE_EEXIST,
                               "service '%s' (namespace '%s') is already served by pid %d",
                               name, ns, (int)owner);
        }
        remove_entry(ns, name); /* stale: its owner died without cleaning up */
        r = sage__shm_create(path, 0600, sizeof *reg, sizeof *reg, &mem);
    }
    if (r == SAGE_OK) { /* before the lock goes: see the design notes */
        reg = mem;
        reg->version = SAGE__REG_VERSION;
        reg->size = sizeof *reg;
        reg->uid = (uint32_t)geteuid();
        sage__fig_init(&reg->fig, ns, name, SAGE_TRANSPORT_SHM);
    }
    unlock_registry(lock);
    if (r != SAGE_OK)
        return SAGE_SETERR(r, "registering service '%s': cannot create %s", name, path);
    atomic_store_explicit(&reg->fig.heartbeat_ns, reg->fig.started_ns, memory_order_relaxed);
    *regp = reg;
    return SAGE_OK;
}

void sage__reg_remove_stale(const char *ns, const char *name)
{
    char path[SAGE__NAME_BUF];
    int lock = lock_registry();

    sage__reg_path(path, sizeof path, ns, name);
    if (live_owner(path) == 0)
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
    int lock;

    if (reg == NULL)
        return;
    sage__reg_path(path, sizeof path, ns, name);
    lock = lock_registry();
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
        return SAGE_SETERR(r, "service '%s': cannot open its registry entry", name);
    *regp = reg;
    return SAGE_OK;
}

void sage__reg_close(struct sage__reg *reg)
{
    if (reg)
        unmap_entry(reg);
}

