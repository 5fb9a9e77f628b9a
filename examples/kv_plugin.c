/*
 * kv_plugin.c - the key-value example service as a plugin (kv.so).
 *
 * Built with hidden visibility, so that only sage_plugin_entry is exported
 * and the plugin's own sage_example_kv is the one it returns, even inside a
 * sagesvc that has a built-in copy of the same table.
 */
#include "kv.h"
#include "sage/plugin.h"

__attribute__((visibility("default"))) const sage_service *sage_plugin_entry(int host_abi);

const sage_service *sage_plugin_entry(int host_abi)
{
    /* the loader checks the table's abi field (SAGE_SERVICE_ABI): nothing to adapt */
    (void)host_abi;
    return &sage_example_kv;
}
