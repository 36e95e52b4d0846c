/* SPDX-License-Identifier: MIT */
/*
 * Private header shared by the library's own files and its white-box tests.
 * Nothing here is installed or exported.
 *
 * The path of one task (docs/architecture.md draws it):
 *
 *   core.c      simple_parallel(): options, the backend's row, the run
 *   table.c     validation of every row and the key index
 *   sched.c     the ready queue: which task a worker starts next, and the
 *               cancellation of tasks that never start
 *   backend/    where a task runs: serial.c, thread.c, process/
 *   task.c      runs one callback and turns what it did into an outcome
 *   complete.c  the only writer of an entry's outcome: tally, fail-fast,
 *               stop, on_done
 *   results.c   the map and its accessors
 */
#ifndef SP_PRIVATE_H
#define SP_PRIVATE_H

#include "simplepar.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <time.h>

/* ---- resource hooks (hooks.c) -------------------------------------------
 * Everything the library allocates and every thread and process it creates
 * goes through these. They are weak definitions that call the C library;
 * the fault-injection test links strong ones over them to make the Nth call
 * fail (tests/fault.c), so the library is compiled once for every use. */
void *sp_malloc(size_t size);
void *sp_calloc(size_t n, size_t size);
void *sp_realloc(void *p, size_t size);
void *sp_aligned_alloc(size_t align, size_t size);
int sp_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                      void *(*fn)(void *), void *arg);
pid_t sp_fork(void);
/* A memfd for a large result in a worker process (close-on-exec, sealable),
 * or -1 with errno set (ENOSYS where there are none). */
int sp_memfd(void);
/* mmap(): where the caller maps a result's memfd (a test makes it fail as
 * when the caller is out of mappings). */
void *sp_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

static inline uint64_t sp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the run clock (clock.c) ---------------------------------------------
 * A run's timestamps: the CPU's time-stamp counter scaled to
 * CLOCK_MONOTONIC ns where the kernel keeps time with it, else sp_now(). */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define SP_HAVE_TSC 1
static inline uint64_t sp_tsc(void)
{
    return __builtin_ia32_rdtsc();
}
#else
#define SP_HAVE_TSC 0
#endif

struct sp_clock {
    uint64_t ns0, tsc0; /* read side by side at the run's start */
    uint64_t mult;      /* ns per tick, 32.32 fixed point; 0: sp_now() */
};

/* Anchor c now (c->ns0 is CLOCK_MONOTONIC now) and give it the process's
 * rate, if there is one yet. */
void sp_clock_start(struct sp_clock *c);
#if SP_HAVE_TSC
/* Whether the kernel keeps time with the counter (its clocksource is
 * "tsc"); looked up once per process. */
bool sp_clock_kernel_tsc(void);
#endif

static inline uint64_t sp_clock_now(const struct sp_clock *c)
{
#if SP_HAVE_TSC
    if (c->mult) {
        uint64_t d = sp_tsc() - c->tsc0;
        if ((int64_t)d < 0) /* another CPU's counter, a hair behind */
            d = 0;
        /* d * mult >> 32 without overflow for any d. */
        return c->ns0 + (d >> 32) * c->mult +
               (((d & 0xffffffffu) * c->mult) >> 32);
    }
#endif
    return sp_now();
}

#if defined(__GNUC__)
#define SP_NOINLINE __attribute__((noinline))
#define SP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define SP_NOINLINE
#define SP_UNLIKELY(x) (x)
#endif

/* Number of kinds, from the one table in the public header. */
#define SP_X_COUNT_(name, value, text) +1
enum { SP_N_KINDS = 0 SP_KIND_MAP(SP_X_COUNT_) };
#undef SP_X_COUNT_

/* ---- the results map (results.c) ---------------------------------------- */

/* sp_entry.flags */
enum {
    SP_EF_DONE = 1,      /* has its final outcome (set by complete.c only) */
    SP_EF_MSG_OWNED = 2, /* msg was allocated and is freed with the map */
    SP_EF_TASK_CODE = 4, /* code is the task's own number, not an sp_error */
    SP_EF_RELEASE = 8,   /* data is freed by a function in sp_results.owned */
    SP_EF_WAITED = 16,   /* a spawned task waits for it (graph.c's edges) */
    SP_EF_STORY = 32,    /* msg is the text of a struct sp_story (retries) */
    SP_EF_PAST = 64,     /* an earlier attempt: the entry of a struct sp_past */
};

/* What one attempt of a task came to, in the form the map keeps it. */
struct sp_rec {
    unsigned char *data; /* owned, len + 1 bytes (NUL-terminated) or NULL */
    size_t len;
    const char *msg;  /* owned when SP_EF_MSG_OWNED, else static; NULL = "" */
    uint64_t t_start; /* ns since the call started */
    uint64_t t_end;
    int code;
    uint32_t worker;
};

/* How it ended, in four bytes that move as one. */
struct sp_how {
    uint8_t kind; /* sp_kind */
    uint8_t flags;
    /* CRASHED: the signal that killed the worker (or SP_EXITED);
     * CANCELLED, SKIPPED: the sp_cancel_reason. */
    uint8_t signo;
    uint8_t exit_status; /* CRASHED: exit status, valid when SP_EXITED */
};

struct sp_story;

/* One entry of the results map: its key and index, written by validation,
 * and its outcome, written once by sp_complete() on whichever thread ended
 * the task. The map is handed to the caller only after every worker is
 * joined or reaped. */
struct sp_entry {    /* 64 bytes on LP64: one cache line */
    const char *key; /* into sp_results.keys, or a spawned task's copy */
    struct sp_rec r;
    uint32_t index;
    /* struct sp_how, packed (sp_how_pack). Atomic because a task spawned
     * with `after` marks the dependency SP_EF_WAITED while it may be
     * completing: exactly one of the two then releases the edge. */
    _Atomic uint32_t how;
};

static inline uint32_t sp_how_pack(struct sp_how h)
{
    return (uint32_t)h.kind | (uint32_t)h.flags << 8 | (uint32_t)h.signo << 16 |
           (uint32_t)h.exit_status << 24;
}

static inline struct sp_how sp_how_unpack(uint32_t v)
{
    return (struct sp_how){(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                           (uint8_t)(v >> 24)};
}

/* What the map keeps of a task that had more than one attempt, in one
 * allocation behind its entry's message (SP_EF_STORY): the entry is the
 * last attempt; the story adds the count and each earlier attempt, as an
 * entry of its own (struct sp_past, what sp_entry_attempt() gives). Freed
 * with the entry. Layout: this header, the entry's message and its NUL,
 * the sp_past array (aligned), then each earlier attempt's message and
 * its NUL. */
struct sp_past {
    sp_entry e; /* the task's key and index; no result; SP_EF_PAST */
    uint32_t n; /* which attempt: 1 .. attempts - 1 */
    const struct sp_story *story;
};

struct sp_story {
    uint32_t attempts;
    /* Earlier attempts kept: attempts - 1, fewer only where memory ran
     * out; past[k] is attempt k + 1. */
    uint32_t npast;
    const struct sp_past *past;
    char text[]; /* the entry's message, NUL, ... */
};

/* How an entry ended (acquire: its record is visible once DONE is). */
static inline struct sp_how sp_entry_how(const sp_entry *e)
{
    return sp_how_unpack(atomic_load_explicit((_Atomic uint32_t *)&e->how,
                                              memory_order_acquire));
}
/* sp_entry.signo value meaning "the worker exited" (no signal). */
#define SP_EXITED 0xff

/* Keys are copied block by block into a chain of arenas, so validation
 * reads the task table once. */
struct sp_keys {
    struct sp_keys *next;
    char bytes[];
};

/* A task added while the call runs (sp_spawn()). The map owns it, in
 * segments that never move, so its entry's address stays valid. */
struct sp_xtask {
    sp_entry e;
    struct sp_try *tries; /* between attempts (complete.c); else NULL */
    sp_task row;          /* key, data, after point into `copy` */
    uint32_t *deps;       /* its dependencies, in after order */
    uint32_t ndeps;
    _Atomic uint32_t pending; /* unmet dependencies | SP_DEP_DOOMED */
    uint32_t cause;           /* the dependency that doomed it */
    uint32_t dyn_head;        /* first edge of tasks waiting for it, or none */
    void *copy;               /* one allocation: key, data, after list */
};

/* Spawned tasks: segment k holds 64 << k of them. */
#define SP_XSEGS 27
struct sp_xtasks {
    struct sp_xtask *seg[SP_XSEGS];
    _Atomic size_t count; /* published after the task is complete */
};

/* A big array of the map: the block to free, and the pages kept from
 * forked children (NULL: none), which go back to fork before the free. */
struct sp_block {
    void *base;
    void *kept;
    size_t kept_len;
};

struct sp_results {
    size_t n;             /* rows of the table; spawned tasks follow (xt) */
    size_t ready;         /* entries initialised so far (all n once indexed) */
    sp_entry *entries;    /* n entries, input order */
    struct sp_keys *keys; /* chain of arenas holding every key */
    uint64_t *slots; /* open-addressing index: hash32 << 32 | (index + 1) */
    size_t mask;     /* slot count - 1 */
    /* How entries and slots were allocated (results.c). */
    struct sp_block entries_blk, slots_blk;
    uint64_t elapsed_ns;
    unsigned workers;
    char *note; /* owned: why tasks were cancelled after a backend error */
    char *thread_note; /* owned: why fewer workers ran than planned */
    /* Entries flagged SP_EF_RELEASE: pushed by completion, any thread. */
    _Atomic(struct sp_owned *) owned;
    struct sp_xtasks xt;       /* spawned tasks, after the table's */
    size_t counts[SP_N_KINDS]; /* per kind; written by complete.c only */
    /* Whether any entry owns memory (data or message), so freeing a map of
     * bare results need not walk it. Set check-then-store by completion. */
    atomic_bool owns;
    /* An index-keyed call (sp_options.index_keys): every key is NULL and
     * there is no index (slots NULL, keys NULL). */
    bool by_index;
};

/* A map for n tasks: with its key index, or (by_index) without one.
 * forks: the call's workers are forked processes, which never read the
 * map; its big arrays are then not inherited by them. */
sp_results *sp_results_alloc(size_t n, bool by_index, bool forks);

/* How messages name entry i: its key in quotes, or "#i" in an index-keyed
 * call. buf of SP_NAME_LEN bytes; returns buf. */
#define SP_NAME_LEN 80
const char *sp_entry_name(const sp_entry *e, char *buf);

/* Spawned task x (0-based among spawned ones). */
static inline struct sp_xtask *sp_xtask_at(const sp_results *res, size_t x)
{
    size_t k = 0, base = 0;
    while (x >= base + ((size_t)64 << k)) {
        base += (size_t)64 << k;
        k++;
    }
    return &res->xt.seg[k][x - base];
}

/* Entry i of the whole call: the table's rows, then spawned tasks. */
static inline sp_entry *sp_entry_at(const sp_results *res, size_t i)
{
    if (i < res->n)
        return &res->entries[i];
    return &sp_xtask_at(res, i - res->n)->e;
}

/* The story behind an entry flagged SP_EF_STORY. */
static inline const struct sp_story *sp_entry_story(const sp_entry *e)
{
    return (
        const struct sp_story *)(const void *)(e->r.msg -
                                               offsetof(struct sp_story, text));
}

/* Tasks in the call so far: rows plus spawned. */
static inline size_t sp_results_total(const sp_results *res)
{
    return res->n + atomic_load_explicit((_Atomic size_t *)&res->xt.count,
                                         memory_order_acquire);
}

/* Make room for spawned task x and return it (zeroed); NULL out of
 * memory. Caller holds the graph lock. */
struct sp_xtask *sp_results_xtask_new(sp_results *res, size_t x);
/* The index of key (len bytes) in the map, or SIZE_MAX. */
size_t sp_results_find(const sp_results *res, const char *key, size_t len);
/* Add spawned task i's key to the index; 0 or SP_ENOMEM. Graph lock. */
int sp_results_index_add(sp_results *res, size_t i);

/* ---- one call ----------------------------------------------------------- */

/* Why a run stopped starting tasks; the first reason wins. */
enum sp_stop {
    SP_STOP_NONE = 0,
    SP_STOP_FAILFAST = 1,
    SP_STOP_DEADLINE = 2,
    SP_STOP_CALLBACK = 3,
    SP_STOP_TIMEOUT = 4, /* per task only: its own time limit passed */
    SP_STOP_ERROR = 5,   /* the backend cannot go on: run->stop_code/msg */
    SP_STOP_CALLER = 6,  /* a cancel handle fired (cancel.c) */
};

/* A cancel handle: one flag, fired by a single atomic store. */
struct sp_cancel {
    _Atomic int fired;
};

/* Per-kind counts of the outcomes one thread recorded. Each completing
 * thread has its own (no shared counter on the hot path); complete.c merges
 * them into the map. */
struct sp_tally {
    size_t counts[SP_N_KINDS];
    /* This tally belongs to the thread that called simple_parallel(): the
     * completion callback may be called directly. */
    bool on_caller;
    /* The thread claims its next task from the scheduler right after
     * completing one (thread and serial workers): a single task its
     * completion makes ready is handed to it directly (handoff) instead of
     * going through the heap. */
    bool claims;
    uint32_t handoff; /* task index + 1, 0 = none */
};

/* What one attempt of a task came to, as the worker or the process parent
 * saw it; sp_complete() moves it into the entry. r.msg is owned when
 * how.flags has SP_EF_MSG_OWNED; r.data is always owned. */
struct sp_outcome {
    struct sp_rec r;
    struct sp_how how;
    /* How r.data is freed when the task handed its own buffer over
     * (sp_set_result_owned()); NULL = free(). */
    void (*release)(void *data);
};

/* A task whose attempt failed and is to be tried again (complete.c): what
 * the run keeps of it until its last attempt ends. Written by whoever
 * completes an attempt, read by whoever starts the next (the scheduler's
 * lock orders them). */
struct sp_tried; /* below */
struct sp_try {
    uint32_t attempts; /* attempts that ended */
    bool waiting;      /* its next attempt is not handed out yet */
    /* The attempts before the last: past[k] is attempt k + 1. npast <
     * attempts - 1 only where memory ran out. */
    struct sp_tried *past;
    uint32_t npast, cap;
    struct sp_outcome last; /* the last attempt's outcome, owned */
};

/* An attempt of a task that is over, without its result: what the story
 * keeps of it. r.msg is owned when how.flags has SP_EF_MSG_OWNED. */
struct sp_tried {
    struct sp_rec r; /* r.data NULL, r.len 0 */
    struct sp_how how;
};

/* A result buffer the map frees with the task's own function. */
struct sp_owned {
    struct sp_owned *next;
    uint32_t index;
    void (*release)(void *data);
};

/* The completion callback's queue, for backends whose workers are not the
 * calling thread (complete.c). Every completion appends its index under the
 * lock; the calling thread takes them in batches. */
struct sp_doneq {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t *q; /* capacity: every task of the run */
    size_t cap;
    size_t head;     /* next to deliver; only the calling thread moves it */
    size_t tail;     /* next free */
    bool waiting;    /* the calling thread sleeps on cond */
    bool producers;  /* workers may still append */
    bool poke_sched; /* the calling thread waits in the scheduler: wake it */
    bool kick;       /* the calling thread must look at the run again */
    bool ready;      /* lock and cond were initialised */
};

/* One claim slot of a worker in the scheduler, on its own cache lines. A
 * slot is opened (sp_sched_open()) before a worker first claims with it;
 * workers that take turns may reuse a slot, one at a time. */
struct sp_claim {
    _Alignas(64) _Atomic uint64_t range; /* [lo, hi) positions: lo | hi << 32 */
    _Atomic int busy; /* holds or runs work that may make more ready */
    /* Where the worker counts outcomes; the scheduler records a doomed
     * task it pops as SKIPPED with it. &own unless the backend points it
     * elsewhere after opening the slot. */
    struct sp_tally *tally;
    struct sp_tally own; /* merged by the backend when its workers are gone */
};

/* A task to be tried again once its delay has passed (sched.c). */
struct sp_later {
    uint64_t due; /* absolute ns */
    uint32_t i;
};

/* The ready queue (sched.c). Tasks ready at the start form the static list
 * (today: every row, in table order), handed out in chunks from one counter
 * and stolen back from busy workers, so a claim costs one uncontended CAS.
 * Tasks that become ready later go into a min-heap by index under the lock;
 * among ready tasks the lowest index (table order, then spawn order) starts
 * first. Tasks to be tried again after a delay wait in a second min-heap,
 * by due time, until it passes. See the invariants at the top of
 * sched.c. */
struct sp_sched {
    struct sp_run *run;
    size_t n_static;         /* positions in the static list */
    const uint32_t *order;   /* position -> task index; NULL = identity */
    struct sp_claim *claims; /* room for nclaims; the first nslots open */
    unsigned nclaims;
    _Atomic unsigned nslots;
    unsigned chunk_div; /* chunk = remaining / chunk_div, 1 .. CHUNK_MAX */
    /* First unclaimed position: points at next_local, or into a mapping the
     * process backend shares with its workers. */
    _Atomic uint64_t *cursor;
    _Alignas(64) _Atomic uint64_t next_local;
    _Alignas(64) _Atomic int stealable; /* ranges with a task in them */
    /* Smallest index in the heap, UINT32_MAX when it is empty: read by
     * every claim, written only when the heap changes. */
    _Alignas(64) _Atomic uint32_t heap_min;
    /* Earliest due time in `later`, UINT64_MAX when it is empty: read by
     * every claim, written only when `later` changes. */
    _Atomic uint64_t later_min;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    uint32_t *heap;
    size_t heap_len, heap_cap;
    struct sp_later *later; /* waiting out a retry delay, by due time */
    size_t later_len, later_cap;
    unsigned sleepers;
    uint64_t gen;      /* bumped by every push and by stop */
    _Atomic bool over; /* nothing will start any more */
    bool lock_ready;   /* lock and wake were initialised */
};

/* The dependency graph of a call (table.c builds the table's part,
 * graph.c runs it). A task's pending count is its unmet dependencies; the
 * top bit marks it doomed (a dependency did not end OK): it is pushed
 * once, when it becomes ready or doomed, and a doomed task is recorded
 * SKIPPED instead of running. */
#define SP_DEP_DOOMED 0x80000000u
#define SP_NO_EDGE UINT32_MAX

struct sp_dyn_edge {
    uint32_t succ; /* the waiting task */
    uint32_t next; /* next edge of the same dependency, or SP_NO_EDGE */
};

struct sp_graph {
    /* The table's edges (NULL when no row has 'after'): successors of
     * row i are succ[succ_off[i] .. succ_off[i+1]), its dependencies
     * deps[dep_off[i] .. dep_off[i+1]) in 'after' order. */
    uint32_t *succ_off, *succ;
    uint32_t *dep_off, *deps;
    _Atomic uint32_t *pending; /* per row */
    uint32_t *cause;           /* per row: the dependency that doomed it */
    uint32_t *ready;           /* rows ready at the start, in table order */
    size_t nready;
    /* Spawned tasks and the edges of tasks that wait for a task that had
     * not ended when they were spawned: under the lock. */
    pthread_mutex_t lock;
    bool lock_ready;
    uint32_t *dyn_head; /* per row, first waiting edge (allocated lazily) */
    struct sp_dyn_edge *edges;
    size_t nedges, edges_cap;
    uint32_t free_edge; /* recycled edges, or SP_NO_EDGE */
};

/* Ways a task's context reaches the caller when it runs in a worker
 * process (set there by the process backend): otherwise the run is local
 * and graph.c answers. */
struct sp_remote {
    int (*spawn)(struct sp_ctx *ctx, const sp_task *task);
    const void *(*dep)(struct sp_ctx *ctx, const char *key, size_t *len);
    /* sp_set_result() of a large result: keep the len bytes at data
     * somewhere of the worker's own instead of a malloc'd copy (the process
     * backend: a sealed memfd). 0 with *out and *release to stand for them
     * as the outcome's data (never read as bytes: the worker sends them its
     * own way); -1: copy as usual. NULL = always copy. */
    int (*keep)(const void *data, size_t len, void **out,
                void (**release)(void *));
};

/* A companion library's answers to sp_dep_result() and sp_spawn() for the
 * tasks of one call (sp__parallel(), lib/sp-collect.h). */
struct sp__local;

/* Everything one call of simple_parallel() shares between its workers. */
struct sp_run {
    const sp_task *tasks;
    size_t n;
    sp_results *res;
    sp_options opts; /* validated copy */
    const struct sp_backend_ops *ops;
    unsigned workers;      /* workers planned for this run */
    unsigned workers_used; /* workers the backend started (the map says so) */
    uint64_t t0;           /* CLOCK_MONOTONIC ns at entry */
    /* Where the run's timestamps come from (clock.c): every start, end and
     * deadline check of the run reads sp_run_now(). */
    struct sp_clock clk;
    uint64_t deadline;     /* absolute ns, 0 = none */
    uint64_t task_timeout; /* ns, 0 = none */
    /* enum sp_stop. Points at stop_local, or, in a forked worker and its
     * parent, at the flag they share. */
    _Atomic int *stop;
    _Atomic int stop_local;
    _Atomic uint64_t stop_ns; /* when the stop was requested (since t0) */
    /* Cancel handles that stop the run when fired: the call's and its
     * pool's; `watched` when there is one (and the run is in the process
     * that holds them, not a forked worker). */
    const struct sp_cancel *cancel[2];
    bool watched;
    /* Every completion of this run happens on one thread (the process
     * backend's parent, which also marks the entries spawned tasks wait
     * for): an entry's state is published with a store, not an exchange.
     * Set by the backend before the first completion. */
    bool completes_alone;
    int stop_code; /* SP_STOP_ERROR: the sp_error to report */
    /* Why memory may run out in this run (e.g. fewer threads could be
     * created than planned), for entries whose result could not be stored;
     * points into the map (sp_results.thread_note). */
    _Atomic(const char *) oom_note;
    struct sp_sched sched;
    struct sp_graph graph;
    /* Per table row, its retry record (struct sp_try) between attempts;
     * NULL when no row may be tried again. Spawned tasks keep theirs in
     * their sp_xtask. */
    struct sp_try **tries;
    /* The task whose failure stopped the run under fail-fast (its index),
     * or UINT32_MAX. */
    _Atomic uint32_t failfast_cause;
    const struct sp_remote *remote; /* in a worker process; NULL = local */
    /* Set by sp__parallel(): graph.c hands dependency results and spawns
     * to the companion library that made the call; NULL = its own. */
    const struct sp__local *local;
    struct sp_doneq done;
    struct sp_tally caller; /* outcomes recorded on the calling thread */
    void *backend;          /* the backend's own state */
    /* The pool's engine (sp_pool_run(): struct sp_tpool, struct sp_ppool)
     * or NULL for simple_parallel(). */
    void *engine;
};

/* Replace an outcome's message with an owned string (may be NULL) or, when
 * it is NULL, the static fallback (may be NULL too). task.c. */
void sp_outcome_set_msg(struct sp_outcome *o, char *owned,
                        const char *fallback);

/* The per-task context. Lives on the worker's stack while the task runs. */
struct sp_ctx {
    struct sp_run *run;
    struct sp_outcome *out;
    const sp_task *task; /* its row (a table row, a spawned task's copy) */
    size_t index;
    uint64_t start; /* absolute ns */
    uint64_t limit; /* this attempt's time limit in ns, 0 = none */
    unsigned worker;
    unsigned attempt; /* 1 for the first */
    int fail_code;    /* set by sp_fail() */
    int saw_cancel;   /* enum sp_stop seen by sp_cancelled(), 0 = none */
    bool failed;
    bool fail_own; /* sp_fail() was given a non-zero code */
    bool oom;
};

/* ---- the backend contract (lib/backend/README.md) -----------------------
 * A backend runs the tasks the scheduler hands it and reports how each one
 * ended to sp_complete(); it never decides an outcome's policy (fail-fast,
 * counting, the callback) and never cancels a task itself. core.c calls, in
 * this order, on the calling thread:
 *
 *   workers(opts, n)  the worker count for 0 = default, capped by n (pure)
 *   first(opts, most) optional: of those `most`, how many a
 *                     simple_parallel() run starts with (pure; NULL: all)
 *   start(run)        create or acquire workers. On failure return a
 *                     negative sp_error with sp_last_error() set and NO
 *                     callback run; nothing else is called then.
 *   wait(run)         return when no task will start or run any more;
 *                     completion callbacks queued by other threads are
 *                     delivered here (sp_complete_drain_until()).
 *   finish(run)       join or reap every worker, merge worker tallies
 *                     (sp_tally_merge()), set run->workers_used, free.
 *   stop(run)         may be called at any time, from any thread, after a
 *                     stop was requested (sp_run_stop()): wake whatever
 *                     sleeps so it sees the stop. Must not block.
 *   grow(run)         optional: a task became ready and no worker slept to
 *                     take it; start one more if below the cap. Called by
 *                     a running worker thread.
 *
 * workers() gives the cap: the most workers the run may use; a backend
 * starts no more workers than there are tasks ready to take.
 *
 * Registering a backend is one row in core.c's table plus its file. */
struct sp_backend_ops {
    const char *name; /* in messages: "thread", "process", ... */
    unsigned (*workers)(const sp_options *opts, size_t n);
    unsigned (*first)(const sp_options *opts, unsigned most); /* optional */
    int (*start)(struct sp_run *run);
    void (*wait)(struct sp_run *run);
    void (*finish)(struct sp_run *run);
    void (*stop)(struct sp_run *run);
    void (*grow)(struct sp_run *run);
};

extern const struct sp_backend_ops sp_backend_thread;
extern const struct sp_backend_ops sp_backend_serial;
extern const struct sp_backend_ops sp_backend_process;

static inline uint64_t sp_run_now(const struct sp_run *run)
{
    return sp_clock_now(&run->clk);
}

/* ---- core.c ------------------------------------------------------------- */

/* How long an idle thread of simple_parallel()'s shared pool waits for the
 * next call before it exits (docs/guide.md). */
#define SP_SHARED_IDLE_MS 2000u

/* The state the calling thread's worker set-up stored (pools), for
 * sp_ctx_worker_state(); NULL elsewhere. task.c. */
extern _Thread_local void *sp_worker_state;

/* A pool's part of a call (sp_pool_run()); NULL for simple_parallel(). */
struct sp_call_pool {
    sp_backend backend; /* replaces the options' */
    unsigned workers;   /* the pool's; the options' max_workers may lower */
    void *engine;       /* run->engine */
    const struct sp_cancel *cancel; /* the pool's cancel handle, or NULL */
};

/* Online CPUs, 1 .. SP_MAX_WORKERS. */
unsigned sp_online_cpus(void);

/* simple_parallel() and sp_pool_run(): validate, run, return the map. */
int sp_call(const sp_task *tasks, size_t n, const sp_options *opts,
            sp_results **out, const struct sp_call_pool *pool);
/* sp_call() without a pool whose run answers sp_dep_result() and
 * sp_spawn() through `local` (sp__parallel()). */
int sp_call_local(const sp_task *tasks, size_t n, const sp_options *opts,
                  sp_results **out, const struct sp__local *local);

/* Validate the table and options and set up run (map, key index, limits);
 * 0, or an error with sp_last_error() set and nothing left allocated. */
int sp_run_init(struct sp_run *run, const sp_task *tasks, size_t n,
                const sp_options *opts, uint64_t t0);
/* After every worker is gone: cancel what never started, finish the tally
 * and the map, free the run's scheduler and queue; returns the map. */
sp_results *sp_run_close(struct sp_run *run);

/* ---- error.c ------------------------------------------------------------ */

/* Validate one argument at the API boundary: on failure record the message
 * and return the code (dav1d's validate_input_or_ret). */
#define SP_CHECK(cond, code, ...)                                              \
    do {                                                                       \
        if (!(cond))                                                           \
            return sp_set_error((code), __VA_ARGS__);                          \
    } while (0)

/* Record the thread's last-error message; returns code. */
int sp_set_error(int code, const char *fmt, ...) SP_PRINTF(2, 3);
/* The same, ending the message with ": " and the text of errno value err
 * (thread-safe strerror). */
int sp_set_error_errno(int code, int err, const char *fmt, ...) SP_PRINTF(3, 4);
/* Thread-safe strerror into buf; returns buf. Never empty. */
const char *sp_errno_text(int err, char *buf, size_t len);

/* ---- table.c ------------------------------------------------------------ */

/* Validate rows, build the key index and copy the keys into res.
 * Returns 0 or an error code with sp_last_error() set. *retries: some
 * row's policy asks for retries; *after: some row has 'after'. split: the
 * call runs on several threads, so a big table may be validated by two
 * (the same outcome, the same error for the same table). */
int sp_table_index(const sp_task *tasks, size_t n, sp_results *res,
                   bool *retries, bool *after, bool split);
/* The same for an index-keyed call: every key and 'after' must be NULL;
 * the entries are initialised, no key is copied or indexed. */
int sp_table_index_plain(const sp_task *tasks, size_t n, sp_results *res,
                         bool *retries, bool split);
/* A row's own faults (key, callback, data, reserved fields, policy): 0 or
 * an error with the message set. Shared with sp_spawn(). */
int sp_table_row_error(const sp_task *t, size_t i);
/* A policy's faults; `who` names the row in the message. */
int sp_table_policy_error(const sp_task_policy *p, const char *who);
/* The retry fields' faults (options and policies alike). */
int sp_table_retry_error(unsigned retries, unsigned retry_on, int backoff,
                         const char *who);
/* Every outcome a retry may repeat. */
#define SP_RETRY_ALL (SP_RETRY_FAILED | SP_RETRY_CRASHED | SP_RETRY_TIMED_OUT)
/* After the index: check every row's 'after' (keys in the table, no
 * cycle) and build the table's edges into run->graph; 0 or SP_EDEPKEY /
 * SP_ECYCLE / SP_ENOMEM with the message naming the row (and the keys
 * around a cycle). Nothing is built for a table without 'after'; core.c
 * does not call it when sp_table_index() saw none. */
int sp_table_graph(struct sp_run *run);

/* ---- graph.c ------------------------------------------------------------ */

/* Set up the graph's lock (after sp_table_graph()); 0 or SP_ETHREAD. */
int sp_graph_init(struct sp_run *run);
void sp_graph_free(struct sp_graph *g);
/* The row of task i: the table's, or a spawned task's copy. */
const sp_task *sp_graph_row(const struct sp_run *run, size_t i);
/* Task i's outcome was recorded (sp_complete()): release the tasks that
 * wait for it (ready when it was the last they waited for, doomed when it
 * did not end OK). old_flags: its entry's flags before DONE was set. */
void sp_graph_release(struct sp_run *run, size_t i, unsigned kind,
                      unsigned old_flags, struct sp_tally *t);
/* Whether task i is doomed; *cause: the dependency that did not end OK. */
bool sp_graph_doomed(const struct sp_run *run, size_t i, uint32_t *cause);
/* A spawned row's own faults (key, callback, data, reserved fields): 0
 * or an error with the message set. */
int sp_graph_check_row(const sp_task *t);
/* sp_spawn(): add a task to the running call. 0, or an sp_error with the
 * message set and nothing added. */
int sp_graph_spawn(struct sp_run *run, size_t spawner, const sp_task *t);
/* sp_dep_result() for task i, in this process. */
const void *sp_graph_dep(struct sp_run *run, size_t i, const char *key,
                         size_t *len);
/* The result of task i's k-th dependency (in 'after' order, k below their
 * number), which ended OK: its bytes, or "" with *len 0 when it stored
 * none. */
const void *sp_graph_dep_at(const struct sp_run *run, size_t i, size_t k,
                            size_t *len);
uint64_t sp_hash(const char *s, size_t len);

/* ---- sched.c ------------------------------------------------------------ */

/* Set up the ready queue of run for `workers` claiming workers (thread and
 * serial backends); 0 or SP_ENOMEM / SP_ETHREAD with the message set. */
int sp_sched_init(struct sp_sched *s, struct sp_run *run, unsigned workers);
void sp_sched_free(struct sp_sched *s);
/* Give worker w its next task in *i; *now is the worker's last clock
 * reading (checked against the deadline), read again when the task did not
 * come from the front of the worker's own range (it may have become ready
 * since). false: nothing to start now; call sp_sched_idle(). */
bool sp_sched_claim(struct sp_sched *s, unsigned w, uint64_t *now, size_t *i);
/* Open claim slot k (k <= the slots open so far, < nclaims) for a worker
 * about to claim with it: an empty range, not busy, tally = its own. Slots
 * are opened in order; opening an open slot does nothing. Called by one
 * thread at a time (the backend's). */
void sp_sched_open(struct sp_sched *s, unsigned k);
/* Like sp_sched_idle() for a worker that leaves instead of sleeping:
 * true = a task is ready, claim again; false = leave (the run is over, is
 * stopped, or other workers still run tasks and will make any more ready:
 * a push then calls the backend's grow()). */
bool sp_sched_idle_leave(struct sp_sched *s, unsigned w);
/* Worker w found nothing: wait until a task may be ready (true: claim
 * again) or the run will start nothing more (false: leave). */
bool sp_sched_idle(struct sp_sched *s, unsigned w);
/* Claim one position of the static list without ranges (the process
 * backend's workers share the counter through a mapping); false at the end.
 */
bool sp_sched_claim_one(struct sp_sched *s, size_t *i);
/* Claim up to `most` positions of the static list at once, [*lo, *hi)
 * (guided: fewer as the list runs out); false at the end. For workers that
 * keep their claimed span where the parent can read it (process). */
bool sp_sched_claim_span(struct sp_sched *s, uint32_t most, uint32_t *lo,
                         uint32_t *hi);
/* The task at position pos of the static list. */
size_t sp_sched_index_at(const struct sp_sched *s, uint32_t pos);
/* The task the static list would hand out next, UINT32_MAX at its end. */
uint32_t sp_sched_peek(const struct sp_sched *s);
/* Take the lowest ready index from the heap, if any (a backend that hands
 * tasks to workers itself: the process parent). */
bool sp_sched_take(struct sp_sched *s, size_t *i);
/* Task i became ready (handed back, released, spawned): into the heap,
 * which must have room (sp_sched_reserve()). claims_next: the caller is a
 * worker that claims again right after (a completion), so one sleeper is
 * woken only when more than one task is ready. */
void sp_sched_push(struct sp_sched *s, size_t i, bool claims_next);
/* Make room in the heap for cap tasks (every task can be in it at most
 * once). 0 or SP_ENOMEM. */
int sp_sched_reserve(struct sp_sched *s, size_t cap);
/* Task i is to be tried again at the absolute time due (ns): it waits in
 * the scheduler, holding up nothing else, then becomes ready. Room must
 * have been made (sp_sched_reserve_later()). */
void sp_sched_push_later(struct sp_sched *s, size_t i, uint64_t due);
/* Make room for cap tasks waiting for their retry; false out of memory. */
bool sp_sched_reserve_later(struct sp_sched *s, size_t cap);
/* Make room in the heap for cap tasks without setting sp_last_error();
 * false out of memory. */
bool sp_sched_reserve_quiet(struct sp_sched *s, size_t cap);
/* Whether a task waits for its retry delay. */
static inline bool sp_sched_later_pending(const struct sp_sched *s)
{
    return atomic_load_explicit((_Atomic uint64_t *)&s->later_min,
                                memory_order_relaxed) != UINT64_MAX;
}
/* When a thread that waits for the run (the caller) must look at it
 * again: the next retry due, the deadline; absolute ns, 0 = only when
 * woken. */
uint64_t sp_sched_wake_at(struct sp_sched *s);
/* That thread's look at the run at time now: stop at the deadline, and
 * make the tasks whose retry delay has passed ready. */
void sp_sched_tick(struct sp_sched *s, uint64_t now);
/* A stop was requested: wake every sleeping worker. */
void sp_sched_wake(struct sp_sched *s);
/* After every worker is gone: every task without an outcome never started;
 * record it CANCELLED with the run's stop reason (on the calling thread). */
void sp_sched_cancel_rest(struct sp_sched *s);

/* ---- task.c ------------------------------------------------------------- */

/* Run task i on the calling thread; its outcome goes to *out. start is the
 * absolute time it starts; returns the absolute end time. */
uint64_t sp_task_exec(struct sp_run *run, size_t i, unsigned worker,
                      uint64_t start, struct sp_outcome *out);
/* The same, for a row and an attempt number the caller supplies (a worker
 * process runs what its RUN command names). */
uint64_t sp_task_exec_row(struct sp_run *run, size_t i, const sp_task *t,
                          unsigned attempt, unsigned worker, uint64_t start,
                          struct sp_outcome *out);
/* The time limit of an attempt of row t in ns (its policy's, else the
 * call's task_timeout); 0 = none. */
static inline uint64_t sp_task_limit(const struct sp_run *run, const sp_task *t)
{
    if (t->policy && t->policy->time_limit > 0)
        return (uint64_t)(t->policy->time_limit * 1e9);
    return run->task_timeout;
}
/* Free what an outcome owns (one that was not handed to sp_complete()). */
void sp_outcome_free(struct sp_outcome *o);

/* The release function of a result that is a read-only mapping of len + 1
 * bytes (the process backend maps a worker's memfd, shm.c): a marker that
 * sp_data_release() recognises, since unmapping needs the length. Never
 * called itself. */
void sp_result_mapped(void *data);
/* Free a result's bytes (len: its length, without the NUL) the way they
 * were made: release NULL is free(), sp_result_mapped is munmap(), any
 * other is the task's own function. results.c. */
void sp_data_release(void (*release)(void *), void *data, size_t len);

/* ---- retry.c (part of the completion path) ------------------------------- */

/* Attempt `attempt` of task i failed with *o (FAILED, CRASHED or
 * TIMED_OUT): when its policy says so and the run may still start it in
 * time, keep *o in the task's retry record, hand the task back to the
 * scheduler (at once or after its delay) and return true: nothing is
 * recorded. Otherwise false, nothing touched. sp_complete() asks. */
bool sp_retry(struct sp_run *run, size_t i, struct sp_outcome *o,
              struct sp_tally *t);
/* *o is the last attempt of task i, which has a retry record (*slot): the
 * record's last attempt is *o itself (pending: its retry never started) or
 * the one before it. *o gets the story of every attempt; the record is
 * freed and *slot cleared. */
void sp_retry_story(struct sp_run *run, size_t i, struct sp_try **slot,
                    struct sp_outcome *o, bool pending);
/* Make *o, the last of `attempts` (> 1) attempts of the task whose entry
 * is e (its key and index are read), tell the story of them all: its
 * message moves into a struct sp_story with the count and the earlier
 * attempts past[0 .. npast-1] (attempts 1 .., messages copied; npast <=
 * attempts - 1). Out of memory, *o stays the last attempt alone. */
void sp_retry_set_story(struct sp_outcome *o, const sp_entry *e,
                        unsigned attempts, const struct sp_tried *past,
                        unsigned npast);
/* Whether row t's policy has attempt `attempt` (1-based) that ended with
 * kind tried again, the run's state aside. Workers in other processes ask
 * it too (fail-fast applies only to a task's last attempt). */
bool sp_retry_wanted(const struct sp_run *run, const sp_task *t,
                     unsigned attempt, int kind);
/* Task i's retry record's place: a table row's in run->tries (NULL when no
 * row may be tried again), a spawned task's in its sp_xtask. */
static inline struct sp_try **sp_retry_slot(struct sp_run *run, size_t i)
{
    if (i < run->n)
        return run->tries ? &run->tries[i] : NULL;
    return &sp_xtask_at(run->res, i - run->n)->tries;
}
/* The number of task i's next attempt (1 for the first). */
unsigned sp_retry_attempt(struct sp_run *run, size_t i);
/* Task i is handed out for its next attempt (the process parent); returns
 * that attempt's number. */
unsigned sp_retry_handout(struct sp_run *run, size_t i);
/* Whether task i waits for a retry (an outcome for it now is bogus). */
bool sp_retry_waiting(struct sp_run *run, size_t i);

/* ---- complete.c --------------------------------------------------------- */

/* Record how an attempt of task i ended: the ONLY writer of an entry's
 * outcome. Takes ownership of what *o holds. Decides whether the task is
 * tried again (then hands it back to the scheduler and records nothing
 * yet); otherwise counts it in t, applies fail-fast, queues or calls the
 * completion callback. Any thread; once per attempt. */
void sp_complete(struct sp_run *run, size_t i, struct sp_outcome *o,
                 struct sp_tally *t);
/* Task i waits for a retry that will never start (the run is over): record
 * its last attempt's outcome, kept since. Calling thread. */
void sp_complete_pending(struct sp_run *run, size_t i, struct sp_tally *t);
/* Wake the calling thread waiting in sp_complete_drain_until() so it looks
 * at the run again (a retry delay began). */
void sp_complete_kick(struct sp_run *run);
/* Whether recording an outcome of this kind stops the run (fail-fast): the
 * policy sp_complete() applies. Workers in other processes ask it too, so
 * the stop takes effect before the parent records the outcome. */
static inline bool sp_complete_stops(const struct sp_run *run, int kind)
{
    return run->opts.on_error == SP_POLICY_FAIL_FAST && kind != SP_KIND_OK &&
           kind != SP_KIND_CANCELLED;
}
/* Whether task i has its outcome. */
static inline bool sp_complete_has(const struct sp_run *run, size_t i)
{
    return sp_entry_how(sp_entry_at(run->res, i)).flags & SP_EF_DONE;
}
/* Record doomed task i as SKIPPED: cause is the dependency that did not
 * end OK; the message names it and how it ended. */
void sp_complete_skip(struct sp_run *run, size_t i, uint32_t cause,
                      struct sp_tally *t);
/* Make room in the completion queue for `total` tasks (spawn). */
int sp_complete_reserve(struct sp_run *run, size_t total);
/* Reset the run's completion state (core.c, before the backend starts). */
void sp_complete_init(struct sp_run *run);
/* A backend whose worker threads record outcomes sets up the queue its
 * calling thread waits on (and the callback's room, with on_done); 0 or an
 * error with the message set. */
int sp_complete_queue(struct sp_run *run);
void sp_complete_free(struct sp_run *run);
/* On the calling thread: deliver queued completions until the producers
 * are done (sp_complete_producers_done()) and the queue is empty (true),
 * or until the absolute time `until` (ns; 0 = no limit) passes or
 * sp_complete_kick() is called (false). */
bool sp_complete_drain_until(struct sp_run *run, uint64_t until);
/* On the calling thread: deliver what is queued now, without waiting. */
void sp_complete_deliver_queued(struct sp_run *run);
/* Every worker thread has left: no more completions will be queued. */
void sp_complete_producers_done(struct sp_run *run);
/* Add a worker's counts to the map's (after the worker is gone). */
void sp_tally_merge(struct sp_run *run, const struct sp_tally *t);

/* The reason a task cancelled by a stop for `why` gives. */
static inline uint8_t sp_stop_reason(int why)
{
    switch (why) {
    case SP_STOP_FAILFAST:
        return SP_CANCEL_FAIL_FAST;
    case SP_STOP_DEADLINE:
        return SP_CANCEL_DEADLINE;
    case SP_STOP_CALLBACK:
        return SP_CANCEL_ON_DONE;
    case SP_STOP_ERROR:
        return SP_CANCEL_BACKEND;
    case SP_STOP_CALLER:
        return SP_CANCEL_CALLER;
    default:
        return SP_CANCEL_NONE;
    }
}

/* Ask the run to stop starting tasks; the first reason wins, and the
 * backend is woken. Any thread. */
void sp_run_stop(struct sp_run *run, int why);
/* The backend cannot go on: stop with SP_STOP_ERROR, and tasks that never
 * start come back CANCELLED with code and "not started: msg" (kept in the
 * map). Calling thread only. */
void sp_run_fail(struct sp_run *run, int code, const char *msg);

/* Whether a cancel handle of the run fired; then the run is stopped
 * (SP_STOP_CALLER). cancel.c has the handles. */
static inline bool sp_run_cancel_fired(struct sp_run *run)
{
    for (int k = 0; k < 2; k++) {
        if (run->cancel[k] &&
            atomic_load_explicit((_Atomic int *)&run->cancel[k]->fired,
                                 memory_order_acquire)) {
            sp_run_stop(run, SP_STOP_CALLER);
            return true;
        }
    }
    return false;
}

/* Whether a task may still start at time now; sets the stop reason when
 * the deadline has passed or a cancel handle fired. */
static inline bool sp_run_may_start(struct sp_run *run, uint64_t now)
{
    if (atomic_load_explicit(run->stop, memory_order_relaxed))
        return false;
    if (SP_UNLIKELY(run->watched) && sp_run_cancel_fired(run))
        return false;
    if (run->deadline && now >= run->deadline) {
        sp_run_stop(run, SP_STOP_DEADLINE);
        return false;
    }
    return true;
}

static inline void sp_results_note_owned(sp_results *res)
{
    if (!atomic_load_explicit(&res->owns, memory_order_relaxed))
        atomic_store_explicit(&res->owns, true, memory_order_relaxed);
}

#endif /* SP_PRIVATE_H */
