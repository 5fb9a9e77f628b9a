/* nats_inst.c - the replicas of a NATS service a caller knows of. */
#include "transport/nats_inst.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err_internal.h"
#include "sage/task.h"
#include "transport/natskv.h"

struct inst {
    char id[64];
    int64_t seen_ms;    /* 0: a free slot */
    int64_t suspect_ms; /* when the caller gave up on it; 0: it answers */
};

struct sage__ninst {
    pthread_mutex_t lock;
    char ns[SAGE_NAME_MAX + 1];
    char name[SAGE_NAME_MAX + 1];
    int64_t asked_ms;
    uint32_t next; /* where the next pick starts */
    struct inst inst[SAGE__NINST_MAX];
};

void sage__nats_inst_subject(char *buf, size_t cap, const char *ns, const char *name,
                             const char *id)
{
    snprintf(buf, cap, "sage.%s.inst.%s.%s", ns, name, id);
}

sage_err sage__ninst_new(struct sage__ninst **ip, const char *ns, const char *name)
{
    struct sage__ninst *t = calloc(1, sizeof *t);

    if (t == NULL)
        return SAGE_SETERR(SAGE_ENOMEM, "out of memory");
    pthread_mutex_init(&t->lock, NULL);
    snprintf(t->ns, sizeof t->ns, "%s", ns);
    snprintf(t->name, sizeof t->name, "%s", name);
    *ip = t;
    return SAGE_OK;
}

void sage__ninst_free(struct sage__ninst *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t);
}

bool sage__ninst_due(struct sage__ninst *t, int64_t now_ms)
{
    bool due;

    pthread_mutex_lock(&t->lock);
    due = now_ms - t->asked_ms >= SAGE__NINST_ASK_MS;
    if (due)
        t->asked_ms = now_ms;
    pthread_mutex_unlock(&t->lock);
    return due;
}

/* valid_id: an ID that can be a subject's last token */
static bool valid_id(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n >= sizeof ((struct inst *)0)->id)
        return false;
    for (size_t i = 0; i < n; i++)
        if (id[i] == '.' || id[i] == '*' || id[i] == '>' || id[i] <= ' ')
            return false;
    return true;
}

void sage__ninst_pong(struct sage__ninst *t, const void *data, size_t len, int64_t now_ms)
{
    json_t *o = json_loadb(data, len, 0, NULL);
    const char *id;
    struct inst *slot = NULL, *oldest = NULL;

    if (o == NULL)
        return;
    id = sage__jstr(o, "id");
    if (strcmp(sage__jstr(o, "name"), t->name) != 0 ||
        strcmp(sage__jstr(json_object_get(o, "metadata"), "sagesvc.namespace"), t->ns) != 0 ||
        strcmp(sage__jstr(json_object_get(o, "metadata"), "sagesvc.delivery"), "durable") == 0 ||
        !valid_id(id)) {
        json_decref(o);
        return;
    }
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < SAGE__NINST_MAX && slot == NULL; i++) {
        struct inst *x = &t->inst[i];

        if (x->seen_ms && strcmp(x->id, id) == 0)
            slot = x;
        else if (oldest == NULL || x->seen_ms < oldest->seen_ms)
            oldest = x; /* a free slot (0) or the longest unseen */
    }
    if (slot == NULL) {
        slot = oldest;
        snprintf(slot->id, sizeof slot->id, "%s", id);
        slot->suspect_ms = 0;
    }
    slot->seen_ms = now_ms;
    if (slot->suspect_ms != 0 && now_ms - slot->suspect_ms >= SAGE__NINST_FRESH_MS)
        slot->suspect_ms = 0;
    pthread_mutex_unlock(&t->lock);
    json_decref(o);
}

uint32_t sage__ninst_pick(struct sage__ninst *t, uint32_t avoid, int64_t now_ms, char *buf,
                          size_t cap)
{
    uint32_t got = SAGE__NINST_NONE;

    pthread_mutex_lock(&t->lock);
    for (uint32_t k = 0; k < SAGE__NINST_MAX; k++) {
        uint32_t i = (t->next + k) % SAGE__NINST_MAX;
        const struct inst *x = &t->inst[i];

        if (i == avoid || x->seen_ms == 0 || x->suspect_ms != 0 ||
            now_ms - x->seen_ms > SAGE__NINST_STALE_MS)
            continue;
        got = i;
        t->next = i + 1;
        sage__nats_inst_subject(buf, cap, t->ns, t->name, x->id);
        break;
    }
    pthread_mutex_unlock(&t->lock);
    return got;
}

void sage__ninst_suspect(struct sage__ninst *t, uint32_t i, int64_t now_ms)
{
    if (i >= SAGE__NINST_MAX)
        return;
    pthread_mutex_lock(&t->lock);
    if (t->inst[i].seen_ms != 0)
        t->inst[i].suspect_ms = now_ms != 0 ? now_ms : 1;
    pthread_mutex_unlock(&t->lock);
}
