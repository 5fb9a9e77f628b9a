/*
 * workers.c - the task's worker threads, started on demand up to
 * max_workers, taking calls from a FIFO under one mutex.
 *
 * Only calls expected to run long (see listener.c) come here, so a condition
 * variable's wake-up cost is small beside the call; workers that find
 * nothing to do sleep until there is. A new worker starts whenever every
 * idle one already has a call waiting for it (queued >= idle), so a burst
 * of long calls runs on as many threads as it has calls, up to max_workers.
 */
#include <stdlib.h>
#include <string.h>

#include "platform/proc.h"
#include "runtime/task_internal.h"

static void *worker_main(void *arg)
{
    struct sage_task *t = arg;

    sage__thread_name("sage-worker");
    pthread_mutex_lock(&t->wlock);
    for (;;) {
        struct sage_call *c;

        while (t->work_head == NULL && !t->wstop) {
            t->idle_workers++;
            pthread_cond_wait(&t->wcond, &t->wlock);
            t->idle_workers--;
        }
        c = t->work_head;
        if (c == NULL)
            break; /* stopping and nothing left */
        t->queued--;
        t->work_head = c->next;
        if (t->work_head == NULL)
            t->work_tail = NULL;
        pthread_mutex_unlock(&t->wlock);
        c->next = NULL;
        sage__call_run(c);
        pthread_mutex_lock(&t->wlock);
    }
    pthread_mutex_unlock(&t->wlock);
    return NULL;
}

bool sage__workers_submit(struct sage_task *t, struct sage_call *c)
{
    bool ok = true;

    pthread_mutex_lock(&t->wlock);
    if (t->wstop) {
        pthread_mutex_unlock(&t->wlock);
        return false;
    }
    /* one worker per call waiting: a burst of K calls gets min(K,
     * max_workers) threads, not only the ones idle when it began (an idle
     * worker counts as busy from the moment it has a call waiting) */
    if (t->queued >= t->idle_workers && t->nworkers < t->max_workers) {
        if (t->worker_threads == NULL)
            t->worker_threads = calloc(t->max_workers, sizeof *t->worker_threads);
        if (t->worker_threads == NULL ||
            pthread_create(&t->worker_threads[t->nworkers], NULL, worker_main, t) != 0)
            ok = t->nworkers > 0; /* queue it for the workers we have, if any */
        else
            t->nworkers++;
    }
    if (ok) {
        c->next = NULL;
        if (t->work_tail)
            t->work_tail->next = c;
        else
            t->work_head = c;
        t->work_tail = c;
        t->queued++;
        pthread_cond_signal(&t->wcond);
    }
    pthread_mutex_unlock(&t->wlock);
    return ok;
}

void sage__workers_stop(struct sage_task *t)
{
    uint32_t n;

    pthread_mutex_lock(&t->wlock);
    t->wstop = true;
    pthread_cond_broadcast(&t->wcond);
    n = t->nworkers;
    pthread_mutex_unlock(&t->wlock);
    for (uint32_t i = 0; i < n; i++)
        pthread_join(t->worker_threads[i], NULL);
    free(t->worker_threads);
    t->worker_threads = NULL;
    t->nworkers = 0;
    t->queued = 0;
    t->wstop = false;
}
