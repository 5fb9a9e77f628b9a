/* plugin.c - loading services from shared objects (dlopen). */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "sage/plugin.h"

struct sage_plugin {
    void *dl;
    const sage_service *svc;
    char path[PATH_MAX];
};

static int is_path(const char *name)
{
    size_t n = strlen(name);

    return strchr(name, '/') != NULL || (n > 3 && strcmp(name + n - 3, ".so") == 0);
}

/* find resolves a bare name through the search path into path */
static sage_err find(const char *name, const char *search, char *path, size_t cap)
{
    const char *dirs = search ? search : getenv("SAGE_PLUGIN_PATH");
    const char *p = dirs ? dirs : "";

    while (*p) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);

        if (n > 0) {
            snprintf(path, cap, "%.*s/%s.so", (int)n, p, name);
            if (access(path, F_OK) == 0)
                return SAGE_OK;
            snprintf(path, cap, "%.*s/libsage_%s.so", (int)n, p, name);
            if (access(path, F_OK) == 0)
                return SAGE_OK;
        }
        p += n + (end ? 1 : 0);
    }
    return SAGE_SETERR(SAGE_ENOENT, "plugin '%s' not found in %s", name,
                       dirs && *dirs ? dirs : "(empty search path: set SAGE_PLUGIN_PATH)");
}

sage_err sage_plugin_open(sage_plugin **pp, const char *name, const char *search)
{
    sage_plugin *p;
    sage_plugin_entry_fn entry;
    const sage_service *svc;
    void *sym;
    sage_err r;

    if (pp == NULL || name == NULL || name[0] == '\0')
        return SAGE_SETERR(SAGE_EINVAL, "sage_plugin_open: no plugin name");
    p = calloc(1, sizeof *p);
    if (p == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    if (is_path(name)) {
        snprintf(p->path, sizeof p->path, "%s", name);
        if (access(p->path, F_OK) != 0) {
            free(p);
            return SAGE_SETERR(SAGE_ENOENT, "plugin file %s does not exist", name);
        }
    } else if ((r = find(name, search, p->path, sizeof p->path)) != SAGE_OK) {
        free(p);
        return r;
    }
    p->dl = dlopen(p->path, RTLD_NOW | RTLD_LOCAL);
    if (p->dl == NULL) {
        r = SAGE_SETERR(SAGE_EPLUGIN, "cannot load plugin %s: %s", p->path, dlerror());
        free(p);
        return r;
    }
    dlerror();
    sym = dlsym(p->dl, SAGE_PLUGIN_ENTRY);
    if (sym == NULL) {
        r = SAGE_SETERR(SAGE_EPLUGIN, "%s is not a sagesvc plugin: it exports no %s()", p->path,
                        SAGE_PLUGIN_ENTRY);
        goto fail;
    }
    memcpy(&entry, &sym, sizeof entry); /* object pointer to function pointer, POSIX style */
    svc = entry(SAGE_SERVICE_ABI);
    if (svc == NULL) {
        r = SAGE_SETERR(SAGE_EPLUGIN, "plugin %s refused to load (its entry returned no service)",
                        p->path);
        goto fail;
    }
    if (svc->abi != SAGE_SERVICE_ABI) {
        r = SAGE_SETERR(SAGE_EPLUGIN, "plugin %s was built for service ABI %d; this sagesvc speaks %d",
                        p->path, svc->abi, SAGE_SERVICE_ABI);
        goto fail;
    }
    if (svc->name == NULL || svc->methods == NULL) {
        r = SAGE_SETERR(SAGE_EPLUGIN, "plugin %s returned an incomplete service table", p->path);
        goto fail;
    }
    p->svc = svc;
    *pp = p;
    return SAGE_OK;
fail:
    dlclose(p->dl);
    free(p);
    return r;
}

const sage_service *sage_plugin_service(const sage_plugin *p)
{
    return p ? p->svc : NULL;
}

const char *sage_plugin_path(const sage_plugin *p)
{
    return p ? p->path : "";
}

void sage_plugin_close(sage_plugin *p)
{
    if (p == NULL)
        return;
    dlclose(p->dl);
    free(p);
}
