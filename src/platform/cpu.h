/* cpu.h - CPU hints: spin-wait pause and cache-line demotion. */
#ifndef SAGE_PLATFORM_CPU_H
#define SAGE_PLATFORM_CPU_H

#include <stddef.h>
#include <stdint.h>

/* sage__cpu_relax: the spin-wait hint of the CPU. */
static inline void sage__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/*
 * sage__cache_demote hints that the cache lines of [p, p + n) will next be
 * used by another core: x86 CLDEMOTE moves them from this core's private
 * caches to the shared level, so the other core's next write finds them
 * there instead of snooping ours. A no-op elsewhere; executes as a NOP on
 * x86 processors without the instruction.
 */
static inline void sage__cache_demote(const void *p, size_t n)
{
#if defined(__x86_64__)
    const uint8_t *c = (const uint8_t *)((uintptr_t)p & ~(uintptr_t)63);
    const uint8_t *end = (const uint8_t *)p + n;

    for (; c < end; c += 64)
        __asm__ __volatile__("cldemote (%0)" : : "r"(c) : "memory");
#else
    (void)p;
    (void)n;
#endif
}

#endif
