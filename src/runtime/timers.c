/*
 * timers.c - deadlines of pending calls.
 *
 * Design notes
 * - Calls with the same timeout ("span") expire in the order they were
 *   made, so each span keeps a FIFO ring of entries: adding is O(1), the
 *   earliest deadline is at a head. Programs use a handful of timeouts;
 *   beyond MAX_SPANS distinct ones, the last FIFO takes the rest and is kept
 *   sorted by insertion (rare, O(n)).
 * - A call that completes leaves its entry behind (removal would be O(n));
 *   entries identify their call by (index, generation, attempt), so a stale
 *   one is recognised and skipped. Each add drops up to two stale entries
 *   from its FIFO's head (calls mostly complete in order), a full FIFO is
 *   compacted and grows only if over half of it is live, and housekeeping
 *   trims the heads and compacts when stale entries outnumber live calls
 *   4:1. So a FIFO stays within about twice its live calls, however fast
 *   calls come and go.
 * - One mutex: calls add from any thread, the response thread expires.
 */
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "runtime/manager_internal.h"

#define MAX_SPANS 8

struct tent {
    int64_t deadline;
    uint32_t index, gen, attempt;
};

struct fifo {
    int64_t span;
    struct tent *buf;
    size_t cap, head, n; /* ring: entries head .. head + n - 1 (mod cap) */
};

struct sage__timers {
    pthread_mutex_t lock;
    sage__timer_stale_fn stale;
    void *arg;
    struct fifo f[MAX_SPANS];
    int nf;
    uint64_t total;
};

sage_err sage__timers_new(struct sage__timers **tp, sage__timer_stale_fn stale, void *arg)
{
    struct sage__timers *t = calloc(1, sizeof *t);

    if (t == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    t->stale = stale;
    t->arg = arg;
    pthread_mutex_init(&t->lock, NULL);
    *tp = t;
    return SAGE_OK;
}

void sage__timers_free(struct sage__timers *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < t->nf; i++)
        free(t->f[i].buf);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static struct tent *at(struct fifo *f, size_t k)
{
    return &f->buf[(f->head + k) % f->cap];
}

static bool is_stale(const struct sage__timers *t, const struct tent *e)
{
    return t->stale(t->arg, e->index, e->gen, e->attempt);
}

/* compact keeps f's live entries, in order; returns how many it dropped */
static size_t compact(const struct sage__timers *t, struct fifo *f)
{
    size_t keep = 0, dropped;

    for (size_t k = 0; k < f->n; k++) {
        struct tent e = *at(f, k);

        if (!is_stale(t, &e))
            *at(f, keep++) = e;
    }
    dropped = f->n - keep;
    f->n = keep;
    return dropped;
}

static bool push(struct sage__timers *t, struct fifo *f, const struct tent *e)
{
    /* most calls complete in order: their entries leave from the head */
    for (int k = 0; k < 2 && f->n && is_stale(t, at(f, 0)); k++) {
        f->head = (f->head + 1) % f->cap;
        f->n--;
        t->total--;
    }
    if (f->n == f->cap) { /* full: compact, and grow only if mostly live */
        if (f->cap > 0)
            t->total -= compact(t, f);
        if (f->cap == 0 || f->n > f->cap / 2) {
            size_t cap = f->cap ? f->cap * 2 : 256;
            struct tent *buf = malloc(cap * sizeof *buf);

            if (buf == NULL)
                return false;
            for (size_t k = 0; k < f->n; k++)
                buf[k] = *at(f, k);
            free(f->buf);
            f->buf = buf;
            f->cap = cap;
            f->head = 0;
        }
    }
    /* the overflow FIFO mixes spans: keep it sorted (insertion from the back) */
    {
        size_t k = f->n;

        while (k > 0 && at(f, k - 1)->deadline > e->deadline) {
            *at(f, k) = *at(f, k - 1);
            k--;
        }
        *at(f, k) = *e;
    }
    f->n++;
    return true;
}

void sage__timers_add(struct sage__timers *t, uint32_t index, uint32_t gen, uint32_t attempt,
                      int64_t deadline_ns, int64_t span_ns)
{
    struct tent e = {deadline_ns, index, gen, attempt};
    struct fifo *f = NULL;

    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < t->nf && f == NULL; i++)
        if (t->f[i].span == span_ns)
            f = &t->f[i];
    if (f == NULL)
        f = t->nf < MAX_SPANS ? &t->f[t->nf++] : &t->f[MAX_SPANS - 1];
    if (f->n == 0)
        f->span = span_ns;
    /* entries of one span arrive in deadline order but for races of a few
     * microseconds between threads; push() places them right anyway */
    if (push(t, f, &e))
        t->total++;
    pthread_mutex_unlock(&t->lock);
}

size_t sage__timers_footprint(struct sage__timers *t, size_t *entries)
{
    size_t cap = 0;

    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < t->nf; i++)
        cap += t->f[i].cap;
    if (entries)
        *entries = (size_t)t->total;
    pthread_mutex_unlock(&t->lock);
    return cap;
}

int64_t sage__timers_next(struct sage__timers *t)
{
    int64_t next = -1;

    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < t->nf; i++)
        if (t->f[i].n && (next < 0 || at(&t->f[i], 0)->deadline < next))
            next = at(&t->f[i], 0)->deadline;
    pthread_mutex_unlock(&t->lock);
    return next;
}

void sage__timers_expire(struct sage__timers *t, int64_t now,
                         void (*fn)(void *arg, uint32_t index, uint32_t gen, uint32_t attempt),
                         void *arg)
{
    for (;;) {
        struct tent e;
        bool found = false;

        pthread_mutex_lock(&t->lock);
        for (int i = 0; i < t->nf && !found; i++) {
            struct fifo *f = &t->f[i];

            if (f->n && at(f, 0)->deadline <= now) {
                e = *at(f, 0);
                f->head = (f->head + 1) % f->cap;
                f->n--;
                t->total--;
                found = true;
            }
        }
        pthread_mutex_unlock(&t->lock);
        if (!found)
            return;
        fn(arg, e.index, e.gen, e.attempt); /* without the lock: it may add */
    }
}

void sage__timers_trim(struct sage__timers *t, uint64_t live)
{
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < t->nf; i++) {
        struct fifo *f = &t->f[i];

        while (f->n && is_stale(t, at(f, 0))) {
            f->head = (f->head + 1) % f->cap;
            f->n--;
            t->total--;
        }
    }
    if (t->total > 4 * live + 4096) /* compact: keep live entries, in order */
        for (int i = 0; i < t->nf; i++)
            t->total -= compact(t, &t->f[i]);
    pthread_mutex_unlock(&t->lock);
}
