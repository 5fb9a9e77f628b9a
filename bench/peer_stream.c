/*
 * peer_stream.c - length-prefixed messages over a byte stream, the framing
 * a pipe or a stream socket needs to carry messages.
 *
 * The writer sends prefix and payload with one writev (no copy into a
 * staging buffer). The reader keeps a buffer of CHUNK bytes plus one
 * largest frame, reads as much as the kernel has, and parses whole frames
 * out of it; a partial frame at the end is moved to the front only when the
 * free tail could not hold the rest of a largest frame.
 */
#include "peer_stream.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHUNK (256 * 1024)
#define PREFIX 4

struct stream {
    int rfd;
    int wfd;
    uint8_t *buf;
    size_t cap;   /* CHUNK + one largest frame */
    size_t start; /* first unparsed byte */
    size_t end;   /* end of data read */
    size_t max;   /* largest payload accepted */
};

int stream_attach(struct peer *p, int rfd, int wfd)
{
    struct stream *s = calloc(1, sizeof *s);

    if (s != NULL) {
        s->max = p->size;
        s->cap = CHUNK + PREFIX + s->max;
        s->buf = malloc(s->cap);
    }
    if (s == NULL || s->buf == NULL) {
        fprintf(stderr, "sage-bench: %s: out of memory\n", p->ops->impl);
        if (s != NULL)
            free(s);
        return -1;
    }
    memset(s->buf, 0, s->cap); /* fault it in before measuring */
    s->rfd = rfd;
    s->wfd = wfd;
    p->priv = s;
    return 0;
}

/* io_error reports a failed read or write; EAGAIN is a socket timeout. */
static int io_error(const struct peer *p, const char *what, ssize_t n)
{
    if (n == 0)
        fprintf(stderr, "sage-bench: %s: %s: peer closed\n", p->ops->impl, what);
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
        fprintf(stderr, "sage-bench: %s: %s: timed out after %d ms\n", p->ops->impl, what,
                PEER_OP_TIMEOUT_MS);
    else
        fprintf(stderr, "sage-bench: %s: %s: %s\n", p->ops->impl, what, strerror(errno));
    return -1;
}

int stream_send(struct peer *p, const void *data, size_t len)
{
    struct stream *s = p->priv;
    uint32_t len32 = (uint32_t)len;
    struct iovec iov[2] = {{&len32, PREFIX}, {(void *)data, len}};
    struct iovec *v = iov;
    int cnt = 2;

    while (cnt > 0) {
        ssize_t n = writev(s->wfd, v, cnt);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return io_error(p, "write", n);
        while (cnt > 0 && (size_t)n >= v->iov_len) {
            n -= (ssize_t)v->iov_len;
            v++;
            cnt--;
        }
        if (cnt > 0) {
            v->iov_base = (uint8_t *)v->iov_base + n;
            v->iov_len -= (size_t)n;
        }
    }
    return 0;
}

/* parse takes the next whole frame out of the buffer: 1 if there was one,
 * 0 if more bytes are needed, -1 on a bad prefix. */
static int parse(struct peer *p, struct stream *s, const void **datap, size_t *lenp)
{
    size_t avail = s->end - s->start;
    uint32_t len;

    if (avail < PREFIX)
        return 0;
    memcpy(&len, s->buf + s->start, PREFIX);
    if (len > s->max) {
        fprintf(stderr, "sage-bench: %s: frame of %u bytes, at most %zu expected\n",
                p->ops->impl, len, s->max);
        return -1;
    }
    if (avail < PREFIX + (size_t)len)
        return 0;
    *datap = s->buf + s->start + PREFIX;
    *lenp = len;
    s->start += PREFIX + len;
    return 1;
}

/* fill reads what the kernel has (blocking until something). */
static int fill(struct peer *p, struct stream *s)
{
    if (s->start == s->end) {
        s->start = s->end = 0;
    } else if (s->cap - s->end < PREFIX + s->max) {
        memmove(s->buf, s->buf + s->start, s->end - s->start);
        s->end -= s->start;
        s->start = 0;
    }
    for (;;) {
        ssize_t n = read(s->rfd, s->buf + s->end, s->cap - s->end);

        if (n > 0) {
            s->end += (size_t)n;
            return 0;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return io_error(p, "read", n);
    }
}

int stream_recv(struct peer *p, const void **datap, size_t *lenp)
{
    struct stream *s = p->priv;
    int r;

    while ((r = parse(p, s, datap, lenp)) == 0)
        if (fill(p, s) != 0)
            return -1;
    return r > 0 ? 0 : -1;
}

int stream_drain(struct peer *p, peer_msg_fn fn, void *arg, size_t *countp)
{
    struct stream *s = p->priv;
    const void *data;
    size_t len, count = 0;
    int r;

    for (;;) {
        while ((r = parse(p, s, &data, &len)) > 0) {
            fn(arg, data, len);
            count++;
        }
        if (r < 0)
            return -1;
        if (count > 0)
            break;
        if (fill(p, s) != 0)
            return -1;
    }
    if (countp != NULL)
        *countp = count;
    return 0;
}

void stream_detach(struct peer *p)
{
    struct stream *s = p->priv;

    if (s == NULL)
        return;
    if (s->rfd >= 0)
        close(s->rfd);
    if (s->wfd >= 0 && s->wfd != s->rfd)
        close(s->wfd);
    free(s->buf);
    free(s);
    p->priv = NULL;
}
