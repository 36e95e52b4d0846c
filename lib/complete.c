/* SPDX-License-Identifier: MIT */
/* The completion path: the ONLY code that writes an entry's outcome. Every
 * backend reports "task i ended like this" to sp_complete() and nothing
 * else; here the outcome is moved into the map, counted, checked against
 * the fail-fast policy, and handed to the completion callback on the
 * caller's thread (libuv's uv__work_done plays the same part).
 *
 * The callback runs only on the thread that called simple_parallel(), one
 * entry at a time. Outcomes recorded on that thread (serial backend, the
 * process backend's parent, the cancellation sweep) call it directly;
 * outcomes recorded by worker threads are queued and delivered by
 * sp_complete_drain_until(), which the thread backend runs on the calling
 * thread.
 *
 * Retries are decided before anything is recorded (sp_retry(), retry.c):
 * an attempt that failed in a way its policy retries, while the run may
 * still start tasks, goes back to the scheduler (at once, or after its
 * delay), and its outcome is kept in the task's retry record instead.
 * Only a task's last attempt reaches the entry, the counts, fail-fast,
 * on_done and the tasks that depend on it; the entry's story (struct
 * sp_story) adds every earlier attempt.
 */
#include "sp-private.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void deliver(struct sp_run *run, const sp_entry *e)
{
    if (run->opts.on_done(e, run->opts.on_done_arg))
        sp_run_stop(run, SP_STOP_CALLBACK);
}

static void enqueue(struct sp_run *run, size_t i)
{
    struct sp_doneq *d = &run->done;
    pthread_mutex_lock(&d->lock);
    d->q[d->tail++] = (uint32_t)i;
    if (d->waiting) {
        d->waiting = false;
        pthread_cond_signal(&d->cond);
    }
    bool poke = d->poke_sched;
    pthread_mutex_unlock(&d->lock);
    if (poke) /* the calling thread may sleep in the scheduler instead */
        sp_sched_wake(&run->sched);
}

/* What an outcome sets off beyond the entry: the fail-fast stop, the
 * completion callback, and the tasks that wait for it. Out of line: most
 * outcomes need none of them. The callback comes first, so a dependent is
 * never reported before what it depends on. */
static SP_NOINLINE void after_complete(struct sp_run *run, size_t i,
                                       unsigned kind, struct sp_tally *t,
                                       unsigned old_flags)
{
    if (kind != SP_KIND_OK && sp_complete_stops(run, (int)kind)) {
        /* The first failure recorded names the cause (a worker process
         * may have stopped the run already, before its frame arrived). */
        uint32_t none = UINT32_MAX;
        atomic_compare_exchange_strong(&run->failfast_cause, &none,
                                       (uint32_t)i);
        sp_run_stop(run, SP_STOP_FAILFAST);
    }
    if (run->opts.on_done) {
        if (t->on_caller)
            deliver(run, sp_entry_at(run->res, i));
        else
            enqueue(run, i);
    }
    if (run->graph.succ_off || (old_flags & SP_EF_WAITED))
        sp_graph_release(run, i, kind, old_flags, t);
}

/* A buffer the task handed over with its own free function: the map
 * remembers the function (true). If even that small note cannot be
 * allocated, the buffer is freed now and the outcome becomes the library's
 * out-of-memory (false): never leaked, never freed the wrong way. */
static SP_NOINLINE bool keep_release(struct sp_run *run, size_t i,
                                     struct sp_outcome *o)
{
    struct sp_owned *n = sp_malloc(sizeof *n);
    if (!n) {
        sp_data_release(o->release, o->r.data, o->r.len);
        o->release = NULL;
        o->r.data = NULL;
        o->r.len = 0;
        o->r.code = SP_ENOMEM;
        o->how.kind = SP_KIND_FAILED;
        o->how.flags &= (uint8_t)~SP_EF_TASK_CODE;
        sp_outcome_set_msg(o, NULL,
                           "out of memory: could not keep the task's result");
        return false;
    }
    n->index = (uint32_t)i;
    n->release = o->release;
    n->next = atomic_load_explicit(&run->res->owned, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&run->res->owned, &n->next, n,
                                                  memory_order_release,
                                                  memory_order_relaxed))
        ;
    o->release = NULL;
    o->how.flags |= SP_EF_RELEASE;
    return true;
}

/* ---- recording ------------------------------------------------------------
 */

/* Move the outcome of task i's last attempt into its entry and set off
 * what it sets off. */
static void record(struct sp_run *run, size_t i, struct sp_outcome *o,
                   struct sp_tally *t)
{
    sp_entry *e = sp_entry_at(run->res, i);
    if (SP_UNLIKELY(o->release))
        keep_release(run, i, o);
    unsigned kind = o->how.kind;
    if (SP_UNLIKELY(kind == SP_KIND_CANCELLED) && !o->how.signo) {
        /* A task that saw the stop in another process: the run's reason. */
        o->how.signo = sp_stop_reason(atomic_load(run->stop));
    }
    e->r = o->r;
    if (SP_UNLIKELY(o->r.data ||
                    (o->how.flags & (SP_EF_MSG_OWNED | SP_EF_STORY)))) {
        sp_results_note_owned(run->res);
        if (!o->r.data)
            e->r.len = 0;
        o->r.data = NULL; /* the entry owns them now */
        o->r.msg = NULL;
    } else {
        e->r.len = 0;
    }
    struct sp_how how = o->how;
    how.flags |= SP_EF_DONE;
    o->how.flags = 0;
    /* One exchange publishes the outcome (release) and tells whether a
     * spawned task marked this one as waited for meanwhile (graph.c). An
     * index-keyed call has no spawned task, and in a run whose completions
     * and marks all happen on one thread nothing can come between: a
     * store does (an exchange waits for the entry's cache line). A store
     * on threads too, with an asymmetric fence (membarrier) on the
     * spawner's side, was tried: the wait moved to the scheduler's next
     * compare-and-swap, 1-2 % in all (docs/benchmarks.md, 2026-11-24). */
    unsigned old_flags = 0;
    if (run->res->by_index)
        atomic_store_explicit(&e->how, sp_how_pack(how), memory_order_release);
    else if (run->completes_alone) {
        old_flags =
            sp_how_unpack(atomic_load_explicit(&e->how, memory_order_relaxed))
                .flags;
        atomic_store_explicit(&e->how, sp_how_pack(how), memory_order_release);
    } else
        old_flags =
            sp_how_unpack(atomic_exchange_explicit(&e->how, sp_how_pack(how),
                                                   memory_order_acq_rel))
                .flags;
    t->counts[kind]++;
    if (SP_UNLIKELY(kind != SP_KIND_OK || run->opts.on_done ||
                    run->graph.succ_off || (old_flags & SP_EF_WAITED)))
        after_complete(run, i, kind, t, old_flags);
}

void sp_complete(struct sp_run *run, size_t i, struct sp_outcome *o,
                 struct sp_tally *t)
{
    unsigned kind = o->how.kind;
    if (SP_UNLIKELY(kind == SP_KIND_FAILED || kind == SP_KIND_CRASHED ||
                    kind == SP_KIND_TIMED_OUT) &&
        sp_retry(run, i, o, t))
        return;
    struct sp_try **slot = i < run->n
                               ? (run->tries ? &run->tries[i] : NULL)
                               : &sp_xtask_at(run->res, i - run->n)->tries;
    if (SP_UNLIKELY(slot && *slot))
        sp_retry_story(run, i, slot, o, false);
    record(run, i, o, t);
}

void sp_complete_pending(struct sp_run *run, size_t i, struct sp_tally *t)
{
    struct sp_try **slot = sp_retry_slot(run, i);
    struct sp_try *rec = *slot;
    struct sp_outcome o = rec->last;
    rec->last = (struct sp_outcome){0};
    sp_retry_story(run, i, slot, &o, true);
    record(run, i, &o, t);
}

/* s, cut in the middle to at most max bytes (the end names the root of a
 * chain of skipped tasks, so it is kept). */
static void elide(char *out, size_t outlen, const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len <= max) {
        snprintf(out, outlen, "%s", s);
        return;
    }
    size_t head = max / 4, tail = max - head - 5;
    snprintf(out, outlen, "%.*s ... %s", (int)head, s, s + len - tail);
}

void sp_complete_skip(struct sp_run *run, size_t i, uint32_t cause,
                      struct sp_tally *t)
{
    const sp_entry *d = sp_entry_at(run->res, cause);
    struct sp_how dh = sp_entry_how(d);
    char why[320], msg[420];
    elide(why, sizeof why, d->r.msg ? d->r.msg : "", 300);
    snprintf(msg, sizeof msg, "dependency '%.64s' %s%s%s", sp_entry_key(d),
             sp_kind_name((sp_kind)dh.kind), why[0] ? ": " : "", why);
    uint64_t now = sp_run_now(run);
    uint64_t at = now > run->t0 ? now - run->t0 : 0;
    struct sp_outcome o = {
        .r = {.code = SP_ESKIPPED,
              .t_start = at,
              .t_end = at,
              .worker = SP_NO_WORKER},
        .how = {.kind = SP_KIND_SKIPPED, .signo = SP_CANCEL_DEPENDENCY},
    };
    size_t len = strlen(msg) + 1;
    char *m = sp_malloc(len);
    if (m)
        memcpy(m, msg, len);
    sp_outcome_set_msg(&o, m, "not started: a dependency did not end OK");
    sp_complete(run, i, &o, t);
}

int sp_complete_reserve(struct sp_run *run, size_t total)
{
    struct sp_doneq *d = &run->done;
    if (!d->ready)
        return 0;
    int err = 0;
    pthread_mutex_lock(&d->lock);
    if (total > d->cap) {
        size_t cap = d->cap ? d->cap : 64;
        while (cap < total)
            cap *= 2;
        uint32_t *q = sp_realloc(d->q, cap * sizeof *q);
        if (q) {
            d->q = q;
            d->cap = cap;
        } else {
            err = SP_ENOMEM;
        }
    }
    pthread_mutex_unlock(&d->lock);
    return err;
}

void sp_complete_init(struct sp_run *run)
{
    memset(&run->done, 0, sizeof run->done);
    memset(&run->caller, 0, sizeof run->caller);
    run->caller.on_caller = true;
}

int sp_complete_queue(struct sp_run *run)
{
    struct sp_doneq *d = &run->done;
    if (run->opts.on_done) { /* room for every task's completion */
        d->cap = run->n ? run->n : 1;
        d->q = sp_malloc(d->cap * sizeof *d->q);
        if (!d->q)
            return sp_set_error(SP_ENOMEM,
                                "cannot allocate the completion queue");
    }
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc == 0) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        if ((rc = pthread_mutex_init(&d->lock, NULL)) == 0 &&
            (rc = pthread_cond_init(&d->cond, &ca)) != 0)
            pthread_mutex_destroy(&d->lock);
        pthread_condattr_destroy(&ca);
    }
    if (rc) {
        free(d->q);
        d->q = NULL;
        return sp_set_error_errno(SP_ETHREAD, rc,
                                  "cannot initialise the completion queue");
    }
    d->ready = true;
    d->producers = true;
    return 0;
}

void sp_complete_free(struct sp_run *run)
{
    struct sp_doneq *d = &run->done;
    if (d->ready) {
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->lock);
        d->ready = false;
    }
    free(d->q);
    d->q = NULL;
}

/* Deliver what is queued, in batches; with `wait`, sleep until the
 * producers are done or `until` (absolute ns, 0 = never) passes. true when
 * the producers are done and nothing is left. */
static bool drain(struct sp_run *run, bool wait, uint64_t until)
{
    struct sp_doneq *d = &run->done;
    if (!d->ready)
        return true;
    uint32_t batch[64];
    struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
                          .tv_nsec = (long)(until % 1000000000u)};
    for (;;) {
        pthread_mutex_lock(&d->lock);
        bool late = false;
        while (wait && !late && !d->kick && d->head == d->tail &&
               d->producers) {
            d->waiting = true;
            if (until)
                late = pthread_cond_timedwait(&d->cond, &d->lock, &ts) ==
                       ETIMEDOUT;
            else
                pthread_cond_wait(&d->cond, &d->lock);
        }
        d->waiting = false;
        bool kicked = d->kick;
        d->kick = false;
        size_t k = 0;
        while (d->head < d->tail && k < sizeof batch / sizeof batch[0])
            batch[k++] = d->q[d->head++];
        bool done = !d->producers && d->head == d->tail;
        pthread_mutex_unlock(&d->lock);
        for (size_t j = 0; j < k; j++)
            deliver(run, sp_entry_at(run->res, batch[j]));
        if (done)
            return true;
        if (kicked || (!k && (late || !wait)))
            return false; /* kicked: the caller looks at the run again */
    }
}

bool sp_complete_drain_until(struct sp_run *run, uint64_t until)
{
    return drain(run, true, until);
}

void sp_complete_deliver_queued(struct sp_run *run)
{
    if (run->opts.on_done)
        drain(run, false, 0);
}

void sp_complete_kick(struct sp_run *run)
{
    struct sp_doneq *d = &run->done;
    if (!d->ready)
        return;
    pthread_mutex_lock(&d->lock);
    d->kick = true;
    if (d->waiting) {
        d->waiting = false;
        pthread_cond_signal(&d->cond);
    }
    pthread_mutex_unlock(&d->lock);
}

void sp_complete_producers_done(struct sp_run *run)
{
    struct sp_doneq *d = &run->done;
    if (!d->ready)
        return;
    pthread_mutex_lock(&d->lock);
    d->producers = false;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

void sp_tally_merge(struct sp_run *run, const struct sp_tally *t)
{
    for (int k = 0; k < SP_N_KINDS; k++)
        run->res->counts[k] += t->counts[k];
}

void sp_run_stop(struct sp_run *run, int why)
{
    int none = SP_STOP_NONE;
    if (!atomic_compare_exchange_strong(run->stop, &none, why))
        return;
    uint64_t now = sp_run_now(run);
    atomic_store(&run->stop_ns, now > run->t0 ? now - run->t0 : 1);
    if (run->ops && run->ops->stop)
        run->ops->stop(run);
}

void sp_run_fail(struct sp_run *run, int code, const char *msg)
{
    if (atomic_load(run->stop))
        return; /* an earlier reason stands */
    run->stop_code = code;
    if (!run->res->note) {
        size_t len = strlen(msg) + sizeof "not started: ";
        run->res->note = sp_malloc(len);
        if (run->res->note)
            snprintf(run->res->note, len, "not started: %s", msg);
    }
    sp_run_stop(run, SP_STOP_ERROR);
}
