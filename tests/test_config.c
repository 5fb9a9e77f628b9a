/* test_config.c - the YAML configuration: defaults, every key, every refusal. */
#include <math.h>
#include <pthread.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "sage/config.h"
#include "sage/value.h"

static sage_config *parse(const char *text)
{
    sage_config *c = NULL;

    ASSERT_OK(sage_config_parse(&c, text, strlen(text), "t.yaml"));
    ASSERT_TRUE(c != NULL);
    return c;
}

/* refused: text is refused with SAGE_ECONFIG and exactly this detail. */
static void refused(const char *text, const char *detail)
{
    sage_config *c = NULL;
    sage_err r = sage_config_parse(&c, text, strlen(text), "t.yaml");

    if (r != SAGE_ECONFIG)
        th_fail(__FILE__, __LINE__, "for:\n%s\ngot %s (%s), want ECONFIG", text, sage_errname(r),
                sage_errdetail());
    ASSERT_TRUE(c == NULL);
    if (strcmp(sage_errdetail(), detail) != 0)
        th_fail(__FILE__, __LINE__, "for:\n%s\n got: %s\nwant: %s", text, sage_errdetail(),
                detail);
}

struct bad {
    const char *text;
    const char *detail;
};

static void refused_all(const struct bad *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        refused(cases[i].text, cases[i].detail);
}

#define REFUSED_ALL(cases) refused_all(cases, sizeof cases / sizeof cases[0])

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ASSERT_TRUE(f != NULL);
    ASSERT_EQ(fwrite(text, 1, strlen(text), f), strlen(text));
    ASSERT_EQ(fclose(f), 0);
}

/* ------------------------------------------------------------------ cases */

static void check_default_sections(const sage_config *c)
{
    const sage_local_conf *l = sage_config_local(c);
    const sage_call_conf *k = sage_config_call(c);
    const sage_cluster_conf *cl = sage_config_cluster(c);
    const sage_nats_conf *n = sage_config_nats(c);

    ASSERT_STREQ(sage_config_namespace(c), "default");
    ASSERT_STREQ(sage_config_transport(c), "shm");
    ASSERT_EQ(l->max_workers, 10);
    ASSERT_TRUE(l->queue_timeout_ms == 30000);
    ASSERT_EQ(l->request_queue_size, 10000);
    ASSERT_TRUE(l->error_threshold == 0.5);
    ASSERT_TRUE(k->timeout_ms == 30000);
    ASSERT_EQ(k->retries, 0);
    ASSERT_TRUE(k->retry_backoff_ms == 50);
    ASSERT_TRUE(k->idle_close_ms == 60000);
    ASSERT_TRUE(cl->cpus == 1.0);
    ASSERT_EQ(cl->memory, 0);
    ASSERT_EQ(cl->detached, 0);
    ASSERT_EQ(cl->max_restarts, 3);
    ASSERT_EQ(cl->replicas, 1);
    ASSERT_EQ(cl->durable, 0);
    ASSERT_TRUE(cl->replace_after_ms == 10000);
    ASSERT_TRUE(cl->probe_interval_ms == 1000);
    ASSERT_TRUE(cl->probe_timeout_ms == 10000);
    ASSERT_EQ(n->replicas, 0);
    ASSERT_EQ(n->nservers, 1);
    ASSERT_STREQ(n->servers[0], "nats://127.0.0.1:4222");
    ASSERT_TRUE(n->name == NULL && n->user == NULL && n->password == NULL);
    ASSERT_TRUE(n->token == NULL && n->creds == NULL);
    ASSERT_TRUE(n->tls_ca == NULL && n->tls_cert == NULL && n->tls_key == NULL);
    ASSERT_EQ(n->reconnect_max, 60);
    ASSERT_TRUE(n->reconnect_wait_ms == 2000);
    ASSERT_EQ(sage_config_nservices(c), 0);
    ASSERT_TRUE(sage_config_service(c, 0) == NULL);
    ASSERT_TRUE(sage_config_find(c, "kv") == NULL);
}

static void t_defaults(void)
{
    static const char *const empties[] = {
        "",
        "# nothing but a comment\n",
        "---\n",
        "~\n",
        "{}\n",
        "service:\n",
        "service:\n  local:\n  cluster:\n  call:   # the seed leaves this blank\n",
        "nats:\nservices:\n",
        "services: []\n",
    };
    sage_local_conf l;
    sage_call_conf k;
    sage_cluster_conf cl;
    sage_nats_conf n;
    sage_config *c = NULL;

    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        c = parse(empties[i]);
        check_default_sections(c);
        ASSERT_STREQ(sage_config_path(c), "t.yaml");
        sage_config_free(c);
    }
    ASSERT_OK(sage_config_parse(&c, NULL, 0, NULL));
    ASSERT_TRUE(sage_config_path(c) == NULL);
    check_default_sections(c);
    sage_config_free(c);
    sage_config_free(NULL);

    /* The _init functions give the same defaults. */
    sage_local_conf_init(&l);
    sage_call_conf_init(&k);
    sage_cluster_conf_init(&cl);
    sage_nats_conf_init(&n);
    ASSERT_EQ(l.max_workers, 10);
    ASSERT_TRUE(l.queue_timeout_ms == 30000);
    ASSERT_EQ(l.request_queue_size, 10000);
    ASSERT_TRUE(k.timeout_ms == 30000 && k.retries == 0 && k.retry_backoff_ms == 50);
    ASSERT_TRUE(k.idle_close_ms == 60000);
    ASSERT_TRUE(cl.cpus == 1.0 && cl.memory == 0 && !cl.detached && !cl.durable);
    ASSERT_TRUE(cl.max_restarts == 3 && cl.replicas == 1);
    ASSERT_TRUE(cl.replace_after_ms == 10000 && cl.probe_interval_ms == 1000 &&
                cl.probe_timeout_ms == 10000);
    ASSERT_EQ(n.replicas, 0);
    ASSERT_EQ(n.nservers, 1);
    ASSERT_STREQ(n.servers[0], "nats://127.0.0.1:4222");
    ASSERT_TRUE(n.reconnect_max == 60 && n.reconnect_wait_ms == 2000 && n.user == NULL);
}

static const char full[] =
    "namespace: demo-1\n"
    "transport: nats\n"
    "nats:\n"
    "  servers: [nats://a:4222, 'tls://b:4443']\n"
    "  name: sagesvc\n"
    "  user: alice\n"
    "  password: 12345\n"
    "  creds: /path/user.creds\n"
    "  tls: {ca: ca.pem, cert: c.pem, key: k.pem}\n"
    "  reconnect: {max: -1, wait: 0.5}\n"
    "  replicas: 5\n"
    "service:\n"
    "  local:\n"
    "    max_workers: 1024\n"
    "    queue_timeout: 0\n"
    "    request_queue_size: 8388607\n"
    "    error_threshold: 0.25\n"
    "  cluster:\n"
    "    resources: {CPU: 0.5, memory: 512MiB}\n"
    "    lifetime: detached\n"
    "    max_restarts: 0\n"
    "    replicas: 1000\n"
    "    delivery: durable\n"
    "    replace_after: 86400\n"
    "    probe_interval: 0.05\n"
    "    probe_timeout: 3600\n"
    "  call:\n"
    "    timeout: 86400\n"
    "    retries: 100\n"
    "    retry_backoff: 60\n"
    "    idle_close: 0\n";

static void t_every_key(void)
{
    sage_config *c = parse(full);
    const sage_local_conf *l = sage_config_local(c);
    const sage_call_conf *k = sage_config_call(c);
    const sage_cluster_conf *cl = sage_config_cluster(c);
    const sage_nats_conf *n = sage_config_nats(c);

    ASSERT_STREQ(sage_config_namespace(c), "demo-1");
    ASSERT_STREQ(sage_config_transport(c), "nats");
    ASSERT_EQ(n->nservers, 2);
    ASSERT_STREQ(n->servers[0], "nats://a:4222");
    ASSERT_STREQ(n->servers[1], "tls://b:4443");
    ASSERT_STREQ(n->name, "sagesvc");
    ASSERT_STREQ(n->user, "alice");
    ASSERT_STREQ(n->password, "12345"); /* a plain number, taken as written */
    ASSERT_TRUE(n->token == NULL);
    ASSERT_STREQ(n->creds, "/path/user.creds");
    ASSERT_STREQ(n->tls_ca, "ca.pem");
    ASSERT_STREQ(n->tls_cert, "c.pem");
    ASSERT_STREQ(n->tls_key, "k.pem");
    ASSERT_EQ(n->reconnect_max, -1);
    ASSERT_TRUE(n->reconnect_wait_ms == 500);
    ASSERT_EQ(n->replicas, 5);
    ASSERT_EQ(l->max_workers, 1024);
    ASSERT_TRUE(l->queue_timeout_ms == 0);
    ASSERT_EQ(l->request_queue_size, 8388607);
    ASSERT_TRUE(l->error_threshold == 0.25);
    ASSERT_TRUE(cl->cpus == 0.5);
    ASSERT_EQ(cl->memory, 512u << 20);
    ASSERT_EQ(cl->detached, 1);
    ASSERT_EQ(cl->max_restarts, 0);
    ASSERT_EQ(cl->replicas, 1000);
    ASSERT_EQ(cl->durable, 1);
    ASSERT_TRUE(cl->replace_after_ms == 86400000);
    ASSERT_TRUE(cl->probe_interval_ms == 50);
    ASSERT_TRUE(cl->probe_timeout_ms == 3600000);
    ASSERT_TRUE(k->timeout_ms == 86400000);
    ASSERT_EQ(k->retries, 100);
    ASSERT_TRUE(k->retry_backoff_ms == 60000);
    ASSERT_TRUE(k->idle_close_ms == 0);
    sage_config_free(c);

    /* A single server string; a token; floats where numbers go; ints
     * written as floats without a fraction. */
    c = parse("nats: {servers: nats://one:4222, token: abc, reconnect: {max: 5.0, wait: 3}}\n"
              "service: {local: {queue_timeout: 2.5, max_workers: 4.0},\n"
              "          call: {timeout: 0.001, retry_backoff: 0}}\n");
    n = sage_config_nats(c);
    ASSERT_EQ(n->nservers, 1);
    ASSERT_STREQ(n->servers[0], "nats://one:4222");
    ASSERT_STREQ(n->token, "abc");
    ASSERT_EQ(n->reconnect_max, 5);
    ASSERT_TRUE(n->reconnect_wait_ms == 3000);
    ASSERT_TRUE(sage_config_local(c)->queue_timeout_ms == 2500);
    ASSERT_EQ(sage_config_local(c)->max_workers, 4);
    ASSERT_TRUE(sage_config_call(c)->timeout_ms == 1);
    sage_config_free(c);

    /* probes off; the smallest re-placement delay; replicas of 1 */
    c = parse("nats: {replicas: 1}\n"
              "service: {cluster: {probe_interval: 0, replace_after: 5, probe_timeout: 0.1}}\n");
    ASSERT_EQ(sage_config_nats(c)->replicas, 1);
    ASSERT_TRUE(sage_config_cluster(c)->probe_interval_ms == 0);
    ASSERT_TRUE(sage_config_cluster(c)->replace_after_ms == 5000);
    ASSERT_TRUE(sage_config_cluster(c)->probe_timeout_ms == 100);
    sage_config_free(c);
}

static void t_example_file(void)
{
    sage_config *c = NULL;
    const sage_service_conf *kv, *text;

    ASSERT_OK(sage_config_load(&c, SAGE_SOURCE_DIR "/examples/services.yaml"));
    ASSERT_STREQ(sage_config_path(c), SAGE_SOURCE_DIR "/examples/services.yaml");
    ASSERT_STREQ(sage_config_namespace(c), "demo");
    ASSERT_EQ(sage_config_nservices(c), 2);
    kv = sage_config_find(c, "kv");
    text = sage_config_find(c, "text");
    ASSERT_TRUE(kv == sage_config_service(c, 0) && text == sage_config_service(c, 1));
    ASSERT_STREQ(kv->plugin, "kv");
    ASSERT_EQ(kv->cluster.replicas, 3);
    ASSERT_TRUE(kv->cluster.cpus == 2.0);
    ASSERT_EQ(kv->cluster.memory, 256u << 20);
    ASSERT_STREQ(text->transport, "shm");
    sage_config_free(c);
}

static void t_services_merge(void)
{
    sage_config *c = parse("transport: local\n"
                           "service:\n"
                           "  local: {max_workers: 8, queue_timeout: 10}\n"
                           "  ray:\n"
                           "    resources: {CPU: 2, memory: 1GiB}\n"
                           "    max_restarts: 5\n"
                           "services:\n"
                           "  - name: kv\n"
                           "    plugin: kv\n"
                           "    transport: nats\n"
                           "    max_workers: 4\n"
                           "    request_queue_size: 1000\n"
                           "    cluster: {replicas: 3, resources: {CPU: 4}, lifetime: detached}\n"
                           "    middleware: [logging, deadline]\n"
                           "  - name: text_2\n"
                           "    plugin: ./plugins/libtext.so\n"
                           "    ray: {delivery: durable}\n"
                           "    middleware: []\n"
                           "  - {name: z, plugin: text.so, queue_timeout: 0.25}\n");
    const sage_service_conf *kv = sage_config_service(c, 0), *t = sage_config_service(c, 1);
    const sage_service_conf *z = sage_config_service(c, 2);

    ASSERT_EQ(sage_config_nservices(c), 3);
    ASSERT_TRUE(sage_config_service(c, 3) == NULL);
    ASSERT_TRUE(sage_config_find(c, "text_2") == t);
    ASSERT_TRUE(sage_config_find(c, "zz") == NULL);
    ASSERT_TRUE(sage_config_find(c, NULL) == NULL);

    ASSERT_STREQ(kv->name, "kv");
    ASSERT_STREQ(kv->plugin, "kv");
    ASSERT_STREQ(kv->transport, "nats");
    ASSERT_EQ(kv->line, 8);
    ASSERT_EQ(kv->local.max_workers, 4);          /* own */
    ASSERT_TRUE(kv->local.queue_timeout_ms == 10000); /* global */
    ASSERT_EQ(kv->local.request_queue_size, 1000);
    ASSERT_EQ(kv->cluster.replicas, 3);
    ASSERT_TRUE(kv->cluster.cpus == 4.0);
    ASSERT_EQ(kv->cluster.memory, 1u << 30); /* field by field: memory stays global */
    ASSERT_EQ(kv->cluster.detached, 1);
    ASSERT_EQ(kv->cluster.max_restarts, 5);
    ASSERT_EQ(kv->nmiddleware, 2);
    ASSERT_STREQ(kv->middleware[0], "logging");
    ASSERT_STREQ(kv->middleware[1], "deadline");

    ASSERT_STREQ(t->plugin, "./plugins/libtext.so");
    ASSERT_STREQ(t->transport, "local"); /* the top-level transport */
    ASSERT_EQ(t->line, 15);
    ASSERT_EQ(t->local.max_workers, 8);
    ASSERT_EQ(t->local.request_queue_size, 10000);
    ASSERT_EQ(t->cluster.durable, 1);
    ASSERT_EQ(t->cluster.replicas, 1);
    ASSERT_EQ(t->nmiddleware, 0);

    ASSERT_STREQ(z->plugin, "text.so");
    ASSERT_TRUE(z->local.queue_timeout_ms == 250);
    ASSERT_EQ(z->nmiddleware, 0);
    ASSERT_TRUE(z->middleware == NULL);
    ASSERT_EQ(z->line, 19);

    /* The globals themselves are untouched by the overrides. */
    ASSERT_EQ(sage_config_local(c)->max_workers, 8);
    ASSERT_EQ(sage_config_cluster(c)->replicas, 1);
    ASSERT_TRUE(sage_config_cluster(c)->cpus == 2.0);
    sage_config_free(c);

    /* `services` before `service` in the file: overrides still start from
     * the globals. */
    c = parse("services:\n"
              "  - {name: a, plugin: a}\n"
              "service: {local: {max_workers: 7}}\n");
    ASSERT_EQ(sage_config_service(c, 0)->local.max_workers, 7);
    sage_config_free(c);

    /* a Python service names its factory instead of a plugin */
    c = parse("services:\n"
              "  - {name: p, python: 'pkg.mod_1.sub:Factory'}\n"
              "  - {name: q, python: 'mod:make.service'}\n");
    ASSERT_STREQ(sage_config_service(c, 0)->python, "pkg.mod_1.sub:Factory");
    ASSERT_TRUE(sage_config_service(c, 0)->plugin == NULL);
    ASSERT_STREQ(sage_config_service(c, 1)->python, "mod:make.service");
    sage_config_free(c);
}

static void t_memory_units(void)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } ok[] = {
        {"0", 0},
        {"4096", 4096},
        {"1e6", 1000000},
        {"1B", 1},
        {"2KB", 2000},
        {"3MB", 3000000},
        {"4GB", 4000000000ull},
        {"1TB", 1000000000000ull},
        {"2KiB", 2048},
        {"512MiB", 512ull << 20},
        {"512 MiB", 512ull << 20},
        {"3GiB", 3ull << 30},
        {"1TiB", 1ull << 40},
        {"1.5KiB", 1536},
        {"0.5GiB", 512ull << 20},
        {"1.0001KB", 1000},    /* rounds down to a whole byte */
        {"\"64MiB\"", 64ull << 20}, /* quoted: still a size with a unit */
        {"16777215TiB", 16777215ull << 40},
        {"9223372036854775807", INT64_MAX},
    };
    static const struct bad bad[] = {
        {"service: {cluster: {resources: {memory: 512mb}}}\n",
         "t.yaml:1:41: service.cluster.resources.memory: expected a byte count (an integer, or a "
         "number with a unit: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), got '512mb'"},
        {"service: {cluster: {resources: {memory: -1}}}\n",
         "t.yaml:1:41: service.cluster.resources.memory: expected a byte count (an integer, or a "
         "number with a unit: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), got '-1'"},
        {"service: {cluster: {resources: {memory: 1.5}}}\n",
         "t.yaml:1:41: service.cluster.resources.memory: expected a byte count (an integer, or a "
         "number with a unit: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), got '1.5'"},
        {"service: {cluster: {resources: {memory: \"512\"}}}\n",
         "t.yaml:1:41: service.cluster.resources.memory: expected a byte count (an integer, or a "
         "number with a unit: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), got a quoted string "
         "\"512\""},
        {"service: {cluster: {resources: {memory: 16777216.0001TiB}}}\n",
         "t.yaml:1:41: service.cluster.resources.memory: expected a byte count (an integer, or a "
         "number with a unit: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), got '16777216.0001TiB'"},
        {"service: {cluster: {resources: {memory: 16777216TiB}}}\n",
         "t.yaml:1:41: service.cluster.resources.memory: expected a byte count (an integer, or a "
         "number with a unit: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), got '16777216TiB'"},
        {"service: {cluster: {resources: {memory: 18446744073709551616B}}}\n",
         "t.yaml:1:41: service.cluster.resources.memory: expected a byte count (an integer, or a "
         "number with a unit: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), got "
         "'18446744073709551616B'"},
        {"service: {cluster: {resources: {memory: MiB}}}\n",
         "t.yaml:1:41: service.cluster.resources.memory: expected a byte count (an integer, or a "
         "number with a unit: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), got 'MiB'"},
        {"service: {cluster: {resources: {memory: 1.KiB}}}\n",
         "t.yaml:1:41: service.cluster.resources.memory: expected a byte count (an integer, or a "
         "number with a unit: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), got '1.KiB'"},
    };

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char text[128];
        sage_config *c;

        snprintf(text, sizeof text, "service: {cluster: {resources: {memory: %s}}}\n",
                 ok[i].text);
        c = parse(text);
        if (sage_config_cluster(c)->memory != ok[i].bytes)
            th_fail(__FILE__, __LINE__, "memory %s: got %llu, want %llu", ok[i].text,
                    (unsigned long long)sage_config_cluster(c)->memory,
                    (unsigned long long)ok[i].bytes);
        sage_config_free(c);
    }
    REFUSED_ALL(bad);
}

/* Every numeric key at both ends of its range and with the wrong type. */
static void t_ranges(void)
{
    static const struct bad bad[] = {
        {"service:\n  local:\n    max_workers: 0\n",
         "t.yaml:3:18: service.local.max_workers: expected an integer in 1..1024, got '0'"},
        {"service:\n  local:\n    max_workers: 1025\n",
         "t.yaml:3:18: service.local.max_workers: expected an integer in 1..1024, got '1025'"},
        {"service:\n  local:\n    queue_timeout: -1\n",
         "t.yaml:3:20: service.local.queue_timeout: expected a number in 0..86400, got '-1'"},
        {"service:\n  local:\n    queue_timeout: 86400.5\n",
         "t.yaml:3:20: service.local.queue_timeout: expected a number in 0..86400, got "
         "'86400.5'"},
        {"service:\n  local:\n    request_queue_size: 0\n",
         "t.yaml:3:25: service.local.request_queue_size: expected an integer in 1..8388607, got "
         "'0'"},
        {"service:\n  local:\n    request_queue_size: 8388608\n",
         "t.yaml:3:25: service.local.request_queue_size: expected an integer in 1..8388607, got "
         "'8388608'"},
        {"service:\n  local:\n    error_threshold: 1.5\n",
         "t.yaml:3:22: service.local.error_threshold: expected a number in 0..1, got '1.5'"},
        {"service:\n  call:\n    timeout: 0\n",
         "t.yaml:3:14: service.call.timeout: expected a number > 0 and <= 86400, got '0'"},
        {"service:\n  call:\n    timeout: 86401\n",
         "t.yaml:3:14: service.call.timeout: expected a number > 0 and <= 86400, got '86401'"},
        {"service:\n  call:\n    retries: -1\n",
         "t.yaml:3:14: service.call.retries: expected an integer in 0..100, got '-1'"},
        {"service:\n  call:\n    retries: 101\n",
         "t.yaml:3:14: service.call.retries: expected an integer in 0..100, got '101'"},
        {"service:\n  call:\n    retry_backoff: -0.1\n",
         "t.yaml:3:20: service.call.retry_backoff: expected a number in 0..60, got '-0.1'"},
        {"service:\n  call:\n    retry_backoff: 61\n",
         "t.yaml:3:20: service.call.retry_backoff: expected a number in 0..60, got '61'"},
        {"service:\n  call:\n    idle_close: -1\n",
         "t.yaml:3:17: service.call.idle_close: expected a number in 0..86400, got '-1'"},
        {"service:\n  call:\n    idle_close: 1e9\n",
         "t.yaml:3:17: service.call.idle_close: expected a number in 0..86400, got '1e9'"},
        {"service:\n  cluster:\n    resources: {CPU: 0}\n",
         "t.yaml:3:22: service.cluster.resources.CPU: expected a number > 0 and <= 65536, got "
         "'0'"},
        {"service:\n  cluster:\n    resources: {CPU: -2}\n",
         "t.yaml:3:22: service.cluster.resources.CPU: expected a number > 0 and <= 65536, got "
         "'-2'"},
        {"service:\n  cluster:\n    resources: {CPU: .inf}\n",
         "t.yaml:3:22: service.cluster.resources.CPU: expected a number > 0 and <= 65536, got "
         "'.inf'"},
        {"service:\n  cluster:\n    resources: {CPU: .nan}\n",
         "t.yaml:3:22: service.cluster.resources.CPU: expected a number > 0 and <= 65536, got "
         "'.nan'"},
        {"service:\n  cluster:\n    max_restarts: -1\n",
         "t.yaml:3:19: service.cluster.max_restarts: expected an integer in 0..1000, got '-1'"},
        {"service:\n  cluster:\n    max_restarts: 1001\n",
         "t.yaml:3:19: service.cluster.max_restarts: expected an integer in 0..1000, got "
         "'1001'"},
        {"service:\n  cluster:\n    replicas: 0\n",
         "t.yaml:3:15: service.cluster.replicas: expected an integer in 1..1000, got '0'"},
        {"service:\n  cluster:\n    replicas: 1001\n",
         "t.yaml:3:15: service.cluster.replicas: expected an integer in 1..1000, got '1001'"},
        {"nats:\n  replicas: 6\n",
         "t.yaml:2:13: nats.replicas: expected an integer in 0..5, got '6'"},
        {"nats:\n  replicas: -1\n",
         "t.yaml:2:13: nats.replicas: expected an integer in 0..5, got '-1'"},
        {"service:\n  cluster:\n    replace_after: 4.9\n",
         "t.yaml:3:20: service.cluster.replace_after: expected a number in 5..86400, got '4.9'"},
        {"service:\n  cluster:\n    probe_interval: 0.01\n",
         "t.yaml:3:21: service.cluster.probe_interval: expected 0 (no probes) or a number in "
         "0.05..3600, got '0.01'"},
        {"service:\n  cluster:\n    probe_interval: 3601\n",
         "t.yaml:3:21: service.cluster.probe_interval: expected 0 (no probes) or a number in "
         "0.05..3600, got '3601'"},
        {"service:\n  cluster:\n    probe_interval: fast\n",
         "t.yaml:3:21: service.cluster.probe_interval: expected 0 (no probes) or a number in "
         "0.05..3600, got 'fast'"},
        {"service:\n  cluster:\n    probe_timeout: 0\n",
         "t.yaml:3:20: service.cluster.probe_timeout: expected a number in 0.1..3600, got '0'"},
        {"nats:\n  reconnect: {max: -2}\n",
         "t.yaml:2:20: nats.reconnect.max: expected an integer in -1..1000000, got '-2'"},
        {"nats:\n  reconnect: {max: 1000001}\n",
         "t.yaml:2:20: nats.reconnect.max: expected an integer in -1..1000000, got '1000001'"},
        {"nats:\n  reconnect: {wait: -1}\n",
         "t.yaml:2:21: nats.reconnect.wait: expected a number in 0..3600, got '-1'"},
        {"nats:\n  reconnect: {wait: 3601}\n",
         "t.yaml:2:21: nats.reconnect.wait: expected a number in 0..3600, got '3601'"},
        {"services:\n  - {name: a, plugin: a, max_workers: 2000}\n",
         "t.yaml:2:39: services[0].max_workers: expected an integer in 1..1024, got '2000'"},
        {"services:\n  - {name: a, plugin: a, queue_timeout: -3}\n",
         "t.yaml:2:41: services[0].queue_timeout: expected a number in 0..86400, got '-3'"},
        {"services:\n  - {name: a, plugin: a, request_queue_size: 0}\n",
         "t.yaml:2:46: services[0].request_queue_size: expected an integer in 1..8388607, got "
         "'0'"},
        {"services:\n  - {name: a, plugin: a, ray: {replicas: 0}}\n",
         "t.yaml:2:42: services[0].ray.replicas: expected an integer in 1..1000, got '0'"},
    };

    REFUSED_ALL(bad);
}

static void t_types(void)
{
    static const struct bad bad[] = {
        /* The example of the specification, at line 7, column 18. */
        {"# a comment\n\nnamespace: demo\n\nservice:\n  local:\n    max_workers: ten\n",
         "t.yaml:7:18: service.local.max_workers: expected an integer in 1..1024, got 'ten'"},
        {"service:\n  local:\n    max_workers: \"4\"\n",
         "t.yaml:3:18: service.local.max_workers: expected an integer in 1..1024, got a quoted "
         "string \"4\""},
        {"service:\n  local:\n    max_workers: '4'\n",
         "t.yaml:3:18: service.local.max_workers: expected an integer in 1..1024, got a quoted "
         "string \"4\""},
        {"service:\n  local:\n    max_workers: 4.5\n",
         "t.yaml:3:18: service.local.max_workers: expected an integer in 1..1024, got '4.5'"},
        {"service:\n  local:\n    max_workers: true\n",
         "t.yaml:3:18: service.local.max_workers: expected an integer in 1..1024, got 'true'"},
        {"service:\n  local:\n    max_workers:\n",
         "t.yaml:3:17: service.local.max_workers: expected an integer in 1..1024, got an empty "
         "value"},
        {"service:\n  local:\n    max_workers: [4]\n",
         "t.yaml:3:18: service.local.max_workers: expected an integer in 1..1024, got a "
         "sequence"},
        {"service:\n  local:\n    max_workers: {n: 4}\n",
         "t.yaml:3:18: service.local.max_workers: expected an integer in 1..1024, got a mapping"},
        {"service:\n  local:\n    max_workers: 99999999999999999999999\n",
         "t.yaml:3:18: service.local.max_workers: expected an integer in 1..1024, got "
         "'99999999999999999999999'"},
        {"service:\n  local:\n    queue_timeout: yes\n",
         "t.yaml:3:20: service.local.queue_timeout: expected a number in 0..86400, got 'yes'"},
        {"service:\n  local:\n    queue_timeout: \"30\"\n",
         "t.yaml:3:20: service.local.queue_timeout: expected a number in 0..86400, got a quoted "
         "string \"30\""},
        {"service:\n  call:\n    timeout: 30s\n",
         "t.yaml:3:14: service.call.timeout: expected a number > 0 and <= 86400, got '30s'"},
        {"service:\n  call:\n    retries: 1.5\n",
         "t.yaml:3:14: service.call.retries: expected an integer in 0..100, got '1.5'"},
        {"namespace: a b\n",
         "t.yaml:1:12: namespace: expected a name of 1..64 characters from [A-Za-z0-9_-], got "
         "'a b'"},
        {"namespace: \"\"\n",
         "t.yaml:1:12: namespace: expected a name of 1..64 characters from [A-Za-z0-9_-], got a "
         "quoted string \"\""},
        {"namespace: "
         "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcde\n",
         "t.yaml:1:12: namespace: expected a name of 1..64 characters from [A-Za-z0-9_-], got "
         "'abcdefghijabcdefghijabcdefghijabcdefghij...'"},
        {"namespace: [a]\n",
         "t.yaml:1:12: namespace: expected a name of 1..64 characters from [A-Za-z0-9_-], got a "
         "sequence"},
        {"transport: tcp\n",
         "t.yaml:1:12: transport: expected one of local, shm, nats, got 'tcp'"},
        {"transport: shmm\n",
         "t.yaml:1:12: transport: expected one of local, shm, nats, got 'shmm' (did you mean "
         "'shm'?)"},
        {"service:\n  cluster:\n    lifetime: detach\n",
         "t.yaml:3:15: service.cluster.lifetime: expected one of owned, detached, got 'detach' "
         "(did you mean 'detached'?)"},
        {"service:\n  cluster:\n    delivery: at_least_once\n",
         "t.yaml:3:15: service.cluster.delivery: expected one of at_most_once, durable, got "
         "'at_least_once'"},
        {"service: 5\n", "t.yaml:1:10: service: expected a mapping, got '5'"},
        {"service:\n  local: [1, 2]\n",
         "t.yaml:2:10: service.local: expected a mapping, got a sequence"},
        {"nats:\n  servers: []\n",
         "t.yaml:2:12: nats.servers: expected a server URL or a non-empty sequence of them, got "
         "an empty sequence"},
        {"nats:\n  servers: {a: b}\n",
         "t.yaml:2:12: nats.servers: expected a server URL or a non-empty sequence of them, got "
         "a mapping"},
        {"nats:\n  servers: [nats://a:1, 'nats://b c']\n",
         "t.yaml:2:25: nats.servers[1]: expected a server URL (no spaces), got a quoted string "
         "\"nats://b c\""},
        {"nats:\n  servers: [nats://a:1, [x]]\n",
         "t.yaml:2:25: nats.servers[1]: expected a server URL (no spaces), got a sequence"},
        {"nats:\n  name: {a: 1}\n", "t.yaml:2:9: nats.name: expected a string, got a mapping"},
        {"nats:\n  creds: ~\n", "t.yaml:2:10: nats.creds: expected a string, got '~'"},
        {"nats:\n  tls: {ca: \"a\\0b\"}\n",
         "t.yaml:2:13: nats.tls.ca: expected a string, got one with a NUL byte"},
        {"nats:\n  user: alice\n",
         "t.yaml:2:9: nats.user: 'user' needs 'password' beside it"},
        {"nats:\n  password: pw\n",
         "t.yaml:2:13: nats.password: 'password' needs 'user' beside it"},
        {"nats:\n  user: a\n  password: b\n  token: c\n",
         "t.yaml:4:10: nats.token: 'token' and 'user'/'password' exclude each other"},
        {"nats:\n  tls: {cert: c.pem}\n",
         "t.yaml:2:15: nats.tls.cert: 'cert' needs 'key' beside it"},
        {"nats:\n  tls: {key: k.pem}\n",
         "t.yaml:2:14: nats.tls.key: 'key' needs 'cert' beside it"},
        {"services: {kv: {plugin: kv}}\n",
         "t.yaml:1:11: services: expected a sequence of services, got a mapping"},
        {"services:\n  - kv\n",
         "t.yaml:2:5: services[0]: expected a mapping describing a service, got 'kv'"},
        {"services:\n  - plugin: kv\n", "t.yaml:2:5: services[0]: missing key 'name'"},
        {"services:\n  - name: kv\n",
         "t.yaml:2:5: services[0]: missing key 'plugin' (a C service) or 'python' (a Python "
         "one)"},
        {"services:\n  - {name: kv, plugin: kv, python: 'a.b:c'}\n",
         "t.yaml:2:5: services[0]: 'plugin' and 'python' exclude each other: a service is one or "
         "the other"},
        {"services:\n  - {name: kv, python: 'a.b'}\n",
         "t.yaml:2:24: services[0].python: expected a Python factory as package.module:callable, "
         "got a quoted string \"a.b\""},
        {"services:\n  - {name: kv, python: 'a..b:c'}\n",
         "t.yaml:2:24: services[0].python: expected a Python factory as package.module:callable, "
         "got a quoted string \"a..b:c\""},
        {"services:\n  - {name: kv, python: 'a.b:1c'}\n",
         "t.yaml:2:24: services[0].python: expected a Python factory as package.module:callable, "
         "got a quoted string \"a.b:1c\""},
        {"services:\n  - {name: k.v, plugin: kv}\n",
         "t.yaml:2:12: services[0].name: expected a name of 1..64 characters from [A-Za-z0-9_-], "
         "got 'k.v'"},
        {"services:\n  - {name: kv, plugin: 'k v'}\n",
         "t.yaml:2:24: services[0].plugin: expected a plugin path (containing '/' or ending in "
         ".so) or a plugin name of [A-Za-z0-9_-], got a quoted string \"k v\""},
        {"services:\n  - {name: kv, plugin: }\n",
         "t.yaml:2:24: services[0].plugin: expected a plugin path (containing '/' or ending in "
         ".so) or a plugin name of [A-Za-z0-9_-], got an empty value"},
        {"services:\n  - {name: kv, plugin: kv, transport: udp}\n",
         "t.yaml:2:39: services[0].transport: expected one of local, shm, nats, got 'udp'"},
        {"services:\n  - {name: kv, plugin: kv, middleware: logging}\n",
         "t.yaml:2:40: services[0].middleware: expected a sequence of middleware names, got "
         "'logging'"},
        {"services:\n  - {name: kv, plugin: kv, middleware: [logging, 'a b']}\n",
         "t.yaml:2:50: services[0].middleware[1]: expected a name of 1..64 characters from "
         "[A-Za-z0-9_-], got a quoted string \"a b\""},
        {"services:\n  - {name: kv, plugin: kv, config: [1, 2]}\n",
         "t.yaml:2:36: services[0].config: expected a mapping, got a sequence"},
        {"services:\n  - {name: kv, plugin: kv, config: {a: {b: [1, 99999999999999999999]}}}\n",
         "t.yaml:2:48: services[0].config.a.b[1]: number '99999999999999999999' is out of range "
         "(integers are 64-bit, floats double)"},
        {"services:\n  - {name: kv, plugin: kv, config: {f: 1e999}}\n",
         "t.yaml:2:40: services[0].config.f: number '1e999' is out of range (integers are "
         "64-bit, floats double)"},
    };

    REFUSED_ALL(bad);
}

static void t_unknown_keys(void)
{
    static const struct bad bad[] = {
        {"service:\n  local:\n    max_worker: 4\n",
         "t.yaml:3:5: service.local.max_worker: unknown key 'max_worker' in service.local (did "
         "you mean 'max_workers'?)"},
        {"service:\n  local:\n    threads: 4\n",
         "t.yaml:3:5: service.local.threads: unknown key 'threads' in service.local"},
        {"namespce: demo\n",
         "t.yaml:1:1: namespce: unknown key 'namespce' at the top level (did you mean "
         "'namespace'?)"},
        {"servces: []\n",
         "t.yaml:1:1: servces: unknown key 'servces' at the top level (did you mean "
         "'services'?)"},
        {"service:\n  rya: {}\n",
         "t.yaml:2:3: service.rya: unknown key 'rya' in service (did you mean 'ray'?)"},
        {"service:\n  cluster:\n    resources: {cpu: 2}\n",
         "t.yaml:3:17: service.cluster.resources.cpu: unknown key 'cpu' in "
         "service.cluster.resources (did you mean 'CPU'?)"},
        {"service:\n  cluster:\n    resources: {GPU: 1}\n",
         "t.yaml:3:17: service.cluster.resources.GPU: unknown key 'GPU' in "
         "service.cluster.resources (did you mean 'CPU'?)"},
        {"nats:\n  reconnect: {retries: 3}\n",
         "t.yaml:2:15: nats.reconnect.retries: unknown key 'retries' in nats.reconnect"},
        {"services:\n  - {name: a, plugin: a, replica: 2}\n",
         "t.yaml:2:26: services[0].replica: unknown key 'replica' in services[0]"},
        {"services:\n  - {name: a, plugin: a, cluster: {replica: 2}}\n",
         "t.yaml:2:36: services[0].cluster.replica: unknown key 'replica' in "
         "services[0].cluster (did you mean 'replicas'?)"},
        {"x: 1\n", "t.yaml:1:1: x: unknown key 'x' at the top level"},
    };

    REFUSED_ALL(bad);
}

static void t_ray_alias(void)
{
    static const struct bad bad[] = {
        {"service:\n  cluster: {replicas: 2}\n  ray: {replicas: 3}\n",
         "t.yaml:3:3: service.ray: 'cluster' and 'ray' name the same section; give only one"},
        {"service:\n  ray: {}\n  cluster: {}\n",
         "t.yaml:3:3: service.cluster: 'ray' and 'cluster' name the same section; give only one"},
        {"services:\n  - {name: a, plugin: a, ray: {}, cluster: {}}\n",
         "t.yaml:2:35: services[0].cluster: 'ray' and 'cluster' name the same section; give only "
         "one"},
    };
    sage_config *c = parse("service:\n"
                           "  ray:\n"
                           "    resources: {CPU: 2}\n"
                           "    lifetime: detached\n"
                           "    max_restarts: 3\n");

    ASSERT_TRUE(sage_config_cluster(c)->cpus == 2.0);
    ASSERT_EQ(sage_config_cluster(c)->detached, 1);
    ASSERT_EQ(sage_config_cluster(c)->max_restarts, 3);
    sage_config_free(c);
    REFUSED_ALL(bad);
}

static void t_structure(void)
{
    static const struct bad bad[] = {
        {"service:\n  local:\n    max_workers: 4\n    max_workers: 5\n",
         "t.yaml:4:5: service.local.max_workers: duplicate key 'max_workers' (first at 3:5)"},
        {"a: 1\nservice: {}\nnamespace: x\nservice: {}\n",
         "t.yaml:4:1: service: duplicate key 'service' (first at 2:1)"},
        {"services:\n  - {name: a, plugin: a, config: {k: 1, j: 2, k: 3}}\n",
         "t.yaml:2:47: services[0].config.k: duplicate key 'k' (first at 2:35)"},
        {"services:\n  - {name: kv, plugin: kv}\n  - {name: x, plugin: x}\n"
         "  - {name: kv, plugin: other}\n",
         "t.yaml:4:12: services[2].name: duplicate service name 'kv' (first at line 2)"},
        {"- a\n- b\n", "t.yaml:1:1: document: expected a mapping at the top level, got a sequence"},
        {"just text\n", "t.yaml:1:1: document: expected a mapping at the top level, got 'just "
                        "text'"},
        {"base: &b {max_workers: 4}\n",
         "t.yaml:1:7: base: anchors (&b) are not supported; write the values out"},
        {"service:\n  local: &l {max_workers: 4}\n  call: *l\n",
         "t.yaml:2:10: service.local: anchors (&l) are not supported; write the values out"},
        {"services:\n  - {name: a, plugin: a, config: {x: *nowhere}}\n",
         "t.yaml:2:38: services[0].config.x: aliases (*nowhere) are not supported; write the "
         "value out"},
        {"service:\n  local:\n    max_workers: !!int 4\n",
         "t.yaml:3:18: service.local.max_workers: explicit tags (!!int) are not supported"},
        {"service: !custom {}\n",
         "t.yaml:1:10: service: explicit tags (!custom) are not supported"},
        {"? [a, b]\n: c\n", "t.yaml:1:3: document: a key must be a scalar"},
        {"namespace: a\n---\nnamespace: b\n",
         "t.yaml:2:1: document: a second YAML document; a config file holds one"},
        /* Syntax errors carry libyaml's own position and words. */
        {"service:\n  local:\n    max_workers: 4\n   bad: 1\n",
         "t.yaml:4:4: syntax error: did not find expected key (while parsing a block mapping at "
         "2:3)"},
        {"service: {local: [1, 2}\n",
         "t.yaml:1:23: syntax error: did not find expected ',' or ']' (while parsing a flow "
         "sequence at 1:18)"},
        {"a: 'unterminated\n",
         "t.yaml:2:1: syntax error: found unexpected end of stream (while scanning a quoted "
         "scalar at 1:4)"},
        {"a: b: c\n", "t.yaml:1:5: syntax error: mapping values are not allowed in this context"},
        {"a:\n\tb: 1\n",
         "t.yaml:2:1: syntax error: found character that cannot start any token (while scanning "
         "for the next token at 2:1)"},
        {"a: \"\\xff\\xfe\"\nb: \xff\n", "t.yaml:2:4: encoding error: invalid leading UTF-8 octet (0xff)"},
    };
    char deep[400] = "";
    sage_config *c = NULL;

    REFUSED_ALL(bad);
    /* !!str makes a string of anything; a quoted key is a key like any. */
    c = parse("namespace: !!str 123\n\"transport\": local\n");
    ASSERT_STREQ(sage_config_namespace(c), "123");
    ASSERT_STREQ(sage_config_transport(c), "local");
    sage_config_free(c);
    /* Nesting is bounded before anything recursive runs. */
    for (int i = 0; i < 70; i++)
        strcat(deep, "[");
    refused(deep, "t.yaml:1:65: document: nested deeper than 64 levels");
}

/* load_refused: loading path is refused with SAGE_EPERM, naming it */
static void load_refused(const char *path)
{
    sage_config *c = NULL;

    ASSERT_ERR(sage_config_load(&c, path), SAGE_EPERM);
    ASSERT_TRUE(c == NULL);
    ASSERT_TRUE(strstr(sage_errdetail(), path) != NULL);
}

/* as_nobody runs fn(arg) in a child that became the user "nobody" */
static void as_nobody(void (*fn)(const char *), const char *arg)
{
    struct passwd *pw = getpwnam("nobody");
    int pid;

    if (pw == NULL || pw->pw_uid == 0) {
        printf("  note: no user 'nobody': not tried as another user\n");
        return;
    }
    pid = fork();
    if (pid == 0) {
        if (setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
            _exit(3);
        fn(arg);
        _exit(0);
    }
    ASSERT_EQ(th_wait_child(pid, 5000), 0);
}

static void t_files(void)
{
    char path[256], dir[256];
    sage_config *c = NULL;

    snprintf(path, sizeof path, "/tmp/%s.yaml", th_name("cfg"));
    snprintf(dir, sizeof dir, "/tmp/%s.d", th_name("cfg"));

    /* Missing: SAGE_ENOENT with the path. */
    ASSERT_ERR(sage_config_load(&c, path), SAGE_ENOENT);
    ASSERT_TRUE(c == NULL);
    ASSERT_TRUE(strstr(sage_errdetail(), path) != NULL);
    ASSERT_TRUE(strstr(sage_errdetail(), "no such file") != NULL);

    /* Errors name the file as given. */
    write_file(path, "service:\n  local:\n    max_workers: ten\n");
    ASSERT_ERR(sage_config_load(&c, path), SAGE_ECONFIG);
    {
        char want[400];

        snprintf(want, sizeof want,
                 "%s:3:18: service.local.max_workers: expected an integer in 1..1024, got 'ten'",
                 path);
        ASSERT_STREQ(sage_errdetail(), want);
    }
    write_file(path, "namespace: fromfile\n");
    ASSERT_OK(sage_config_load(&c, path));
    ASSERT_STREQ(sage_config_namespace(c), "fromfile");
    ASSERT_STREQ(sage_config_path(c), path);
    sage_config_free(c);
    c = NULL;

    /* A directory is not a config. */
    ASSERT_EQ(mkdir(dir, 0700), 0);
    ASSERT_ERR(sage_config_load(&c, dir), SAGE_ECONFIG);
    ASSERT_TRUE(strstr(sage_errdetail(), "is a directory") != NULL);
    rmdir(dir);

    /* Unreadable. Permissions do not bind root: as root, a child reads it
     * as "nobody". */
    ASSERT_EQ(chmod(path, 0), 0);
    if (geteuid() != 0)
        load_refused(path);
    else
        as_nobody(load_refused, path);
    ASSERT_EQ(unlink(path), 0);

    ASSERT_ERR(sage_config_load(NULL, path), SAGE_EINVAL);
    ASSERT_ERR(sage_config_load(&c, NULL), SAGE_EINVAL);
    ASSERT_ERR(sage_config_parse(&c, NULL, 3, NULL), SAGE_EINVAL);

    /* Text need not be NUL-terminated: only len bytes count. */
    ASSERT_OK(sage_config_parse(&c, "namespace: abcdef", 13, NULL));
    ASSERT_STREQ(sage_config_namespace(c), "ab");
    sage_config_free(c);
    /* Without a file name, messages say <config>. */
    ASSERT_ERR(sage_config_parse(&c, "x: 1\n", 5, NULL), SAGE_ECONFIG);
    ASSERT_STREQ(sage_errdetail(), "<config>:1:1: x: unknown key 'x' at the top level");
}

static void t_scalars(void)
{
    /* Integer fields take YAML 1.1 integers in any base. */
    static const struct {
        const char *text;
        uint32_t want;
    } ints[] = {
        {"12", 12},    {"+12", 12},   {"0x1f", 31},  {"0o17", 15}, {"017", 15},
        {"0b101", 5},  {"1_000", 1000}, {"1024.0", 1024}, {"1e2", 100}, {"0x_10", 16},
    };
    static const struct bad bad[] = {
        {"service: {local: {max_workers: 08}}\n",
         "t.yaml:1:32: service.local.max_workers: expected an integer in 1..1024, got '08'"},
        {"service: {local: {max_workers: 0x}}\n",
         "t.yaml:1:32: service.local.max_workers: expected an integer in 1..1024, got '0x'"},
        {"service: {local: {max_workers: 1:30}}\n",
         "t.yaml:1:32: service.local.max_workers: expected an integer in 1..1024, got '1:30'"},
        {"service: {local: {max_workers: \"12\"}}\n",
         "t.yaml:1:32: service.local.max_workers: expected an integer in 1..1024, got a quoted "
         "string \"12\""},
    };

    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        char text[128];
        sage_config *c;

        snprintf(text, sizeof text, "service: {local: {max_workers: %s}}\n", ints[i].text);
        c = parse(text);
        if (sage_config_local(c)->max_workers != ints[i].want)
            th_fail(__FILE__, __LINE__, "%s: got %u, want %u", ints[i].text,
                    sage_config_local(c)->max_workers, ints[i].want);
        sage_config_free(c);
    }
    REFUSED_ALL(bad);
}

/* ----------------------------------------------------------------- params */

static const sage_value *get(const sage_value *map, const char *key)
{
    const sage_value *v = sage_map_get(map, key);

    if (v == NULL)
        th_fail(__FILE__, __LINE__, "no key '%s'", key);
    return v;
}

static void t_params(void)
{
    sage_config *c = parse(
        "services:\n"
        "  - name: kv\n"
        "    plugin: kv\n"
        "    config:\n"
        "      path: /tmp/kv.db\n"
        "      capacity: 1000\n"
        "      nested: {list: [1, -2.5, x, ~, null, '', true, no, On, \"7\"], empty: {}, e: []}\n"
        "      ints: [0x10, 0o10, 010, 0b10, -9223372036854775808, 9223372036854775807, 1_000]\n"
        "      floats: [1.5, .5, -1e3, 1e-3, .inf, -.Inf, .NaN, 1_0.5]\n"
        "      strings: [08, 1:30, 'yes', inf, nan, 0x, +, 1e, \"a\\0b\"]\n"
        "      block: |\n"
        "        two\n"
        "        lines\n"
        "      bare:\n"
        "      42: numeric key\n"
        "  - {name: none, plugin: x}\n"
        "  - {name: blank, plugin: x, config: }\n"
        "  - {name: empty, plugin: x, config: {}}\n");
    sage_arena *a = NULL;
    sage_value v, w;
    const sage_value *nested, *list, *ints, *floats, *strs;
    const char *s;
    char before[1024], after[1024];
    size_t len;
    bool b;
    int64_t i;
    double d;

    ASSERT_OK(sage_arena_new(&a, 0));
    ASSERT_OK(sage_config_service_params(&v, c, 0, a));
    ASSERT_EQ(v.type, SAGE_MAP);
    ASSERT_EQ(v.as.map.len, 9);
    /* File order is kept. */
    ASSERT_STREQ(v.as.map.items[0].key.as.str.ptr, "path");
    ASSERT_STREQ(v.as.map.items[8].key.as.str.ptr, "42");
    ASSERT_OK(sage_value_get_str(&s, NULL, get(&v, "path")));
    ASSERT_STREQ(s, "/tmp/kv.db");
    ASSERT_EQ(get(&v, "capacity")->type, SAGE_INT);
    ASSERT_EQ(get(&v, "capacity")->as.i, 1000);
    ASSERT_EQ(get(&v, "bare")->type, SAGE_NIL);
    ASSERT_OK(sage_value_get_str(&s, NULL, get(&v, "42")));
    ASSERT_STREQ(s, "numeric key");
    ASSERT_OK(sage_value_get_str(&s, NULL, get(&v, "block")));
    ASSERT_STREQ(s, "two\nlines\n");

    nested = get(&v, "nested");
    ASSERT_EQ(nested->type, SAGE_MAP);
    ASSERT_EQ(get(nested, "empty")->type, SAGE_MAP);
    ASSERT_EQ(get(nested, "empty")->as.map.len, 0);
    ASSERT_EQ(get(nested, "e")->type, SAGE_ARRAY);
    ASSERT_EQ(get(nested, "e")->as.array.len, 0);
    list = get(nested, "list");
    ASSERT_EQ(list->type, SAGE_ARRAY);
    ASSERT_EQ(list->as.array.len, 10);
    ASSERT_EQ(list->as.array.items[0].type, SAGE_INT);
    ASSERT_EQ(list->as.array.items[0].as.i, 1);
    ASSERT_OK(sage_value_get_double(&d, &list->as.array.items[1]));
    ASSERT_EQ(list->as.array.items[1].type, SAGE_DOUBLE);
    ASSERT_TRUE(d == -2.5);
    ASSERT_OK(sage_value_get_str(&s, &len, &list->as.array.items[2]));
    ASSERT_STREQ(s, "x");
    ASSERT_EQ(list->as.array.items[3].type, SAGE_NIL);
    ASSERT_EQ(list->as.array.items[4].type, SAGE_NIL);
    ASSERT_OK(sage_value_get_str(&s, &len, &list->as.array.items[5])); /* '' is a string */
    ASSERT_EQ(len, 0);
    ASSERT_OK(sage_value_get_bool(&b, &list->as.array.items[6]));
    ASSERT_TRUE(b);
    ASSERT_OK(sage_value_get_bool(&b, &list->as.array.items[7]));
    ASSERT_TRUE(!b);
    ASSERT_OK(sage_value_get_bool(&b, &list->as.array.items[8]));
    ASSERT_TRUE(b);
    ASSERT_OK(sage_value_get_str(&s, NULL, &list->as.array.items[9])); /* quoted "7" */
    ASSERT_STREQ(s, "7");

    ints = get(&v, "ints");
    {
        static const int64_t want[] = {16, 8, 8, 2, INT64_MIN, INT64_MAX, 1000};

        ASSERT_EQ(ints->as.array.len, 7);
        for (size_t k = 0; k < 7; k++) {
            ASSERT_EQ(ints->as.array.items[k].type, SAGE_INT);
            ASSERT_OK(sage_value_get_int(&i, &ints->as.array.items[k]));
            ASSERT_TRUE(i == want[k]);
        }
    }
    floats = get(&v, "floats");
    {
        static const double want[] = {1.5, 0.5, -1000, 0.001, INFINITY, -INFINITY, 0, 10.5};

        ASSERT_EQ(floats->as.array.len, 8);
        for (size_t k = 0; k < 8; k++) {
            ASSERT_EQ(floats->as.array.items[k].type, SAGE_DOUBLE);
            d = floats->as.array.items[k].as.d;
            ASSERT_TRUE(k == 6 ? isnan(d) : d == want[k]);
        }
    }
    strs = get(&v, "strings");
    {
        static const char *const want[] = {"08", "1:30", "yes", "inf", "nan", "0x", "+", "1e"};

        ASSERT_EQ(strs->as.array.len, 9);
        for (size_t k = 0; k < 8; k++) {
            ASSERT_OK(sage_value_get_str(&s, NULL, &strs->as.array.items[k]));
            ASSERT_STREQ(s, want[k]);
        }
        ASSERT_OK(sage_value_get_str(&s, &len, &strs->as.array.items[8]));
        ASSERT_EQ(len, 3); /* an embedded NUL survives */
        ASSERT_TRUE(memcmp(s, "a\0b", 3) == 0);
    }

    /* The tree lives in the arena, not in the config: it reads the same
     * once the config is freed and its memory used again (a copy of v
     * would equal v whatever v pointed to; its text is compared instead) */
    ASSERT_TRUE(sage_value_snprint(before, sizeof before, &v) < (int)sizeof before);
    sage_config_free(c);
    c = parse("services:\n"
              "  - {name: none, plugin: x}\n"
              "  - {name: blank, plugin: x, config: }\n"
              "  - {name: empty, plugin: x, config: {}}\n");
    sage_value_snprint(after, sizeof after, &v);
    ASSERT_STREQ(after, before);
    ASSERT_OK(sage_value_copy(&w, a, &v));
    ASSERT_TRUE(sage_value_equal(&v, &w));
    ASSERT_OK(sage_config_service_params(&v, c, 0, a));
    ASSERT_EQ(v.type, SAGE_NIL);
    ASSERT_OK(sage_config_service_params(&v, c, 1, a));
    ASSERT_EQ(v.type, SAGE_NIL);
    ASSERT_OK(sage_config_service_params(&v, c, 2, a));
    ASSERT_EQ(v.type, SAGE_MAP);
    ASSERT_EQ(v.as.map.len, 0);
    v = sage_int(7);
    ASSERT_ERR(sage_config_service_params(&v, c, 3, a), SAGE_EINVAL);
    ASSERT_EQ(v.type, SAGE_INT); /* untouched on failure */
    ASSERT_ERR(sage_config_service_params(&v, c, 0, NULL), SAGE_EINVAL);
    sage_config_free(c);
    sage_arena_free(a);
}

/* ---------------------------------------------------------------- threads */

struct reader {
    const sage_config *c;
    int id;
    int failures;
};

/* Readers share one config; each also parses its own, and its errors stay
 * its own (the detail is per thread). */
static void *reader_main(void *arg)
{
    struct reader *r = arg;
    char text[128], want[160];

    for (int round = 0; round < 200; round++) {
        sage_config *own = NULL;
        const sage_service_conf *s = sage_config_find(r->c, "kv");

        if (s == NULL || s->local.max_workers != 4 || sage_config_local(r->c)->max_workers != 8)
            r->failures++;
        snprintf(text, sizeof text, "service: {local: {max_workers: %d}}\n", 2000 + r->id);
        snprintf(want, sizeof want,
                 "t.yaml:1:32: service.local.max_workers: expected an integer in 1..1024, got "
                 "'%d'",
                 2000 + r->id);
        if (sage_config_parse(&own, text, strlen(text), "t.yaml") != SAGE_ECONFIG ||
            strcmp(sage_errdetail(), want) != 0)
            r->failures++;
        snprintf(text, sizeof text, "namespace: n%d\n", r->id);
        if (sage_config_parse(&own, text, strlen(text), "t.yaml") != SAGE_OK)
            r->failures++;
        else
            sage_config_free(own);
    }
    return NULL;
}

static void t_threads(void)
{
    sage_config *c = parse("service: {local: {max_workers: 8}}\n"
                           "services: [{name: kv, plugin: kv, max_workers: 4}]\n");
    pthread_t th[4];
    struct reader r[4];

    for (int i = 0; i < 4; i++) {
        r[i] = (struct reader){c, i, 0};
        ASSERT_EQ(pthread_create(&th[i], NULL, reader_main, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
        ASSERT_EQ(r[i].failures, 0);
    }
    sage_config_free(c);
}

static const struct th_case cases[] = {
    {"defaults", t_defaults, 10},
    {"every_key", t_every_key, 10},
    {"example_file", t_example_file, 10},
    {"services_merge", t_services_merge, 10},
    {"memory_units", t_memory_units, 10},
    {"ranges", t_ranges, 10},
    {"types", t_types, 10},
    {"unknown_keys", t_unknown_keys, 10},
    {"ray_alias", t_ray_alias, 10},
    {"structure", t_structure, 10},
    {"files", t_files, 10},
    {"scalars", t_scalars, 10},
    {"params", t_params, 10},
    {"threads", t_threads, 30},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
