/* SPDX-License-Identifier: MIT */
/* The thread backend: POSIX threads created for the call, each a claiming
 * worker of the scheduler. A worker takes its next task from the scheduler
 * (its own chunk, the shared counter, a steal, the ready heap), runs it,
 * and reports the outcome to sp_complete() with its own tally, so the hot
 * path shares no counter between workers. Completion callbacks are queued
 * by sp_complete() and delivered on the calling thread, which does nothing
 * else while the workers run. Workers start with every signal blocked, so
 * the caller's signals keep going to the caller's own threads. */
#include "sp-private.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tworker {
    _Alignas(64) struct sp_tally tally;
    struct tpool *pool;
    pthread_t thread;
    unsigned id;
};

struct tpool {
    struct sp_run *run;
    struct tworker *workers;
    unsigned created;
    _Atomic unsigned live; /* workers still in their loop */
};

static unsigned thread_workers(const sp_options *opts, size_t n)
{
    size_t w = opts->max_workers ? opts->max_workers : SP_THREAD_DEFAULT_CAP;
    if (w > n)
        w = n;
    return (unsigned)(w ? w : 1);
}

/* The last worker to leave tells the completion queue. */
static void leave(struct tpool *p, unsigned count)
{
    if (atomic_fetch_sub(&p->live, count) == count)
        sp_complete_producers_done(p->run);
}

static void *worker_main(void *arg)
{
    struct tworker *w = arg;
    struct sp_run *run = w->pool->run;
    struct sp_sched *s = &run->sched;
    uint64_t now = sp_now();
    size_t i;
    for (;;) {
        while (sp_sched_claim(s, w->id, now, &i)) {
            struct sp_outcome o;
            now = sp_task_exec(run, i, w->id, now, &o);
            sp_complete(run, i, &o, &w->tally);
        }
        if (!sp_sched_idle(s, w->id))
            break;
        now = sp_now();
    }
    leave(w->pool, 1);
    return NULL;
}

static void free_pool(struct sp_run *run)
{
    struct tpool *p = run->backend;
    if (p)
        free(p->workers);
    free(p);
    run->backend = NULL;
}

static int thread_start(struct sp_run *run)
{
    unsigned planned = run->workers;
    struct tpool *p = sp_calloc(1, sizeof *p);
    run->backend = p;
    if (p)
        p->workers = sp_aligned_alloc(64, sizeof *p->workers * planned);
    if (!p || !p->workers) {
        free_pool(run);
        return sp_set_error(SP_ENOMEM, "cannot allocate %u workers", planned);
    }
    p->run = run;
    for (unsigned k = 0; k < planned; k++) {
        memset(&p->workers[k], 0, sizeof p->workers[k]);
        p->workers[k].pool = p;
        p->workers[k].id = k;
    }
    int err = sp_complete_queue(run);
    if (err) {
        free_pool(run);
        return err;
    }

    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc) {
        free_pool(run);
        return sp_set_error_errno(SP_ETHREAD, rc, "pthread_attr_init");
    }
    if (run->opts.stack_size &&
        (rc = pthread_attr_setstacksize(&attr, run->opts.stack_size)) != 0) {
        pthread_attr_destroy(&attr);
        free_pool(run);
        return sp_set_error_errno(SP_EOPTION, rc,
                                  "stack_size %zu: pthread_attr_setstacksize",
                                  run->opts.stack_size);
    }

    /* Workers start with every signal blocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    atomic_init(&p->live, planned);
    for (rc = 0; p->created < planned; p->created++) {
        rc = sp_pthread_create(&p->workers[p->created].thread, &attr,
                               worker_main, &p->workers[p->created]);
        if (rc)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);

    if (p->created == 0) {
        free_pool(run);
        return sp_set_error_errno(SP_ETHREAD, rc, "pthread_create");
    }
    /* With fewer workers than planned the run goes on: chunks come from the
     * shared counter, so nothing was assigned to the missing ones. Stacks
     * reserve address space, so the likely cause is also why tasks may run
     * out of memory now: their entries say so. */
    if (p->created < planned) {
        char why[96], note[320];
        snprintf(note, sizeof note,
                 "out of memory: the task's result could not be stored; only "
                 "%u of %u worker threads could be created (pthread_create: "
                 "%s), as each thread's stack reserves address space "
                 "(stack_size, ulimit -v)",
                 p->created, planned, sp_errno_text(rc, why, sizeof why));
        size_t len = strlen(note) + 1;
        run->res->thread_note = sp_malloc(len);
        if (run->res->thread_note) {
            memcpy(run->res->thread_note, note, len);
            atomic_store_explicit(&run->oom_note, run->res->thread_note,
                                  memory_order_release);
        }
        leave(p, planned - p->created);
    }
    return 0;
}

static void thread_wait(struct sp_run *run)
{
    sp_complete_drain(run);
}

static void thread_finish(struct sp_run *run)
{
    struct tpool *p = run->backend;
    for (unsigned k = 0; k < p->created; k++) {
        pthread_join(p->workers[k].thread, NULL);
        sp_tally_merge(run, &p->workers[k].tally);
    }
    run->workers_used = p->created;
    free_pool(run);
}

static void thread_stop(struct sp_run *run)
{
    sp_sched_wake(&run->sched);
}

const struct sp_backend_ops sp_backend_thread = {
    .name = "thread",
    .workers = thread_workers,
    .start = thread_start,
    .wait = thread_wait,
    .finish = thread_finish,
    .stop = thread_stop,
};
