/* names.c - every name the runtime derives lives here, so they stay in step.
 * The uid in them is the effective one: the owner of the files we create,
 * which the owner checks of platform/shm.c compare with. */
#include "runtime/names.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/proc.h"
#include "sage/task.h"

sage_err sage__check_name(const char *name, const char *what, int allow_dot)
{
    size_t n;

    if (name == NULL || name[0] == '\0')
        return SAGE_SETERR(SAGE_EINVAL, "%s name is empty", what);
    n = strlen(name);
    if (n > SAGE_NAME_MAX)
        return SAGE_SETERR(SAGE_EINVAL, "%s name '%.20s...' is %zu bytes, at most %d allowed",
                           what, name, n, SAGE_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || (allow_dot && c == '.')))
            return SAGE_SETERR(SAGE_EINVAL, "%s name '%s' has character 0x%02x; use [A-Za-z0-9_-%s]",
                               what, name, (unsigned char)c, allow_dot ? "." : "");
    }
    return SAGE_OK;
}

void sage__req_queue_name(char *buf, size_t cap, const char *ns, const char *name)
{
    snprintf(buf, cap, "%u.%s.%s.req", (unsigned)geteuid(), ns, name);
}

void sage__reg_path(char *buf, size_t cap, const char *ns, const char *name)
{
    snprintf(buf, cap, "/sage.r.%u.%s.%s", (unsigned)geteuid(), ns, name);
}

void sage__reply_queue_name(char *buf, size_t cap, const char *ns, unsigned serial)
{
    snprintf(buf, cap, "%u.%s.reply.%d.%u", (unsigned)geteuid(), ns, (int)sage__pid(), serial);
}
