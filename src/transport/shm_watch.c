/*
 * watch.c - learning at once that a serving process died.
 *
 * A pidfd (Linux 5.3+) becomes readable when its process exits. The
 * manager's watch thread sleeps in epoll_wait on the pidfds of the processes
 * it has connections to, and kills a connection as soon as its process
 * dies: pending calls fail with SAGE_EUNAVAILABLE within microseconds of the
 * death, not after their timeouts. Epoll entries carry connection serials,
 * never pointers, so a connection freed meanwhile is simply not found.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/proc.h"
#include "runtime/manager_internal.h"

static void *watch_main(void *arg)
{
    sage_manager *m = arg;
    struct epoll_event ev[16];

    for (;;) {
        int n = epoll_wait(m->epfd, ev, 16, -1);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        for (int i = 0; i < n; i++) {
            uint64_t serial = ev[i].data.u64;
            struct sage__conn *c;
            char why[128];

            if (serial == 0)
                return NULL; /* the stop event */
            pthread_mutex_lock(&m->conn_lock);
            for (c = m->conns; c; c = c->next)
                if (c->serial == serial)
                    break;
            if (c) {
                atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
                /* it stays readable: stop watching it */
                epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->pidfd, NULL);
            }
            pthread_mutex_unlock(&m->conn_lock);
            if (c == NULL)
                continue;
            snprintf(why, sizeof why, "service '%s': its process (pid %d) died", c->name,
                     (int)c->pid);
            sage__conn_kill(m, c, SAGE_EUNAVAILABLE, why);
            sage__conn_put(m, c);
        }
    }
    return NULL;
}

sage_err sage__watch_add(sage_manager *m, struct sage__conn *c)
{
    struct epoll_event ev;
    int fd;

    /* the watch thread runs while epfd is open (-1: none, or it failed) */
    pthread_mutex_lock(&m->conn_lock);
    if (m->epfd < 0) {
        bool started = false;

        m->epfd = epoll_create1(EPOLL_CLOEXEC);
        m->wakefd = eventfd(0, EFD_CLOEXEC);
        if (m->epfd >= 0 && m->wakefd >= 0) {
            memset(&ev, 0, sizeof ev);
            ev.events = EPOLLIN;
            ev.data.u64 = 0;
            epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->wakefd, &ev);
            started = pthread_create(&m->watch_thread, NULL, watch_main, m) == 0;
        }
        if (!started) {
            if (m->epfd >= 0)
                close(m->epfd);
            if (m->wakefd >= 0)
                close(m->wakefd);
            m->epfd = m->wakefd = -1;
        }
    }
    pthread_mutex_unlock(&m->conn_lock);
    fd = (int)syscall(SYS_pidfd_open, c->pid, 0);
    if (fd < 0) {
        if (errno == ESRCH)
            return SAGE_SETERR(SAGE_EUNAVAILABLE, "process %d is gone", (int)c->pid);
        return SAGE_OK; /* no pidfds here: the queue's own liveness checks remain */
    }
    /* the pid could have been reused between the registry check and now */
    if (c->pid_start && sage__pid_start_time(c->pid) != c->pid_start) {
        close(fd);
        return SAGE_SETERR(SAGE_EUNAVAILABLE, "process %d is gone", (int)c->pid);
    }
    c->pidfd = fd;
    if (m->epfd >= 0) {
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN;
        ev.data.u64 = c->serial;
        epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev);
    }
    return SAGE_OK;
}

void sage__watch_stop(sage_manager *m)
{
    uint64_t one = 1;

    if (m->epfd < 0)
        return;
    if (write(m->wakefd, &one, sizeof one) != sizeof one)
        return; /* cannot happen with an eventfd; keep the thread */
    pthread_join(m->watch_thread, NULL);
    close(m->epfd);
    close(m->wakefd);
    m->epfd = m->wakefd = -1;
}
