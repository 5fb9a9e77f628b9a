/* err_internal.h - how library code records an error. */
#ifndef SAGE_BASE_ERR_INTERNAL_H
#define SAGE_BASE_ERR_INTERNAL_H

#include "sage/err.h"

/*
 * sage__seterr records a printf-style detail for the calling thread and
 * returns err, so a failure site reads `return SAGE_SETERR(SAGE_EFULL, ...)`.
 */
sage_err sage__seterr(sage_err err, const char *fn, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* sage__clearerr empties this thread's detail string. */
void sage__clearerr(void);

/* sage__from_errno maps an errno value to the nearest sage_err. */
sage_err sage__from_errno(int e);

#define SAGE_SETERR(err, ...) sage__seterr((err), __func__, __LINE__, __VA_ARGS__)

#endif
