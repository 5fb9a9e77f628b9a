/* version.c - the running library's version. */
#include "sage/version.h"

const char *sage_version(void)
{
    return SAGE_VERSION_STRING;
}

int sage_version_number(void)
{
    return SAGE_VERSION_NUMBER;
}
