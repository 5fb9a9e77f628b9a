/*
 * wire.c - the envelope of requests and responses, in MessagePack. This is
 * the one file of sagesvc that includes <msgpack.h>.
 *
 * Encoding runs msgpack-c's packer over a sink that copies into the caller's
 * buffer while counting; with no buffer the same pass measures the exact
 * size. Decoding first proves the bytes sane (scan.c), then lets
 * msgpack_unpack build its object tree in a per-thread zone, converts that
 * tree into sage_values in the caller's arena, and clears the zone. A
 * cleared zone keeps its first chunk, so typical messages decode with no
 * malloc; the zone is freed when its thread exits.
 */
#include <inttypes.h>
#include <msgpack.h>
#include <pthread.h>
#include <string.h>

#include "base/err_internal.h"
#include "wire/arena.h"
#include "wire/scan.h"
#include "wire/wire.h"

#define ZONE_CHUNK 8192
#define REQ_FIELDS 10
#define RESP_FIELDS 7
#define MAX_LEN UINT32_MAX /* longest str, bin, array or map MessagePack can say */

/* ------------------------------------------------------------- encoding */

/* sink: where the packer writes; len counts every byte, even past cap. */
struct sink {
    char *buf;
    size_t cap;
    size_t len;
};

static int sink_write(void *data, const char *p, size_t n)
{
    struct sink *s = data;

    if (s->len <= s->cap && n <= s->cap - s->len) {
        char *d = s->buf + s->len;

        if (n <= 9) /* headers and numbers: not worth a call to memcpy */
            for (size_t i = 0; i < n; i++)
                d[i] = p[i];
        else
            memcpy(d, p, n);
    }
    s->len += n;
    return 0;
}

/* enc: one encoding pass; field names the envelope field for errors. */
struct enc {
    msgpack_packer pk;
    struct sink sink;
    const char *field;
};

static sage_err put_str(struct enc *e, const char *s, size_t n, const char *field)
{
    if (s == NULL && n > 0)
        return SAGE_SETERR(SAGE_EINVAL, "%s: %zu-byte string at NULL", field, n);
    if (n > MAX_LEN)
        return SAGE_SETERR(SAGE_EINVAL, "%s: string of %zu bytes exceeds 2^32 - 1", field, n);
    msgpack_pack_str(&e->pk, n);
    if (n > 0)
        msgpack_pack_str_body(&e->pk, s, n);
    return SAGE_OK;
}

static sage_err put_value(struct enc *e, const sage_value *v, int depth);

static sage_err put_container(struct enc *e, const sage_value *v, int depth)
{
    bool map = v->type == SAGE_MAP;
    size_t n = map ? v->as.map.len : v->as.array.len;
    const void *items = map ? (const void *)v->as.map.items : (const void *)v->as.array.items;

    if (depth > SAGE__WIRE_MAX_DEPTH)
        return SAGE_SETERR(SAGE_EINVAL, "%s: values nested deeper than %d (envelope included)",
                           e->field, SAGE__WIRE_MAX_DEPTH);
    if (n > MAX_LEN)
        return SAGE_SETERR(SAGE_EINVAL, "%s: %s of %zu items exceeds 2^32 - 1", e->field,
                           sage_type_name(v->type), n);
    if (items == NULL && n > 0)
        return SAGE_SETERR(SAGE_EINVAL, "%s: %s of %zu items at NULL", e->field,
                           sage_type_name(v->type), n);
    if (map)
        msgpack_pack_map(&e->pk, n);
    else
        msgpack_pack_array(&e->pk, n);
    for (size_t i = 0; i < n; i++) {
        sage_err err;

        if (map) {
            err = put_value(e, &v->as.map.items[i].key, depth + 1);
            if (err == SAGE_OK)
                err = put_value(e, &v->as.map.items[i].val, depth + 1);
        } else {
            err = put_value(e, &v->as.array.items[i], depth + 1);
        }
        if (err)
            return err;
    }
    return SAGE_OK;
}

/* put_value encodes v; depth is the nesting v would have if a container. */
static sage_err put_value(struct enc *e, const sage_value *v, int depth)
{
    switch (v->type) {
    case SAGE_NIL:
        msgpack_pack_nil(&e->pk);
        return SAGE_OK;
    case SAGE_BOOL:
        if (v->as.b)
            msgpack_pack_true(&e->pk);
        else
            msgpack_pack_false(&e->pk);
        return SAGE_OK;
    case SAGE_INT:
        msgpack_pack_int64(&e->pk, v->as.i);
        return SAGE_OK;
    case SAGE_UINT:
        msgpack_pack_uint64(&e->pk, v->as.u);
        return SAGE_OK;
    case SAGE_DOUBLE:
        msgpack_pack_double(&e->pk, v->as.d);
        return SAGE_OK;
    case SAGE_STR:
        return put_str(e, v->as.str.ptr, v->as.str.len, e->field);
    case SAGE_BIN:
        if (v->as.bin.ptr == NULL && v->as.bin.len > 0)
            return SAGE_SETERR(SAGE_EINVAL, "%s: %zu-byte bin at NULL", e->field, v->as.bin.len);
        if (v->as.bin.len > MAX_LEN)
            return SAGE_SETERR(SAGE_EINVAL, "%s: bin of %zu bytes exceeds 2^32 - 1", e->field,
                               v->as.bin.len);
        msgpack_pack_bin(&e->pk, v->as.bin.len);
        if (v->as.bin.len > 0)
            msgpack_pack_bin_body(&e->pk, v->as.bin.ptr, v->as.bin.len);
        return SAGE_OK;
    case SAGE_ARRAY:
    case SAGE_MAP:
        return put_container(e, v, depth);
    }
    return SAGE_SETERR(SAGE_EINVAL, "%s: unknown value type %d", e->field, (int)v->type);
}

static sage_err put_args(struct enc *e, const sage_value *args)
{
    e->field = "request.args";
    if (args->type == SAGE_NIL) {
        msgpack_pack_array(&e->pk, 0);
        return SAGE_OK;
    }
    if (args->type != SAGE_ARRAY)
        return SAGE_SETERR(SAGE_EINVAL, "request.args: expected array, got %s",
                           sage_type_name(args->type));
    return put_value(e, args, 2);
}

static sage_err put_kwargs(struct enc *e, const sage_value *kw)
{
    e->field = "request.kwargs";
    if (kw->type == SAGE_NIL) {
        msgpack_pack_map(&e->pk, 0);
        return SAGE_OK;
    }
    if (kw->type != SAGE_MAP)
        return SAGE_SETERR(SAGE_EINVAL, "request.kwargs: expected map, got %s",
                           sage_type_name(kw->type));
    for (size_t i = 0; i < kw->as.map.len && kw->as.map.items; i++)
        if (kw->as.map.items[i].key.type != SAGE_STR)
            return SAGE_SETERR(SAGE_EINVAL, "request.kwargs: key #%zu is %s, not string", i,
                               sage_type_name(kw->as.map.items[i].key.type));
    return put_value(e, kw, 2);
}

static sage_err put_req(struct enc *e, const sage__req *r)
{
    sage_err err;

    /* sent_ns is optional: written only when known, as an 11th element */
    msgpack_pack_array(&e->pk, r->sent_ns ? REQ_FIELDS + 1 : REQ_FIELDS);
    msgpack_pack_uint8(&e->pk, SAGE__WIRE_VERSION);
    msgpack_pack_uint8(&e->pk, SAGE__WIRE_REQUEST);
    msgpack_pack_uint64(&e->pk, r->id);
    err = put_str(e, r->service, r->service_len, "request.service");
    if (err == SAGE_OK)
        err = put_str(e, r->method, r->method_len, "request.method");
    if (err == SAGE_OK)
        err = put_args(e, &r->args);
    if (err == SAGE_OK)
        err = put_kwargs(e, &r->kwargs);
    if (err == SAGE_OK)
        err = put_str(e, r->reply_to, r->reply_to_len, "request.reply_to");
    if (err)
        return err;
    msgpack_pack_uint32(&e->pk, r->timeout_ms);
    msgpack_pack_uint32(&e->pk, r->flags);
    if (r->sent_ns)
        msgpack_pack_uint64(&e->pk, r->sent_ns);
    return SAGE_OK;
}

static sage_err put_resp(struct enc *e, const sage__resp *r)
{
    sage_err err;

    if (r->ok != (r->err_code == 0))
        return SAGE_SETERR(SAGE_EINVAL, "response: ok is %s but err_code is %" PRId32,
                           r->ok ? "true" : "false", r->err_code);
    msgpack_pack_array(&e->pk, RESP_FIELDS);
    msgpack_pack_uint8(&e->pk, SAGE__WIRE_VERSION);
    msgpack_pack_uint8(&e->pk, SAGE__WIRE_RESPONSE);
    msgpack_pack_uint64(&e->pk, r->id);
    if (r->ok)
        msgpack_pack_true(&e->pk);
    else
        msgpack_pack_false(&e->pk);
    e->field = "response.result";
    err = put_value(e, &r->result, 2);
    if (err)
        return err;
    msgpack_pack_int32(&e->pk, r->err_code);
    return put_str(e, r->err_msg, r->err_msg_len, "response.err_msg");
}

static void enc_init(struct enc *e, void *buf, size_t cap)
{
    e->sink.buf = buf;
    e->sink.cap = buf ? cap : 0;
    e->sink.len = 0;
    e->field = "";
    msgpack_packer_init(&e->pk, &e->sink, sink_write);
}

static sage_err enc_finish(struct enc *e, const char *what, size_t *lenp)
{
    if (e->sink.len > e->sink.cap)
        return SAGE_SETERR(SAGE_EMSGSIZE, "%s needs %zu bytes, the buffer has %zu", what,
                           e->sink.len, e->sink.cap);
    *lenp = e->sink.len;
    return SAGE_OK;
}

size_t sage__wire_req_size(const sage__req *r)
{
    struct enc e;

    enc_init(&e, NULL, 0);
    return put_req(&e, r) == SAGE_OK ? e.sink.len : 0;
}

sage_err sage__wire_req_encode(const sage__req *r, void *buf, size_t cap, size_t *lenp)
{
    struct enc e;
    sage_err err;

    enc_init(&e, buf, cap);
    err = put_req(&e, r);
    return err ? err : enc_finish(&e, "request", lenp);
}

size_t sage__wire_resp_size(const sage__resp *r)
{
    struct enc e;

    enc_init(&e, NULL, 0);
    return put_resp(&e, r) == SAGE_OK ? e.sink.len : 0;
}

sage_err sage__wire_resp_encode(const sage__resp *r, void *buf, size_t cap, size_t *lenp)
{
    struct enc e;
    sage_err err;

    enc_init(&e, buf, cap);
    err = put_resp(&e, r);
    return err ? err : enc_finish(&e, "response", lenp);
}

/* ------------------------------------------------------------- decoding */

static pthread_key_t zone_key;
static pthread_once_t zone_once = PTHREAD_ONCE_INIT;
static bool zone_key_ok;
static _Thread_local msgpack_zone *thread_zone;

static void zone_destroy(void *z)
{
    msgpack_zone_free(z);
}

static void zone_key_init(void)
{
    zone_key_ok = pthread_key_create(&zone_key, zone_destroy) == 0;
}

/* get_zone returns this thread's zone, made on first use; the key's
 * destructor frees it when the thread exits. */
static msgpack_zone *get_zone(void)
{
    msgpack_zone *z = thread_zone;

    if (z != NULL)
        return z;
    pthread_once(&zone_once, zone_key_init);
    if (!zone_key_ok)
        return NULL;
    z = msgpack_zone_new(ZONE_CHUNK);
    if (z == NULL)
        return NULL;
    if (pthread_setspecific(zone_key, z) != 0) {
        msgpack_zone_free(z);
        return NULL;
    }
    thread_zone = z;
    return z;
}

static const char *mp_type_name(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "int";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return "float";
    case MSGPACK_OBJECT_STR:
        return "str";
    case MSGPACK_OBJECT_BIN:
        return "bin";
    case MSGPACK_OBJECT_ARRAY:
        return "array";
    case MSGPACK_OBJECT_MAP:
        return "map";
    default:
        return "ext";
    }
}

/* dec: one decoding pass into an arena. */
struct dec {
    sage_arena *a;
    const char *what; /* "request" or "response" */
};

static sage_err type_error(const struct dec *d, const char *field, const char *want,
                           const msgpack_object *o)
{
    return SAGE_SETERR(SAGE_EPROTO, "%s.%s: expected %s, got %s", d->what, field, want,
                       mp_type_name(o->type));
}

static sage_err no_memory(const struct dec *d, const char *field)
{
    return SAGE_SETERR(SAGE_ENOMEM, "%s.%s: arena out of memory", d->what, field);
}

static sage_err get_value(const struct dec *d, const msgpack_object *o, const char *field,
                          sage_value *out);

static sage_err get_array(const struct dec *d, const msgpack_object *o, const char *field,
                          sage_value *out)
{
    size_t n = o->via.array.size;
    sage_value *items = sage_arena_alloc(d->a, n * sizeof *items);

    if (items == NULL)
        return no_memory(d, field);
    for (size_t i = 0; i < n; i++) {
        sage_err err = get_value(d, &o->via.array.ptr[i], field, &items[i]);

        if (err)
            return err;
    }
    *out = sage_array(items, n);
    return SAGE_OK;
}

static sage_err get_map(const struct dec *d, const msgpack_object *o, const char *field,
                        sage_value *out)
{
    size_t n = o->via.map.size;
    sage_pair *pairs = sage_arena_alloc(d->a, n * sizeof *pairs);

    if (pairs == NULL)
        return no_memory(d, field);
    for (size_t i = 0; i < n; i++) {
        sage_err err = get_value(d, &o->via.map.ptr[i].key, field, &pairs[i].key);

        if (err == SAGE_OK)
            err = get_value(d, &o->via.map.ptr[i].val, field, &pairs[i].val);
        if (err)
            return err;
    }
    *out = sage_map(pairs, n);
    return SAGE_OK;
}

static sage_err get_value(const struct dec *d, const msgpack_object *o, const char *field,
                          sage_value *out)
{
    const char *s;

    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        *out = sage_nil();
        return SAGE_OK;
    case MSGPACK_OBJECT_BOOLEAN:
        *out = sage_bool(o->via.boolean);
        return SAGE_OK;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = o->via.u64 <= INT64_MAX ? sage_int((int64_t)o->via.u64) : sage_uint(o->via.u64);
        return SAGE_OK;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = sage_int(o->via.i64);
        return SAGE_OK;
    case MSGPACK_OBJECT_FLOAT32: /* msgpack-c widens both to f64 */
    case MSGPACK_OBJECT_FLOAT64:
        *out = sage_double(o->via.f64);
        return SAGE_OK;
    case MSGPACK_OBJECT_STR:
        s = sage__arena_strndup(d->a, o->via.str.ptr, o->via.str.size);
        if (s == NULL)
            return no_memory(d, field);
        *out = sage_strn(s, o->via.str.size);
        return SAGE_OK;
    case MSGPACK_OBJECT_BIN:
        s = sage__arena_strndup(d->a, o->via.bin.ptr, o->via.bin.size);
        if (s == NULL)
            return no_memory(d, field);
        *out = sage_bin(s, o->via.bin.size);
        return SAGE_OK;
    case MSGPACK_OBJECT_ARRAY:
        return get_array(d, o, field, out);
    case MSGPACK_OBJECT_MAP:
        return get_map(d, o, field, out);
    default: /* the scan already refused ext */
        return SAGE_SETERR(SAGE_EPROTO, "%s.%s: %s is not allowed", d->what, field,
                           mp_type_name(o->type));
    }
}

static sage_err get_str(const struct dec *d, const msgpack_object *o, const char *field,
                        const char **s, size_t *n)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return type_error(d, field, "str", o);
    *s = sage__arena_strndup(d->a, o->via.str.ptr, o->via.str.size);
    if (*s == NULL)
        return no_memory(d, field);
    *n = o->via.str.size;
    return SAGE_OK;
}

static sage_err get_u32(const struct dec *d, const msgpack_object *o, const char *field,
                        uint32_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER
                   ? SAGE_SETERR(SAGE_EPROTO, "%s.%s: expected uint32, got %" PRId64, d->what,
                                 field, o->via.i64)
                   : type_error(d, field, "uint32", o);
    if (o->via.u64 > UINT32_MAX)
        return SAGE_SETERR(SAGE_EPROTO, "%s.%s: %" PRIu64 " does not fit in uint32", d->what,
                           field, o->via.u64);
    *out = (uint32_t)o->via.u64;
    return SAGE_OK;
}

/*
 * unpack_envelope checks the header and structure of buf and lets msgpack-c
 * parse it into zone z. The envelope must have the wanted kind and at least
 * need elements; on success *root is the envelope array and *idp its id.
 */
static sage_err unpack_envelope(const void *buf, size_t len, const char *what, uint64_t want_kind,
                                uint32_t need, const char *const *fields, msgpack_zone *z,
                                msgpack_object *root, uint64_t *idp)
{
    uint32_t count;
    uint64_t kind;
    size_t used, off = 0;
    msgpack_unpack_return r;
    sage_err err;

    err = sage__wire_header(buf, len, what, &count, &kind, idp);
    if (err)
        return err;
    if (kind != want_kind)
        return SAGE_SETERR(SAGE_EPROTO, "%s.kind: expected %" PRIu64 " (%s), got %" PRIu64,
                           what, want_kind, what, kind);
    if (count < need)
        return SAGE_SETERR(SAGE_EPROTO, "%s.%s: missing (array of %" PRIu32 ", %" PRIu32
                                        " fields needed)",
                           what, fields[count], count, need);
    err = sage__wire_scan(buf, len, what, &used);
    if (err)
        return err;
    if (used != len)
        return SAGE_SETERR(SAGE_EPROTO, "%s: %zu trailing bytes after the envelope", what,
                           len - used);
    r = msgpack_unpack(buf, len, &off, z, root);
    if (r != MSGPACK_UNPACK_SUCCESS)
        return SAGE_SETERR(r == MSGPACK_UNPACK_NOMEM_ERROR ? SAGE_ENOMEM : SAGE_EPROTO,
                           "%s: msgpack-c refused the envelope (%d)", what, (int)r);
    return SAGE_OK;
}

static const char *const req_fields[REQ_FIELDS] = {
    "version", "kind",   "id",       "service",    "method",
    "args",    "kwargs", "reply_to", "timeout_ms", "flags",
};

static sage_err get_req(const struct dec *d, const msgpack_object *f, uint32_t count,
                        sage__req *q)
{
    const msgpack_object *kw = &f[6];
    sage_err err;

    if ((err = get_str(d, &f[3], "service", &q->service, &q->service_len)) ||
        (err = get_str(d, &f[4], "method", &q->method, &q->method_len)))
        return err;
    if (f[5].type != MSGPACK_OBJECT_ARRAY)
        return type_error(d, "args", "array", &f[5]);
    if (kw->type != MSGPACK_OBJECT_MAP)
        return type_error(d, "kwargs", "map", kw);
    for (uint32_t i = 0; i < kw->via.map.size; i++)
        if (kw->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR)
            return SAGE_SETERR(SAGE_EPROTO, "request.kwargs: key #%" PRIu32 " is %s, not str",
                               i, mp_type_name(kw->via.map.ptr[i].key.type));
    if ((err = get_value(d, &f[5], "args", &q->args)) ||
        (err = get_value(d, kw, "kwargs", &q->kwargs)) ||
        (err = get_str(d, &f[7], "reply_to", &q->reply_to, &q->reply_to_len)) ||
        (err = get_u32(d, &f[8], "timeout_ms", &q->timeout_ms)) ||
        (err = get_u32(d, &f[9], "flags", &q->flags)))
        return err;
    if (count > REQ_FIELDS) { /* the optional sent_ns */
        if (f[10].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return type_error(d, "sent_ns", "uint64", &f[10]);
        q->sent_ns = f[10].via.u64;
    }
    return SAGE_OK;
}

sage_err sage__wire_req_decode(const void *buf, size_t len, sage_arena *a, sage__req *out)
{
    struct dec d = {a, "request"};
    msgpack_zone *z = get_zone();
    msgpack_object root;
    sage__req q;
    sage_err err;

    if (a == NULL || out == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "request: NULL arena or result");
    if (z == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "request: cannot make the decoding zone");
    memset(&q, 0, sizeof q);
    err = unpack_envelope(buf, len, "request", SAGE__WIRE_REQUEST, REQ_FIELDS, req_fields, z,
                          &root, &q.id);
    if (err == SAGE_OK)
        err = get_req(&d, root.via.array.ptr, root.via.array.size, &q);
    msgpack_zone_clear(z);
    if (err == SAGE_OK)
        *out = q;
    return err;
}

static const char *const resp_fields[RESP_FIELDS] = {
    "version", "kind", "id", "ok", "result", "err_code", "err_msg",
};

static sage_err get_resp(const struct dec *d, const msgpack_object *f, sage__resp *p)
{
    const msgpack_object *code = &f[5];
    sage_err err;

    if (f[3].type != MSGPACK_OBJECT_BOOLEAN)
        return type_error(d, "ok", "bool", &f[3]);
    p->ok = f[3].via.boolean;
    if (code->type == MSGPACK_OBJECT_POSITIVE_INTEGER && code->via.u64 <= INT32_MAX)
        p->err_code = (int32_t)code->via.u64;
    else if (code->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && code->via.i64 >= INT32_MIN)
        p->err_code = (int32_t)code->via.i64;
    else if (code->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
             code->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return SAGE_SETERR(SAGE_EPROTO, "response.err_code: does not fit in int32");
    else
        return type_error(d, "err_code", "int", code);
    if (p->ok != (p->err_code == 0))
        return SAGE_SETERR(SAGE_EPROTO, "response.err_code: %" PRId32 " with ok %s", p->err_code,
                           p->ok ? "true" : "false");
    if ((err = get_value(d, &f[4], "result", &p->result)) ||
        (err = get_str(d, &f[6], "err_msg", &p->err_msg, &p->err_msg_len)))
        return err;
    return SAGE_OK;
}

sage_err sage__wire_resp_decode(const void *buf, size_t len, sage_arena *a, sage__resp *out)
{
    struct dec d = {a, "response"};
    msgpack_zone *z = get_zone();
    msgpack_object root;
    sage__resp p;
    sage_err err;

    if (a == NULL || out == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "response: NULL arena or result");
    if (z == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "response: cannot make the decoding zone");
    memset(&p, 0, sizeof p);
    err = unpack_envelope(buf, len, "response", SAGE__WIRE_RESPONSE, RESP_FIELDS, resp_fields, z,
                          &root, &p.id);
    if (err == SAGE_OK)
        err = get_resp(&d, root.via.array.ptr, &p);
    msgpack_zone_clear(z);
    if (err == SAGE_OK)
        *out = p;
    return err;
}

sage_err sage__wire_peek(const void *buf, size_t len, int *kind, uint64_t *id)
{
    uint32_t count;
    uint64_t k, i;
    sage_err err = sage__wire_header(buf, len, "message", &count, &k, &i);

    if (err)
        return err;
    if (k != SAGE__WIRE_REQUEST && k != SAGE__WIRE_RESPONSE)
        return SAGE_SETERR(SAGE_EPROTO, "message.kind: unknown kind %" PRIu64, k);
    *kind = (int)k;
    *id = i;
    return SAGE_OK;
}
