/*
 * text.c - an example service: small text utilities.
 *
 * Methods (args are positional; text is a string):
 *   words(text) -> int             the number of whitespace-separated words
 *   tokenize(text) -> [str]        the text split on whitespace
 *   upper(text) -> str             ASCII letters upper-cased, other bytes kept
 *   freq(text [, top]) -> {word: count}
 *                                  the top words (default 10, 0 = all), most
 *                                  frequent first, ties in byte order; words
 *                                  are trimmed of leading and trailing ASCII
 *                                  punctuation, and stopwords are skipped
 * Configuration (optional map):
 *   lowercase: bool     freq folds ASCII letters to lower case (default false)
 *   stopwords: [str]    words freq leaves out (compared after folding)
 *
 * The service is stateless: its state is the configuration, fixed at create
 * and only read afterwards, so methods run on any number of workers without
 * a lock. Every result is built in the call's arena: nothing to free.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "sage/service.h"
#include "text.h"

struct conf {
    int lowercase;
    size_t nstop;
    char **stop; /* folded like the words they are compared with */
};

/* A word: a view into a string the call's arena owns. */
struct word {
    const char *p;
    size_t n;
};

/* An entry of freq's tally. */
struct count {
    struct word w;
    int64_t n;
};

/* Whitespace is ASCII only: UTF-8 text splits correctly, since no byte of
 * a multi-byte sequence is below 0x80. */
static int space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* split fills words (when not NULL) with the views of text's words and
 * returns how many there are. */
static size_t split(const char *text, size_t len, struct word *words)
{
    size_t n = 0, i = 0;

    while (i < len) {
        size_t start;

        while (i < len && space(text[i]))
            i++;
        if (i == len)
            break;
        start = i;
        while (i < len && !space(text[i]))
            i++;
        if (words) {
            words[n].p = text + start;
            words[n].n = i - start;
        }
        n++;
    }
    return n;
}

/* arg_text unpacks the first argument and copies it into the call's arena,
 * so views into it may be part of the result. */
static sage_err arg_text(sage_call *call, const char *fmt, char **textp, size_t *lenp)
{
    const char *s;
    size_t n;
    char *copy;

    if (sage_call_unpack(call, fmt, &s, &n) != SAGE_OK)
        return SAGE_EBADARGS;
    copy = sage_arena_alloc(sage_call_arena(call), n + 1);
    if (copy == NULL)
        return sage_call_error(call, SAGE_ENOMEM, "no memory for a text of %zu bytes", n);
    memcpy(copy, s, n);
    copy[n] = '\0';
    *textp = copy;
    *lenp = n;
    return SAGE_OK;
}

/* ---------------------------------------------------------- methods */

static sage_err text_words(void *state, sage_call *call)
{
    const char *s;
    size_t n;

    if (sage_call_unpack(call, "[s#]", &s, &n) != SAGE_OK)
        return SAGE_EBADARGS;
    return sage_call_resultf(call, "I", (int64_t)split(s, n, NULL));
}

static sage_err text_tokenize(void *state, sage_call *call)
{
    sage_arena *a = sage_call_arena(call);
    char *text;
    size_t len, n;
    struct word *words;
    sage_value *items, out;
    sage_err r;

    if ((r = arg_text(call, "[s#]", &text, &len)) != SAGE_OK)
        return r;
    n = split(text, len, NULL);
    words = sage_arena_alloc(a, (n ? n : 1) * sizeof *words);
    items = sage_arena_alloc(a, (n ? n : 1) * sizeof *items);
    if (words == NULL || items == NULL)
        return sage_call_error(call, SAGE_ENOMEM, "no memory for %zu tokens", n);
    split(text, len, words);
    for (size_t i = 0; i < n; i++)
        items[i] = sage_strn(words[i].p, words[i].n);
    out = sage_array(items, n);
    return sage_call_result(call, &out);
}

static sage_err text_upper(void *state, sage_call *call)
{
    char *text;
    size_t len;
    sage_value out;
    sage_err r;

    if ((r = arg_text(call, "[s#]", &text, &len)) != SAGE_OK)
        return r;
    for (size_t i = 0; i < len; i++)
        if (text[i] >= 'a' && text[i] <= 'z')
            text[i] = (char)(text[i] - 'a' + 'A');
    out = sage_strn(text, len);
    return sage_call_result(call, &out);
}

static int cmp_word(const void *a, const void *b)
{
    const struct word *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, n);

    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* most frequent first; qsort is not stable, so ties fall back to the word */
static int cmp_count(const void *a, const void *b)
{
    const struct count *x = a, *y = b;

    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    return cmp_word(&x->w, &y->w);
}

static int is_stopword(const struct conf *c, const struct word *w)
{
    for (size_t i = 0; i < c->nstop; i++)
        if (strlen(c->stop[i]) == w->n && memcmp(c->stop[i], w->p, w->n) == 0)
            return 1;
    return 0;
}

/* trim drops ASCII punctuation at both ends of w ("end." counts as "end") */
static void trim(struct word *w)
{
    while (w->n && ispunct((unsigned char)w->p[0]))
        w->p++, w->n--;
    while (w->n && ispunct((unsigned char)w->p[w->n - 1]))
        w->n--;
}

static sage_err text_freq(void *state, sage_call *call)
{
    const struct conf *c = state;
    const sage_value *args = sage_call_args(call);
    sage_arena *a = sage_call_arena(call);
    int64_t top = 10;
    char *text;
    size_t len, n, kept = 0, distinct = 0;
    struct word *words;
    struct count *counts;
    sage_pair *pairs;
    sage_value out;
    sage_err r;

    if ((r = arg_text(call, "[s#*]", &text, &len)) != SAGE_OK)
        return r;
    if (args->as.array.len > 2 ||
        (args->as.array.len == 2 && sage_value_get_int(&top, &args->as.array.items[1]) != SAGE_OK))
        return sage_call_error(call, SAGE_EBADARGS, "freq takes a text and an optional int top");
    if (top < 0)
        return sage_call_error(call, SAGE_EBADARGS, "freq: top must be >= 0, got %lld", (long long)top);
    if (c->lowercase)
        for (size_t i = 0; i < len; i++)
            text[i] = (char)tolower((unsigned char)text[i]);
    n = split(text, len, NULL);
    words = sage_arena_alloc(a, (n ? n : 1) * sizeof *words);
    counts = sage_arena_alloc(a, (n ? n : 1) * sizeof *counts);
    if (words == NULL || counts == NULL)
        return sage_call_error(call, SAGE_ENOMEM, "no memory for %zu words", n);
    split(text, len, words);
    for (size_t i = 0; i < n; i++) {
        trim(&words[i]);
        if (words[i].n && !is_stopword(c, &words[i]))
            words[kept++] = words[i];
    }
    /* sort, then count runs of equal words: O(n log n), no hash table */
    qsort(words, kept, sizeof *words, cmp_word);
    for (size_t i = 0; i < kept; i++) {
        if (distinct && cmp_word(&counts[distinct - 1].w, &words[i]) == 0) {
            counts[distinct - 1].n++;
            continue;
        }
        counts[distinct].w = words[i];
        counts[distinct++].n = 1;
    }
    qsort(counts, distinct, sizeof *counts, cmp_count);
    if (top > 0 && (uint64_t)top < distinct)
        distinct = (size_t)top;
    pairs = sage_arena_alloc(a, (distinct ? distinct : 1) * sizeof *pairs);
    if (pairs == NULL)
        return sage_call_error(call, SAGE_ENOMEM, "no memory for %zu words", distinct);
    for (size_t i = 0; i < distinct; i++) {
        pairs[i].key = sage_strn(counts[i].w.p, counts[i].w.n);
        pairs[i].val = sage_int(counts[i].n);
    }
    out = sage_map(pairs, distinct);
    return sage_call_result(call, &out);
}

/* ---------------------------------------------------------- factory */

static void text_destroy(void *state)
{
    struct conf *c = state;

    for (size_t i = 0; i < c->nstop; i++)
        free(c->stop[i]);
    free(c->stop);
    free(c);
}

static sage_err text_create(void **statep, const sage_value *config)
{
    struct conf *c = calloc(1, sizeof *c);
    const sage_value *stop = NULL;
    int lowercase = 0;

    if (c == NULL)
        return SAGE_ENOMEM;
    if (config && config->type == SAGE_MAP &&
        sage_unpack(config, "{s:?b s:?v}", "lowercase", &lowercase, "stopwords", &stop) != SAGE_OK)
        goto bad;
    c->lowercase = lowercase;
    if (stop && stop->type != SAGE_NIL) {
        if (stop->type != SAGE_ARRAY)
            goto bad;
        c->stop = calloc(stop->as.array.len ? stop->as.array.len : 1, sizeof *c->stop);
        if (c->stop == NULL)
            goto nomem;
        for (size_t i = 0; i < stop->as.array.len; i++) {
            const char *s;
            size_t n;

            if (sage_value_get_str(&s, &n, &stop->as.array.items[i]) != SAGE_OK)
                goto bad;
            if ((c->stop[i] = strndup(s, n)) == NULL)
                goto nomem;
            c->nstop++;
            if (lowercase)
                for (char *p = c->stop[i]; *p; p++)
                    *p = (char)tolower((unsigned char)*p);
        }
    }
    *statep = c;
    return SAGE_OK;
bad:
    text_destroy(c);
    return SAGE_ECONFIG;
nomem:
    text_destroy(c);
    return SAGE_ENOMEM;
}

static const sage_method text_methods[] = {
    {"words", text_words, 0}, {"tokenize", text_tokenize, 0}, {"upper", text_upper, 0},
    {"freq", text_freq, 0},   {0},
};

const sage_service sage_example_text = {
    .abi = SAGE_SERVICE_ABI,
    .name = "text",
    .create = text_create,
    .destroy = text_destroy,
    .methods = text_methods,
};
