/*
 * sage_bench.c - sage-bench, the benchmark program of sagesvc: its first
 * argument names the benchmark, the rest are that benchmark's options.
 * A benchmark is one row of the table below.
 */
#include <stdio.h>
#include <string.h>

#include "benches.h"

struct bench {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *what;
};

#ifdef SAGE_BENCH_CLUSTER
#define CLUSTER_WHAT "a method call over NATS: sagesvc against raw nats.c"
#else
#define CLUSTER_WHAT "a method call over NATS (not built in: SAGE_WITH_NATS=OFF)"

/* "sage-bench cluster" in a build without the cluster */
int bench_cluster_main(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr,
            "sage-bench %s: not built in (this build has no cluster support: "
            "SAGE_WITH_NATS=OFF)\n",
            argv[0]);
    return 1;
}
#endif

static const struct bench benches[] = {
    {"queue", bench_queue_main, "sage_queue against pipes, sockets, mq, zmq, futex and a spin"},
    {"call", bench_call_main, "a method call: direct, local task, shm task, zmq; sync and async"},
    {"cluster", bench_cluster_main, CLUSTER_WHAT},
};
#define NBENCHES (sizeof benches / sizeof benches[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: sage-bench BENCHMARK [--json] [--quick] [--help] [options]\n\nbenchmarks:\n");
    for (size_t i = 0; i < NBENCHES; i++)
        fprintf(f, "  %-8s %s\n", benches[i].name, benches[i].what);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < NBENCHES; i++)
        if (strcmp(argv[1], benches[i].name) == 0)
            return benches[i].main(argc - 1, argv + 1);
    fprintf(stderr, "sage-bench: no benchmark called '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
