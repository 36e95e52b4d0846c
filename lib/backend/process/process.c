/* SPDX-License-Identifier: MIT */
/* The process backend's row: forked workers with crash isolation and hard
 * time limits.
 *
 * Workers are forked from the calling thread after validation and inherit
 * the task table through fork, so callbacks and arguments need no
 * serialisation. They claim tasks one at a time from the scheduler's
 * counter, which lives in a mapping shared with the parent (a slow task
 * holds up only itself), publish in their slot which task they run, and
 * send each outcome back as a frame (ring.c, worker.c). The parent's event
 * loop (loop.c) reads them on the calling thread and reports every outcome
 * to sp_complete(); workers are forked on demand while unclaimed tasks
 * remain, replaced when they die, killed at a time limit, and all reaped
 * before the call returns (spawn.c). */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "proc.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static unsigned process_workers(const sp_options *opts, size_t n)
{
    size_t w = opts->max_workers;
    if (!w) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        w = cpus > 0 ? (size_t)cpus : 1;
    }
    if (w > n)
        w = n;
    return (unsigned)(w ? w : 1);
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
    struct prun *pr = sp_calloc(1, sizeof *pr);
    run->backend = pr;
    if (!pr)
        return sp_set_error(SP_ENOMEM, "cannot set up worker processes");
    pr->run = run;
    pr->nw = run->workers;
    pr->sh_size =
        sizeof *pr->sh + (size_t)pr->nw * (sizeof(struct slot) + RING) + run->n;
    void *m = mmap(NULL, pr->sh_size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pr->pw = sp_calloc(pr->nw, sizeof *pr->pw);
    pr->buf = sp_malloc(READ_BUF);
    pr->pfd = sp_calloc(pr->nw, sizeof *pr->pfd);
    pr->who = sp_calloc(pr->nw, sizeof *pr->who);
    if (m != MAP_FAILED)
        pr->sh = m;
    if (!pr->sh || !pr->pw || !pr->buf || !pr->pfd || !pr->who) {
        free_prun(run);
        return sp_set_error(SP_ENOMEM, "cannot set up %u worker processes",
                            run->workers);
    }
    /* After the rings: one byte per task, zero like all of a new mapping. */
    pr->have = (unsigned char *)&pr->sh->slots[pr->nw] + (size_t)pr->nw * RING;
    atomic_init(&pr->sh->stop, atomic_load(run->stop));
    atomic_init(&pr->sh->next, 0);
    for (unsigned k = 0; k < pr->nw; k++)
        pr->pw[k].fd = -1;
    /* From here on the parent and every worker share one stop flag and
     * the scheduler's counter. */
    run->stop = &pr->sh->stop;
    run->sched.cursor = &pr->sh->next;

    if (sp_proc_spawn(pr, 0)) { /* not even one worker: nothing has run */
        int err = sp_set_error(pr->spawn_err, "%s", pr->spawn_msg);
        free_prun(run);
        return err;
    }
    return 0;
}

static size_t missing(const struct prun *pr)
{
    size_t left = 0;
    for (size_t i = 0; i < pr->run->n; i++)
        left += !pr->have[i];
    return left;
}

static void process_wait(struct sp_run *run)
{
    struct prun *pr = run->backend;
    sp_proc_event_loop(pr);
    /* A worker killed between claiming a task and starting it (a kill from
     * outside, or after a malformed frame) leaves that task without an
     * outcome. Run such tasks again, in further rounds, while rounds make
     * progress. */
    for (size_t left = missing(pr); left && !atomic_load(run->stop);) {
        atomic_store(&pr->sh->retry, 1);
        atomic_store(&pr->sh->next, 0);
        pr->spawn_blocked = 0;
        sp_proc_event_loop(pr);
        size_t now_left = missing(pr);
        if (now_left == left)
            break;
        left = now_left;
    }
    /* Tasks left with no worker to run them never start, for this reason. */
    if (missing(pr) && !atomic_load(run->stop) && pr->spawn_err) {
        char msg[160];
        snprintf(msg, sizeof msg, "no worker left: %s", pr->spawn_msg);
        sp_run_fail(run, pr->spawn_err, msg);
    }
}

static void process_finish(struct sp_run *run)
{
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
