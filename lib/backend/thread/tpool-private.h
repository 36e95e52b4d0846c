/* SPDX-License-Identifier: MIT */
/* Inside the thread engine, for its own files only (the rest of the
 * library sees tpool.h):
 *
 *   tpool.c   pools and their threads: the idle stack, a thread's life
 *   serve.c   runs: the queue, workers joining and leaving, submit, wait
 *   bring.c   bringing a wide run's workers, in a tree
 *   adapt.c   adaptive worker counts: more workers while they block
 *   shared.c  the process-wide pool of simple_parallel()
 *
 * The pool lock guards the thread list, the idle stack, the run queue and
 * every run's worker accounting; tasks run without it. */
#ifndef SP_TPOOL_PRIVATE_H
#define SP_TPOOL_PRIVATE_H

#include "tpool.h"

#include <semaphore.h>

enum { T_STARTING, T_READY, T_FAILED };

struct sp_tthread {
    struct sp_tpool *pool;
    struct sp_tthread *next, *prev; /* the pool's threads */
    struct sp_tthread *idle_next;   /* the idle stack */
    pthread_t thread;
    sem_t sem; /* it waits here when idle */
    unsigned index;
    int state;          /* T_*, pool lock */
    int setup_rc;       /* what set-up returned */
    _Atomic bool woken; /* taken off the idle stack to work */
    bool idle;          /* on the idle stack */
    bool creator;       /* may start threads for a run (bring.c) */
    bool retire;        /* shed: ends when it wakes (pool lock) */
    bool coming;        /* woken or started, not yet at sp_tpool_pick()
                           (counted in the pool's `coming`) */
    void *wstate;       /* what set-up stored */
};

struct sp_tpool {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a thread started or ended */
    pthread_attr_t attr;
    pthread_condattr_t cattr; /* monotonic clock */
    struct sp_tpool_conf conf;
    pid_t owner;
    struct sp_tthread *threads; /* every thread not yet joined */
    struct sp_tthread *idle;    /* idle stack, most recent first */
    unsigned nidle;             /* threads on it */
    unsigned nthreads;          /* started and not ended */
    unsigned coming;            /* threads on their way to sp_tpool_pick() */
    bool awaiting;              /* someone waits for `coming` to reach 0 */
    unsigned next_index;
    struct sp_trun *head, *tail; /* queued runs, oldest first */
    bool closing;
    bool trimming;     /* idle threads end (sp_tpool_shared_trim()) */
    unsigned retiring; /* shed threads not yet ended (sp_tpool_shed()) */
    bool detached;     /* threads free themselves when they end */
};

/* How long an idle worker, and a caller waiting for its run, spin before
 * they sleep: calls that follow each other closely then cost no wake-up
 * (two context switches, tens of microseconds on a busy machine). */
#define SP_TPOOL_SPIN_NS 50000u

static inline bool sp_trun_stopped(const struct sp_trun *r)
{
    return atomic_load_explicit(r->run->stop, memory_order_relaxed) ||
           atomic_load_explicit(&r->run->sched.over, memory_order_relaxed);
}

/* A task of r is ready to claim (read without r's lock: a stale answer
 * costs an attach that finds nothing, or a wait for the next wake-up). */
static inline bool sp_trun_runnable(const struct sp_trun *r)
{
    const struct sp_sched *s = &r->run->sched;
    /* The counter before `stealable`, with acquire: a chunk is counted
     * in `stealable` before it leaves the counter (sched.c, invariant 3),
     * so a task not yet started is never missed here. */
    return !sp_trun_stopped(r) &&
           (atomic_load_explicit(&s->heap_min, memory_order_relaxed) !=
                UINT32_MAX ||
            atomic_load_explicit(s->cursor, memory_order_acquire) <
                s->n_static ||
            atomic_load_explicit(&s->stealable, memory_order_relaxed) > 0);
}

/* ---- tpool.c: pools and their threads ------------------------------------ */

/* Set up p's locks and thread attributes from conf (nothing started); 0 or
 * an sp_error with sp_last_error() set and nothing left behind. */
int sp_tpool_init(struct sp_tpool *p, const struct sp_tpool_conf *conf);
/* The calling thread's record when it is one of p's threads, else NULL. */
struct sp_tthread *sp_tpool_me(const struct sp_tpool *p);
/* Spin until *flag is true (true) or about ns passed (false). */
bool sp_tpool_spin_until(_Atomic bool *flag, uint64_t ns);
/* Take the idle thread that worked last off the idle stack (pool lock);
 * NULL if none idles. Post its semaphore next. */
struct sp_tthread *sp_tpool_take_idle(struct sp_tpool *p);
/* Wake the idle thread that worked last (pool lock); false if none idles. */
bool sp_tpool_wake_one(struct sp_tpool *p);
/* A thread's record, not yet linked or started; NULL if out of memory. */
struct sp_tthread *sp_tpool_new_thread(struct sp_tpool *p);
/* Take t into the pool's threads (pool lock): it counts from now on. */
void sp_tpool_link_thread(struct sp_tpool *p, struct sp_tthread *t);
void sp_tpool_unlink_thread(struct sp_tpool *p, struct sp_tthread *t);
/* Create t's thread (linked already); 0 or pthread_create's error. */
int sp_tpool_create_thread(struct sp_tpool *p, struct sp_tthread *t);
/* Start one thread (pool lock held); 0, ENOMEM or pthread_create's error. */
int sp_tpool_start_thread(struct sp_tpool *p, bool creator);
/* A thread woken or started is at sp_tpool_pick(), or ends (pool lock). */
void sp_tpool_arrived(struct sp_tpool *p, struct sp_tthread *t);

/* ---- serve.c: runs ------------------------------------------------------- */

/* The oldest queued run a worker can help now (pool lock). */
struct sp_trun *sp_tpool_pick(struct sp_tpool *p);
/* Thread t works for r, which sp_tpool_pick() gave it: joins it, brings
 * its share of r's workers, claims and runs tasks until none is ready,
 * and leaves. The pool lock is held on entry and on return, not while
 * tasks run. */
void sp_tpool_work(struct sp_tthread *t, struct sp_trun *r);

/* ---- bring.c: bringing workers ------------------------------------------- */

/* Take up to k of r's workers still to come (pool lock). */
unsigned sp_tpool_take_pending(struct sp_trun *r, unsigned k);
/* Bring k workers to r (taken with sp_tpool_take_pending()); create:
 * start threads when none idles, else leave the rest to those who may. */
void sp_tpool_bring_workers(struct sp_trun *r, unsigned k, bool create);
/* The caller's share: one at a time until none is pending. */
void sp_tpool_bring_pending(struct sp_trun *r);
/* Say in the map that fewer workers came than asked for (pool lock). */
void sp_tpool_note_fewer(struct sp_trun *r, int rc);
/* Records for the threads r's workers will start, made by its caller; and
 * freeing those no worker took (r is done). */
void sp_tpool_make_spares(struct sp_trun *r, unsigned k);
void sp_tpool_free_spares(struct sp_trun *r);

/* ---- adapt.c: adaptive worker counts ------------------------------------- */

/* How often a waiting caller looks at its adaptive run. */
#define SP_TPOOL_ADAPT_NS 500000u

/* Open r's first window, before any worker runs. */
void sp_tpool_adapt_open(struct sp_trun *r);
/* Raise r's worker target when its workers block with tasks waiting;
 * true when the window was closed and a new one opened. */
bool sp_tpool_adapt(struct sp_trun *r, long waits);

#endif
