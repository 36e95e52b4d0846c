/* SPDX-License-Identifier: MIT */
/* The process-wide pool of simple_parallel(): made on first use, its
 * threads detached and ending after SP_SHARED_IDLE_MS idle; emptied in a
 * forked child; trimmed (tests) and shed (before many forks) on request. */
#include "tpool-private.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

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
    shared_err = sp_tpool_init(&shared, &conf);
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

/* The longest sp_tpool_shed() waits for threads on their way to pick(). */
#define SHED_WAIT_NS 200000000u

void sp_tpool_shed(unsigned keep)
{
    /* Only a pool that exists has threads; do not make one to look. */
    if (!atomic_load_explicit(&shared_made, memory_order_acquire))
        return;
    pthread_mutex_lock(&shared.lock);
    /* Threads on their way to pick() (woken, or started for a wide run
     * that has ended meanwhile; slow to start under a sanitizer) are idle
     * a moment later: wait for them, at most SHED_WAIT_NS, or they would
     * outlive the shedding and every fork would copy their stacks. */
    if (shared.coming > 0) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        uint64_t at = (uint64_t)until.tv_sec * 1000000000u +
                      (uint64_t)until.tv_nsec + SHED_WAIT_NS;
        until.tv_sec = (time_t)(at / 1000000000u);
        until.tv_nsec = (long)(at % 1000000000u);
        shared.awaiting = true;
        while (shared.coming > 0 &&
               pthread_cond_timedwait(&shared.changed, &shared.lock, &until) !=
                   ETIMEDOUT)
            ;
        shared.awaiting = false;
    }
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
