/*
 * call_names.c - the shared-memory names a run of "sage-bench call" (or the
 * sage impl of "sage-bench cluster") makes the runtime create, registered
 * with bench_res before they exist so that a signal or a killed child never
 * leaves one behind.
 *
 * The names mirror src/runtime/names.c (request queue "<uid>.<ns>.<name>.
 * req", registry entry "/sage.r.<uid>.<ns>.<name>", a manager's response
 * queue "<uid>.<ns>.reply.<pid>.<serial>"). Should they drift, nothing
 * leaks: each run has its own namespace, and cleanup sweeps /dev/shm for
 * it, saying what it found.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_util.h"
#include "call.h"
#include "sage/queue.h"

enum { RES_QUEUE, RES_REG, RES_REPLY };

void call_queue_path(const struct call_run *r, char *buf, size_t cap)
{
    snprintf(buf, cap, "/dev/shm/sage.q.%u.%s.%s.req", (unsigned)geteuid(), r->ns, CALL_SERVICE);
}

int call_names_setup(struct call_run *r)
{
    char name[160];

    snprintf(name, sizeof name, "%u.%s.%s.req", (unsigned)geteuid(), r->ns, CALL_SERVICE);
    r->res[RES_QUEUE] = bench_res_add(BENCH_RES_SAGE_QUEUE, name);
    snprintf(name, sizeof name, "/dev/shm/sage.r.%u.%s.%s", (unsigned)geteuid(), r->ns,
             CALL_SERVICE);
    r->res[RES_REG] = bench_res_add(BENCH_RES_FILE, name);
    return r->res[RES_QUEUE] < 0 || r->res[RES_REG] < 0 ? -1 : 0;
}

void call_names_caller(struct call_run *r, int caller_pid)
{
    char name[160];

    /* the caller's first manager: serial 0 (this process never makes one,
     * so the forked counter starts there) */
    snprintf(name, sizeof name, "%u.%s.reply.%d.0", (unsigned)geteuid(), r->ns, caller_pid);
    r->res[RES_REPLY] = bench_res_add(BENCH_RES_SAGE_QUEUE, name);
}

/* in_ns tells whether the /dev/shm entry name belongs to r's namespace */
static bool in_ns(const struct call_run *r, const char *name)
{
    char pat[80];

    snprintf(pat, sizeof pat, ".%s.", r->ns);
    return strncmp(name, "sage.", 5) == 0 && strstr(name, pat) != NULL;
}

/* sweep unlinks every /dev/shm entry of r's namespace; with tell, notes each */
static void sweep(const struct call_run *r, bool tell)
{
    DIR *d = opendir("/dev/shm");
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        char path[300];
        struct stat st;

        if (!in_ns(r, e->d_name))
            continue;
        snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
        /* only files of ours: a root run could remove another user's */
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())
            continue;
        if (tell)
            bench_note("%s: %s: the runtime left %s behind after a clean stop", r->bench,
                       r->impl->name, path);
        unlink(path);
    }
    closedir(d);
}

void call_names_cleanup(struct call_run *r)
{
    if (r->ok)
        sweep(r, true);
    for (int i = 0; i < 3; i++) {
        bench_res_remove(r->res[i]);
        r->res[i] = -1;
    }
    sweep(r, false);
}
