/* SPDX-License-Identifier: MIT */
/* The resource hooks: every allocation, thread and process the library
 * creates goes through these weak definitions. The fault-injection test
 * (tests/fault.c) links strong definitions over them to make the Nth call
 * fail, so the library is compiled once and tested as shipped. They are
 * hidden: a program linking the shared library cannot replace them. */
#define _GNU_SOURCE /* memfd_create, MFD_* */
#include "sp-private.h"

#include <errno.h>
#include <sys/mman.h>
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

SP_WEAK int sp_memfd(void)
{
#if defined(MFD_CLOEXEC) && defined(MFD_ALLOW_SEALING)
    return memfd_create("simplepar-result", MFD_CLOEXEC | MFD_ALLOW_SEALING);
#else
    errno = ENOSYS;
    return -1;
#endif
}

SP_WEAK void *sp_mmap(void *addr, size_t len, int prot, int flags, int fd,
                      off_t off)
{
    return mmap(addr, len, prot, flags, fd, off);
}
