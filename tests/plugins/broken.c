/*
 * broken.c - plugins that must be refused, one module per way of being
 * wrong, chosen at build time:
 *   BROKEN_ABI     the table's abi field is not SAGE_SERVICE_ABI
 *   BROKEN_NOSYM   no sage_plugin_entry symbol at all
 *   BROKEN_NULL    the entry returns NULL (the plugin refuses the host)
 * Each is otherwise a valid service, so nothing but the defect is tested.
 */
#include "sage/plugin.h"

static sage_err ping(void *state, sage_call *call)
{
    (void)state;
    return sage_call_resultf(call, "s", "pong");
}

static const sage_method methods[] = {{"ping", ping, 0}, {0}};

#if defined(BROKEN_ABI)
static const sage_service svc = {.abi = SAGE_SERVICE_ABI + 41, .name = "broken", .methods = methods};
#else
static const sage_service svc = {.abi = SAGE_SERVICE_ABI, .name = "broken", .methods = methods};
#endif

#if defined(BROKEN_NOSYM)
/* exported under another name: dlopen works, dlsym finds nothing */
__attribute__((visibility("default"))) const sage_service *sage_plugin_entry_v0(int host_abi);

const sage_service *sage_plugin_entry_v0(int host_abi)
{
    (void)host_abi;
    return &svc;
}
#else
__attribute__((visibility("default"))) const sage_service *sage_plugin_entry(int host_abi);

const sage_service *sage_plugin_entry(int host_abi)
{
    (void)host_abi;
#if defined(BROKEN_NULL)
    return host_abi == -1 ? &svc : NULL; /* never -1: keeps svc in use */
#else
    return &svc;
#endif
}
#endif
