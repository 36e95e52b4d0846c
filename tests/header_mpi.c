/* SPDX-License-Identifier: MIT */
/* The MPI header compiles on its own as strict C11, and its functions
 * link; the call is refused before MPI is initialised. */
#include "simplepar/mpi.h"

int main(void)
{
    sp_mpi_options m = {.batch = SP_MPI_MAX_BATCH,
                        .inflight = SP_MPI_MAX_INFLIGHT};
    sp_results *res = (sp_results *)&m;
    int ok =
        sp_mpi_parallel(MPI_COMM_WORLD, NULL, 0, NULL, &res) == SP_EINVAL &&
        res == NULL &&
        sp_mpi_parallel_ex(MPI_COMM_WORLD, NULL, 0, NULL, &m, &res) ==
            SP_EINVAL;
    puts(ok ? "1 passed, 0 failed" : "0 passed, 1 failed");
    return ok ? 0 : 1;
}
