/*
 * peer_zmq.c - ZeroMQ over the ipc transport: PAIR sockets for rtt (one
 * socket carries both directions, with no REQ/REP state machine in the
 * way), PUSH/PULL for thr. B binds /tmp/sage-bench.<name>.ipc, A connects.
 *
 * The only file that includes <zmq.h>. Each child makes its own context
 * after it has been pinned, so libzmq's I/O thread inherits the pinning and
 * competes for the same CPU, as it would in a pinned application. Timeouts:
 * ZMQ_RCVTIMEO and ZMQ_SNDTIMEO; ZMQ_LINGER bounds the final flush.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bench_util.h"
#include "peer.h"

#define LINGER_MS 2000

struct zmq_end {
    void *ctx;
    void *sock;
    void *buf;
};

static void ipc_path(char *buf, size_t cap, const struct peer *p)
{
    snprintf(buf, cap, "/tmp/sage-%s.ipc", p->name);
}

static int fail(const char *what)
{
    fprintf(stderr, "sage-bench: zmq: %s: %s\n", what, zmq_strerror(zmq_errno()));
    return -1;
}

static int setup(struct peer *p)
{
    char path[96];

    ipc_path(path, sizeof path, p);
    p->res[0] = bench_res_add(BENCH_RES_FILE, path);
    return p->res[0] < 0 ? -1 : 0;
}

static int attach(struct peer *p, int side)
{
    struct zmq_end *z = calloc(1, sizeof *z);
    int type, tmo = PEER_OP_TIMEOUT_MS, linger = LINGER_MS;
    char path[96], ep[128];

    if (z == NULL || (z->buf = malloc(p->size)) == NULL) {
        free(z);
        return -1;
    }
    p->priv = z;
    if (p->kase == QCASE_RTT)
        type = ZMQ_PAIR;
    else
        type = side == SIDE_A ? ZMQ_PUSH : ZMQ_PULL;
    ipc_path(path, sizeof path, p);
    snprintf(ep, sizeof ep, "ipc://%s", path);
    z->ctx = zmq_ctx_new();
    if (z->ctx == NULL)
        return fail("zmq_ctx_new");
    z->sock = zmq_socket(z->ctx, type);
    if (z->sock == NULL)
        return fail("zmq_socket");
    if (zmq_setsockopt(z->sock, ZMQ_RCVTIMEO, &tmo, sizeof tmo) != 0 ||
        zmq_setsockopt(z->sock, ZMQ_SNDTIMEO, &tmo, sizeof tmo) != 0 ||
        zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger) != 0)
        return fail("zmq_setsockopt");
    if (side == SIDE_B ? zmq_bind(z->sock, ep) != 0 : zmq_connect(z->sock, ep) != 0)
        return fail(ep);
    return 0;
}

static int send_msg(struct peer *p, const void *data, size_t len)
{
    struct zmq_end *z = p->priv;

    while (zmq_send(z->sock, data, len, 0) != (int)len) {
        if (zmq_errno() != EINTR)
            return fail("send");
    }
    return 0;
}

static int recv_msg(struct peer *p, const void **datap, size_t *lenp)
{
    struct zmq_end *z = p->priv;
    int n;

    while ((n = zmq_recv(z->sock, z->buf, p->size, 0)) < 0) {
        if (zmq_errno() != EINTR)
            return fail("recv");
    }
    *datap = z->buf;
    *lenp = (size_t)n; /* longer than size: truncated, and the length check says so */
    return 0;
}

static void detach(struct peer *p)
{
    struct zmq_end *z = p->priv;

    if (z == NULL)
        return;
    if (z->sock != NULL)
        zmq_close(z->sock);
    if (z->ctx != NULL)
        zmq_ctx_term(z->ctx);
    free(z->buf);
    free(z);
    p->priv = NULL;
}

static void cleanup(struct peer *p)
{
    bench_res_remove(p->res[0]);
}

const struct peer_ops peer_zmq_ops = {
    .impl = "zmq",
    .cases = QCASE_BIT(QCASE_RTT) | QCASE_BIT(QCASE_THR),
    .setup = setup,
    .attach = attach,
    .send = send_msg,
    .recv = recv_msg,
    .detach = detach,
    .cleanup = cleanup,
};
