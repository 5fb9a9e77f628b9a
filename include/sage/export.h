/*
 * sage/export.h - what the shared library exports.
 *
 * The library is built with hidden visibility: only declarations marked
 * SAGE_API (the public API, in these headers) are exported from
 * libsage.so. Internal functions (sage__ prefix) are not.
 */
#ifndef SAGE_EXPORT_H
#define SAGE_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define SAGE_API __attribute__((visibility("default")))
#else
#define SAGE_API
#endif

#endif /* SAGE_EXPORT_H */
