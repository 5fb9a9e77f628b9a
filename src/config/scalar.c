/* scalar.c - resolving plain scalars to null, bool, int, float or string. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config/scalar.h"

static int is_word(const char *s, size_t len, const char *const *words)
{
    for (size_t i = 0; words[i] != NULL; i++)
        if (strlen(words[i]) == len && memcmp(words[i], s, len) == 0)
            return 1;
    return 0;
}

static int digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* parse_int: 1 if s is an integer (value or CF_BIG in *out), else 0. */
static int parse_int(const char *s, size_t len, struct cf_scalar *out)
{
    size_t i = 0;
    int neg = 0, ndigits = 0, big = 0;
    unsigned base = 10;
    uint64_t v = 0, limit;

    if (i < len && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == len)
        return 0;
    if (s[i] == '0' && i + 1 == len) {
        out->type = CF_INT;
        out->i = 0;
        return 1;
    }
    if (s[i] == '0') {
        switch (s[i + 1]) {
        case 'x':
            base = 16;
            i += 2;
            break;
        case 'o':
            base = 8;
            i += 2;
            break;
        case 'b':
            base = 2;
            i += 2;
            break;
        default: /* YAML 1.1 octal: 0755 */
            base = 8;
            i += 1;
            break;
        }
    } else if (s[i] < '1' || s[i] > '9') {
        return 0;
    }
    for (; i < len; i++) {
        int d;

        if (s[i] == '_')
            continue;
        d = digit_value(s[i]);
        if (d < 0 || (unsigned)d >= base)
            return 0;
        if (v > (UINT64_MAX - (unsigned)d) / base)
            big = 1;
        else
            v = v * base + (unsigned)d;
        ndigits++;
    }
    if (ndigits == 0)
        return 0;
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (big || v > limit) {
        out->type = CF_BIG;
        return 1;
    }
    out->type = CF_INT;
    out->i = neg ? (v == limit ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 1;
}

/* digits: how many of s[i..len) are [0-9_] starting with a digit. */
static size_t digits(const char *s, size_t i, size_t len)
{
    size_t j = i;

    if (j >= len || s[j] < '0' || s[j] > '9')
        return 0;
    while (j < len && ((s[j] >= '0' && s[j] <= '9') || s[j] == '_'))
        j++;
    return j - i;
}

/* is_float: the shape [-+]? (D (. D?)? | . D) ([eE] [-+]? D)? with a '.' or an
 * exponent, D being digits and underscores. */
static int is_float(const char *s, size_t len)
{
    size_t i = 0, d;
    int dot = 0, exp = 0;

    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    d = digits(s, i, len);
    i += d;
    if (i < len && s[i] == '.') {
        size_t f = digits(s, i + 1, len);

        if (d == 0 && f == 0)
            return 0;
        dot = 1;
        i += 1 + f;
    } else if (d == 0) {
        return 0;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        d = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++, d++;
        if (d == 0)
            return 0;
        exp = 1;
    }
    return i == len && (dot || exp);
}

/* to_double converts text known to be a float, independent of the locale. */
static int to_double(const char *s, size_t len, double *out)
{
    char buf[256];
    size_t n = 0;
    locale_t c_locale;

    if (len >= sizeof buf)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (s[i] != '_')
            buf[n++] = s[i];
    buf[n] = '\0';
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    errno = 0;
    if (c_locale != (locale_t)0) {
        *out = strtod_l(buf, NULL, c_locale);
        freelocale(c_locale);
    } else {
        *out = strtod(buf, NULL);
    }
    return errno == ERANGE && isinf(*out) ? -1 : 0;
}

static int is_null(const char *s, size_t len)
{
    static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};

    return len == 0 || is_word(s, len, nulls);
}

int sage__cf_is_null(const struct cf_node *v)
{
    return v->kind == CF_SCALAR && !v->quoted && is_null(v->str, v->len);
}

void sage__cf_resolve(const struct cf_node *n, struct cf_scalar *out)
{
    static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                        "on",   "On",   "ON",   NULL};
    static const char *const falses[] = {"false", "False", "FALSE", "no", "No", "NO",
                                         "off",   "Off",   "OFF",   NULL};
    static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
    static const char *const ninfs[] = {"-.inf", "-.Inf", "-.INF", NULL};
    static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
    const char *s = n->str;
    size_t len = n->len;

    memset(out, 0, sizeof *out);
    out->type = CF_STR;
    if (n->kind != CF_SCALAR || n->quoted)
        return;
    if (is_null(s, len)) {
        out->type = CF_NULL;
    } else if (is_word(s, len, trues) || is_word(s, len, falses)) {
        out->type = CF_BOOL;
        out->b = is_word(s, len, trues);
    } else if (parse_int(s, len, out)) {
        /* out is set */
    } else if (is_word(s, len, infs) || is_word(s, len, ninfs)) {
        out->type = CF_FLOAT;
        out->d = is_word(s, len, infs) ? INFINITY : -INFINITY;
    } else if (is_word(s, len, nans)) {
        out->type = CF_FLOAT;
        out->d = NAN;
    } else if (is_float(s, len)) {
        out->type = to_double(s, len, &out->d) == 0 ? CF_FLOAT : CF_BIG;
    }
}

int sage__cf_parse_size(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"B", 1},
        {"KB", 1000},
        {"MB", 1000 * 1000},
        {"GB", 1000 * 1000 * 1000},
        {"TB", 1000ull * 1000 * 1000 * 1000},
        {"KiB", 1ull << 10},
        {"MiB", 1ull << 20},
        {"GiB", 1ull << 30},
        {"TiB", 1ull << 40},
    };
    uint64_t ip = 0, frac = 0, scale = 1, mult = 0;
    size_t i = 0;

    if (s[i] < '0' || s[i] > '9')
        return -1;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        if (ip > (UINT64_MAX - 9) / 10)
            return -1;
        ip = ip * 10 + (uint64_t)(s[i] - '0');
    }
    if (s[i] == '.') {
        i++;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        /* Six digits are exact down to a byte even in TiB; later ones only
         * move the count by less than a byte, and it rounds down anyway. */
        for (; s[i] >= '0' && s[i] <= '9'; i++) {
            if (scale < 1000000) {
                frac = frac * 10 + (uint64_t)(s[i] - '0');
                scale *= 10;
            }
        }
    }
    if (s[i] == ' ')
        i++;
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
        if (strcmp(s + i, units[u].unit) == 0)
            mult = units[u].mult;
    if (mult == 0 || ip > UINT64_MAX / mult)
        return -1;
    ip *= mult;
    if (UINT64_MAX - ip < frac * mult / scale)
        return -1;
    *bytes = ip + frac * mult / scale;
    return 0;
}
