/* SPDX-License-Identifier: MIT */
/* Adaptive worker counts: a run with the default max_workers starts one
 * worker per CPU, and its caller raises the target while the workers
 * block (sleep, I/O) with tasks waiting (sp_tpool_wait()). */
#include "tpool-private.h"

#include <sys/resource.h>
#include <time.h>

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
bool sp_tpool_adapt(struct sp_trun *r, long waits)
{
    uint64_t now_wall, now_cpu;
    long now_vol, now_invol;
    adapt_read(&now_wall, &now_cpu, &now_vol, &now_invol);
    uint64_t wall = now_wall - r->win_wall, cpu = now_cpu - r->win_cpu;
    long vol = now_vol - r->win_vol - waits, invol = now_invol - r->win_invol;
    struct sp_tpool *p = r->pool;
    pthread_mutex_lock(&p->lock);
    unsigned busy = r->attached;
    if (busy < r->target && !r->done && sp_trun_runnable(r)) {
        /* Workers asked for are still coming: what their start costs
         * (a switch on the pool lock) is no evidence. Look again later. */
        pthread_mutex_unlock(&p->lock);
        r->win_wall = now_wall;
        r->win_cpu = now_cpu;
        r->win_vol = now_vol;
        r->win_invol = now_invol;
        return true;
    }
    bool full = r->done || r->target >= r->cap || !sp_trun_runnable(r);
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

void sp_tpool_adapt_open(struct sp_trun *r)
{
    adapt_read(&r->win_wall, &r->win_cpu, &r->win_vol, &r->win_invol);
}
