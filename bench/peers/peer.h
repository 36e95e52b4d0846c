/* SPDX-License-Identifier: MIT */
/* What every C peer of simplepar-bench shares: the task body, the slot
 * where a peer stores each task's outcome, and the one entry point each
 * peer offers. simplepar and every peer run the same body for every index
 * and collect every outcome, so the harness can check that they all
 * computed the same results. */
#ifndef SP_BENCH_PEER_H
#define SP_BENCH_PEER_H

#include <stddef.h>

/* The body of task `index`: 0 with its result in *value (left alone when
 * the task has no result), or non-zero when it failed. */
typedef int (*peer_fn)(size_t index, void *arg, long *value);

enum peer_state {
    PEER_NOT_RUN = 0, /* what a zeroed slot says: no outcome came back */
    PEER_OK = 1,
    PEER_FAILED = 2,
};

/* One task's outcome, written by the peer when the task has run. */
typedef struct peer_result {
    long value;
    int state; /* enum peer_state */
} peer_result;

/* Every peer's entry point: run fn(i, arg, ...) for every i in [0, n) on
 * `workers` workers and store each outcome in out[i] (out: n zeroed
 * slots, owned by the caller). Returns 0, or -1 when the peer could not
 * start a single worker (then no slot was written). */
typedef int (*peer_run_fn)(size_t n, unsigned workers, peer_fn fn, void *arg,
                           peer_result *out);

#endif
