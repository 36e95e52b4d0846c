/* SPDX-License-Identifier: MIT */
/* The peer every C programmer writes first: a fixed pool of threads around
 * one mutex-protected queue with a condition variable, the caller
 * submitting tasks one by one. Same-run baseline for the thread backend. */
#ifndef SP_NAIVE_POOL_H
#define SP_NAIVE_POOL_H

#include "peer.h"

/* See peer_run_fn in peer.h. */
int naive_pool_run(size_t n, unsigned workers, peer_fn fn, void *arg,
                   peer_result *out);

#endif
