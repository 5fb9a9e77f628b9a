/*
 * cluster_server.c - the private nats-server of "sage-bench cluster".
 *
 * Started as "nats-server -a 127.0.0.1 -p -1 -js -sd DIR" (sagesvc's NATS
 * transport keeps its service records in a JetStream key-value bucket, so
 * JetStream is on), with DIR a fresh mkdtemp under /tmp holding its store
 * and its log (stdout and stderr). -p -1 lets the server pick a free port
 * itself, so no other process can take it between our choice and its bind;
 * we read the port from the log's "Listening for client connections on"
 * line, then wait until a TCP connect succeeds.
 *
 * Placement: the server is not pinned. It inherits the parent's affinity
 * (every CPU the benchmark may use) and its Go scheduler floats over them,
 * sharing each with the pinned caller or host. Both impls see the same.
 *
 * Design notes. The benchmark's own signal handler (bench_proc.c) kills the
 * children it spawned and removes the named objects it knows; a server and
 * a directory tree are neither, so this file chains a handler in front of
 * it: kill and reap the server, remove the tree, then call the previous
 * handler. The handler uses system calls only (kill, waitpid, openat,
 * getdents64, unlinkat), all async-signal-safe; the main flow changes the
 * state it reads (pid, dir) only with those signals blocked.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "cluster.h"

#define START_TIMEOUT_MS 10000
#define STOP_GRACE_MS 5000
#define POLL_MS 10
#define TREE_DEPTH_MAX 16
#define LOG_TAIL 3000 /* bytes of the log shown on failure */

static const char listen_mark[] = "Listening for client connections on ";

static struct {
    volatile pid_t pid; /* the server, 0 when none runs */
    char dir[64];       /* its directory, "" when none exists */
    char log[96];
    bool handlers;      /* ours are installed */
    bool died;          /* it exited unasked */
    struct sigaction old[3];
} srv;

static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};

/* ------------------------------------------------- removing a directory */

struct dirent64_raw { /* the kernel's struct linux_dirent64 */
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* rm_at removes name (relative to dirfd) and everything under it, with
 * system calls only: safe in a signal handler. */
static void rm_at(int dirfd, const char *name, int depth)
{
    char buf[2048];
    int fd;
    bool removed;

    if (unlinkat(dirfd, name, 0) == 0 || (errno != EISDIR && errno != EPERM))
        return; /* a file, or gone */
    if (depth >= TREE_DEPTH_MAX)
        return;
    fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    /* entries removed while listing may shift the listing: list again
     * from the start until a pass removes nothing */
    do {
        long n;

        removed = false;
        lseek(fd, 0, SEEK_SET);
        while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
            for (long off = 0; off < n;) {
                struct dirent64_raw *d = (struct dirent64_raw *)(buf + off);

                off += d->d_reclen;
                if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
                    continue;
                rm_at(fd, d->d_name, depth + 1);
                removed = true;
            }
        }
    } while (removed);
    close(fd);
    unlinkat(dirfd, name, AT_REMOVEDIR);
}

/* kill_and_remove: the handler's half of cluster_server_stop (no grace). */
static void kill_and_remove(void)
{
    pid_t pid = srv.pid;

    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        srv.pid = 0;
    }
    if (srv.dir[0] != '\0') {
        rm_at(AT_FDCWD, srv.dir, 0);
        srv.dir[0] = '\0';
    }
}

static void on_signal(int sig)
{
    int saved = errno;

    for (int i = 0; i < 3; i++) {
        if (sigs[i] == sig && !(srv.old[i].sa_flags & SA_SIGINFO) &&
            srv.old[i].sa_handler != SIG_DFL && srv.old[i].sa_handler != SIG_IGN) {
            /* the benchmark's handler kills its children first (so none
             * reports the server's death), then re-raises sig, which stays
             * pending while this handler runs (sa_mask blocks it): the
             * process ends when we return */
            srv.old[i].sa_handler(sig);
            kill_and_remove();
            errno = saved;
            return;
        }
    }
    kill_and_remove();
    signal(sig, SIG_DFL);
    raise(sig);
    errno = saved;
}

static void block(sigset_t *old)
{
    sigset_t s;

    sigemptyset(&s);
    for (int i = 0; i < 3; i++)
        sigaddset(&s, sigs[i]);
    sigprocmask(SIG_BLOCK, &s, old);
}

static void install(void)
{
    struct sigaction sa;

    if (srv.handlers)
        return;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask); /* one cleanup at a time */
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &sa, &srv.old[i]);
    srv.handlers = true;
}

/* ----------------------------------------------------------- the server */

const char *cluster_server_path(void)
{
    static char found[512];
    const char *path = getenv("PATH");

    if (access("/usr/sbin/nats-server", X_OK) == 0)
        return "/usr/sbin/nats-server";
    while (path != NULL && *path != '\0') {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);

        if (len > 0 && len < sizeof found - 16) {
            snprintf(found, sizeof found, "%.*s/nats-server", (int)len, path);
            if (access(found, X_OK) == 0)
                return found;
        }
        path = colon ? colon + 1 : NULL;
    }
    return NULL;
}

/* child execs the server with its output in the log; never returns */
static void child(const char *path, pid_t parent)
{
    sigset_t none;
    int fd;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the parent blocks SIGCHLD */
    prctl(PR_SET_PDEATHSIG, SIGKILL);      /* no life beyond the benchmark's */
    if (getppid() != parent)
        _exit(127);
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        dup2(fd, STDIN_FILENO);
    fd = open(srv.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        _exit(127);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    execl(path, "nats-server", "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", srv.dir,
          (char *)NULL);
    fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
    _exit(127);
}

/* log_port finds the client port in the log; 0 if not there yet */
static int log_port(void)
{
    char buf[8192], *p;
    FILE *f = fopen(srv.log, "r");
    size_t n;
    int port = 0;

    if (f == NULL)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strstr(buf, listen_mark);
    if (p != NULL) {
        p = strchr(p + sizeof listen_mark - 1, ':');
        if (p != NULL && strchr(p, '\n') != NULL) /* the whole line is written */
            port = atoi(p + 1);
    }
    return port > 0 && port < 65536 ? port : 0;
}

static bool accepts(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* show_log copies the log's tail to stderr (before the directory goes) */
static void show_log(void)
{
    char buf[LOG_TAIL + 1];
    FILE *f = fopen(srv.log, "r");
    size_t n;
    long size;

    if (f == NULL)
        return;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, size > LOG_TAIL ? size - LOG_TAIL : 0, SEEK_SET);
    n = fread(buf, 1, LOG_TAIL, f);
    fclose(f);
    buf[n] = '\0';
    fprintf(stderr, "---- %s (removed at exit)%s\n%s%s---- end of log\n", srv.log,
            size > LOG_TAIL ? ", its end" : "", buf, n > 0 && buf[n - 1] != '\n' ? "\n" : "");
}

int cluster_server_start(const char *path, char *url, size_t cap)
{
    pid_t parent = getpid(), pid;
    sigset_t old;
    int64_t end;
    int port = 0;

    install();
    block(&old);
    snprintf(srv.dir, sizeof srv.dir, "/tmp/sage-bench-nats.XXXXXX");
    if (mkdtemp(srv.dir) == NULL) {
        fprintf(stderr, "sage-bench: cluster: mkdtemp %s: %s\n", srv.dir, strerror(errno));
        srv.dir[0] = '\0';
        sigprocmask(SIG_SETMASK, &old, NULL);
        return -1;
    }
    snprintf(srv.log, sizeof srv.log, "%s/nats-server.log", srv.dir);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == 0)
        child(path, parent);
    if (pid < 0) {
        fprintf(stderr, "sage-bench: cluster: fork: %s\n", strerror(errno));
        sigprocmask(SIG_SETMASK, &old, NULL);
        cluster_server_stop();
        return -1;
    }
    srv.pid = pid;
    sigprocmask(SIG_SETMASK, &old, NULL);

    end = bench_now_ns() + (int64_t)START_TIMEOUT_MS * 1000000;
    for (;;) {
        int st;

        if (waitpid(pid, &st, WNOHANG) == pid) {
            srv.pid = 0;
            fprintf(stderr, "sage-bench: cluster: nats-server exited at start (%s %d); see its "
                            "log:\n",
                    WIFEXITED(st) ? "status" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            show_log();
            cluster_server_stop();
            return -1;
        }
        if (port == 0)
            port = log_port();
        if (port != 0 && accepts(port))
            break;
        if (bench_now_ns() >= end) {
            fprintf(stderr, "sage-bench: cluster: nats-server (pid %d) did not accept "
                            "connections within %d s; see its log:\n",
                    (int)pid, START_TIMEOUT_MS / 1000);
            show_log();
            cluster_server_stop();
            return -1;
        }
        bench_sleep_ns((int64_t)POLL_MS * 1000000);
    }
    snprintf(url, cap, "nats://127.0.0.1:%d", port);
    return 0;
}

bool cluster_server_alive(void)
{
    pid_t pid = srv.pid;
    int st;

    if (srv.died)
        return false;
    if (pid <= 0 || waitpid(pid, &st, WNOHANG) != pid)
        return true;
    srv.pid = 0;
    srv.died = true;
    fprintf(stderr, "sage-bench: cluster: nats-server (pid %d) died (%s %d); see its log:\n",
            (int)pid, WIFEXITED(st) ? "status" : "signal",
            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    show_log();
    return false;
}

void cluster_server_stop(void)
{
    pid_t pid = srv.pid;
    sigset_t old;

    if (pid > 0) {
        int64_t end = bench_now_ns() + (int64_t)STOP_GRACE_MS * 1000000;
        pid_t got;

        kill(pid, SIGTERM);
        while ((got = waitpid(pid, NULL, WNOHANG)) == 0 && bench_now_ns() < end)
            bench_sleep_ns((int64_t)POLL_MS * 1000000);
        if (got != pid) {
            bench_note("cluster: nats-server (pid %d) ignored SIGTERM for %d s: killed",
                       (int)pid, STOP_GRACE_MS / 1000);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
    }
    block(&old);
    srv.pid = 0;
    if (srv.dir[0] != '\0')
        rm_at(AT_FDCWD, srv.dir, 0);
    srv.dir[0] = '\0';
    sigprocmask(SIG_SETMASK, &old, NULL);
}
