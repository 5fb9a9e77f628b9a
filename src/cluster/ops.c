/* ops.c - the connection to the operations' buckets, and JSON on buckets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err_internal.h"
#include "cluster/ops.h"

sage_err sage__ops_open(struct sage__ops *o, const sage_nats_conf *nats, const char *name,
                        void (*on_event)(void *arg, enum sage__nio_event ev, const char *url),
                        void *arg)
{
    static const struct sage__nio_kv_opts plain = {1, 0, 0};
    static const struct sage__nio_kv_opts leases = {1, SAGE__LEASE_TTL_MS, 0};
    struct sage__nio_opts no;
    sage_err r;

    memset(o, 0, sizeof *o);
    memset(&no, 0, sizeof no);
    no.conf = nats;
    no.name = name;
    no.on_event = on_event;
    no.arg = arg;
    if ((r = sage__nio_connect(&o->nio, &no)) != SAGE_OK)
        return r;
    if ((r = sage__nio_kv_open(o->nio, SAGE__HOSTS_BUCKET, &plain, &o->hosts)) != SAGE_OK ||
        (r = sage__nio_kv_open(o->nio, SAGE__DEPLOY_BUCKET, &plain, &o->deploy)) != SAGE_OK ||
        (r = sage__nio_kv_open(o->nio, SAGE__LEASES_BUCKET, &leases, &o->leases)) != SAGE_OK ||
        (r = sage__nio_kv_open(o->nio, SAGE__SERVICES_BUCKET, &plain, &o->services)) != SAGE_OK) {
        char why[512];

        /* the detail is formatted into the buffer it comes from: copy it */
        snprintf(why, sizeof why, "%s", sage_errdetail());
        r = SAGE_SETERR(r, "cannot open the cluster's key-value buckets (is JetStream enabled on "
                           "the NATS server?): %s",
                        why);
        sage__ops_close(o);
        return r;
    }
    return SAGE_OK;
}

void sage__ops_close(struct sage__ops *o)
{
    sage__nio_kv_close(o->hosts);
    sage__nio_kv_close(o->deploy);
    sage__nio_kv_close(o->leases);
    sage__nio_kv_close(o->services);
    sage__nio_close(o->nio);
    memset(o, 0, sizeof *o);
}

int64_t sage__wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool sage__valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return false;
    return true;
}

/* ------------------------------------------------------------ JSON helpers */

sage_err sage__kv_get_json(struct sage__nio_kv *kv, const char *key, json_t **op, uint64_t *revp)
{
    void *val = NULL;
    size_t len = 0;
    json_t *o;
    sage_err r = sage__nio_kv_get(kv, key, &val, &len, revp);

    if (r != SAGE_OK)
        return r;
    o = json_loadb(val, len, 0, NULL);
    free(val);
    if (!json_is_object(o)) {
        json_decref(o);
        return SAGE_SETERR(SAGE_EPROTO, "'%s' is not a JSON object", key);
    }
    *op = o;
    return SAGE_OK;
}

sage_err sage__kv_put_json(struct sage__nio_kv *kv, const char *key, const json_t *o, bool create,
                           uint64_t rev, uint64_t *revp)
{
    char *text = json_dumps(o, JSON_COMPACT);
    sage_err r;

    if (text == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    if (create)
        r = sage__nio_kv_create(kv, key, text, strlen(text), revp);
    else if (rev)
        r = sage__nio_kv_update(kv, key, text, strlen(text), rev, revp);
    else
        r = sage__nio_kv_put(kv, key, text, strlen(text), revp);
    free(text);
    return r;
}

const char *sage__jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    return json_is_string(v) ? json_string_value(v) : "";
}

double sage__jnum(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    return json_is_number(v) ? json_number_value(v) : 0;
}

int64_t sage__jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    return json_is_real(v) ? (int64_t)json_real_value(v) : 0;
}

struct keys {
    char **v;
    size_t n, cap;
    bool nomem;
};

static void collect(void *arg, const char *key)
{
    struct keys *k = arg;

    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 16;
        char **v = realloc(k->v, cap * sizeof *v);

        if (v == NULL) {
            k->nomem = true;
            return;
        }
        k->v = v;
        k->cap = cap;
    }
    if ((k->v[k->n] = strdup(key)) == NULL)
        k->nomem = true;
    else
        k->n++;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

sage_err sage__kv_each(struct sage__nio_kv *kv,
                       void (*fn)(void *arg, const char *key, json_t *o, uint64_t rev), void *arg)
{
    struct keys k = {NULL, 0, 0, false};
    sage_err r = sage__nio_kv_keys(kv, collect, &k);

    if (r == SAGE_OK && k.nomem)
        r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    if (r == SAGE_OK && k.n > 1)
        qsort(k.v, k.n, sizeof *k.v, by_name);
    for (size_t i = 0; r == SAGE_OK && i < k.n; i++) {
        json_t *o = NULL;
        uint64_t rev = 0;
        sage_err e = sage__kv_get_json(kv, k.v[i], &o, &rev);

        if (e == SAGE_OK) {
            fn(arg, k.v[i], o, rev);
            json_decref(o);
        } else if (e != SAGE_ENOENT && e != SAGE_EPROTO) {
            r = e;
        }
    }
    for (size_t i = 0; i < k.n; i++)
        free(k.v[i]);
    free(k.v);
    return r;
}
