/*
 * host.h - the host daemon's insides: host.c runs the loop, hostspecs.c
 * follows the deployments, hostbeat.c writes the host's record,
 * supervise.c runs the replica slots (their processes: platform/spawn.h).
 *
 * Everything here runs on the host's own thread (the caller of
 * sage_cluster_host_run), except the watch callback, which only queues
 * changes for it (host.c).
 */
#ifndef SAGE_CLUSTER_HOST_H
#define SAGE_CLUSTER_HOST_H

#include <pthread.h>
#include <stdarg.h>
#include <sys/types.h>

#include "cluster/ops.h"
#include "platform/spawn.h"

#define SAGE__BACKOFF_FIRST_MS 100 /* first restart delay, doubling */
#define SAGE__BACKOFF_MAX_MS 5000
#define SAGE__STOP_GRACE_MS 5000   /* SIGTERM, then SIGKILL this long after */
#define SAGE__RESYNC_MS 5000       /* full reread of the deployments: a safety net */

/* ------------------------------------------ supervise.c: replica slots */

enum sage__slot_state {
    SAGE__SLOT_STARTING,  /* spawned, not yet serving */
    SAGE__SLOT_RUNNING,   /* said it serves, and answers its probes */
    SAGE__SLOT_UNHEALTHY, /* serves, but left a probe unanswered */
    SAGE__SLOT_BACKOFF,  /* died; restarts at due_ns */
    SAGE__SLOT_STOPPING, /* asked to stop; SIGKILL at due_ns */
    SAGE__SLOT_FAILED,   /* died once more after max_restarts restarts */
    SAGE__SLOT_DONE,     /* stopped; to be dropped */
};

struct sage__slot {
    enum sage__slot_state state;
    struct sage__child child;
    uint32_t restarts;     /* restarts made */
    int64_t due_ns;        /* monotonic */
    int last_status;       /* wait status of the last exit */
    uint64_t gen;          /* the deployment's generation its process started with */
    char id[32];           /* the instance id it reported ("" until it did) */
    char rbuf[40];         /* what it wrote on its ready pipe so far */
    size_t rlen;
    uint64_t token;        /* names the answers to its probes */
    int64_t last_ok_ns;    /* monotonic: last probe answered, or serving since */
    int64_t seen_ms;       /* wall clock of the same, for the record */
    int64_t next_probe_ns; /* monotonic */
    bool probe_out;        /* a probe went out and has no answer yet */
    bool hung;             /* killed by the host for not answering */
};

/* The replicas of one deployment on this host. */
struct sage__group {
    char key[160]; /* "NS.NAME" */
    char ns[72];
    char name[72];
    char deploy[32]; /* the deployment's id */
    uint32_t max_restarts;
    double cpus;
    uint64_t memory;
    int durable;
    uint64_t gen;              /* the spec's generation: its configuration's version */
    int64_t probe_interval_ms; /* 0: no probes */
    int64_t probe_timeout_ms;
    bool roll_stuck;           /* a replica of the newest generation failed: no surge */
    bool python;           /* a Python service: its replicas start with python_argv */
    uint32_t want;         /* replicas placed here; 0: stop them all */
    bool runnable;         /* the spec says "running": (re)start replicas */
    bool gone;             /* the deployment was removed: clean up after */
    bool need_reservation; /* make sure the record reserves for it */
    struct sage__slot *slots;
    size_t nslots;
    struct sage__group *next;
};

/* A deployment change seen by the watch, queued for the host's thread. */
struct sage__change {
    char *key;
    json_t *spec; /* NULL: deleted */
    uint64_t rev;
    struct sage__change *next;
};

/* The host daemon's state; only its own thread touches it, except the
 * fields under `lock`. */
struct sage__host {
    const sage_cluster_host_opts *o;
    sage_nats_conf nats; /* o->nats with reconnects forever */
    char id[72];
    char hostname[256];
    double cpus;
    uint64_t memory;
    struct sage__ops ops;
    struct sage__nio_watch *watch;
    int wake_fd;                             /* eventfd: changes are queued */
    pthread_mutex_t lock;                    /* guards changes, tail, resync */
    struct sage__change *changes, **tail;
    bool resync;                             /* reread the whole deploy bucket */
    json_t *cache;                           /* "NS.NAME" -> {"spec": {...}, "rev": n} */
    bool cache_changed;
    struct sage__group *groups;
    bool dirty;                              /* write the record at the next turn */
    bool record_failing;                     /* the last record write failed */
    json_t *last;                            /* the record as last written, or NULL */
    uint64_t last_rev;                       /* its revision */
    char released[256];                      /* reservations the last write dropped */
    int64_t next_beat_ns;                    /* monotonic */
    int64_t next_resync_ns;
    struct sage__nio_sub *probe_sub;         /* answers to probes: PROBE_INBOX.TOKEN */
    char probe_inbox[128];
    uint64_t next_token;
    uint64_t *answers;                       /* tokens answered; under lock */
    size_t nanswers, answers_cap;
    bool probe_grace;                        /* reconnected: under lock */
    int64_t writable_since_ns;               /* record writes succeed since (0: failing) */
    int64_t next_lost_check_ns;
    json_t *missing;                         /* HOST-ID -> wall ms its record was found gone */
    struct sage__nio_watch *hosts_watch;     /* every host's record, as it changes */
    json_t *hosts_view;                      /* HOST-ID -> record; under lock */
    int64_t hosts_view_at;                   /* monotonic: its last change; under lock */
    pthread_t view_tid;                      /* keeps the watch alive (relocate.c) */
    pthread_cond_t view_cond;                /* CLOCK_MONOTONIC, with lock */
    bool view_stop;                          /* under lock */
    bool view_running;
    bool view_cond_ready;
    int64_t last_probe_pass_ns;              /* probe.c: the host thread's last pass */
    char **argv;                             /* replica command line, fixed part */
    size_t nargv;
    size_t nprefix;                          /* of which replica_argv */
    char **pyargv;                           /* python_argv */
    char **envp;
};

/* sage__group_apply starts or stops slots of g until `want` of them live. */
void sage__group_apply(struct sage__host *h, struct sage__group *g);

/* sage__slot_exited handles the exit of s's process: expected (stopping),
 * or a death to restart after a backoff or to give up on. */
void sage__slot_exited(struct sage__host *h, struct sage__group *g, struct sage__slot *s,
                       int status);

/* sage__slot_due handles s's timer: a restart, or a SIGKILL. */
void sage__slot_due(struct sage__host *h, struct sage__group *g, struct sage__slot *s);

/* sage__slot_stop asks s's process to stop (SIGTERM; SIGKILL after the
 * grace), or drops s at once when no process runs. */
void sage__slot_stop(struct sage__host *h, struct sage__slot *s);

/* sage__slot_state_name: "starting", "running", ... */
const char *sage__slot_state_name(enum sage__slot_state st);

/* ---------------------------------------------- hostspecs.c: specs */

/* The watch's callback and the connection's event callback (nats.c
 * threads): queue, poke the eventfd. */
void sage__host_on_watch(void *arg, const char *key, const void *val, size_t len, uint64_t rev,
                         bool deleted);
void sage__host_on_event(void *arg, enum sage__nio_event ev, const char *url);

/* sage__host_take_changes applies queued changes to the cache (and
 * rereads the bucket after a reconnect or every SAGE__RESYNC_MS). */
void sage__host_take_changes(struct sage__host *h);

/* sage__host_reconcile removes dead deployments (lapsed lease, abandoned),
 * then sets every group's wanted replicas from the cache and applies it. */
void sage__host_reconcile(struct sage__host *h);

/* sage__host_reap_groups frees groups with nothing left running. */
void sage__host_reap_groups(struct sage__host *h);

/* sage__host_find_group finds the group of key (of deployment deploy, or
 * any when NULL). */
struct sage__group *sage__host_find_group(struct sage__host *h, const char *key,
                                          const char *deploy);

/* sage__host_wake pokes the host's eventfd. Any thread. */
void sage__host_wake(struct sage__host *h);

/* ----------------------------------------------- hostbeat.c: record */

/* sage__host_write_record writes the host's record now (heartbeat,
 * replicas, reservations kept or dropped). Clears dirty either way. */
sage_err sage__host_write_record(struct sage__host *h);

/* ------------------------------------------- probe.c: hung replicas */

/* sage__host_probe_open subscribes to the answers of the host's probes. */
sage_err sage__host_probe_open(struct sage__host *h);

/* sage__host_probe_close unsubscribes (no callback runs after it). */
void sage__host_probe_close(struct sage__host *h);

/* sage__host_probe takes the answers that came, marks replicas unhealthy
 * or healthy, kills those silent for their probe timeout, and sends the
 * probes that are due. */
void sage__host_probe(struct sage__host *h);

/* sage__host_probe_next returns when the next probe is due (monotonic ns),
 * or INT64_MAX. */
int64_t sage__host_probe_next(const struct sage__host *h);

/* sage__slot_serving starts s's probe clock: it serves as of now. */
void sage__slot_serving(struct sage__slot *s);

/* ------------------------------------------- relocate.c: lost hosts */

/* sage__host_relocate places elsewhere the replicas of hosts silent for
 * their deployment's replace_after, when this host is the one to do it. */
void sage__host_relocate(struct sage__host *h);

/* sage__host_view_start watches the host records into h->hosts_view, with
 * a thread that restarts a watch that stopped delivering;
 * sage__host_view_stop stops both (no callback runs after it). */
sage_err sage__host_view_start(struct sage__host *h);
void sage__host_view_stop(struct sage__host *h);

/* sage__host_on_hostrec is the watch callback of the hosts' records (on
 * the watch's thread): it keeps h->hosts_view. */
void sage__host_on_hostrec(void *arg, const char *key, const void *val, size_t len, uint64_t rev,
                           bool deleted);

/* ---------------------------------------------------------- host.c */

/* sage__host_log writes one line of the host's log. */
void sage__host_log(struct sage__host *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* sage__host_spawn starts a replica of g in slot s (state STARTING, or
 * BACKOFF towards the next attempt when it cannot be started). */
void sage__host_spawn(struct sage__host *h, struct sage__group *g, struct sage__slot *s);

/* sage__host_dirty asks for the record to be written at the next turn. */
void sage__host_dirty(struct sage__host *h);

/* sage__host_gave_up: a slot of g failed for good; reason says how. The
 * record is written, and when no replica of g's deployment lives on any
 * host any more, the deployment and its service are marked failed. */
void sage__host_gave_up(struct sage__host *h, struct sage__group *g, const char *reason);

/* sage__host_id returns the host's id (borrowed). */
const char *sage__host_id(const struct sage__host *h);

#endif
