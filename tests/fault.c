/* SPDX-License-Identifier: MIT */
/* The fault-injection hooks: strong definitions of the resource hooks
 * that the library defines weakly (lib/hooks.c), linked over them in the
 * test binary only. Each kind of resource has a
 * countdown; when it reaches its Nth call, that call fails as the C library
 * would (NULL with ENOMEM, EAGAIN). 0 = never fail. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

struct fi_counters *fi;

void fi_init(void)
{
    void *m = mmap(NULL, sizeof *fi, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    fi = m;
}

static int fire(_Atomic long *c)
{
    long v = atomic_load(c);
    while (v > 0)
        if (atomic_compare_exchange_weak(c, &v, v - 1)) {
            if (v == 1)
                atomic_fetch_add(&fi->fired, 1);
            return v == 1;
        }
    return 0;
}

void *sp_malloc(size_t size)
{
    if (fire(&fi->alloc)) {
        errno = ENOMEM;
        return NULL;
    }
    return malloc(size);
}

void *sp_calloc(size_t n, size_t size)
{
    if (fire(&fi->alloc)) {
        errno = ENOMEM;
        return NULL;
    }
    return calloc(n, size);
}

void *sp_realloc(void *p, size_t size)
{
    if (fire(&fi->alloc)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, size);
}

void *sp_aligned_alloc(size_t align, size_t size)
{
    if (fire(&fi->alloc)) {
        errno = ENOMEM;
        return NULL;
    }
    return aligned_alloc(align, size);
}

int sp_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                      void *(*fn)(void *), void *arg)
{
    if (fire(&fi->thread))
        return EAGAIN;
    return pthread_create(t, attr, fn, arg);
}

pid_t sp_fork(void)
{
    if (fire(&fi->fork)) {
        errno = EAGAIN;
        return -1;
    }
    return fork();
}
