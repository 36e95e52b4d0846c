/* SPDX-License-Identifier: MIT */
/* simple_parallel(): validate the arguments and options, pick the backend's
 * row, and drive the run through the backend contract (sp-private.h):
 * start, wait, finish, then cancel what never started. Nothing here knows
 * which backend it is driving. */
#include "sp-collect.h"
#include "sp-private.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One row per backend, indexed by sp_backend. */
static const struct sp_backend_ops *const backends[] = {
    [SP_BACKEND_THREAD] = &sp_backend_thread,
    [SP_BACKEND_SERIAL] = &sp_backend_serial,
    [SP_BACKEND_PROCESS] = &sp_backend_process,
};
#define N_BACKENDS (sizeof backends / sizeof backends[0])

static int check_seconds(double v, const char *name)
{
    SP_CHECK(isfinite(v) && v >= 0 && v < SP_MAX_SECONDS, SP_EOPTION,
             "%s %g must be finite, >= 0 and below %g seconds", name, v,
             SP_MAX_SECONDS);
    return 0;
}

static int check_options(const sp_options *o)
{
    SP_CHECK((unsigned)o->backend < N_BACKENDS && backends[o->backend],
             SP_EOPTION, "backend %d is not a valid sp_backend",
             (int)o->backend);
    SP_CHECK(o->max_workers <= SP_MAX_WORKERS, SP_EOPTION,
             "max_workers %u is above the limit %u", o->max_workers,
             SP_MAX_WORKERS);
    SP_CHECK(o->on_error == SP_POLICY_COLLECT_ALL ||
                 o->on_error == SP_POLICY_FAIL_FAST,
             SP_EOPTION, "on_error %d is not a valid sp_policy",
             (int)o->on_error);
    int err = check_seconds(o->deadline, "deadline");
    if (!err)
        err = check_seconds(o->task_timeout, "task_timeout");
    if (!err)
        err = check_seconds(o->retry_delay, "retry_delay");
    if (!err)
        err = check_seconds(o->retry_delay_max, "retry_delay_max");
    if (!err)
        err = sp_table_retry_error(o->retries, o->retry_on,
                                   (int)o->retry_backoff, "sp_options");
    if (err)
        return err;
    SP_CHECK(o->stack_size == 0 ||
                 (o->stack_size >= (size_t)PTHREAD_STACK_MIN &&
                  o->stack_size <= SP_MAX_STACK_SIZE),
             SP_EOPTION, "stack_size %zu must be 0 or between %zu and %zu",
             o->stack_size, (size_t)PTHREAD_STACK_MIN, SP_MAX_STACK_SIZE);
    SP_CHECK(o->index_keys == 0 || o->index_keys == 1, SP_EOPTION,
             "index_keys %d must be 0 (keyed) or 1 (index-keyed)",
             o->index_keys);
    for (size_t i = 0; i < sizeof o->reserved; i++)
        SP_CHECK(!o->reserved[i], SP_ENOTSUP,
                 "sp_options.reserved[%zu] is not zero; it must be", i);
    return 0;
}

int sp_run_init(struct sp_run *run, const sp_task *tasks, size_t n,
                const sp_options *opts, uint64_t t0)
{
    static const sp_options defaults;
    SP_CHECK(tasks || n == 0, SP_ENULLTABLE,
             "the task table is NULL but n is %zu", n);
    SP_CHECK(n <= SP_MAX_TASKS, SP_ETOOMANY,
             "%zu tasks; at most %u are allowed", n, SP_MAX_TASKS);
    if (!opts)
        opts = &defaults;
    int err = check_options(opts);
    if (err)
        return err;
    memset(run, 0, sizeof *run);
    sp_clock_start(&run->clk);
    run->tasks = tasks;
    run->n = n;
    run->opts = *opts;
    run->cancel[0] = opts->cancel;
    run->watched = opts->cancel != NULL;
    run->t0 = t0;
    run->ops = backends[opts->backend];
    run->stop = &run->stop_local;
    atomic_init(&run->failfast_cause, UINT32_MAX);
    run->res = sp_results_alloc(n, opts->index_keys != 0,
                                opts->backend == SP_BACKEND_PROCESS);
    SP_CHECK(run->res, SP_ENOMEM, "cannot allocate a results map of %zu", n);
    bool retries = opts->retries && opts->retries != SP_NO_RETRIES;
    bool after = false; /* some row has 'after' (never when index-keyed) */
    /* A big table of a call on threads may be validated by two. */
    bool split = opts->backend == SP_BACKEND_THREAD && opts->max_workers != 1;
    err = opts->index_keys
              ? sp_table_index_plain(tasks, n, run->res, &retries, split)
              : sp_table_index(tasks, n, run->res, &retries, &after, split);
    if (!err && retries && n &&
        !(run->tries = sp_calloc(n, sizeof *run->tries)))
        err = sp_set_error(SP_ENOMEM,
                           "cannot allocate the retry records of "
                           "%zu tasks",
                           n);
    if (!err && after)
        err = sp_table_graph(run);
    if (!err && (err = sp_graph_init(run)) != 0)
        sp_graph_free(&run->graph);
    if (err) {
        free(run->tries);
        run->tries = NULL;
        sp_results_free(run->res);
        run->res = NULL;
        return err;
    }
    if (opts->deadline > 0)
        run->deadline = t0 + (uint64_t)(opts->deadline * 1e9);
    if (opts->task_timeout > 0)
        run->task_timeout = (uint64_t)(opts->task_timeout * 1e9);
    return 0;
}

sp_results *sp_run_close(struct sp_run *run)
{
    if (run->sched.run) /* set up: there were tasks */
        sp_sched_cancel_rest(&run->sched);
    sp_tally_merge(run, &run->caller);
    run->res->workers = run->workers_used;
    sp_complete_free(run);
    sp_sched_free(&run->sched);
    sp_graph_free(&run->graph);
    free(run->tries); /* every record ended with its task's last attempt */
    run->tries = NULL;
    sp_results *res = run->res;
    res->elapsed_ns = sp_run_now(run) - run->t0;
    run->res = NULL;
    return res;
}

static int call(const sp_task *tasks, size_t n, const sp_options *opts,
                sp_results **out, const struct sp_call_pool *pool,
                const struct sp__local *local)
{
    uint64_t t0 = sp_now();
    SP_CHECK(out, SP_EINVAL, "the 'out' argument is NULL");
    *out = NULL;
    /* On the stack: it is aligned for its cache-line members, and costs no
     * allocation. */
    struct sp_run run;
    sp_options pool_opts;
    if (pool) { /* the pool's backend and stack size apply */
        pool_opts = opts ? *opts : (sp_options){0};
        pool_opts.backend = pool->backend;
        pool_opts.stack_size = 0;
        opts = &pool_opts;
    }
    int err = sp_run_init(&run, tasks, n, opts, t0);
    if (err)
        return err;
    run.local = local;
    if (pool && pool->cancel) {
        run.cancel[1] = pool->cancel;
        run.watched = true;
    }
    const struct sp_backend_ops *ops = run.ops;
    if (n) {
        if (pool) {
            unsigned want = opts->max_workers;
            run.workers = want && want < pool->workers ? want : pool->workers;
            run.engine = pool->engine;
        } else {
            run.workers = ops->workers(&run.opts, n);
        }
        err = sp_sched_init(&run.sched, &run, run.workers);
        /* A cancel handle that fired already: nothing starts, not even a
         * worker; every task comes back CANCELLED. */
        bool cancelled = !err && run.watched && sp_run_cancel_fired(&run);
        if (!err) {
            sp_complete_init(&run);
            err = cancelled ? 0 : ops->start(&run);
            if (err) {
                sp_complete_free(&run);
                sp_sched_free(&run.sched);
            }
        }
        if (err) {
            sp_graph_free(&run.graph);
            free(run.tries);
            sp_results_free(run.res);
            return err;
        }
        if (!cancelled) {
            ops->wait(&run);
            ops->finish(&run);
        }
    } else {
        sp_complete_init(&run);
    }
    *out = sp_run_close(&run);
    return 0;
}

int sp_call(const sp_task *tasks, size_t n, const sp_options *opts,
            sp_results **out, const struct sp_call_pool *pool)
{
    return call(tasks, n, opts, out, pool, NULL);
}

int sp_call_local(const sp_task *tasks, size_t n, const sp_options *opts,
                  sp_results **out, const struct sp__local *local)
{
    return call(tasks, n, opts, out, NULL, local);
}

unsigned sp_online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > SP_MAX_WORKERS ? SP_MAX_WORKERS : (unsigned)n;
}

SP_PRIVATE_API void sp__workers(const sp_options *opts, size_t n,
                                unsigned *most, unsigned *first)
{
    static const sp_options defaults;
    if (!opts)
        opts = &defaults;
    const struct sp_backend_ops *ops = (unsigned)opts->backend < N_BACKENDS
                                           ? backends[opts->backend]
                                           : &sp_backend_thread;
    unsigned w = ops->workers(opts, n);
    if (n && w > n)
        w = (unsigned)n;
    w = w ? w : 1;
    unsigned s = ops->first ? ops->first(opts, w) : w;
    *most = w;
    *first = s ? s : 1;
}

SP_API int simple_parallel(const sp_task *tasks, size_t n,
                           const sp_options *opts, sp_results **out)
{
    return call(tasks, n, opts, out, NULL, NULL);
}
