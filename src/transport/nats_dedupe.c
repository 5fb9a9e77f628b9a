/* nats_dedupe.c - request ids and answers shared by a service's replicas. */
#include "transport/nats_dedupe.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "transport/natskv.h"

#define STALE_DEFAULT_MS 30000 /* a running mark of a call with no timeout */
#define MARK_LEN 9             /* 'R' + 8 bytes of wall-clock ms */

struct sage__ndedupe {
    struct sage__nio *nio;
    struct sage__nio_kv *kv;
    char bucket[200];
};

sage_err sage__ndedupe_open(struct sage__ndedupe **dp, struct sage__nio *nio, const char *ns,
                            const char *name, int64_t ttl_ms)
{
    /* in memory: a cache of answers, worth no disk write per call */
    struct sage__nio_kv_opts ko = {.history = 1, .ttl_ms = ttl_ms > 0 ? ttl_ms : 600000,
                                   .memory = true};
    struct sage__ndedupe *d = calloc(1, sizeof *d);
    sage_err r;

    if (d == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    /* the length keeps "a_b"+"c" apart from "a"+"b_c" */
    snprintf(d->bucket, sizeof d->bucket, "sagesvc_dedupe_%zu_%s_%s", strlen(ns), ns, name);
    d->nio = nio;
    if ((r = sage__nio_kv_open(nio, d->bucket, &ko, &d->kv)) != SAGE_OK) {
        r = SAGE_SETERR(r, "service '%s': cannot open its dedupe store %s: %s", name, d->bucket,
                        sage_errdetail());
        free(d);
        return r;
    }
    *dp = d;
    return SAGE_OK;
}

void sage__ndedupe_close(struct sage__ndedupe *d)
{
    if (d == NULL)
        return;
    sage__nio_kv_close(d->kv);
    free(d);
}

static void make_key(char *buf, size_t cap, const char *caller, uint64_t id)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

    for (const unsigned char *p = (const unsigned char *)caller; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    snprintf(buf, cap, "h%016" PRIx64 ".%" PRIu64, h, id);
}

static void make_mark(unsigned char mark[MARK_LEN], int64_t at_ms)
{
    mark[0] = 'R';
    for (int i = 0; i < 8; i++)
        mark[1 + i] = (unsigned char)((uint64_t)at_ms >> (56 - 8 * i));
}

static int64_t mark_time(const unsigned char *v)
{
    uint64_t at = 0;

    for (int i = 0; i < 8; i++)
        at = at << 8 | v[1 + i];
    return (int64_t)at;
}

enum sage__tp_seen sage__ndedupe_begin(struct sage__ndedupe *d, const char *caller, uint64_t id,
                                       uint32_t timeout_ms, void **bytesp, size_t *lenp)
{
    unsigned char mark[MARK_LEN];
    char key[64];
    void *v = NULL;
    size_t len = 0;
    uint64_t rev = 0;
    int64_t now = sage__wall_ms(), stale = timeout_ms ? (int64_t)timeout_ms : STALE_DEFAULT_MS;
    enum sage__tp_seen st = SAGE__TP_SEEN_RUNNING;
    sage_err r;

    if (d == NULL)
        return SAGE__TP_SEEN_NEW;
    make_key(key, sizeof key, caller, id);
    make_mark(mark, now);
    r = sage__nio_kv_create(d->kv, key, mark, sizeof mark, NULL);
    if (r != SAGE_EEXIST)
        return SAGE__TP_SEEN_NEW; /* ours now; or the store is out of reach: run it anyway */
    if (sage__nio_kv_get(d->kv, key, &v, &len, &rev) != SAGE_OK)
        return SAGE__TP_SEEN_NEW; /* gone meanwhile (expired), or out of reach */
    if (len >= 1 && ((unsigned char *)v)[0] == 'D') {
        *lenp = len - 1;
        *bytesp = malloc(len > 1 ? len - 1 : 1);
        if (*bytesp == NULL)
            st = SAGE__TP_SEEN_RUNNING; /* cannot resend it: drop, the first answered */
        else {
            memcpy(*bytesp, (unsigned char *)v + 1, len - 1);
            st = SAGE__TP_SEEN_DONE;
        }
    } else if (len == MARK_LEN && ((unsigned char *)v)[0] == 'R' &&
               now - mark_time(v) > stale &&
               sage__nio_kv_update(d->kv, key, mark, sizeof mark, rev, NULL) == SAGE_OK) {
        st = SAGE__TP_SEEN_NEW; /* its runner died: ours now */
    }
    free(v);
    return st;
}

void sage__ndedupe_finish(struct sage__ndedupe *d, const char *caller, uint64_t id,
                          const void *bytes, size_t len)
{
    char key[64], subject[300];
    unsigned char *v;

    if (d == NULL)
        return;
    make_key(key, sizeof key, caller, id);
    if (bytes == NULL || (v = malloc(len + 1)) == NULL) {
        sage__nio_kv_delete(d->kv, key); /* forget it: a repeat runs again */
        return;
    }
    v[0] = 'D';
    memcpy(v + 1, bytes, len);
    /* a put is a publish to the bucket's subject: sent, not waited for.
     * The answer goes out right after; a repeat comes later than that
     * (a retry after a timeout, a redelivery), and one that finds the
     * running mark still is dropped, the answer being on its way */
    snprintf(subject, sizeof subject, "$KV.%s.%s", d->bucket, key);
    if (sage__nio_publish(d->nio, subject, NULL, v, len + 1, NULL, 0) != SAGE_OK)
        sage__nio_kv_delete(d->kv, key); /* out of reach: a repeat runs again, if it can */
    free(v);
}
