/* SPDX-License-Identifier: MIT */
/* Pools of worker threads that outlive a call (this folder, whose files
 * tpool-private.h lists). The thread
 * backend (thread.c) serves every run from one: the process-wide shared
 * pool, a pool of its own when the call sets a stack size, or the sp_pool
 * it was given (pool.c).
 *
 * A run is queued in its pool; idle threads attach to the oldest queued run
 * that has a task ready and room for one more worker, take a claim slot in
 * its scheduler, and claim tasks until none is ready; then they leave it
 * (sp_sched_idle_leave()) and look for another run. A task made ready while
 * no worker of the run is free wakes or starts one (sp_tpool_grow()). The
 * run is done when it is over or stopped and no worker is attached: its
 * caller then takes the map. A pool thread that makes a call on its own
 * pool (a nested call) is its run's helper: it runs the run's tasks itself
 * while it waits, so nested calls never deadlock, and it never counts
 * twice against the pool's threads. */
#ifndef SP_TPOOL_H
#define SP_TPOOL_H

#include "../../sp-private.h"

struct sp_tpool;
struct sp_tthread;

/* The workers the caller of sp_tpool_submit() brings before it returns,
 * and the most each joining worker brings (bring.c). */
#define SP_TPOOL_FIRST 4u
#define SP_TPOOL_FAN 2u

struct sp_tpool_conf {
    unsigned cap;      /* most threads at once */
    unsigned start;    /* threads started (set-up done) by create */
    size_t stack_size; /* 0 = the system's default */
    uint64_t idle_ns;  /* an idle thread exits after this long; 0 = never */
    sp_setup_fn setup;
    sp_teardown_fn teardown;
    void *user;
};

/* One run as its pool serves it: the thread backend's run->backend. */
struct sp_trun {
    struct sp_run *run;
    struct sp_tpool *pool;
    bool own_pool;               /* created for this run; freed with it */
    struct sp_trun *next, *prev; /* in the pool's queue (pool lock) */
    unsigned cap;                /* most workers at once: its claim slots */
    /* Workers wanted now (<= cap). Fixed at cap, unless `adaptive`: then
     * it starts at the CPU count and sp_tpool_wait() raises it while the
     * workers block (sleep, I/O) with tasks waiting. */
    unsigned target;
    bool adaptive;
    /* The adaptive window, opened when the run is submitted (adapt.c). */
    uint64_t win_wall, win_cpu;
    long win_vol, win_invol;
    /* Under the pool lock: */
    unsigned attached;    /* workers in it now (the helper included) */
    unsigned nopen;       /* claim slots opened: the most at once */
    uint32_t *free_slots; /* slots workers left, for the next to attach */
    unsigned nfree;
    /* Workers asked for and not yet brought: each worker that joins
     * brings up to SP_TPOOL_FAN of them before it serves, and the caller
     * brings them while it waits (bring.c). */
    unsigned pending;
    unsigned brought; /* workers brought: woken or started */
    unsigned wanted;  /* workers asked for, for the message on failure */
    struct sp_tthread *spare;  /* thread records for them (bring.c) */
    struct sp_tthread *helper; /* the pool thread that made the call */
    bool queued;
    bool done; /* nothing runs or will start: the caller may finish */
    _Atomic bool finished; /* done, for a caller spinning on it */
};

/* Create a pool; 0, or SP_ENOMEM / SP_ETHREAD / SP_EOPTION (stack size) /
 * SP_ESETUP with sp_last_error() set and nothing left behind. */
int sp_tpool_create(const struct sp_tpool_conf *conf, struct sp_tpool **out);
/* End every thread (tear-down runs in each), join them and free. No run
 * may be in flight. In a process other than the creator's (a forked
 * child, where none of its threads exist) only the memory is freed. */
void sp_tpool_free(struct sp_tpool *p);
/* The process-wide pool of simple_parallel() (threads idle for
 * SP_SHARED_IDLE_MS exit); NULL with sp_last_error() set if it cannot be
 * set up. */
struct sp_tpool *sp_tpool_shared(void);
/* End every thread of the shared pool as soon as it is idle and wait
 * until none is left (tests: the next call starts threads again). */
void sp_tpool_shared_trim(void);
/* End the shared pool's idle threads but the `keep` that worked last, and
 * wait until they have left the pool (busy threads are left alone; the
 * kernel may finish the threads shed a moment later). Threads woken or
 * started that have not reached pick() yet (a wide run that just ended
 * may leave dozens) are waited for first, at most 0.2 s, so that they are
 * shed too. For a caller about to fork many times: every thread's stack
 * is mappings each fork copies (lib/backend/process/proc.h,
 * sp_proc_shed()). */
void sp_tpool_shed(unsigned keep);
/* Whether p was created by this process (not inherited through fork()). */
bool sp_tpool_owned(const struct sp_tpool *p);
/* Whether the calling thread is one of p's. */
bool sp_tpool_is_self(const struct sp_tpool *p);

/* Serve r (r->run, r->pool, r->cap, r->target and r->adaptive set; the
 * run's scheduler set up with r->cap slots): queue it and see that up to
 * `want` workers come, waking idle threads and starting new ones up to the
 * pool's cap. The caller brings the first SP_TPOOL_FIRST itself; the rest
 * come in a tree: every worker that joins brings up to SP_TPOOL_FAN more,
 * and the caller brings more while it waits, so a wide call's thread
 * creation spreads over the CPUs and overlaps with running tasks. A pool
 * thread calling this becomes r's helper (slot 0). 0, or SP_ETHREAD /
 * SP_ENOMEM when not one worker could be had (nothing ran, r is not
 * queued). */
int sp_tpool_submit(struct sp_trun *r, unsigned want);
/* Return when r is done: a helper runs r's tasks meanwhile; every caller
 * delivers completion callbacks and applies the deadline. Afterwards no
 * worker touches r. */
void sp_tpool_wait(struct sp_trun *r);
/* A stop was requested: wake what sleeps; a run no worker is in is done. */
void sp_tpool_stop(struct sp_trun *r);
/* A task of r became ready and no worker slept: wake or start one. */
void sp_tpool_grow(struct sp_trun *r);

#endif
