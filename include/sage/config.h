/*
 * sage/config.h - the YAML configuration of sagesvc, loaded and validated.
 *
 * One file configures a whole deployment: the namespace, the default
 * transport, the NATS connection, the defaults of every hosted service
 * (`service.local`, `service.cluster` alias `service.ray`, `service.call`)
 * and the list of services to host (`services`). examples/services.yaml
 * shows every key. A file is either accepted whole or refused with
 * SAGE_ECONFIG and a detail "FILE:LINE:COL: PATH: reason", for instance
 * "services.yaml:7:18: service.local.max_workers: expected an integer in
 * 1..1024, got 'ten'".
 *
 * A loaded sage_config is immutable: any number of threads may read it at
 * once. Every pointer it hands out (strings, arrays, structs) is borrowed
 * and stays valid until sage_config_free.
 */
#ifndef SAGE_CONFIG_H
#define SAGE_CONFIG_H

#include "sage/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sage/err.h"
#include "sage/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* sage_config: an opaque, immutable, validated configuration. */
typedef struct sage_config sage_config;

/* sage_local_conf: settings of services running on this machine (section
 * service.local), filled by sage_local_conf_init or a config. Defaults:
 * max_workers 10 (1..1024), queue_timeout 30 s (0..86400; 0 fails at once
 * when the request queue is full), request_queue_size 10000 (1..8388607),
 * error_threshold 0.5 (0..1; 0 never degrades on errors; see sage_status).
 * The file gives times in seconds; the structs hold milliseconds, as every
 * option of the API does. */
typedef struct sage_local_conf {
    uint32_t max_workers;        /* worker threads of one service instance */
    int64_t queue_timeout_ms;    /* how long a caller waits for room in a full queue */
    uint32_t request_queue_size; /* requests the request queue holds */
    double error_threshold;      /* degraded at this share of failed calls (0..1) */
} sage_local_conf;

/* sage_call_conf: defaults of calls made through a manager (section
 * service.call). Defaults: timeout 30 s (> 0, <= 86400), retries 0
 * (0..100), retry_backoff 0.05 s (0..60), idle_close 60 s (0..86400),
 * hedge_after 0 (0..86400; 0: calls are not hedged). */
typedef struct sage_call_conf {
    int64_t timeout_ms;       /* how long a call may take */
    uint32_t retries;         /* retries of calls marked idempotent */
    int64_t retry_backoff_ms; /* before the first retry; doubles each time */
    int64_t idle_close_ms;    /* how long an unused destination is kept */
    int64_t hedge_after_ms;   /* hedge idempotent calls after this long; 0: never */
} sage_call_conf;

/* sage_cluster_conf: settings of distributed replicas (section
 * service.cluster, alias service.ray). Defaults: cpus 1 (> 0), memory 0
 * (none reserved), owned, max_restarts 3 (0..1000), replicas 1 (1..1000),
 * at-most-once delivery, dedupe none (or cluster), dedupe_ttl 600 s
 * (1..2592000), replace_after 10 s (5..86400), probe_interval 1 s (0 = no
 * probes, else 0.05..3600), probe_timeout 10 s (0.1..3600). */
typedef struct sage_cluster_conf {
    double cpus;               /* CPUs reserved per replica (resources.CPU) */
    uint64_t memory;           /* bytes reserved per replica (resources.memory), 0 = none */
    bool detached;             /* lifetime detached: replicas outlive their deployer */
    uint32_t max_restarts;     /* restarts of a failing replica before giving up */
    uint32_t replicas;         /* replicas to run */
    bool durable;              /* delivery durable (work queue with ack) */
    bool dedupe;               /* a request id runs once across replicas (dedupe: cluster) */
    int64_t dedupe_ttl_ms;     /* how long answers are kept for repeats (dedupe_ttl) */
    int64_t replace_after_ms;  /* a host silent this long: its replicas go elsewhere */
    int64_t probe_interval_ms; /* the host pings each replica this often; 0: never */
    int64_t probe_timeout_ms;  /* a replica unanswering this long is restarted */
} sage_cluster_conf;

/* sage_nats_conf: the NATS connection (section nats), used by transport
 * nats. Strings are borrowed from the config. Defaults: servers
 * [SAGE_NATS_DEFAULT_URL], every string NULL, reconnect_max 60 attempts
 * (-1 = forever), reconnect_wait 2 s, replicas 0: every JetStream bucket
 * and stream sagesvc creates keeps min(3, servers in the cluster) copies,
 * so no single server holds the cluster's state. */
#define SAGE_NATS_DEFAULT_URL "nats://127.0.0.1:4222"
typedef struct sage_nats_conf {
    const char *const *servers; /* nservers URLs, never empty */
    size_t nservers;
    const char *name;     /* connection name, or NULL */
    const char *user;     /* user and password come together, or both NULL */
    const char *password;
    const char *token;    /* exclusive with user/password, or NULL */
    const char *creds;    /* path of a .creds file, or NULL */
    const char *tls_ca;   /* paths of PEM files, each NULL when not given */
    const char *tls_cert; /* tls_cert and tls_key come together */
    const char *tls_key;
    int reconnect_max;         /* attempts, -1 = forever */
    int64_t reconnect_wait_ms; /* between attempts */
    int replicas;              /* JetStream copies (1..5) of the buckets and streams
                                * sagesvc creates or finds with fewer; 0: min(3, servers) */
} sage_nats_conf;

/* sage_service_conf: one entry of `services`, what to host and how. local
 * and cluster are the global sections with this service's overrides applied
 * field by field. Strings and arrays are borrowed from the config. */
typedef struct sage_service_conf {
    const char *name;      /* unique in the file */
    const char *plugin;    /* a C service: a path (contains '/' or ends in .so) or a
                            * bare name; NULL for a Python service */
    const char *python;    /* a Python service: "package.module:factory"; NULL for C */
    const char *transport; /* "local", "shm" or "nats" */
    sage_local_conf local;
    sage_cluster_conf cluster;
    const char *const *middleware; /* nmiddleware names, in call order */
    size_t nmiddleware;
    const char *const *idempotent; /* nidempotent method names that may run more than
                                    * once (retries, hedged calls): see sage_task_opts */
    size_t nidempotent;
    int line; /* line of the entry in the file, for messages */
} sage_service_conf;

/* sage_local_conf_init fills c with the defaults of section service.local.
 * Thread-safe. */
SAGE_API void sage_local_conf_init(sage_local_conf *c);

/* sage_call_conf_init fills c with the defaults of section service.call.
 * Thread-safe. */
SAGE_API void sage_call_conf_init(sage_call_conf *c);

/* sage_cluster_conf_init fills c with the defaults of section
 * service.cluster. Thread-safe. */
SAGE_API void sage_cluster_conf_init(sage_cluster_conf *c);

/* sage_nats_conf_init fills c with the defaults of section nats; the
 * servers array it points to is static. Thread-safe. */
SAGE_API void sage_nats_conf_init(sage_nats_conf *c);

/*
 * sage_config_load reads, parses and validates the YAML file at path and
 * writes the new configuration to *cp, which the caller frees with
 * sage_config_free. A missing file gives SAGE_ENOENT, an unreadable one
 * SAGE_EPERM or SAGE_ESYS, anything wrong in it SAGE_ECONFIG; the detail
 * names the path (and line, column and key). Thread-safe.
 */
SAGE_API sage_err sage_config_load(sage_config **cp, const char *path);

/*
 * sage_config_parse is sage_config_load on the len bytes at text (no NUL
 * terminator needed; the bytes are copied, not kept). filename, which may be
 * NULL, only labels error messages and sage_config_path. Empty text is a
 * valid configuration of defaults. Thread-safe.
 */
SAGE_API sage_err sage_config_parse(sage_config **cp, const char *text, size_t len,
                                   const char *filename);

/* sage_config_free releases c and every string and array it handed out.
 * No other thread may be using c. sage_config_free(NULL) does nothing. */
SAGE_API void sage_config_free(sage_config *c);

/* sage_config_path returns the path c was loaded from or the filename given
 * to sage_config_parse (NULL if none). Borrowed. Thread-safe, like every
 * accessor below: they only read an immutable config and never block. */
SAGE_API const char *sage_config_path(const sage_config *c);

/* sage_config_namespace returns the namespace ("default" unless set), which
 * scopes service names on the host and in the cluster. Borrowed. */
SAGE_API const char *sage_config_namespace(const sage_config *c);

/* sage_config_transport returns the default transport of hosted services:
 * "local", "shm" (the default) or "nats". Borrowed. */
SAGE_API const char *sage_config_transport(const sage_config *c);

/* sage_config_local returns the global section service.local, defaults
 * filled in. Borrowed; never NULL. */
SAGE_API const sage_local_conf *sage_config_local(const sage_config *c);

/* sage_config_call returns section service.call, defaults filled in.
 * Borrowed; never NULL. */
SAGE_API const sage_call_conf *sage_config_call(const sage_config *c);

/* sage_config_cluster returns the global section service.cluster (or
 * service.ray), defaults filled in. Borrowed; never NULL. */
SAGE_API const sage_cluster_conf *sage_config_cluster(const sage_config *c);

/* sage_config_nats returns section nats, defaults filled in. Borrowed;
 * never NULL. */
SAGE_API const sage_nats_conf *sage_config_nats(const sage_config *c);

/* sage_config_nservices returns how many services the file lists (0 when
 * `services` is empty or absent). */
SAGE_API size_t sage_config_nservices(const sage_config *c);

/* sage_config_service returns the i-th service in file order, or NULL when
 * i >= sage_config_nservices(c). Borrowed. */
SAGE_API const sage_service_conf *sage_config_service(const sage_config *c, size_t i);

/* sage_config_find returns the service called name, or NULL when there is
 * none. Borrowed. */
SAGE_API const sage_service_conf *sage_config_find(const sage_config *c, const char *name);

/*
 * sage_config_service_params converts the i-th service's free-form `config:`
 * mapping into a sage_value tree allocated from a (SAGE_NIL when absent) and
 * writes it to *out. Mappings become SAGE_MAP with string keys in file
 * order, sequences SAGE_ARRAY; plain scalars resolve as in YAML 1.1 (null ~
 * and empty: nil; true/false/yes/no/on/off: bool; integers in decimal, 0x,
 * 0o, 0b or leading-0 octal: int; decimals and .inf/.nan: double; anything
 * else: string), quoted scalars are always strings. The tree's memory
 * belongs to a. SAGE_EINVAL if i is out of range, SAGE_ENOMEM if a is
 * exhausted. Thread-safe for distinct arenas.
 */
SAGE_API sage_err sage_config_service_params(sage_value *out, const sage_config *c, size_t i,
                                             sage_arena *a);

#ifdef __cplusplus
}
#endif
#endif /* SAGE_CONFIG_H */
