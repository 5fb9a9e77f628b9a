/*
 * peer_mq.c - POSIX message queues as a transport: "/sage-bench.<name>.a"
 * carries A -> B, ".b" (rtt only) B -> A. Messages keep their boundaries,
 * so there is no framing.
 *
 * mq_msgsize is the payload size and mq_maxmsg the unprivileged limit
 * (/proc/sys/fs/mqueue/msg_max, usually 10), what an ordinary user can
 * create. A size above msgsize_max needs privileges: then setup answers
 * PEER_SKIP and the row is omitted. Calls use mq_timedsend and
 * mq_timedreceive with one absolute deadline per run, which costs nothing
 * per call.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "peer.h"

#define DEFAULT_MAXMSG 10

struct mq_ends {
    mqd_t tx;
    mqd_t rx;
    void *buf;
    struct timespec deadline; /* CLOCK_REALTIME, as mq_timed* want */
};

static void mqname(char *buf, size_t cap, const struct peer *p, int chan)
{
    snprintf(buf, cap, "/sage-%s.%c", p->name, 'a' + chan);
}

/* msg_max returns the most messages an unprivileged queue may hold. */
static long msg_max(void)
{
    FILE *f = fopen("/proc/sys/fs/mqueue/msg_max", "r");
    long v = DEFAULT_MAXMSG;

    if (f != NULL) {
        if (fscanf(f, "%ld", &v) != 1 || v < 1)
            v = DEFAULT_MAXMSG;
        fclose(f);
    }
    return v;
}

static int setup(struct peer *p)
{
    struct mq_attr attr = {.mq_maxmsg = msg_max(), .mq_msgsize = (long)p->size};
    int nchan = p->kase == QCASE_RTT ? 2 : 1;
    char name[96];

    for (int c = 0; c < nchan; c++) {
        mqd_t q;

        mqname(name, sizeof name, p, c);
        p->res[c] = bench_res_add(BENCH_RES_MQ, name);
        if (p->res[c] < 0)
            return -1;
        q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
        if (q == (mqd_t)-1) {
            static size_t noted; /* say it once per size, not per CPU pair */

            if (noted != p->size)
                bench_note("mq: mq_open with %zu-byte messages, %ld deep: %s; rows omitted",
                           p->size, attr.mq_maxmsg, strerror(errno));
            noted = p->size;
            return PEER_SKIP;
        }
        mq_close(q);
    }
    return 0;
}

static int attach(struct peer *p, int side)
{
    struct mq_ends *m = calloc(1, sizeof *m);
    char name[96];

    if (m == NULL || (m->buf = malloc(p->size)) == NULL) {
        free(m);
        return -1;
    }
    m->tx = m->rx = (mqd_t)-1;
    p->priv = m;
    clock_gettime(CLOCK_REALTIME, &m->deadline);
    m->deadline.tv_sec += PEER_RUN_TIMEOUT_S;
    mqname(name, sizeof name, p, side == SIDE_A ? 0 : 1);
    if ((side == SIDE_A || p->kase == QCASE_RTT) &&
        (m->tx = mq_open(name, O_WRONLY)) == (mqd_t)-1) {
        fprintf(stderr, "sage-bench: mq: open %s: %s\n", name, strerror(errno));
        return -1;
    }
    mqname(name, sizeof name, p, side == SIDE_A ? 1 : 0);
    if ((side == SIDE_B || p->kase == QCASE_RTT) &&
        (m->rx = mq_open(name, O_RDONLY)) == (mqd_t)-1) {
        fprintf(stderr, "sage-bench: mq: open %s: %s\n", name, strerror(errno));
        return -1;
    }
    return 0;
}

static int send_msg(struct peer *p, const void *data, size_t len)
{
    struct mq_ends *m = p->priv;

    while (mq_timedsend(m->tx, data, len, 0, &m->deadline) != 0) {
        if (errno != EINTR) {
            fprintf(stderr, "sage-bench: mq: send: %s\n", strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int recv_msg(struct peer *p, const void **datap, size_t *lenp)
{
    struct mq_ends *m = p->priv;
    ssize_t n;

    while ((n = mq_timedreceive(m->rx, m->buf, p->size, NULL, &m->deadline)) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "sage-bench: mq: receive: %s\n", strerror(errno));
            return -1;
        }
    }
    *datap = m->buf;
    *lenp = (size_t)n;
    return 0;
}

static void detach(struct peer *p)
{
    struct mq_ends *m = p->priv;

    if (m == NULL)
        return;
    if (m->tx != (mqd_t)-1)
        mq_close(m->tx);
    if (m->rx != (mqd_t)-1)
        mq_close(m->rx);
    free(m->buf);
    free(m);
    p->priv = NULL;
}

static void cleanup(struct peer *p)
{
    bench_res_remove(p->res[0]);
    bench_res_remove(p->res[1]);
}

const struct peer_ops peer_mq_ops = {
    .impl = "mq",
    .cases = QCASE_BIT(QCASE_RTT) | QCASE_BIT(QCASE_THR),
    .setup = setup,
    .attach = attach,
    .send = send_msg,
    .recv = recv_msg,
    .detach = detach,
    .cleanup = cleanup,
};
