/* shmlist.c - listing POSIX shared memory segments (Linux: files in /dev/shm). */
#include "platform/shmlist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/shm.h"

sage_err sage__shm_list(const char *prefix, sage__shm_list_fn fn, void *arg)
{
    size_t plen = strlen(prefix);
    uid_t me = geteuid();
    struct dirent *e;
    DIR *d = opendir(SAGE__SHM_DIR);

    if (d == NULL)
        return SAGE_SETERR(SAGE_ESYS, "cannot list %s: %s", SAGE__SHM_DIR, strerror(errno));
    for (;;) {
        struct stat st;

        errno = 0;
        e = readdir(d);
        if (e == NULL)
            break;
        if (strncmp(e->d_name, prefix, plen) != 0)
            continue;
        /* stat, not open: another user's segment is never touched, and a
         * link is not followed (a segment is a plain file) */
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* removed meanwhile */
        if (!S_ISREG(st.st_mode) || st.st_uid != me)
            continue;
        if (fn(arg, e->d_name) != 0) {
            closedir(d);
            return SAGE_OK;
        }
    }
    if (errno != 0) {
        int err = errno;

        closedir(d);
        return SAGE_SETERR(SAGE_ESYS, "cannot list %s: %s", SAGE__SHM_DIR, strerror(err));
    }
    closedir(d);
    return SAGE_OK;
}
