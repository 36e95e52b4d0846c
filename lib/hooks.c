/* SPDX-License-Identifier: MIT */
/* The resource hooks: every allocation, thread and process the library
 * creates goes through these weak definitions. The fault-injection test
 * (tests/fault.c) links strong definitions over them to make the Nth call
 * fail, so the library is compiled once and tested as shipped. They are
 * hidden: a program linking the shared library cannot replace them. */
#include "sp-private.h"

#include <unistd.h>

#if defined(__GNUC__)
#define SP_WEAK __attribute__((weak))
#else
#define SP_WEAK
#endif

SP_WEAK void *sp_malloc(size_t size)
{
    return malloc(size);
}

SP_WEAK void *sp_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}

SP_WEAK void *sp_realloc(void *p, size_t size)
{
    return realloc(p, size);
}

SP_WEAK void *sp_aligned_alloc(size_t align, size_t size)
{
    return aligned_alloc(align, size);
}

SP_WEAK int sp_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                              void *(*fn)(void *), void *arg)
{
    return pthread_create(t, attr, fn, arg);
}

SP_WEAK pid_t sp_fork(void)
{
    return fork();
}
