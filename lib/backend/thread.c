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
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A worker slot's thread: being created, running, or never created. */
enum { SLOT_STARTING, SLOT_STARTED, SLOT_FAILED };

struct tworker {
    _Alignas(64) struct sp_tally tally;
    struct tpool *pool;
    pthread_t thread;
    unsigned id;
    _Atomic int state;
};

struct tpool {
    struct sp_run *run;
    struct tworker *workers; /* cap slots; the first `created` started */
    unsigned cap;
    _Atomic unsigned created;
    _Atomic unsigned live; /* workers still in their loop */
    pthread_attr_t attr;   /* stack size, for workers started later */
    bool attr_ready;
};

/* The most threads the run may use; it starts with one per row at most
 * and grows (thread_grow) only when a task becomes ready and no worker is
 * free, as spawned tasks and released dependents do. */
static unsigned thread_workers(const sp_options *opts, size_t n)
{
    (void)n;
    return opts->max_workers ? opts->max_workers : SP_THREAD_DEFAULT_CAP;
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
        while (sp_sched_claim(s, w->id, &now, &i)) {
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
    if (p) {
        if (p->attr_ready)
            pthread_attr_destroy(&p->attr);
        free(p->workers);
    }
    free(p);
    run->backend = NULL;
}

/* Start worker k (its slot is ready); 0 or pthread_create's error. Every
 * worker starts with every signal blocked, so the caller's signals keep
 * going to the caller's own threads. */
static int start_worker(struct tpool *p, unsigned k)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = sp_pthread_create(&p->workers[k].thread, &p->attr, worker_main,
                               &p->workers[k]);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    atomic_store_explicit(&p->workers[k].state, rc ? SLOT_FAILED : SLOT_STARTED,
                          memory_order_release);
    return rc;
}

#define NO_SLOT ((unsigned)-1)

/* The next unused worker slot below `limit`, or NO_SLOT. */
static unsigned claim_slot(struct tpool *p, unsigned limit)
{
    unsigned k = atomic_load(&p->created);
    do {
        if (k >= limit)
            return NO_SLOT;
    } while (!atomic_compare_exchange_weak(&p->created, &k, k + 1));
    return k;
}

static int thread_start(struct sp_run *run)
{
    unsigned cap = run->workers;
    unsigned first = run->n < cap ? (unsigned)run->n : cap;
    struct tpool *p = sp_calloc(1, sizeof *p);
    run->backend = p;
    if (p)
        p->workers = sp_aligned_alloc(64, sizeof *p->workers * cap);
    if (!p || !p->workers) {
        free_pool(run);
        return sp_set_error(SP_ENOMEM, "cannot allocate %u workers", cap);
    }
    p->run = run;
    p->cap = cap;
    for (unsigned k = 0; k < cap; k++) {
        memset(&p->workers[k], 0, sizeof p->workers[k]);
        atomic_init(&p->workers[k].state, SLOT_STARTING);
        p->workers[k].pool = p;
        p->workers[k].id = k;
        run->sched.claims[k].tally = &p->workers[k].tally;
        p->workers[k].tally.claims = true;
    }
    int err = sp_complete_queue(run);
    if (err) {
        free_pool(run);
        return err;
    }
    int rc = pthread_attr_init(&p->attr);
    if (rc) {
        free_pool(run);
        return sp_set_error_errno(SP_ETHREAD, rc, "pthread_attr_init");
    }
    p->attr_ready = true;
    if (run->opts.stack_size &&
        (rc = pthread_attr_setstacksize(&p->attr, run->opts.stack_size)) != 0) {
        free_pool(run);
        return sp_set_error_errno(SP_EOPTION, rc,
                                  "stack_size %zu: pthread_attr_setstacksize",
                                  run->opts.stack_size);
    }
    /* The starter holds one share of `live` while it starts workers, so
     * the first of them cannot report the run's end before the rest are
     * counted in. Workers may claim slots too (thread_grow) meanwhile. */
    atomic_init(&p->live, 1);
    atomic_init(&p->created, 0);
    unsigned created = 0, k;
    rc = 0;
    while ((k = claim_slot(p, first)) != NO_SLOT) {
        atomic_fetch_add(&p->live, 1);
        if ((rc = start_worker(p, k)) != 0) {
            leave(p, 1); /* that slot is SLOT_FAILED: finish() skips it */
            break;
        }
        created++;
    }
    if (created == 0 && rc) {
        /* No worker runs, so none can have claimed a slot: nothing to
         * join. */
        free_pool(run);
        return sp_set_error_errno(SP_ETHREAD, rc, "pthread_create");
    }
    /* With fewer workers than planned the run goes on: chunks come from the
     * shared counter, so nothing was assigned to the missing ones. Stacks
     * reserve address space, so the likely cause is also why tasks may run
     * out of memory now: their entries say so. */
    if (rc) {
        char why[96], note[320];
        snprintf(note, sizeof note,
                 "out of memory: the task's result could not be stored; only "
                 "%u of %u worker threads could be created (pthread_create: "
                 "%s), as each thread's stack reserves address space "
                 "(stack_size, ulimit -v)",
                 created, first, sp_errno_text(rc, why, sizeof why));
        size_t len = strlen(note) + 1;
        run->res->thread_note = sp_malloc(len);
        if (run->res->thread_note) {
            memcpy(run->res->thread_note, note, len);
            atomic_store_explicit(&run->oom_note, run->res->thread_note,
                                  memory_order_release);
        }
    }
    leave(p, 1);
    return 0;
}

/* A task became ready and no worker was free to take it: one more worker,
 * if the cap allows. Called by a running worker, which holds a share of
 * `live`, so the pool is not finishing; after finish() (the cancellation
 * sweep releasing dependents) there is no pool and nothing to start. A
 * failure to create it only means the run has one fewer. */
static void thread_grow(struct sp_run *run)
{
    struct tpool *p = run->backend;
    if (!p)
        return; /* finish() ran: nothing can start any more */
    unsigned k = claim_slot(p, p->cap);
    if (k == NO_SLOT)
        return;
    atomic_fetch_add(&p->live, 1);
    if (start_worker(p, k) != 0)
        leave(p, 1); /* the slot stays unused (SLOT_FAILED) */
}

static void thread_wait(struct sp_run *run)
{
    sp_complete_drain(run);
}

static void thread_finish(struct sp_run *run)
{
    struct tpool *p = run->backend;
    unsigned used = 0;
    /* Workers still running may start more (thread_grow): the count is
     * read again after each join. Once every worker started so far is
     * joined, none is left to start another. */
    for (unsigned k = 0; k < atomic_load(&p->created); k++) {
        int state;
        while ((state = atomic_load_explicit(&p->workers[k].state,
                                             memory_order_acquire)) ==
               SLOT_STARTING)
            sched_yield(); /* its creator is inside pthread_create */
        if (state == SLOT_FAILED)
            continue;
        pthread_join(p->workers[k].thread, NULL);
        sp_tally_merge(run, &p->workers[k].tally);
        used++;
    }
    run->workers_used = used;
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
    .grow = thread_grow,
};
