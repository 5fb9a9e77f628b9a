/*
 * relay.c - a test plugin whose methods call other services, for tests of
 * two `sagesvc run` hosts calling each other.
 *
 *   relay(service, method, args) -> what service.method(*args) returned;
 *                     its error comes back as this call's error
 *   sleep(ms)      -> true after ms milliseconds (a slow method for load)
 *   echo(...)      -> the args, as received
 * Configuration: {namespace: str} - where the called services live
 * (default "default"); timeout: seconds (default 10); start_delay: seconds
 * the factory takes (default 0), for tests of a signal during a start.
 *
 * The state is a sage_manager, which is thread-safe: workers share it
 * without a lock. Created by the factory, freed by destroy after the last
 * call, so no call ever sees it half-made.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sage/manager.h"
#include "sage/plugin.h"

static sage_err relay(void *state, sage_call *call)
{
    sage_manager *m = state;
    const char *service, *method;
    const sage_value *args;
    int64_t left = sage_call_remaining_ms(call);
    sage_value res;
    sage_err r;

    if (sage_call_unpack(call, "[ssv]", &service, &method, &args) != SAGE_OK)
        return SAGE_EBADARGS;
    if (args->type != SAGE_ARRAY)
        return sage_call_error(call, SAGE_EBADARGS, "relay: args must be an array, got %s",
                               sage_type_name(args->type));
    /* never wait longer than our own caller will */
    r = sage_manager_call_sync(&res, m,
                               &(sage_request){.service = service,
                                               .method = method,
                                               .args = args->as.array.items,
                                               .nargs = args->as.array.len,
                                               .timeout_ms = left > 0 ? left : 0},
                               sage_call_arena(call));
    if (r != SAGE_OK)
        return sage_call_error(call, r, "relay to %s.%s: %s", service, method, sage_errdetail());
    return sage_call_result(call, &res);
}

static sage_err nap(void *state, sage_call *call)
{
    int64_t ms;
    struct timespec ts;

    (void)state;
    if (sage_call_unpack(call, "[I]", &ms) != SAGE_OK)
        return SAGE_EBADARGS;
    if (ms < 0 || ms > 60000)
        return sage_call_error(call, SAGE_EBADARGS, "sleep: 0..60000 ms, got %lld", (long long)ms);
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
    return sage_call_resultf(call, "b", 1);
}

static sage_err echo(void *state, sage_call *call)
{
    (void)state;
    return sage_call_result(call, sage_call_args(call));
}

static sage_err relay_create(void **statep, const sage_value *config)
{
    sage_manager_opts o;
    sage_manager *m;
    const char *ns = NULL;
    double timeout = 10, start_delay = 0;
    sage_err r;

    if (config && config->type == SAGE_MAP &&
        sage_unpack(config, "{s:?s s:?f s:?f}", "namespace", &ns, "timeout", &timeout,
                    "start_delay", &start_delay) != SAGE_OK)
        return SAGE_ECONFIG;
    if (start_delay > 0 && start_delay <= 60) {
        struct timespec ts = {(time_t)start_delay,
                              (long)((start_delay - (time_t)start_delay) * 1e9)};

        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) /* the whole delay */
            ;
    }
    sage_manager_opts_init(&o);
    o.ns = ns; /* copied by the manager; NULL means "default" */
    o.timeout_ms = (int64_t)(timeout * 1000);
    r = sage_manager_new(&m, &o);
    if (r != SAGE_OK)
        return r;
    *statep = m;
    return SAGE_OK;
}

static void relay_destroy(void *state)
{
    sage_manager_free(state);
}

static const sage_method methods[] = {
    {"relay", relay, 0}, {"sleep", nap, 0}, {"echo", echo, 0}, {0}};

static const sage_service relay_service = {
    .abi = SAGE_SERVICE_ABI,
    .name = "relay",
    .create = relay_create,
    .destroy = relay_destroy,
    .methods = methods,
};

__attribute__((visibility("default"))) const sage_service *sage_plugin_entry(int host_abi);

const sage_service *sage_plugin_entry(int host_abi)
{
    (void)host_abi;
    return &relay_service;
}
