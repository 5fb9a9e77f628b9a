/*
 * figures.c - a task's live figures, and reading them as a status.
 *
 * Design notes
 * - Writers are the task's threads (any number), readers any process of the
 *   user: counters are relaxed atomics, strings are seqlocked (the writer
 *   makes the sequence odd, writes, makes it even; a reader copies byte by
 *   byte and retries while the sequence was odd or moved).
 * - The health window is SAGE__FIG_WINDOW_S one-second slots indexed by the
 *   wall-clock second. The first writer of a new second claims the slot
 *   with a CAS on its second and zeroes it; a count racing that reset may
 *   be lost, which a health estimate can afford.
 */
#include "transport/figures.h"

#include <stdio.h>
#include <string.h>

#include "platform/clock.h"
#include "platform/proc.h"

const double sage_latency_bounds[SAGE_LATENCY_BUCKETS] = {
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
    5e-3, 1e-2, 2.5e-2, 5e-2, 0.1,  0.25,   0.5,  1,    2.5,    5,    10,
};

void sage__fig_init(struct sage__figures *f, const char *ns, const char *name,
                    sage_transport transport)
{
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->ns, sizeof f->ns, "%s", ns);
    f->pid = sage__pid();
    f->pid_start = sage__pid_start_time(f->pid);
    f->transport = (uint32_t)transport;
    f->started_ns = sage__wall_ns();
    f->started_mono_ns = sage__now_ns();
}

/* caller_fault: an answer that says the request was wrong, not the service */
static bool caller_fault(sage_err e)
{
    return e == SAGE_ENOMETHOD || e == SAGE_EBADARGS || e == SAGE_EREJECTED || e == SAGE_EPROTO ||
           e == SAGE_EVERSION || e == SAGE_EMSGSIZE;
}

void sage__fig_count(struct sage__figures *f, struct sage__fig_method *m, int64_t took_ns,
                     sage_err status)
{
    if (status != SAGE_OK)
        atomic_fetch_add_explicit(&f->errors, 1, memory_order_relaxed);
    if (!caller_fault(status)) { /* the health window judges the service alone */
        int64_t sec = sage__wall_coarse_ns() / 1000000000;
        struct sage__fig_slot *s = &f->window[sec % SAGE__FIG_WINDOW_S];
        int64_t was = atomic_load_explicit(&s->second, memory_order_acquire);

        if (was != sec && atomic_compare_exchange_strong_explicit(&s->second, &was, sec,
                                                                  memory_order_acq_rel,
                                                                  memory_order_acquire)) {
            atomic_store_explicit(&s->calls, 0, memory_order_relaxed);
            atomic_store_explicit(&s->failures, 0, memory_order_relaxed);
        }
        atomic_fetch_add_explicit(&s->calls, 1, memory_order_relaxed);
        if (status != SAGE_OK)
            atomic_fetch_add_explicit(&s->failures, 1, memory_order_relaxed);
    }
    sage__hist_add(&f->lat, (uint64_t)took_ns);
    atomic_fetch_add_explicit(&f->lat_sum_ns, (uint64_t)took_ns, memory_order_relaxed);
    if (m) {
        if (status != SAGE_OK)
            atomic_fetch_add_explicit(&m->errors, 1, memory_order_relaxed);
        sage__hist_add(&m->lat, (uint64_t)took_ns);
        atomic_fetch_add_explicit(&m->lat_sum_ns, (uint64_t)took_ns, memory_order_relaxed);
    }
}

/* A seqlock over a string: the bytes are relaxed atomics, so a reader
 * racing the writer reads a torn string, never undefined behaviour, and
 * the sequence tells it to read again. */
static void seq_write(_Atomic uint32_t *seq, _Atomic char *dst, size_t cap, const char *text)
{
    size_t n = strlen(text);

    if (n >= cap)
        n = cap - 1;
    atomic_fetch_add_explicit(seq, 1, memory_order_acq_rel);
    for (size_t i = 0; i < n; i++)
        atomic_store_explicit(&dst[i], text[i], memory_order_relaxed);
    atomic_store_explicit(&dst[n], '\0', memory_order_relaxed);
    atomic_fetch_add_explicit(seq, 1, memory_order_release);
}

static void seq_read(const _Atomic uint32_t *seq, const _Atomic char *src, size_t srcsize,
                     char *out, size_t cap)
{
    size_t n = cap < srcsize ? cap : srcsize;

    for (int tries = 0; tries < 100; tries++) {
        uint32_t s1 = atomic_load_explicit(seq, memory_order_acquire);

        if (s1 & 1)
            continue;
        for (size_t i = 0; i < n; i++)
            out[i] = atomic_load_explicit(&src[i], memory_order_relaxed);
        out[n - 1] = '\0';
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(seq, memory_order_relaxed) == s1)
            return;
    }
    out[0] = '\0';
}

void sage__fig_set_drop(struct sage__figures *f, const char *why)
{
    atomic_fetch_add_explicit(&f->dropped, 1, memory_order_relaxed);
    seq_write(&f->drop_seq, f->last_drop, sizeof f->last_drop, why);
}

void sage__fig_set_state(struct sage__figures *f, sage_state s, const char *reason)
{
    seq_write(&f->reason_seq, f->reason, sizeof f->reason, reason ? reason : "");
    atomic_store_explicit(&f->state, (uint32_t)s, memory_order_release);
}

bool sage__fig_owner_alive(const struct sage__figures *f)
{
    uint64_t start;

    if (f->pid <= 0 || !sage__pid_alive(f->pid))
        return false;
    start = sage__pid_start_time(f->pid);
    return start == 0 || f->pid_start == 0 || start == f->pid_start;
}

/* window sums the slots of the last SAGE__FIG_WINDOW_S seconds */
static void window(const struct sage__figures *f, int64_t now_s, uint64_t *calls,
                   uint64_t *failures)
{
    *calls = *failures = 0;
    for (int i = 0; i < SAGE__FIG_WINDOW_S; i++) {
        const struct sage__fig_slot *s = &f->window[i];
        int64_t sec = atomic_load_explicit(&s->second, memory_order_acquire);

        if (sec > now_s - SAGE__FIG_WINDOW_S && sec <= now_s) {
            *calls += atomic_load_explicit(&s->calls, memory_order_relaxed);
            *failures += atomic_load_explicit(&s->failures, memory_order_relaxed);
        }
    }
}

sage_state sage__fig_health(const struct sage__figures *f, int64_t now_wall_ns, char *buf,
                            size_t cap)
{
    sage_state s = (sage_state)atomic_load_explicit(&f->state, memory_order_acquire);
    int64_t full = atomic_load_explicit(&f->full_since_ns, memory_order_relaxed);
    uint64_t calls, failures;

    seq_read(&f->reason_seq, f->reason, sizeof f->reason, buf, cap);
    if (f->pid != 0 && !sage__fig_owner_alive(f)) {
        snprintf(buf, cap, "its process (pid %d) is gone", (int)f->pid);
        return SAGE_STATE_FAILED;
    }
    if (s != SAGE_STATE_RUNNING && s != SAGE_STATE_DEGRADED)
        return s;
    if (full > 0 && now_wall_ns - full > (int64_t)f->queue_timeout_ms * 1000000) {
        snprintf(buf, cap, "request queue full for %.1f s (queue_timeout %.1f s)",
                 (now_wall_ns - full) / 1e9, f->queue_timeout_ms / 1e3);
        return SAGE_STATE_DEGRADED;
    }
    window(f, now_wall_ns / 1000000000, &calls, &failures);
    if (calls >= SAGE__FIG_MIN_CALLS && f->error_threshold_ppm > 0 &&
        failures * 1000000 >= (uint64_t)f->error_threshold_ppm * calls) {
        snprintf(buf, cap, "%llu of %llu calls failed in the last %d s (threshold %.0f%%)",
                 (unsigned long long)failures, (unsigned long long)calls, SAGE__FIG_WINDOW_S,
                 f->error_threshold_ppm / 1e4);
        return SAGE_STATE_DEGRADED;
    }
    buf[0] = '\0';
    return SAGE_STATE_RUNNING;
}

void sage__fig_status(const struct sage__figures *f, uint64_t queue_depth, uint64_t queue_full,
                      sage_status *st)
{
    int64_t now = sage__wall_ns();

    memset(st, 0, sizeof *st);
    /* another process may have written these: bound every string read */
    snprintf(st->name, sizeof st->name, "%.*s", SAGE_NAME_MAX, f->name);
    snprintf(st->ns, sizeof st->ns, "%.*s", SAGE_NAME_MAX, f->ns);
    st->transport = (sage_transport)f->transport;
    st->pid = f->pid;
    st->owner_alive = f->pid == 0 || sage__fig_owner_alive(f);
    st->state = sage__fig_health(f, now, st->reason, sizeof st->reason);
    st->uptime_s = f->started_mono_ns ? (sage__now_ns() - f->started_mono_ns) / 1e9 : 0;
    if (!st->owner_alive) { /* its state is what it was when it died */
        int64_t hb = atomic_load_explicit(&f->heartbeat_ns, memory_order_relaxed);

        st->uptime_s = hb > f->started_ns ? (hb - f->started_ns) / 1e9 : 0;
    }
    if (st->state != SAGE_STATE_RUNNING && st->state != SAGE_STATE_DEGRADED && st->owner_alive)
        st->uptime_s = 0;
    st->errors = atomic_load_explicit(&f->errors, memory_order_relaxed);
    st->in_flight = atomic_load_explicit(&f->in_flight, memory_order_relaxed);
    st->queue_depth = queue_depth;
    st->queue_full = queue_full;
    st->expired = atomic_load_explicit(&f->expired, memory_order_relaxed);
    st->malformed = atomic_load_explicit(&f->malformed, memory_order_relaxed);
    st->rejected = atomic_load_explicit(&f->rejected, memory_order_relaxed);
    st->dropped = atomic_load_explicit(&f->dropped, memory_order_relaxed);
    st->latency_p50_us = sage__hist_quantile(&f->lat, 0.50);
    st->latency_p99_us = sage__hist_quantile(&f->lat, 0.99);
    sage__hist_cumulative(&f->lat, sage_latency_bounds, SAGE_LATENCY_BUCKETS, st->latency.le,
                          &st->latency.count);
    st->requests = st->latency.count; /* every call answered is in the histogram */
    st->latency.sum_s = atomic_load_explicit(&f->lat_sum_ns, memory_order_relaxed) / 1e9;
    st->last_activity_ns = atomic_load_explicit(&f->last_activity_ns, memory_order_relaxed);
    st->heartbeat_ns = atomic_load_explicit(&f->heartbeat_ns, memory_order_relaxed);
    st->max_workers = f->max_workers;
    st->request_queue_size = f->request_queue_size;
    st->queue_timeout_ms = f->queue_timeout_ms;
    seq_read(&f->drop_seq, f->last_drop, sizeof f->last_drop, st->last_drop, sizeof st->last_drop);
    st->nmethods = f->nmethods < SAGE__FIG_METHODS ? f->nmethods : SAGE__FIG_METHODS;
    if (st->nmethods > SAGE_STATUS_METHODS_MAX)
        st->nmethods = SAGE_STATUS_METHODS_MAX;
    for (size_t i = 0; i < st->nmethods; i++) {
        const struct sage__fig_method *m = &f->methods[i];

        snprintf(st->methods[i].name, sizeof st->methods[i].name, "%.*s", SAGE_NAME_MAX, m->name);
        st->methods[i].errors = atomic_load_explicit(&m->errors, memory_order_relaxed);
        st->methods[i].latency_p50_us = sage__hist_quantile(&m->lat, 0.50);
        st->methods[i].latency_p99_us = sage__hist_quantile(&m->lat, 0.99);
        sage__hist_cumulative(&m->lat, sage_latency_bounds, SAGE_LATENCY_BUCKETS,
                              st->methods[i].latency.le, &st->methods[i].latency.count);
        st->methods[i].requests = st->methods[i].latency.count;
        st->methods[i].latency.sum_s =
            atomic_load_explicit(&m->lat_sum_ns, memory_order_relaxed) / 1e9;
    }
}
