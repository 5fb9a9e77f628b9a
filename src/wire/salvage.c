/* salvage.c - the id and reply-to of a broken request, read defensively. */
#include "wire/salvage.h"

#include "wire/decode.h"

#define REPLY_TO 7 /* field index of reply_to in a request envelope */

/* The decoder's cursor reads the head, then each field as if it stood
 * alone: the envelope's count may be what is wrong with the request. The
 * head [version, kind, id] is the same in every version; the rest of the
 * layout is version 1's, and a request's (kind 0): reply_to is read only
 * from one of those. */
sage_err sage__wire_req_salvage(const void *buf, size_t len, sage_arena *a, sage__req *req)
{
    sage__dec d;
    uint32_t count;
    uint64_t version = 0, kind, id;
    const char *s;
    size_t n;

    req->id = 0;
    req->reply_to = "";
    req->reply_to_len = 0;
    sage__dec_init(&d, buf, len, a, "request");
    if (sage__dec_head_any(&d, &count, &version, &kind, &id) != SAGE_OK)
        return SAGE_EPROTO;
    req->id = id;
    if (version != 1 || kind != SAGE__WIRE_REQUEST || count <= REPLY_TO)
        return SAGE_OK; /* the id is known; where to answer is not */
    for (int field = 3; field < REPLY_TO; field++) { /* skip service .. kwargs */
        sage__dec_alone(&d);
        sage__dec_skip(&d, 1);
    }
    sage__dec_alone(&d);
    if (!sage__dec_str(&d, "reply_to", &s, &n))
        return d.err == SAGE_ENOMEM ? SAGE_ENOMEM : SAGE_OK; /* id only */
    req->reply_to = s;
    req->reply_to_len = n;
    return SAGE_OK;
}
