/* nats_serve.h - the serving side of the NATS transport (nats.c's table
 * points at these; see transport.h for what each operation does). */
#ifndef SAGE_TRANSPORT_NATS_SERVE_H
#define SAGE_TRANSPORT_NATS_SERVE_H

#include "transport/transport.h"

sage_err sage__nats_serve_open(struct sage__tp_server **sp, const struct sage__tp_serve_conf *conf,
                               struct sage__figures **figp);
sage_err sage__nats_ready(struct sage__tp_server *s);
int sage__nats_tick(struct sage__tp_server *s, int64_t now_ns);
void sage__nats_quiesce(struct sage__tp_server *s);
void sage__nats_reply(struct sage__tp_server *s, const struct sage__tp_req *r,
                      const char *reply_to, const sage__resp *resp, const void *bytes, size_t len);
void sage__nats_release(struct sage__tp_server *s, const struct sage__tp_req *r);
enum sage__tp_seen sage__nats_dedupe_begin(struct sage__tp_server *s, const char *caller,
                                           uint64_t id, uint32_t timeout_ms, void **bytesp,
                                           size_t *lenp);
void sage__nats_dedupe_finish(struct sage__tp_server *s, const char *caller, uint64_t id,
                              const void *bytes, size_t len);
void sage__nats_serve_close(struct sage__tp_server *s);

/* sage__nats_instance_id returns the replica's instance id, the ID of its
 * $SRV.PING.NAME.ID subjects (borrowed, valid until serve_close). */
const char *sage__nats_instance_id(const struct sage__tp_server *s);

#endif
