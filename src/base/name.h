/* name.h - the naming rule of services, methods and namespaces. */
#ifndef SAGE_BASE_NAME_H
#define SAGE_BASE_NAME_H

#include "sage/err.h"

/* SAGE__NAME_LEN: the longest name, in bytes (the API's SAGE_NAME_MAX). */
#define SAGE__NAME_LEN SAGE_NAME_MAX

/* sage__check_name validates a service, method or namespace name:
 * [A-Za-z0-9_-] (methods also '.'), 1..64 bytes. what names it in the
 * detail ("service", "namespace"). */
sage_err sage__check_name(const char *name, const char *what, int allow_dot);

#endif
