/* middleware.c - the built-in middleware: logging and deadline. */
#include <stdio.h>
#include <string.h>

#include "platform/clock.h"
#include "runtime/task_internal.h"

/* logging: one line per call on stderr. The start time travels in the
 * call's arena, the only per-call storage a stateless hook has. */
static sage_err log_before(void *arg, sage_call *c)
{
    int64_t *t0 = sage_arena_alloc(sage_call_arena(c), sizeof *t0);

    (void)arg;
    if (t0) {
        *t0 = sage__now_ns();
        c->mw_log_start = t0;
    }
    return SAGE_OK;
}

static void log_after(void *arg, sage_call *c)
{
    const char *msg;
    sage_err r = sage_call_status(c, &msg);
    double ms = c->mw_log_start ? (sage__now_ns() - *c->mw_log_start) / 1e6 : 0;

    (void)arg;
    if (r == SAGE_OK)
        fprintf(stderr, "sagesvc: %s.%s id=%llu ok %.3f ms\n", sage_call_service(c),
                sage_call_method(c), (unsigned long long)sage_call_id(c), ms);
    else
        fprintf(stderr, "sagesvc: %s.%s id=%llu %s %.3f ms: %s\n", sage_call_service(c),
                sage_call_method(c), (unsigned long long)sage_call_id(c), sage_errname(r), ms, msg);
}

static const sage_middleware logging = {"logging", log_before, log_after, NULL};

/* deadline: refuse a call whose caller already gave up */
static sage_err deadline_before(void *arg, sage_call *c)
{
    int64_t left = sage_call_remaining_ms(c);

    (void)arg;
    if (c->deadline_ns >= 0 && sage__now_ns() > c->deadline_ns)
        return sage_call_error(c, SAGE_ETIMEDOUT, "deadline passed (%lld ms ago)",
                               (long long)-left);
    return SAGE_OK;
}

static const sage_middleware deadline = {"deadline", deadline_before, NULL, NULL};

const sage_middleware *sage_middleware_logging(void)
{
    return &logging;
}

const sage_middleware *sage_middleware_deadline(void)
{
    return &deadline;
}

const sage_middleware *sage_middleware_find(const char *name)
{
    if (name == NULL)
        return NULL;
    if (strcmp(name, "logging") == 0)
        return &logging;
    if (strcmp(name, "deadline") == 0)
        return &deadline;
    return NULL;
}
