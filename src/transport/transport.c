/* transport.c - the table of transports, and the inbox's control records. */
#include "transport/transport.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "sage/cluster.h"

extern const struct sage__tp_ops sage__tp_local;
extern const struct sage__tp_ops sage__tp_shm;
#ifdef SAGE_WITH_NATS
extern const struct sage__tp_ops sage__tp_nats;
#endif

const char *sage_transport_name(sage_transport t)
{
    switch (t) {
    case SAGE_TRANSPORT_LOCAL:
        return "local";
    case SAGE_TRANSPORT_SHM:
        return "shm";
    case SAGE_TRANSPORT_NATS:
        return "nats";
    }
    return "unknown";
}

sage_err sage_transport_parse(sage_transport *out, const char *name)
{
    static const sage_transport all[] = {SAGE_TRANSPORT_LOCAL, SAGE_TRANSPORT_SHM,
                                         SAGE_TRANSPORT_NATS};

    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, sage_transport_name(all[i])) == 0) {
            *out = all[i];
            return SAGE_OK;
        }
    return SAGE_SETERR(SAGE_EINVAL, "unknown transport '%s' (local, shm or nats)",
                       name ? name : "(null)");
}

/* resolution order: this machine first, then the cluster */
static const struct sage__tp_ops *const resolvers[] = {
    &sage__tp_shm,
#ifdef SAGE_WITH_NATS
    &sage__tp_nats,
#endif
};

const struct sage__tp_ops *sage__tp_for(sage_transport kind)
{
    switch (kind) {
    case SAGE_TRANSPORT_LOCAL:
        return &sage__tp_local;
    case SAGE_TRANSPORT_SHM:
        return &sage__tp_shm;
    case SAGE_TRANSPORT_NATS:
#ifdef SAGE_WITH_NATS
        return &sage__tp_nats;
#else
        return NULL;
#endif
    }
    return NULL;
}

/* sage/cluster.h's: the cluster stands on the NATS transport */
bool sage_cluster_supported(void)
{
    return sage__tp_for(SAGE_TRANSPORT_NATS) != NULL;
}

const struct sage__tp_ops *const *sage__tp_all(size_t *np)
{
    *np = sizeof resolvers / sizeof resolvers[0];
    return resolvers;
}

size_t sage__tp_ctl_make(struct sage__tp_ctl *c, const struct sage__tp_event *ev)
{
    size_t n = ev->why ? strlen(ev->why) : 0;

    if (n > sizeof c->why)
        n = sizeof c->why;
    memset(c, 0, offsetof(struct sage__tp_ctl, why));
    c->tag = SAGE__TP_CTL_TAG;
    c->kind = (uint8_t)ev->kind;
    c->why_len = (uint16_t)n;
    c->err = (int32_t)ev->err;
    c->key = ev->key;
    memcpy(c->why, ev->why ? ev->why : "", n);
    return offsetof(struct sage__tp_ctl, why) + n;
}

bool sage__tp_ctl_parse(const void *data, size_t len, struct sage__tp_event *ev, char *why,
                        size_t cap)
{
    struct sage__tp_ctl c;
    size_t n;

    if (len < offsetof(struct sage__tp_ctl, why) || len > sizeof c ||
        ((const uint8_t *)data)[0] != SAGE__TP_CTL_TAG)
        return false;
    memset(&c, 0, sizeof c);
    memcpy(&c, data, len);
    if (c.kind > SAGE__TP_FINISH || c.err < 0 || c.err >= SAGE_ERR_COUNT_)
        return false;
    n = c.why_len <= len - offsetof(struct sage__tp_ctl, why) ? c.why_len : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(why, c.why, n);
    why[n] = '\0';
    ev->kind = (enum sage__tp_event_kind)c.kind;
    ev->key = c.key;
    ev->err = (sage_err)c.err;
    ev->why = why;
    return true;
}

/* this thread's encoding buffer, grown on demand, freed at thread exit */
static _Thread_local void *scratch_buf;
static _Thread_local size_t scratch_cap;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_init(void)
{
    pthread_key_create(&scratch_key, free);
}

static void *scratch(size_t n)
{
    if (n > scratch_cap) {
        size_t cap = n < 4096 ? 4096 : n;
        void *b = realloc(scratch_buf, cap);

        if (b == NULL)
            return NULL;
        pthread_once(&scratch_once, scratch_init);
        pthread_setspecific(scratch_key, b);
        scratch_buf = b;
        scratch_cap = cap;
    }
    return scratch_buf;
}

/* Encoding once into a reused buffer (redone only when a message outgrows
 * it), then copying once into a ring or a socket, is cheaper than a sizing
 * pass plus an encoding in place. */
sage_err sage__tp_encode_req(const sage__req *req, const void **bufp, size_t *lenp)
{
    void *buf = scratch(4096);
    size_t len = 0;
    sage_err r;

    if (buf == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    r = sage__wire_req_encode(req, buf, scratch_cap, &len);
    if (r == SAGE_EMSGSIZE) {
        size_t size = sage__wire_req_size(req);

        if (size == 0)
            return SAGE_SETERR(SAGE_EINVAL, "%s", sage_errdetail());
        if ((buf = scratch(size)) == NULL)
            return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        r = sage__wire_req_encode(req, buf, scratch_cap, &len);
    }
    if (r != SAGE_OK)
        return r;
    *bufp = buf;
    *lenp = len;
    return SAGE_OK;
}

sage_err sage__tp_encode_resp(const sage__resp *resp, const void **bufp, size_t *lenp)
{
    size_t size = sage__wire_resp_size(resp), len = 0;
    void *buf;
    sage_err r;

    if (size == 0)
        return SAGE_SETERR(SAGE_EINVAL, "%s", sage_errdetail());
    if ((buf = scratch(size)) == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    if ((r = sage__wire_resp_encode(resp, buf, scratch_cap, &len)) != SAGE_OK)
        return r;
    *bufp = buf;
    *lenp = len;
    return SAGE_OK;
}

bool sage__tp_listed(const char *list, const char *method)
{
    size_t n = strlen(method);

    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (len == n && memcmp(p, method, n) == 0)
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}
