/*
 * benches.h - the entry points of the benchmarks sage-bench dispatches to.
 * Each takes the arguments after "sage-bench" (argv[0] is its own name)
 * and returns the process's exit status.
 */
#ifndef SAGE_BENCH_BENCHES_H
#define SAGE_BENCH_BENCHES_H

/* bench_queue_main: "sage-bench queue", bench_queue.c. */
int bench_queue_main(int argc, char **argv);

/* bench_call_main: "sage-bench call", bench_call.c. */
int bench_call_main(int argc, char **argv);

/* bench_cluster_main: "sage-bench cluster", bench_cluster.c (with the
 * cluster built in: SAGE_BENCH_CLUSTER). */
int bench_cluster_main(int argc, char **argv);

#endif
