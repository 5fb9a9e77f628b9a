/*
 * convert.c - Python objects to sage_values and back, directly in C.
 *
 * Python -> sage: None, bool, int (int64, then uint64 above INT64_MAX),
 * float, str (UTF-8), bytes/bytearray/memoryview (binary), list/tuple
 * (array), dict (map, keys converted like values). Subclasses count as
 * their base (an IntEnum is an int, an OrderedDict a dict). Strings and
 * bytes are copied into the arena: the caller releases the GIL during the
 * call, when another thread could change a bytearray or drop the last
 * reference to a string of a dict it changes.
 *
 * sage -> Python: nil None, bool, int, uint (int), double (float), string
 * (str; invalid UTF-8 is a ValueError), bin (bytes), array (list), map
 * (dict; array keys become tuples so they can be keys, a map key is a
 * TypeError).
 *
 * Errors name the place: a stack of the indexes and keys walked through is
 * kept as the conversion descends (nothing is formatted unless it fails).
 * No Python code runs during a conversion (only C accessors of built-in
 * types), so nothing can change a container while it is walked.
 */
#include "pysage.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>

enum seg_kind { SEG_INDEX, SEG_KEY, SEG_KEYOF };

struct seg {
    enum seg_kind kind;
    Py_ssize_t index;   /* SEG_INDEX */
    PyObject *key;      /* SEG_KEY: the Python key; borrowed */
    const sage_value *skey; /* SEG_KEY from a sage map */
};

struct conv {
    sage_arena *a;
    const char *where;
    int depth;
    struct seg segs[PYSAGE_MAX_DEPTH + 2];
};

/* conv_start readies c for a conversion at where, into arena a (NULL:
 * towards Python); segs is filled as the conversion goes down */
static void conv_start(struct conv *c, sage_arena *a, const char *where)
{
    c->a = a;
    c->where = where;
    c->depth = 0;
}

/* key_text writes a short repr of a path key */
static void key_text(const struct seg *s, char *buf, size_t cap)
{
    if (s->key) {
        PyObject *r = PyObject_Repr(s->key);
        const char *t = r ? PyUnicode_AsUTF8(r) : NULL;

        if (t == NULL) {
            PyErr_Clear();
            snprintf(buf, cap, "<%s>", Py_TYPE(s->key)->tp_name);
        } else if (strlen(t) > 40) {
            snprintf(buf, cap, "%.37s...", t);
        } else {
            snprintf(buf, cap, "%s", t);
        }
        Py_XDECREF(r);
        return;
    }
    if (s->skey && s->skey->type == SAGE_STR) {
        int n = s->skey->as.str.len > 37 ? 37 : (int)s->skey->as.str.len;

        snprintf(buf, cap, "'%.*s%s'", n, s->skey->as.str.ptr, s->skey->as.str.len > 37 ? "..." : "");
        return;
    }
    if (s->skey)
        sage_value_snprint(buf, cap, s->skey);
    else
        snprintf(buf, cap, "?");
}

/* path writes where[i]['k']... for the first n segments */
static void path(const struct conv *c, int n, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "%s", c->where);

    for (int i = 0; i < n && len < cap; i++) {
        const struct seg *s = &c->segs[i];
        char k[64];

        if (s->kind == SEG_INDEX) {
            len += (size_t)snprintf(buf + len, cap - len, "[%zd]", s->index);
        } else {
            key_text(s, k, sizeof k);
            len += (size_t)snprintf(buf + len, cap - len, s->kind == SEG_KEY ? "[%s]" : " key %s",
                                    k);
        }
    }
}

/* fail sets exc with "PATH: message" at the current depth; returns -1 */
__attribute__((format(printf, 3, 4))) static int fail(const struct conv *c, PyObject *exc,
                                                     const char *fmt, ...)
{
    char where[512], msg[512];
    va_list ap;

    path(c, c->depth, where, sizeof where);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    PyErr_Format(exc, "%s: %s", where, msg);
    return -1;
}

static int from_py(struct conv *c, PyObject *o, sage_value *out);

static void *alloc(struct conv *c, size_t n)
{
    void *p = sage_arena_alloc(c->a, n ? n : 1);

    if (p == NULL)
        PyErr_NoMemory();
    return p;
}

static int from_str(struct conv *c, PyObject *o, sage_value *out)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    char *copy;

    if (s == NULL) {
        PyErr_Clear();
        return fail(c, PyExc_ValueError, "str cannot be encoded as UTF-8 (it holds a lone surrogate)");
    }
    if ((copy = alloc(c, (size_t)n + 1)) == NULL)
        return -1;
    memcpy(copy, s, (size_t)n);
    copy[n] = '\0';
    *out = sage_strn(copy, (size_t)n);
    return 0;
}

static int from_bytes(struct conv *c, const void *p, size_t n, sage_value *out)
{
    void *copy = alloc(c, n);

    if (copy == NULL)
        return -1;
    if (n)
        memcpy(copy, p, n);
    *out = sage_bin(copy, n);
    return 0;
}

static int from_buffer(struct conv *c, PyObject *o, sage_value *out)
{
    Py_buffer view;
    int r;

    if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) != 0) {
        PyErr_Clear();
        return fail(c, PyExc_ValueError, "%s is not a contiguous buffer of bytes",
                    Py_TYPE(o)->tp_name);
    }
    r = from_bytes(c, view.buf, (size_t)view.len, out);
    PyBuffer_Release(&view);
    return r;
}

static int from_int(struct conv *c, PyObject *o, sage_value *out)
{
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);

    if (overflow == 0) {
        if (v == -1 && PyErr_Occurred())
            return -1;
        *out = sage_int(v);
        return 0;
    }
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(o);

        if (!(u == (unsigned long long)-1 && PyErr_Occurred())) {
            *out = sage_uint(u);
            return 0;
        }
        PyErr_Clear();
    }
    {
        PyObject *r = PyObject_Repr(o);
        const char *t = r ? PyUnicode_AsUTF8(r) : NULL;
        int rc;

        if (t == NULL)
            PyErr_Clear();
        rc = fail(c, PyExc_OverflowError,
                  "int %.40s%s is out of range (integers must fit int64 or uint64)",
                  t ? t : "?", t && strlen(t) > 40 ? "..." : "");
        Py_XDECREF(r);
        return rc;
    }
}

static int enter(struct conv *c)
{
    if (c->depth >= PYSAGE_MAX_DEPTH)
        return fail(c, PyExc_ValueError,
                    "nested deeper than %d levels (does a container hold itself?)",
                    PYSAGE_MAX_DEPTH);
    return 0;
}

static int from_seq(struct conv *c, PyObject *o, sage_value *out)
{
    Py_ssize_t n = PyList_Check(o) ? PyList_GET_SIZE(o) : PyTuple_GET_SIZE(o);
    PyObject **items = PyList_Check(o) ? ((PyListObject *)o)->ob_item : ((PyTupleObject *)o)->ob_item;
    sage_value *vals;
    struct seg *s;

    if (enter(c) < 0 || (vals = alloc(c, (size_t)n * sizeof *vals)) == NULL)
        return -1;
    s = &c->segs[c->depth++];
    s->kind = SEG_INDEX;
    for (Py_ssize_t i = 0; i < n; i++) {
        s->index = i;
        if (from_py(c, items[i], &vals[i]) < 0)
            return -1;
    }
    c->depth--;
    *out = sage_array(vals, (size_t)n);
    return 0;
}

static int from_dict(struct conv *c, PyObject *o, sage_value *out)
{
    Py_ssize_t n = PyDict_GET_SIZE(o), pos = 0, i = 0;
    PyObject *k, *v;
    sage_pair *pairs;
    struct seg *s;

    if (enter(c) < 0 || (pairs = alloc(c, (size_t)n * sizeof *pairs)) == NULL)
        return -1;
    s = &c->segs[c->depth++];
    s->skey = NULL;
    while (PyDict_Next(o, &pos, &k, &v) && i < n) {
        s->kind = SEG_KEYOF;
        s->key = k;
        if (from_py(c, k, &pairs[i].key) < 0)
            return -1;
        s->kind = SEG_KEY;
        if (from_py(c, v, &pairs[i].val) < 0)
            return -1;
        i++;
    }
    c->depth--;
    *out = sage_map(pairs, (size_t)i);
    return 0;
}

static int from_py(struct conv *c, PyObject *o, sage_value *out)
{
    if (o == Py_None) {
        *out = sage_nil();
        return 0;
    }
    if (PyBool_Check(o)) {
        *out = sage_bool(o == Py_True);
        return 0;
    }
    if (PyLong_Check(o))
        return from_int(c, o, out);
    if (PyFloat_Check(o)) {
        *out = sage_double(PyFloat_AS_DOUBLE(o));
        return 0;
    }
    if (PyUnicode_Check(o))
        return from_str(c, o, out);
    if (PyBytes_Check(o))
        return from_bytes(c, PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o), out);
    if (PyByteArray_Check(o) || PyMemoryView_Check(o))
        return from_buffer(c, o, out);
    if (PyList_Check(o) || PyTuple_Check(o))
        return from_seq(c, o, out);
    if (PyDict_Check(o))
        return from_dict(c, o, out);
    return fail(c, PyExc_TypeError, "%s is not supported", Py_TYPE(o)->tp_name);
}

int pysage_from_py(sage_value *out, PyObject *o, sage_arena *a, const char *where)
{
    struct conv c;

    conv_start(&c, a, where);
    return from_py(&c, o, out);
}

int pysage_args_from_py(const sage_value **itemsp, size_t *np, PyObject *seq, sage_arena *a)
{
    struct conv c;
    sage_value v;

    if (seq == NULL || seq == Py_None) {
        *itemsp = NULL;
        *np = 0;
        return 0;
    }
    if (!PyTuple_Check(seq) && !PyList_Check(seq)) {
        PyErr_Format(PyExc_TypeError, "args: expected a tuple or a list, got %s",
                     Py_TYPE(seq)->tp_name);
        return -1;
    }
    conv_start(&c, a, "args");
    if (from_seq(&c, seq, &v) < 0)
        return -1;
    *itemsp = v.as.array.items;
    *np = v.as.array.len;
    return 0;
}

int pysage_kwargs_from_py(const sage_pair **pairsp, size_t *np, PyObject *dict, sage_arena *a)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    struct conv c;
    sage_value m;

    if (dict == NULL || dict == Py_None) {
        *pairsp = NULL;
        *np = 0;
        return 0;
    }
    if (!PyDict_Check(dict)) {
        PyErr_Format(PyExc_TypeError, "kwargs: expected a dict, got %s", Py_TYPE(dict)->tp_name);
        return -1;
    }
    while (PyDict_Next(dict, &pos, &k, &v))
        if (!PyUnicode_Check(k)) {
            PyObject *r = PyObject_Repr(k);

            PyErr_Format(PyExc_TypeError, "kwargs: key %.40s is not a str (keyword names are)",
                         r ? PyUnicode_AsUTF8(r) : "?");
            Py_XDECREF(r);
            return -1;
        }
    conv_start(&c, a, "kwargs");
    if (from_dict(&c, dict, &m) < 0)
        return -1;
    *pairsp = m.as.map.items;
    *np = m.as.map.len;
    return 0;
}

/* ------------------------------------------------------------ to Python */

static PyObject *to_py(struct conv *c, const sage_value *v, bool as_key);

__attribute__((format(printf, 3, 4))) static PyObject *fail_null(const struct conv *c,
                                                                PyObject *exc, const char *fmt,
                                                                ...)
{
    char where[512], msg[512];
    va_list ap;

    path(c, c->depth, where, sizeof where);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    PyErr_Format(exc, "%s: %s", where, msg);
    return NULL;
}

static PyObject *to_list(struct conv *c, const sage_value *v, bool as_key)
{
    size_t n = v->as.array.len;
    PyObject *l = as_key ? PyTuple_New((Py_ssize_t)n) : PyList_New((Py_ssize_t)n);
    struct seg *s;

    if (l == NULL)
        return NULL;
    if (c->depth >= PYSAGE_MAX_DEPTH) {
        Py_DECREF(l);
        return fail_null(c, PyExc_ValueError, "nested deeper than %d levels", PYSAGE_MAX_DEPTH);
    }
    s = &c->segs[c->depth++];
    s->kind = SEG_INDEX;
    for (size_t i = 0; i < n; i++) {
        PyObject *item;

        s->index = (Py_ssize_t)i;
        if ((item = to_py(c, &v->as.array.items[i], as_key)) == NULL) {
            Py_DECREF(l);
            return NULL;
        }
        if (as_key)
            PyTuple_SET_ITEM(l, (Py_ssize_t)i, item);
        else
            PyList_SET_ITEM(l, (Py_ssize_t)i, item);
    }
    c->depth--;
    return l;
}

static PyObject *to_dict(struct conv *c, const sage_value *v)
{
    PyObject *d = PyDict_New();
    struct seg *s;

    if (d == NULL)
        return NULL;
    if (c->depth >= PYSAGE_MAX_DEPTH) {
        Py_DECREF(d);
        return fail_null(c, PyExc_ValueError, "nested deeper than %d levels", PYSAGE_MAX_DEPTH);
    }
    s = &c->segs[c->depth++];
    s->key = NULL;
    for (size_t i = 0; v->type == SAGE_MAP && i < v->as.map.len; i++) {
        const sage_pair *p = &v->as.map.items[i];
        PyObject *k, *val;

        s->kind = SEG_KEYOF;
        s->skey = &p->key;
        if ((k = to_py(c, &p->key, true)) == NULL) {
            Py_DECREF(d);
            return NULL;
        }
        s->kind = SEG_KEY;
        if ((val = to_py(c, &p->val, false)) == NULL || PyDict_SetItem(d, k, val) < 0) {
            Py_DECREF(k);
            Py_XDECREF(val);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(val);
    }
    c->depth--;
    return d;
}

static PyObject *to_py(struct conv *c, const sage_value *v, bool as_key)
{
    switch (v->type) {
    case SAGE_NIL:
        Py_RETURN_NONE;
    case SAGE_BOOL:
        return PyBool_FromLong(v->as.b);
    case SAGE_INT:
        return PyLong_FromLongLong(v->as.i);
    case SAGE_UINT:
        return PyLong_FromUnsignedLongLong(v->as.u);
    case SAGE_DOUBLE:
        return PyFloat_FromDouble(v->as.d);
    case SAGE_STR: {
        PyObject *s = PyUnicode_DecodeUTF8(v->as.str.ptr, (Py_ssize_t)v->as.str.len, NULL);

        if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear();
            return fail_null(c, PyExc_ValueError, "string is not valid UTF-8");
        }
        return s;
    }
    case SAGE_BIN:
        return PyBytes_FromStringAndSize(v->as.bin.ptr, (Py_ssize_t)v->as.bin.len);
    case SAGE_ARRAY:
        return to_list(c, v, as_key);
    case SAGE_MAP:
        if (as_key)
            return fail_null(c, PyExc_TypeError,
                             "a map is a key of this map: a dict cannot be a dict key");
        return to_dict(c, v);
    }
    return fail_null(c, PyExc_ValueError, "value of unknown type %d", (int)v->type);
}

PyObject *pysage_to_py(const sage_value *v, const char *where)
{
    struct conv c;

    conv_start(&c, NULL, where);
    return to_py(&c, v, false);
}

PyObject *pysage_tuple_from_array(const sage_value *v, const char *where)
{
    struct conv c;

    if (v == NULL || v->type != SAGE_ARRAY)
        return PyTuple_New(0);
    conv_start(&c, NULL, where);
    /* as a key: a tuple at the top, lists below */
    {
        size_t n = v->as.array.len;
        PyObject *t = PyTuple_New((Py_ssize_t)n);
        struct seg *s;

        if (t == NULL)
            return NULL;
        s = &c.segs[c.depth++];
        s->kind = SEG_INDEX;
        for (size_t i = 0; i < n; i++) {
            PyObject *item;

            s->index = (Py_ssize_t)i;
            if ((item = to_py(&c, &v->as.array.items[i], false)) == NULL) {
                Py_DECREF(t);
                return NULL;
            }
            PyTuple_SET_ITEM(t, (Py_ssize_t)i, item);
        }
        return t;
    }
}

PyObject *pysage_dict_from_map(const sage_value *v, const char *where)
{
    struct conv c;

    if (v == NULL || v->type != SAGE_MAP)
        return PyDict_New();
    conv_start(&c, NULL, where);
    return to_dict(&c, v);
}

/* --------------------------------------------------------- thread arenas */

#define ARENA_STACK 8

struct arenas {
    sage_arena *a[ARENA_STACK];
    int depth;
};

static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void arenas_free(void *p)
{
    struct arenas *s = p;

    for (int i = 0; i < ARENA_STACK; i++)
        sage_arena_free(s->a[i]);
    free(s);
}

static void arena_key_init(void)
{
    pthread_key_create(&arena_key, arenas_free);
}

sage_arena *pysage_arena_take(void)
{
    struct arenas *s;
    sage_arena *a = NULL;

    pthread_once(&arena_once, arena_key_init);
    s = pthread_getspecific(arena_key);
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL || pthread_setspecific(arena_key, s) != 0) {
            free(s);
            PyErr_NoMemory();
            return NULL;
        }
    }
    if (s->depth < ARENA_STACK) {
        if (s->a[s->depth] == NULL && sage_arena_new(&s->a[s->depth], 8192) != SAGE_OK) {
            PyErr_NoMemory();
            return NULL;
        }
        return s->a[s->depth++];
    }
    /* deeper than the stack: an arena of its own, freed when given back */
    if (sage_arena_new(&a, 8192) != SAGE_OK) {
        PyErr_NoMemory();
        return NULL;
    }
    return a;
}

void pysage_arena_give(sage_arena *a)
{
    struct arenas *s = pthread_getspecific(arena_key);

    if (s && s->depth > 0 && s->a[s->depth - 1] == a) {
        sage_arena_reset(a);
        s->depth--;
        return;
    }
    sage_arena_free(a);
}
