/* SPDX-License-Identifier: MIT */
/* The peer every C programmer writes first: a fixed pool of threads around
 * one mutex-protected queue with a condition variable, the caller
 * submitting tasks one by one. Same-run baseline for the thread backend. */
#ifndef SP_NAIVE_POOL_H
#define SP_NAIVE_POOL_H

#include <stddef.h>

typedef void (*naive_fn)(size_t index, void *arg);

/* Run fn(i, arg) for i in [0, n) on `workers` threads; 0 or -1. */
int naive_pool_run(size_t n, unsigned workers, naive_fn fn, void *arg);

#endif
