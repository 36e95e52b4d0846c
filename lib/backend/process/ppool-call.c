/* SPDX-License-Identifier: MIT */
/* A process pool call (ppool-private.h): a worker's end, the call's loop
 * on the calling thread, and the backend's start, wait and finish for a
 * run whose engine is a process pool. */
#include "ppool-private.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

/* A buffer larger than this is freed after its batch, not kept. */
#define BATCH_KEEP (1024u * 1024)
/* How long a call's loop, and an idle worker, look for what they wait for
 * before they sleep (as the thread pool's waiters do). */
#define SPIN_NS 50000u

/* ---- a worker's end ----------------------------------------------------- */

static bool awaited(const struct pctx *c, const struct pworker *pw);

/* The call's worker j is gone and reaped (have, status: as the server
 * reaped it): account for its tasks, and fork a replacement that the call
 * holds while its set-up runs (not for a worker whose set-up failed). */
static void ended_with(struct pctx *c, unsigned j, int have, int status)
{
    struct prun *pr = &c->pr;
    struct sp_ppool *p = pr->pool;
    struct ppw *w = c->held[j];
    struct slot *s = sp_proc_slot(pr, j);
    int setup = atomic_load(&s->setup);
    char why[200] = "";
    if (setup != SETUP_OK)
        sp_ppool_setup_failure(p, w->index, have, status, why, sizeof why);
    sp_ppool_reclaim(c, j);
    sp_proc_worker_gone(pr, j, have, status); /* closes its descriptors */
    w->fd = w->pidfd = -1;
    w->pid = 0;
    w->ready = false;

    pthread_mutex_lock(&p->lock);
    p->live--;
    sp_ppool_unhold(c, j); /* w stays PW_LEASED: reserved for the fork below */
    if (setup == SETUP_OK) {
        sp_ppool_fork_held(c, w, "replaced");
    } else {
        w->state = PW_GONE; /* set-up failed: not replaced */
        p->lost_code = SP_ESETUP;
        snprintf(p->lost_msg, sizeof p->lost_msg, "%s", why);
    }
    sp_ppool_changed(p);
    pthread_mutex_unlock(&p->lock);
}

/* The call's worker j is gone (its pidfd, or the end of its channel
 * without one): reap it through the server and account for it. */
static void ended(struct pctx *c, unsigned j)
{
    int status = 0;
    int have =
        sp_forkserver_reap(c->pr.pool->fs, c->pr.pw[j].pid, &status) == 0;
    ended_with(c, j, have, status);
}

/* Without a pidfd, a worker's end shows as the end of its channel, unless
 * a process its task started holds a copy: then the server tells. */
static void poll_exits(struct pctx *c)
{
    struct prun *pr = &c->pr;
    for (unsigned j = 0; j < pr->used; j++) {
        struct pworker *pw = &pr->pw[j];
        if (!pw->pid || pw->pidfd >= 0 || !awaited(c, pw))
            continue;
        int status = 0;
        if (sp_forkserver_poll(pr->pool->fs, pw->pid, &status) == 1)
            ended_with(c, j, 1, status);
    }
}

/* ---- the call's loop ---------------------------------------------------- */

/* The call's stop flag and the one it shares with its workers agree. */
static void sync_stop(struct pctx *c)
{
    struct sp_run *run = c->pr.run;
    if (c->rs < 0)
        return;
    struct sp_ppool *p = c->pr.pool;
    _Atomic int *shared =
        &sp_proc_prslot(p->conf.sh, sp_ppool_nworkers(p), (unsigned)c->rs)
             ->stop;
    int mine = atomic_load(run->stop), theirs = atomic_load(shared);
    if (theirs && !mine)
        sp_run_stop(run, theirs); /* a worker's fail-fast or deadline */
    else if (mine && !theirs)
        atomic_store(shared, mine);
}

/* Whether worker j runs a task or is on its way out. */
static bool busy(const struct pworker *pw)
{
    return pw->pid && (pw->kill_why || (pw->ready && !pw->idle));
}

/* Whether the call waits for its worker before it ends: one that runs a
 * task or is on its way out, and one whose set-up still runs (a
 * replacement: the call that lost a worker returns with the pool whole),
 * unless the call's deadline has passed (then the pool keeps it). */
static bool awaited(const struct pctx *c, const struct pworker *pw)
{
    if (busy(pw))
        return true;
    if (!pw->pid || pw->ready)
        return false;
    struct sp_run *run = c->pr.run;
    if (atomic_load(run->stop) == SP_STOP_CALLER)
        return false; /* cancelled: return without delay */
    return !run->deadline || sp_now() < run->deadline;
}

/* Whether a task of the call waits out a retry delay (it will be ready). */
static bool later(const struct sp_run *run)
{
    return !sp_ppool_stopped(run) && sp_sched_later_pending(&run->sched);
}

/* Give back idle workers the call has nothing for (while another of its
 * workers still runs a task; at the end, every worker). */
static void release_unneeded(struct pctx *c, bool all)
{
    struct prun *pr = &c->pr;
    bool any_busy = false, stealable = false;
    for (unsigned j = 0; j < pr->used; j++) {
        if (!awaited(c, &pr->pw[j]))
            continue;
        any_busy = true;
        struct slot *s = sp_proc_slot(pr, j);
        uint64_t r = atomic_load(&s->range);
        stealable |= (uint32_t)r < (uint32_t)(r >> 32);
    }
    /* Kept while the call may use them: its other workers run tasks (that
     * may make more ready), or it is over (then all go); not while a
     * retry's delay is all it waits for. */
    if (!all && ((!any_busy && !later(pr->run)) || stealable ||
                 sp_ppool_ready_tasks(pr->run)))
        return;
    for (unsigned j = 0; j < pr->used; j++) {
        struct pworker *pw = &pr->pw[j];
        if (!pw->pid || awaited(c, pw) || (!all && !pw->ready))
            continue;
        if (pw->ready) {
            sp_ppool_reclaim(c, j);
            sp_proc_ring_take(pr, j);
            if (sp_wire_partial(&pw->dec) || pw->out) {
                /* Not at a boundary (a task's stray bytes): unusable. */
                snprintf(pw->proto_err, sizeof pw->proto_err,
                         "stray bytes on its channel");
                sp_proc_kill(pw, KILL_PROTO);
                continue;
            }
        }
        sp_ppool_release(c, j);
    }
}

/* Nothing runs (or sets up) in the call's workers, and nothing can
 * start. */
static bool over(struct pctx *c)
{
    struct prun *pr = &c->pr;
    for (unsigned j = 0; j < pr->used; j++)
        if (awaited(c, &pr->pw[j]))
            return false;
    return sp_ppool_stopped(pr->run) ||
           (!sp_ppool_ready_tasks(pr->run) &&
            !sp_sched_later_pending(&pr->run->sched));
}

static void loop_failed(struct pctx *c, int err)
{
    struct prun *pr = &c->pr;
    char why[128], text[96];
    snprintf(why, sizeof why, "poll: %s",
             sp_errno_text(err, text, sizeof text));
    snprintf(pr->error_msg, sizeof pr->error_msg, "%s", why);
    sp_run_fail(pr->run, SP_ESYSTEM, why);
    for (unsigned j = 0; j < pr->used; j++)
        if (busy(&pr->pw[j]))
            sp_proc_kill(&pr->pw[j], KILL_ERROR);
    for (unsigned j = 0; j < pr->used; j++)
        if (pr->pw[j].pid && pr->pw[j].kill_why)
            ended(c, j);
}

/* The call's worker j: its channel ended (the pool's record of it has no
 * descriptor either), or its process is gone. */
static void closed_cb(void *arg, unsigned j)
{
    struct pctx *c = arg;
    c->held[j]->fd = -1;
}

static void ended_cb(void *arg, unsigned j)
{
    ended(arg, j);
}

void sp_ppool_wait(struct sp_run *run)
{
    struct pctx *c = run->backend;
    struct prun *pr = &c->pr;
    struct pollfd *pfd = pr->pfd;
    for (;;) {
        /* The deadline, a cancel handle, retries whose delay passed. */
        sp_sched_tick(&run->sched, sp_now());
        sync_stop(c);
        sp_ppool_acquire(c);
        sync_stop(c);
        sp_ppool_dispatch(c);
        release_unneeded(c, false);
        if (over(c)) {
            release_unneeded(c, true);
            if (!c->leased)
                break;
            /* One was killed (not at a frame boundary): await its end. */
        }
        if (!c->leased) {
            /* sp_ppool_acquire() waited in line, and will again; or all the
             * call waits for is a retry's delay: until then it holds nothing.
             */
            uint64_t until = sp_sched_wake_at(&run->sched), now = sp_now();
            if (!sp_ppool_ready_tasks(run) && until > now)
                poll(NULL, 0, (int)((until - now + 999999) / 1000000));
            continue;
        }
        nfds_t nfds = sp_proc_poll_set(pr);
        int timeout = sp_proc_poll_timeout(pr, sp_now());
        int r = poll(pfd, nfds, 0);
        if (r == 0 && timeout) {
            /* Short tasks answer within microseconds: look again, giving
             * the CPU away meanwhile, before sleeping (a wake-up costs
             * more than the whole call on a busy machine). */
            uint64_t end = sp_now() + SPIN_NS;
            do {
                sched_yield();
                r = poll(pfd, nfds, 0);
            } while (r == 0 && sp_now() < end);
            if (r == 0)
                r = poll(pfd, nfds, timeout);
        }
        if (r < 0 && errno != EINTR && errno != EAGAIN) {
            loop_failed(c, errno);
            continue;
        }
        sp_proc_poll_events(pr, nfds, r, closed_cb, ended_cb, c);
        /* What a worker that just said IDLE finished is in its ring. */
        for (unsigned j = 0; j < pr->used; j++)
            if (pr->pw[j].pid && pr->pw[j].idle)
                sp_proc_ring_take(pr, j);
        poll_exits(c);
        sp_proc_enforce_limits(pr, sp_now());
    }
}

/* ---- the backend's row -------------------------------------------------- */

static struct pctx *new_ctx(struct sp_ppool *p)
{
    unsigned n = sp_ppool_nworkers(p);
    struct pctx *c = sp_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (pthread_cond_init(&c->waiter.cond, &p->cattr)) {
        free(c);
        return NULL;
    }
    c->slot_of = sp_calloc(n, sizeof *c->slot_of);
    c->held = sp_calloc(n, sizeof *c->held);
    c->free_ids = sp_calloc(n, sizeof *c->free_ids);
    c->b = sp_calloc(n, sizeof *c->b);
    c->pr.pw = sp_calloc(n, sizeof *c->pr.pw);
    c->pr.buf = sp_malloc(READ_BUF);
    c->pr.pfd = sp_calloc(2 * (size_t)n, sizeof *c->pr.pfd);
    c->pr.who = sp_calloc(2 * (size_t)n, sizeof *c->pr.who);
    if (!c->slot_of || !c->held || !c->free_ids || !c->b || !c->pr.pw ||
        !c->pr.buf || !c->pr.pfd || !c->pr.who) {
        sp_ppool_free_ctx(c, n);
        return NULL;
    }
    for (unsigned j = 0; j < n; j++)
        c->pr.pw[j].fd = c->pr.pw[j].pidfd = -1;
    return c;
}

int sp_ppool_start(struct sp_run *run)
{
    struct sp_ppool *p = run->engine;
    pthread_mutex_lock(&p->lock);
    struct pctx *c = p->cache;
    if (c)
        p->cache = c->next;
    pthread_mutex_unlock(&p->lock);
    if (!c && !(c = new_ctx(p)))
        return sp_set_error(SP_ENOMEM, "cannot set up a call on the pool");
    if (sp_sched_reserve(&run->sched, run->n)) {
        pthread_mutex_lock(&p->lock);
        c->next = p->cache;
        p->cache = c;
        pthread_mutex_unlock(&p->lock);
        return SP_ENOMEM;
    }
    struct prun *pr = &c->pr;
    pr->run = run;
    pr->sh = p->conf.sh;
    pr->sh_size = p->map_size;
    pr->nslots = sp_ppool_nworkers(p);
    pr->slot_of = c->slot_of;
    pr->pool = p;
    pr->nw = sp_ppool_nworkers(p);
    pr->used = 0;
    pr->alive = 0;
    pr->cur = 0;
    pr->error_msg[0] = 0;
    c->nfree = 0;
    c->leased = 0;
    c->rs = -1;
    c->fork_failed = false;
    c->limit = run->workers ? run->workers : 1;
    c->waiter.ngrants = 0;
    c->waiter.grants = NULL;
    run->backend = c;
    return 0;
}

void sp_ppool_finish(struct sp_run *run)
{
    struct pctx *c = run->backend;
    struct sp_ppool *p = c->pr.pool;
    run->workers_used = c->pr.used;
    for (unsigned j = 0; j < c->pr.used; j++) {
        struct pbatch *b = &c->b[j];
        if (b->bufcap > BATCH_KEEP) {
            free(b->buf);
            b->buf = NULL;
            b->bufcap = 0;
        }
    }
    c->pr.run = NULL;
    pthread_mutex_lock(&p->lock);
    c->next = p->cache;
    p->cache = c;
    pthread_mutex_unlock(&p->lock);
    run->backend = NULL;
}
