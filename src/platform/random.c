/* random.c - random bytes for names that must never repeat. */
#include "platform/random.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

void sage__random(void *buf, size_t n)
{
    static _Atomic uint64_t counter;
    uint8_t *p = buf;
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, GRND_NONBLOCK);

        if (r <= 0)
            break;
        got += (size_t)r;
    }
    while (got < n) { /* no kernel generator: unique, not secret */
        struct timespec a, b;
        uint64_t x;
        size_t k;

        clock_gettime(CLOCK_REALTIME, &a);
        clock_gettime(CLOCK_MONOTONIC, &b);
        x = mix((uint64_t)a.tv_nsec ^ (uint64_t)a.tv_sec << 30 ^ (uint64_t)b.tv_nsec << 7 ^
                (uint64_t)getpid() << 40 ^ atomic_fetch_add(&counter, 1) * 0x9e3779b97f4a7c15ull);
        k = n - got < sizeof x ? n - got : sizeof x;
        memcpy(p + got, &x, k);
        got += k;
    }
}
