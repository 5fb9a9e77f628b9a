/*
 * caller.c - an example program calling a hosted service by name.
 *
 *   sagesvc run examples/services.yaml &     # hosts kv and text in "demo"
 *   ./caller [NAMESPACE]                      # default: demo
 *
 * It finds the kv service through the host registry, makes synchronous
 * calls (put, get, keys), measures the round trip of 1000 synchronous gets
 * (p50, p99), then keeps 100 asynchronous puts outstanding at once, with
 * completion callbacks, and reports the throughput. Exit status 0 when
 * every call succeeded, 1 otherwise.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sage/manager.h"

#define GETS 1000
#define WINDOW 100 /* async calls outstanding at once */
#define ROUNDS 50

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void print_value(const char *what, const sage_value *v)
{
    char buf[512];

    sage_value_snprint(buf, sizeof buf, v);
    printf("  %-28s -> %s\n", what, buf);
}

static int fail(const char *what, sage_err r)
{
    fprintf(stderr, "caller: %s: %s (%s)\n", what, sage_strerror(r), sage_errdetail());
    return 1;
}

/* --------------------------------------------------------- synchronous */

static int sync_calls(sage_manager *m, sage_arena *a)
{
    sage_endpoint ep;
    sage_value res;
    sage_err r;

    if ((r = sage_manager_lookup(&ep, m, "kv")) != SAGE_OK)
        return fail("finding the kv service (is `sagesvc run` running?)", r);
    printf("kv: %s queue %s, served by pid %d\n", sage_transport_name(ep.transport), ep.address,
           (int)ep.pid);

    printf("synchronous calls:\n");
    if ((r = sage_manager_callf(&res, m, a, "kv", "put", "[s, {s:s, s:i}]", "greeting", "text",
                                "hello", "lang", 1)) != SAGE_OK)
        return fail("kv.put", r);
    print_value("put(greeting, {...})", &res);
    if ((r = sage_manager_callf(&res, m, a, "kv", "get", "[s]", "greeting")) != SAGE_OK)
        return fail("kv.get", r);
    print_value("get(greeting)", &res);
    if ((r = sage_manager_callf(&res, m, a, "kv", "get", "[s, s]", "missing", "fallback")) !=
        SAGE_OK)
        return fail("kv.get", r);
    print_value("get(missing, fallback)", &res);
    if ((r = sage_manager_callf(&res, m, a, "kv", "keys", "[]")) != SAGE_OK)
        return fail("kv.keys", r);
    print_value("keys()", &res);
    /* an error comes back as the call's code, with the service's message */
    r = sage_manager_callf(&res, m, a, "kv", "no_such_method", "[]");
    printf("  %-28s -> %s (%s)\n", "no_such_method()", sage_errname(r), sage_errdetail());
    sage_arena_reset(a);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static int latency(sage_manager *m, sage_arena *a)
{
    static double us[GETS];
    sage_value key = sage_str("greeting");
    /* one call's arguments and options: zero fields take the defaults */
    sage_request rq = {.service = "kv", .method = "get", .args = &key, .nargs = 1};
    sage_err r;

    for (int i = 0; i < GETS; i++) {
        double t0 = now_us();

        r = sage_manager_call_sync(NULL, m, &rq, a);
        us[i] = now_us() - t0;
        if (r != SAGE_OK)
            return fail("kv.get", r);
        sage_arena_reset(a);
    }
    qsort(us, GETS, sizeof us[0], cmp_double);
    printf("latency of %d synchronous gets: p50 %.1f us, p99 %.1f us, max %.1f us\n", GETS,
           us[GETS / 2], us[GETS * 99 / 100], us[GETS - 1]);
    return 0;
}

/* -------------------------------------------------------- asynchronous */

struct window {
    pthread_mutex_t lock;
    pthread_cond_t done;
    int outstanding;
    int errors;
};

/* on_done runs on the manager's completion thread, with no library lock
 * held, never inside sage_manager_call; the future belongs to this
 * callback, which frees it. */
static void on_done(void *arg, sage_future *f)
{
    struct window *w = arg;
    sage_err r = sage_future_result(NULL, f);

    sage_future_free(f);
    pthread_mutex_lock(&w->lock);
    if (r != SAGE_OK && w->errors++ == 0)
        fprintf(stderr, "caller: async put: %s (%s)\n", sage_strerror(r), sage_errdetail());
    if (--w->outstanding == 0)
        pthread_cond_signal(&w->done);
    pthread_mutex_unlock(&w->lock);
}

static int async_calls(sage_manager *m)
{
    struct window w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    double t0 = now_us(), secs;
    int sent = 0, refused = 0;

    for (int round = 0; round < ROUNDS && !refused; round++) {
        for (int i = 0; i < WINDOW; i++) {
            char key[32];
            sage_value args[2];
            sage_future *f;
            sage_err r;

            snprintf(key, sizeof key, "async-%d", i);
            args[0] = sage_str(key);
            args[1] = sage_int(round);
            pthread_mutex_lock(&w.lock);
            w.outstanding++;
            pthread_mutex_unlock(&w.lock);
            /* args are borrowed only during the call: key may be reused */
            r = sage_manager_call(
                &f, m, &(sage_request){.service = "kv", .method = "put", .args = args, .nargs = 2});
            if (r == SAGE_OK) {
                /* the callback runs even if f completed already; only a
                 * failure to record it (SAGE_ENOMEM) means it never will */
                if (sage_future_on_done(f, on_done, &w) != SAGE_OK) {
                    sage_future_wait(f, -1);
                    on_done(&w, f);
                }
                sent++;
                continue;
            }
            /* a submit that fails never runs the callback: undo the count,
             * then still wait for the calls in flight, whose callbacks use w */
            pthread_mutex_lock(&w.lock);
            w.outstanding--;
            w.errors++;
            pthread_mutex_unlock(&w.lock);
            fail("kv.put (async)", r);
            refused = 1;
            break;
        }
        pthread_mutex_lock(&w.lock);
        while (w.outstanding > 0)
            pthread_cond_wait(&w.done, &w.lock);
        pthread_mutex_unlock(&w.lock);
    }
    secs = (now_us() - t0) / 1e6;
    printf("async: %d puts, %d outstanding at once, %.3f s: %.0f calls/s, %d errors\n", sent,
           WINDOW, secs, sent / secs, w.errors);
    return w.errors != 0;
}

int main(int argc, char **argv)
{
    const char *ns = argc > 1 ? argv[1] : "demo";
    sage_manager_opts o;
    sage_manager *m;
    sage_arena *a;
    sage_err r;
    int rc;

    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: caller [NAMESPACE]   (default: demo)\n");
        return 2;
    }
    sage_manager_opts_init(&o);
    o.ns = ns;
    o.timeout_ms = 10000;
    if ((r = sage_manager_new(&m, &o)) != SAGE_OK)
        return fail("sage_manager_new", r);
    if ((r = sage_arena_new(&a, 0)) != SAGE_OK) {
        sage_manager_free(m);
        return fail("sage_arena_new", r);
    }
    rc = sync_calls(m, a);
    if (rc == 0)
        rc = latency(m, a);
    if (rc == 0)
        rc = async_calls(m);
    sage_arena_free(a);
    sage_manager_free(m);
    return rc;
}
