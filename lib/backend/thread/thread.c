/* SPDX-License-Identifier: MIT */
/* The thread backend: a run served by a pool of threads that outlive it
 * (tpool.h). simple_parallel() uses the process-wide shared pool, whose
 * idle threads wait for the next call and exit after SP_SHARED_IDLE_MS, so
 * repeated calls create no threads; a call that sets a stack size gets a
 * pool of its own, ended with the call; sp_pool_run() uses its pool.
 *
 * A worker takes its next task from the scheduler (its own chunk, the
 * shared counter, a steal, the ready heap), runs it, and reports the
 * outcome to sp_complete() with its claim slot's own tally, so the hot
 * path shares no counter between workers. Completion callbacks are queued
 * by sp_complete() and delivered on the calling thread, which otherwise
 * waits (or, in a nested call from a pool thread, runs tasks itself).
 * Workers run with every signal blocked, so the caller's signals keep
 * going to the caller's own threads. */
#include "tpool.h"

#include <stdlib.h>

/* The most threads a simple_parallel() run may use. With max_workers set
 * it starts one per row at most, and more (up to this) only when tasks
 * become ready while every worker is busy, as spawned tasks and released
 * dependents do. By default it starts one per CPU (one per row at most)
 * and adds more, up to SP_THREAD_DEFAULT_CAP, while its workers block with
 * tasks waiting (sp_tpool_wait()): sleeping and I/O-bound tables get many
 * threads, CPU-bound ones one per CPU. */
static unsigned thread_workers(const sp_options *opts, size_t n)
{
    (void)n;
    return opts->max_workers ? opts->max_workers : SP_THREAD_DEFAULT_CAP;
}

/* Of a run's `most` workers, those it starts with: all of them when
 * max_workers is set, else one per CPU (more come while they block). */
static unsigned thread_first(const sp_options *opts, unsigned most)
{
    unsigned cpus = sp_online_cpus();
    return opts->max_workers || most <= cpus ? most : cpus;
}

static void free_trun(struct sp_run *run)
{
    struct sp_trun *r = run->backend;
    if (!r)
        return;
    if (r->own_pool)
        sp_tpool_free(r->pool);
    free(r->free_slots);
    free(r);
    run->backend = NULL;
}

static int thread_start(struct sp_run *run)
{
    struct sp_trun *r = sp_calloc(1, sizeof *r);
    run->backend = r;
    if (r)
        r->free_slots = sp_malloc(sizeof *r->free_slots * run->workers);
    if (!r || !r->free_slots) {
        free_trun(run);
        return sp_set_error(SP_ENOMEM, "cannot allocate %u worker slots",
                            run->workers);
    }
    r->run = run;
    r->cap = run->workers;
    int err = sp_complete_queue(run);
    if (!err) {
        if (run->engine) { /* sp_pool_run() */
            r->pool = run->engine;
        } else if (run->opts.stack_size) {
            struct sp_tpool_conf conf = {.cap = r->cap,
                                         .stack_size = run->opts.stack_size};
            err = sp_tpool_create(&conf, &r->pool);
            r->own_pool = !err;
        } else if (!(r->pool = sp_tpool_shared())) {
            err = SP_ETHREAD;
        }
    }
    if (!err) {
        unsigned want = run->n < r->cap ? (unsigned)run->n : r->cap;
        r->target = r->cap;
        if (!run->engine && !run->opts.max_workers) {
            /* The default: one worker per CPU, more while they block. */
            r->adaptive = true;
            want = thread_first(&run->opts, want);
            r->target = want;
        }
        err = sp_tpool_submit(r, want);
    }
    if (err) {
        free_trun(run);
        return err;
    }
    return 0;
}

static void thread_wait(struct sp_run *run)
{
    sp_tpool_wait(run->backend);
}

static void thread_finish(struct sp_run *run)
{
    struct sp_trun *r = run->backend;
    for (unsigned k = 0; k < r->nopen; k++)
        sp_tally_merge(run, &run->sched.claims[k].own);
    run->workers_used = r->nopen;
    free_trun(run);
}

static void thread_stop(struct sp_run *run)
{
    if (run->backend)
        sp_tpool_stop(run->backend);
}

static void thread_grow(struct sp_run *run)
{
    if (run->backend)
        sp_tpool_grow(run->backend);
}

const struct sp_backend_ops sp_backend_thread = {
    .name = "thread",
    .workers = thread_workers,
    .first = thread_first,
    .start = thread_start,
    .wait = thread_wait,
    .finish = thread_finish,
    .stop = thread_stop,
    .grow = thread_grow,
};
