/* SPDX-License-Identifier: MIT */
/* The descriptor registry: every descriptor the library owns in this
 * process (workers' channels and pidfds, of every call running in any
 * thread) is listed here, and workers are forked while holding the
 * registry's lock. Right after the fork the child closes every listed
 * descriptor but its own channel, so a worker holds exactly one channel to
 * its parent: a task writing to descriptors it does not own cannot reach
 * another worker's channel, and a worker forked for one call cannot keep
 * another call's channels open.
 *
 * The lock is a spinlock on a C11 atomic flag rather than a mutex: the
 * child inherits it held by the forking thread (its only thread) and
 * simply clears it, which is well-defined for an atomic, so a worker may
 * itself start process-backend calls. Holders keep it for a fork at most
 * (about 100 µs), so waiters spin briefly, then yield, then sleep. */
#define _GNU_SOURCE /* close_range via syscall, SYS_close_range */
#include "proc.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static struct {
    atomic_flag lock;
    uint64_t *bits; /* bit fd set: the library owns fd */
    size_t words;
} reg = {.lock = ATOMIC_FLAG_INIT};

void sp_fds_lock(void)
{
    for (unsigned spins = 0;
         atomic_flag_test_and_set_explicit(&reg.lock, memory_order_acquire);
         spins++) {
        if (spins < 64)
            continue;
        if (spins < 256)
            sched_yield();
        else
            nanosleep(&(struct timespec){0, 20000}, NULL);
    }
}

void sp_fds_unlock(void)
{
    atomic_flag_clear_explicit(&reg.lock, memory_order_release);
}

/* Under the lock. 0, or -1 when the bitmap cannot grow (the descriptor is
 * then not listed and the caller must not keep it). */
int sp_fds_add(int fd)
{
    if (fd < 0)
        return -1;
    size_t w = (size_t)fd / 64;
    if (w >= reg.words) {
        size_t words = reg.words ? reg.words : 4;
        while (words <= w)
            words *= 2;
        uint64_t *bits = sp_realloc(reg.bits, words * sizeof *bits);
        if (!bits)
            return -1;
        memset(bits + reg.words, 0, (words - reg.words) * sizeof *bits);
        reg.bits = bits;
        reg.words = words;
    }
    reg.bits[w] |= (uint64_t)1 << (fd % 64);
    return 0;
}

/* Under the lock. */
void sp_fds_del(int fd)
{
    if (fd >= 0 && (size_t)fd / 64 < reg.words)
        reg.bits[(size_t)fd / 64] &= ~((uint64_t)1 << (fd % 64));
}

int sp_fds_close(int fd)
{
    if (fd < 0)
        return 0;
    sp_fds_lock();
    sp_fds_del(fd);
    int rc = close(fd); /* under the lock: the number is not reused first */
    sp_fds_unlock();
    return rc;
}

/* Close [lo, hi] in one system call where the kernel has close_range. */
static void close_span(unsigned lo, unsigned hi)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, lo, hi, 0) == 0)
        return;
#endif
    for (unsigned fd = lo; fd <= hi; fd++)
        close((int)fd);
}

void sp_fds_child(int keep)
{
    if (keep >= 0)
        sp_fds_del(keep);
    for (size_t w = 0; w < reg.words; w++) {
        uint64_t b = reg.bits[w];
        while (b) {
            /* The run of set bits starting at the lowest one. */
            unsigned lo = (unsigned)__builtin_ctzll(b);
            uint64_t run = b >> lo;
            unsigned len = ~run ? (unsigned)__builtin_ctzll(~run) : 64 - lo;
            close_span((unsigned)(w * 64 + lo),
                       (unsigned)(w * 64 + lo + len - 1));
            b &= len + lo >= 64 ? 0 : ~(((uint64_t)1 << (lo + len)) - 1);
        }
        reg.bits[w] = 0;
    }
    if (keep >= 0)
        sp_fds_add(keep); /* nested calls in this worker close it too */
    atomic_flag_clear_explicit(&reg.lock, memory_order_release);
}
