/* hist.c - log-linear latency buckets. */
#include "transport/hist.h"

static int bucket(uint64_t ns)
{
    int msb, idx;

    if (ns < 128)
        return 0;
    msb = 63 - __builtin_clzll(ns);
    idx = 1 + (msb - 7) * 4 + (int)((ns >> (msb - 2)) & 3);
    return idx < SAGE__HIST_N ? idx : SAGE__HIST_N - 1;
}

static uint64_t lower(int i)
{
    int msb = 7 + (i - 1) / 4, sub = (i - 1) % 4;

    return i == 0 ? 0 : (uint64_t)(4 + sub) << (msb - 2);
}

uint64_t sage__hist_upper(int i)
{
    int msb = 7 + (i - 1) / 4, sub = (i - 1) % 4;

    if (i == 0)
        return 128;
    return (uint64_t)(5 + sub) << (msb - 2);
}

void sage__hist_add(struct sage__hist *h, uint64_t ns)
{
    atomic_fetch_add_explicit(&h->b[bucket(ns)], 1, memory_order_relaxed);
}

double sage__hist_quantile(const struct sage__hist *h, double q)
{
    uint64_t snap[SAGE__HIST_N], total = 0, seen = 0;
    double want;

    for (int i = 0; i < SAGE__HIST_N; i++) {
        snap[i] = atomic_load_explicit(&h->b[i], memory_order_relaxed);
        total += snap[i];
    }
    if (total == 0)
        return 0;
    want = q * (double)total;
    for (int i = 0; i < SAGE__HIST_N; i++) {
        if (snap[i] && (double)(seen + snap[i]) >= want) {
            /* interpolate inside the bucket */
            double lo = (double)lower(i), hi = (double)sage__hist_upper(i);
            double frac = (want - (double)seen) / (double)snap[i];

            return (lo + (hi - lo) * (frac < 0 ? 0 : frac)) / 1000.0;
        }
        seen += snap[i];
    }
    return (double)sage__hist_upper(SAGE__HIST_N - 1) / 1000.0;
}

void sage__hist_cumulative(const struct sage__hist *h, const double *bounds, int n, uint64_t *le,
                           uint64_t *count)
{
    uint64_t total = 0;

    for (int k = 0; k < n; k++)
        le[k] = 0;
    for (int i = 0; i < SAGE__HIST_N; i++) {
        uint64_t c = atomic_load_explicit(&h->b[i], memory_order_relaxed);
        double upper_s = (double)sage__hist_upper(i) / 1e9;

        total += c;
        if (i == SAGE__HIST_N - 1)
            break; /* the overflow bucket is only in the count ("+Inf") */
        for (int k = 0; k < n; k++)
            if (upper_s <= bounds[k] * (1 + 1e-9)) /* the bounds are decimal */
                le[k] += c;
    }
    *count = total;
}
