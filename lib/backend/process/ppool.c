/* SPDX-License-Identifier: MIT */
/* Process pools (ppool.h): workers forked once by the pool's fork server
 * and leased by each call in turn.
 *
 * The pool, under its lock: each worker's process, descriptors and state
 * (free, leased, none, gone), the free list, the calls waiting for a worker
 * in the order they came, and which call slots of the shared mapping are
 * taken. The mapping (made before the fork server, so every worker shares
 * it) holds a slot and a ring per worker, as a one-shot call's does, and
 * a call slot per worker with the stop flag a call shares with the workers
 * it holds.
 *
 * A call, on its own thread, runs the loop of a one-shot call (loop.c
 * decodes frames, answers dependency and spawn requests, records outcomes,
 * enforces limits) over the workers it leased, numbered 0 .. limit - 1
 * for the call (what tasks see as sp_ctx_worker() and the map records).
 * Each turn it leases idle workers while tasks are ready (and waits in line
 * when it holds none), gives each idle worker a batch (its share of what is
 * ready, or half of what a slow worker has not claimed yet), gives back the
 * workers it has nothing for, and polls the channels and pidfds of those it
 * holds; it ends when none of them runs a task and none can start.
 *
 * Invariants:
 *  1. A worker is held by at most one call, and runs one task at a time:
 *     the calls together never run more tasks than the pool has workers,
 *     and every frame a worker sends belongs to the call that holds it.
 *  2. A worker is given back only when it waits for a command (it said
 *     IDLE), at a frame boundary of its channel, with its ring read to the
 *     end and nothing queued for it; or while its set-up still runs (it
 *     has sent nothing yet).
 *  3. Each position of a batch is either claimed by its worker from the
 *     front of the slot's range, or taken back by the parent from its end
 *     (a CAS on the same word) and given to another worker or back to the
 *     scheduler: never both. A task still runs once.
 *  4. A call holds a call slot exactly while it holds a worker, and each
 *     worker is held by one call: as many call slots as workers suffice.
 */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MSG_DONTWAIT */
#include "ppool-private.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- workers ------------------------------------------------------------ */

/* In a worker, forked by the server. */
static void pool_main(void *arg, unsigned index, int channel)
{
    const struct sp_ppool *p = arg;
    sp_proc_pool_worker_main(&p->conf, index, channel);
}

/* Before worker index is forked: its slot as new. Its ring is not read by
 * anyone now (its last worker is gone and was accounted for). */
static void slot_reset(struct sp_ppool *p, unsigned index)
{
    struct slot *s = &p->conf.sh->slots[index];
    atomic_store(&s->current, 0);
    atomic_store(&s->phase, SLOT_IDLE);
    atomic_store(&s->started, 0);
    atomic_store(&s->signo, 0);
    atomic_store(&s->send_err, 0);
    atomic_store(&s->range, 0);
    atomic_store(&s->setup, SETUP_RUNNING);
    atomic_store(&s->setup_rc, 0);
    atomic_store(&s->head, 0);
    atomic_store(&s->tail, 0);
}

/* Fork worker w (no lock held; w is reserved: nobody else touches it). 0,
 * or the fork server's error with the message set. */
int sp_ppool_fork_worker(struct sp_ppool *p, struct ppw *w)
{
    slot_reset(p, w->index);
    struct sp_fs_worker fw;
    int rc = sp_forkserver_fork(p->fs, w->index, &fw);
    if (rc)
        return rc;
    fcntl(fw.fd, F_SETFL, fcntl(fw.fd, F_GETFL) | O_NONBLOCK);
    w->pid = fw.pid;
    w->fd = fw.fd;
    w->pidfd = fw.pidfd;
    w->ready = false;
    return 0;
}

/* How worker index's set-up failed, for messages: it returned rc, or its
 * process died (status as the server reaped it, have_status = 0: unknown).
 */
void sp_ppool_setup_failure(struct sp_ppool *p, unsigned index, int have_status,
                            int status, char *out, size_t outlen)
{
    struct slot *s = &p->conf.sh->slots[index];
    if (atomic_load(&s->setup) == SETUP_FAILED) {
        snprintf(out, outlen, "set-up of worker %u failed: it returned %d",
                 index, atomic_load(&s->setup_rc));
        return;
    }
    int sig = have_status && WIFSIGNALED(status) ? WTERMSIG(status)
                                                 : atomic_load(&s->signo);
    if (sig)
        snprintf(out, outlen,
                 "set-up of worker %u failed: its process was killed by "
                 "signal %d",
                 index, sig);
    else if (have_status && WIFEXITED(status))
        snprintf(out, outlen,
                 "set-up of worker %u failed: its process exited with "
                 "status %d",
                 index, WEXITSTATUS(status));
    else
        snprintf(out, outlen, "set-up of worker %u failed: its process died",
                 index);
}

/* Close w's descriptors and forget its process (reaped, or never was). */
static void forget(struct ppw *w)
{
    sp_fds_close(w->fd);
    sp_fds_close(w->pidfd);
    w->fd = w->pidfd = -1;
    w->pid = 0;
    w->ready = false;
}

/* ---- creating and freeing ----------------------------------------------- */

struct setup_wait {
    struct ppw *w;
    bool idle;
};

static int on_setup_frame(struct sp_wire_frame *f, void *arg)
{
    struct setup_wait *sw = arg;
    free(f->msg);
    free(f->data);
    if (f->h.type != SP_WIRE_IDLE || sw->idle)
        return SP_EPROTO;
    sw->idle = true;
    return 0;
}

/* Wait until every worker's set-up ended: ready (IDLE), or dead. Returns
 * the lowest index whose set-up failed, or UINT32_MAX; its message in msg.
 * pfd: room for two per worker; dec: one per worker. */
static unsigned await_setups(struct sp_ppool *p, struct pollfd *pfd,
                             struct sp_wire_dec *dec, char *msg, size_t msglen)
{
    unsigned n = sp_ppool_nworkers(p), failed = UINT32_MAX, left = 0;
    unsigned char buf[512];
    for (unsigned k = 0; k < n; k++) {
        sp_wire_dec_init(&dec[k], 1);
        left += p->w[k].pid != 0;
    }
    while (left) {
        nfds_t m = 0;
        for (unsigned k = 0; k < n; k++) {
            struct ppw *w = &p->w[k];
            if (!w->pid || w->ready)
                continue;
            if (w->fd >= 0)
                pfd[m++] = (struct pollfd){w->fd, POLLIN, 0};
            if (w->pidfd >= 0)
                pfd[m++] = (struct pollfd){w->pidfd, POLLIN, 0};
        }
        if (poll(pfd, m, SCAN_MS) < 0 && errno != EINTR)
            nanosleep(&(struct timespec){0, 1000000}, NULL);
        for (unsigned k = 0; k < n; k++) {
            struct ppw *w = &p->w[k];
            if (!w->pid || w->ready)
                continue;
            bool dead = false;
            for (;;) {
                ssize_t r = read(w->fd, buf, sizeof buf);
                if (r > 0) {
                    struct setup_wait sw = {w, false};
                    if (sp_wire_feed(&dec[k], buf, (size_t)r, on_setup_frame,
                                     &sw) != 0) {
                        kill(-w->pid, SIGKILL); /* garbage: not a worker */
                        kill(w->pid, SIGKILL);
                        dead = true;
                        break;
                    }
                    if (sw.idle) {
                        w->ready = true;
                        break;
                    }
                    continue;
                }
                if (r == 0 ||
                    (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
                    dead = true;
                break;
            }
            int status = 0, have = 0;
            if (!dead && !w->ready && w->pidfd >= 0 &&
                poll(&(struct pollfd){w->pidfd, POLLIN, 0}, 1, 0) > 0)
                dead = true;
            else if (!dead && !w->ready && w->pidfd < 0 &&
                     sp_forkserver_poll(p->fs, w->pid, &status) == 1) {
                dead = true; /* reaped: a helper of its set-up may live */
                have = 1;
            }
            if (w->ready) {
                left--;
                continue;
            }
            if (!dead)
                continue;
            if (!have)
                have = sp_forkserver_reap(p->fs, w->pid, &status) == 0;
            if (k < failed) {
                failed = k;
                sp_ppool_setup_failure(p, k, have, status, msg, msglen);
            }
            forget(w);
            w->state = PW_NONE;
            left--;
        }
    }
    for (unsigned k = 0; k < n; k++)
        sp_wire_dec_free(&dec[k]);
    return failed;
}

/* Tell every worker with a process to leave (its tear-down runs), reap it
 * and close its descriptors. */
static void end_workers(struct sp_ppool *p)
{
    unsigned char hdr[SP_WIRE_CMD];
    sp_wire_cmd_encode(hdr, &(struct sp_wire_cmd){.magic = SP_WIRE_CMD_MAGIC,
                                                  .type = SP_CMD_EXIT});
    for (unsigned k = 0; k < sp_ppool_nworkers(p); k++) {
        struct ppw *w = &p->w[k];
        if (!w->pid)
            continue;
        /* Its socket is empty (it waits for a command, or is still in its
         * set-up): the few bytes fit. */
        ssize_t r;
        do
            r = send(w->fd, hdr, sizeof hdr, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (r < 0 && errno == EINTR);
        if (r != (ssize_t)sizeof hdr) { /* dead or stuck: end it now */
            kill(-w->pid, SIGKILL);
            kill(w->pid, SIGKILL);
        }
    }
    for (unsigned k = 0; k < sp_ppool_nworkers(p); k++) {
        struct ppw *w = &p->w[k];
        if (!w->pid)
            continue;
        int status;
        sp_forkserver_reap(p->fs, w->pid, &status);
        kill(-w->pid, SIGKILL); /* what its tasks left in its group */
        forget(w);
        w->state = PW_NONE;
    }
}

void sp_ppool_free_ctx(struct pctx *c, unsigned n)
{
    if (!c)
        return;
    if (c->b)
        for (unsigned j = 0; j < n; j++) {
            free(c->b[j].idx);
            free(c->b[j].buf);
        }
    free(c->b);
    free(c->slot_of);
    free(c->held);
    free(c->free_ids);
    free(c->pr.pw);
    free(c->pr.buf);
    free(c->pr.pfd);
    free(c->pr.who);
    pthread_cond_destroy(&c->waiter.cond);
    free(c);
}

static void destroy(struct sp_ppool *p)
{
    while (p->cache) {
        struct pctx *c = p->cache;
        p->cache = c->next;
        sp_ppool_free_ctx(c, sp_ppool_nworkers(p));
    }
    sp_forkserver_stop(p->fs);
    if (p->conf.sh)
        munmap(p->conf.sh, p->map_size);
    if (p->cond_ready)
        pthread_condattr_destroy(&p->cattr);
    pthread_mutex_destroy(&p->lock);
    free(p->rs_used);
    free(p->w);
    free(p);
}

int sp_ppool_create(const sp_pool_options *po, unsigned workers,
                    struct sp_ppool **out)
{
    *out = NULL;
    struct sp_ppool *p = sp_calloc(1, sizeof *p);
    if (!p)
        return sp_set_error(SP_ENOMEM, "cannot allocate a process pool");
    int rc = pthread_mutex_init(&p->lock, NULL);
    if (rc) {
        free(p);
        return sp_set_error_errno(SP_ETHREAD, rc, "pthread_mutex_init");
    }
    if (pthread_condattr_init(&p->cattr) == 0) {
        p->cond_ready = true;
        pthread_condattr_setclock(&p->cattr, CLOCK_MONOTONIC);
    }
    p->owner = getpid();
    p->conf.nslots = workers;
    p->conf.setup = po->setup;
    p->conf.teardown = po->teardown;
    p->conf.user = po->user;
    p->w = sp_calloc(workers, sizeof *p->w);
    p->rs_used = sp_calloc(workers, sizeof *p->rs_used);
    p->map_size = sp_proc_map_size(workers);
    void *m = mmap(NULL, p->map_size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m != MAP_FAILED)
        p->conf.sh = m;
    /* For the wait for set-ups: allocated now, so that nothing can fail
     * once workers run. */
    struct pollfd *pfd = sp_calloc(2 * (size_t)workers, sizeof *pfd);
    struct sp_wire_dec *dec = sp_calloc(workers, sizeof *dec);
    if (!p->w || !p->rs_used || !p->conf.sh || !p->cond_ready || !pfd || !dec) {
        free(pfd);
        free(dec);
        destroy(p);
        return sp_set_error(SP_ENOMEM,
                            "cannot set up a pool of %u worker "
                            "processes",
                            workers);
    }
    atomic_init(&p->conf.sh->stop, 0);
    atomic_init(&p->conf.sh->heap_min, UINT32_MAX);
    atomic_init(&p->conf.sh->next, 0);
    for (unsigned k = 0; k < workers; k++) {
        p->w[k] = (struct ppw){.fd = -1, .pidfd = -1, .index = k};
        atomic_init(&sp_proc_prslot(p->conf.sh, workers, k)->stop, 0);
    }
    /* Everything the workers read is in place: the server is a copy of
     * this process as it is now. */
    sp_proc_shed(workers); /* the server copies this process */
    rc = sp_forkserver_start(&p->fs, pool_main, p);
    for (unsigned k = 0; k < workers && !rc; k++)
        rc = sp_ppool_fork_worker(p, &p->w[k]);
    char msg[200] = "";
    /* On a failed fork too: the workers forked so far end their set-up
     * before they can be told to leave. */
    unsigned failed =
        p->fs ? await_setups(p, pfd, dec, msg, sizeof msg) : UINT32_MAX;
    free(pfd);
    free(dec);
    if (rc || failed != UINT32_MAX) {
        end_workers(p);
        destroy(p);
        return rc ? rc : sp_set_error(SP_ESETUP, "%s", msg);
    }
    for (unsigned k = workers; k-- > 0;) {
        p->w[k].state = PW_FREE;
        p->w[k].next = p->free_head;
        p->free_head = &p->w[k];
    }
    p->live = workers;
    *out = p;
    return 0;
}

void sp_ppool_free(struct sp_ppool *p)
{
    if (!p || p->owner != getpid())
        return; /* a forked child: a worker may even run on this memory */
    end_workers(p);
    destroy(p);
}
