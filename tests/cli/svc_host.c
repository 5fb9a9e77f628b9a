/*
 * svc_host.c - hosts services over shm for the CLI tests, until SIGTERM.
 *
 *   svc_host NAMESPACE
 *
 * Starts the example kv service as "kv" and the test service (testsvc.h) as
 * "testsvc" in NAMESPACE, prints "ready PID" on stdout once both accept
 * calls, then waits for SIGTERM or SIGINT and stops them cleanly. Killed
 * with SIGKILL instead, it leaves its registry entries and request queues
 * behind with a dead owner: what the tests of `ls --clean` and
 * `queue rm --stale` need.
 *
 * Its parent's death is a SIGTERM too: a test script killed outright cannot
 * stop its hosts, and an orphan host would keep its entries in the user's
 * registry for as long as it lives.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "kv.h"
#include "sage/task.h"
#include "testsvc.h"

static sage_task *start(const sage_service *svc, const char *name, const char *ns)
{
    sage_task_opts o;
    sage_task *t;
    sage_err r;

    sage_task_opts_init(&o);
    o.transport = SAGE_TRANSPORT_SHM;
    o.ns = ns;
    o.name = name;
    r = sage_task_new(&t, svc, &o);
    if (r == SAGE_OK && (r = sage_task_start(t)) != SAGE_OK)
        sage_task_free(t);
    if (r != SAGE_OK) {
        fprintf(stderr, "svc_host: %s: %s (%s)\n", name, sage_errname(r), sage_errdetail());
        return NULL;
    }
    return t;
}

int main(int argc, char **argv)
{
    sage_task *kv, *ts;
    pid_t parent = getppid();
    sigset_t set;
    int sig;

    if (argc != 2) {
        fprintf(stderr, "usage: svc_host NAMESPACE\n");
        return 2;
    }
    /* Blocked before any thread starts, so only sigwait sees them. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* (the parent may have died before the request: then stop at once) */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
        perror("svc_host: PR_SET_PDEATHSIG");
        return 1;
    }
    if (getppid() != parent)
        return 1;
    if ((kv = start(&sage_example_kv, "kv", argv[1])) == NULL)
        return 1;
    if ((ts = start(&testsvc, "testsvc", argv[1])) == NULL) {
        sage_task_free(kv);
        return 1;
    }
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    sigwait(&set, &sig);
    sage_task_free(ts);
    sage_task_free(kv);
    return 0;
}
