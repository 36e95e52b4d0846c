/* SPDX-License-Identifier: MIT */
/* The process backend's row: forked workers with crash isolation and hard
 * time limits.
 *
 * Workers are forked from the calling thread after validation and inherit
 * the task table through fork, so callbacks and arguments need no
 * serialisation. They claim tasks one at a time from the scheduler's
 * counter, which lives in a mapping shared with the parent (a slow task
 * holds up only itself); once it is exhausted they ask the parent, which
 * hands them tasks given back by workers that died before starting them.
 * They publish in their slot which task they run and in which phase, and
 * send each outcome back as a frame (ring.c, worker.c). The parent's event
 * loop (loop.c) reads them on the calling thread and reports every outcome
 * to sp_complete(); workers are forked on demand while work remains (a
 * small table's second only once its first has run a while: loop.c), each
 * holding only its own channel (fds.c), replaced when they die, killed with
 * their process group at a time limit, and all reaped before the call
 * returns (spawn.c). */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "ppool.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static unsigned process_workers(const sp_options *opts, size_t n)
{
    (void)n; /* workers are forked only while work waits for one */
    return opts->max_workers ? opts->max_workers : sp_online_cpus();
}

static void free_prun(struct sp_run *run)
{
    struct prun *pr = run->backend;
    if (!pr)
        return;
    if (pr->sh) {
        /* Back to the run's own flag and counter before the mapping goes. */
        run->stop_local = atomic_load(&pr->sh->stop);
        run->stop = &run->stop_local;
        run->sched.cursor = &run->sched.next_local;
        munmap(pr->sh, pr->sh_size);
    }
    free(pr->pw);
    free(pr->buf);
    free(pr->pfd);
    free(pr->who);
    free(pr);
    run->backend = NULL;
}

static int process_start(struct sp_run *run)
{
    /* The parent records every outcome and answers every spawn on the
     * calling thread. */
    run->completes_alone = true;
    if (run->engine) { /* sp_pool_run(): the pool's workers */
        /* They read CLOCK_MONOTONIC (their run is rebuilt from each batch,
         * without the run clock): so does the parent, whose timestamps
         * (a crashed task's end) meet theirs. */
        run->clk.mult = 0;
        return sp_ppool_start(run);
    }
    struct prun *pr = sp_calloc(1, sizeof *pr);
    run->backend = pr;
    if (!pr)
        return sp_set_error(SP_ENOMEM, "cannot set up worker processes");
    pr->run = run;
    pr->nw = pr->nslots = run->workers;
    pr->parent = getpid();
    pr->sh_size =
        sizeof *pr->sh + (size_t)pr->nw * (sizeof(struct slot) + RING);
    void *m = mmap(NULL, pr->sh_size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m != MAP_FAILED)
        pr->sh = m;
    pr->pw = sp_calloc(pr->nw, sizeof *pr->pw);
    pr->buf = sp_malloc(READ_BUF);
    pr->pfd = sp_calloc(2 * (size_t)pr->nw, sizeof *pr->pfd);
    pr->who = sp_calloc(2 * (size_t)pr->nw, sizeof *pr->who);
    if (!pr->sh || !pr->pw || !pr->buf || !pr->pfd || !pr->who ||
        sp_sched_reserve(&run->sched, run->n)) {
        free_prun(run);
        return sp_set_error(SP_ENOMEM, "cannot set up %u worker processes",
                            run->workers);
    }
    atomic_init(&pr->sh->stop, atomic_load(run->stop));
    atomic_init(&pr->sh->next, 0);
    atomic_init(&pr->sh->heap_min, UINT32_MAX);
    for (unsigned k = 0; k < pr->nw; k++)
        pr->pw[k].fd = pr->pw[k].pidfd = -1;
    /* From here on the parent and every worker share one stop flag and
     * the scheduler's counter. */
    run->stop = &pr->sh->stop;
    run->sched.cursor = &pr->sh->next;

    sp_proc_shed(run->workers < run->n ? run->workers : run->n);
    if (sp_proc_spawn(pr, 0)) { /* not even one worker: nothing has run */
        int err = sp_set_error(pr->spawn_err, "%s", pr->spawn_msg);
        free_prun(run);
        return err;
    }
    return 0;
}

static void process_wait(struct sp_run *run)
{
    if (run->engine) {
        sp_ppool_wait(run);
        return;
    }
    struct prun *pr = run->backend;
    sp_proc_event_loop(pr);
    /* The loop ends when no worker is left and none can be forked: tasks
     * still waiting never start, for this reason. */
    if (!atomic_load(run->stop) && pr->spawn_err) {
        char msg[200];
        snprintf(msg, sizeof msg, "no worker left: %s", pr->spawn_msg);
        sp_run_fail(run, pr->spawn_err, msg);
    }
}

static void process_finish(struct sp_run *run)
{
    if (run->engine) {
        sp_ppool_finish(run);
        return;
    }
    struct prun *pr = run->backend;
    run->workers_used = pr->used;
    free_prun(run);
}

/* The parent's loop looks at the stop flag at least every SCAN_MS. */
static void process_stop(struct sp_run *run)
{
    (void)run;
}

const struct sp_backend_ops sp_backend_process = {
    .name = "process",
    .workers = process_workers,
    .start = process_start,
    .wait = process_wait,
    .finish = process_finish,
    .stop = process_stop,
};
