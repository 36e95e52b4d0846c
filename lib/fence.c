/* SPDX-License-Identifier: MIT */
/* An asymmetric fence: a cheap side that only keeps the compiler's order,
 * and a dear side that makes every thread of the process pass a full
 * memory barrier before it returns (Linux membarrier(2), the private
 * expedited command: an interrupt to each CPU running one of them).
 *
 * What it is for (complete.c, graph.c): on threads, each completion
 * publishes its entry, and a spawned task may mark that entry "waited
 * for" at the same moment; exactly one of the two must see the other. An
 * atomic exchange per completion did that, and it was half of recording
 * an outcome (it waits until the entry's other stores have left the
 * store buffer). Marks are rare and completions are not: so a completion
 * stores, then looks at a per-run flag; the first spawner that marks sets
 * the flag and then runs the dear side before it marks anything. Either
 * the completion's second look sees the flag (and looks for waiting
 * tasks under the graph's lock), or the store was visible before the
 * spawner marked, which then finds the entry done. Folly's
 * asymmetric_thread_fence_light/heavy and userspace RCU pair the same
 * way.
 *
 * Where the kernel has no such command, or refuses it (seccomp), the
 * completions keep the exchange. */
#define _GNU_SOURCE /* syscall() */
#include "sp-private.h"

#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>
#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#endif

#if defined(__GNUC__)
#define SP_WEAK __attribute__((weak))
#else
#define SP_WEAK
#endif

/* The system call, a hook like hooks.c's: a test makes it fail to run the
 * completions' exchange instead. */
SP_WEAK int sp_membarrier(int cmd, unsigned flags)
{
#if defined(__linux__) && defined(SYS_membarrier)
    return (int)syscall(SYS_membarrier, cmd, flags, 0);
#else
    (void)cmd;
    (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

/* 0: not asked yet; 1: the heavy fence works; -1: it does not here. A
 * forked child inherits the answer and, on Linux, the registration (see
 * sp_fence_heavy() where it would not). No getpid() per call: it costs
 * 100 ns here, 2 % of a small call on a pool. */
static _Atomic int state;

bool sp_fence_ready(void)
{
    int s = atomic_load_explicit(&state, memory_order_acquire);
    if (s)
        return s > 0;
    bool ok = false;
#if defined(__linux__) && defined(SYS_membarrier)
    int cmds = sp_membarrier(MEMBARRIER_CMD_QUERY, 0);
    ok = cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
         sp_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) == 0;
#endif
    atomic_store_explicit(&state, ok ? 1 : -1, memory_order_release);
    return ok;
}

void sp_fence_heavy(void)
{
#if defined(__linux__) && defined(SYS_membarrier)
    if (sp_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) == 0)
        return;
    /* A child forked from a registered process inherits the registration
     * (Linux 6.x, checked here); a kernel that would not refuses with
     * EPERM, and registering again cannot fail where it worked once. */
    sp_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0);
    sp_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0);
#endif
}
