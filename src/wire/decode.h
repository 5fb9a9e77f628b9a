/*
 * decode.h - reading one MessagePack envelope straight into sage_values, in
 * a single pass over the bytes, for wire.c's decoders.
 *
 * A sage__dec is a cursor over the message. The head (array header,
 * version, kind, id) and the envelope's element count are read first and
 * fail at once. After that, errors are sticky: the field readers return
 * whether they stored a value, and sage__dec_end tells what to report. The
 * protocol reports a broken structure (truncation, limits, forbidden types,
 * trailing bytes) before a wrong field (docs/PROTOCOL.md, "Order of
 * checks"), so a wrong field does not end the pass: the first one is kept,
 * and the rest of the message is still walked, without allocating, in case
 * its structure is broken further on. A structural error ends everything.
 *
 * Every string and array is copied into the arena (strings NUL-terminated),
 * so the input may be reused once decoding returns. An array or map is only
 * allocated once its element count is known to fit in the bytes left, and
 * one of more than a few elements only once its whole content has been
 * walked. Nothing else allocates; no state is shared between cursors.
 */
#ifndef SAGE_WIRE_DECODE_H
#define SAGE_WIRE_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sage/err.h"
#include "sage/value.h"

/*
 * sage__dec: the cursor. Its fields are private to decode.c; it is a
 * struct here only so that callers can keep it on their stack.
 */
typedef struct sage__dec {
    const unsigned char *base, *cur, *end;
    const unsigned char *body;   /* just past the envelope's array header */
    const unsigned char *proven; /* the bytes before it are whole, checked values */
    uint64_t owed;               /* elements declared and not yet started, all levels */
    int depth;                   /* arrays and maps open around cur, envelope included */
    int mode;                    /* decoding, checking only, skipping, or failed */
    sage_err err;                /* what sage__dec_end will report */
    sage_arena *a;
    const char *what;            /* "request" or "response": starts every detail */
    const char *field;           /* the field being read, for details */
} sage__dec;

/* sage__dec_init points d at the len bytes at buf (borrowed until the last
 * call on d), to be decoded into a (NULL when only the head is read); what
 * starts every error detail. */
void sage__dec_init(sage__dec *d, const void *buf, size_t len, sage_arena *a, const char *what);

/* sage__dec_head_any reads the head every version shares, [version,
 * kind, id], whatever the version; *versionp is written once read (so it
 * stays as the caller set it when the head is not even an array). */
sage_err sage__dec_head_any(sage__dec *d, uint32_t *countp, uint64_t *versionp, uint64_t *kindp,
                            uint64_t *idp);

/*
 * sage__dec_head reads the envelope's array header, version, kind and id
 * (any integer encoding): the array's element count to *countp, the kind to
 * *kindp and the id to *idp. SAGE_EVERSION for a version other than 1,
 * SAGE_EPROTO for anything else wrong (not an array, fewer than 3 elements,
 * a field of the wrong type, truncation); the kind is not judged here. On
 * success the cursor is past the id.
 */
sage_err sage__dec_head(sage__dec *d, uint32_t *countp, uint64_t *kindp, uint64_t *idp);

/*
 * sage__dec_body checks that the envelope's count elements can fit in the
 * bytes after its header (SAGE_EPROTO otherwise) and starts the sticky
 * phase. Call it after sage__dec_head, once the caller has judged kind and
 * count.
 */
sage_err sage__dec_body(sage__dec *d, uint32_t count);

/*
 * The field readers read one element as the named field. Each returns true
 * when it stored a value in its out-parameters; false when it did not (a
 * wrong type, a broken structure, no memory, or an earlier error that left
 * the cursor only checking or skipping). Strings and values are copied into
 * the arena. sage__dec_kwargs wants a map with string keys; sage__dec_int
 * reads an integer of any encoding, *neg telling a negative one (whose
 * two's-complement bits are then in *u), and names want in its type error.
 */
bool sage__dec_str(sage__dec *d, const char *field, const char **s, size_t *n);
bool sage__dec_array(sage__dec *d, const char *field, sage_value *out);
bool sage__dec_kwargs(sage__dec *d, const char *field, sage_value *out);
bool sage__dec_value(sage__dec *d, const char *field, sage_value *out);
bool sage__dec_int(sage__dec *d, const char *field, const char *want, bool *neg, uint64_t *u);
bool sage__dec_bool(sage__dec *d, const char *field, bool *b);

/* sage__dec_skip checks and skips n elements of any type (the envelope's
 * extra elements), allocating nothing. */
void sage__dec_skip(sage__dec *d, uint64_t n);

/*
 * sage__dec_alone makes the element at the cursor stand alone: bounded by
 * the bytes left but not by the envelope's count, its nesting counted from
 * itself. For salvage.c, which reads an envelope it cannot trust element by
 * element: after sage__dec_head (and no sage__dec_body), call it before
 * each element read or skipped.
 */
void sage__dec_alone(sage__dec *d);

/*
 * sage__dec_fail records that a value just read is wrong for its field
 * (err, with the detail already set by the caller). The first such error
 * is kept, except that SAGE_EPROTO replaces SAGE_ENOMEM: malformed input
 * is malformed however much memory there is.
 */
void sage__dec_fail(sage__dec *d, sage_err err);

/*
 * sage__dec_end checks that the envelope ended at the last byte and returns
 * the error to report: a structural one if any, else the first wrong
 * field, else SAGE_OK. The thread's error detail matches it.
 */
sage_err sage__dec_end(sage__dec *d);

#endif
