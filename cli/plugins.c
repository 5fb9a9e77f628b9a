/* plugins.c - a configured service's code: a plugin file or a built-in
 * (the rules `sagesvc run --help` states; `run` and `replica` use them). */
#include "plugins.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtins.h"
#include "common.h"

static int is_path(const char *name)
{
    size_t n = strlen(name);

    return strchr(name, '/') != NULL || (n > 3 && strcmp(name + n - 3, ".so") == 0);
}

/* dir_of writes the directory of path (made absolute when it exists) */
static void dir_of(const char *path, char *dir, size_t cap)
{
    char abs[PATH_MAX];
    char *slash;

    if (path == NULL || realpath(path, abs) == NULL)
        snprintf(abs, sizeof abs, "%s", path ? path : "./x");
    slash = strrchr(abs, '/');
    if (slash == NULL)
        snprintf(dir, cap, ".");
    else if (slash == abs)
        snprintf(dir, cap, "/");
    else
        snprintf(dir, cap, "%.*s", (int)(slash - abs), abs);
}

static void add_dir(char *search, size_t cap, const char *dir, const char *suffix)
{
    size_t len = strlen(search);

    if (dir == NULL || dir[0] == '\0')
        return;
    snprintf(search + len, cap - len, "%s%s%s", len ? ":" : "", dir, suffix);
}

static void build_search(const sage_config *cfg, char *search, size_t cap)
{
    char exe[PATH_MAX], dir[PATH_MAX];
    ssize_t n;

    search[0] = '\0';
    add_dir(search, cap, getenv("SAGE_PLUGIN_PATH"), "");
    dir_of(sage_config_path(cfg), dir, sizeof dir);
    add_dir(search, cap, dir, "");
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        dir_of(exe, dir, sizeof dir);
        add_dir(search, cap, dir, "/plugins");
        add_dir(search, cap, dir, "/../lib/sagesvc/plugins");
    }
}

sage_err cli_plugin_resolve(const sage_config *cfg, const sage_service_conf *conf,
                            sage_plugin **pp, const sage_service **svcp)
{
    const char *name = conf->plugin, *file = sage_config_path(cfg);
    char path[PATH_MAX + 8], dir[PATH_MAX], search[3 * PATH_MAX + 64], builtins[128] = "";
    const sage_service *svc;
    size_t len = 0;
    sage_err r;

    if (file == NULL)
        file = "configuration";
    if (is_path(name) && name[0] != '/') {
        dir_of(sage_config_path(cfg), dir, sizeof dir);
        while (name[0] == '.' && name[1] == '/')
            name += 2; /* "DIR/./kv.so" reads badly in messages */
        snprintf(path, sizeof path, "%s/%s", dir, name);
        name = path;
    }
    build_search(cfg, search, sizeof search);
    r = sage_plugin_open(pp, name, search);
    if (r == SAGE_OK) {
        *svcp = sage_plugin_service(*pp);
        return SAGE_OK;
    }
    if (r == SAGE_ENOENT && !is_path(name) && (svc = cli_builtin_find(name)) != NULL) {
        *pp = NULL;
        *svcp = svc;
        return SAGE_OK;
    }
    if (r == SAGE_ENOENT && !is_path(name)) {
        for (size_t i = 0; cli_builtin_name(i) && len < sizeof builtins; i++)
            len += (size_t)snprintf(builtins + len, sizeof builtins - len, "%s%s", i ? ", " : "",
                                    cli_builtin_name(i));
        cli_error(r, "%s:%d: service '%s': no plugin '%s' found, and no built-in service has that "
                     "name (built-ins: %s)",
                  file, conf->line, conf->name, name, builtins);
    } else {
        cli_error(r, "%s:%d: service '%s': cannot use plugin %s", file, conf->line, conf->name,
                  name);
    }
    return r;
}
