/* SPDX-License-Identifier: MIT */
/* The thread backend: a pool of POSIX threads created for the call.
 *
 * Scheduling. Workers claim chunks of the task table from one shared
 * counter, sized like OpenMP's "guided" schedule (remaining / 4 workers,
 * 1 .. CHUNK_MAX), so a fast table costs one contended atomic per chunk,
 * not per task. The rest of a worker's chunk sits in its own atomic range
 * [lo, hi), from which the owner pops the front and any idle worker steals
 * the back half: a slow task holds up nothing but itself.
 *
 * Completion. When the caller gave a completion callback, workers append
 * each finished index to a queue of n slots and the calling thread drains
 * it in order, sleeping on a condition variable only when it has caught
 * up. Without a callback the caller simply joins the workers.
 */
#include "sp-private.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_MAX 1024u

struct worker {
    _Alignas(64) _Atomic uint64_t range; /* lo | hi << 32 */
    struct pool *pool;
    pthread_t thread;
    unsigned id;
    size_t counts[5]; /* outcomes of the tasks this worker ended */
};

struct pool {
    struct sp_run *run;
    struct worker *workers;
    unsigned nworkers; /* planned; workers past the created ones stay empty */
    _Alignas(64) _Atomic size_t next;   /* first index no chunk has claimed */
    _Alignas(64) _Atomic int stealable; /* ranges holding >= 2 tasks */
    /* completion queue, only with on_done */
    _Alignas(64) _Atomic size_t done_tail;
    _Atomic uint32_t *done; /* slot -> task index + 1, 0 = not yet */
    _Alignas(64) _Atomic int sleeping;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

static inline uint64_t pack(uint32_t lo, uint32_t hi)
{
    return (uint64_t)hi << 32 | lo;
}

/* Give w the range [lo, hi); w's range is empty, so no thief races us. */
static void set_range(struct pool *p, struct worker *w, size_t lo, size_t hi)
{
    if (hi - lo >= 2)
        atomic_fetch_add_explicit(&p->stealable, 1, memory_order_relaxed);
    atomic_store_explicit(&w->range, pack((uint32_t)lo, (uint32_t)hi),
                          memory_order_relaxed);
}

static bool pop_own(struct pool *p, struct worker *w, size_t *i)
{
    uint64_t r = atomic_load_explicit(&w->range, memory_order_relaxed);
    for (;;) {
        uint32_t lo = (uint32_t)r, hi = (uint32_t)(r >> 32);
        if (lo >= hi)
            return false;
        if (atomic_compare_exchange_weak_explicit(
                &w->range, &r, pack(lo + 1, hi), memory_order_relaxed,
                memory_order_relaxed)) {
            if (hi - lo == 2)
                atomic_fetch_sub_explicit(&p->stealable, 1,
                                          memory_order_relaxed);
            *i = lo;
            return true;
        }
    }
}

static bool claim_chunk(struct pool *p, struct worker *w, size_t *i)
{
    size_t n = p->run->n;
    size_t cur = atomic_load_explicit(&p->next, memory_order_relaxed);
    if (cur >= n)
        return false;
    size_t c = (n - cur) / (4 * (size_t)p->nworkers);
    c = c < 1 ? 1 : c > CHUNK_MAX ? CHUNK_MAX : c;
    size_t lo = atomic_fetch_add_explicit(&p->next, c, memory_order_relaxed);
    if (lo >= n)
        return false;
    size_t hi = lo + c < n ? lo + c : n;
    set_range(p, w, lo + 1, hi);
    *i = lo;
    return true;
}

static bool steal(struct pool *p, struct worker *w, size_t *i)
{
    while (atomic_load_explicit(&p->stealable, memory_order_relaxed) > 0) {
        for (unsigned k = 1; k < p->nworkers; k++) {
            struct worker *v = &p->workers[(w->id + k) % p->nworkers];
            uint64_t r = atomic_load_explicit(&v->range, memory_order_relaxed);
            for (;;) {
                uint32_t lo = (uint32_t)r, hi = (uint32_t)(r >> 32);
                if (lo >= hi || hi - lo < 2)
                    break;
                uint32_t take = (hi - lo) / 2, mid = hi - take;
                if (atomic_compare_exchange_weak_explicit(
                        &v->range, &r, pack(lo, mid), memory_order_relaxed,
                        memory_order_relaxed)) {
                    if (mid - lo < 2)
                        atomic_fetch_sub_explicit(&p->stealable, 1,
                                                  memory_order_relaxed);
                    set_range(p, w, (size_t)mid + 1, hi);
                    *i = mid;
                    return true;
                }
            }
        }
        /* Work is in flight between two ranges; let its thief land it. */
        sched_yield();
    }
    return false;
}

static void publish(struct pool *p, size_t i)
{
    size_t s =
        atomic_fetch_add_explicit(&p->done_tail, 1, memory_order_relaxed);
    /* seq_cst store then seq_cst load: pairs with the caller's store of
     * 'sleeping' and load of the slot, so one of the two always sees the
     * other and no wake-up is lost. */
    atomic_store(&p->done[s], (uint32_t)i + 1);
    if (atomic_load(&p->sleeping)) {
        pthread_mutex_lock(&p->lock);
        atomic_store(&p->sleeping, 0);
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct pool *p = w->pool;
    struct sp_run *run = p->run;
    uint64_t now = sp_now();
    size_t i;

    while (pop_own(p, w, &i) || claim_chunk(p, w, &i) || steal(p, w, &i)) {
        if (sp_run_may_start(run, now))
            now = sp_task_exec(run, i, w->id, now, &run->res->entries[i]);
        else
            sp_task_cancel(run, i, now);
        w->counts[run->res->entries[i].kind]++;
        if (p->done)
            publish(p, i);
    }
    return NULL;
}

/* Call on_done for every task, in completion order, on this thread. */
static void drain(struct pool *p)
{
    struct sp_run *run = p->run;
    for (size_t head = 0; head < run->n;) {
        uint32_t v = atomic_load_explicit(&p->done[head], memory_order_acquire);
        if (!v) {
            atomic_store(&p->sleeping, 1);
            v = atomic_load(&p->done[head]);
            if (!v) {
                pthread_mutex_lock(&p->lock);
                while (atomic_load(&p->sleeping) &&
                       !(v = atomic_load(&p->done[head])))
                    pthread_cond_wait(&p->cond, &p->lock);
                pthread_mutex_unlock(&p->lock);
            }
            atomic_store(&p->sleeping, 0);
            if (!v)
                continue;
        }
        if (run->opts.on_done(&run->res->entries[v - 1], run->opts.on_done_arg))
            sp_run_stop(run, SP_STOP_CALLBACK);
        head++;
    }
}

static int thread_run(struct sp_run *run)
{
    struct pool p = {.run = run, .nworkers = run->workers};
    unsigned created = 0;
    int err = 0, rc = 0;
    pthread_attr_t attr;

    p.workers = sp_aligned_alloc(64, sizeof *p.workers * p.nworkers);
    if (run->opts.on_done)
        p.done = sp_calloc(run->n, sizeof *p.done);
    if (!p.workers || (run->opts.on_done && !p.done)) {
        err = sp_set_error(SP_ENOMEM, "cannot allocate %u workers", p.nworkers);
        goto out_free;
    }
    for (unsigned k = 0; k < p.nworkers; k++) {
        atomic_init(&p.workers[k].range, 0);
        memset(p.workers[k].counts, 0, sizeof p.workers[k].counts);
        p.workers[k].pool = &p;
        p.workers[k].id = k;
    }
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    pthread_attr_init(&attr);
    if (run->opts.stack_size)
        pthread_attr_setstacksize(&attr, run->opts.stack_size);

    /* Workers start with every signal blocked, so the caller's signals keep
     * going to the caller's own threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; created < p.nworkers; created++) {
        rc = sp_pthread_create(&p.workers[created].thread, &attr, worker_main,
                               &p.workers[created]);
        if (rc)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);

    if (created == 0) {
        char buf[128] = "";
        strerror_r(rc, buf, sizeof buf);
        err = sp_set_error(SP_ETHREAD, "pthread_create failed: %s", buf);
    } else {
        /* With fewer workers than planned the run goes on: chunks come from
         * the shared counter, so nothing was assigned to the missing ones. */
        run->res->workers = created;
        if (p.done)
            drain(&p);
        for (unsigned k = 0; k < created; k++) {
            pthread_join(p.workers[k].thread, NULL);
            for (int kind = 0; kind < 5; kind++)
                run->res->counts[kind] += p.workers[k].counts[kind];
        }
    }
    pthread_cond_destroy(&p.cond);
    pthread_mutex_destroy(&p.lock);
out_free:
    free(p.workers);
    free(p.done);
    return err;
}

const struct sp_backend_ops sp_backend_thread = {
    .name = "thread",
    .run = thread_run,
};
