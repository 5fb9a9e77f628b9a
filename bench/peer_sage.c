/*
 * peer_sage.c - sage_queue as a transport: queue "<name>.a" carries A -> B,
 * "<name>.b" (rtt only) B -> A.
 *
 * The parent creates the queues (EXCL, so a stale segment can never be
 * reused) and lets go of its handles; each child opens its ends after it
 * has been pinned, as an application pinned at start-up would. Producers
 * use sage_queue_send, consumers sage_queue_recv (rtt, wake) or
 * sage_queue_drain with no batch limit (thr), every call with a timeout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "peer.h"
#include "sage/queue.h"

struct sage_ends {
    sage_queue *tx;
    sage_queue *rx;
    void *buf; /* recv's copy */
};

static void qname(char *buf, size_t cap, const struct peer *p, int chan)
{
    snprintf(buf, cap, "%s.%c", p->name, 'a' + chan);
}

static int fail(const char *what, sage_err e)
{
    fprintf(stderr, "sage-bench: sage: %s: %s (%s)\n", what, sage_strerror(e), sage_errdetail());
    return -1;
}

static int setup(struct peer *p)
{
    int nchan = p->kase == QCASE_RTT ? 2 : 1;
    sage_queue_opts o;
    char name[96];

    sage_queue_opts_init(&o);
    o.flags = SAGE_QUEUE_CREATE | SAGE_QUEUE_EXCL;
    o.capacity = peer_buffer_bytes(p->size);
    for (int c = 0; c < nchan; c++) {
        sage_queue *q;
        sage_err e;

        qname(name, sizeof name, p, c);
        p->res[c] = bench_res_add(BENCH_RES_SAGE_QUEUE, name);
        if (p->res[c] < 0)
            return -1;
        e = sage_queue_open(&q, name, &o);
        if (e != SAGE_OK)
            return fail("create", e);
        sage_queue_close(q); /* the segment stays until cleanup unlinks it */
    }
    return 0;
}

static int attach(struct peer *p, int side)
{
    struct sage_ends *s = calloc(1, sizeof *s);
    char name[96];
    sage_err e;

    if (s == NULL || (s->buf = malloc(p->size)) == NULL) {
        free(s);
        return -1;
    }
    p->priv = s;
    /* A sends on channel a and receives on b; B the other way round */
    qname(name, sizeof name, p, side == SIDE_A ? 0 : 1);
    if (side == SIDE_A || p->kase == QCASE_RTT) {
        e = sage_queue_open(&s->tx, name, NULL);
        if (e != SAGE_OK)
            return fail(name, e);
    }
    qname(name, sizeof name, p, side == SIDE_A ? 1 : 0);
    if (side == SIDE_B || p->kase == QCASE_RTT) {
        e = sage_queue_open(&s->rx, name, NULL);
        if (e != SAGE_OK)
            return fail(name, e);
    }
    return 0;
}

static int send_msg(struct peer *p, const void *data, size_t len)
{
    struct sage_ends *s = p->priv;
    sage_err e = sage_queue_send(s->tx, data, len, PEER_OP_TIMEOUT_MS);

    return e == SAGE_OK ? 0 : fail("send", e);
}

static int recv_msg(struct peer *p, const void **datap, size_t *lenp)
{
    struct sage_ends *s = p->priv;
    sage_err e = sage_queue_recv(lenp, s->rx, s->buf, p->size, PEER_OP_TIMEOUT_MS);

    if (e != SAGE_OK)
        return fail("recv", e);
    *datap = s->buf;
    return 0;
}

static int drain(struct peer *p, peer_msg_fn fn, void *arg, size_t *countp)
{
    struct sage_ends *s = p->priv;
    sage_err e = sage_queue_drain(countp, s->rx, fn, arg, 0, PEER_OP_TIMEOUT_MS);

    return e == SAGE_OK ? 0 : fail("drain", e);
}

static void detach(struct peer *p)
{
    struct sage_ends *s = p->priv;

    if (s == NULL)
        return;
    sage_queue_close(s->tx);
    sage_queue_close(s->rx);
    free(s->buf);
    free(s);
    p->priv = NULL;
}

static void cleanup(struct peer *p)
{
    bench_res_remove(p->res[0]);
    bench_res_remove(p->res[1]);
}

const struct peer_ops peer_sage_ops = {
    .impl = "sage",
    .cases = QCASE_BIT(QCASE_RTT) | QCASE_BIT(QCASE_THR) | QCASE_BIT(QCASE_WAKE),
    .setup = setup,
    .attach = attach,
    .send = send_msg,
    .recv = recv_msg,
    .drain = drain,
    .detach = detach,
    .cleanup = cleanup,
};
