/* salvage.c - the id and reply-to of a broken request, read defensively. */
#include "wire/salvage.h"

#include "wire/decode.h"

#define REPLY_TO 7 /* field index of reply_to in a request envelope */

/* The decoder's cursor reads the head, then each field as if it stood
 * alone: the envelope's count may be what is wrong with the request. */
sage_err sage__wire_req_salvage(const void *buf, size_t len, sage_arena *a, sage__req *req)
{
    sage__dec d;
    uint32_t count;
    uint64_t kind, id;
    const char *s;
    size_t n;

    sage__dec_init(&d, buf, len, a, "request");
    if (sage__dec_head(&d, &count, &kind, &id) != SAGE_OK || count <= REPLY_TO ||
        kind != SAGE__WIRE_REQUEST)
        return SAGE_EPROTO;
    for (int field = 3; field < REPLY_TO; field++) { /* skip service .. kwargs */
        sage__dec_alone(&d);
        sage__dec_skip(&d, 1);
    }
    sage__dec_alone(&d);
    if (!sage__dec_str(&d, "reply_to", &s, &n))
        return d.err == SAGE_ENOMEM ? SAGE_ENOMEM : SAGE_EPROTO;
    req->id = id;
    req->reply_to = s;
    req->reply_to_len = n;
    return SAGE_OK;
}

bool sage__wire_req_restamp(void *buf, size_t len, uint64_t sent_ns)
{
    unsigned char *p = buf;

    /* sent_ns is the last element; a monotonic clock past 2^32 ns (4 s of
     * uptime) is always packed as uint64: 0xcf and 8 big-endian bytes */
    if (len < 10 || p[0] != 0x9b /* fixarray of 11 */ || p[len - 9] != 0xcf)
        return false;
    for (int i = 0; i < 8; i++)
        p[len - 1 - i] = (unsigned char)(sent_ns >> (8 * i));
    return true;
}
