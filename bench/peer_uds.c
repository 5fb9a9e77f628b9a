/*
 * peer_uds.c - a Unix domain socketpair as a transport.
 *
 * SOCK_STREAM with the same length-prefixed framing as pipes, rather than
 * SOCK_SEQPACKET. Tried both (2-vCPU VM): seqpacket's one-CPU rtt was about
 * 10% faster (no prefix to parse), stream's one-CPU thr of 64 B messages
 * about 15% faster (one read() takes many messages, a seqpacket reader needs
 * a recv() each), the rest within noise. Stream it is: batching is what a
 * stream user writes, and pipe and uds then differ only in the kernel path.
 * Timeouts: SO_RCVTIMEO and SO_SNDTIMEO, which cost nothing per call. The
 * send buffer is enlarged like the pipe's (the bytes a unix stream socket
 * has in flight are bounded by the sender's SO_SNDBUF).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "peer_stream.h"

/* fd[0] is A's end, fd[1] B's; one pair carries both directions. */
static int setup(struct peer *p)
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->fd) != 0) {
        fprintf(stderr, "sage-bench: uds: socketpair: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int attach(struct peer *p, int side)
{
    struct timeval tv = {.tv_sec = PEER_OP_TIMEOUT_MS / 1000,
                         .tv_usec = (PEER_OP_TIMEOUT_MS % 1000) * 1000};
    int fd = p->fd[side], buf = (int)peer_buffer_bytes(p->size);

    close(p->fd[!side]); /* the peer's end: its death then shows as EOF */
    p->fd[0] = p->fd[1] = -1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
        fprintf(stderr, "sage-bench: uds: setsockopt: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    /* ask for the bytes a sage ring would have; the kernel grants at most
     * net.core.wmem_max (doubled) to an unprivileged process */
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf) != 0)
        fprintf(stderr, "sage-bench: uds: SO_SNDBUF: %s\n", strerror(errno));
    return stream_attach(p, fd, fd);
}

const struct peer_ops peer_uds_ops = {
    .impl = "uds",
    .cases = QCASE_BIT(QCASE_RTT) | QCASE_BIT(QCASE_THR),
    .setup = setup,
    .attach = attach,
    .send = stream_send,
    .recv = stream_recv,
    .drain = stream_drain,
    .detach = stream_detach,
};
