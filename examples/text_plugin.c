/*
 * text_plugin.c - the text example service as a plugin (text.so).
 * Hidden visibility, as for kv_plugin.c: only the entry is exported.
 */
#include "sage/plugin.h"
#include "text.h"

__attribute__((visibility("default"))) const sage_service *sage_plugin_entry(int host_abi);

const sage_service *sage_plugin_entry(int host_abi)
{
    (void)host_abi;
    return &sage_example_text;
}
