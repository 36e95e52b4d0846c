/* SPDX-License-Identifier: MIT */
/* The scheduler: the ready queue of one run. It decides which task a worker
 * starts next and which tasks never start; it never runs a task and never
 * decides how one ended (complete.c does).
 *
 * Two sources of ready tasks:
 *  - the static list: the tasks ready when the run starts, in table order
 *    (position p is task order[p], or p itself when order is NULL). Workers
 *    take chunks of positions from one counter, sized like OpenMP's guided
 *    schedule (remaining / chunk_div, 1 .. CHUNK_MAX), into their own range.
 *    A claim is then one uncontended CAS on the worker's own cache line.
 *  - the heap: tasks that become ready later (handed back, released by a
 *    finished dependency, spawned, retried), a min-heap by index under the
 *    lock. Among ready tasks the lowest index starts first, so table order
 *    and then spawn order decide.
 * A task to be tried again after a delay waits in a third place, `later`,
 * a min-heap by due time under the lock, and moves into the heap once its
 * time has come: a claim that sees it due moves it, and so does the thread
 * that waits for the run (sp_sched_tick(): the caller, or a worker asleep
 * in sp_sched_idle()), which wakes at the earliest due time.
 *
 * Invariants:
 *  1. Every position of the static list is handed out at most once: it is
 *     taken from the counter into exactly one range, and leaves a range by
 *     one successful CAS (the owner's pop of the front, or a thief's steal
 *     of the back).
 *  2. An idle worker can take ANY task that has not started: it steals the
 *     back half (at least one task) of a busy worker's range. A slow task
 *     therefore holds up only itself.
 *  3. `stealable` counts non-empty ranges and ranges on their way to a
 *     claim: a chunk is counted before it leaves the counter, and a steal
 *     that empties its victim hands that count to the thief's range. So
 *     whoever reads the counter (acquire) and then `stealable` never finds
 *     both empty while a task not yet started sits in a range (the thread
 *     pool decides from that whether to bring more workers). Each change
 *     is counted once; the count may be high for a moment, never low.
 *  4. `heap_min` is the heap's smallest index or UINT32_MAX; it changes only
 *     under the lock.
 *  5. A worker's `busy` flag is set before it looks for work and cleared,
 *     under the lock, only when it found none. The run is `over` (nothing
 *     will start any more) when, under the lock, no worker is busy and
 *     nothing is ready or waiting in `later`: then no task is running, so
 *     none can make another ready. A stop request ends the run for idle
 *     workers at once; what waits in `later` then never starts.
 *  6. When every worker is gone, a task without an outcome never started
 *     or waits for a retry; sp_sched_cancel_rest() has the first recorded
 *     CANCELLED with the reason, the second with its last attempt's
 *     outcome.
 *  7. `later_min` is the earliest due time in `later` or UINT64_MAX; it
 *     changes only under the lock. Every task is in at most one of the
 *     static list, the heap and `later`, so each has room for all tasks.
 */
#include "sp-private.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#define CHUNK_MAX 1024u

static inline uint64_t pack(uint32_t lo, uint32_t hi)
{
    return (uint64_t)hi << 32 | lo;
}

static inline uint32_t index_at(const struct sp_sched *s, uint64_t pos)
{
    return s->order ? s->order[pos] : (uint32_t)pos;
}

int sp_sched_init(struct sp_sched *s, struct sp_run *run, unsigned workers)
{
    memset(s, 0, sizeof *s);
    s->run = run;
    s->n_static = run->n;
    if (run->graph.ready) { /* rows with dependencies wait in the heap */
        s->order = run->graph.ready;
        s->n_static = run->graph.nready;
    }
    s->nclaims = workers;
    /* Chunks sized for the workers there will be at first: one per row at
     * most (a backend may start more later, up to `workers`). */
    size_t first = workers < run->n ? workers : run->n;
    s->chunk_div = 4 * (unsigned)(first ? first : 1);
    atomic_init(&s->next_local, 0);
    s->cursor = &s->next_local;
    atomic_init(&s->stealable, 0);
    atomic_init(&s->heap_min, UINT32_MAX);
    atomic_init(&s->later_min, UINT64_MAX);
    atomic_init(&s->over, false);
    atomic_init(&s->nslots, 0);
    if (workers) {
        /* Slots are initialised when opened: a run that may grow to many
         * workers touches only the memory of those it starts. */
        s->claims = sp_aligned_alloc(64, sizeof *s->claims * workers);
        if (!s->claims)
            return sp_set_error(SP_ENOMEM, "cannot allocate %u claim slots",
                                workers);
    }
    /* Sleepers wait until a retry is due: on the monotonic clock. */
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc == 0) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        if ((rc = pthread_mutex_init(&s->lock, NULL)) == 0 &&
            (rc = pthread_cond_init(&s->wake, &ca)) != 0)
            pthread_mutex_destroy(&s->lock);
        pthread_condattr_destroy(&ca);
    }
    if (rc) {
        free(s->claims);
        s->claims = NULL;
        return sp_set_error_errno(SP_ETHREAD, rc,
                                  "cannot initialise the scheduler's lock");
    }
    s->lock_ready = true;
    if (run->graph.ready && sp_sched_reserve(s, run->n)) {
        sp_sched_free(s);
        return SP_ENOMEM;
    }
    return 0;
}

void sp_sched_free(struct sp_sched *s)
{
    if (s->lock_ready) {
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
        s->lock_ready = false;
    }
    free(s->claims);
    free(s->heap);
    free(s->later);
    s->claims = NULL;
    s->heap = NULL;
    s->later = NULL;
}

void sp_sched_open(struct sp_sched *s, unsigned k)
{
    unsigned open = atomic_load_explicit(&s->nslots, memory_order_relaxed);
    if (k < open)
        return;
    struct sp_claim *c = &s->claims[k];
    atomic_init(&c->range, 0);
    atomic_init(&c->busy, 0);
    memset(&c->own, 0, sizeof c->own);
    c->tally = &c->own;
    /* Thieves and the idle check read slots below nslots only. */
    atomic_store_explicit(&s->nslots, k + 1, memory_order_release);
}

/* ---- the heap (under the lock) ------------------------------------------ */

static void heap_publish_min(struct sp_sched *s)
{
    atomic_store_explicit(&s->heap_min, s->heap_len ? s->heap[0] : UINT32_MAX,
                          memory_order_relaxed);
}

static uint32_t heap_pop(struct sp_sched *s)
{
    uint32_t top = s->heap[0], v = s->heap[--s->heap_len];
    size_t k = 0, n = s->heap_len;
    for (;;) {
        size_t c = 2 * k + 1;
        if (c >= n)
            break;
        if (c + 1 < n && s->heap[c + 1] < s->heap[c])
            c++;
        if (s->heap[c] >= v)
            break;
        s->heap[k] = s->heap[c];
        k = c;
    }
    if (n)
        s->heap[k] = v;
    heap_publish_min(s);
    return top;
}

/* Grow an array of *cap elements of `size` bytes to hold at least want
 * (under the lock); false out of memory. */
static bool grow_array(void **p, size_t *cap, size_t size, size_t want)
{
    if (want <= *cap)
        return true;
    size_t c = *cap ? *cap : 64;
    while (c < want)
        c *= 2;
    void *q = sp_realloc(*p, c * size);
    if (!q)
        return false;
    *p = q;
    *cap = c;
    return true;
}

bool sp_sched_reserve_quiet(struct sp_sched *s, size_t cap)
{
    pthread_mutex_lock(&s->lock);
    bool ok = grow_array((void **)&s->heap, &s->heap_cap, sizeof *s->heap, cap);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

int sp_sched_reserve(struct sp_sched *s, size_t cap)
{
    if (sp_sched_reserve_quiet(s, cap))
        return 0;
    return sp_set_error(SP_ENOMEM, "cannot make room for %zu ready tasks", cap);
}

bool sp_sched_reserve_later(struct sp_sched *s, size_t cap)
{
    pthread_mutex_lock(&s->lock);
    bool ok =
        grow_array((void **)&s->later, &s->later_cap, sizeof *s->later, cap);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

/* Put i into the heap (under the lock; room was reserved: every task fits
 * once). */
static void heap_insert(struct sp_sched *s, uint32_t i)
{
    size_t k = s->heap_len++;
    while (k && s->heap[(k - 1) / 2] > i) {
        s->heap[k] = s->heap[(k - 1) / 2];
        k = (k - 1) / 2;
    }
    s->heap[k] = i;
    heap_publish_min(s);
    s->gen++;
}

void sp_sched_push(struct sp_sched *s, size_t i, bool claims_next)
{
    pthread_mutex_lock(&s->lock);
    heap_insert(s, (uint32_t)i);
    /* A worker that pushes as it completes a task claims again at once:
     * wake another only when there is more than that one to take; with
     * none asleep, the backend may start one more. */
    bool more = !claims_next || s->heap_len > 1;
    bool grow = more && !s->sleepers;
    if (more && s->sleepers)
        pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    /* After a stop nothing more starts: no worker to add (this is also the
     * path of sp_sched_cancel_rest(), when the workers are gone). */
    if (grow && s->run->ops->grow &&
        !atomic_load_explicit(s->run->stop, memory_order_relaxed))
        s->run->ops->grow(s->run);
}

/* ---- tasks waiting for a retry (under the lock) ------------------------- */

static bool later_before(const struct sp_later *a, const struct sp_later *b)
{
    return a->due < b->due || (a->due == b->due && a->i < b->i);
}

static void later_publish_min(struct sp_sched *s)
{
    atomic_store_explicit(&s->later_min,
                          s->later_len ? s->later[0].due : UINT64_MAX,
                          memory_order_relaxed);
}

static struct sp_later later_pop(struct sp_sched *s)
{
    struct sp_later top = s->later[0], v = s->later[--s->later_len];
    size_t k = 0, n = s->later_len;
    for (;;) {
        size_t c = 2 * k + 1;
        if (c >= n)
            break;
        if (c + 1 < n && later_before(&s->later[c + 1], &s->later[c]))
            c++;
        if (!later_before(&s->later[c], &v))
            break;
        s->later[k] = s->later[c];
        k = c;
    }
    if (n)
        s->later[k] = v;
    later_publish_min(s);
    return top;
}

void sp_sched_push_later(struct sp_sched *s, size_t i, uint64_t due)
{
    struct sp_later v = {.due = due, .i = (uint32_t)i};
    pthread_mutex_lock(&s->lock);
    size_t k = s->later_len++; /* room was reserved */
    while (k && later_before(&v, &s->later[(k - 1) / 2])) {
        s->later[k] = s->later[(k - 1) / 2];
        k = (k - 1) / 2;
    }
    s->later[k] = v;
    later_publish_min(s);
    s->gen++;
    /* Sleepers wait until the earliest due time: let them look again. */
    if (s->sleepers)
        pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    /* So does the caller waiting for the run. */
    sp_complete_kick(s->run);
}

/* Make the tasks whose retry is due at `now` ready. */
static void promote(struct sp_sched *s, uint64_t now)
{
    struct sp_run *run = s->run;
    unsigned moved = 0;
    pthread_mutex_lock(&s->lock);
    while (s->later_len && s->later[0].due <= now &&
           !atomic_load_explicit(run->stop, memory_order_relaxed)) {
        heap_insert(s, later_pop(s).i);
        moved++;
    }
    bool grow = moved && !s->sleepers;
    if (moved && s->sleepers)
        pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    for (; grow && moved && run->ops->grow; moved--)
        run->ops->grow(run);
}

uint64_t sp_sched_wake_at(struct sp_sched *s)
{
    struct sp_run *run = s->run;
    if (atomic_load_explicit(run->stop, memory_order_relaxed))
        return 0; /* nothing is due any more */
    uint64_t at = atomic_load_explicit(&s->later_min, memory_order_relaxed);
    if (run->deadline && run->deadline < at)
        at = run->deadline;
    if (run->watched) { /* a cancel handle fires without waking anyone */
        uint64_t poll = sp_now() + (uint64_t)SP_CANCEL_POLL_MS * 1000000u;
        if (poll < at)
            at = poll;
    }
    return at == UINT64_MAX ? 0 : at;
}

void sp_sched_tick(struct sp_sched *s, uint64_t now)
{
    if (!sp_run_may_start(s->run, now))
        return;
    if (atomic_load_explicit(&s->later_min, memory_order_relaxed) <= now)
        promote(s, now);
}

/* Pop the heap's smallest index if it is below `below`. A doomed task (a
 * dependency did not end OK) is recorded SKIPPED with tally t instead of
 * being handed out, and the next one is taken. */
static bool take_heap(struct sp_sched *s, uint32_t below, size_t *i,
                      struct sp_tally *t)
{
    for (;;) {
        bool got = false;
        pthread_mutex_lock(&s->lock);
        if (s->heap_len && s->heap[0] < below) {
            *i = heap_pop(s);
            got = true;
        }
        pthread_mutex_unlock(&s->lock);
        uint32_t cause;
        if (!got || !sp_graph_doomed(s->run, *i, &cause))
            return got;
        sp_complete_skip(s->run, *i, cause, t);
    }
}

/* ---- the static list ---------------------------------------------------- */

/* Give claim c the range [lo, hi); c's range is empty, so no thief races
 * this store (thieves only CAS non-empty ranges). The caller has counted
 * a non-empty range in `stealable` already (invariant 3). */
static void set_range(struct sp_claim *c, uint64_t lo, uint64_t hi)
{
    atomic_store_explicit(&c->range, pack((uint32_t)lo, (uint32_t)hi),
                          memory_order_relaxed);
}

/* Pop the front of c's own range unless the heap holds a smaller index:
 * 1 = got *pos, 0 = range empty, -1 = the heap goes first. */
static int pop_own(struct sp_sched *s, struct sp_claim *c, uint32_t hmin,
                   uint64_t *pos)
{
    uint64_t r = atomic_load_explicit(&c->range, memory_order_relaxed);
    for (;;) {
        uint32_t lo = (uint32_t)r, hi = (uint32_t)(r >> 32);
        if (lo >= hi)
            return 0;
        if (hmin < index_at(s, lo))
            return -1;
        if (s->nclaims == 1) { /* no thief: a plain store will do */
            atomic_store_explicit(&c->range, pack(lo + 1, hi),
                                  memory_order_relaxed);
            if (hi - lo == 1)
                atomic_fetch_sub_explicit(&s->stealable, 1,
                                          memory_order_relaxed);
            *pos = lo;
            return 1;
        }
        if (atomic_compare_exchange_weak_explicit(
                &c->range, &r, pack(lo + 1, hi), memory_order_relaxed,
                memory_order_relaxed)) {
            if (hi - lo == 1)
                atomic_fetch_sub_explicit(&s->stealable, 1,
                                          memory_order_relaxed);
            *pos = lo;
            return 1;
        }
    }
}

/* Take a chunk of the static list from the counter: 1 = got *pos (the
 * chunk's first; the rest is c's range), 0 = the list is exhausted, -1 =
 * the heap goes first. */
static int claim_chunk(struct sp_sched *s, struct sp_claim *c, uint32_t hmin,
                       uint64_t *pos)
{
    uint64_t n = s->n_static;
    uint64_t cur = atomic_load_explicit(s->cursor, memory_order_relaxed);
    if (cur >= n)
        return 0;
    if (hmin < index_at(s, cur))
        return -1;
    uint64_t k = (n - cur) / s->chunk_div;
    k = k < 1 ? 1 : k > CHUNK_MAX ? CHUNK_MAX : k;
    /* A chunk of more than one task leaves a range: count it before it
     * leaves the counter (invariant 3), uncount it if it comes out empty. */
    if (k > 1)
        atomic_fetch_add_explicit(&s->stealable, 1, memory_order_relaxed);
    uint64_t lo = atomic_fetch_add_explicit(s->cursor, k, memory_order_release);
    uint64_t hi = lo + k < n ? lo + k : n;
    if (lo < n && hi > lo + 1)
        set_range(c, lo + 1, hi);
    else if (k > 1)
        atomic_fetch_sub_explicit(&s->stealable, 1, memory_order_relaxed);
    if (lo >= n)
        return 0;
    *pos = lo;
    return 1;
}

/* Steal the back half (at least one) of another worker's range. */
static bool steal(struct sp_sched *s, unsigned w, uint64_t *pos)
{
    while (atomic_load_explicit(&s->stealable, memory_order_relaxed) > 0) {
        unsigned open = atomic_load_explicit(&s->nslots, memory_order_acquire);
        for (unsigned k = 1; k < open; k++) {
            struct sp_claim *v = &s->claims[(w + k) % open];
            uint64_t r = atomic_load_explicit(&v->range, memory_order_relaxed);
            for (;;) {
                uint32_t lo = (uint32_t)r, hi = (uint32_t)(r >> 32);
                if (lo >= hi)
                    break;
                uint32_t take = (hi - lo + 1) / 2, mid = hi - take;
                if (atomic_compare_exchange_weak_explicit(
                        &v->range, &r, pack(lo, mid), memory_order_relaxed,
                        memory_order_relaxed)) {
                    /* The victim's count (if this emptied it) passes to
                     * the thief's range; only the difference is counted,
                     * after the store (invariant 3). */
                    bool rest = hi > mid + 1;
                    if (rest)
                        set_range(&s->claims[w], (uint64_t)mid + 1, hi);
                    if (rest && mid != lo)
                        atomic_fetch_add_explicit(&s->stealable, 1,
                                                  memory_order_relaxed);
                    else if (!rest && mid == lo)
                        atomic_fetch_sub_explicit(&s->stealable, 1,
                                                  memory_order_relaxed);
                    *pos = mid;
                    return true;
                }
            }
        }
        if (open < 2)
            break;
        /* A range is in flight between a thief's CAS and its own store;
         * let the thief land it. */
        sched_yield();
    }
    return false;
}

/* Everything but the front of the worker's own range: the counter, a
 * steal, the heap. Kept out of line so the fast path stays small. */
static SP_NOINLINE bool claim_slow(struct sp_sched *s, unsigned w, size_t *i)
{
    struct sp_claim *c = &s->claims[w];
    uint32_t hmin = atomic_load_explicit(&s->heap_min, memory_order_relaxed);
    uint64_t pos;
    int got = pop_own(s, c, hmin, &pos);
    if (got == 0)
        got = claim_chunk(s, c, hmin, &pos);
    if (got == 0 && steal(s, w, &pos))
        got = 1;
    if (got == 1) {
        *i = index_at(s, pos);
        return true;
    }
    /* The heap: first when it holds a lower index than the static list's
     * next, otherwise as the last resort. */
    return hmin != UINT32_MAX && take_heap(s, UINT32_MAX, i, c->tally);
}

bool sp_sched_claim(struct sp_sched *s, unsigned w, uint64_t *now, size_t *i)
{
    struct sp_claim *c = &s->claims[w];
    if (!atomic_load_explicit(&c->busy, memory_order_relaxed))
        atomic_store(&c->busy, 1); /* before looking: invariant 5 */
    if (!sp_run_may_start(s->run, *now))
        return false;
    if (c->tally && c->tally->handoff) { /* made ready by its last task */
        *i = c->tally->handoff - 1;
        c->tally->handoff = 0;
        /* Its other dependencies may have ended after this worker's last
         * clock reading (their workers completed them first): read it
         * again, so the task never starts before a dependency ended. */
        *now = sp_run_now(s->run);
        return true;
    }
    /* Fast path: the front of the worker's own range, when the heap is
     * empty and only this worker claims (serial) or the CAS wins. */
    uint64_t r = atomic_load_explicit(&c->range, memory_order_relaxed);
    uint32_t lo = (uint32_t)r, hi = (uint32_t)(r >> 32);
    if (SP_UNLIKELY(atomic_load_explicit(&s->later_min, memory_order_relaxed) <=
                    *now))
        promote(s, *now); /* a retry is due: it competes by its index */
    if (hi - lo >= 2 && atomic_load_explicit(
                            &s->heap_min, memory_order_relaxed) == UINT32_MAX) {
        uint64_t next = r + 1; /* lo + 1, hi unchanged: lo < hi - 1 */
        if (s->nclaims == 1)
            atomic_store_explicit(&c->range, next, memory_order_relaxed);
        else if (!atomic_compare_exchange_strong_explicit(&c->range, &r, next,
                                                          memory_order_relaxed,
                                                          memory_order_relaxed))
            goto slow;
        *i = index_at(s, lo);
        return true;
    }
slow:;
    /* A task from the counter, a steal or the heap may have become ready
     * after the worker's last clock reading: read it again. (A task taken
     * after the deadline passed is left for the cancellation sweep.) */
    bool got = claim_slow(s, w, i);
    *now = sp_run_now(s->run);
    return got && sp_run_may_start(s->run, *now);
}

bool sp_sched_take(struct sp_sched *s, size_t *i)
{
    if (atomic_load_explicit(&s->heap_min, memory_order_relaxed) == UINT32_MAX)
        return false;
    return take_heap(s, UINT32_MAX, i, &s->run->caller);
}

uint32_t sp_sched_peek(const struct sp_sched *s)
{
    uint64_t pos = atomic_load_explicit(s->cursor, memory_order_relaxed);
    return pos < s->n_static ? index_at(s, pos) : UINT32_MAX;
}

bool sp_sched_claim_one(struct sp_sched *s, size_t *i)
{
    uint64_t pos =
        atomic_fetch_add_explicit(s->cursor, 1, memory_order_relaxed);
    if (pos >= s->n_static)
        return false;
    *i = index_at(s, pos);
    return true;
}

bool sp_sched_claim_span(struct sp_sched *s, uint32_t most, uint32_t *lo,
                         uint32_t *hi)
{
    uint64_t cur = atomic_load_explicit(s->cursor, memory_order_relaxed);
    if (cur >= s->n_static)
        return false;
    /* Guided: a quarter of each worker's share of what is left. */
    unsigned nw = s->run->workers ? s->run->workers : 1;
    uint64_t left = s->n_static - cur, share = left / (4u * nw);
    uint32_t want = share < 1 ? 1 : share > most ? most : (uint32_t)share;
    uint64_t pos =
        atomic_fetch_add_explicit(s->cursor, want, memory_order_relaxed);
    if (pos >= s->n_static)
        return false;
    *lo = (uint32_t)pos;
    *hi = (uint32_t)(pos + want < s->n_static ? pos + want : s->n_static);
    return true;
}

size_t sp_sched_index_at(const struct sp_sched *s, uint32_t pos)
{
    return index_at(s, pos);
}

/* Under the lock: whether any worker other than w may still make a task
 * ready, or any task is ready. */
static bool work_may_appear(struct sp_sched *s, unsigned w)
{
    if (s->heap_len || s->later_len || atomic_load(s->cursor) < s->n_static ||
        atomic_load(&s->stealable) > 0)
        return true;
    unsigned open = atomic_load_explicit(&s->nslots, memory_order_acquire);
    for (unsigned k = 0; k < open; k++)
        if (k != w && atomic_load(&s->claims[k].busy))
            return true;
    return false;
}

bool sp_sched_idle_leave(struct sp_sched *s, unsigned w)
{
    struct sp_claim *c = &s->claims[w];
    bool again = false;
    if (sp_sched_later_pending(s)) /* due ones first; the others wait */
        sp_sched_tick(s, sp_run_now(s->run));
    pthread_mutex_lock(&s->lock);
    atomic_store(&c->busy, 0);
    if (!atomic_load(&s->over) &&
        !atomic_load_explicit(s->run->stop, memory_order_relaxed)) {
        if (s->heap_len || atomic_load(s->cursor) < s->n_static ||
            atomic_load(&s->stealable) > 0) {
            again = true;
        } else if (!work_may_appear(s, w)) {
            atomic_store(&s->over, true);
            s->gen++;
            pthread_cond_broadcast(&s->wake);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return again;
}

bool sp_sched_idle(struct sp_sched *s, unsigned w)
{
    struct sp_claim *c = &s->claims[w];
    bool again = false;
    pthread_mutex_lock(&s->lock);
    atomic_store(&c->busy, 0);
    uint64_t gen = s->gen;
    for (;;) {
        if (atomic_load(&s->over) ||
            atomic_load_explicit(s->run->stop, memory_order_relaxed))
            break;
        if (s->heap_len || atomic_load(s->cursor) < s->n_static ||
            atomic_load(&s->stealable) > 0 || s->gen != gen) {
            again = true;
            break;
        }
        if (!work_may_appear(s, w)) {
            atomic_store(&s->over, true);
            s->gen++;
            pthread_cond_broadcast(&s->wake);
            break;
        }
        /* Wake when a retry is due or the deadline passes, whatever the
         * other workers do. */
        uint64_t until = sp_sched_wake_at(s);
        s->sleepers++;
        if (until) {
            struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
                                  .tv_nsec = (long)(until % 1000000000u)};
            pthread_cond_timedwait(&s->wake, &s->lock, &ts);
        } else {
            pthread_cond_wait(&s->wake, &s->lock);
        }
        s->sleepers--;
        uint64_t now = until ? sp_run_now(s->run) : 0;
        if (until && now >= until) {
            /* Stopping may wake the backend, which takes this lock. */
            pthread_mutex_unlock(&s->lock);
            sp_sched_tick(s, now);
            pthread_mutex_lock(&s->lock);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return again;
}

void sp_sched_wake(struct sp_sched *s)
{
    if (!s->lock_ready)
        return;
    pthread_mutex_lock(&s->lock);
    s->gen++;
    if (s->sleepers)
        pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

static const char *stop_message(int why)
{
    switch (why) {
    case SP_STOP_FAILFAST: /* when the failure is not known */
        return "not started: another task failed (fail-fast)";
    case SP_STOP_DEADLINE:
        return "not started: the deadline passed";
    case SP_STOP_CALLBACK:
        return "not started: the completion callback asked to stop";
    case SP_STOP_CALLER:
        return "not started: cancelled by the caller";
    default:
        return "not started";
    }
}

void sp_sched_cancel_rest(struct sp_sched *s)
{
    struct sp_run *run = s->run;
    size_t total = sp_results_total(run->res), left = total;
    for (int k = 0; k < SP_N_KINDS; k++)
        left -= run->res->counts[k] + run->caller.counts[k];
    if (!left)
        return;
    int why = atomic_load(run->stop);
    uint64_t at = atomic_load(&run->stop_ns);
    if (!why || !at) {
        uint64_t now = sp_run_now(run);
        at = now > run->t0 ? now - run->t0 : 0;
    }
    struct sp_outcome o = {
        .r = {.code = SP_ECANCELED,
              .msg = stop_message(why),
              .t_start = at,
              .t_end = at,
              .worker = SP_NO_WORKER},
        .how = {.kind = SP_KIND_CANCELLED, .signo = sp_stop_reason(why)},
    };
    uint32_t failed = atomic_load(&run->failfast_cause);
    if (why == SP_STOP_FAILFAST && failed != UINT32_MAX && !run->res->note) {
        /* Name the task whose failure stopped the run; the map keeps the
         * message, every entry points to it. */
        char msg[128], name[SP_NAME_LEN];
        snprintf(msg, sizeof msg, "not started: task %s failed (fail-fast)",
                 sp_entry_name(sp_entry_at(run->res, failed), name));
        size_t len = strlen(msg) + 1;
        if ((run->res->note = sp_malloc(len)) != NULL) {
            memcpy(run->res->note, msg, len);
            o.r.msg = run->res->note;
        }
    }
    if (why == SP_STOP_ERROR) {
        o.r.code = run->stop_code;
        o.r.msg = run->res->note ? run->res->note
                                 : "not started: no worker could run it";
    }
    for (size_t i = 0; i < total && left; i++) {
        if (sp_complete_has(run, i))
            continue;
        uint32_t cause;
        struct sp_try **tries = sp_retry_slot(run, i);
        if (tries && *tries) {
            sp_complete_pending(run, i, &run->caller); /* its last attempt */
        } else if (sp_graph_doomed(run, i, &cause)) {
            sp_complete_skip(run, i, cause, &run->caller);
        } else {
            struct sp_outcome c = o;
            sp_complete(run, i, &c, &run->caller);
        }
        left--;
    }
}
