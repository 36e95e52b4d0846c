/* SPDX-License-Identifier: MIT */
/* The hand-written MPI task farm peer of simplepar-bench's mpi workload. */
#ifndef SP_BENCH_MPI_FARM_H
#define SP_BENCH_MPI_FARM_H

#include "peer.h"

#include <mpi.h>

/* Collective over comm (at least 2 ranks): rank 0 hands out the indices
 * 0 .. n-1 one at a time to the other ranks as each sends back its last
 * outcome, and stores every outcome in out[] (rank 0 only; n slots). The
 * other ranks run fn. Returns 0, or -1 on an MPI error. */
int mpi_farm_run(MPI_Comm comm, size_t n, peer_fn fn, void *arg,
                 peer_result *out);

#endif
