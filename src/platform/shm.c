/* shm.c - shm_open/mmap wrappers: the only place that maps memory. */
#include "platform/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err_internal.h"


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

sage_err sage__shm_create(const char *path, mode_t mode, size_t size, size_t populate,
                          void **memp)
{
    int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    void *mem;

    if (fd < 0)
        return errno == EEXIST ? SAGE_EEXIST : os_err("shm_open", path);
    if (fchmod(fd, mode) != 0 || ftruncate(fd, (off_t)size) != 0) {
        sage_err r = os_err("sizing", path);

        close(fd);
        shm_unlink(path);
        return r;
    }
    mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
               MAP_SHARED | (size <= populate ? MAP_POPULATE : 0), fd, 0);
    if (mem == MAP_FAILED) {
        sage_err r = os_err("mmap", path);

        close(fd);
        shm_unlink(path);
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

sage_err sage__shm_open(const char *path, void **memp, size_t *sizep, size_t populate)
{
    int fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
    struct stat st;
    void *mem;

    if (fd < 0)
        return os_err("shm_open", path);
    if (fstat(fd, &st) != 0) {
        sage_err r = os_err("fstat", path);

        close(fd);
        return r;
    }
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
            sage_err r = os_err("mmap", path);

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
    if (shm_unlink(path) != 0)
        return os_err("shm_unlink", path);
    return SAGE_OK;
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
