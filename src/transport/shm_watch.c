/*
 * shm_watch.c - learning at once that a serving process died.
 *
 * A pidfd becomes readable when its process exits. The watcher's thread
 * sleeps in epoll_wait on the pidfds of the processes a client has
 * destinations in, and reports a death through its callback (the shm
 * client then puts a control record in its inbox, behind every answer the
 * dead process had sent). Epoll entries carry destination serials, never
 * pointers; a removed serial is simply not found.
 *
 * Design notes
 * - The table (serial -> pidfd) is under the watcher's lock; the thread
 *   takes it only to look a serial up, and calls the callback without it.
 * - The thread starts with the first watched process, and stops with the
 *   watcher (an eventfd, serial 0, wakes it).
 */
#include "transport/shm_watch.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/proc.h"
#include "platform/pidfd.h"

struct entry {
    uint64_t serial;
    int fd;
    int32_t pid;
};

struct sage__watch {
    pthread_mutex_t lock;
    struct entry *items;
    size_t n, cap;
    int epfd;   /* -1 until the thread runs */
    int wakefd;
    pthread_t thread;
    void (*on_death)(void *arg, uint64_t serial, int32_t pid);
    void *arg;
};

sage_err sage__watch_new(struct sage__watch **wp,
                         void (*on_death)(void *arg, uint64_t serial, int32_t pid), void *arg)
{
    struct sage__watch *w = calloc(1, sizeof *w);

    if (w == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    pthread_mutex_init(&w->lock, NULL);
    w->epfd = w->wakefd = -1;
    w->on_death = on_death;
    w->arg = arg;
    *wp = w;
    return SAGE_OK;
}

/* take removes serial's entry and returns its pid (0 if none); lock held */
static int32_t take(struct sage__watch *w, uint64_t serial)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->items[i].serial == serial) {
            int32_t pid = w->items[i].pid;

            if (w->epfd >= 0)
                epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->items[i].fd, NULL);
            close(w->items[i].fd);
            w->items[i] = w->items[--w->n];
            return pid;
        }
    return 0;
}

static void *watch_main(void *arg)
{
    struct sage__watch *w = arg;
    struct epoll_event ev[16];

    sage__thread_name("sage-watch");
    for (;;) {
        int n = epoll_wait(w->epfd, ev, 16, -1);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        for (int i = 0; i < n; i++) {
            uint64_t serial = ev[i].data.u64;
            int32_t pid;

            if (serial == 0)
                return NULL; /* the stop event */
            pthread_mutex_lock(&w->lock);
            pid = take(w, serial); /* it stays readable: stop watching it */
            pthread_mutex_unlock(&w->lock);
            if (pid != 0)
                w->on_death(w->arg, serial, pid);
        }
    }
    return NULL;
}

/* start_thread starts the thread on first use; lock held */
static sage_err start_thread(struct sage__watch *w)
{
    struct epoll_event ev;

    if (w->epfd >= 0)
        return SAGE_OK;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->wakefd = eventfd(0, EFD_CLOEXEC);
    if (w->epfd >= 0 && w->wakefd >= 0) {
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN;
        ev.data.u64 = 0;
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev) == 0 &&
            pthread_create(&w->thread, NULL, watch_main, w) == 0)
            return SAGE_OK;
    }
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->wakefd >= 0)
        close(w->wakefd);
    w->epfd = w->wakefd = -1;
    return SAGE_SETERR(SAGE_ESYS, "cannot start the death watch: %s", strerror(errno));
}

sage_err sage__watch_add(struct sage__watch *w, uint64_t serial, int32_t pid, uint64_t start)
{
    struct epoll_event ev;
    int fd = sage__pidfd_open(pid, start);
    sage_err r;

    if (fd < 0) {
        if (errno == ESRCH)
            return SAGE_SETERR(SAGE_EUNAVAILABLE, "process %d is gone", (int)pid);
        return SAGE_OK; /* no pidfds here: the queue's own liveness checks remain */
    }
    pthread_mutex_lock(&w->lock);
    if ((r = start_thread(w)) != SAGE_OK)
        goto fail;
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 8;
        struct entry *items = realloc(w->items, cap * sizeof *items);

        if (items == NULL) {
            r = SAGE_SETERR(SAGE_ENOMEM, "out of memory");
            goto fail;
        }
        w->items = items;
        w->cap = cap;
    }
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u64 = serial;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        r = SAGE_SETERR(SAGE_ESYS, "cannot watch process %d: %s", (int)pid, strerror(errno));
        goto fail;
    }
    w->items[w->n++] = (struct entry){serial, fd, pid};
    pthread_mutex_unlock(&w->lock);
    return SAGE_OK;
fail:
    pthread_mutex_unlock(&w->lock);
    close(fd);
    return r;
}

void sage__watch_remove(struct sage__watch *w, uint64_t serial)
{
    pthread_mutex_lock(&w->lock);
    take(w, serial);
    pthread_mutex_unlock(&w->lock);
}

void sage__watch_free(struct sage__watch *w)
{
    uint64_t one = 1;

    if (w == NULL)
        return;
    if (w->epfd >= 0) {
        if (write(w->wakefd, &one, sizeof one) == sizeof one)
            pthread_join(w->thread, NULL);
        close(w->epfd);
        close(w->wakefd);
    }
    for (size_t i = 0; i < w->n; i++)
        close(w->items[i].fd);
    free(w->items);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
