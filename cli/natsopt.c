/* natsopt.c - the NATS settings of the cluster commands. */
#include "natsopt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

sage_err cli_nats_init(struct cli_nats *n, const char *urls, const sage_config *cfg)
{
    const char *env;

    memset(n, 0, sizeof *n);
    if (cfg)
        n->conf = *sage_config_nats(cfg);
    else
        sage_nats_conf_init(&n->conf);
    if (urls) {
        size_t count = 1, k = 0;
        char *save = NULL, *tok;

        for (const char *c = urls; *c; c++)
            count += *c == ',';
        n->urls_copy = strdup(urls);
        n->urls = calloc(count, sizeof *n->urls);
        if (n->urls_copy == NULL || n->urls == NULL) {
            cli_nats_fini(n);
            return cli_fail(SAGE_ENOMEM, "out of memory");
        }
        for (tok = strtok_r(n->urls_copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            if (*tok)
                n->urls[k++] = tok;
        if (k == 0) {
            cli_nats_fini(n);
            return cli_fail(SAGE_EINVAL, "--nats: no server URL in '%s'", urls);
        }
        n->conf.servers = n->urls;
        n->conf.nservers = k;
    }
    if ((env = getenv("SAGESVC_NATS_USER")) != NULL && *env) {
        n->conf.user = env;
        n->conf.password = getenv("SAGESVC_NATS_PASSWORD") ? getenv("SAGESVC_NATS_PASSWORD") : "";
        n->conf.token = NULL;
    }
    if ((env = getenv("SAGESVC_NATS_TOKEN")) != NULL && *env) {
        n->conf.token = env;
        n->conf.user = n->conf.password = NULL;
    }
    return SAGE_OK;
}

void cli_nats_fini(struct cli_nats *n)
{
    free(n->urls_copy);
    free(n->urls);
    n->urls_copy = NULL;
    n->urls = NULL;
}

void cli_nats_servers(const struct cli_nats *n, char *buf, size_t cap)
{
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n->conf.nservers && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "," : "", n->conf.servers[i]);
}

sage_err cli_read_file(const char *path, char **textp, size_t *lenp)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0, cap = 0;

    if (f == NULL)
        return cli_fail(SAGE_ECONFIG, "%s: %s", path, strerror(errno));
    for (;;) {
        size_t got;

        if (cap - len < 4096) {
            char *t = realloc(text, cap + 65536);

            if (t == NULL) {
                free(text);
                fclose(f);
                return cli_fail(SAGE_ENOMEM, "out of memory reading %s", path);
            }
            text = t;
            cap += 65536;
        }
        got = fread(text + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(text);
        fclose(f);
        return cli_fail(SAGE_ECONFIG, "%s: read error", path);
    }
    fclose(f);
    text[len] = '\0';
    *textp = text;
    *lenp = len;
    return SAGE_OK;
}
