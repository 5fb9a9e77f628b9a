/* hist.h - a latency histogram that lives in shared memory. */
#ifndef SAGE_RUNTIME_HIST_H
#define SAGE_RUNTIME_HIST_H

#include <stdatomic.h>
#include <stdint.h>

/*
 * Log-linear buckets: four per power of two from 128 ns to 2^37 ns (137 s),
 * bucket 0 below 128 ns, the last one above. A bucket spans at most a
 * fifth of its value, so percentiles are good to about 10 %. Writers add
 * with relaxed atomics (any number of threads and processes); readers take
 * a snapshot.
 */
#define SAGE__HIST_N 122

struct sage__hist {
    _Atomic uint64_t b[SAGE__HIST_N];
};

/* sage__hist_add records one duration in ns. */
void sage__hist_add(struct sage__hist *h, uint64_t ns);

/* sage__hist_quantile returns the q-quantile (0..1) in microseconds, 0 for
 * an empty histogram. */
double sage__hist_quantile(const struct sage__hist *h, double q);

/* sage__hist_upper returns bucket i's upper bound in ns (for exporters). */
uint64_t sage__hist_upper(int i);

/* sage__hist_cumulative fills le[k] with the calls known to be <= bounds[k]
 * seconds (a fine bucket counts once it lies wholly below a bound), and
 * *count with all calls. */
void sage__hist_cumulative(const struct sage__hist *h, const double *bounds, int n, uint64_t *le,
                           uint64_t *count);

#endif
