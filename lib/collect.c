/* SPDX-License-Identifier: MIT */
/* A run driven by its caller (lib/sp-collect.h): for companion libraries
 * whose workers are not this process's threads or children, such as
 * libsimplepar-mpi's rank 0. The run is the one simple_parallel() makes —
 * validation, the scheduler, the completion path, the map — with a backend
 * row whose operations do nothing: the caller hands tasks out with
 * sp__run_next() and outcomes in with sp__run_record(), on one thread. */
#include "sp-collect.h"
#include "sp-private.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct sp__run {
    struct sp_run run; /* first: aligned for its cache-line members */
    size_t out;        /* handed out, not yet recorded */
};

static unsigned collect_workers(const sp_options *opts, size_t n)
{
    (void)opts;
    (void)n;
    return 0;
}

static int collect_start(struct sp_run *run)
{
    (void)run;
    return 0;
}

static void collect_nothing(struct sp_run *run)
{
    (void)run;
}

/* The caller's own row: its workers are elsewhere. */
static const struct sp_backend_ops collect_ops = {
    .name = "caller-driven",
    .workers = collect_workers,
    .start = collect_start,
    .wait = collect_nothing,
    .finish = collect_nothing,
    .stop = NULL,
};

SP_PRIVATE_API int sp__run_begin(const sp_task *tasks, size_t n,
                                 const sp_options *opts, unsigned workers,
                                 sp__run **out)
{
    uint64_t t0 = sp_now();
    SP_CHECK(out, SP_EINVAL, "the 'out' argument is NULL");
    *out = NULL;
    SP_CHECK(!opts || !opts->index_keys, SP_ENOTSUP,
             "sp_options.index_keys: this call needs a key per task; "
             "index-keyed tables run through simple_parallel() and "
             "sp_pool_run()");
    sp__run *r = sp_aligned_alloc(64, sizeof *r);
    SP_CHECK(r, SP_ENOMEM, "cannot allocate the state of a run");
    int err = sp_run_init(&r->run, tasks, n, opts, t0);
    if (err) {
        free(r);
        return err;
    }
    r->out = 0;
    r->run.ops = &collect_ops;
    r->run.workers = r->run.workers_used = workers;
    err = sp_sched_init(&r->run.sched, &r->run, 0);
    if (err) {
        sp_graph_free(&r->run.graph);
        free(r->run.tries);
        sp_results_free(r->run.res);
        free(r);
        return err;
    }
    sp_complete_init(&r->run);
    *out = r;
    return 0;
}

SP_PRIVATE_API int sp__run_next(sp__run *r, size_t *i)
{
    uint64_t now = sp_run_now(&r->run);
    if (!sp_run_may_start(&r->run, now))
        return -1;
    struct sp_sched *s = &r->run.sched;
    sp_sched_tick(s, now); /* retries whose delay passed */
    /* The static list, unless the heap (a released dependent, a retry)
     * holds a lower index: table order, as the workers of a local run. */
    uint32_t hmin = atomic_load_explicit(&s->heap_min, memory_order_relaxed);
    bool got = hmin != UINT32_MAX && hmin < sp_sched_peek(s) &&
               sp_sched_take(s, i); /* (skips doomed tasks: may be false) */
    if (got || sp_sched_claim_one(s, i) || sp_sched_take(s, i)) {
        sp_retry_handout(&r->run, *i);
        r->out++;
        return 1;
    }
    return r->out || sp_sched_later_pending(s) ? 0 : -1;
}

SP_PRIVATE_API unsigned sp__run_attempt(sp__run *r, size_t i,
                                        unsigned *retry_on)
{
    unsigned attempt = sp_retry_attempt(&r->run, i);
    if (retry_on) {
        const sp_task *t = sp_graph_row(&r->run, i);
        *retry_on = 0;
        for (int kind = SP_KIND_FAILED; kind <= SP_KIND_TIMED_OUT; kind++)
            if (sp_retry_wanted(&r->run, t, attempt, kind))
                *retry_on |= 1u << kind;
    }
    return attempt;
}

SP_PRIVATE_API double sp__run_due(sp__run *r)
{
    struct sp_sched *s = &r->run.sched;
    if (!s->run || atomic_load(r->run.stop) != SP_STOP_NONE)
        return 0;
    uint64_t at = atomic_load_explicit(&s->later_min, memory_order_relaxed);
    if (at == UINT64_MAX)
        return 0;
    return at > r->run.t0 ? (double)(at - r->run.t0) / 1e9 : 1e-9;
}

/* An outcome as the caller gave it, in the form sp_complete() takes. */
static void to_outcome(const sp__outcome *o, struct sp_outcome *c)
{
    double start = o->start > 0 ? o->start : 0;
    double end = o->end > start ? o->end : start;
    *c = (struct sp_outcome){
        .r = {.code = o->code,
              /* Rounded: seconds read back from an entry give its ns. */
              .t_start = (uint64_t)(start * 1e9 + 0.5),
              .t_end = (uint64_t)(end * 1e9 + 0.5),
              .worker = o->worker},
        .how = {.kind = (uint8_t)o->kind,
                .flags = o->task_code ? SP_EF_TASK_CODE : 0,
                .signo = (uint8_t)(o->kind == SP_KIND_CRASHED && o->signo > 0
                                       ? o->signo
                                       : 0)},
    };
    if (o->kind == SP_KIND_CRASHED && o->exit_status >= 0 && !o->signo) {
        c->how.signo = SP_EXITED;
        c->how.exit_status = (uint8_t)o->exit_status;
    }
    if (o->data) {
        if (o->data_owned) {
            c->r.data = o->data;
            ((unsigned char *)o->data)[o->len] = 0;
        } else if ((c->r.data = sp_malloc(o->len + 1)) != NULL) {
            memcpy(c->r.data, o->data, o->len);
            c->r.data[o->len] = 0;
        } else { /* rank 0 ran out of memory for this result */
            c->r.code = SP_ENOMEM;
            c->how.kind = SP_KIND_FAILED;
            c->how.flags = 0;
        }
        c->r.len = c->r.data ? o->len : 0;
    }
    if (c->how.kind == SP_KIND_FAILED && c->r.code == SP_ENOMEM && !c->r.data &&
        o->data) {
        sp_outcome_set_msg(
            c, NULL, "the caller ran out of memory receiving this result");
    } else if (o->msg) {
        size_t len = strlen(o->msg) + 1;
        char *m = sp_malloc(len);
        if (m)
            memcpy(m, o->msg, len);
        sp_outcome_set_msg(c, m, "out of memory for the message");
    }
}

SP_PRIVATE_API int sp__run_record(sp__run *r, size_t i, const sp__outcome *o)
{
    unsigned attempt = sp_retry_attempt(&r->run, i);
    if (o->attempt && o->attempt != attempt) {
        if (o->data && o->data_owned)
            free(o->data); /* the run takes owned bytes either way */
        return -1;
    }
    if (r->out)
        r->out--;
    if (attempt > 1 && o->kind == SP_KIND_CANCELLED &&
        o->worker == SP_NO_WORKER) {
        /* A retry that never started: the task keeps its last attempt, as
         * when a stop comes while it waits. */
        if (o->data && o->data_owned)
            free(o->data);
        sp_complete_pending(&r->run, i, &r->run.caller);
        return 0;
    }
    struct sp_outcome c;
    to_outcome(o, &c);
    sp_complete(&r->run, i, &c, &r->run.caller);
    return 0;
}

SP_PRIVATE_API void sp__run_put(sp__run *r, size_t i, const sp__outcome *o)
{
    struct sp_outcome c;
    to_outcome(o, &c);
    unsigned n = o->attempt > 1 && o->past ? o->npast : 0;
    if (n > o->attempt - 1)
        n = o->attempt - 1;
    struct sp_tried *past = n ? sp_calloc(n, sizeof *past) : NULL;
    if (!past)
        n = 0;
    for (unsigned k = 0; k < n; k++) { /* all but the bytes and message */
        sp__outcome p = o->past[k];
        p.data = NULL;
        p.msg = NULL;
        struct sp_outcome f;
        to_outcome(&p, &f);
        past[k].r = f.r;
        past[k].r.msg = o->past[k].msg; /* borrowed: the story copies it */
        past[k].how = f.how;
    }
    if (o->attempt > 1)
        sp_retry_set_story(&c, sp_entry_at(r->run.res, i), o->attempt, past, n);
    free(past);
    sp_complete(&r->run, i, &c, &r->run.caller);
}

SP_PRIVATE_API const void *sp__run_dep_at(const sp__run *r, size_t i, size_t k,
                                          size_t *len)
{
    return sp_graph_dep_at(&r->run, i, k, len);
}

SP_PRIVATE_API int sp__parallel(const sp_task *tasks, size_t n,
                                const sp_options *opts, const sp__local *local,
                                sp_results **out)
{
    SP_CHECK(local && local->dep && local->spawn, SP_EINVAL,
             "sp__parallel: the hooks are missing");
    SP_CHECK(!opts || !opts->index_keys, SP_ENOTSUP,
             "sp_options.index_keys: this call needs a key per task; "
             "index-keyed tables run through simple_parallel() and "
             "sp_pool_run()");
    return sp_call_local(tasks, n, opts, out, local);
}

SP_PRIVATE_API double sp__run_now(const sp__run *r)
{
    uint64_t now = sp_run_now(&r->run);
    return now > r->run.t0 ? (double)(now - r->run.t0) / 1e9 : 0.0;
}

SP_PRIVATE_API int sp__run_stopped(const sp__run *r)
{
    return atomic_load(r->run.stop) != SP_STOP_NONE ||
           (r->run.deadline && sp_run_now(&r->run) >= r->run.deadline);
}

SP_PRIVATE_API double sp__run_deadline(const sp__run *r)
{
    return r->run.deadline ? (double)(r->run.deadline - r->run.t0) / 1e9 : 0;
}

SP_PRIVATE_API void sp__run_fail(sp__run *r, int code, const char *msg)
{
    sp_run_fail(&r->run, code, msg);
}

SP_PRIVATE_API sp_results *sp__run_end(sp__run *r)
{
    sp_results *res = sp_run_close(&r->run);
    free(r);
    return res;
}

SP_PRIVATE_API int sp__set_error(int code, const char *fmt, ...)
{
    char msg[448];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sp_set_error(code, "%s", msg);
}
