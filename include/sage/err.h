/*
 * sage/err.h - the one error convention of sagesvc.
 *
 * Every fallible function returns a sage_err; SAGE_OK is zero. Results come
 * back through out-pointers that are written only on success. When a call
 * fails it also records a human-readable detail for the calling thread,
 * readable with sage_errdetail() until the next failure on that thread.
 * It also holds the two sizes every other header shares: SAGE_NAME_MAX
 * and SAGE_REASON_MAX.
 */
#ifndef SAGE_ERR_H
#define SAGE_ERR_H

#include "sage/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * SAGE_ERR_MAP is the single table of error codes: name, value, message.
 * Values are stable: they travel in wire responses and are exit statuses'
 * source in the CLI. Append only.
 */
#define SAGE_ERR_MAP(X)                                                    \
    X(OK, 0, "success")                                                    \
    X(EINVAL, 1, "invalid argument")                                       \
    X(ENOMEM, 2, "out of memory")                                          \
    X(ENOENT, 3, "no such object")                                         \
    X(EEXIST, 4, "already exists")                                         \
    X(EPERM, 5, "permission denied")                                       \
    X(EFULL, 6, "queue full")                                              \
    X(ETIMEDOUT, 7, "timed out")                                           \
    X(ECLOSED, 8, "closed")                                                \
    X(EMSGSIZE, 9, "message too large")                                    \
    X(EPROTO, 10, "protocol error or corrupt data")                        \
    X(EVERSION, 11, "incompatible layout or protocol version")             \
    X(EBUSY, 12, "resource busy")                                          \
    X(EINTR, 13, "interrupted")                                            \
    X(ESYS, 14, "operating system error")                                  \
    X(ENOSERVICE, 15, "no such service")                                   \
    X(ENOMETHOD, 16, "no such method")                                     \
    X(EUNAVAILABLE, 17, "service unavailable")                             \
    X(EHANDLER, 18, "service handler failed")                              \
    X(EBADARGS, 19, "bad arguments")                                       \
    X(ECANCELED, 20, "canceled")                                           \
    X(ECONFIG, 21, "bad configuration")                                    \
    X(ENOTSUP, 22, "not supported")                                        \
    X(ESTATE, 23, "invalid state for this operation")                      \
    X(EAUTH, 24, "authentication failed")                                  \
    X(EPLUGIN, 25, "plugin load failed")                                   \
    X(EREJECTED, 26, "rejected by middleware")                             \
    X(ECONNECT, 27, "connection failed")

#define SAGE_ERR_ENUM_(name, value, msg) SAGE_##name = value,
/* sage_err: the result of every fallible sagesvc call. */
typedef enum sage_err { SAGE_ERR_MAP(SAGE_ERR_ENUM_) SAGE_ERR_COUNT_ } sage_err;
#undef SAGE_ERR_ENUM_

/*
 * sage_strerror returns a static English message for err ("timed out").
 * Unknown values give "unknown error". Thread-safe; never returns NULL.
 */
SAGE_API const char *sage_strerror(sage_err err);

/*
 * sage_errname returns the symbolic name of err without prefix ("ETIMEDOUT"),
 * or "EUNKNOWN". Thread-safe; never returns NULL.
 */
SAGE_API const char *sage_errname(sage_err err);

/*
 * sage_errdetail returns the detail message recorded by the last failing
 * sagesvc call on this thread ("queue 'kv': header magic mismatch"), or ""
 * when there is none. The string is borrowed and stays valid until the next
 * sagesvc call on this thread.
 */
SAGE_API const char *sage_errdetail(void);

/* SAGE_NAME_MAX: the longest namespace, service, method or middleware
 * name, in bytes, wherever one appears (configurations, tasks, statuses,
 * discovery). Names use [A-Za-z0-9_-]; method names may also use '.'. */
#define SAGE_NAME_MAX 64

/* SAGE_REASON_MAX: the longest reason a status keeps (why a queue is
 * corrupt, why a service is degraded or failed, why a request was dropped),
 * in bytes; longer ones are cut. */
#define SAGE_REASON_MAX 127

#ifdef __cplusplus
}
#endif
#endif /* SAGE_ERR_H */
