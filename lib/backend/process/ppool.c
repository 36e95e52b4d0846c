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
#include "ppool.h"
#include "forkserver.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A batch holds at most this many rows, and stops growing at this many
 * bytes (a row larger than that goes alone). */
#define BATCH_ROWS 4096u
#define BATCH_BYTES (256u * 1024)
/* A buffer larger than this is freed after its batch, not kept. */
#define BATCH_KEEP (1024u * 1024)
/* A worker whose task has run this long, or whose batch was sent this
 * long ago with two tasks or more unclaimed, gives half of what it has not
 * claimed to an idle worker. */
#define STEAL_NS 200000u
/* How long a call's loop, and an idle worker, look for what they wait for
 * before they sleep (as the thread pool's waiters do). */
#define SPIN_NS 50000u

/* A pool worker's state (pool lock). */
enum {
    PW_NONE,   /* no process: died, or could not be forked; fork again */
    PW_FREE,   /* in the free list */
    PW_LEASED, /* held by a call (or reserved while one forks it) */
    PW_GONE,   /* its set-up failed: not replaced */
};

struct ppw {
    pid_t pid;      /* 0: no process */
    int fd;         /* the caller's end of its channel, non-blocking, listed */
    int pidfd;      /* listed, or -1 */
    int state;      /* PW_* */
    bool ready;     /* its set-up ended well: it said IDLE */
    unsigned index; /* its set-up's worker index */
    struct ppw *next; /* free list, or a waiting call's grants */
};

/* A call waiting for a worker (it holds none). */
struct pwaiter {
    struct pwaiter *next;
    pthread_cond_t cond;
    unsigned want;    /* workers it would take */
    unsigned ngrants; /* handed to it by calls giving theirs back */
    struct ppw *grants;
};

/* The batch a call's worker was last given: its rows by position. */
struct pbatch {
    uint32_t *idx;
    size_t cap;
    unsigned char *buf; /* the command's payload */
    size_t len, bufcap;
    uint64_t sent; /* when it was queued (ns) */
};

/* One call's state, kept by the pool between calls (the cache). */
struct pctx {
    struct prun pr; /* pr.pw[j]: the call's worker j */
    struct pctx *next;
    unsigned *slot_of;  /* the call's worker j -> pool index */
    struct ppw **held;  /* the call's worker j -> the pool's, NULL = none */
    unsigned *free_ids; /* numbers of workers given back, for reuse */
    unsigned nfree;
    struct pbatch *b;
    unsigned limit;   /* most workers at once: run->workers */
    unsigned leased;  /* workers held now */
    int rs;           /* call slot, -1 = none */
    bool fork_failed; /* a fork for this call failed: do not retry */
    struct pwaiter waiter;
};

struct sp_ppool {
    /* What the workers read, in the fork server's copy of this struct. */
    struct sp_pw_conf conf;
    size_t map_size;
    /* The caller's. */
    pid_t owner;
    struct sp_forkserver *fs;
    pthread_mutex_t lock;
    struct ppw *w; /* conf.nslots workers */
    struct ppw *free_head;
    unsigned live;    /* workers with a process */
    unsigned forking; /* PW_LEASED workers being forked */
    uint64_t gen;     /* bumped when live, forking or a state changes */
    struct pwaiter *whead, *wtail;
    bool *rs_used;
    struct pctx *cache;
    int lost_code; /* why the last worker was lost, 0 = none was */
    char lost_msg[200];
    bool cond_ready;
    pthread_condattr_t cattr; /* waiters' clock: monotonic */
};

static unsigned nworkers(const struct sp_ppool *p)
{
    return p->conf.nslots;
}

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
static int fork_worker(struct sp_ppool *p, struct ppw *w)
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
static void setup_failure(struct sp_ppool *p, unsigned index, int have_status,
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
    unsigned n = nworkers(p), failed = UINT32_MAX, left = 0;
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
                setup_failure(p, k, have, status, msg, msglen);
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
    for (unsigned k = 0; k < nworkers(p); k++) {
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
    for (unsigned k = 0; k < nworkers(p); k++) {
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

static void free_ctx(struct pctx *c, unsigned n)
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
        free_ctx(c, nworkers(p));
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
        rc = fork_worker(p, &p->w[k]);
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

/* ---- holding workers (pool lock) ---------------------------------------- */

/* Wake every waiting call: something they wait for may have changed. */
static void changed(struct sp_ppool *p)
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
        atomic_store(&sp_proc_prslot(p->conf.sh, nworkers(p), r)->stop,
                     atomic_load(c->pr.run->stop));
    }
}

/* Fork a worker into w (PW_LEASED, reserved for c) and let c hold it: its
 * set-up runs before it is ready. Pool lock held; released for the fork.
 * A failure leaves w PW_NONE for a later call and marks c's fork failed;
 * `what` ("forked", "replaced") is for the message. */
static void fork_held(struct pctx *c, struct ppw *w, const char *what)
{
    struct sp_ppool *p = c->pr.pool;
    p->forking++;
    pthread_mutex_unlock(&p->lock);
    int rc = fork_worker(p, w);
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
static void unhold(struct pctx *c, unsigned j)
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
static void release(struct pctx *c, unsigned j)
{
    struct sp_ppool *p = c->pr.pool;
    struct ppw *w = c->held[j];
    sp_proc_ring_take(&c->pr, j);
    w->ready = c->pr.pw[j].ready;
    pthread_mutex_lock(&p->lock);
    unhold(c, j);
    give_back(p, w);
    pthread_mutex_unlock(&p->lock);
}

/* ---- a call's batches --------------------------------------------------- */

static size_t static_left(const struct sp_run *run)
{
    uint64_t at = atomic_load_explicit(run->sched.cursor, memory_order_relaxed);
    return at < run->sched.n_static ? (size_t)(run->sched.n_static - at) : 0;
}

static size_t ready_tasks(const struct sp_run *run)
{
    return static_left(run) + run->sched.heap_len; /* this thread pushes */
}

static bool stopped(const struct sp_run *run)
{
    return atomic_load_explicit(run->stop, memory_order_relaxed) != 0;
}

/* Append task i's row to batch b; false out of memory. */
static bool add_row(struct pctx *c, struct pbatch *b, uint32_t n, size_t i)
{
    struct sp_run *run = c->pr.run;
    const sp_task *t = i < run->n ? &run->tasks[i] : sp_graph_row(run, i);
    /* An index-keyed call's rows have no key: "" goes (the worker's
     * sp_ctx_key() says "" too). */
    const char *key = t->key ? t->key : "";
    uint32_t klen = (uint32_t)strlen(key) + 1;
    uint64_t dlen = t->data ? t->len : 0;
    uint32_t pol = t->policy ? (uint32_t)sizeof *t->policy : 0;
    size_t need =
        b->len + SP_PROC_ROW_FIXED + klen + (size_t)dlen + (size_t)pol;
    if (need > b->bufcap) {
        size_t cap = b->bufcap ? b->bufcap : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *nb = sp_realloc(b->buf, cap);
        if (!nb)
            return false;
        b->buf = nb;
        b->bufcap = cap;
    }
    if (n >= b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        uint32_t *ni = sp_realloc(b->idx, cap * sizeof *ni);
        if (!ni)
            return false;
        b->idx = ni;
        b->cap = cap;
    }
    b->idx[n] = (uint32_t)i;
    unsigned char *q = b->buf + b->len;
    /* Which attempt: the attempts before it, plus one (a retry's). */
    uint32_t head[3] = {(uint32_t)i, sp_complete_handout(run, i), pol};
    memcpy(q, head, sizeof head);
    q += sizeof head;
    memcpy(q, &t->fn, 8);
    memcpy(q + 8, &t->arg, 8);
    memcpy(q + 16, &klen, 4);
    memcpy(q + 20, &dlen, 8);
    memcpy(q + SP_WIRE_RUN_FIXED, key, klen);
    if (dlen)
        memcpy(q + SP_WIRE_RUN_FIXED + klen, t->data, (size_t)dlen);
    if (pol)
        memcpy(q + SP_WIRE_RUN_FIXED + klen + dlen, t->policy, pol);
    b->len = need;
    return true;
}

/* Queue batch b (n rows) for worker j: its range first, then the command. */
static void send_batch(struct pctx *c, unsigned j, uint32_t n, uint64_t now)
{
    struct sp_run *run = c->pr.run;
    struct pbatch *b = &c->b[j];
    struct sp_proc_batch head = {.rs = (uint32_t)c->rs,
                                 .wid = j,
                                 .count = n,
                                 .t0 = run->t0,
                                 .deadline = run->deadline,
                                 .task_timeout = run->task_timeout,
                                 .opts = run->opts};
    memcpy(b->buf, &head, sizeof head);
    atomic_store(&sp_proc_slot(&c->pr, j)->range, (uint64_t)n << 32);
    struct sp_wire_cmd cmd = {
        .magic = SP_WIRE_CMD_MAGIC, .type = SP_CMD_BATCH, .len = b->len};
    if (sp_proc_send(&c->pr, j, &cmd, b->buf, NULL) == 0) {
        c->pr.pw[j].idle = false;
        b->sent = now;
    }
}

/* Start a batch for worker j: its fixed part. false out of memory. */
static bool begin_batch(struct pbatch *b)
{
    _Static_assert(SP_PROC_BATCH_FIXED <= 4096, "a batch's fixed part");
    if (b->bufcap < SP_PROC_BATCH_FIXED) {
        unsigned char *nb = sp_realloc(b->buf, 4096);
        if (!nb)
            return false;
        b->buf = nb;
        b->bufcap = 4096;
    }
    b->len = SP_PROC_BATCH_FIXED;
    return true;
}

/* Worker j's batch positions nobody claimed (it is idle or dead): back to
 * the scheduler, unless the call stopped (they are then cancelled). */
static void reclaim(struct pctx *c, unsigned j)
{
    struct slot *s = sp_proc_slot(&c->pr, j);
    uint64_t r = atomic_load(&s->range);
    uint32_t lo, hi;
    do {
        lo = (uint32_t)r;
        hi = (uint32_t)(r >> 32);
        if (lo >= hi)
            return;
    } while (
        !atomic_compare_exchange_weak(&s->range, &r, (uint64_t)hi << 32 | hi));
    if (stopped(c->pr.run))
        return;
    for (uint32_t k = lo; k < hi && k < c->b[j].cap; k++)
        if (!sp_complete_has(c->pr.run, c->b[j].idx[k]))
            sp_sched_push(&c->pr.run->sched, c->b[j].idx[k], false);
}

/* Take half of what a slow worker v has not claimed, for idle worker j. */
static bool steal(struct pctx *c, unsigned j, uint64_t now)
{
    struct prun *pr = &c->pr;
    for (unsigned v = 0; v < pr->used; v++) {
        struct pworker *pv = &pr->pw[v];
        if (v == j || !pv->pid || !pv->ready || pv->idle || pv->kill_why)
            continue;
        struct slot *s = sp_proc_slot(pr, v);
        uint64_t r = atomic_load(&s->range);
        for (;;) {
            uint32_t lo = (uint32_t)r, hi = (uint32_t)(r >> 32);
            if (lo >= hi)
                break;
            bool slow_task = atomic_load(&s->phase) == SLOT_RUNNING &&
                             now - atomic_load(&s->started) >= STEAL_NS;
            bool slow_batch = hi - lo >= 2 && now - c->b[v].sent >= STEAL_NS;
            if (!slow_task && !slow_batch)
                break;
            uint32_t mid = lo + (hi - lo) / 2;
            if (!atomic_compare_exchange_weak(&s->range, &r,
                                              (uint64_t)mid << 32 | lo))
                continue;
            /* Positions [mid, hi) of v's batch are ours now. */
            struct pbatch *b = &c->b[j];
            uint32_t n = 0;
            if (begin_batch(b))
                for (uint32_t k = mid; k < hi; k++, n++)
                    if (!add_row(c, b, n, c->b[v].idx[k]))
                        break;
            for (uint32_t k = mid + n; k < hi; k++) /* out of memory */
                sp_sched_push(&pr->run->sched, c->b[v].idx[k], false);
            if (!n)
                return false;
            send_batch(c, j, n, now);
            return true;
        }
    }
    return false;
}

/* Give every idle worker the call holds a batch: its share of the ready
 * tasks (lowest index first), or half of a slow worker's unclaimed rows. */
static void dispatch(struct pctx *c)
{
    struct prun *pr = &c->pr;
    struct sp_run *run = pr->run;
    if (stopped(run))
        return;
    uint64_t now = sp_now();
    size_t left = static_left(run), heap = run->sched.heap_len;
    size_t share = (left + c->limit - 1) / c->limit;
    size_t hshare = (heap + c->limit - 1) / c->limit;
    if (hshare > share)
        share = hshare;
    if (share < 1)
        share = 1;
    if (share > BATCH_ROWS)
        share = BATCH_ROWS;
    for (unsigned j = 0; j < pr->used; j++) {
        struct pworker *pw = &pr->pw[j];
        if (!pw->pid || !pw->ready || !pw->idle || pw->kill_why || pw->fd < 0)
            continue;
        reclaim(c, j); /* a batch cut short: normally nothing */
        struct pbatch *b = &c->b[j];
        uint32_t n = 0;
        if (!begin_batch(b))
            continue;
        while (n < share && b->len < BATCH_BYTES) {
            size_t i;
            uint32_t hmin = atomic_load_explicit(&run->sched.heap_min,
                                                 memory_order_relaxed);
            bool got = false;
            if (hmin != UINT32_MAX && hmin < sp_sched_peek(&run->sched))
                got = sp_sched_take(&run->sched, &i);
            if (!got)
                got = sp_sched_claim_one(&run->sched, &i);
            if (!got) {
                /* The static list is spent: claim_one moved the cursor past
                 * its end, which static_left() reads as nothing left. */
                got = sp_sched_take(&run->sched, &i);
                if (!got)
                    break;
            }
            if (!add_row(c, b, n, i)) {
                sp_sched_push(&run->sched, i, false); /* later */
                break;
            }
            n++;
        }
        if (n)
            send_batch(c, j, n, now);
        else if (!steal(c, j, now))
            break; /* nothing for this worker: nor for the next */
    }
}

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
        setup_failure(p, w->index, have, status, why, sizeof why);
    reclaim(c, j);
    sp_proc_worker_gone(pr, j, have, status); /* closes its descriptors */
    w->fd = w->pidfd = -1;
    w->pid = 0;
    w->ready = false;

    pthread_mutex_lock(&p->lock);
    p->live--;
    unhold(c, j); /* w stays PW_LEASED: reserved for the fork below */
    if (setup == SETUP_OK) {
        fork_held(c, w, "replaced");
    } else {
        w->state = PW_GONE; /* set-up failed: not replaced */
        p->lost_code = SP_ESETUP;
        snprintf(p->lost_msg, sizeof p->lost_msg, "%s", why);
    }
    changed(p);
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
static void acquire(struct pctx *c)
{
    struct prun *pr = &c->pr;
    struct sp_run *run = pr->run;
    struct sp_ppool *p = pr->pool;
    if (stopped(run) || c->leased >= c->limit)
        return;
    size_t ready = ready_tasks(run);
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
        for (unsigned k = 0; k < nworkers(p); k++) {
            struct ppw *w = &p->w[k];
            if (w->state != PW_NONE)
                continue;
            w->state = PW_LEASED;
            fork_held(c, w, "forked");
            changed(p);
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

/* ---- the call's loop ---------------------------------------------------- */

/* The call's stop flag and the one it shares with its workers agree. */
static void sync_stop(struct pctx *c)
{
    struct sp_run *run = c->pr.run;
    if (c->rs < 0)
        return;
    struct sp_ppool *p = c->pr.pool;
    _Atomic int *shared =
        &sp_proc_prslot(p->conf.sh, nworkers(p), (unsigned)c->rs)->stop;
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
    return !stopped(run) && sp_sched_later_pending(&run->sched);
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
    if (!all &&
        ((!any_busy && !later(pr->run)) || stealable || ready_tasks(pr->run)))
        return;
    for (unsigned j = 0; j < pr->used; j++) {
        struct pworker *pw = &pr->pw[j];
        if (!pw->pid || awaited(c, pw) || (!all && !pw->ready))
            continue;
        if (pw->ready) {
            reclaim(c, j);
            sp_proc_ring_take(pr, j);
            if (sp_wire_partial(&pw->dec) || pw->out) {
                /* Not at a boundary (a task's stray bytes): unusable. */
                snprintf(pw->proto_err, sizeof pw->proto_err,
                         "stray bytes on its channel");
                sp_proc_kill(pw, KILL_PROTO);
                continue;
            }
        }
        release(c, j);
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
    return stopped(pr->run) ||
           (!ready_tasks(pr->run) && !sp_sched_later_pending(&pr->run->sched));
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

void sp_ppool_wait(struct sp_run *run)
{
    struct pctx *c = run->backend;
    struct prun *pr = &c->pr;
    struct pollfd *pfd = pr->pfd;
    unsigned *who = pr->who;
    for (;;) {
        /* The deadline, a cancel handle, retries whose delay passed. */
        sp_sched_tick(&run->sched, sp_now());
        sync_stop(c);
        acquire(c);
        sync_stop(c);
        dispatch(c);
        release_unneeded(c, false);
        if (over(c)) {
            release_unneeded(c, true);
            if (!c->leased)
                break;
            /* One was killed (not at a frame boundary): await its end. */
        }
        if (!c->leased) {
            /* acquire() waited in line, and will again; or all the call
             * waits for is a retry's delay: until then it holds nothing. */
            uint64_t until = sp_sched_wake_at(&run->sched), now = sp_now();
            if (!ready_tasks(run) && until > now)
                poll(NULL, 0, (int)((until - now + 999999) / 1000000));
            continue;
        }
        nfds_t nfds = 0;
        for (unsigned j = 0; j < pr->used; j++) {
            struct pworker *w = &pr->pw[j];
            if (!w->pid)
                continue;
            sp_proc_flush(pr, j);
            if (w->fd >= 0) {
                pfd[nfds] = (struct pollfd){
                    .fd = w->fd,
                    .events = (short)(POLLIN | (w->out ? POLLOUT : 0))};
                who[nfds++] = j;
            }
            if (w->pidfd >= 0) {
                pfd[nfds] = (struct pollfd){.fd = w->pidfd, .events = POLLIN};
                who[nfds++] = j | 0x80000000u;
            }
        }
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
        for (unsigned j = 0; j < pr->used; j++)
            if (pr->pw[j].pid)
                sp_proc_ring_take(pr, j);
        for (nfds_t k = 0; r > 0 && k < nfds; k++) {
            unsigned j = who[k] & 0x7fffffffu;
            struct pworker *w = &pr->pw[j];
            if (!pfd[k].revents || !w->pid)
                continue;
            if (who[k] & 0x80000000u) {
                ended(c, j); /* pidfd: it exited */
                continue;
            }
            if (pfd[k].revents & POLLOUT)
                sp_proc_flush(pr, j);
            if ((pfd[k].revents & ~POLLOUT) &&
                sp_proc_drain(pr, j, 8 * READ_BUF, false)) {
                sp_fds_close(w->fd);
                w->fd = -1;
                c->held[j]->fd = -1;
                if (w->pidfd < 0)
                    ended(c, j);
            }
        }
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
    unsigned n = nworkers(p);
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
        free_ctx(c, n);
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
    pr->nslots = nworkers(p);
    pr->slot_of = c->slot_of;
    pr->pool = p;
    pr->nw = nworkers(p);
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
