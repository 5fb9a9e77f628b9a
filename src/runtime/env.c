/* env.c - sage_env, the in-process registry of tasks by name. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "base/name.h"
#include "runtime/task_internal.h"

struct entry {
    char name[SAGE_NAME_MAX + 1];
    sage_task *task;
};

struct sage_env {
    char ns[SAGE_NAME_MAX + 1];
    pthread_mutex_t lock;
    struct entry *items;
    size_t n, cap;
};

sage_err sage_env_new(sage_env **ep, const char *ns)
{
    sage_env *e;
    sage_err r;

    if (ep == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_env_new: ep is NULL");
    if (ns == NULL)
        ns = "default";
    if ((r = sage__check_name(ns, "namespace", 0)) != SAGE_OK)
        return r;
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    snprintf(e->ns, sizeof e->ns, "%s", ns);
    pthread_mutex_init(&e->lock, NULL);
    *ep = e;
    return SAGE_OK;
}

void sage_env_free(sage_env *e)
{
    if (e == NULL)
        return;
    pthread_mutex_destroy(&e->lock);
    free(e->items);
    free(e);
}

const char *sage_env_ns(const sage_env *e)
{
    return e ? e->ns : "default";
}

sage_err sage_env_register(sage_env *e, const char *name, sage_task *t)
{
    sage_err r;

    if (e == NULL || t == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_env_register: invalid argument");
    if (name == NULL)
        name = sage_task_name(t);
    if ((r = sage__check_name(name, "service", 0)) != SAGE_OK)
        return r;
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->items[i].name, name) == 0) {
            pthread_mutex_unlock(&e->lock);
            return SAGE_SETERR(SAGE_EEXIST, "service '%s' is already registered", name);
        }
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 8;
        struct entry *items = realloc(e->items, cap * sizeof *items);

        if (items == NULL) {
            pthread_mutex_unlock(&e->lock);
            return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
        }
        e->items = items;
        e->cap = cap;
    }
    snprintf(e->items[e->n].name, sizeof e->items[e->n].name, "%s", name);
    e->items[e->n].task = t;
    e->n++;
    pthread_mutex_unlock(&e->lock);
    return SAGE_OK;
}

sage_err sage_env_unregister(sage_env *e, const char *name)
{
    if (e == NULL || name == NULL)
        return SAGE_SETERR(SAGE_EINVAL, "sage_env_unregister: invalid argument");
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->items[i].name, name) == 0) {
            e->items[i] = e->items[--e->n];
            pthread_mutex_unlock(&e->lock);
            return SAGE_OK;
        }
    pthread_mutex_unlock(&e->lock);
    return SAGE_SETERR(SAGE_ENOENT, "service '%s' is not registered", name);
}

sage_task *sage_env_find(sage_env *e, const char *name)
{
    sage_task *t = NULL;

    if (e == NULL || name == NULL)
        return NULL;
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->items[i].name, name) == 0) {
            t = e->items[i].task;
            break;
        }
    pthread_mutex_unlock(&e->lock);
    return t;
}

int sage__env_server(sage_env *e, const char *name, struct sage__tp_server **sp,
                     sage_transport *kindp, sage_task **tp, struct sage__direct **dp)
{
    int found = 0;

    if (e == NULL)
        return 0;
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->items[i].name, name) == 0) {
            /* under the lock: a task is unregistered before it is freed */
            found = sage__task_server(e->items[i].task, sp, kindp) ? 2 : 1;
            *tp = e->items[i].task;
            if (found == 2)
                *dp = sage__direct_ref(e->items[i].task->direct);
            break;
        }
    pthread_mutex_unlock(&e->lock);
    return found;
}
