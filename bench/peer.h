/*
 * peer.h - the transports "sage-bench queue" compares, behind one small
 * interface, and the run that drives their two ends in two processes.
 *
 * A run: the parent calls setup (creates pipes, queues, names: everything
 * both ends need), forks side A (pinger, sender, producer) and side B
 * (ponger, receiver, consumer), each pinned first; each child calls attach,
 * then the case driver (queue_cases.c) moves messages with send, recv and
 * drain, then detach. The parent reaps both and calls cleanup, which
 * removes every named object. Figures travel back in struct qctl, a shared
 * page.
 *
 * Every message starts with a 64-bit sequence number (and, for wake, the
 * sender's CLOCK_MONOTONIC timestamp); receivers check the sequence, so a
 * transport that loses, reorders or truncates messages fails the run.
 */
#ifndef SAGE_BENCH_PEER_H
#define SAGE_BENCH_PEER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The cases of the queue benchmark. */
enum qcase { QCASE_RTT, QCASE_THR, QCASE_WAKE, QCASE_COUNT };
#define QCASE_BIT(c) (1u << (c))

/* The two ends of a run. */
enum { SIDE_A = 0, SIDE_B = 1 };

/* Longest wait of one send or receive: a wedged peer fails the run. */
#define PEER_OP_TIMEOUT_MS 5000
/* Longest life of a child (alarm), also the deadline of calls without a
 * cheaper per-call timeout (pipes, mq). A full run takes about a second. */
#define PEER_RUN_TIMEOUT_S 20

/* setup's answer when this transport cannot run this size here (row omitted). */
#define PEER_SKIP 1

/* Sequence numbers with a meaning. */
#define SEQ_STOP UINT64_MAX           /* last message of a run */
#define SEQ_WARM_END (UINT64_MAX - 1) /* thr: end of the warm-up stream */

/* peer_buffer_bytes: the ring capacity sage gets for messages of size
 * bytes (1 MiB, 4 MiB above 4 KiB); pipes and sockets ask for as much. */
static inline size_t peer_buffer_bytes(size_t size)
{
    return size > 4096 ? (size_t)4 << 20 : (size_t)1 << 20;
}

/* A callback of drain: data is borrowed for the call only. */
typedef void (*peer_msg_fn)(void *arg, const void *data, size_t len);

struct qrun;

/* One transport instance: the state of a run, copied into both children. */
struct peer {
    const struct peer_ops *ops;
    enum qcase kase;
    size_t size;   /* payload bytes of every message */
    char name[64]; /* unique per run: "bench.<pid>.<run>" */
    int fd[4];     /* descriptors made by setup, -1 if unused */
    void *shm;     /* a shared page made by setup, or NULL */
    int res[2];    /* bench_res handles of the named objects, -1 if none */
    void *priv;    /* per-process state, made by attach */
};

/* A transport. Calls return 0 on success, -1 with a message on stderr. */
struct peer_ops {
    const char *impl;
    unsigned cases;     /* QCASE_BIT of each case it takes part in */
    bool distinct_cpus; /* meaningful only with its ends on two CPUs */
    /* parent, before fork: 0, -1, or PEER_SKIP (note printed) */
    int (*setup)(struct peer *p);
    /* child, after pinning: open this side's ends */
    int (*attach)(struct peer *p, int side);
    int (*send)(struct peer *p, const void *data, size_t len);
    /* one message, borrowed until the next call on p */
    int (*recv)(struct peer *p, const void **datap, size_t *lenp);
    /* at least one message to fn, as many as are ready; NULL: recv once */
    int (*drain)(struct peer *p, peer_msg_fn fn, void *arg, size_t *countp);
    void (*detach)(struct peer *p);
    /* parent, after both children have gone: close, remove names */
    void (*cleanup)(struct peer *p);
    /* if set, replaces attach + the case driver (floor's own spin loop) */
    int (*run)(struct qrun *r, int side);
};

/* Run lengths: full or --quick. */
struct qparams {
    int64_t warm_ns; /* rtt, thr: warm-up before measuring */
    int64_t rtt_ns;  /* rtt: measured time aimed at, within: */
    size_t rtt_min;  /* bounds on measured round trips */
    size_t rtt_max;
    int64_t thr_ns; /* thr: measured time aimed at, within: */
    size_t thr_min; /* bounds on measured messages */
    size_t thr_max;
    size_t wake_warm; /* wake: unmeasured, then measured wake-ups */
    size_t wake_n;
    int64_t wake_gap_ns; /* producer's sleep between messages */
};

/* The shared page of a run (MAP_SHARED): gate and figures. */
struct qctl {
    _Atomic uint32_t gate;   /* thr: receiver opens it after the warm-up */
    _Atomic uint64_t n;      /* thr: measured messages, chosen by the receiver */
    _Atomic int64_t t_start; /* thr: sender's clock before its first measured send */
    _Atomic int64_t t_end;   /* thr: receiver's clock when it has all */
    double p50_ns;           /* rtt, wake: written by the measuring side */
    double p99_ns;
};

/* A run as both children see it. */
struct qrun {
    struct peer peer;
    const struct qparams *par;
    struct qctl *ctl;
};

/* queue_cases.c: the body of side (SIDE_A or SIDE_B) of run r. */
int qcase_side(struct qrun *r, int side);

/* queue_cases.c: the round-trip loop shared with floor. once(ctx) does one
 * round trip, numbering its pings 1, 2, ... itself; warms up, sizes the run
 * (bench_latency), stores p50/p99 in r->ctl. */
int qcase_rtt_measure(struct qrun *r, int (*once)(void *ctx), void *ctx);

/* The transports. */
extern const struct peer_ops peer_sage_ops;
extern const struct peer_ops peer_floor_ops;
extern const struct peer_ops peer_pipe_ops;
extern const struct peer_ops peer_uds_ops;
extern const struct peer_ops peer_mq_ops;
extern const struct peer_ops peer_zmq_ops;
extern const struct peer_ops peer_futex_ops;

#endif
