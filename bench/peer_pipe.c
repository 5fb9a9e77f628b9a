/*
 * peer_pipe.c - pipes as a transport: one pipe per direction (two for rtt,
 * one for thr), length-prefixed frames read in large chunks (peer_stream.c).
 *
 * Pipes have no per-call timeout; a wedged peer is caught by the child's
 * alarm (PEER_RUN_TIMEOUT_S) or by EOF/EPIPE when the other end dies, so
 * the measured path stays a plain write and read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "peer_stream.h"

/* grow gives the pipe the bytes a sage ring would have, or as many as an
 * unprivileged process may (/proc/sys/fs/pipe-max-size), so that a
 * comparison of throughput is not one of buffer sizes; the default 64 KiB
 * would stall the writer on every 64 KiB message. */
static void grow(int fd, size_t want)
{
    long max = 0;
    FILE *f;

    if (fcntl(fd, F_SETPIPE_SZ, (int)want) >= 0)
        return;
    f = fopen("/proc/sys/fs/pipe-max-size", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &max) == 1 && max > 0 && (size_t)max < want)
            fcntl(fd, F_SETPIPE_SZ, (int)max);
        fclose(f);
    }
}

/* fd[0], fd[1]: A -> B (read, write); fd[2], fd[3]: B -> A, rtt only. */
static int setup(struct peer *p)
{
    if (pipe2(p->fd, O_CLOEXEC) != 0 ||
        (p->kase == QCASE_RTT && pipe2(p->fd + 2, O_CLOEXEC) != 0)) {
        fprintf(stderr, "sage-bench: pipe: %s\n", strerror(errno));
        return -1;
    }
    for (int i = 1; i < 4; i += 2)
        if (p->fd[i] >= 0)
            grow(p->fd[i], peer_buffer_bytes(p->size));
    return 0;
}

/* take returns p->fd[i], handing it over to the caller. */
static int take(struct peer *p, int i)
{
    int fd = p->fd[i];

    p->fd[i] = -1;
    return fd;
}

static int attach(struct peer *p, int side)
{
    int rfd = take(p, side == SIDE_A ? 2 : 0);
    int wfd = take(p, side == SIDE_A ? 1 : 3);

    /* the other ends are the peer's: closing ours lets EOF and EPIPE tell
     * either side when the other dies */
    for (int i = 0; i < 4; i++)
        if (p->fd[i] >= 0)
            close(take(p, i));
    return stream_attach(p, rfd, wfd);
}

const struct peer_ops peer_pipe_ops = {
    .impl = "pipe",
    .cases = QCASE_BIT(QCASE_RTT) | QCASE_BIT(QCASE_THR),
    .setup = setup,
    .attach = attach,
    .send = stream_send,
    .recv = stream_recv,
    .drain = stream_drain,
    .detach = stream_detach,
};
