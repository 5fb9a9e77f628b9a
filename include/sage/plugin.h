/*
 * sage/plugin.h - services in shared objects.
 *
 * A plugin is a shared object that exports one function,
 *
 *   const sage_service *sage_plugin_entry(int host_abi);
 *
 * returning its service table (static data). host_abi is the loader's
 * SAGE_SERVICE_ABI, so a plugin may refuse (return NULL) or adapt; the
 * loader checks the table's own abi field and refuses a mismatch. Build a
 * plugin with `cc -shared -fPIC -o kv.so kv.c $(pkg-config --cflags sagesvc)`
 * (it needs no library at link time: the host process provides sagesvc).
 */
#ifndef SAGE_PLUGIN_H
#define SAGE_PLUGIN_H

#include "sage/export.h"

#include "sage/err.h"
#include "sage/service.h"

#ifdef __cplusplus
extern "C" {
#endif

/* SAGE_PLUGIN_ENTRY: the name of the symbol a plugin exports. */
#define SAGE_PLUGIN_ENTRY "sage_plugin_entry"

/* sage_plugin_entry_fn: the type of that symbol. */
typedef const sage_service *(*sage_plugin_entry_fn)(int host_abi);

/* sage_plugin: a loaded plugin, owned by the library. */
typedef struct sage_plugin sage_plugin;

/*
 * sage_plugin_open loads a plugin. A name containing '/' or ending in ".so"
 * is a path; a bare name N is looked up in each directory of search (a
 * colon-separated list; NULL: the SAGE_PLUGIN_PATH environment variable) as
 * DIR/N.so, then DIR/libsage_N.so. Fails with SAGE_ENOENT when no file is
 * found, SAGE_EPLUGIN when one cannot be loaded, lacks the entry symbol,
 * returns no table, or has another ABI: the detail names the file and the
 * reason. Thread-safe.
 */
SAGE_API sage_err sage_plugin_open(sage_plugin **pp, const char *name, const char *search);

/* sage_plugin_service returns the plugin's service table (borrowed: valid
 * until sage_plugin_close). */
SAGE_API const sage_service *sage_plugin_service(const sage_plugin *p);

/* sage_plugin_path returns the file the plugin was loaded from (borrowed). */
SAGE_API const char *sage_plugin_path(const sage_plugin *p);

/* sage_plugin_close unloads p. Every task running its service must have
 * been freed first. NULL is ignored. */
SAGE_API void sage_plugin_close(sage_plugin *p);

#ifdef __cplusplus
}
#endif
#endif /* SAGE_PLUGIN_H */
