/* SPDX-License-Identifier: MIT */
/* Private to the process backend and lib/pool.c: process pools (ppool.c),
 * the engine of an sp_pool whose backend is SP_BACKEND_PROCESS.
 *
 * The pool's workers are forked once, from the pool's fork server
 * (forkserver.h), each running set-up in its own process, and then run the
 * tasks of many calls. A call (sp_pool_run(), which reaches the process
 * backend with run->engine set) leases idle workers from the pool, hands
 * them batches of rows over their channels, runs the parent's side of the
 * event loop on the calling thread like a one-shot call, and gives the
 * workers back when it has nothing more for them. Calls that find no idle
 * worker wait in the order they came. A worker that dies is replaced from
 * the fork server (set-up runs again, same index). */
#ifndef SP_PPOOL_H
#define SP_PPOOL_H

#include "proc.h"

struct sp_ppool;

/* Create a process pool of `workers` workers: fork the server and every
 * worker, and wait until every set-up ran. 0, or SP_ESETUP (a set-up
 * failed: sp_last_error() names the worker and what it returned, or how
 * its process died) / SP_ENOMEM / SP_EPIPE / SP_EFORK / SP_ESYSTEM with
 * the message set; nothing is left behind (no process, zombie, descriptor,
 * mapping). Call from the process that uses the pool. */
int sp_ppool_create(const sp_pool_options *po, unsigned workers,
                    struct sp_ppool **out);

/* End every worker (EXIT: its tear-down runs), reap them and the fork
 * server, close every descriptor, unmap, free. No call may be in flight.
 * In any process but the creator's (a forked child, a worker included)
 * nothing is done: none of it is that process's. NULL is a no-op. */
void sp_ppool_free(struct sp_ppool *p);

/* The process backend's start, wait and finish for a call on a pool
 * (run->engine is the pool). */
int sp_ppool_start(struct sp_run *run);
void sp_ppool_wait(struct sp_run *run);
void sp_ppool_finish(struct sp_run *run);

#endif
