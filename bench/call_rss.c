/*
 * call_rss.c - the idle_rss run of "sage-bench call": what an idle shm
 * task with default options costs its process in resident memory.
 *
 * One child reads its VmRSS (and RssShmem) from /proc/self/status, creates
 * and starts the task, lets it idle for par->idle_ns, and reads them again.
 * It also reads from /proc/self/smaps how much of the request queue's
 * segment is resident (a segment's pages count in RSS only once touched),
 * and of all its /dev/shm mappings, so the reader can tell the queue from
 * the rest.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_util.h"
#include "call.h"
#include "sage/task.h"

/* status_kib reads a "Key:   N kB" line of /proc/self/status; -1 if none */
static int64_t status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t n = strlen(key);
    long long v = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, n) == 0 && line[n] == ':' && sscanf(line + n + 1, "%lld", &v) == 1)
            break;
    fclose(f);
    return v;
}

int64_t call_smaps_rss_kib(const char *path)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    bool in = false;
    long long sum = 0, v;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        char *name;
        unsigned long lo, hi;

        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            /* a mapping's header: the path, if any, starts at the first '/' */
            name = strchr(line, '/');
            if (name != NULL)
                name[strcspn(name, "\n")] = '\0';
            in = name != NULL &&
                 (path ? strcmp(name, path) == 0 : strncmp(name, "/dev/shm/", 9) == 0);
        } else if (in && sscanf(line, "Rss: %lld kB", &v) == 1) {
            sum += v;
        }
    }
    fclose(f);
    return sum;
}

static int child(struct call_run *r)
{
    struct call_rss *m = &r->ctl->rss;
    char qpath[200];
    sage_task_opts o;
    sage_task *t;
    struct stat st;
    sage_err e;

    if (call_gate_wait(&r->ctl->go, "go from the parent") != 0)
        return -1;
    call_queue_path(r, qpath, sizeof qpath);
    m->before_kib = status_kib("VmRSS");
    m->shm_before_kib = status_kib("RssShmem");
    sage_task_opts_init(&o); /* the defaults, but for being a shm task */
    o.transport = SAGE_TRANSPORT_SHM;
    o.ns = r->ns;
    if ((e = sage_task_new(&t, &call_echo_service, &o)) != SAGE_OK ||
        (e = sage_task_start(t)) != SAGE_OK) {
        fprintf(stderr, "sage-bench: call: idle_rss: task: %s (%s)\n", sage_strerror(e),
                sage_errdetail());
        return -1;
    }
    bench_sleep_ns(r->par->idle_ns);
    m->after_kib = status_kib("VmRSS");
    m->shm_after_kib = status_kib("RssShmem");
    m->queue_rss_kib = call_smaps_rss_kib(qpath);
    m->segs_rss_kib = call_smaps_rss_kib(NULL);
    m->queue_bytes = stat(qpath, &st) == 0 ? (int64_t)st.st_size : -1;
    sage_task_free(t);
    if (m->before_kib < 0 || m->after_kib < 0) {
        fprintf(stderr, "sage-bench: call: idle_rss: no VmRSS in /proc/self/status\n");
        return -1;
    }
    return 0;
}

const struct call_impl call_rss_impl = {
    .name = "shm",
    .setup = call_names_setup,
    .caller = child,
    .cleanup = call_names_cleanup,
};
