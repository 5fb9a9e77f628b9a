/*
 * call_zmq.c - the zmq impl of "sage-bench call": ZeroMQ over ipc carrying
 * sagesvc's MessagePack envelope both ways (call_wire.c), so every call
 * pays the same encode/decode as in the runtime.
 *
 * sync: REQ/REP, one call outstanding. async: DEALER/ROUTER; the server
 * takes the routing frame and the request, decodes, runs the method,
 * encodes and sends the answer back behind the routing frame; the client
 * keeps about window calls outstanding, refilling at the same low mark as
 * the sage impls, and matches answers to requests by id.
 *
 * The only file of "sage-bench call" that includes <zmq.h>. Each child
 * makes its context after it has been pinned, so libzmq's I/O thread shares
 * its process's CPU, as the runtime's threads share theirs in the shm impl.
 * Timeouts: ZMQ_RCVTIMEO and ZMQ_SNDTIMEO; the server polls its done gate
 * every SERVER_POLL_MS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_util.h"
#include "call.h"
#include "call_wire.h"

#define SERVER_POLL_MS 100
#define HWM 100000 /* messages; far above the window, so nothing is dropped */
#define MSG_MAX 4096
#define ID_MAX 256
#define LOW_FRACTION 4 /* as call_sage.c: refill at window - window / 4 */

enum { RES_IPC = 3 };

struct zend {
    void *ctx;
    void *sock;
    struct call_wire *w;
    uint8_t in[MSG_MAX];
};

struct client {
    struct zend z;
    uint64_t next_id;
    uint64_t issued, completed;
    uint64_t *slot; /* the id outstanding at id & mask, 0 if none */
    uint64_t mask;
};

static int zfail(const char *what)
{
    fprintf(stderr, "sage-bench: call: zmq: %s: %s\n", what, zmq_strerror(zmq_errno()));
    return -1;
}

static int setup(struct call_run *r)
{
    snprintf(r->ipc, sizeof r->ipc, "/tmp/sage-%s.ipc", r->ns);
    r->res[RES_IPC] = bench_res_add(BENCH_RES_FILE, r->ipc);
    return r->res[RES_IPC] < 0 ? -1 : 0;
}

static int open_end(struct zend *z, const struct call_run *r, int type, int rcv_ms)
{
    int snd_ms = CALL_OP_TIMEOUT_MS, linger = 0, hwm = HWM;
    char ep[128];

    snprintf(ep, sizeof ep, "ipc://%s", r->ipc);
    z->ctx = zmq_ctx_new();
    if (z->ctx == NULL)
        return zfail("zmq_ctx_new");
    z->sock = zmq_socket(z->ctx, type);
    if (z->sock == NULL)
        return zfail("zmq_socket");
    if (zmq_setsockopt(z->sock, ZMQ_RCVTIMEO, &rcv_ms, sizeof rcv_ms) != 0 ||
        zmq_setsockopt(z->sock, ZMQ_SNDTIMEO, &snd_ms, sizeof snd_ms) != 0 ||
        zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(z->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(z->sock, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0)
        return zfail("zmq_setsockopt");
    if (type == ZMQ_REP || type == ZMQ_ROUTER ? zmq_bind(z->sock, ep) != 0
                                              : zmq_connect(z->sock, ep) != 0)
        return zfail(ep);
    return 0;
}

static void close_end(struct zend *z)
{
    if (z->sock != NULL)
        zmq_close(z->sock);
    if (z->ctx != NULL)
        zmq_ctx_term(z->ctx);
    call_wire_free(z->w);
}

/* send_all sends len bytes as one frame (flags: ZMQ_SNDMORE or 0) */
static int send_all(void *sock, const void *buf, size_t len, int flags)
{
    while (zmq_send(sock, buf, len, flags) != (int)len)
        if (zmq_errno() != EINTR)
            return zfail("send");
    return 0;
}

/* recv_frame receives one frame into buf; -2 on timeout (EAGAIN) */
static int recv_frame(void *sock, void *buf, size_t cap, int flags, size_t *lenp)
{
    int n;

    while ((n = zmq_recv(sock, buf, cap, flags)) < 0) {
        if (zmq_errno() == EAGAIN)
            return -2;
        if (zmq_errno() != EINTR)
            return zfail("recv");
    }
    if ((size_t)n > cap) {
        fprintf(stderr, "sage-bench: call: zmq: a %d-byte frame, more than %zu\n", n, cap);
        return -1;
    }
    *lenp = (size_t)n;
    return 0;
}

/* ----------------------------------------------------------------- server */

/* serve_one answers one request; -2 when none came within SERVER_POLL_MS */
static int serve_one(struct zend *z, bool router)
{
    uint8_t id[ID_MAX];
    size_t idlen = 0, len, outlen;
    const void *out;
    int rc;

    if (router) {
        int more = 0;
        size_t sz = sizeof more;

        if ((rc = recv_frame(z->sock, id, sizeof id, 0, &idlen)) != 0)
            return rc;
        if (zmq_getsockopt(z->sock, ZMQ_RCVMORE, &more, &sz) != 0 || !more) {
            fprintf(stderr, "sage-bench: call: zmq: a routing frame without a request\n");
            return -1;
        }
        if (recv_frame(z->sock, z->in, sizeof z->in, 0, &len) != 0)
            return -1; /* the rest of a message arrives with its first frame */
    } else if ((rc = recv_frame(z->sock, z->in, sizeof z->in, 0, &len)) != 0) {
        return rc;
    }
    if (call_wire_serve(z->w, z->in, len, &out, &outlen) != 0)
        return -1;
    if (router && send_all(z->sock, id, idlen, ZMQ_SNDMORE) != 0)
        return -1;
    return send_all(z->sock, out, outlen, 0);
}

static int host(struct call_run *r)
{
    bool router = r->kase == CALL_ASYNC;
    struct zend z;
    int rc = 0;

    memset(&z, 0, sizeof z);
    if (call_gate_wait(&r->ctl->go, "go from the parent") != 0)
        return -1;
    if (call_wire_new(&z.w, "") != 0 ||
        open_end(&z, r, router ? ZMQ_ROUTER : ZMQ_REP, SERVER_POLL_MS) != 0) {
        close_end(&z);
        return -1;
    }
    bench_gate_open(&r->ctl->ready);
    while (!atomic_load_explicit(&r->ctl->done, memory_order_acquire)) {
        rc = serve_one(&z, router);
        if (rc == -2)
            rc = 0; /* idle: look at the gate again */
        if (rc != 0)
            break;
    }
    close_end(&z);
    return rc;
}

/* ----------------------------------------------------------------- client */

static int sync_once(void *arg)
{
    struct client *c = arg;
    const void *buf;
    size_t len;
    uint64_t id = ++c->next_id, got;
    int rc;

    if (call_wire_request(c->z.w, id, &buf, &len) != 0 || send_all(c->z.sock, buf, len, 0) != 0)
        return -1;
    rc = recv_frame(c->z.sock, c->z.in, sizeof c->z.in, 0, &len);
    if (rc == -2)
        fprintf(stderr, "sage-bench: call: zmq: no answer in %d ms\n", CALL_OP_TIMEOUT_MS);
    if (rc != 0 || call_wire_response(c->z.w, c->z.in, len, &got) != 0)
        return -1;
    if (got != id) {
        fprintf(stderr, "sage-bench: call: zmq: answer %llu to call %llu\n",
                (unsigned long long)got, (unsigned long long)id);
        return -1;
    }
    return 0;
}

static int issue(struct client *c)
{
    uint64_t id = ++c->next_id;
    const void *buf;
    size_t len;

    if (call_wire_request(c->z.w, id, &buf, &len) != 0 || send_all(c->z.sock, buf, len, 0) != 0)
        return -1;
    c->slot[id & c->mask] = id;
    c->issued++;
    return 0;
}

/* complete takes answers until at most low calls are outstanding */
static int complete(struct client *c, uint64_t low)
{
    while (c->issued - c->completed > low) {
        size_t len;
        uint64_t id;
        int rc = recv_frame(c->z.sock, c->z.in, sizeof c->z.in, 0, &len);

        if (rc == -2)
            fprintf(stderr, "sage-bench: call: zmq: no answer in %d ms, %llu outstanding\n",
                    CALL_OP_TIMEOUT_MS, (unsigned long long)(c->issued - c->completed));
        if (rc != 0 || call_wire_response(c->z.w, c->z.in, len, &id) != 0)
            return -1;
        if (id == 0 || c->slot[id & c->mask] != id) {
            fprintf(stderr, "sage-bench: call: zmq: an answer to %llu, not outstanding\n",
                    (unsigned long long)id);
            return -1;
        }
        c->slot[id & c->mask] = 0;
        c->completed++;
    }
    return 0;
}

/* run_window: as call_sage.c's, over the DEALER socket */
static int64_t run_window(struct client *c, uint32_t window, int64_t end_ns)
{
    uint64_t first = c->issued;

    do {
        while (c->issued - c->completed < window)
            if (issue(c) != 0)
                return -1;
        if (complete(c, window - window / LOW_FRACTION) != 0)
            return -1;
    } while (bench_now_ns() < end_ns);
    if (complete(c, 0) != 0)
        return -1;
    return (int64_t)(c->issued - first);
}

static int async_measure(const struct call_params *par, struct client *c, struct call_fig *out)
{
    int64_t n, t0, t1;
    uint64_t cap = 1;

    while (cap < 2 * (uint64_t)par->window)
        cap <<= 1;
    c->slot = calloc(cap, sizeof *c->slot);
    if (c->slot == NULL)
        return -1;
    c->mask = cap - 1;
    n = run_window(c, par->window, bench_now_ns() + par->warm_ns);
    if (n >= 0) {
        t0 = bench_now_ns();
        n = run_window(c, par->window, t0 + par->async_ns);
        t1 = bench_now_ns();
    }
    free(c->slot);
    if (n < 0)
        return -1;
    out->p50_us = out->p99_us = -1;
    out->calls_per_s = (double)n * 1e9 / (double)(t1 - t0);
    return 0;
}

static int caller(struct call_run *r)
{
    static struct client c; /* MSG_MAX of buffer: not on the stack */
    char reply_to[160];
    int rc = -1;

    memset(&c, 0, sizeof c);
    if (call_gate_wait(&r->ctl->go, "go from the parent") != 0 ||
        call_gate_wait(&r->ctl->ready, "ready from the zmq server") != 0)
        return -1;
    /* as long as the name of the response queue a manager here would have */
    snprintf(reply_to, sizeof reply_to, "%u.%s.reply.%d.0", (unsigned)geteuid(), r->ns,
             (int)getpid());
    if (call_wire_new(&c.z.w, reply_to) == 0 &&
        open_end(&c.z, r, r->kase == CALL_SYNC ? ZMQ_REQ : ZMQ_DEALER, CALL_OP_TIMEOUT_MS) == 0) {
        if (r->kase == CALL_SYNC)
            rc = call_sync_measure(r->par, sync_once, &c, 1, &r->ctl->fig);
        else
            rc = async_measure(r->par, &c, &r->ctl->fig);
    }
    close_end(&c.z);
    bench_gate_open(&r->ctl->done);
    return rc;
}

static void cleanup(struct call_run *r)
{
    bench_res_remove(r->res[RES_IPC]);
    r->res[RES_IPC] = -1;
}

const struct call_impl call_zmq_impl = {
    .name = "zmq",
    .two_procs = true,
    .setup = setup,
    .host = host,
    .caller = caller,
    .cleanup = cleanup,
};
