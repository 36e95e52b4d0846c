/* SPDX-License-Identifier: MIT */
/* Runs as a pool serves them (tpool.h): the pool's queue of runs, workers
 * joining a run (a claim slot each) and leaving it, a run done when no
 * worker is in it and nothing will start, and the calling side:
 * sp_tpool_submit(), sp_tpool_grow(), sp_tpool_stop(), sp_tpool_wait(),
 * with a nested call's helper running its own run's tasks. */
#include "tpool-private.h"

#include <errno.h>

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

/* The oldest queued run a worker can help now. */
struct sp_trun *sp_tpool_pick(struct sp_tpool *p)
{
    for (struct sp_trun *r = p->head; r; r = r->next)
        if (r->attached < r->cap && sp_trun_runnable(r))
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
    if (r->done || r->attached || !sp_trun_stopped(r))
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

void sp_tpool_work(struct sp_tthread *t, struct sp_trun *r)
{
    struct sp_tpool *p = r->pool;
    unsigned slot = attach(r);
    unsigned bring = sp_tpool_take_pending(r, SP_TPOOL_FAN);
    /* A nested call's caller helps instead of bringing: then every worker
     * may start threads. */
    bool create = t->creator || r->helper;
    pthread_mutex_unlock(&p->lock);
    sp_tpool_bring_workers(r, bring, create);
    serve(r, slot);
    pthread_mutex_lock(&p->lock);
    detach(p, r, slot);
}

int sp_tpool_submit(struct sp_trun *r, unsigned want)
{
    struct sp_tpool *p = r->pool;
    if (r->adaptive) /* the window opens before any worker runs */
        sp_tpool_adapt_open(r);
    pthread_mutex_lock(&p->lock);
    r->attached = r->nopen = r->nfree = 0;
    r->done = false;
    atomic_init(&r->finished, false);
    r->helper = NULL;
    r->spare = NULL;
    struct sp_tthread *me = sp_tpool_me(p);
    if (me) {
        /* A nested call: the calling thread is a worker already. */
        r->helper = me;
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
        if (sp_tpool_wake_one(p))
            continue;
        if ((full = p->nthreads >= p->conf.cap || p->closing) ||
            (rc = sp_tpool_start_thread(p, true)) != 0)
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
        sp_tpool_note_fewer(r, rc);
    unsigned records = r->pending > p->nidle ? r->pending - p->nidle : 0;
    pthread_mutex_unlock(&p->lock);
    sp_tpool_make_spares(r, records);
    return 0;
}

/* Threads already woken or started (by this, by sp_tpool_submit() or by
 * the workers that bring others) count as workers on their way: a burst
 * of ready tasks (10,000 released by one dependency) would otherwise start
 * a thread per task while the first ones are still being created,
 * hundreds where they are slow to start (under valgrind). The count is
 * the pool's, not the run's: a thread on its way serves whichever run
 * sp_tpool_pick() gives it, so another run growing at the same moment may wait
 * for its next push. */
void sp_tpool_grow(struct sp_trun *r)
{
    struct sp_tpool *p = r->pool;
    pthread_mutex_lock(&p->lock);
    if (!r->done && r->attached + p->coming < r->target && !p->closing &&
        !sp_tpool_wake_one(p) && p->nthreads < p->conf.cap)
        sp_tpool_start_thread(p,
                              false); /* failing only means one worker fewer */
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

void sp_tpool_wait(struct sp_trun *r)
{
    struct sp_run *run = r->run;
    sp_tpool_bring_pending(r);
    if (r->helper)
        help(r);
    else if (!run->opts.on_done) /* a short run ends meanwhile */
        sp_tpool_spin_until(&r->finished, SP_TPOOL_SPIN_NS);
    /* Deliver completions until the run is done; meanwhile look at it
     * whenever something is due: at the deadline, stop it (the workers
     * may all be busy with other runs and never see it); when a retry's
     * delay has passed, make it ready (no worker may be in the run). An
     * adaptive run is also looked at every SP_TPOOL_ADAPT_NS. */
    long waits = 0;
    bool adaptive = r->adaptive && !r->helper;
    for (;;) {
        uint64_t until = sp_sched_wake_at(&run->sched);
        if (adaptive && r->target < r->cap) {
            uint64_t next = sp_now() + SP_TPOOL_ADAPT_NS;
            if (!until || next < until)
                until = next;
        }
        if (sp_complete_drain_until(run, until))
            break;
        waits++;
        sp_sched_tick(&run->sched, sp_run_now(run));
        if (adaptive && sp_tpool_adapt(r, waits))
            waits = 0;
        sp_tpool_bring_pending(r);
    }
    pthread_mutex_lock(&r->pool->lock);
    unqueue(r->pool, r);
    pthread_mutex_unlock(&r->pool->lock);
    sp_tpool_free_spares(r);
}
