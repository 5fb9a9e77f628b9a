/*
 * opts.h - option structs for tests, written as designated initialisers.
 *
 * The library's option structs have defaults that are not zero (a task's
 * max_workers, a queue's mode and spin, a manager's timeout), which their
 * _opts_init functions fill in: a bare initialiser would leave those zero,
 * to be refused or to mean something else. TASK_OPTS, MANAGER_OPTS and
 * QUEUE_OPTS take the fields a test sets, as designated initialisers, and
 * give the defaults for every field left out:
 *
 *   sage_task_opts o = TASK_OPTS(.max_workers = 1, .request_queue_size = 2);
 *
 * A field given as zero (or NULL) counts as left out: a test that sets a
 * field to zero on purpose (a max_workers of 0 to be refused, a spin of 0)
 * calls _opts_init and assigns it. A field added to a struct must be added
 * to its merge below: the sizes checked below remind whoever adds one.
 */
#ifndef SAGE_TEST_OPTS_H
#define SAGE_TEST_OPTS_H

#include <assert.h>
#include <stdint.h>

#include "sage/manager.h"
#include "sage/queue.h"
#include "sage/task.h"

#if UINTPTR_MAX == UINT64_MAX /* the sizes on 64-bit targets */
static_assert(sizeof(sage_task_opts) == 112, "sage_task_opts changed: update task_opts_over");
static_assert(sizeof(sage_manager_opts) == 80, "sage_manager_opts changed: update manager_opts_over");
static_assert(sizeof(sage_queue_opts) == 40, "sage_queue_opts changed: update queue_opts_over");
#endif

#define TASK_OPTS(...) task_opts_over((sage_task_opts){__VA_ARGS__})
#define MANAGER_OPTS(...) manager_opts_over((sage_manager_opts){__VA_ARGS__})
#define QUEUE_OPTS(...) queue_opts_over((sage_queue_opts){__VA_ARGS__})

/* OVER_FIELD: the field f of over, where it is set, replaces the default */
#define OVER_FIELD(f)  \
    do {               \
        if (over.f)    \
            o.f = over.f; \
    } while (0)

static inline sage_task_opts task_opts_over(sage_task_opts over)
{
    sage_task_opts o;

    sage_task_opts_init(&o);
    OVER_FIELD(name);
    OVER_FIELD(ns);
    OVER_FIELD(transport);
    OVER_FIELD(max_workers);
    OVER_FIELD(queue_timeout_ms);
    OVER_FIELD(request_queue_size);
    OVER_FIELD(max_request);
    OVER_FIELD(error_threshold);
    OVER_FIELD(config);
    OVER_FIELD(middleware);
    OVER_FIELD(nmiddleware);
    OVER_FIELD(idempotent);
    OVER_FIELD(nidempotent);
    OVER_FIELD(kind);
    OVER_FIELD(cluster);
    return o;
}

static inline sage_manager_opts manager_opts_over(sage_manager_opts over)
{
    sage_manager_opts o;

    sage_manager_opts_init(&o);
    OVER_FIELD(env);
    OVER_FIELD(ns);
    OVER_FIELD(timeout_ms);
    OVER_FIELD(retries);
    OVER_FIELD(retry_backoff_ms);
    OVER_FIELD(idle_close_ms);
    OVER_FIELD(hedge_after_ms);
    OVER_FIELD(max_response);
    OVER_FIELD(max_pending);
    OVER_FIELD(cluster);
    return o;
}

static inline sage_queue_opts queue_opts_over(sage_queue_opts over)
{
    sage_queue_opts o;

    sage_queue_opts_init(&o);
    OVER_FIELD(capacity);
    OVER_FIELD(max_msg);
    OVER_FIELD(max_msgs);
    OVER_FIELD(max_producers);
    OVER_FIELD(mode);
    OVER_FIELD(flags);
    OVER_FIELD(spin_us);
    return o;
}

#undef OVER_FIELD

#endif
