/*
 * test_security.c - one user never reaches another user's services.
 *
 * Another user can create files at any free name in /dev/shm. The cases
 * here plant registry entries, queues, links and the registry lock as a
 * real second user ("nobody": a forked child that drops its groups, gid and
 * uid), and check that the victim refuses each with SAGE_EPERM and a detail
 * naming the file and its owner, and that nothing the victim sends reaches
 * the planter. They need root (to become nobody); without it they skip.
 *
 * Everything is named under the case's prefix (the namespace is
 * th_prefix()), so the harness removes what the planter left. The lock
 * cases need the per-user lock file /dev/shm/sage.r.UID.lock itself, which
 * every run of this user shares: they plant and hold it in a private
 * /dev/shm (a mount namespace of their own), never in the real one.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "kv.h"
#include "opts.h"
#include "platform/proc.h"
#include "transport/shm_reg.h"
#include "sage/manager.h"
#include "sage/queue.h"
#include "sage/task.h"
#include "wire/wire.h"

/* ------------------------------------------------------------- helpers */

static uid_t other_uid;
static gid_t other_gid;
static char other_name[64];

/* need_other_user skips the case unless we can become "nobody" */
static void need_other_user(void)
{
    struct passwd *pw;

    if (geteuid() != 0)
        th_skip("needs root to act as a second user");
    pw = getpwnam("nobody");
    if (pw == NULL || pw->pw_uid == 0)
        th_skip("no user 'nobody'");
    other_uid = pw->pw_uid;
    other_gid = pw->pw_gid;
    snprintf(other_name, sizeof other_name, "uid %u (%s)", (unsigned)pw->pw_uid, pw->pw_name);
}

/* become_other drops to nobody for good, in a forked child */
static void become_other(void)
{
    if (setgroups(0, NULL) != 0 || setresgid(other_gid, other_gid, other_gid) != 0 ||
        setresuid(other_uid, other_uid, other_uid) != 0 || geteuid() != other_uid)
        _exit(3);
}

/* say / hear: one byte over a pipe; hear gives 0 on timeout or EOF */
static void say(int fd, char c)
{
    ASSERT_EQ(write(fd, &c, 1), 1);
}

static char hear(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    char c = 0;

    if (poll(&p, 1, timeout_ms) != 1 || read(fd, &c, 1) != 1)
        return 0;
    return c;
}

/* A process of the other user, run by fn(in, out, arg) after it dropped
 * its privileges; it talks to the case over two pipes. */
struct peer {
    int pid;
    int to;   /* the case writes */
    int from; /* the case reads */
};

static struct peer spawn_other(void (*fn)(int in, int out, void *arg), void *arg)
{
    int down[2], up[2];
    struct peer p;

    ASSERT_EQ(pipe(down), 0);
    ASSERT_EQ(pipe(up), 0);
    p.pid = fork();
    ASSERT_TRUE(p.pid >= 0);
    if (p.pid == 0) {
        close(down[1]);
        close(up[0]);
        become_other();
        fn(down[0], up[1], arg);
        _exit(0);
    }
    close(down[0]);
    close(up[1]);
    p.to = down[1];
    p.from = up[0];
    ASSERT_EQ(hear(p.from, 10000), 'R'); /* planted */
    return p;
}

/* end_other lets the peer finish and checks it exited cleanly */
static void end_other(struct peer p)
{
    close(p.to);
    ASSERT_EQ(th_wait_child(p.pid, 10000), 0);
    close(p.from);
}

/* count_msgs drains q (timeout 0) and counts what it held */
static int64_t count_msgs(sage_queue *q)
{
    char buf[4096];
    size_t len;
    int64_t n = 0;

    while (sage_queue_recv(&len, q, buf, sizeof buf, 0) == SAGE_OK)
        n++;
    return n;
}

static void send_count(int fd, int64_t n)
{
    ASSERT_EQ(write(fd, &n, sizeof n), (ssize_t)sizeof n);
}

static int64_t recv_count(int fd)
{
    int64_t n = -1;

    ASSERT_EQ(hear(fd, 10000), 'C');
    ASSERT_EQ(read(fd, &n, sizeof n), (ssize_t)sizeof n);
    return n;
}

/* other_queue creates a queue of the other user, mode 0666 so that any
 * victim could write to it */
static sage_queue *other_queue(const char *name)
{
    sage_queue_opts o = QUEUE_OPTS(.flags = SAGE_QUEUE_CREATE | SAGE_QUEUE_EXCL, .mode = 0666,
                                   .capacity = 1 << 16);
    sage_queue *q;

    ASSERT_OK(sage_queue_open(&q, name, &o));
    return q;
}

/* path builders: what the victim (this process, root) uses */
static const char *reg_file(const char *name)
{
    static char b[4][256];
    static int k;
    char *p = b[k++ % 4];

    snprintf(p, sizeof b[0], "/dev/shm/sage.r.%u.%s.%s", (unsigned)geteuid(), th_prefix(), name);
    return p;
}

static const char *req_queue(const char *name)
{
    static char b[4][256];
    static int k;
    char *p = b[k++ % 4];

    snprintf(p, sizeof b[0], "%u.%s.%s.req", (unsigned)geteuid(), th_prefix(), name);
    return p;
}

static const char *queue_file(const char *qname)
{
    static char b[4][300];
    static int k;
    char *p = b[k++ % 4];

    snprintf(p, sizeof b[0], "/dev/shm/sage.q.%s", qname);
    return p;
}

/* The detail of the last refusal, kept across the calls that follow it. */
static char detail[512];

/* EXPECT_EPERM: expr fails with SAGE_EPERM; its detail goes to detail */
#define EXPECT_EPERM(expr)                                                                     \
    do {                                                                                       \
        sage_err e_ = (expr);                                                                  \
        snprintf(detail, sizeof detail, "%s", sage_errdetail());                               \
        if (e_ != SAGE_EPERM)                                                                  \
            th_fail(__FILE__, __LINE__, "%s: got %s, want EPERM (%s)", #expr,                  \
                    sage_errname(e_), detail);                                                 \
    } while (0)

#define ASSERT_DETAIL(s)                                                                       \
    do {                                                                                       \
        if (strstr(detail, (s)) == NULL)                                                       \
            th_fail(__FILE__, __LINE__, "detail \"%s\" lacks \"%s\"", detail, (s));           \
    } while (0)

/* A process of ours hosting one shm kv service until its control pipe closes. */
struct host {
    int pid;
    int ctl;
};

static struct host spawn_host(const char *name)
{
    int ready[2], ctl[2];
    struct host h;
    char c;

    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(ctl), 0);
    h.pid = fork();
    if (h.pid == 0) {
        sage_task_opts o = TASK_OPTS(.transport = SAGE_TRANSPORT_SHM, .ns = th_prefix(), .name = name);
        sage_task *t;
        sage_err r;

        close(ready[0]);
        close(ctl[1]);
        ASSERT_OK(sage_task_new(&t, &sage_example_kv, &o));
        r = sage_task_start(t);
        c = r == SAGE_OK ? 'R' : 'E';
        ASSERT_EQ(write(ready[1], &c, 1), 1);
        if (r != SAGE_OK)
            _exit(2);
        while (read(ctl[0], &c, 1) > 0) /* until the case closes it */
            ;
        sage_task_free(t);
        _exit(0);
    }
    close(ready[1]);
    close(ctl[0]);
    ASSERT_EQ(hear(ready[0], 10000), 'R');
    close(ready[0]);
    h.ctl = ctl[1];
    return h;
}

static void stop_host(struct host h)
{
    close(h.ctl);
    ASSERT_EQ(th_wait_child(h.pid, 10000), 0);
}

/* kv_task makes (does not start) a shm kv task called name */
static sage_task *kv_task(const char *name)
{
    sage_task_opts o = TASK_OPTS(.transport = SAGE_TRANSPORT_SHM, .ns = th_prefix(), .name = name);
    sage_task *t;

    ASSERT_OK(sage_task_new(&t, &sage_example_kv, &o));
    return t;
}

static sage_manager *manager(void)
{
    sage_manager_opts o = MANAGER_OPTS(.ns = th_prefix(), .timeout_ms = 5000);
    sage_manager *m;

    ASSERT_OK(sage_manager_new(&m, &o));
    return m;
}

/* call_kv calls name.put("secret", 1) through m, which then forgets the
 * connection (a fresh manager each time would do too) */
static sage_err call_kv(const char *name)
{
    sage_manager *m = manager();
    sage_arena *a;
    sage_value res;
    sage_err r;

    ASSERT_OK(sage_arena_new(&a, 0));
    r = sage_manager_callf(&res, m, a, name, "put", "[s i]", "secret", 1);
    snprintf(detail, sizeof detail, "%s", sage_errdetail());
    sage_arena_free(a);
    sage_manager_free(m);
    return r;
}

static void on_entry(void *arg, const sage_host_entry *e)
{
    char *names = arg;

    strcat(names, e->name);
    strcat(names, " ");
}

/* listed returns the names sage_host_list reports in our namespace */
static const char *listed(void)
{
    static char names[1024];

    names[0] = '\0';
    ASSERT_OK(sage_host_list(th_prefix(), 1, on_entry, names));
    return names;
}

/* map_file maps a whole /dev/shm file of ours, read-write */
static void *map_file(const char *path, size_t size)
{
    int fd = open(path, O_RDWR);
    void *mem;

    ASSERT_TRUE(fd >= 0);
    mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_TRUE(mem != MAP_FAILED);
    close(fd);
    return mem;
}

/* write_file creates path exclusively with mode (exactly) and contents */
static void write_file(const char *path, mode_t mode, const void *data, size_t len)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, mode);

    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(fchmod(fd, mode), 0);
    ASSERT_EQ(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* a scratch directory outside /dev/shm, removed by the harness */
static const char *scratch(const char *file)
{
    static char b[4][300];
    static int k;
    char *p = b[k++ % 4], dir[200];

    snprintf(dir, sizeof dir, "/tmp/sagesvc-%s", th_prefix());
    mkdir(dir, 0755);
    snprintf(p, sizeof b[0], "%s/%s", dir, file);
    return p;
}

/* ------------------------------------------------ planted registry entries */

struct plant_entry {
    char path[256];   /* the victim's registry entry name */
    char evilq[128];  /* the planter's own queue, where the entry points */
    char ns[64];
    uid_t victim;
};

/* as nobody: a queue of our own, and an entry 0666 under the victim's name
 * that points at it, looks live and running, and forges the victim's uid */
static void plant_entry(int in, int out, void *arg)
{
    struct plant_entry *pe = arg;
    sage_queue *q = other_queue(pe->evilq);
    struct sage__reg *reg;
    int fd = open(pe->path, O_RDWR | O_CREAT | O_EXCL, 0666);

    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(fchmod(fd, 0666), 0);
    ASSERT_EQ(ftruncate(fd, sizeof *reg), 0);
    reg = mmap(NULL, sizeof *reg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_TRUE(reg != MAP_FAILED);
    close(fd);
    reg->version = SAGE__REG_VERSION;
    reg->size = sizeof *reg;
    snprintf(reg->fig.name, sizeof reg->fig.name, "kv");
    snprintf(reg->fig.ns, sizeof reg->fig.ns, "%s", pe->ns);
    reg->fig.pid = getpid();
    reg->fig.pid_start = sage__pid_start_time(reg->fig.pid);
    reg->uid = pe->victim;
    reg->fig.transport = SAGE_TRANSPORT_SHM;
    reg->fig.max_workers = 4;
    reg->fig.request_queue_size = 64;
    reg->fig.queue_timeout_ms = 1000;
    reg->fig.max_request = 1 << 14;
    atomic_store(&reg->fig.state, SAGE_STATE_RUNNING);
    atomic_store_explicit(&reg->magic, SAGE__REG_MAGIC, memory_order_release);
    say(out, 'R');
    ASSERT_EQ(hear(in, 20000), 'Q');
    say(out, 'C');
    send_count(out, count_msgs(q));
    hear(in, 10000); /* until the case lets go */
    munmap(reg, sizeof *reg);
    sage_queue_close(q);
}

static void t_entry_planted_by_other_user(void)
{
    struct plant_entry pe;
    struct peer p;
    sage_status st;
    sage_task *t;

    need_other_user();
    snprintf(pe.path, sizeof pe.path, "%s", reg_file("kv"));
    snprintf(pe.evilq, sizeof pe.evilq, "%s", th_name("evil"));
    snprintf(pe.ns, sizeof pe.ns, "%s", th_prefix());
    pe.victim = geteuid();
    p = spawn_other(plant_entry, &pe);

    /* a caller refuses the entry, clearly, and sends nothing */
    EXPECT_EPERM(call_kv("kv"));
    ASSERT_DETAIL(pe.path);
    ASSERT_DETAIL(other_name);
    ASSERT_DETAIL("writable by group and others");
    ASSERT_DETAIL("not by this user");
    EXPECT_EPERM(sage_host_status(&st, th_prefix(), "kv"));
    ASSERT_DETAIL(pe.path);
    /* listing does not count it as a service of ours, nor removes it */
    ASSERT_STREQ(listed(), "");
    /* the victim's own start of that name names the planted file */
    t = kv_task("kv");
    EXPECT_EPERM(sage_task_start(t));
    ASSERT_DETAIL(pe.path);
    ASSERT_DETAIL(other_name);
    ASSERT_TRUE(strstr(detail, "already served") == NULL);
    sage_task_free(t);
    /* nothing reached the planter's queue; its file is still there */
    say(p.to, 'Q');
    ASSERT_EQ(recv_count(p.from), 0);
    end_other(p);
    ASSERT_EQ(access(pe.path, F_OK), 0);
}

struct copy_entry {
    char path[256];
    unsigned char bytes[sizeof(struct sage__reg)];
};

/* as nobody: a byte-for-byte copy of a genuine entry, under another name */
static void copy_entry(int in, int out, void *arg)
{
    struct copy_entry *ce = arg;

    write_file(ce->path, 0600, ce->bytes, sizeof ce->bytes);
    say(out, 'R');
    hear(in, 20000);
}

static void t_entry_copied_by_other_user(void)
{
    struct host h;
    struct copy_entry ce;
    struct peer p;
    struct sage__reg *reg;
    sage_task *t;

    need_other_user();
    h = spawn_host("kv");
    reg = map_file(reg_file("kv"), sizeof *reg);
    memcpy(ce.bytes, reg, sizeof ce.bytes);
    snprintf(ce.path, sizeof ce.path, "%s", reg_file("kv2"));
    p = spawn_other(copy_entry, &ce);

    ASSERT_OK(call_kv("kv")); /* the genuine one works */
    /* the copy's contents are genuine, its owner is not */
    EXPECT_EPERM(call_kv("kv2"));
    ASSERT_DETAIL(ce.path);
    ASSERT_DETAIL(other_name);
    ASSERT_DETAIL("not by this user");
    ASSERT_STREQ(listed(), "kv ");
    t = kv_task("kv2");
    EXPECT_EPERM(sage_task_start(t));
    ASSERT_DETAIL(ce.path);
    ASSERT_DETAIL(other_name);
    sage_task_free(t);
    end_other(p);

    /* a file of ours whose entry records another uid is refused too */
    {
        struct sage__reg *copy = malloc(sizeof *copy);
        char want[64];

        ASSERT_TRUE(copy != NULL);
        memcpy(copy, reg, sizeof *copy);
        copy->uid = other_uid;
        write_file(reg_file("kv3"), 0600, copy, sizeof *copy);
        free(copy);
        EXPECT_EPERM(call_kv("kv3"));
        snprintf(want, sizeof want, "records uid %u", (unsigned)other_uid);
        ASSERT_DETAIL(want);
    }
    munmap(reg, sizeof *reg);
    stop_host(h);
}

/* ------------------------------------------------------------- links */

struct links {
    int n;
    char target[6][300];
    char link[6][300];
};

/* as nobody: symbolic links at the victim's names */
static void plant_links(int in, int out, void *arg)
{
    struct links *l = arg;

    for (int i = 0; i < l->n; i++)
        ASSERT_EQ(symlink(l->target[i], l->link[i]), 0);
    say(out, 'R');
    hear(in, 20000);
}

static void add_link(struct links *l, const char *target, const char *link)
{
    snprintf(l->target[l->n], sizeof l->target[0], "%s", target);
    snprintf(l->link[l->n], sizeof l->link[0], "%s", link);
    l->n++;
}

static void t_links_not_followed(void)
{
    struct host h;
    struct links l = {0};
    struct peer p;
    struct stat st;
    sage_queue *q = NULL;
    sage_queue_opts o;
    sage_task *t;
    char buf[16] = {0};
    int fd;

    need_other_user();
    h = spawn_host("real");
    write_file(scratch("target"), 0644, "precious", 8);
    /* at a registry entry, to our genuine entry; at queue names, to our
     * genuine queue and to a file outside /dev/shm; and a dangling one
     * where we would create an entry */
    add_link(&l, reg_file("real"), reg_file("kv"));
    add_link(&l, queue_file(req_queue("real")), queue_file(th_name("lnk")));
    add_link(&l, scratch("target"), queue_file(th_name("out")));
    add_link(&l, scratch("made"), reg_file("dang"));
    p = spawn_other(plant_links, &l);

    EXPECT_EPERM(call_kv("kv"));
    ASSERT_DETAIL(reg_file("kv"));
    ASSERT_DETAIL("is a symbolic link");
    ASSERT_DETAIL(other_name);
    EXPECT_EPERM(sage_queue_open(&q, th_name("lnk"), NULL));
    ASSERT_DETAIL("is a symbolic link");
    o = QUEUE_OPTS(.flags = SAGE_QUEUE_ANY_OWNER); /* whoever owns it: still never a link */
    EXPECT_EPERM(sage_queue_open(&q, th_name("out"), &o));
    ASSERT_DETAIL(queue_file(th_name("out")));
    ASSERT_DETAIL("is a symbolic link");
    o.flags = SAGE_QUEUE_CREATE; /* nor created through */
    EXPECT_EPERM(sage_queue_open(&q, th_name("out"), &o));
    fd = open(scratch("target"), O_RDONLY);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(read(fd, buf, sizeof buf), 8);
    close(fd);
    ASSERT_STREQ(buf, "precious");
    /* a start at the dangling link creates nothing through it */
    t = kv_task("dang");
    EXPECT_EPERM(sage_task_start(t));
    ASSERT_DETAIL("is a symbolic link");
    sage_task_free(t);
    ASSERT_TRUE(access(scratch("made"), F_OK) != 0);
    /* links are not removed either, as no file of another user is */
    EXPECT_EPERM(sage_queue_unlink(th_name("lnk")));
    ASSERT_EQ(lstat(queue_file(th_name("lnk")), &st), 0);
    end_other(p);
    /* a link of our own is no better */
    ASSERT_EQ(symlink(queue_file(req_queue("real")), queue_file(th_name("mine"))), 0);
    EXPECT_EPERM(sage_queue_open(&q, th_name("mine"), NULL));
    ASSERT_DETAIL("is a symbolic link");
    ASSERT_OK(call_kv("real"));
    stop_host(h);
}

/* ---------------------------------------------------- planted queues */

struct plant_queues {
    char name[4][200]; /* request, reply, a reply queue for a service, stale */
};

/* as nobody: queues at the names the victim will create or answer to */
static void plant_queues(int in, int out, void *arg)
{
    struct plant_queues *pq = arg;
    sage_queue *q[4];

    for (int i = 0; i < 4; i++)
        q[i] = other_queue(pq->name[i]);
    say(out, 'R');
    ASSERT_EQ(hear(in, 20000), 'Q');
    say(out, 'C');
    send_count(out, count_msgs(q[0]) + count_msgs(q[1]) + count_msgs(q[2]));
    hear(in, 10000);
    for (int i = 0; i < 4; i++)
        sage_queue_close(q[i]);
}

static void t_queues_planted_by_other_user(void)
{
    struct plant_queues pq;
    struct peer p;
    struct host h;
    sage_manager *m = NULL;
    sage_manager_opts mo = MANAGER_OPTS(.ns = th_prefix());
    sage_task *t;
    int dead;

    need_other_user();
    dead = fork(); /* a pid that no longer runs */
    if (dead == 0)
        _exit(0);
    ASSERT_EQ(th_wait_child(dead, 5000), 0);
    snprintf(pq.name[0], sizeof pq.name[0], "%s", req_queue("kv"));
    /* our first manager's response queue (serial 0 of this process) */
    snprintf(pq.name[1], sizeof pq.name[1], "%u.%s.reply.%d.0", (unsigned)geteuid(), th_prefix(),
             (int)getpid());
    snprintf(pq.name[2], sizeof pq.name[2], "%s", th_name("evilreply"));
    snprintf(pq.name[3], sizeof pq.name[3], "%u.%s.reply.%d.0", (unsigned)geteuid(), th_prefix(),
             dead);
    p = spawn_other(plant_queues, &pq);

    /* a manager's reply queue carries a random nonce: nobody can plant one
     * at its name ahead of it, so a queue planted at a guess is in no way */
    ASSERT_OK(sage_manager_new(&m, &mo));
    sage_manager_free(m);
    /* the manager's cleanup removes neither the planted queue nor the
     * planted "stale" one of a dead pid */
    ASSERT_EQ(access(queue_file(pq.name[1]), F_OK), 0);
    ASSERT_EQ(access(queue_file(pq.name[3]), F_OK), 0);
    EXPECT_EPERM(sage_queue_unlink(pq.name[3]));
    ASSERT_DETAIL("refusing to remove it");
    ASSERT_EQ(access(queue_file(pq.name[3]), F_OK), 0);

    /* a start refuses a request queue planted at its name, and leaves no
     * registry entry behind */
    t = kv_task("kv");
    EXPECT_EPERM(sage_task_start(t));
    ASSERT_DETAIL(queue_file(pq.name[0]));
    ASSERT_DETAIL(other_name);
    sage_task_free(t);
    ASSERT_TRUE(access(reg_file("kv"), F_OK) != 0);

    /* a genuine entry whose request queue is the planted one: the caller
     * opens the queue it derives, and refuses it */
    {
        struct sage__reg *reg;

        ASSERT_OK(sage__reg_create(&reg, th_prefix(), "kv"));
        reg->fig.max_request = 1 << 14;
        reg->fig.queue_timeout_ms = 1000;
        atomic_store(&reg->fig.state, SAGE_STATE_RUNNING);
        sage__reg_publish(reg);
        EXPECT_EPERM(call_kv("kv"));
        ASSERT_DETAIL("refusing its request queue");
        ASSERT_DETAIL(queue_file(pq.name[0]));
        ASSERT_DETAIL(other_name);
        sage__reg_destroy(reg, th_prefix(), "kv");
    }

    /* a service never answers into another user's queue */
    h = spawn_host("svc");
    {
        sage_queue *rq, *mine;
        sage_queue_opts o = QUEUE_OPTS(.flags = SAGE_QUEUE_CREATE);
        sage__req req;
        uint8_t buf[512];
        size_t len;
        sage_status st;

        ASSERT_OK(sage_queue_open(&rq, req_queue("svc"), NULL));
        ASSERT_OK(sage_queue_open(&mine, th_name("mine"), &o));
        memset(&req, 0, sizeof req);
        req.service = "svc";
        req.service_len = 3;
        req.method = "size";
        req.method_len = 4;
        req.args = sage_array(NULL, 0);
        req.kwargs = sage_map(NULL, 0);
        for (int i = 0; i < 2; i++) { /* to the planter's queue, then to ours */
            const char *to = i == 0 ? pq.name[2] : th_name("mine");

            req.id = (uint64_t)i + 1;
            req.reply_to = to;
            req.reply_to_len = strlen(to);
            ASSERT_OK(sage__wire_req_encode(&req, buf, sizeof buf, &len));
            ASSERT_OK(sage_queue_send(rq, buf, len, 1000));
        }
        ASSERT_OK(sage_queue_recv(&len, mine, buf, sizeof buf, 5000));
        /* the first was dropped, saying why (workers may finish out of order) */
        ASSERT_WAIT(sage_host_status(&st, th_prefix(), "svc") == SAGE_OK &&
                        strstr(st.last_drop, pq.name[2]) != NULL,
                    5000);
        snprintf(detail, sizeof detail, "%s", st.last_drop); /* 127 bytes at most */
        ASSERT_DETAIL(pq.name[2]);
        ASSERT_DETAIL("cannot open its queue");
        sage_queue_close(rq);
        sage_queue_close(mine);
    }
    stop_host(h);

    say(p.to, 'Q');
    ASSERT_EQ(recv_count(p.from), 0);
    end_other(p);
}

/* ---------------------------------------------- writable by group/others */

static void t_writable_segments_refused(void)
{
    struct host h;
    sage_queue *q = NULL;
    sage_queue_opts o;
    sage_status st;

    h = spawn_host("kv");
    ASSERT_OK(call_kv("kv"));

    ASSERT_EQ(chmod(reg_file("kv"), 0666), 0);
    EXPECT_EPERM(call_kv("kv"));
    ASSERT_DETAIL(reg_file("kv"));
    ASSERT_DETAIL("writable by group and others (mode 0666)");
    EXPECT_EPERM(sage_host_status(&st, th_prefix(), "kv"));
    ASSERT_STREQ(listed(), "");
    ASSERT_EQ(chmod(reg_file("kv"), 0620), 0);
    EXPECT_EPERM(call_kv("kv"));
    ASSERT_DETAIL("writable by group (mode 0620)");
    ASSERT_EQ(chmod(reg_file("kv"), 0600), 0);
    ASSERT_OK(call_kv("kv"));

    ASSERT_EQ(chmod(queue_file(req_queue("kv")), 0606), 0);
    EXPECT_EPERM(call_kv("kv"));
    ASSERT_DETAIL(queue_file(req_queue("kv")));
    ASSERT_DETAIL("writable by others (mode 0606)");
    EXPECT_EPERM(sage_queue_open(&q, req_queue("kv"), NULL));
    /* unless the opener says the queue is shared on purpose */
    o = QUEUE_OPTS(.flags = SAGE_QUEUE_ANY_OWNER);
    ASSERT_OK(sage_queue_open(&q, req_queue("kv"), &o));
    sage_queue_close(q);
    ASSERT_EQ(chmod(queue_file(req_queue("kv")), 0600), 0);
    ASSERT_OK(call_kv("kv"));
    stop_host(h);
}

/* a queue shared between users on purpose: opened with SAGE_QUEUE_ANY_OWNER */
static void t_shared_queue_any_owner(void)
{
    sage_queue *q, *mine;
    sage_queue_opts o = QUEUE_OPTS(.flags = SAGE_QUEUE_CREATE | SAGE_QUEUE_EXCL, .mode = 0666);
    char buf[16];
    size_t len;
    int pid;

    need_other_user();
    ASSERT_OK(sage_queue_open(&mine, th_name("shared"), &o));
    pid = fork();
    if (pid == 0) {
        sage_queue_opts so = QUEUE_OPTS(.flags = SAGE_QUEUE_ANY_OWNER);

        become_other();
        EXPECT_EPERM(sage_queue_open(&q, th_name("shared"), NULL));
        ASSERT_DETAIL("uid 0");
        ASSERT_OK(sage_queue_open(&q, th_name("shared"), &so));
        ASSERT_OK(sage_queue_send(q, "hi", 2, 1000));
        sage_queue_close(q);
        _exit(0);
    }
    ASSERT_EQ(th_wait_child(pid, 10000), 0);
    ASSERT_OK(sage_queue_recv(&len, mine, buf, sizeof buf, 1000));
    ASSERT_EQ(len, 2);
    sage_queue_close(mine);
    ASSERT_OK(sage_queue_unlink(th_name("shared"))); /* ours, whatever its mode */
}

/* --------------------------------------------------------------- lock */

/* private_shm gives this case a /dev/shm of its own: the per-user lock
 * file is shared by every run of this user on the machine */
static void private_shm(void)
{
    if (unshare(CLONE_NEWNS) != 0)
        th_skip("needs a private /dev/shm: cannot make a mount namespace");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0)
        th_skip("needs a private /dev/shm: cannot mount one");
}

static const char *lock_file(void)
{
    static char b[64];

    snprintf(b, sizeof b, "/dev/shm/sage.r.%u.lock", (unsigned)geteuid());
    return b;
}

/* as nobody: the victim's lock file, created and held */
static void plant_lock(int in, int out, void *arg)
{
    int fd = open(arg, O_RDWR | O_CREAT | O_EXCL, 0644);

    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(flock(fd, LOCK_EX), 0);
    say(out, 'R');
    hear(in, 30000);
}

static void t_lock_planted_by_other_user(void)
{
    char path[64];
    struct peer p;
    sage_task *t;
    double t0;

    need_other_user();
    private_shm();
    snprintf(path, sizeof path, "%s", lock_file());
    p = spawn_other(plant_lock, path);
    t = kv_task("kv");
    t0 = th_now_ms();
    EXPECT_EPERM(sage_task_start(t));
    ASSERT_LE(th_now_ms() - t0, 1000); /* refused at once, not waited for */
    ASSERT_DETAIL(path);
    ASSERT_DETAIL(other_name);
    ASSERT_DETAIL("refusing to use it");
    end_other(p);
    ASSERT_EQ(unlink(path), 0); /* what a user would do, once told */

    /* a link at the lock's name is not followed, nor created through */
    ASSERT_EQ(symlink(scratch("made-lock"), path), 0);
    EXPECT_EPERM(sage_task_start(t));
    ASSERT_DETAIL("is a symbolic link");
    ASSERT_TRUE(access(scratch("made-lock"), F_OK) != 0);
    ASSERT_EQ(unlink(path), 0);

    ASSERT_OK(sage_task_start(t)); /* the lock made afresh, ours */
    sage_task_free(t);
}

/* a process of ours holding the lock for hold_ms (or until told, if < 0) */
struct holder {
    int pid;
    int ctl;
};

static struct holder hold_lock(int hold_ms)
{
    int ready[2], ctl[2];
    struct holder h;

    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(ctl), 0);
    h.pid = fork();
    if (h.pid == 0) {
        int fd = open(lock_file(), O_RDWR | O_CREAT, 0600);

        close(ready[0]);
        close(ctl[1]);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(flock(fd, LOCK_EX), 0);
        say(ready[1], 'R');
        hear(ctl[0], hold_ms < 0 ? 60000 : hold_ms);
        _exit(0);
    }
    close(ready[1]);
    close(ctl[0]);
    ASSERT_EQ(hear(ready[0], 5000), 'R');
    close(ready[0]);
    h.ctl = ctl[1];
    return h;
}

static void let_go(struct holder h)
{
    close(h.ctl);
    ASSERT_EQ(th_wait_child(h.pid, 5000), 0);
}

static void t_lock_held_too_long(void)
{
    struct holder h;
    sage_task *t = kv_task("kv");
    double t0, took;

    private_shm();
    /* held past the bound: SAGE_EBUSY after 5 s, saying why */
    h = hold_lock(-1);
    t0 = th_now_ms();
    ASSERT_ERR(sage_task_start(t), SAGE_EBUSY);
    took = th_now_ms() - t0;
    snprintf(detail, sizeof detail, "%s", sage_errdetail());
    ASSERT_LE(4900, took);
    ASSERT_LE(took, 7000);
    ASSERT_DETAIL("the registry lock");
    ASSERT_DETAIL(lock_file());
    ASSERT_DETAIL("is held by another process for more than 5 s");
    let_go(h);

    /* held briefly: the start waits for it, then goes ahead */
    h = hold_lock(300);
    t0 = th_now_ms();
    ASSERT_OK(sage_task_start(t));
    took = th_now_ms() - t0;
    ASSERT_LE(250, took);
    ASSERT_LE(took, 2000);
    let_go(h);

    /* a stop never waits long for the lock: leaving is safe without it */
    h = hold_lock(-1);
    t0 = th_now_ms();
    ASSERT_OK(sage_task_stop(t));
    ASSERT_LE(th_now_ms() - t0, 1000);
    ASSERT_TRUE(access(reg_file("kv"), F_OK) != 0);
    let_go(h);
    sage_task_free(t);
}

static const struct th_case cases[] = {
    {"entry_planted_by_other_user", t_entry_planted_by_other_user, 30},
    {"entry_copied_by_other_user", t_entry_copied_by_other_user, 30},
    {"links_not_followed", t_links_not_followed, 30},
    {"queues_planted_by_other_user", t_queues_planted_by_other_user, 30},
    {"writable_segments_refused", t_writable_segments_refused, 30},
    {"shared_queue_any_owner", t_shared_queue_any_owner, 30},
    {"lock_planted_by_other_user", t_lock_planted_by_other_user, 30},
    {"lock_held_too_long", t_lock_held_too_long, 30},
    {NULL, NULL, 0},
};

TH_MAIN(cases)
