/* SPDX-License-Identifier: MIT */
/* Pools: workers that outlive a call (sp_pool_create(), sp_pool_run(),
 * sp_pool_free()).
 *
 * A pool is an engine and a little bookkeeping. The engine is a thread
 * pool (backend/thread/tpool.c), a process pool (backend/process/ppool.c) or,
 * for a serial pool, the calling thread itself, which calls take in turn.
 * sp_pool_run() is simple_parallel() with the pool's engine in the run
 * (sp_call()): the same validation, scheduler, completion path and map.
 * The bookkeeping counts calls in flight, so that sp_pool_free() waits for
 * them, and refuses a free from the pool's own tasks. */
#include "backend/process/ppool.h"
#include "backend/thread/tpool.h"
#include "sp-private.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sp_pool {
    sp_backend backend;
    unsigned workers;
    pid_t owner; /* the process that created it */
    pthread_mutex_t lock;
    pthread_cond_t idle; /* inflight dropped to 0 */
    unsigned inflight;   /* sp_pool_run() calls not returned yet */
    bool freeing;
    struct sp_tpool *tp; /* SP_BACKEND_THREAD */
    struct sp_ppool *pp; /* SP_BACKEND_PROCESS */
    /* SP_BACKEND_SERIAL: calls take turns on `turn`; the set-up ran in the
     * thread that created the pool. */
    pthread_mutex_t turn;
    void *serial_state;
    sp_teardown_fn teardown;
    void *user;
    sp_cancel *cancel; /* stops every call of the pool when fired */
};

/* The serial pool whose task the calling thread runs (nested calls). */
static _Thread_local const struct sp_pool *serial_in;

static bool zero_bytes(const unsigned char *p, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (p[k])
            return false;
    return true;
}

static int check_options(const sp_pool_options *po)
{
    if ((unsigned)po->backend > SP_BACKEND_PROCESS)
        return sp_set_error(SP_EOPTION, "backend %d is not a backend",
                            (int)po->backend);
    if (po->max_workers > SP_MAX_WORKERS)
        return sp_set_error(SP_EOPTION, "max_workers %u is above %u",
                            po->max_workers, (unsigned)SP_MAX_WORKERS);
    if (!zero_bytes(po->reserved, sizeof po->reserved))
        return sp_set_error(SP_ENOTSUP,
                            "a reserved field of sp_pool_options is set");
    return 0;
}

static int serial_create(struct sp_pool *p, const sp_pool_options *po)
{
    int rc = pthread_mutex_init(&p->turn, NULL);
    if (rc)
        return sp_set_error_errno(SP_ETHREAD, rc, "pthread_mutex_init");
    p->teardown = po->teardown;
    p->user = po->user;
    if (po->setup && (rc = po->setup(0, po->user, &p->serial_state)) != 0) {
        pthread_mutex_destroy(&p->turn);
        return sp_set_error(SP_ESETUP,
                            "set-up of worker 0 failed: it returned %d", rc);
    }
    return 0;
}

SP_API int sp_pool_create(const sp_pool_options *po, sp_pool **out)
{
    SP_CHECK(out, SP_EINVAL, "the 'out' argument is NULL");
    *out = NULL;
    static const sp_pool_options defaults;
    if (!po)
        po = &defaults;
    int err = check_options(po);
    if (err)
        return err;
    struct sp_pool *p = sp_calloc(1, sizeof *p);
    if (!p)
        return sp_set_error(SP_ENOMEM, "cannot allocate a pool");
    p->backend = po->backend;
    p->cancel = po->cancel;
    p->owner = getpid();
    p->workers = po->backend == SP_BACKEND_SERIAL ? 1
                 : po->max_workers                ? po->max_workers
                                                  : sp_online_cpus();
    int rc = pthread_mutex_init(&p->lock, NULL);
    if (rc) {
        free(p);
        return sp_set_error_errno(SP_ETHREAD, rc, "pthread_mutex_init");
    }
    if ((rc = pthread_cond_init(&p->idle, NULL)) != 0) {
        pthread_mutex_destroy(&p->lock);
        free(p);
        return sp_set_error_errno(SP_ETHREAD, rc, "pthread_cond_init");
    }
    switch (p->backend) {
    case SP_BACKEND_THREAD: {
        struct sp_tpool_conf conf = {.cap = p->workers,
                                     .start = p->workers,
                                     .stack_size = po->stack_size,
                                     .setup = po->setup,
                                     .teardown = po->teardown,
                                     .user = po->user};
        err = sp_tpool_create(&conf, &p->tp);
        break;
    }
    case SP_BACKEND_PROCESS:
        err = sp_ppool_create(po, p->workers, &p->pp);
        break;
    case SP_BACKEND_SERIAL:
        err = serial_create(p, po);
        break;
    }
    if (err) {
        pthread_cond_destroy(&p->idle);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return err;
    }
    *out = p;
    return 0;
}

SP_API unsigned sp_pool_workers(const sp_pool *pool)
{
    return pool ? pool->workers : 0;
}

/* A call on a pool this process did not create (inherited through fork():
 * a task of a process pool calling its own pool, or any forked child):
 * none of its workers are ours, so the call runs on threads of this
 * process, at most the pool's number at once. */
static int run_here(const struct sp_pool *pool, const sp_task *tasks, size_t n,
                    const sp_options *opts, sp_results **out)
{
    sp_options o = opts ? *opts : (sp_options){0};
    o.backend = pool->backend == SP_BACKEND_SERIAL ? SP_BACKEND_SERIAL
                                                   : SP_BACKEND_THREAD;
    if (!o.max_workers || o.max_workers > pool->workers)
        o.max_workers = pool->workers;
    o.stack_size = 0;
    return sp_call(tasks, n, &o, out, NULL);
}

static int run_serial(struct sp_pool *pool, const sp_task *tasks, size_t n,
                      const sp_options *opts, sp_results **out)
{
    struct sp_call_pool cp = {
        .backend = SP_BACKEND_SERIAL, .workers = 1, .cancel = pool->cancel};
    if (serial_in == pool) /* a nested call: the turn is ours already */
        return sp_call(tasks, n, opts, out, &cp);
    pthread_mutex_lock(&pool->turn);
    void *saved = sp_worker_state;
    const struct sp_pool *saved_in = serial_in;
    sp_worker_state = pool->serial_state;
    serial_in = pool;
    int err = sp_call(tasks, n, opts, out, &cp);
    serial_in = saved_in;
    sp_worker_state = saved;
    pthread_mutex_unlock(&pool->turn);
    return err;
}

/* Whether the calling thread runs a task of the pool. */
static bool in_own_task(const struct sp_pool *pool)
{
    switch (pool->backend) {
    case SP_BACKEND_THREAD:
        return sp_tpool_is_self(pool->tp);
    case SP_BACKEND_SERIAL:
        return serial_in == pool;
    case SP_BACKEND_PROCESS:
        return false; /* tasks run in other processes: see owner */
    }
    return false;
}

SP_API int sp_pool_run(sp_pool *pool, const sp_task *tasks, size_t n,
                       const sp_options *opts, sp_results **out)
{
    SP_CHECK(pool, SP_EINVAL, "the pool is NULL");
    if (pool->owner != getpid())
        return run_here(pool, tasks, n, opts, out);
    pthread_mutex_lock(&pool->lock);
    if (pool->freeing && !in_own_task(pool)) {
        /* A nested call is part of a call in flight: it may go on. */
        pthread_mutex_unlock(&pool->lock);
        return sp_set_error(SP_EINVAL, "the pool is being freed");
    }
    pool->inflight++;
    pthread_mutex_unlock(&pool->lock);
    int err = 0;
    switch (pool->backend) {
    case SP_BACKEND_THREAD: {
        struct sp_call_pool cp = {.backend = SP_BACKEND_THREAD,
                                  .workers = pool->workers,
                                  .engine = pool->tp,
                                  .cancel = pool->cancel};
        err = sp_call(tasks, n, opts, out, &cp);
        break;
    }
    case SP_BACKEND_PROCESS: {
        struct sp_call_pool cp = {.backend = SP_BACKEND_PROCESS,
                                  .workers = pool->workers,
                                  .engine = pool->pp,
                                  .cancel = pool->cancel};
        err = sp_call(tasks, n, opts, out, &cp);
        break;
    }
    case SP_BACKEND_SERIAL:
        err = run_serial(pool, tasks, n, opts, out);
        break;
    }
    pthread_mutex_lock(&pool->lock);
    if (--pool->inflight == 0)
        pthread_cond_broadcast(&pool->idle);
    pthread_mutex_unlock(&pool->lock);
    return err;
}

SP_API void sp_pool_free(sp_pool *pool)
{
    if (!pool)
        return;
    if (pool->owner != getpid()) {
        /* In a forked child, a worker of the pool included: none of its
         * threads or processes are this process's to end. Only memory. */
        if (pool->tp)
            sp_tpool_free(pool->tp);
        sp_ppool_free(pool->pp); /* nothing: a worker may run on it */
        free(pool);
        return;
    }
    if (in_own_task(pool)) {
        sp_set_error(SP_EBUSY, "sp_pool_free() from a task of the pool "
                               "itself: the pool is not freed");
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->freeing = true;
    while (pool->inflight)
        pthread_cond_wait(&pool->idle, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    switch (pool->backend) {
    case SP_BACKEND_THREAD:
        sp_tpool_free(pool->tp);
        break;
    case SP_BACKEND_PROCESS:
        sp_ppool_free(pool->pp);
        break;
    case SP_BACKEND_SERIAL:
        if (pool->teardown)
            pool->teardown(0, pool->user, pool->serial_state);
        pthread_mutex_destroy(&pool->turn);
        break;
    }
    pthread_cond_destroy(&pool->idle);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}
