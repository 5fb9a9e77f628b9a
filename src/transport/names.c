/* names.c - the names of shared-memory objects, derived in one place so they stay in step. */
#include "transport/names.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/err_internal.h"
#include "platform/proc.h"
#include "platform/random.h"
#include "sage/task.h"

void sage__req_queue_name(char *buf, size_t cap, const char *ns, const char *name)
{
    snprintf(buf, cap, "%u.%s.%s.req", (unsigned)geteuid(), ns, name);
}

void sage__reg_path(char *buf, size_t cap, const char *ns, const char *name)
{
    snprintf(buf, cap, "/sage.r.%u.%s.%s", (unsigned)geteuid(), ns, name);
}

void sage__reply_queue_name(char *buf, size_t cap, const char *ns)
{
    uint64_t nonce = 0;

    sage__random(&nonce, sizeof nonce);
    snprintf(buf, cap, "%u.%s.reply.%d.%016llx", (unsigned)geteuid(), ns, (int)sage__pid(),
             (unsigned long long)nonce);
}
