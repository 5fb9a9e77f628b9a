/*
 * shm_reg.h - the host registry: one shm segment per host-registered
 * service ("/sage.r.<uid>.<ns>.<name>"), holding who serves it and its live
 * figures. Any process of the same user can open it to check that the
 * service's owner lives and read its status; callers derive the request
 * queue's name themselves (names.h). Entries of other users are refused
 * (shm_reg.c's design notes).
 *
 * The same struct, in heap memory, carries the figures of local tasks: one
 * code path updates both.
 */
#ifndef SAGE_TRANSPORT_SHM_REG_H
#define SAGE_TRANSPORT_SHM_REG_H

#include <stdatomic.h>
#include <stdint.h>

#include "transport/figures.h"
#include "sage/task.h"

#define SAGE__REG_MAGIC 0x3247455245474153ull /* "SAGEREG2" */
#define SAGE__REG_VERSION 2u

/* The segment: a header checked before anything else is read, then the
 * task's figures (transport/figures.h), whose identity fields say who
 * serves the name. */
struct sage__reg {
    _Atomic uint64_t magic;
    uint32_t version;
    uint32_t size; /* sizeof(struct sage__reg) of the writer */
    uint32_t uid;  /* the creator's effective uid */
    uint32_t pad_;
    struct sage__figures fig;
};

/*
 * sage__reg_create makes this process's registry entry for ns/name, taking
 * over (and cleaning) an entry whose owner died. SAGE_EEXIST, with the
 * owner's pid in the detail, if a live process holds the name; SAGE_EPERM,
 * naming the file and its owner, if the entry or the registry lock is not
 * this user's own; SAGE_EBUSY if the lock stays held for 5 s. The entry is
 * mapped into *regp; unmap with sage__reg_destroy.
 */
sage_err sage__reg_create(struct sage__reg **regp, const char *ns, const char *name);

/* sage__reg_remove_stale removes ns/name's entry and its request queue if
 * the entry's owner is dead (under the registry lock: never an entry that
 * a new owner has just taken over). */
void sage__reg_remove_stale(const char *ns, const char *name);

/* sage__reg_publish makes a created entry visible to readers: call it once
 * every identity field is written (release ordering on magic). */
void sage__reg_publish(struct sage__reg *reg);

/* sage__reg_destroy removes the entry (if still ours) and unmaps it. */
void sage__reg_destroy(struct sage__reg *reg, const char *ns, const char *name);

/* sage__reg_open maps ns/name's entry read-write for reading its figures and
 * identity; SAGE_ENOSERVICE if there is none, SAGE_EPERM if the file is not
 * this user's own or records another uid. Unmap with sage__reg_close. */
sage_err sage__reg_open(struct sage__reg **regp, const char *ns, const char *name);

/* sage__reg_close unmaps an entry opened with sage__reg_open. */
void sage__reg_close(struct sage__reg *reg);


#endif
