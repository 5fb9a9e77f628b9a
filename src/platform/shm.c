/* shm.c - /dev/shm segments and lock files: the only place that maps memory
 * or opens a shared name, and so the one place that checks who owns it. */
#include "platform/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/clock.h"


/*
 * Mappings are shared within a process: opening a segment this process has
 * mapped already (same device and inode, so not a newer segment under the
 * same name) returns the same mapping, counted. One address per segment
 * keeps every atomic of a queue at one address in this process (which is
 * also what lets ThreadSanitizer pair a release with its acquire), and
 * saves mappings when a process talks to itself.
 */
struct mapping {
    dev_t dev;
    ino_t ino;
    void *mem;
    size_t size;
    int refs;
    struct mapping *next;
};

static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t maps_once = PTHREAD_ONCE_INIT;
static struct mapping *maps;

static void lock_maps(void)
{
    pthread_mutex_lock(&maps_lock);
}

static void unlock_maps(void)
{
    pthread_mutex_unlock(&maps_lock);
}

/* the lock is held across fork, so a child never inherits it held by a
 * thread the child does not have */
static void maps_init(void)
{
    pthread_atfork(lock_maps, unlock_maps, unlock_maps);
}

static void take_maps(void)
{
    pthread_once(&maps_once, maps_init);
    lock_maps();
}

/* share returns a counted existing mapping of (dev, ino, size), or NULL */
static void *share(const struct stat *st)
{
    void *mem = NULL;

    take_maps();
    for (struct mapping *m = maps; m; m = m->next)
        if (m->dev == st->st_dev && m->ino == st->st_ino && m->size == (size_t)st->st_size) {
            m->refs++;
            mem = m->mem;
            break;
        }
    unlock_maps();
    return mem;
}

/* remember records a new mapping; if that fails it is simply not shared */
static void remember(const struct stat *st, void *mem)
{
    struct mapping *m = malloc(sizeof *m);

    if (m == NULL)
        return;
    m->dev = st->st_dev;
    m->ino = st->st_ino;
    m->mem = mem;
    m->size = (size_t)st->st_size;
    m->refs = 1;
    take_maps();
    m->next = maps;
    maps = m;
    unlock_maps();
}

static sage_err os_err(const char *what, const char *path)
{
    int e = errno;

    return SAGE_SETERR(sage__from_errno(e), "%s %s: %s", what, path, strerror(e));
}

/* ------------------------------------------------------------ ownership */

/*
 * The owner checks. /dev/shm is world-writable and sticky: anyone may add a
 * file at any free name, but only its owner (or root) may remove or replace
 * it. So a file that is ours stays ours until we remove it, and checking it
 * on the descriptor we then use (fstat, or lstat just before unlink, where
 * only we could swap it) leaves no window for another user.
 */

sage_err sage__shm_fs_path(char *buf, size_t cap, const char *path)
{
    if (path == NULL || path[0] != '/' || path[1] == '\0' || strchr(path + 1, '/') != NULL ||
        strcmp(path, "/.") == 0 || strcmp(path, "/..") == 0)
        return SAGE_SETERR(SAGE_EINVAL, "shared-memory name '%s' is not '/' and a file name",
                           path ? path : "(null)");
    if ((size_t)snprintf(buf, cap, SAGE__SHM_DIR "%s", path) >= cap)
        return SAGE_SETERR(SAGE_EINVAL, "shared-memory name '%.40s...' is too long", path);
    return SAGE_OK;
}

/* who writes "uid N (name)", the name when the user database knows it */
static void who(uid_t uid, char *out, size_t cap)
{
    struct passwd pw, *found = NULL;
    char buf[1024];

    if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != NULL)
        snprintf(out, cap, "uid %u (%s)", (unsigned)uid, found->pw_name);
    else
        snprintf(out, cap, "uid %u", (unsigned)uid);
}

static const char *kind(mode_t m)
{
    return S_ISLNK(m)    ? "symbolic link"
           : S_ISDIR(m)  ? "directory"
           : S_ISFIFO(m) ? "FIFO"
           : S_ISSOCK(m) ? "socket"
           : S_ISCHR(m)  ? "character device"
           : S_ISBLK(m)  ? "block device"
                         : "special file";
}

static const char *writers(mode_t m)
{
    return (m & 022) == 022 ? "group and others"
           : (m & 020)      ? "group"
           : (m & 002)      ? "others"
                            : NULL;
}

/* ours tells whether st describes a file this process may use */
static bool ours(const struct stat *st, unsigned flags)
{
    if (!S_ISREG(st->st_mode))
        return false;
    return (flags & SAGE__SHM_ANY_OWNER) || (st->st_uid == geteuid() && (st->st_mode & 022) == 0);
}

/* refuse records why the file fs (described by st, from fstat or lstat) is
 * not ours to use, or remove (verb), and returns SAGE_EPERM */
static sage_err refuse(const char *fs, const struct stat *st, const char *verb)
{
    char owner[320];
    const char *w = writers(st->st_mode);
    unsigned me = (unsigned)geteuid();

    who(st->st_uid, owner, sizeof owner);
    if (S_ISLNK(st->st_mode))
        return SAGE_SETERR(SAGE_EPERM, "%s is a symbolic link (owned by %s): refusing to follow it",
                           fs, owner);
    if (!S_ISREG(st->st_mode))
        return SAGE_SETERR(SAGE_EPERM,
                           "%s is a %s (owned by %s), not a regular file: refusing to %s it", fs,
                           kind(st->st_mode), owner, verb);
    if (st->st_uid != me)
        return SAGE_SETERR(SAGE_EPERM,
                           "%s is owned by %s%s%s, not by this user (uid %u): refusing to %s it",
                           fs, owner, w ? " and writable by " : "", w ? w : "", me, verb);
    return SAGE_SETERR(SAGE_EPERM,
                       "%s is writable by %s (mode %04o), not by its owner alone (this user, "
                       "uid %u): refusing to %s it",
                       fs, w ? w : "others", (unsigned)(st->st_mode & 07777), me, verb);
}

/* open_failed explains a failed open of fs: a link or a file we may not
 * open is described with its owner; anything else is the OS's word */
static sage_err open_failed(const char *what, const char *fs)
{
    int e = errno;
    struct stat st;

    if ((e == ELOOP || e == EACCES || e == EPERM) && lstat(fs, &st) == 0) {
        char owner[320];

        if (S_ISLNK(st.st_mode))
            return refuse(fs, &st, "follow");
        who(st.st_uid, owner, sizeof owner);
        return SAGE_SETERR(SAGE_EPERM,
                           "%s %s: permission denied (owned by %s, mode %04o; this user is uid %u)",
                           what, fs, owner, (unsigned)(st.st_mode & 07777), (unsigned)geteuid());
    }
    errno = e;
    return os_err(what, fs);
}

/* open_checked opens fs (never through a link) and checks what it got */
static sage_err open_checked(const char *fs, int oflags, unsigned flags, int *fdp, struct stat *st)
{
    /* O_NONBLOCK: a FIFO planted at the name must not block the open */
    int fd = open(fs, oflags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);

    if (fd < 0)
        return open_failed("opening", fs);
    if (fstat(fd, st) != 0) {
        sage_err r = os_err("fstat", fs);

        close(fd);
        return r;
    }
    if (!ours(st, flags)) {
        close(fd);
        return refuse(fs, st, "use");
    }
    *fdp = fd;
    return SAGE_OK;
}

/* exists explains an O_EXCL creation that found fs taken: SAGE_EEXIST when
 * what is there may be ours (opening it will check the rest), else the
 * refusal. Gone meanwhile: SAGE_EEXIST, and the caller's next open says so. */
static sage_err exists(const char *fs, unsigned flags)
{
    struct stat st;

    if (lstat(fs, &st) != 0)
        return SAGE_EEXIST;
    if (!S_ISREG(st.st_mode) || (!(flags & SAGE__SHM_ANY_OWNER) && st.st_uid != geteuid()))
        return refuse(fs, &st, "use");
    return SAGE_EEXIST;
}

/* ------------------------------------------------------------- segments */

sage_err sage__shm_create(const char *path, mode_t mode, size_t size, unsigned flags,
                          size_t populate, void **memp)
{
    char fs[PATH_MAX];
    sage_err r = sage__shm_fs_path(fs, sizeof fs, path);
    int fd;
    void *mem;

    if (r != SAGE_OK)
        return r;
    fd = open(fs, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return errno == EEXIST ? exists(fs, flags) : open_failed("creating", fs);
    /* unlink(fs) on failure below: the name is ours, no one else can swap it */
    if (fchmod(fd, mode) != 0 || ftruncate(fd, (off_t)size) != 0) {
        r = os_err("sizing", fs);
        close(fd);
        unlink(fs);
        return r;
    }
    mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
               MAP_SHARED | (size <= populate ? MAP_POPULATE : 0), fd, 0);
    if (mem == MAP_FAILED) {
        r = os_err("mmap", fs);
        close(fd);
        unlink(fs);
        return r;
    }
    {
        struct stat st;

        if (fstat(fd, &st) == 0)
            remember(&st, mem);
    }
    close(fd);
    *memp = mem;
    return SAGE_OK;
}

sage_err sage__shm_open(const char *path, unsigned flags, void **memp, size_t *sizep,
                        size_t populate)
{
    char fs[PATH_MAX];
    struct stat st;
    void *mem;
    int fd;
    sage_err r = sage__shm_fs_path(fs, sizeof fs, path);

    if (r != SAGE_OK || (r = open_checked(fs, O_RDWR, flags, &fd, &st)) != SAGE_OK)
        return r;
    if (st.st_size <= 0) { /* being created: the caller waits for the header */
        close(fd);
        *memp = NULL;
        *sizep = 0;
        return SAGE_OK;
    }
    mem = share(&st);
    if (mem == NULL) {
        mem = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | ((size_t)st.st_size <= populate ? MAP_POPULATE : 0), fd, 0);
        if (mem == MAP_FAILED) {
            r = os_err("mmap", fs);
            close(fd);
            return r;
        }
        remember(&st, mem);
    }
    close(fd);
    *memp = mem;
    *sizep = (size_t)st.st_size;
    return SAGE_OK;
}

sage_err sage__shm_unlink(const char *path)
{
    char fs[PATH_MAX];
    struct stat st;
    sage_err r = sage__shm_fs_path(fs, sizeof fs, path);

    if (r != SAGE_OK)
        return r;
    if (lstat(fs, &st) != 0)
        return os_err("removing", fs);
    /* the mode does not matter here: a file of ours is ours to remove */
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid())
        return refuse(fs, &st, "remove");
    if (unlink(fs) != 0)
        return os_err("removing", fs);
    return SAGE_OK;
}

/* ---------------------------------------------------------------- locks */

#define LOCK_PAUSE_MIN_NS (1000 * 1000LL)
#define LOCK_PAUSE_MAX_NS (50 * 1000 * 1000LL)

sage_err sage__shm_lock(const char *path, int64_t wait_ns, int *fdp)
{
    char fs[PATH_MAX];
    struct stat st;
    int64_t deadline = sage__now_ns() + wait_ns, pause = LOCK_PAUSE_MIN_NS;
    int fd;
    sage_err r = sage__shm_fs_path(fs, sizeof fs, path);

    if (r != SAGE_OK || (r = open_checked(fs, O_RDWR | O_CREAT, 0, &fd, &st)) != SAGE_OK)
        return r;
    /* flock has no timed form, and no wake-up tells a waiter the lock is
     * free: try, and back off. Holders keep it for microseconds, so the
     * first or second try almost always wins. */
    for (;;) {
        int64_t now;

        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *fdp = fd;
            return SAGE_OK;
        }
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK) {
            r = os_err("locking", fs);
            close(fd);
            return r;
        }
        now = sage__now_ns();
        if (now >= deadline) {
            close(fd);
            return SAGE_SETERR(SAGE_EBUSY, "%s is held by another process for more than %g s", fs,
                               wait_ns / 1e9);
        }
        {
            int64_t ns = pause < deadline - now ? pause : deadline - now;
            struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};

            nanosleep(&ts, NULL); /* a signal only shortens it: the loop rechecks */
        }
        if (pause < LOCK_PAUSE_MAX_NS)
            pause = pause * 2 < LOCK_PAUSE_MAX_NS ? pause * 2 : LOCK_PAUSE_MAX_NS;
    }
}

void sage__shm_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

sage_err sage__map_anon(void **memp, size_t size)
{
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (mem == MAP_FAILED)
        return os_err("mmap", "(anonymous)");
    *memp = mem;
    return SAGE_OK;
}

void sage__unmap(void *mem, size_t size)
{
    struct mapping **pp, *gone = NULL;

    if (mem == NULL || size == 0)
        return;
    take_maps();
    for (pp = &maps; *pp; pp = &(*pp)->next)
        if ((*pp)->mem == mem) {
            if (--(*pp)->refs > 0) {
                unlock_maps();
                return; /* still used by another handle */
            }
            gone = *pp;
            *pp = gone->next;
            break;
        }
    unlock_maps();
    free(gone);
    munmap(mem, size);
}
