/* SPDX-License-Identifier: MIT */
/* Pools of worker threads that outlive a call, and their threads; see
 * tpool.h for the model and tpool-private.h for the engine's files.
 *
 * Idle threads wait on their own semaphore in a LIFO stack, so a wake-up
 * goes to exactly one thread, the one that worked last (its stack and
 * caches are warm), and the threads idle longest are the ones whose idle
 * time runs out. A thread taken off the idle stack gets exactly one post,
 * which it consumes before it goes idle again or ends, so a post never
 * reaches a thread that is gone; the post needs no lock, and the thread
 * it wakes does not find the pool lock held by its waker (as a condition
 * variable on the pool lock would have it). */
#define _GNU_SOURCE /* sem_clockwait() (glibc 2.30) */
#include "tpool-private.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static _Thread_local struct sp_tthread *self;

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
bool sp_tpool_spin_until(_Atomic bool *flag, uint64_t ns)
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
struct sp_tthread *sp_tpool_take_idle(struct sp_tpool *p)
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
bool sp_tpool_wake_one(struct sp_tpool *p)
{
    struct sp_tthread *t = sp_tpool_take_idle(p);
    if (t)
        sem_post(&t->sem);
    return t != NULL;
}

void sp_tpool_unlink_thread(struct sp_tpool *p, struct sp_tthread *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        p->threads = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

/* A thread woken or started is at sp_tpool_pick(), or ends (pool lock). */
void sp_tpool_arrived(struct sp_tpool *p, struct sp_tthread *t)
{
    if (t->coming) {
        t->coming = false;
        if (--p->coming == 0 && p->awaiting)
            pthread_cond_broadcast(&p->changed); /* sp_tpool_shed() */
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
        sp_tpool_arrived(p, t);
        struct sp_trun *r = sp_tpool_pick(p);
        if (r) {
            sp_tpool_work(t, r);
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
        sp_tpool_spin_until(&t->woken, SP_TPOOL_SPIN_NS);
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
            (p->trimming || t->retire || (w == ETIMEDOUT && !sp_tpool_pick(p))))
            break; /* idle too long, or asked to end */
    }
    sp_tpool_arrived(p, t);
    if (t->retire)
        p->retiring--;
    p->nthreads--;
    if (p->detached)
        sp_tpool_unlink_thread(p, t);
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
struct sp_tthread *sp_tpool_new_thread(struct sp_tpool *p)
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
void sp_tpool_link_thread(struct sp_tpool *p, struct sp_tthread *t)
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
int sp_tpool_create_thread(struct sp_tpool *p, struct sp_tthread *t)
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
int sp_tpool_start_thread(struct sp_tpool *p, bool creator)
{
    struct sp_tthread *t = sp_tpool_new_thread(p);
    if (!t)
        return ENOMEM;
    t->creator = creator;
    sp_tpool_link_thread(p, t);
    int rc = sp_tpool_create_thread(p, t);
    if (rc) {
        sp_tpool_arrived(p, t);
        p->nthreads--;
        p->next_index--;
        sp_tpool_unlink_thread(p, t);
        sem_destroy(&t->sem);
        free(t);
    }
    return rc;
}

int sp_tpool_init(struct sp_tpool *p, const struct sp_tpool_conf *conf)
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
        sp_tpool_wake_one(p);
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
    int err = sp_tpool_init(p, conf);
    if (err) {
        free(p);
        return err;
    }
    int rc = 0;
    unsigned started = 0;
    pthread_mutex_lock(&p->lock);
    for (; started < conf->start && !rc; started += !rc)
        rc = sp_tpool_start_thread(p, false);
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
    return sp_tpool_me(p) != NULL;
}

struct sp_tthread *sp_tpool_me(const struct sp_tpool *p)
{
    return self && self->pool == p ? self : NULL;
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
