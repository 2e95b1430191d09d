/*
 * alloccount.c: LD_PRELOAD shim that counts malloc, calloc and realloc
 * calls and prints the total at exit, for "allocations per event" in the
 * benchmarks. Uses glibc's __libc_* entry points, so it needs no dlsym.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static atomic_ullong allocs;

__attribute__((visibility("default"))) void *malloc(size_t n)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_malloc(n);
}

__attribute__((visibility("default"))) void *calloc(size_t a, size_t b)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_calloc(a, b);
}

__attribute__((visibility("default"))) void *realloc(void *p, size_t n)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}

__attribute__((destructor)) static void report(void)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "alloccount: %llu\n",
                     (unsigned long long)atomic_load(&allocs));
    if (write(2, buf, (size_t)n) < 0)
        _exit(1);
}
