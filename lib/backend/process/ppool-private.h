/* SPDX-License-Identifier: MIT */
/* Inside process pools (ppool.h), for their own files only:
 *
 *   ppool.c        the pool: its workers forked and set up, creation, end
 *   ppool-lease.c  calls holding workers: leasing, waiting in line, giving
 *                  back (the pool lock)
 *   ppool-batch.c  a call's batches: what each idle worker it holds runs
 *                  next, taken back and stolen
 *   ppool-call.c   a call's loop and the backend's start, wait, finish
 *
 * The model and the invariants are at the top of ppool.c. */
#ifndef SP_PPOOL_PRIVATE_H
#define SP_PPOOL_PRIVATE_H

#include "forkserver.h"
#include "ppool.h"

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

static inline unsigned sp_ppool_nworkers(const struct sp_ppool *p)
{
    return p->conf.nslots;
}

static inline size_t sp_ppool_static_left(const struct sp_run *run)
{
    uint64_t at = atomic_load_explicit(run->sched.cursor, memory_order_relaxed);
    return at < run->sched.n_static ? (size_t)(run->sched.n_static - at) : 0;
}

static inline size_t sp_ppool_ready_tasks(const struct sp_run *run)
{
    return sp_ppool_static_left(run) +
           run->sched.heap_len; /* this thread pushes */
}

static inline bool sp_ppool_stopped(const struct sp_run *run)
{
    return atomic_load_explicit(run->stop, memory_order_relaxed) != 0;
}

/* ---- ppool.c: the pool's workers ----------------------------------------- */

/* Fork worker w (no lock held; w is reserved: nobody else touches it). 0,
 * or the fork server's error with the message set. */
int sp_ppool_fork_worker(struct sp_ppool *p, struct ppw *w);
/* How worker index's set-up failed, for messages: it returned rc, or its
 * process died (status as the server reaped it, have_status = 0: unknown).
 */
void sp_ppool_setup_failure(struct sp_ppool *p, unsigned index, int have_status,
                            int status, char *out, size_t outlen);
/* Free a call's state kept by the pool (c may be NULL); n: its batches. */
void sp_ppool_free_ctx(struct pctx *c, unsigned n);

/* ---- ppool-lease.c: holding workers (pool lock) -------------------------- */

/* Wake every waiting call: something they wait for may have changed. */
void sp_ppool_changed(struct sp_ppool *p);
/* Fork a worker into w (PW_LEASED, reserved for c) and let c hold it; the
 * pool lock is held, and released for the fork. */
void sp_ppool_fork_held(struct pctx *c, struct ppw *w, const char *what);
/* The call stops holding its worker j. */
void sp_ppool_unhold(struct pctx *c, unsigned j);
/* Give worker j back to the pool (it waits for a command, invariant 2). */
void sp_ppool_release(struct pctx *c, unsigned j);
/* Lease workers while ready tasks have none to take them; a call holding
 * none waits in line (until the deadline). */
void sp_ppool_acquire(struct pctx *c);

/* ---- ppool-batch.c: a call's batches ------------------------------------- */

/* Worker j's batch positions nobody claimed: back to the scheduler. */
void sp_ppool_reclaim(struct pctx *c, unsigned j);
/* Give every idle worker the call holds a batch. */
void sp_ppool_dispatch(struct pctx *c);

#endif
