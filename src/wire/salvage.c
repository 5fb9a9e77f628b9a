/* salvage.c - the id and reply-to of a broken request, read defensively. */
#include "wire/salvage.h"

#include <string.h>

#include "wire/scan.h"

#define REPLY_TO 7 /* field index of reply_to in a request envelope */

static uint64_t be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* array_header returns the size of the array header at p, 0 if not one */
static size_t array_header(const unsigned char *p, size_t len)
{
    if (len >= 1 && (p[0] & 0xf0) == 0x90)
        return 1;
    if (len >= 3 && p[0] == 0xdc)
        return 3;
    if (len >= 5 && p[0] == 0xdd)
        return 5;
    return 0;
}

sage_err sage__wire_req_salvage(const void *buf, size_t len, sage_arena *a, sage__req *req)
{
    const unsigned char *p = buf;
    uint32_t count;
    uint64_t kind, id;
    size_t off, hdr, slen, sh;
    char *s;

    if (sage__wire_header(buf, len, "request", &count, &kind, &id) != SAGE_OK ||
        count <= REPLY_TO || kind != SAGE__WIRE_REQUEST)
        return SAGE_EPROTO;
    hdr = array_header(p, len);
    if (hdr == 0)
        return SAGE_EPROTO;
    off = hdr;
    for (int field = 0; field < REPLY_TO; field++) { /* skip version .. kwargs */
        size_t used;

        if (off >= len || sage__wire_scan(p + off, len - off, "request", &used) != SAGE_OK)
            return SAGE_EPROTO;
        off += used;
    }
    if (off >= len)
        return SAGE_EPROTO;
    if ((p[off] & 0xe0) == 0xa0) {
        slen = p[off] & 0x1f;
        sh = 1;
    } else if (p[off] == 0xd9 && len - off >= 2) {
        slen = p[off + 1];
        sh = 2;
    } else if (p[off] == 0xda && len - off >= 3) {
        slen = (size_t)be(p + off + 1, 2);
        sh = 3;
    } else if (p[off] == 0xdb && len - off >= 5) {
        slen = (size_t)be(p + off + 1, 4);
        sh = 5;
    } else {
        return SAGE_EPROTO;
    }
    if (slen > len - off - sh)
        return SAGE_EPROTO;
    s = sage_arena_alloc(a, slen + 1);
    if (s == NULL)
        return SAGE_ENOMEM;
    memcpy(s, p + off + sh, slen);
    s[slen] = '\0';
    req->id = id;
    req->reply_to = s;
    req->reply_to_len = slen;
    return SAGE_OK;
}

bool sage__wire_req_restamp(void *buf, size_t len, uint64_t sent_ns)
{
    unsigned char *p = buf;

    /* sent_ns is the last element; a monotonic clock past 2^32 ns (4 s of
     * uptime) is always packed as uint64: 0xcf and 8 big-endian bytes */
    if (len < 10 || p[len - 9] != 0xcf || (p[0] & 0x0f) != 11 || (p[0] & 0xf0) != 0x90)
        return false;
    for (int i = 0; i < 8; i++)
        p[len - 1 - i] = (unsigned char)(sent_ns >> (8 * i));
    return true;
}
