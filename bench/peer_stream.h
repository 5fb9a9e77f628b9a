/*
 * peer_stream.h - a peer over byte streams (pipes, stream sockets): each
 * message is framed with a 4-byte length prefix; the reader reads in large
 * chunks and parses every whole frame it holds, so one read() can deliver
 * many small messages. pipe and uds share it and differ only in setup.
 */
#ifndef SAGE_BENCH_PEER_STREAM_H
#define SAGE_BENCH_PEER_STREAM_H

#include <stddef.h>

#include "peer.h"

/* stream_attach makes p a framed stream reading rfd and writing wfd (either
 * may be -1 when unused); both are then owned by p. */
int stream_attach(struct peer *p, int rfd, int wfd);

int stream_send(struct peer *p, const void *data, size_t len);
int stream_recv(struct peer *p, const void **datap, size_t *lenp);
int stream_drain(struct peer *p, peer_msg_fn fn, void *arg, size_t *countp);

/* stream_detach closes both descriptors and frees the buffers. */
void stream_detach(struct peer *p);

#endif
