/*
 * consumer.c - a program built against an installed sagesvc, as a user
 * builds one: it includes <sage/...> from the installed tree and links the
 * installed library (test_install.sh builds it with pkg-config and with
 * find_package). It names an error, then sends a message through a private
 * queue and receives it back, and prints both on one line.
 */
#include <stdio.h>
#include <string.h>

#include <sage/err.h>
#include <sage/queue.h>

int main(void)
{
    sage_queue *q;
    char buf[64];
    size_t len = 0;
    sage_err r;

    if ((r = sage_queue_open(&q, NULL, NULL)) != SAGE_OK) {
        fprintf(stderr, "consumer: opening a private queue: %s\n", sage_strerror(r));
        return 1;
    }
    r = sage_queue_send(q, "hello", 5, 1000);
    if (r == SAGE_OK)
        r = sage_queue_recv(&len, q, buf, sizeof buf - 1, 1000);
    sage_queue_close(q);
    if (r != SAGE_OK) {
        fprintf(stderr, "consumer: queue round trip: %s\n", sage_strerror(r));
        return 1;
    }
    buf[len] = '\0';
    printf("sagesvc consumer: %s; queue round trip: %s\n", sage_strerror(SAGE_ETIMEDOUT), buf);
    return 0;
}
