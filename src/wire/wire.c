/*
 * wire.c - the envelope of requests and responses, in MessagePack. This is
 * the one file of sagesvc that includes <msgpack.h>.
 *
 * Encoding runs msgpack-c's packer over a sink that copies into the caller's
 * buffer while counting; with no buffer the same pass measures the exact
 * size. Decoding does not use msgpack-c: decode.c reads the bytes once,
 * checking them as it goes, straight into sage_values in the caller's arena;
 * this file says which fields an envelope has and what each must hold.
 */
#include <inttypes.h>
#include <msgpack.h>
#include <string.h>

#include "base/err_internal.h"
#include "wire/decode.h"
#include "wire/wire.h"

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

/* envelope: what a decoder expects of the head, and the names of the
 * fields a valid envelope has at least (need of them). */
struct envelope {
    const char *what; /* "request" or "response": starts every detail */
    uint64_t kind;
    uint32_t need;
    const char *const *fields;
};

/*
 * begin checks a decoder's arguments (the arena a and the result out must
 * not be NULL), points d at the len bytes at buf and reads the head of an
 * envelope env, judging it in the protocol's order of checks: the head
 * itself, then the kind, then missing fields, then whether the declared
 * elements can fit.
 */
static sage_err begin(sage__dec *d, const struct envelope *env, const void *buf, size_t len,
                      sage_arena *a, const void *out, uint32_t *countp, uint64_t *idp)
{
    uint64_t kind;
    sage_err err;

    if (a == NULL || out == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "%s: NULL arena or result", env->what);
    sage__dec_init(d, buf, len, a, env->what);
    if ((err = sage__dec_head(d, countp, &kind, idp)) != SAGE_OK)
        return err;
    if (kind != env->kind)
        return SAGE_SETERR(SAGE_EPROTO, "%s.kind: expected %" PRIu64 " (%s), got %" PRIu64,
                           env->what, env->kind, env->what, kind);
    if (*countp < env->need)
        return SAGE_SETERR(SAGE_EPROTO, "%s.%s: missing (array of %" PRIu32 ", %" PRIu32
                                        " fields needed)",
                           env->what, env->fields[*countp], *countp, env->need);
    return sage__dec_body(d, *countp);
}

static void get_u32(sage__dec *d, const char *field, uint32_t *out)
{
    bool neg;
    uint64_t u;

    if (!sage__dec_int(d, field, "uint32", &neg, &u))
        return;
    if (neg)
        sage__dec_fail(d, SAGE_SETERR(SAGE_EPROTO, "request.%s: expected uint32, got %" PRId64,
                                      field, (int64_t)u));
    else if (u > UINT32_MAX)
        sage__dec_fail(d, SAGE_SETERR(SAGE_EPROTO, "request.%s: %" PRIu64
                                                   " does not fit in uint32",
                                      field, u));
    else
        *out = (uint32_t)u;
}

static const char *const req_fields[REQ_FIELDS] = {
    "version", "kind",   "id",       "service",    "method",
    "args",    "kwargs", "reply_to", "timeout_ms", "flags",
};
static const struct envelope request = {"request", SAGE__WIRE_REQUEST, REQ_FIELDS, req_fields};

/* get_req reads a request's fields after the head; the readers keep the
 * error to report (decode.h), so each field is read whatever came before. */
static sage_err get_req(sage__dec *d, uint32_t count, sage__req *q)
{
    uint32_t known = count > REQ_FIELDS ? REQ_FIELDS + 1 : REQ_FIELDS;
    bool neg;
    uint64_t u;

    sage__dec_str(d, "service", &q->service, &q->service_len);
    sage__dec_str(d, "method", &q->method, &q->method_len);
    sage__dec_array(d, "args", &q->args);
    sage__dec_kwargs(d, "kwargs", &q->kwargs);
    sage__dec_str(d, "reply_to", &q->reply_to, &q->reply_to_len);
    get_u32(d, "timeout_ms", &q->timeout_ms);
    get_u32(d, "flags", &q->flags);
    if (count > REQ_FIELDS && sage__dec_int(d, "sent_ns", "uint64", &neg, &u)) {
        if (neg) /* msgpack-c's word for a negative integer: the detail stays */
            sage__dec_fail(d, SAGE_SETERR(SAGE_EPROTO,
                                          "request.sent_ns: expected uint64, got int"));
        else
            q->sent_ns = u;
    }
    sage__dec_skip(d, count - known); /* later fields: checked, ignored */
    return sage__dec_end(d);
}

sage_err sage__wire_req_decode(const void *buf, size_t len, sage_arena *a, sage__req *out)
{
    sage__dec d;
    sage__req q = {0};
    uint32_t count;
    sage_err err = begin(&d, &request, buf, len, a, out, &count, &q.id);

    if (err == SAGE_OK)
        err = get_req(&d, count, &q);
    if (err == SAGE_OK)
        *out = q;
    return err;
}

static const char *const resp_fields[RESP_FIELDS] = {
    "version", "kind", "id", "ok", "result", "err_code", "err_msg",
};
static const struct envelope response = {"response", SAGE__WIRE_RESPONSE, RESP_FIELDS,
                                         resp_fields};

/* get_code reads err_code, an int32 of any integer encoding. */
static bool get_code(sage__dec *d, int32_t *out)
{
    bool neg;
    uint64_t u;

    if (!sage__dec_int(d, "err_code", "int", &neg, &u))
        return false;
    if (neg ? (int64_t)u < INT32_MIN : u > INT32_MAX) {
        sage__dec_fail(d, SAGE_SETERR(SAGE_EPROTO, "response.err_code: does not fit in int32"));
        return false;
    }
    *out = (int32_t)(int64_t)u;
    return true;
}

static sage_err get_resp(sage__dec *d, uint32_t count, sage__resp *p)
{
    bool have_ok = sage__dec_bool(d, "ok", &p->ok);

    sage__dec_value(d, "result", &p->result);
    if (get_code(d, &p->err_code) && have_ok && p->ok != (p->err_code == 0))
        sage__dec_fail(d, SAGE_SETERR(SAGE_EPROTO, "response.err_code: %" PRId32 " with ok %s",
                                      p->err_code, p->ok ? "true" : "false"));
    sage__dec_str(d, "err_msg", &p->err_msg, &p->err_msg_len);
    sage__dec_skip(d, count - RESP_FIELDS);
    return sage__dec_end(d);
}

sage_err sage__wire_resp_decode(const void *buf, size_t len, sage_arena *a, sage__resp *out)
{
    sage__dec d;
    sage__resp p = {0};
    uint32_t count;
    sage_err err = begin(&d, &response, buf, len, a, out, &count, &p.id);

    if (err == SAGE_OK)
        err = get_resp(&d, count, &p);
    if (err == SAGE_OK)
        *out = p;
    return err;
}

sage_err sage__wire_peek(const void *buf, size_t len, int *kind, uint64_t *id)
{
    sage__dec d;
    uint32_t count;
    uint64_t k, i;
    sage_err err;

    sage__dec_init(&d, buf, len, NULL, "message");
    if ((err = sage__dec_head(&d, &count, &k, &i)) != SAGE_OK)
        return err;
    if (k != SAGE__WIRE_REQUEST && k != SAGE__WIRE_RESPONSE)
        return SAGE_SETERR(SAGE_EPROTO, "message.kind: unknown kind %" PRIu64, k);
    *kind = (int)k;
    *id = i;
    return SAGE_OK;
}
