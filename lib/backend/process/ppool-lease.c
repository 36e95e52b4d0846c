/* SPDX-License-Identifier: MIT */
/* Process pool calls holding workers (ppool-private.h): leasing idle
 * workers, forking those that are missing, waiting in line when a call
 * holds none, and giving them back (invariants 1, 2 and 4 in ppool.c). */
#include "ppool-private.h"

#include <errno.h>
#include <stdio.h>

/* ---- holding workers (pool lock) ---------------------------------------- */

/* Wake every waiting call: something they wait for may have changed. */
void sp_ppool_changed(struct sp_ppool *p)
{
    p->gen++;
    for (struct pwaiter *wt = p->whead; wt; wt = wt->next)
        pthread_cond_signal(&wt->cond);
}

/* Give w to the first waiting call that wants one more, or to the free
 * list. */
static void give_back(struct sp_ppool *p, struct ppw *w)
{
    for (struct pwaiter *wt = p->whead; wt; wt = wt->next) {
        if (wt->ngrants < wt->want) {
            w->state = PW_LEASED;
            w->next = wt->grants;
            wt->grants = w;
            wt->ngrants++;
            pthread_cond_signal(&wt->cond);
            return;
        }
    }
    w->state = PW_FREE;
    w->next = p->free_head;
    p->free_head = w;
}

/* The call holds w (state PW_LEASED already) as its worker j. */
static void hold(struct pctx *c, struct ppw *w)
{
    struct sp_ppool *p = c->pr.pool;
    unsigned j = c->nfree ? c->free_ids[--c->nfree] : c->pr.used++;
    c->slot_of[j] = w->index;
    c->held[j] = w;
    struct pworker *pw = &c->pr.pw[j];
    pw->pid = w->pid;
    pw->fd = w->fd;
    pw->pidfd = w->pidfd;
    pw->kill_why = KILL_NONE;
    pw->ready = w->ready;
    pw->idle = w->ready; /* a ready worker waits for a command */
    pw->out = pw->out_tail = NULL;
    pw->proto_err[0] = 0;
    /* It runs no batch now (it waits, or its set-up runs). */
    atomic_store(&p->conf.sh->slots[w->index].range, 0);
    uint32_t total = (uint32_t)sp_results_total(c->pr.run->res);
    sp_wire_dec_init(&pw->dec, total);
    pw->dec.resync = true; /* stray bytes a task wrote are skipped */
    sp_wire_dec_init(&pw->rdec, total);
    c->leased++;
    if (c->rs < 0) {
        unsigned r = 0;
        while (p->rs_used[r]) /* one is free: invariant 4 */
            r++;
        p->rs_used[r] = true;
        c->rs = (int)r;
        atomic_store(&sp_proc_prslot(p->conf.sh, sp_ppool_nworkers(p), r)->stop,
                     atomic_load(c->pr.run->stop));
    }
}

/* Fork a worker into w (PW_LEASED, reserved for c) and let c hold it: its
 * set-up runs before it is ready. Pool lock held; released for the fork.
 * A failure leaves w PW_NONE for a later call and marks c's fork failed;
 * `what` ("forked", "replaced") is for the message. */
void sp_ppool_fork_held(struct pctx *c, struct ppw *w, const char *what)
{
    struct sp_ppool *p = c->pr.pool;
    p->forking++;
    pthread_mutex_unlock(&p->lock);
    int rc = sp_ppool_fork_worker(p, w);
    pthread_mutex_lock(&p->lock);
    p->forking--;
    if (rc) {
        w->state = PW_NONE;
        p->lost_code = rc;
        snprintf(p->lost_msg, sizeof p->lost_msg,
                 "worker %u could not be %s: %s", w->index, what,
                 sp_last_error());
        c->fork_failed = true;
    } else {
        p->live++;
        hold(c, w); /* not ready until its set-up says IDLE */
    }
}

/* The call stops holding its worker j (the caller gives the pool's worker
 * back, or forks it again). */
void sp_ppool_unhold(struct pctx *c, unsigned j)
{
    struct sp_ppool *p = c->pr.pool;
    struct pworker *pw = &c->pr.pw[j];
    sp_wire_dec_free(&pw->dec);
    sp_wire_dec_free(&pw->rdec);
    sp_proc_out_free(pw);
    sp_proc_shm_drop(pw);
    pw->pid = 0;
    pw->fd = pw->pidfd = -1;
    pw->idle = pw->ready = false;
    c->held[j] = NULL;
    c->free_ids[c->nfree++] = j;
    if (--c->leased == 0 && c->rs >= 0) {
        p->rs_used[c->rs] = false;
        c->rs = -1;
    }
}

/* Give worker j back to the pool (it waits for a command, invariant 2). */
void sp_ppool_release(struct pctx *c, unsigned j)
{
    struct sp_ppool *p = c->pr.pool;
    struct ppw *w = c->held[j];
    sp_proc_ring_take(&c->pr, j);
    w->ready = c->pr.pw[j].ready;
    pthread_mutex_lock(&p->lock);
    sp_ppool_unhold(c, j);
    give_back(p, w);
    pthread_mutex_unlock(&p->lock);
}

/* ---- leasing ------------------------------------------------------------ */

/* Under the pool lock: take the workers handed to the call while it
 * waited, and idle ones from the free list (ready ones first) up to want. */
static void take_free(struct pctx *c, unsigned want)
{
    struct sp_ppool *p = c->pr.pool;
    while (c->waiter.grants) {
        struct ppw *w = c->waiter.grants;
        c->waiter.grants = w->next;
        c->waiter.ngrants--;
        hold(c, w);
    }
    for (int pass = 0; pass < 2; pass++) {
        struct ppw **at = &p->free_head;
        while (*at && c->leased < want) {
            struct ppw *w = *at;
            if (pass == 0 && !w->ready) {
                at = &w->next;
                continue;
            }
            *at = w->next;
            w->state = PW_LEASED;
            hold(c, w);
        }
    }
}

static void dequeue(struct sp_ppool *p, struct pwaiter *wt)
{
    for (struct pwaiter **at = &p->whead; *at; at = &(*at)->next) {
        if (*at == wt) {
            *at = wt->next;
            if (p->wtail == wt) {
                p->wtail = NULL;
                for (struct pwaiter *x = p->whead; x; x = x->next)
                    p->wtail = x;
            }
            return;
        }
    }
}

/* Lease workers while ready tasks have none to take them; a call holding
 * none waits in line (until the deadline). */
void sp_ppool_acquire(struct pctx *c)
{
    struct prun *pr = &c->pr;
    struct sp_run *run = pr->run;
    struct sp_ppool *p = pr->pool;
    if (sp_ppool_stopped(run) || c->leased >= c->limit)
        return;
    size_t ready = sp_ppool_ready_tasks(run);
    unsigned idle = 0;
    for (unsigned j = 0; j < pr->used; j++)
        idle += pr->pw[j].pid && pr->pw[j].ready && pr->pw[j].idle &&
                !pr->pw[j].kill_why;
    if (ready <= idle)
        return;
    size_t more = ready - idle;
    unsigned want =
        c->leased +
        (more < c->limit - c->leased ? (unsigned)more : c->limit - c->leased);
    pthread_mutex_lock(&p->lock);
    take_free(c, want);
    /* A worker that could not be forked may be forked now. */
    if (c->leased < want && !c->fork_failed) {
        for (unsigned k = 0; k < sp_ppool_nworkers(p); k++) {
            struct ppw *w = &p->w[k];
            if (w->state != PW_NONE)
                continue;
            w->state = PW_LEASED;
            sp_ppool_fork_held(c, w, "forked");
            sp_ppool_changed(p);
            break;
        }
    }
    if (c->leased) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    if (!p->live && !p->forking) {
        /* Not one worker is left in the pool, nor can one be forked. */
        int code = p->lost_code ? p->lost_code : SP_ESETUP;
        char msg[240];
        snprintf(msg, sizeof msg, "no worker left in the pool: %s",
                 p->lost_msg[0] ? p->lost_msg : "none could be started");
        pthread_mutex_unlock(&p->lock);
        sp_run_fail(run, code, msg);
        return;
    }
    /* In line until a call gives a worker back or the pool changes. */
    struct pwaiter *wt = &c->waiter;
    wt->next = NULL;
    wt->want = want;
    if (p->wtail)
        p->wtail->next = wt;
    else
        p->whead = wt;
    p->wtail = wt;
    /* Or until the call must be looked at again (the deadline, a retry
     * due, a cancel handle to look at): the loop's sp_sched_tick(). */
    uint64_t gen = p->gen, until = sp_sched_wake_at(&run->sched);
    struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
                          .tv_nsec = (long)(until % 1000000000u)};
    bool late = false;
    while (!wt->ngrants && p->gen == gen && !late) {
        if (until)
            late =
                pthread_cond_timedwait(&wt->cond, &p->lock, &ts) == ETIMEDOUT;
        else
            pthread_cond_wait(&wt->cond, &p->lock);
    }
    dequeue(p, wt);
    take_free(c, want);
    pthread_mutex_unlock(&p->lock);
}
