/* name.c - the naming rule of services, methods and namespaces. */
#include "base/name.h"

#include <string.h>

#include "base/err_internal.h"

sage_err sage__check_name(const char *name, const char *what, int allow_dot)
{
    size_t n;

    if (name == NULL || name[0] == '\0')
        return SAGE_SETERR(SAGE_EINVAL, "%s name is empty", what);
    n = strlen(name);
    if (n > SAGE__NAME_LEN)
        return SAGE_SETERR(SAGE_EINVAL, "%s name '%.20s...' is %zu bytes, at most %d allowed",
                           what, name, n, SAGE__NAME_LEN);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || (allow_dot && c == '.')))
            return SAGE_SETERR(SAGE_EINVAL, "%s name '%s' has character 0x%02x; use [A-Za-z0-9_-%s]",
                               what, name, (unsigned char)c, allow_dot ? "." : "");
    }
    return SAGE_OK;
}
