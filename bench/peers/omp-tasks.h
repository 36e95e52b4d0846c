/* SPDX-License-Identifier: MIT */
/* OpenMP tasks as a peer of the thread backend: a parallel region of
 * `workers` threads in which one thread creates one `omp task` per index
 * and the region's barrier waits for all of them (the runtime's own
 * queues, stealing and throttling), the runtime asked to release its
 * threads after each run. Built only when meson finds OpenMP;
 * the harness sees SP_BENCH_HAVE_OPENMP. */
#ifndef SP_OMP_TASKS_H
#define SP_OMP_TASKS_H

#include "peer.h"

/* See peer_run_fn in peer.h. The runtime may give the region fewer threads
 * than asked (OMP_THREAD_LIMIT); it never gives none. */
int omp_tasks_run(size_t n, unsigned workers, peer_fn fn, void *arg,
                  peer_result *out);

#endif
