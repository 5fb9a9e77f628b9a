/* test_timers.c - the deadline FIFOs of the manager (src/runtime/timers.c),
 * and the deadline arithmetic of platform/clock.h. */
#include <stdbool.h>
#include <stdint.h>

#include "harness.h"
#include "platform/clock.h"
#include "runtime/manager_internal.h"

/* live[i]: entry (i, gen 1, attempt 0) still matters */
#define N 200000
static bool live[N];

static bool stale(void *arg, uint32_t index, uint32_t gen, uint32_t attempt)
{
    (void)arg;
    (void)gen;
    (void)attempt;
    return index >= N || !live[index];
}

struct seen {
    uint32_t n, last;
    bool ordered;
};

static void on_expire(void *arg, uint32_t index, uint32_t gen, uint32_t attempt)
{
    struct seen *s = arg;

    (void)gen;
    (void)attempt;
    if (!live[index])
        return; /* stale: skipped, as the manager does */
    if (s->n > 0 && index < s->last)
        s->ordered = false;
    s->last = index;
    s->n++;
}

/* Calls that complete soon after they start (the async steady state) must
 * not make the FIFOs grow with the number of calls made: only with the
 * number outstanding. */
static void t_completed_calls_do_not_accumulate(void)
{
    struct sage__timers *t;
    size_t entries = 0, cap;

    ASSERT_OK(sage__timers_new(&t, stale, NULL));
    for (uint32_t i = 0; i < N; i++) {
        live[i] = true;
        sage__timers_add(t, i, 1, 0, 1000000000LL + i, 1000000000LL);
        if (i >= 1000) /* 1,000 outstanding; the oldest completes */
            live[i - 1000] = false;
    }
    cap = sage__timers_footprint(t, &entries);
    ASSERT_TRUE(entries >= 1000);
    ASSERT_TRUE(cap <= 4096); /* without compaction: 262,144 */
    sage__timers_free(t);
}

/* Completion out of order (every other call outstanding) leaves stale
 * entries behind the head; compaction when full keeps the order. */
static void t_out_of_order_compaction_keeps_order(void)
{
    struct sage__timers *t;
    struct seen s = {0, 0, true};
    size_t cap;

    ASSERT_OK(sage__timers_new(&t, stale, NULL));
    for (uint32_t i = 0; i < 20000; i++) {
        live[i] = true;
        sage__timers_add(t, i, 1, 0, 1000 + i, 1000);
        if (i >= 2000 && i % 2 == 0) /* an even call, 2,000 back, completes */
            live[i - 2000] = false;
    }
    cap = sage__timers_footprint(t, NULL);
    ASSERT_TRUE(cap <= 32768); /* about twice the ~11,000 live entries */
    sage__timers_expire(t, 1000 + 20000, on_expire, &s);
    ASSERT_TRUE(s.ordered);
    /* the live ones: every odd call, and the even ones of the last 2,000 */
    ASSERT_EQ(s.n, 11000);
    sage__timers_free(t);
}

/* Live entries are never dropped, however full the FIFO. */
static void t_all_live_grows(void)
{
    struct sage__timers *t;
    struct seen s = {0, 0, true};
    size_t entries = 0;

    ASSERT_OK(sage__timers_new(&t, stale, NULL));
    for (uint32_t i = 0; i < 50000; i++) {
        live[i] = true;
        sage__timers_add(t, i, 1, 0, 5000 + i, 7);
    }
    sage__timers_footprint(t, &entries);
    ASSERT_EQ(entries, 50000);
    ASSERT_EQ(sage__timers_next(t), 5000);
    sage__timers_expire(t, 5000 + 49999, on_expire, &s);
    ASSERT_EQ(s.n, 50000);
    ASSERT_TRUE(s.ordered);
    ASSERT_EQ(sage__timers_next(t), -1);
    sage__timers_free(t);
}

/* a wait in int64_t milliseconds (the cluster's) never overflows a
 * nanosecond deadline: it saturates; negative waits count as none */
static void t_after_ms_saturates(void)
{
    int64_t now = sage__now_ns();

    ASSERT_EQ(sage__after_ms(now, 0), now);
    ASSERT_EQ(sage__after_ms(now, -1), now);
    ASSERT_EQ(sage__after_ms(now, INT64_MIN), now);
    ASSERT_EQ(sage__after_ms(now, 1500), now + 1500000000LL);
    ASSERT_EQ(sage__after_ms(now, INT64_MAX), INT64_MAX);
    ASSERT_EQ(sage__after_ms(now, INT64_MAX / 1000000), INT64_MAX);
    ASSERT_EQ(sage__after_ms(0, INT64_MAX / 1000000), INT64_MAX / 1000000 * 1000000);
    ASSERT_EQ(sage__after_ms(0, INT64_MAX), INT64_MAX);
    ASSERT_EQ(sage__after_ms(-1, INT64_MAX), INT64_MAX);
}

static const struct th_case cases[] = {
    {"completed_calls_do_not_accumulate", t_completed_calls_do_not_accumulate, 30},
    {"out_of_order_compaction_keeps_order", t_out_of_order_compaction_keeps_order, 30},
    {"all_live_grows", t_all_live_grows, 30},
    {"after_ms_saturates", t_after_ms_saturates, 10},
    {0},
};

TH_MAIN(cases)
