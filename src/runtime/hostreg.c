/*
 * hostreg.c - registry entries in /dev/shm.
 *
 * Design notes
 * - A name is taken by creating its segment with O_EXCL: of two processes
 *   starting the same service at once, one wins.
 * - An entry whose owner died (pid gone, or reused: start time differs) is
 *   stale: the next process to start that name removes it and its request
 *   queue, then creates its own. Stale removal and creation run under an
 *   flock on a per-user lock file, so two processes cleaning the same stale
 *   entry cannot remove each other's fresh one. The kernel drops the lock
 *   if its holder dies.
 * - The creator fills the identity fields, then publishes magic with
 *   release ordering; readers check magic, version and size first.
 */
#include "runtime/hostreg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/clock.h"
#include "platform/proc.h"
#include "runtime/names.h"
#include "sage/queue.h"

const double sage_latency_bounds[SAGE_LATENCY_BUCKETS] = {
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
    5e-3, 1e-2, 2.5e-2, 5e-2, 0.1,  0.25,   0.5,  1,    2.5,    5,    10,
};

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

static sage_err map_entry(const char *path, int flags, struct sage__reg **regp)
{
    int fd = shm_open(path, flags | O_CLOEXEC, 0600);
    struct stat st;
    void *mem;

    if (fd < 0)
        return errno == ENOENT ? SAGE_ENOSERVICE : sage__from_errno(errno);
    if ((flags & O_CREAT) && ftruncate(fd, sizeof(struct sage__reg)) != 0) {
        sage_err r = sage__from_errno(errno);

        close(fd);
        shm_unlink(path);
        return r;
    }
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(struct sage__reg)) {
        close(fd);
        return SAGE_EPROTO;
    }
    mem = mmap(NULL, sizeof(struct sage__reg), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (mem == MAP_FAILED)
        return sage__from_errno(errno);
    *regp = mem;
    return SAGE_OK;
}

static int valid(const struct sage__reg *reg)
{
    return atomic_load_explicit(&reg->magic, memory_order_acquire) == SAGE__REG_MAGIC &&
           reg->version == SAGE__REG_VERSION && reg->size == sizeof *reg;
}

int sage__reg_owner_alive(const struct sage__reg *reg)
{
    uint64_t start;

    if (!sage__pid_alive(reg->pid))
        return 0;
    start = sage__pid_start_time(reg->pid);
    return start == 0 || reg->pid_start == 0 || start == reg->pid_start;
}

sage_err sage__reg_create(struct sage__reg **regp, const char *ns, const char *name)
{
    char path[SAGE__NAME_BUF], queue[SAGE__NAME_BUF];
    struct sage__reg *reg = NULL;
    int lock = lock_registry();
    sage_err r;

    sage__reg_path(path, sizeof path, ns, name);
    sage__req_queue_name(queue, sizeof queue, ns, name);
    r = map_entry(path, O_RDWR | O_CREAT | O_EXCL, &reg);
    if (r == SAGE_EEXIST) {
        struct sage__reg *old = NULL;

        if (map_entry(path, O_RDWR, &old) == SAGE_OK) {
            if (valid(old) && sage__reg_owner_alive(old)) {
                int32_t pid = old->pid;

                munmap(old, sizeof *old);
                unlock_registry(lock);
                return SAGE_SETERR(SAGE_EEXIST,
                                   "service '%s' (namespace '%s') is already served by pid %d",
                                   name, ns, (int)pid);
            }
            munmap(old, sizeof *old);
        }
        /* stale: its owner died without cleaning up */
        shm_unlink(path);
        sage_queue_unlink(queue);
        r = map_entry(path, O_RDWR | O_CREAT | O_EXCL, &reg);
    }
    unlock_registry(lock);
    if (r != SAGE_OK)
        return SAGE_SETERR(r, "registering service '%s': cannot create %s", name, path);
    snprintf(reg->name, sizeof reg->name, "%s", name);
    snprintf(reg->ns, sizeof reg->ns, "%s", ns);
    snprintf(reg->queue, sizeof reg->queue, "%.159s", queue); /* names fit: <= 145 bytes */
    reg->version = SAGE__REG_VERSION;
    reg->size = sizeof *reg;
    reg->pid = sage__pid();
    reg->uid = (uint32_t)getuid();
    reg->pid_start = sage__pid_start_time(reg->pid);
    reg->started_ns = sage__wall_ns();
    reg->started_mono_ns = sage__now_ns();
    atomic_store_explicit(&reg->heartbeat_ns, reg->started_ns, memory_order_relaxed);
    *regp = reg;
    return SAGE_OK;
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
    if (map_entry(path, O_RDWR, &cur) == SAGE_OK) {
        if (cur->pid == reg->pid && cur->pid_start == reg->pid_start &&
            cur->started_ns == reg->started_ns)
            shm_unlink(path);
        munmap(cur, sizeof *cur);
    }
    unlock_registry(lock);
    munmap(reg, sizeof *reg);
}

sage_err sage__reg_open(struct sage__reg **regp, const char *ns, const char *name)
{
    char path[SAGE__NAME_BUF];
    struct sage__reg *reg = NULL;
    sage_err r;

    sage__reg_path(path, sizeof path, ns, name);
    r = map_entry(path, O_RDWR, &reg);
    if (r == SAGE_ENOSERVICE)
        return SAGE_SETERR(SAGE_ENOSERVICE, "no service '%s' in namespace '%s' on this host", name,
                           ns);
    if (r != SAGE_OK)
        return SAGE_SETERR(r, "service '%s': cannot open its registry entry", name);
    if (!valid(reg)) {
        munmap(reg, sizeof *reg);
        /* an entry being created looks like this for a few microseconds */
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "service '%s' is starting or its entry is corrupt",
                           name);
    }
    *regp = reg;
    return SAGE_OK;
}

void sage__reg_close(struct sage__reg *reg)
{
    if (reg)
        munmap(reg, sizeof *reg);
}

void sage__reg_set_drop(struct sage__reg *reg, const char *why)
{
    /* a seqlock: readers retry while the sequence is odd or moved */
    atomic_fetch_add_explicit(&reg->drop_seq, 1, memory_order_acq_rel);
    snprintf(reg->last_drop, sizeof reg->last_drop, "%s", why);
    atomic_fetch_add_explicit(&reg->drop_seq, 1, memory_order_release);
}

static void read_drop(const struct sage__reg *reg, char *out, size_t cap)
{
    for (int tries = 0; tries < 100; tries++) {
        uint32_t s1 = atomic_load_explicit(&reg->drop_seq, memory_order_acquire);

        if (s1 & 1)
            continue;
        for (size_t i = 0; i < cap; i++) /* bytewise: the writer may race us */
            out[i] = ((volatile const char *)reg->last_drop)[i];
        out[cap - 1] = '\0';
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&reg->drop_seq, memory_order_relaxed) == s1)
            return;
    }
    out[0] = '\0';
}

void sage__reg_status(const struct sage__reg *reg, uint64_t queue_depth, sage_status *st)
{
    memset(st, 0, sizeof *st);
    /* another process wrote these: bound every string read */
    snprintf(st->name, sizeof st->name, "%.*s", SAGE_NAME_MAX, reg->name);
    snprintf(st->ns, sizeof st->ns, "%.*s", SAGE_NAME_MAX, reg->ns);
    st->transport = (sage_transport)reg->transport;
    st->state = (sage_state)atomic_load_explicit(&reg->state, memory_order_acquire);
    st->pid = reg->pid;
    st->owner_alive = sage__reg_owner_alive(reg);
    st->uptime_s = reg->started_mono_ns ? (sage__now_ns() - reg->started_mono_ns) / 1e9 : 0;
    if (!st->owner_alive && reg->pid != 0) {
        /* its process died: the entry's state is what it was then */
        int64_t hb = atomic_load_explicit(&reg->heartbeat_ns, memory_order_relaxed);

        st->state = SAGE_STATE_FAILED;
        st->uptime_s = hb > reg->started_ns ? (hb - reg->started_ns) / 1e9 : 0;
    }
    st->requests = atomic_load_explicit(&reg->requests, memory_order_relaxed);
    st->errors = atomic_load_explicit(&reg->errors, memory_order_relaxed);
    st->in_flight = atomic_load_explicit(&reg->in_flight, memory_order_relaxed);
    st->queue_depth = queue_depth;
    st->expired = atomic_load_explicit(&reg->expired, memory_order_relaxed);
    st->malformed = atomic_load_explicit(&reg->malformed, memory_order_relaxed);
    st->rejected = atomic_load_explicit(&reg->rejected, memory_order_relaxed);
    st->latency_p50_us = sage__hist_quantile(&reg->lat, 0.50);
    st->latency_p99_us = sage__hist_quantile(&reg->lat, 0.99);
    sage__hist_cumulative(&reg->lat, sage_latency_bounds, SAGE_LATENCY_BUCKETS, st->latency.le,
                          &st->latency.count);
    st->latency.sum_s = atomic_load_explicit(&reg->lat_sum_ns, memory_order_relaxed) / 1e9;
    st->last_activity_ns = atomic_load_explicit(&reg->last_activity_ns, memory_order_relaxed);
    st->heartbeat_ns = atomic_load_explicit(&reg->heartbeat_ns, memory_order_relaxed);
    st->max_workers = reg->max_workers;
    st->request_queue_size = reg->request_queue_size;
    st->queue_timeout = reg->queue_timeout_ms / 1000.0;
    read_drop(reg, st->last_drop, sizeof st->last_drop);
    st->nmethods = reg->nmethods < SAGE__REG_METHODS ? reg->nmethods : SAGE__REG_METHODS;
    if (st->nmethods > sizeof st->methods / sizeof st->methods[0])
        st->nmethods = sizeof st->methods / sizeof st->methods[0];
    for (size_t i = 0; i < st->nmethods; i++) {
        const struct sage__reg_method *m = &reg->methods[i];

        snprintf(st->methods[i].name, sizeof st->methods[i].name, "%.*s", SAGE_NAME_MAX, m->name);
        st->methods[i].requests = atomic_load_explicit(&m->requests, memory_order_relaxed);
        st->methods[i].errors = atomic_load_explicit(&m->errors, memory_order_relaxed);
        st->methods[i].latency_p50_us = sage__hist_quantile(&m->lat, 0.50);
        st->methods[i].latency_p99_us = sage__hist_quantile(&m->lat, 0.99);
        sage__hist_cumulative(&m->lat, sage_latency_bounds, SAGE_LATENCY_BUCKETS,
                              st->methods[i].latency.le, &st->methods[i].latency.count);
        st->methods[i].latency.sum_s = atomic_load_explicit(&m->lat_sum_ns, memory_order_relaxed) / 1e9;
    }
}
