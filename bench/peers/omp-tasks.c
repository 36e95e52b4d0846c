/* SPDX-License-Identifier: MIT */
#include "omp-tasks.h"

#include <limits.h>
#include <omp.h>

int omp_tasks_run(size_t n, unsigned workers, peer_fn fn, void *arg,
                  peer_result *out)
{
    int threads = workers > INT_MAX ? INT_MAX : (int)workers;
#pragma omp parallel num_threads(threads)
#pragma omp single
    for (size_t i = 0; i < n; i++) {
#pragma omp task firstprivate(i)
        {
            long v = 0;
            int rc = fn(i, arg, &v);
            out[i].value = v;
            out[i].state = rc ? PEER_FAILED : PEER_OK;
        }
    }
    /* Let the runtime release its threads (libgomp ends them; LLVM's
     * libomp puts them to sleep): every configuration of the harness
     * starts without idle threads of another alive, and 1,000 idle
     * threads would make every later fork() slower. */
    omp_pause_resource_all(omp_pause_soft);
    return 0;
}
