/*
 * metrics.h - the Prometheus endpoint of `sagesvc run --metrics ADDR:PORT`.
 *
 * GET /metrics answers the figures of the hosted tasks in the Prometheus
 * text exposition format, version 0.0.4; any other path is 404. The server
 * runs on a thread of its own (libmicrohttpd's), which reads the tasks with
 * sage_task_status only: it never blocks them.
 */
#ifndef SAGESVC_CLI_METRICS_H
#define SAGESVC_CLI_METRICS_H

#include <stddef.h>

#include "sage/err.h"
#include "sage/task.h"

typedef struct cli_metrics cli_metrics;

/*
 * cli_metrics_open binds addr ("127.0.0.1:9464", "[::1]:0", "localhost:9464";
 * port 0 picks a free port) and starts serving the figures of tasks[0..n)
 * (borrowed: they must outlive the server; the array is copied). Writes the
 * server to *mp on success. SAGE_EINVAL for a malformed address, SAGE_ESYS
 * when it cannot be bound (detail from cli_fail: which address, why),
 * SAGE_ENOMEM. Call from the main thread, with the signals the program waits
 * for already blocked (the server's thread inherits the mask).
 */
sage_err cli_metrics_open(cli_metrics **mp, const char *addr, sage_task *const *tasks, size_t n);

/* A scrape's figures: *textp (malloc'd, the caller frees) and *lenp, or an
 * error (the scrape is answered 500). Runs on the server's thread. */
typedef sage_err (*cli_metrics_render_fn)(void *arg, char **textp, size_t *lenp);

/* cli_metrics_open_fn is cli_metrics_open serving what render writes (arg
 * borrowed until cli_metrics_close). */
sage_err cli_metrics_open_fn(cli_metrics **mp, const char *addr, cli_metrics_render_fn render,
                             void *arg);

/* One service's series: its figures and the labels that tell it apart. */
struct cli_metrics_item {
    const sage_status *st; /* NULL: it did not answer (sagesvc_up 0 and nothing else) */
    const char *ns, *name; /* labels namespace and service */
    const char *host;      /* label host (the sagesvc host), or NULL */
    const char *replica;   /* label replica (its instance id), or NULL */
};

/* cli_metrics_render_items writes the exposition of items[0..n) as
 * cli_metrics_render does. SAGE_ENOMEM on failure. Thread-safe. */
sage_err cli_metrics_render_items(const struct cli_metrics_item *items, size_t n, char **textp,
                                  size_t *lenp);

/* cli_metrics_check tells whether addr has the form cli_metrics_open
 * accepts (without resolving or binding it): SAGE_OK, or SAGE_EINVAL with a
 * cli_fail detail. Thread-safe. */
sage_err cli_metrics_check(const char *addr);

/* cli_metrics_url returns "http://ADDR:PORT/metrics" with the port actually
 * bound (borrowed, valid until cli_metrics_close). */
const char *cli_metrics_url(const cli_metrics *m);

/* cli_metrics_close stops serving (waiting for a scrape in progress) and
 * frees m. NULL is ignored. */
void cli_metrics_close(cli_metrics *m);

/*
 * cli_metrics_render writes the exposition of tasks[0..n) into a malloc'd,
 * NUL-terminated buffer, stores it in *textp and its length in *lenp; the
 * caller frees it. SAGE_ENOMEM on failure. Thread-safe (reads the tasks
 * with sage_task_status).
 */
sage_err cli_metrics_render(sage_task *const *tasks, size_t n, char **textp, size_t *lenp);

#endif
