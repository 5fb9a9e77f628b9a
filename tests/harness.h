/*
 * harness.h - the test harness of sagesvc.
 *
 * A test program is a table of cases. Each case runs in its own forked
 * process group with a time bound; when it ends (pass, fail, crash or
 * timeout) the runner kills whatever the case left running in its group and
 * removes every /dev/shm entry carrying the case's unique prefix. Cases name
 * their shared objects with th_name(), which carries that prefix.
 *
 *   static void t_fifo(void) { ... ASSERT_EQ(a, b); ... }
 *   static const struct th_case cases[] = { {"fifo", t_fifo, 10}, {0} };
 *   TH_MAIN(cases)
 *
 * Run one case by naming it: ./test_queue fifo
 *
 * A case that waits for something to happen waits on a real wake-up where
 * there is one (a pipe, th_wait_child), else polls the condition with
 * ASSERT_WAIT, which fails with a message at its deadline; never a fixed
 * sleep. th_sleep_ms is for the time passing itself being under test.
 */
#ifndef SAGE_TEST_HARNESS_H
#define SAGE_TEST_HARNESS_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "sage/err.h"
#include "sage/task.h"

struct th_case {
    const char *name;
    void (*fn)(void);
    int timeout_s;
};

/* th_run runs the cases (all, or those named in argv); returns the exit
 * status for main: 0 all passed, 1 a failure, 77 all skipped. */
int th_run(const struct th_case *cases, int argc, char **argv);

/* th_name returns "PREFIX.base" in a static rotating buffer: unique per run
 * and case, and cleaned up by the runner. */
const char *th_name(const char *base);

/* th_prefix returns this case's unique prefix ("t1234x2"). */
const char *th_prefix(void);

/* th_skip ends the current case as skipped, with a reason. */
void th_skip(const char *why) __attribute__((noreturn));

/* th_fail reports a failed assertion and ends the case. */
void th_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* th_now_ms: monotonic milliseconds. */
double th_now_ms(void);

/* th_wait_child waits up to timeout_ms for pid; returns its wait status, or
 * -1 on timeout (the child is then killed). */
int th_wait_child(int pid, int timeout_ms);

/* th_stop_child sends SIGSTOP to child pid and returns once it has
 * stopped: a signal takes effect a little later than kill() returns, and a
 * process still running meanwhile may answer one more call. */
void th_stop_child(int pid);

/* th_serve_child forks a process that serves svc over transport (co: its
 * cluster options, NULL for none) in namespace th_prefix(), and returns
 * its pid once it serves. The child serves until it is killed. */
int th_serve_child(const sage_service *svc, sage_transport transport,
                   const sage_cluster_opts *co);

/* th_sleep_ms sleeps ms milliseconds. Only for a case whose subject is the
 * time passing (a method slow on purpose, a wait that proves nothing more
 * happens): to wait for something to happen, use ASSERT_WAIT or a real
 * wake-up (a pipe, th_wait_child). */
void th_sleep_ms(int ms);

/* th_backoff pauses between two polls of a condition (attempt counts from
 * 0): 0.1 ms for the first ten, 1 ms up to the hundredth, then 10 ms. */
void th_backoff(unsigned attempt);

#define TH_MAIN(cases)                   \
    int main(int argc, char **argv)      \
    {                                    \
        return th_run(cases, argc, argv); \
    }

#define ASSERT_TRUE(c)                                      \
    do {                                                    \
        if (!(c))                                           \
            th_fail(__FILE__, __LINE__, "expected: %s", #c); \
    } while (0)

#define ASSERT_EQ(a, b)                                                                        \
    do {                                                                                       \
        int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                                          \
        if (a_ != b_)                                                                          \
            th_fail(__FILE__, __LINE__, "%s == %s: %" PRId64 " != %" PRId64, #a, #b, a_, b_);  \
    } while (0)

#define ASSERT_NE(a, b)                                                                        \
    do {                                                                                       \
        int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                                          \
        if (a_ == b_)                                                                          \
            th_fail(__FILE__, __LINE__, "%s != %s: both %" PRId64, #a, #b, a_);                \
    } while (0)

#define ASSERT_LE(a, b)                                                                        \
    do {                                                                                       \
        double a_ = (double)(a), b_ = (double)(b);                                             \
        if (!(a_ <= b_))                                                                       \
            th_fail(__FILE__, __LINE__, "%s <= %s: %g > %g", #a, #b, a_, b_);                  \
    } while (0)

#define ASSERT_STREQ(a, b)                                                                     \
    do {                                                                                       \
        const char *a_ = (a), *b_ = (b);                                                       \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                                   \
            th_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,                  \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                   \
    } while (0)

/* ASSERT_WAIT: polls the expression c (see th_backoff) until it holds, for
 * what has no wake-up to wait on; fails the case, naming c, if it still
 * does not after timeout_ms. c is evaluated again on every poll. */
#define ASSERT_WAIT(c, timeout_ms)                                                             \
    do {                                                                                       \
        double t0_ = th_now_ms();                                                              \
        for (unsigned k_ = 0; !(c); k_++) {                                                    \
            if (th_now_ms() - t0_ > (timeout_ms))                                              \
                th_fail(__FILE__, __LINE__, "still not true after %d ms: %s",                  \
                        (int)(timeout_ms), #c);                                                \
            th_backoff(k_);                                                                    \
        }                                                                                      \
    } while (0)

/* ASSERT_WAIT_EQ: ASSERT_WAIT(a == b), printing both operands on failure;
 * both are evaluated again on every poll. */
#define ASSERT_WAIT_EQ(a, b, timeout_ms)                                                       \
    do {                                                                                       \
        double t0_ = th_now_ms();                                                              \
        int64_t a_, b_;                                                                        \
        for (unsigned k_ = 0; (a_ = (int64_t)(a)) != (b_ = (int64_t)(b)); k_++) {              \
            if (th_now_ms() - t0_ > (timeout_ms))                                              \
                th_fail(__FILE__, __LINE__, "%s == %s: still %" PRId64 " != %" PRId64          \
                        " after %d ms", #a, #b, a_, b_, (int)(timeout_ms));                    \
            th_backoff(k_);                                                                    \
        }                                                                                      \
    } while (0)

/* ASSERT_KILLED: a wait status (th_wait_child's) says the child died of sig. */
#define ASSERT_KILLED(status, sig)                                                             \
    do {                                                                                       \
        int s_ = (status);                                                                     \
        if (s_ == -1 || !WIFSIGNALED(s_) || WTERMSIG(s_) != (sig))                             \
            th_fail(__FILE__, __LINE__, "%s: wait status %d, want killed by signal %d", #status, \
                    s_, (int)(sig));                                                           \
    } while (0)

/* ASSERT_OK: a sage call succeeds; on failure prints the error and detail. */
#define ASSERT_OK(expr)                                                                        \
    do {                                                                                       \
        sage_err e_ = (expr);                                                                  \
        if (e_ != SAGE_OK)                                                                     \
            th_fail(__FILE__, __LINE__, "%s: %s (%s)", #expr, sage_errname(e_),                \
                    sage_errdetail());                                                         \
    } while (0)

/* ASSERT_ERR: a sage call fails with exactly want. */
#define ASSERT_ERR(expr, want)                                                                 \
    do {                                                                                       \
        sage_err e_ = (expr);                                                                  \
        if (e_ != (want))                                                                      \
            th_fail(__FILE__, __LINE__, "%s: got %s, want %s (%s)", #expr, sage_errname(e_),   \
                    sage_errname(want), sage_errdetail());                                     \
    } while (0)

#endif
