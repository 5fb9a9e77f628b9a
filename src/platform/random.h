/* random.h - random bytes for names that must never repeat. */
#ifndef SAGE_PLATFORM_RANDOM_H
#define SAGE_PLATFORM_RANDOM_H

#include <stddef.h>

/* sage__random fills n bytes at buf from the kernel's generator
 * (getrandom); if it is unavailable, from the clocks, pid and a counter
 * mixed together: unique, if not secret. Thread-safe; never fails. */
void sage__random(void *buf, size_t n);

#endif
