/* SPDX-License-Identifier: MIT */
/* Bringing a run's workers: waking idle threads and starting new ones. */
#include "tpool-private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A wide run's workers come in a tree: the caller brings the first
 * SP_TPOOL_FIRST (sp_tpool_submit()), each worker that joins the run
 * brings up to SP_TPOOL_FAN more before it serves, and the caller brings
 * more while it waits. W workers then arrive in about log3(W) rounds
 * instead of W in a row from the caller, waking and thread creation (mmap,
 * clone) run on every CPU at once and overlap with the tasks already
 * running, and the pool lock is held only to pick a thread, never across
 * a wake-up or pthread_create(). Any worker wakes idle threads; only the
 * caller and the threads it started itself (at most SP_TPOOL_FIRST per
 * call, `creator`) start new ones: pthread_create() allocates the new
 * thread's TLS vector with malloc, which gives every thread that calls it
 * a malloc thread cache (measured: 3 MiB more peak RSS for 10,000
 * threads when every worker started threads). A worker that finds no idle
 * thread leaves its share to the creators and wakes the caller (which may
 * be asleep waiting for a completion: tasks that wait for each other
 * complete only once all have their workers); the caller brings until none
 * is pending, so every share is brought or dropped. Measured on 2 CPUs:
 * 10,000 workers for 10,000 sleeps had their last task started after
 * about 0.40 s when the caller brought them all under the pool lock,
 * cold or warm (docs/benchmarks.md, "seed002"). */

/* Take up to k of r's workers still to come (pool lock). None when no
 * task is left to claim or the run is over: the rest are not needed (a
 * task made ready later wakes a worker through sp_tpool_grow()). */
unsigned sp_tpool_take_pending(struct sp_trun *r, unsigned k)
{
    if (r->pending && (r->done || !sp_trun_runnable(r)))
        r->pending = 0;
    if (k > r->pending)
        k = r->pending;
    r->pending -= k;
    return k;
}

/* Say in the map that fewer workers came than asked for (pool lock): where
 * results cannot be stored for lack of memory (thread stacks reserve
 * address space, the likely cause of both). */
void sp_tpool_note_fewer(struct sp_trun *r, int rc)
{
    if (r->run->res->thread_note)
        return;
    char why[96], note[320];
    snprintf(note, sizeof note,
             "out of memory: the task's result could not be stored; only "
             "%u of %u worker threads could be created (pthread_create: "
             "%s), as each thread's stack reserves address space "
             "(stack_size, ulimit -v)",
             r->brought, r->wanted, sp_errno_text(rc, why, sizeof why));
    size_t len = strlen(note) + 1;
    char *copy = sp_malloc(len);
    if (copy) {
        memcpy(copy, note, len);
        r->run->res->thread_note = copy;
        atomic_store_explicit(&r->run->oom_note, copy, memory_order_release);
    }
}

/* Records for the threads a run's workers will start, made by its caller:
 * a worker thread that allocates gets a malloc arena and a thread cache of
 * its own (about 0.6 KiB each, measured: 3 MiB for 10,000 threads), so the
 * workers bringing others take these instead. Too few only means the
 * workers allocate the rest. */
void sp_tpool_make_spares(struct sp_trun *r, unsigned k)
{
    struct sp_tthread *list = NULL, *t;
    for (; k > 0 && (t = sp_tpool_new_thread(r->pool)) != NULL; k--) {
        t->next = list;
        list = t;
    }
    if (!list)
        return;
    pthread_mutex_lock(&r->pool->lock);
    for (t = list; t->next; t = t->next)
        ;
    t->next = r->spare;
    r->spare = list;
    pthread_mutex_unlock(&r->pool->lock);
}

/* Free the records no worker took (the run is done). */
void sp_tpool_free_spares(struct sp_trun *r)
{
    pthread_mutex_lock(&r->pool->lock);
    struct sp_tthread *t = r->spare;
    r->spare = NULL;
    pthread_mutex_unlock(&r->pool->lock);
    while (t) {
        struct sp_tthread *next = t->next;
        sem_destroy(&t->sem);
        free(t);
        t = next;
    }
}

/* What bring() returns besides 0 and an errno value (pthread_create()'s
 * own EAGAIN is a failure to report, not a full pool). */
enum { BRING_FULL = -1, BRING_NOT_CREATOR = -2 };

/* Bring one worker (pool lock not held): wake the idle thread that worked
 * last, or (create) start a thread, created without the pool lock so that
 * several bringers create threads at once. 0; BRING_FULL when the pool is
 * full or closing; BRING_NOT_CREATOR when no thread idles and !create;
 * ENOMEM or pthread_create's error. */
static int bring(struct sp_tpool *p, struct sp_trun *r, bool create)
{
    struct sp_tthread *t = NULL;
    pthread_mutex_lock(&p->lock);
    if ((t = sp_tpool_take_idle(p)) != NULL) {
        r->brought++;
        pthread_mutex_unlock(&p->lock);
        sem_post(&t->sem);
        return 0;
    }
    if (!create) {
        pthread_mutex_unlock(&p->lock);
        return BRING_NOT_CREATOR;
    }
    bool full = p->nthreads >= p->conf.cap || p->closing;
    if (!full && (t = r->spare) != NULL)
        r->spare = t->next;
    pthread_mutex_unlock(&p->lock);
    if (full)
        return BRING_FULL;
    if (!t && !(t = sp_tpool_new_thread(p)))
        return ENOMEM;
    pthread_mutex_lock(&p->lock);
    if (p->nthreads >= p->conf.cap || p->closing) {
        pthread_mutex_unlock(&p->lock);
        sem_destroy(&t->sem);
        free(t);
        return BRING_FULL;
    }
    sp_tpool_link_thread(p,
                         t); /* counted: the pool cannot end while it starts */
    r->brought++;
    pthread_mutex_unlock(&p->lock);
    int rc = sp_tpool_create_thread(p, t);
    if (rc) {
        pthread_mutex_lock(&p->lock);
        r->brought--;
        sp_tpool_arrived(p, t);
        p->nthreads--;
        sp_tpool_unlink_thread(p, t);
        pthread_cond_broadcast(&p->changed); /* sp_tpool_shared_trim() */
        pthread_mutex_unlock(&p->lock);
        sem_destroy(&t->sem);
        free(t);
    }
    return rc;
}

/* Bring k workers to r (taken with sp_tpool_take_pending()); create: start
 * threads when none idles, else leave the rest to those who may. On a failure
 * the rest of r's pending workers are dropped and the map says why. */
void sp_tpool_bring_workers(struct sp_trun *r, unsigned k, bool create)
{
    struct sp_tpool *p = r->pool;
    for (; k > 0; k--) {
        int rc = bring(p, r, create);
        if (rc == BRING_NOT_CREATOR) {
            pthread_mutex_lock(&p->lock);
            r->pending += k;
            pthread_mutex_unlock(&p->lock);
            /* The caller brings them; it may be asleep waiting for a
             * completion that needs these very workers (tasks that wait
             * for each other): wake it. */
            sp_complete_kick(r->run);
            return;
        }
        if (rc) {
            pthread_mutex_lock(&p->lock);
            r->pending = 0;
            if (rc != BRING_FULL)
                sp_tpool_note_fewer(r, rc);
            pthread_mutex_unlock(&p->lock);
            return;
        }
    }
}

/* The caller's share of bringing r's workers: one at a time until none
 * is pending (the workers it brings take theirs meanwhile). */
void sp_tpool_bring_pending(struct sp_trun *r)
{
    for (;;) {
        pthread_mutex_lock(&r->pool->lock);
        unsigned k = sp_tpool_take_pending(r, 1);
        pthread_mutex_unlock(&r->pool->lock);
        if (!k)
            return;
        sp_tpool_bring_workers(r, k, true);
    }
}
