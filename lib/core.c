/* SPDX-License-Identifier: MIT */
/* simple_parallel(): argument and option validation, defaults, dispatch to
 * the chosen backend, and the final tally. */
#include "sp-private.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

/* Validate one argument at the API boundary: on failure record the message
 * and return the code (dav1d's validate_input_or_ret). */
#define SP_CHECK(cond, code, ...)                                              \
    do {                                                                       \
        if (!(cond))                                                           \
            return sp_set_error((code), __VA_ARGS__);                          \
    } while (0)

static const struct sp_backend_ops *const backends[] = {
    [SP_BACKEND_THREAD] = &sp_backend_thread,
    [SP_BACKEND_SERIAL] = &sp_backend_serial,
    [SP_BACKEND_PROCESS] = &sp_backend_process,
};
#define N_BACKENDS (sizeof backends / sizeof backends[0])

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}

static int check_options(const sp_options *o)
{
    SP_CHECK((unsigned)o->backend < N_BACKENDS, SP_EOPTION,
             "backend %d is not a valid sp_backend", (int)o->backend);
    SP_CHECK(o->max_workers <= SP_MAX_WORKERS, SP_EOPTION,
             "max_workers %u is above the limit %u", o->max_workers,
             SP_MAX_WORKERS);
    SP_CHECK(o->on_error == SP_COLLECT_ALL || o->on_error == SP_FAIL_FAST,
             SP_EOPTION, "on_error %d is not a valid sp_policy",
             (int)o->on_error);
    SP_CHECK(isfinite(o->deadline) && o->deadline >= 0 && o->deadline < 1e9,
             SP_EOPTION,
             "deadline %g must be finite, >= 0 and below 1e9 seconds",
             o->deadline);
    SP_CHECK(isfinite(o->task_timeout) && o->task_timeout >= 0 &&
                 o->task_timeout < 1e9,
             SP_EOPTION,
             "task_timeout %g must be finite, >= 0 and below 1e9 seconds",
             o->task_timeout);
    SP_CHECK(o->stack_size == 0 ||
                 (o->stack_size >= (size_t)PTHREAD_STACK_MIN &&
                  o->stack_size <= ((size_t)1 << 30)),
             SP_EOPTION, "stack_size %zu must be 0 or between %zu and %zu",
             o->stack_size, (size_t)PTHREAD_STACK_MIN, (size_t)1 << 30);
    for (size_t i = 0; i < sizeof o->reserved; i++)
        SP_CHECK(!o->reserved[i], SP_ENOTSUP,
                 "sp_options.reserved[%zu] is not zero; it must be", i);
    return 0;
}

static unsigned default_workers(const sp_options *o, size_t n)
{
    size_t w = o->max_workers;
    if (o->backend == SP_BACKEND_SERIAL)
        return 1;
    if (w == 0)
        w = o->backend == SP_BACKEND_PROCESS ? online_cpus()
                                             : SP_THREAD_DEFAULT_CAP;
    if (w > n)
        w = n;
    return (unsigned)(w ? w : 1);
}

SP_API int simple_parallel(const sp_task *tasks, size_t n,
                           const sp_options *opts, sp_results **out)
{
    uint64_t t0 = sp_now();
    static const sp_options defaults;

    SP_CHECK(out, SP_EINVAL, "the 'out' argument is NULL");
    *out = NULL;
    SP_CHECK(tasks || n == 0, SP_ENULLTABLE,
             "the task table is NULL but n is %zu", n);
    SP_CHECK(n < UINT32_MAX, SP_ETOOMANY, "%zu tasks; at most %u are allowed",
             n, UINT32_MAX - 1);
    if (!opts)
        opts = &defaults;
    int err = check_options(opts);
    if (err)
        return err;

    struct sp_run run = {.tasks = tasks, .n = n, .opts = *opts, .t0 = t0};
    run.stop = &run.stop_local;
    run.res = sp_results_alloc(n);
    SP_CHECK(run.res, SP_ENOMEM, "cannot allocate a results map of %zu", n);
    err = sp_table_index(tasks, n, run.res);
    if (err) {
        sp_results_free(run.res);
        return err;
    }
    if (opts->deadline > 0)
        run.deadline = t0 + (uint64_t)(opts->deadline * 1e9);
    if (opts->task_timeout > 0)
        run.task_timeout = (uint64_t)(opts->task_timeout * 1e9);
    run.workers = default_workers(opts, n);

    if (n) {
        err = backends[opts->backend]->run(&run);
        if (err) {
            sp_results_free(run.res);
            return err;
        }
    }

    sp_results *res = run.res;
    res->elapsed_ns = sp_now() - t0;
    *out = res;
    return 0;
}
