/* err.c - error names, messages and the thread-local detail string. */
#include "base/err_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MSG_CASE_(name, value, msg) \
    case SAGE_##name:               \
        return msg;
#define NAME_CASE_(name, value, msg) \
    case SAGE_##name:                \
        return #name;

const char *sage_strerror(sage_err err)
{
    switch (err) {
        SAGE_ERR_MAP(MSG_CASE_)
    default:
        return "unknown error";
    }
}

const char *sage_errname(sage_err err)
{
    switch (err) {
        SAGE_ERR_MAP(NAME_CASE_)
    default:
        return "EUNKNOWN";
    }
}

static _Thread_local char detail[512];

const char *sage_errdetail(void)
{
    return detail;
}

sage_err sage__seterr(sage_err err, const char *fn, int line, const char *fmt, ...)
{
    char text[sizeof detail];
    va_list ap;

    (void)fn;
    (void)line;
    /* through a copy: an argument may be sage_errdetail() itself */
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    memcpy(detail, text, strlen(text) + 1);
    return err;
}

void sage__clearerr(void)
{
    detail[0] = '\0';
}

sage_err sage__from_errno(int e)
{
    switch (e) {
    case 0:
        return SAGE_OK;
    case EINVAL:
    case ENAMETOOLONG:
        return SAGE_EINVAL;
    case ENOMEM:
    case ENOSPC:
        return SAGE_ENOMEM;
    case ENOENT:
        return SAGE_ENOENT;
    case EEXIST:
        return SAGE_EEXIST;
    case EACCES:
    case EPERM:
        return SAGE_EPERM;
    case ETIMEDOUT:
        return SAGE_ETIMEDOUT;
    case EINTR:
        return SAGE_EINTR;
    case EBUSY:
        return SAGE_EBUSY;
    case EMSGSIZE:
        return SAGE_EMSGSIZE;
    case ENOTSUP:
        return SAGE_ENOTSUP;
    default:
        return SAGE_ESYS;
    }
}
