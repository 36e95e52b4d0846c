/* SPDX-License-Identifier: MIT */
/* A task farm as people write it by hand with MPI: the manager (rank 0)
 * sends each worker one task index, then waits for any outcome, stores it,
 * and sends that worker the next index; a negative index ends a worker.
 * One task in flight per worker, one small message each way per task: the
 * floor of a farm that does nothing but hand out work. A task that
 * crashes takes its rank, and with it the whole job (Open MPI ends it). */
#include "mpi-farm.h"

#include <stdint.h>

enum { TAG_TASK = 11, TAG_DONE = 12 };

/* An outcome on the wire: index, state, value. */
struct outcome {
    int64_t index, state, value;
};

static int manager(MPI_Comm comm, int size, size_t n, peer_result *out)
{
    size_t next = 0, pending = 0;
    for (int w = 1; w < size; w++) {
        int64_t i = next < n ? (int64_t)next++ : -1;
        if (MPI_Send(&i, 1, MPI_INT64_T, w, TAG_TASK, comm))
            return -1;
        pending += i >= 0;
    }
    while (pending) {
        struct outcome o;
        MPI_Status st;
        if (MPI_Recv(&o, 3, MPI_INT64_T, MPI_ANY_SOURCE, TAG_DONE, comm, &st))
            return -1;
        pending--;
        if (o.index >= 0 && (size_t)o.index < n) {
            out[o.index].state = (int)o.state;
            out[o.index].value = (long)o.value;
        }
        int64_t i = next < n ? (int64_t)next++ : -1;
        if (MPI_Send(&i, 1, MPI_INT64_T, st.MPI_SOURCE, TAG_TASK, comm))
            return -1;
        pending += i >= 0;
    }
    return 0;
}

static int worker(MPI_Comm comm, peer_fn fn, void *arg)
{
    for (;;) {
        int64_t i;
        if (MPI_Recv(&i, 1, MPI_INT64_T, 0, TAG_TASK, comm, MPI_STATUS_IGNORE))
            return -1;
        if (i < 0)
            return 0;
        long v = 0;
        int failed = fn((size_t)i, arg, &v);
        struct outcome o = {i, failed ? PEER_FAILED : PEER_OK, v};
        if (MPI_Send(&o, 3, MPI_INT64_T, 0, TAG_DONE, comm))
            return -1;
    }
}

int mpi_farm_run(MPI_Comm comm, size_t n, peer_fn fn, void *arg,
                 peer_result *out)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    if (size < 2)
        return -1;
    return rank == 0 ? manager(comm, size, n, out) : worker(comm, fn, arg);
}
