/*
 * testsvc.h - a service for tests, with one method per behaviour to test.
 *
 *   echo(...)        -> the args array, as received
 *   kw()             -> the kwargs map
 *   add(a, b)        -> a + b (ints)
 *   fail(msg)        -> error SAGE_EHANDLER with msg
 *   sleep(ms)        -> true after sleeping ms milliseconds
 *   flaky(n)         -> fails with SAGE_EUNAVAILABLE the first n times a
 *                       request id is seen, then returns the count of sightings
 *   count()          -> how many calls the service has served in total
 *   pid()            -> the serving process's pid (which replica answered)
 */
#ifndef SAGE_TEST_TESTSVC_H
#define SAGE_TEST_TESTSVC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sage/service.h"

struct testsvc {
    pthread_mutex_t lock;
    uint64_t ids[256]; /* request ids seen by flaky, and how often */
    int seen[256];
    _Atomic uint64_t served;
};

static sage_err ts_create(void **statep, const sage_value *config)
{
    struct testsvc *s = calloc(1, sizeof *s);

    (void)config;
    if (s == NULL)
        return SAGE_ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    *statep = s;
    return SAGE_OK;
}

static void ts_destroy(void *state)
{
    struct testsvc *s = state;

    pthread_mutex_destroy(&s->lock);
    free(s);
}

static sage_err ts_echo(void *state, sage_call *c)
{
    atomic_fetch_add(&((struct testsvc *)state)->served, 1);
    return sage_call_result(c, sage_call_args(c));
}

static sage_err ts_kw(void *state, sage_call *c)
{
    atomic_fetch_add(&((struct testsvc *)state)->served, 1);
    return sage_call_result(c, sage_call_kwargs(c));
}

static sage_err ts_add(void *state, sage_call *c)
{
    int64_t a, b;

    atomic_fetch_add(&((struct testsvc *)state)->served, 1);
    if (sage_call_unpack(c, "[II]", &a, &b) != SAGE_OK)
        return SAGE_EBADARGS;
    return sage_call_resultf(c, "I", a + b);
}

static sage_err ts_fail(void *state, sage_call *c)
{
    const char *msg;

    atomic_fetch_add(&((struct testsvc *)state)->served, 1);
    if (sage_call_unpack(c, "[s]", &msg) != SAGE_OK)
        return SAGE_EBADARGS;
    return sage_call_error(c, SAGE_EHANDLER, "failed as asked: %s", msg);
}

static sage_err ts_sleep(void *state, sage_call *c)
{
    int64_t ms;
    struct timespec ts;

    atomic_fetch_add(&((struct testsvc *)state)->served, 1);
    if (sage_call_unpack(c, "[I]", &ms) != SAGE_OK)
        return SAGE_EBADARGS;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
    return sage_call_resultf(c, "b", 1);
}

static sage_err ts_flaky(void *state, sage_call *c)
{
    struct testsvc *s = state;
    uint64_t id = sage_call_id(c);
    int64_t n;
    int seen = 0;

    atomic_fetch_add(&s->served, 1);
    if (sage_call_unpack(c, "[I]", &n) != SAGE_OK)
        return SAGE_EBADARGS;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < 256; i++) {
        if (s->seen[i] && s->ids[i] == id) {
            seen = ++s->seen[i];
            break;
        }
        if (s->seen[i] == 0) {
            s->ids[i] = id;
            seen = s->seen[i] = 1;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (seen <= n)
        return sage_call_error(c, SAGE_EUNAVAILABLE, "flaky: sighting %d of id %llu", seen,
                               (unsigned long long)id);
    return sage_call_resultf(c, "i", seen);
}

static sage_err ts_count(void *state, sage_call *c)
{
    return sage_call_resultf(c, "I", (int64_t)atomic_load(&((struct testsvc *)state)->served));
}

static sage_err ts_pid(void *state, sage_call *c)
{
    atomic_fetch_add(&((struct testsvc *)state)->served, 1);
    return sage_call_resultf(c, "I", (int64_t)getpid());
}

static const sage_method ts_methods[] = {
    {"echo", ts_echo, 0},   {"kw", ts_kw, 0},       {"add", ts_add, 0},     {"fail", ts_fail, 0},
    {"sleep", ts_sleep, 0}, {"flaky", ts_flaky, 0}, {"count", ts_count, 0}, {"pid", ts_pid, 0},
    {0},
};

static const sage_service testsvc = {
    .abi = SAGE_SERVICE_ABI,
    .name = "testsvc",
    .create = ts_create,
    .destroy = ts_destroy,
    .methods = ts_methods,
};

#endif
