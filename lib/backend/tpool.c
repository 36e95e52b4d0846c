/* SPDX-License-Identifier: MIT */
/* Pools of worker threads that outlive a call; see tpool.h for the model.
 *
 * Idle threads wait on their own semaphore in a LIFO stack, so a wake-up
 * goes to exactly one thread, the one that worked last (its stack and
 * caches are warm), and the threads idle longest are the ones whose idle
 * time runs out. A thread taken off the idle stack gets exactly one post,
 * which it consumes before it goes idle again or ends, so a post never
 * reaches a thread that is gone; the post needs no lock, and the thread
 * it wakes does not find the pool lock held by its waker (as a condition
 * variable on the pool lock would have it). The pool lock guards the
 * thread list, the idle stack, the run queue and every run's worker
 * accounting; tasks run without it. */
#define _GNU_SOURCE /* sem_clockwait() (glibc 2.30) */
#include "tpool.h"

#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

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
    bool creator;       /* may start threads for a run (tpool.c) */
    bool retire;        /* shed: ends when it wakes (pool lock) */
    bool coming;        /* woken or started, not yet at pick() (counted
                           in the pool's `coming`) */
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
    unsigned coming;            /* threads on their way to pick() */
    unsigned next_index;
    struct sp_trun *head, *tail; /* queued runs, oldest first */
    bool closing;
    bool trimming;     /* idle threads end (sp_tpool_shared_trim()) */
    unsigned retiring; /* shed threads not yet ended (shed()) */
    bool detached;     /* threads free themselves when they end */
};

static _Thread_local struct sp_tthread *self;

/* How long an idle worker, and a caller waiting for its run, spin before
 * they sleep: calls that follow each other closely then cost no wake-up
 * (two context switches, tens of microseconds on a busy machine). */
#define SPIN_NS 50000u

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Spin until *flag is true (true) or about ns passed (false), yielding the
 * CPU to others that may do the work meanwhile. */
static bool spin_until(_Atomic bool *flag, uint64_t ns)
{
    uint64_t end = 0;
    for (unsigned k = 0;; k++) {
        if (atomic_load_explicit(flag, memory_order_acquire))
            return true;
        if (k % 64 == 63) {
            uint64_t now = sp_now();
            if (!end)
                end = now + ns;
            else if (now >= end)
                return false;
            sched_yield();
        } else {
            cpu_relax();
        }
    }
}

/* ---- the run queue (pool lock) ------------------------------------------ */

static void enqueue(struct sp_tpool *p, struct sp_trun *r)
{
    r->next = NULL;
    r->prev = p->tail;
    if (p->tail)
        p->tail->next = r;
    else
        p->head = r;
    p->tail = r;
    r->queued = true;
}

static void unqueue(struct sp_tpool *p, struct sp_trun *r)
{
    if (!r->queued)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        p->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        p->tail = r->prev;
    r->queued = false;
}

static bool stopped(const struct sp_trun *r)
{
    return atomic_load_explicit(r->run->stop, memory_order_relaxed) ||
           atomic_load_explicit(&r->run->sched.over, memory_order_relaxed);
}

/* A task of r is ready to claim (read without r's lock: a stale answer
 * costs an attach that finds nothing, or a wait for the next wake-up). */
static bool runnable(const struct sp_trun *r)
{
    const struct sp_sched *s = &r->run->sched;
    /* The counter before `stealable`, with acquire: a chunk is counted
     * in `stealable` before it leaves the counter (sched.c, invariant 3),
     * so a task not yet started is never missed here. */
    return !stopped(r) &&
           (atomic_load_explicit(&s->heap_min, memory_order_relaxed) !=
                UINT32_MAX ||
            atomic_load_explicit(s->cursor, memory_order_acquire) <
                s->n_static ||
            atomic_load_explicit(&s->stealable, memory_order_relaxed) > 0);
}

/* The oldest queued run a worker can help now. */
static struct sp_trun *pick(struct sp_tpool *p)
{
    for (struct sp_trun *r = p->head; r; r = r->next)
        if (r->attached < r->cap && runnable(r))
            return r;
    return NULL;
}

/* A worker joins r: its claim slot (one that a worker left, or the next). */
static unsigned attach(struct sp_trun *r)
{
    unsigned slot = r->nfree ? r->free_slots[--r->nfree] : r->nopen++;
    r->attached++;
    sp_sched_open(&r->run->sched, slot);
    r->run->sched.claims[slot].tally->claims = true;
    return slot;
}

/* r is done when nothing runs or will start: its caller may finish. */
static void maybe_done(struct sp_tpool *p, struct sp_trun *r)
{
    if (r->done || r->attached || !stopped(r))
        return;
    r->done = true;
    unqueue(p, r);
    sp_complete_producers_done(r->run);
    atomic_store_explicit(&r->finished, true, memory_order_release);
}

static void detach(struct sp_tpool *p, struct sp_trun *r, unsigned slot)
{
    r->free_slots[r->nfree++] = slot;
    r->attached--;
    maybe_done(p, r);
}

/* Claim and run r's tasks with slot until none is ready. */
static void serve(struct sp_trun *r, unsigned slot)
{
    struct sp_run *run = r->run;
    struct sp_sched *s = &run->sched;
    struct sp_tally *t = s->claims[slot].tally;
    uint64_t now = sp_run_now(run);
    size_t i;
    do {
        while (sp_sched_claim(s, slot, &now, &i)) {
            struct sp_outcome o;
            now = sp_task_exec(run, i, slot, now, &o);
            sp_complete(run, i, &o, t);
        }
    } while (sp_sched_idle_leave(s, slot));
}

/* ---- threads ------------------------------------------------------------ */

#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
#define HAVE_SEM_CLOCKWAIT 1
#endif

/* Wait for t's post, for at most ns (0: no limit); 0 or ETIMEDOUT. The
 * limit is on the monotonic clock where the C library has
 * sem_clockwait(), else on the wall clock (a clock step then only makes
 * an idle thread end earlier or later). */
static int idle_wait(struct sp_tthread *t, uint64_t ns)
{
    struct timespec ts;
    if (ns) {
#ifdef HAVE_SEM_CLOCKWAIT
        clock_gettime(CLOCK_MONOTONIC, &ts);
#else
        clock_gettime(CLOCK_REALTIME, &ts);
#endif
        uint64_t at =
            (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + ns;
        ts.tv_sec = (time_t)(at / 1000000000u);
        ts.tv_nsec = (long)(at % 1000000000u);
    }
    for (;;) {
        int rc;
        if (!ns)
            rc = sem_wait(&t->sem);
        else
#ifdef HAVE_SEM_CLOCKWAIT
            rc = sem_clockwait(&t->sem, CLOCK_MONOTONIC, &ts);
#else
            rc = sem_timedwait(&t->sem, &ts);
#endif
        if (rc == 0 || errno == ETIMEDOUT)
            return rc ? ETIMEDOUT : 0;
        /* EINTR: wait again */
    }
}

static void idle_remove(struct sp_tpool *p, struct sp_tthread *t)
{
    for (struct sp_tthread **q = &p->idle; *q; q = &(*q)->idle_next)
        if (*q == t) {
            *q = t->idle_next;
            p->nidle--;
            break;
        }
    t->idle = false;
}

/* Take the idle thread that worked last off the idle stack to work (pool
 * lock); NULL if none idles. Post its semaphore next, with or without the
 * lock. */
static struct sp_tthread *take_idle(struct sp_tpool *p)
{
    struct sp_tthread *t = p->idle;
    if (!t)
        return NULL;
    p->idle = t->idle_next;
    p->nidle--;
    t->idle = false;
    t->coming = true;
    p->coming++;
    atomic_store_explicit(&t->woken, true, memory_order_release);
    return t;
}

/* Give work to the idle thread that worked last (pool lock); false if
 * none idles. */
static bool wake_one(struct sp_tpool *p)
{
    struct sp_tthread *t = take_idle(p);
    if (t)
        sem_post(&t->sem);
    return t != NULL;
}

static void unlink_thread(struct sp_tpool *p, struct sp_tthread *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        p->threads = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

static unsigned take_pending(struct sp_trun *r, unsigned k);
static void bring_workers(struct sp_trun *r, unsigned k, bool create);

/* A thread woken or started is at pick(), or ends (pool lock). */
static void arrived(struct sp_tpool *p, struct sp_tthread *t)
{
    if (t->coming) {
        t->coming = false;
        p->coming--;
    }
}

static void *thread_main(void *arg)
{
    struct sp_tthread *t = arg;
    struct sp_tpool *p = t->pool;
    self = t;
    int rc =
        p->conf.setup ? p->conf.setup(t->index, p->conf.user, &t->wstate) : 0;
    sp_worker_state = t->wstate;
    pthread_mutex_lock(&p->lock);
    t->setup_rc = rc;
    t->state = rc ? T_FAILED : T_READY;
    pthread_cond_broadcast(&p->changed);
    while (!rc) {
        arrived(p, t);
        struct sp_trun *r = pick(p);
        if (r) {
            unsigned slot = attach(r);
            unsigned bring = take_pending(r, SP_TPOOL_FAN);
            /* A nested call's caller helps instead of bringing: then
             * every worker may start threads. */
            bool create = t->creator || r->helper;
            pthread_mutex_unlock(&p->lock);
            bring_workers(r, bring, create);
            serve(r, slot);
            pthread_mutex_lock(&p->lock);
            detach(p, r, slot);
            continue;
        }
        if (p->closing || p->trimming)
            break;
        atomic_store_explicit(&t->woken, false, memory_order_relaxed);
        t->idle = true;
        t->idle_next = p->idle;
        p->idle = t;
        p->nidle++;
        pthread_mutex_unlock(&p->lock);
        spin_until(&t->woken, SPIN_NS);
        int w = idle_wait(t, p->conf.idle_ns);
        pthread_mutex_lock(&p->lock);
        if (w == ETIMEDOUT) {
            if (t->idle) {
                idle_remove(p, t); /* no post will come */
            } else {
                /* Taken off the stack meanwhile: its post is coming. */
                pthread_mutex_unlock(&p->lock);
                idle_wait(t, 0);
                pthread_mutex_lock(&p->lock);
                w = 0;
            }
        }
        if (!t->woken &&
            (p->trimming || t->retire || (w == ETIMEDOUT && !pick(p))))
            break; /* idle too long, or asked to end */
    }
    arrived(p, t);
    if (t->retire)
        p->retiring--;
    p->nthreads--;
    if (p->detached)
        unlink_thread(p, t);
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    if (!rc && p->conf.teardown)
        p->conf.teardown(t->index, p->conf.user, t->wstate);
    sp_worker_state = NULL;
    self = NULL;
    if (p->detached) {
        sem_destroy(&t->sem);
        free(t);
    }
    return NULL;
}

/* A thread's record, not yet linked or started; NULL if out of memory. */
static struct sp_tthread *new_tthread(struct sp_tpool *p)
{
    struct sp_tthread *t = sp_calloc(1, sizeof *t);
    if (t && sem_init(&t->sem, 0, 0)) {
        free(t);
        t = NULL;
    }
    if (t) {
        t->pool = p;
        t->state = T_STARTING;
    }
    return t;
}

/* Take t into the pool's threads (pool lock): it counts from now on. */
static void link_thread(struct sp_tpool *p, struct sp_tthread *t)
{
    t->index = p->next_index++;
    p->nthreads++;
    t->coming = true;
    p->coming++;
    t->prev = NULL;
    t->next = p->threads;
    if (p->threads)
        p->threads->prev = t;
    p->threads = t;
}

/* Create t's thread (linked already; the pool lock held or not): 0 or
 * pthread_create's error. Every thread starts with every signal blocked,
 * so the caller's signals keep going to the caller's own threads. The
 * shared pool's threads are created detached: one may end and free t
 * before pthread_create() returns, so its id is never stored in t. */
static int create_thread(struct sp_tpool *p, struct sp_tthread *t)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t id;
    int rc = sp_pthread_create(&id, &p->attr, thread_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!rc && !p->detached)
        t->thread = id; /* joined by end_threads(), after every run */
    return rc;
}

/* Start one thread (pool lock held); 0, ENOMEM or pthread_create's
 * error. creator: it may start threads for the runs it joins. */
static int start_thread(struct sp_tpool *p, bool creator)
{
    struct sp_tthread *t = new_tthread(p);
    if (!t)
        return ENOMEM;
    t->creator = creator;
    link_thread(p, t);
    int rc = create_thread(p, t);
    if (rc) {
        arrived(p, t);
        p->nthreads--;
        p->next_index--;
        unlink_thread(p, t);
        sem_destroy(&t->sem);
        free(t);
    }
    return rc;
}

/* ---- bringing workers --------------------------------------------------- */

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
static unsigned take_pending(struct sp_trun *r, unsigned k)
{
    if (r->pending && (r->done || !runnable(r)))
        r->pending = 0;
    if (k > r->pending)
        k = r->pending;
    r->pending -= k;
    return k;
}

/* Say in the map that fewer workers came than asked for (pool lock): where
 * results cannot be stored for lack of memory (thread stacks reserve
 * address space, the likely cause of both). */
static void note_fewer(struct sp_trun *r, int rc)
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
static void make_spares(struct sp_trun *r, unsigned k)
{
    struct sp_tthread *list = NULL, *t;
    for (; k > 0 && (t = new_tthread(r->pool)) != NULL; k--) {
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
static void free_spares(struct sp_trun *r)
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
    if ((t = take_idle(p)) != NULL) {
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
    if (!t && !(t = new_tthread(p)))
        return ENOMEM;
    pthread_mutex_lock(&p->lock);
    if (p->nthreads >= p->conf.cap || p->closing) {
        pthread_mutex_unlock(&p->lock);
        sem_destroy(&t->sem);
        free(t);
        return BRING_FULL;
    }
    link_thread(p, t); /* counted: the pool cannot end while it starts */
    r->brought++;
    pthread_mutex_unlock(&p->lock);
    int rc = create_thread(p, t);
    if (rc) {
        pthread_mutex_lock(&p->lock);
        r->brought--;
        arrived(p, t);
        p->nthreads--;
        unlink_thread(p, t);
        pthread_cond_broadcast(&p->changed); /* sp_tpool_shared_trim() */
        pthread_mutex_unlock(&p->lock);
        sem_destroy(&t->sem);
        free(t);
    }
    return rc;
}

/* Bring k workers to r (taken with take_pending()); create: start threads
 * when none idles, else leave the rest to those who may. On a failure the
 * rest of r's pending workers are dropped and the map says why. */
static void bring_workers(struct sp_trun *r, unsigned k, bool create)
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
                note_fewer(r, rc);
            pthread_mutex_unlock(&p->lock);
            return;
        }
    }
}

/* ---- pools -------------------------------------------------------------- */

static int pool_init(struct sp_tpool *p, const struct sp_tpool_conf *conf)
{
    p->conf = *conf;
    p->owner = getpid();
    int rc = pthread_mutex_init(&p->lock, NULL);
    if (rc)
        return sp_set_error_errno(SP_ETHREAD, rc, "pthread_mutex_init");
    if ((rc = pthread_condattr_init(&p->cattr)) == 0) {
        pthread_condattr_setclock(&p->cattr, CLOCK_MONOTONIC);
        if ((rc = pthread_cond_init(&p->changed, &p->cattr)) == 0) {
            if ((rc = pthread_attr_init(&p->attr)) == 0) {
                if (!conf->stack_size || (rc = pthread_attr_setstacksize(
                                              &p->attr, conf->stack_size)) == 0)
                    return 0;
                pthread_attr_destroy(&p->attr);
                pthread_cond_destroy(&p->changed);
                pthread_condattr_destroy(&p->cattr);
                pthread_mutex_destroy(&p->lock);
                return sp_set_error_errno(SP_EOPTION, rc,
                                          "stack_size %zu: "
                                          "pthread_attr_setstacksize",
                                          conf->stack_size);
            }
            pthread_cond_destroy(&p->changed);
        }
        pthread_condattr_destroy(&p->cattr);
    }
    pthread_mutex_destroy(&p->lock);
    return sp_set_error_errno(SP_ETHREAD, rc, "cannot set up a thread pool");
}

/* End every thread and join it (threads that were joined are freed). */
static void end_threads(struct sp_tpool *p)
{
    pthread_mutex_lock(&p->lock);
    p->closing = true;
    while (p->idle)
        wake_one(p);
    struct sp_tthread *list = p->threads;
    p->threads = NULL;
    pthread_mutex_unlock(&p->lock);
    while (list) {
        struct sp_tthread *t = list;
        list = t->next;
        pthread_join(t->thread, NULL);
        sem_destroy(&t->sem);
        free(t);
    }
}

static void pool_destroy(struct sp_tpool *p)
{
    pthread_attr_destroy(&p->attr);
    pthread_cond_destroy(&p->changed);
    pthread_condattr_destroy(&p->cattr);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int sp_tpool_create(const struct sp_tpool_conf *conf, struct sp_tpool **out)
{
    *out = NULL;
    struct sp_tpool *p = sp_calloc(1, sizeof *p);
    if (!p)
        return sp_set_error(SP_ENOMEM, "cannot allocate a thread pool");
    int err = pool_init(p, conf);
    if (err) {
        free(p);
        return err;
    }
    int rc = 0;
    unsigned started = 0;
    pthread_mutex_lock(&p->lock);
    for (; started < conf->start && !rc; started += !rc)
        rc = start_thread(p, false);
    /* Every set-up has run before the pool is handed out. */
    const struct sp_tthread *failed = NULL;
    for (;;) {
        bool starting = false;
        for (struct sp_tthread *t = p->threads; t; t = t->next) {
            starting |= t->state == T_STARTING;
            if (t->state == T_FAILED && (!failed || t->index < failed->index))
                failed = t;
        }
        if (!starting)
            break;
        pthread_cond_wait(&p->changed, &p->lock);
    }
    int setup_rc = failed ? failed->setup_rc : 0;
    unsigned failed_index = failed ? failed->index : 0;
    pthread_mutex_unlock(&p->lock);
    if (!rc && !failed) {
        *out = p;
        return 0;
    }
    end_threads(p);
    pool_destroy(p);
    if (failed)
        return sp_set_error(SP_ESETUP,
                            "set-up of worker %u failed: it returned %d",
                            failed_index, setup_rc);
    char why[96];
    return sp_set_error(rc == ENOMEM ? SP_ENOMEM : SP_ETHREAD,
                        "only %u of %u worker threads could be created "
                        "(pthread_create: %s)",
                        started, conf->start,
                        sp_errno_text(rc, why, sizeof why));
}

bool sp_tpool_owned(const struct sp_tpool *p)
{
    return p->owner == getpid();
}

bool sp_tpool_is_self(const struct sp_tpool *p)
{
    return self && self->pool == p;
}

void sp_tpool_free(struct sp_tpool *p)
{
    if (!p)
        return;
    if (!sp_tpool_owned(p)) {
        /* A forked child: none of the threads exist here, and the locks
         * may have been held at the fork. Only the memory is ours. */
        for (struct sp_tthread *t = p->threads, *next; t; t = next) {
            next = t->next;
            free(t);
        }
        free(p);
        return;
    }
    end_threads(p);
    pool_destroy(p);
}

/* ---- serving runs ------------------------------------------------------- */

static void adapt_read(uint64_t *wall, uint64_t *cpu, long *vol, long *invol);

int sp_tpool_submit(struct sp_trun *r, unsigned want)
{
    struct sp_tpool *p = r->pool;
    if (r->adaptive) /* the window opens before any worker runs */
        adapt_read(&r->win_wall, &r->win_cpu, &r->win_vol, &r->win_invol);
    pthread_mutex_lock(&p->lock);
    r->attached = r->nopen = r->nfree = 0;
    r->done = false;
    atomic_init(&r->finished, false);
    r->helper = NULL;
    r->spare = NULL;
    if (self && self->pool == p) {
        /* A nested call: the calling thread is a worker already. */
        r->helper = self;
        r->run->done.poke_sched = true; /* it may sleep in the scheduler */
        unsigned slot = attach(r);
        r->run->sched.claims[slot].tally->on_caller = true;
        want = want ? want - 1 : 0;
    }
    enqueue(p, r);
    int rc = 0;
    unsigned got = 0, first = want < SP_TPOOL_FIRST ? want : SP_TPOOL_FIRST;
    bool full = false;
    for (; got < first; got++) {
        if (wake_one(p))
            continue;
        if ((full = p->nthreads >= p->conf.cap || p->closing) ||
            (rc = start_thread(p, true)) != 0)
            break;
    }
    if (!got && !r->helper && !p->nthreads) {
        /* Not one thread to run it: nothing ran. */
        unqueue(p, r);
        pthread_mutex_unlock(&p->lock);
        char why[96];
        return sp_set_error(rc == ENOMEM ? SP_ENOMEM : SP_ETHREAD,
                            "pthread_create: %s",
                            sp_errno_text(rc ? rc : EAGAIN, why, sizeof why));
    }
    r->brought = got;
    r->wanted = want;
    r->pending = rc || full ? 0 : want - got;
    if (rc)
        note_fewer(r, rc);
    unsigned records = r->pending > p->nidle ? r->pending - p->nidle : 0;
    pthread_mutex_unlock(&p->lock);
    make_spares(r, records);
    return 0;
}

/* Threads already woken or started (by this, by sp_tpool_submit() or by
 * the workers that bring others) count as workers on their way: a burst
 * of ready tasks (10,000 released by one dependency) would otherwise start
 * a thread per task while the first ones are still being created,
 * hundreds where they are slow to start (under valgrind). The count is
 * the pool's, not the run's: a thread on its way serves whichever run
 * pick() gives it, so another run growing at the same moment may wait for
 * its next push. */
void sp_tpool_grow(struct sp_trun *r)
{
    struct sp_tpool *p = r->pool;
    pthread_mutex_lock(&p->lock);
    if (!r->done && r->attached + p->coming < r->target && !p->closing &&
        !wake_one(p) && p->nthreads < p->conf.cap)
        start_thread(p, false); /* failing only means one worker fewer */
    pthread_mutex_unlock(&p->lock);
}

void sp_tpool_stop(struct sp_trun *r)
{
    struct sp_tpool *p = r->pool;
    sp_sched_wake(&r->run->sched); /* a helper asleep in it */
    pthread_mutex_lock(&p->lock);
    maybe_done(p, r);
    pthread_mutex_unlock(&p->lock);
}

/* ---- adaptive worker counts --------------------------------------------- */

/* How often a waiting caller looks at its adaptive run. */
#define ADAPT_NS 500000u

/* Where the process's time has gone: wall and CPU ns, and its context
 * switches (voluntary: blocking; involuntary: preemption). */
static void adapt_read(uint64_t *wall, uint64_t *cpu, long *vol, long *invol)
{
    struct timespec ts;
    struct rusage ru;
    *wall = sp_now();
    *cpu = clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0
               ? (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec
               : 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        *vol = ru.ru_nvcsw;
        *invol = ru.ru_nivcsw;
    } else {
        *vol = *invol = 0;
    }
}

/* Raise r's worker target when its workers block with tasks waiting: the
 * process used less CPU than its busy workers could (half a CPU short or
 * more) since the window opened, and its threads gave up the CPU by
 * blocking (voluntary switches: at least one per two busy workers, twice
 * as many as they were preempted), so it is sleeping or I/O, not a CPU
 * that other programs took. Without evidence
 * either way, or while workers asked for are still coming, the window
 * stays open. Each step adds three workers per blocked one, so sleeping
 * tasks reach hundreds of workers in a few milliseconds while CPU-bound
 * tasks stay at one per CPU. `waits`: the caller's own sleeps in the
 * window (each a voluntary switch of its own). true when the window was
 * closed and a new one opened. */
static bool adapt(struct sp_trun *r, long waits)
{
    uint64_t now_wall, now_cpu;
    long now_vol, now_invol;
    adapt_read(&now_wall, &now_cpu, &now_vol, &now_invol);
    uint64_t wall = now_wall - r->win_wall, cpu = now_cpu - r->win_cpu;
    long vol = now_vol - r->win_vol - waits, invol = now_invol - r->win_invol;
    struct sp_tpool *p = r->pool;
    pthread_mutex_lock(&p->lock);
    unsigned busy = r->attached;
    if (busy < r->target && !r->done && runnable(r)) {
        /* Workers asked for are still coming: what their start costs
         * (a switch on the pool lock) is no evidence. Look again later. */
        pthread_mutex_unlock(&p->lock);
        r->win_wall = now_wall;
        r->win_cpu = now_cpu;
        r->win_vol = now_vol;
        r->win_invol = now_invol;
        return true;
    }
    bool full = r->done || r->target >= r->cap || !runnable(r);
    /* The busy workers' time not spent on a CPU, in workers. */
    double idle = busy - (wall ? (double)cpu / (double)wall : (double)busy);
    bool grow = false, reset = true;
    if (full || idle < 0.5)
        ; /* nothing to add, or the workers are busy on CPUs */
    else if (2 * vol >= (long)busy && vol > 2 * invol)
        grow = true; /* half the busy workers blocked, on average */
    else if (invol <= vol)
        reset = false; /* not enough evidence yet: keep looking */
    if (grow) {
        /* Three more per blocked worker: a table of sleeps quadruples its
         * workers each step. */
        unsigned add = idle >= 1.0 ? (unsigned)(3.0 * idle) : 1u;
        r->target = r->cap - r->target < add ? r->cap : r->target + add;
        /* Brought by the caller (sp_tpool_wait()) and the workers that
         * join meanwhile. */
        r->wanted = r->target;
        if (r->target - r->attached > r->pending)
            r->pending = r->target - r->attached;
    }
    pthread_mutex_unlock(&p->lock);
    if (reset) {
        r->win_wall = now_wall;
        r->win_cpu = now_cpu;
        r->win_vol = now_vol;
        r->win_invol = now_invol;
    }
    return reset;
}

/* The helper's share: run r's tasks until none will be ready any more. */
static void help(struct sp_trun *r)
{
    struct sp_run *run = r->run;
    struct sp_sched *s = &run->sched;
    struct sp_tally *t = s->claims[0].tally;
    uint64_t now = sp_run_now(run);
    size_t i;
    do {
        while (sp_sched_claim(s, 0, &now, &i)) {
            struct sp_outcome o;
            now = sp_task_exec(run, i, 0, now, &o);
            sp_complete(run, i, &o, t);
            sp_complete_deliver_queued(run);
        }
        sp_complete_deliver_queued(run);
    } while (sp_sched_idle(s, 0));
    pthread_mutex_lock(&r->pool->lock);
    detach(r->pool, r, 0);
    pthread_mutex_unlock(&r->pool->lock);
}

/* The caller's share of bringing r's workers: one at a time until none
 * is pending (the workers it brings take theirs meanwhile). */
static void bring_pending(struct sp_trun *r)
{
    for (;;) {
        pthread_mutex_lock(&r->pool->lock);
        unsigned k = take_pending(r, 1);
        pthread_mutex_unlock(&r->pool->lock);
        if (!k)
            return;
        bring_workers(r, k, true);
    }
}

void sp_tpool_wait(struct sp_trun *r)
{
    struct sp_run *run = r->run;
    bring_pending(r);
    if (r->helper)
        help(r);
    else if (!run->opts.on_done)
        spin_until(&r->finished, SPIN_NS); /* a short run ends meanwhile */
    /* Deliver completions until the run is done; meanwhile look at it
     * whenever something is due: at the deadline, stop it (the workers
     * may all be busy with other runs and never see it); when a retry's
     * delay has passed, make it ready (no worker may be in the run). An
     * adaptive run is also looked at every ADAPT_NS. */
    long waits = 0;
    bool adaptive = r->adaptive && !r->helper;
    for (;;) {
        uint64_t until = sp_sched_wake_at(&run->sched);
        if (adaptive && r->target < r->cap) {
            uint64_t next = sp_now() + ADAPT_NS;
            if (!until || next < until)
                until = next;
        }
        if (sp_complete_drain_until(run, until))
            break;
        waits++;
        sp_sched_tick(&run->sched, sp_run_now(run));
        if (adaptive && adapt(r, waits))
            waits = 0;
        bring_pending(r);
    }
    pthread_mutex_lock(&r->pool->lock);
    unqueue(r->pool, r);
    pthread_mutex_unlock(&r->pool->lock);
    free_spares(r);
}

/* ---- the shared pool ---------------------------------------------------- */

static struct sp_tpool shared;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;
static int shared_err;
static _Atomic bool shared_made; /* shared_init() succeeded */
/* Threads of the parent, in a forked child: kept reachable, never used. */
static struct sp_tthread *orphans;

static void shared_prepare(void)
{
    pthread_mutex_lock(&shared.lock);
}

static void shared_parent(void)
{
    pthread_mutex_unlock(&shared.lock);
}

/* In a forked child only the forking thread exists: the pool starts
 * empty (its threads' memory stays reachable, unused). */
static void shared_child(void)
{
    if (shared.threads) {
        struct sp_tthread *last = shared.threads;
        while (last->next)
            last = last->next;
        last->next = orphans;
        orphans = shared.threads;
    }
    shared.threads = NULL;
    shared.idle = NULL;
    shared.nidle = 0;
    shared.nthreads = 0;
    shared.retiring = 0;
    shared.head = shared.tail = NULL;
    shared.owner = getpid();
    pthread_mutex_unlock(&shared.lock);
}

static void shared_init(void)
{
    struct sp_tpool_conf conf = {.cap = SP_MAX_WORKERS,
                                 .idle_ns = SP_SHARED_IDLE_MS * 1000000ull};
    shared_err = pool_init(&shared, &conf);
    if (!shared_err) {
        shared.detached = true;
        pthread_attr_setdetachstate(&shared.attr, PTHREAD_CREATE_DETACHED);
        pthread_atfork(shared_prepare, shared_parent, shared_child);
        atomic_store_explicit(&shared_made, true, memory_order_release);
    }
}

void sp_tpool_shared_trim(void)
{
    if (!sp_tpool_shared())
        return;
    pthread_mutex_lock(&shared.lock);
    shared.trimming = true;
    while (shared.nthreads > 0) {
        for (struct sp_tthread *t = shared.idle, *next; t; t = next) {
            next = t->idle_next;
            t->idle = false;
            sem_post(&t->sem);
        }
        shared.idle = NULL;
        shared.nidle = 0;
        pthread_cond_wait(&shared.changed, &shared.lock);
    }
    shared.trimming = false;
    pthread_mutex_unlock(&shared.lock);
}

static void *no_op(void *arg)
{
    return arg;
}

/* A detached thread's stack is not unmapped when it ends: the C library
 * keeps it for reuse and, past its cache's size (40 MiB in glibc), unmaps
 * the stacks of threads that have ended when a thread is next made or
 * joined. One thread made and joined lets it do so now. */
static void flush_stacks(void)
{
    pthread_attr_t a;
    pthread_t th;
    if (pthread_attr_init(&a))
        return;
    pthread_attr_setstacksize(&a, 64 * 1024);
    if (pthread_create(&th, &a, no_op, NULL) == 0)
        pthread_join(th, NULL);
    pthread_attr_destroy(&a);
}

void sp_tpool_shed(unsigned keep)
{
    /* Only a pool that exists has threads; do not make one to look. */
    if (!atomic_load_explicit(&shared_made, memory_order_acquire))
        return;
    pthread_mutex_lock(&shared.lock);
    if (shared.nidle > keep) {
        /* Keep the `keep` threads that worked last (the top of the
         * stack), end the rest. */
        struct sp_tthread **q = &shared.idle;
        for (unsigned k = 0; k < keep && *q; k++)
            q = &(*q)->idle_next;
        struct sp_tthread *t = *q;
        *q = NULL;
        for (struct sp_tthread *next; t; t = next) {
            next = t->idle_next;
            t->idle = false;
            t->retire = true;
            shared.nidle--;
            shared.retiring++;
            sem_post(&t->sem);
        }
        while (shared.retiring > 0)
            pthread_cond_wait(&shared.changed, &shared.lock);
        pthread_mutex_unlock(&shared.lock);
        flush_stacks();
        return;
    }
    pthread_mutex_unlock(&shared.lock);
}

struct sp_tpool *sp_tpool_shared(void)
{
    pthread_once(&shared_once, shared_init);
    if (shared_err) {
        sp_set_error(shared_err, "the shared thread pool could not be set up");
        return NULL;
    }
    return &shared;
}
