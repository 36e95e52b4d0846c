/* SPDX-License-Identifier: MIT */
/* Running one task: the context API a callback sees, and how its return
 * value, sp_fail() call and cancellation turn into an outcome (which
 * complete.c then records). Shared by every backend, so a task means the
 * same thing wherever it runs. */
#include "sp-collect.h"
#include "sp-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sp_outcome_set_msg(struct sp_outcome *o, char *owned, const char *fallback)
{
    if (o->how.flags & SP_EF_MSG_OWNED)
        free((void *)o->r.msg);
    o->r.msg = owned ? owned : fallback;
    o->how.flags = (uint8_t)(owned ? o->how.flags | SP_EF_MSG_OWNED
                                   : o->how.flags & ~SP_EF_MSG_OWNED);
}

/* vasprintf in C11: measure, allocate, format. NULL on failure. */
static char *format_message(const char *fmt, va_list ap) SP_PRINTF(1, 0);
static char *format_message(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int len = vsnprintf(small, sizeof small, fmt, ap);
    char *out = NULL;
    if (len >= 0) {
        out = sp_malloc((size_t)len + 1);
        if (out) {
            if ((size_t)len < sizeof small)
                memcpy(out, small, (size_t)len + 1);
            else
                vsnprintf(out, (size_t)len + 1, fmt, ap2);
        }
    }
    va_end(ap2);
    return out;
}

/* Replace the outcome's result, freeing the one it had its own way. */
static void out_set_data(struct sp_outcome *o, unsigned char *data, size_t len,
                         void (*release)(void *))
{
    if (o->r.data)
        sp_data_release(o->release, o->r.data, o->r.len);
    o->r.data = data;
    o->r.len = len;
    o->release = release == free ? NULL : release;
}

/* Messages are cut to SP_MAX_MESSAGE bytes, ending in "...", at a UTF-8
 * character boundary: the same limit on every backend. */
static char *cut_message(char *msg)
{
    if (!msg)
        return NULL;
    size_t len = strlen(msg);
    if (len <= SP_MAX_MESSAGE)
        return msg;
    size_t cut = SP_MAX_MESSAGE - 3;
    while (cut && ((unsigned char)msg[cut] & 0xc0) == 0x80)
        cut--; /* msg[cut] starts a character */
    memcpy(msg + cut, "...", 4);
    char *smaller = sp_realloc(msg, cut + 4);
    return smaller ? smaller : msg;
}

SP_API int sp_set_result(sp_ctx *ctx, const void *data, size_t len)
{
    if (!ctx)
        return sp_set_error(SP_EINVAL, "sp_set_result: the context is NULL");
    if (!data && len)
        return sp_set_error(SP_EINVAL,
                            "sp_set_result: data is NULL but len is %zu", len);
    const struct sp_remote *remote = ctx->run->remote;
    void *kept;
    void (*release)(void *);
    if (SP_UNLIKELY(remote && remote->keep) &&
        remote->keep(data, len, &kept, &release) == 0) {
        out_set_data(ctx->out, kept, len, release);
        ctx->oom = false;
        return 0;
    }
    unsigned char *copy = len < SIZE_MAX ? sp_malloc(len + 1) : NULL;
    if (!copy) {
        ctx->oom = true;
        return sp_set_error(
            SP_ENOMEM, "sp_set_result: cannot copy a result of %zu bytes", len);
    }
    if (len)
        memcpy(copy, data, len);
    copy[len] = 0;
    out_set_data(ctx->out, copy, len, NULL);
    ctx->oom = false;
    return 0;
}

SP_API int sp_set_result_owned(sp_ctx *ctx, void *data, size_t len,
                               void (*release)(void *data))
{
    if (!ctx)
        return sp_set_error(SP_EINVAL,
                            "sp_set_result_owned: the context is NULL");
    if (!data)
        return sp_set_error(SP_EINVAL, "sp_set_result_owned: data is NULL");
    if (len == SIZE_MAX)
        return sp_set_error(SP_EINVAL, "sp_set_result_owned: len is SIZE_MAX");
    ((unsigned char *)data)[len] = 0; /* the buffer holds len + 1 bytes */
    out_set_data(ctx->out, data, len, release);
    ctx->oom = false;
    return 0;
}

SP_API int sp_set_result_str(sp_ctx *ctx, const char *str)
{
    if (!str)
        return sp_set_error(SP_EINVAL, "sp_set_result_str: the string is NULL");
    return sp_set_result(ctx, str, strlen(str));
}

SP_API int sp_set_resultf(sp_ctx *ctx, const char *fmt, ...)
{
    if (!ctx || !fmt)
        return sp_set_error(SP_EINVAL, "sp_set_resultf: the %s is NULL",
                            ctx ? "format" : "context");
    va_list ap;
    va_start(ap, fmt);
    char *s = format_message(fmt, ap);
    va_end(ap);
    if (!s) {
        ctx->oom = true;
        return sp_set_error(SP_ENOMEM,
                            "sp_set_resultf: cannot format the result");
    }
    out_set_data(ctx->out, (unsigned char *)s, strlen(s), NULL);
    ctx->oom = false;
    return 0;
}

SP_API int sp_vfail(sp_ctx *ctx, int code, const char *fmt, va_list ap)
{
    bool own = code != 0;
    if (code == 0)
        code = SP_ETASK;
    if (!ctx)
        return code;
    ctx->failed = true;
    ctx->fail_own = own;
    ctx->fail_code = code;
    if (fmt) {
        char *msg = cut_message(format_message(fmt, ap));
        sp_outcome_set_msg(ctx->out, msg,
                           "out of memory formatting the message");
    }
    return code;
}

SP_API int sp_fail(sp_ctx *ctx, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    code = sp_vfail(ctx, code, fmt, ap);
    va_end(ap);
    return code;
}

SP_API int sp_cancelled(sp_ctx *ctx)
{
    if (!ctx)
        return 0;
    struct sp_run *run = ctx->run;
    int why = atomic_load_explicit(run->stop, memory_order_relaxed);
    if (!why && run->watched && sp_run_cancel_fired(run))
        why = atomic_load_explicit(run->stop, memory_order_relaxed);
    if (!why && (run->deadline || ctx->limit)) {
        uint64_t now = sp_run_now(run);
        if (!sp_run_may_start(run, now))
            why = atomic_load_explicit(run->stop, memory_order_relaxed);
        else if (ctx->limit && now - ctx->start >= ctx->limit)
            why = SP_STOP_TIMEOUT;
    }
    if (why)
        ctx->saw_cancel = why;
    return why != 0;
}

SP_API const char *sp_ctx_key(const sp_ctx *ctx)
{
    return ctx && ctx->task->key ? ctx->task->key : "";
}

SP_API const void *sp_ctx_data(const sp_ctx *ctx, size_t *len)
{
    size_t n = ctx && ctx->task->data ? ctx->task->len : 0;
    if (len)
        *len = n;
    return n ? ctx->task->data : NULL;
}

SP_API const void *sp_dep_result(sp_ctx *ctx, const char *key, size_t *len)
{
    if (!ctx) {
        if (len)
            *len = 0;
        sp_set_error(SP_EINVAL, "sp_dep_result: the context is NULL");
        return NULL;
    }
    if (ctx->run->remote)
        return ctx->run->remote->dep(ctx, key, len);
    return sp_graph_dep(ctx->run, ctx->index, key, len);
}

SP_API int sp_spawn(sp_ctx *ctx, const sp_task *task)
{
    if (!ctx)
        return sp_set_error(SP_EINVAL, "sp_spawn: the context is NULL");
    if (ctx->run->opts.index_keys)
        return sp_set_error(SP_ENOTSUP,
                            "sp_spawn: an index-keyed call "
                            "(sp_options.index_keys) takes no spawned tasks");
    if (ctx->run->remote)
        return ctx->run->remote->spawn(ctx, task);
    return sp_graph_spawn(ctx->run, ctx->index, task);
}

SP_API size_t sp_ctx_index(const sp_ctx *ctx)
{
    return ctx ? ctx->index : 0;
}

SP_API unsigned sp_ctx_worker(const sp_ctx *ctx)
{
    return ctx ? ctx->worker : 0;
}

SP_API unsigned sp_ctx_attempt(const sp_ctx *ctx)
{
    return ctx ? ctx->attempt : 0;
}

_Thread_local void *sp_worker_state;

SP_API void *sp_ctx_worker_state(const sp_ctx *ctx)
{
    return ctx ? sp_worker_state : NULL;
}

/* A task that returned 0 after its time limit: TIMED_OUT, its result
 * kept. A thread cannot be stopped, so this is how the limit shows on the
 * thread and serial backends (and on the process backend when the task
 * returned before the parent's kill). */
static SP_NOINLINE void returned_late(struct sp_ctx *ctx, uint64_t ran)
{
    struct sp_outcome *o = ctx->out;
    char buf[160];
    snprintf(buf, sizeof buf,
             "returned after %.3f s, past its time limit of %g s; its result "
             "is kept",
             (double)ran / 1e9, (double)ctx->limit / 1e9);
    size_t len = strlen(buf) + 1;
    char *msg = sp_malloc(len);
    if (msg)
        memcpy(msg, buf, len);
    sp_outcome_set_msg(o, msg, "returned after its time limit");
    o->r.code = SP_ETIMEDOUT;
    o->how.kind = SP_KIND_TIMED_OUT;
}

/* Turn what the callback did into the outcome's kind, code and message.
 * ran: how long the callback ran, in ns. */
static void classify(struct sp_ctx *ctx, int rc, uint64_t ran)
{
    struct sp_outcome *o = ctx->out;
    bool late = ctx->limit && ran >= ctx->limit;
    if (rc == 0 && !ctx->failed && !ctx->oom) {
        if (SP_UNLIKELY(late))
            returned_late(ctx, ran);
        return; /* OK: the zeroed outcome says so already */
    }
    int code = ctx->failed ? ctx->fail_code : rc;
    bool own = ctx->failed ? ctx->fail_own : rc != 0;

    /* A result that could not be stored: the library's out-of-memory, said
     * without allocating (memory is what ran out), naming the likely cause
     * when the run knows one. The task may have passed the code on. */
    if (ctx->oom && (code == 0 || (code == SP_ENOMEM && !ctx->failed))) {
        code = SP_ENOMEM;
        own = false;
        const char *why =
            atomic_load_explicit(&ctx->run->oom_note, memory_order_acquire);
        sp_outcome_set_msg(o, NULL,
                           why ? why
                               : "out of memory: the task's result could not "
                                 "be stored");
    }
    if (own)
        o->how.flags |= SP_EF_TASK_CODE;
    o->r.code = code;
    o->how.kind = SP_KIND_FAILED;
    if (!o->r.msg) {
        char buf[64];
        snprintf(buf, sizeof buf, "task returned %d", code);
        size_t len = strlen(buf) + 1;
        char *msg = sp_malloc(len);
        if (msg)
            memcpy(msg, buf, len);
        sp_outcome_set_msg(o, msg,
                           "task failed (out of memory for its message)");
    }
    if (late)
        o->how.kind = SP_KIND_TIMED_OUT;
    else if (ctx->saw_cancel == SP_STOP_DEADLINE ||
             ctx->saw_cancel == SP_STOP_TIMEOUT)
        o->how.kind = SP_KIND_TIMED_OUT;
    else if (ctx->saw_cancel) {
        o->how.kind = SP_KIND_CANCELLED;
        o->how.signo = sp_stop_reason(ctx->saw_cancel);
    }
}

uint64_t sp_task_exec_row(struct sp_run *run, size_t i, const sp_task *t,
                          unsigned attempt, unsigned worker, uint64_t start,
                          struct sp_outcome *out)
{
    *out = (struct sp_outcome){.r.worker = worker};
    /* A companion's local call: its run decides attempts (sp__local). */
    if (SP_UNLIKELY(run->local != NULL) && run->local->attempt && i < run->n)
        attempt += run->local->attempt[i] - 1;
    struct sp_ctx ctx = {.run = run,
                         .out = out,
                         .task = t,
                         .index = i,
                         .worker = worker,
                         .attempt = attempt,
                         .limit = sp_task_limit(run, t),
                         .start = start};
    int rc = t->fn(&ctx, t->arg);
    uint64_t end = sp_run_now(run);
    classify(&ctx, rc, end - start);
    out->r.t_start = start - run->t0;
    out->r.t_end = end - run->t0;
    return end;
}

uint64_t sp_task_exec(struct sp_run *run, size_t i, unsigned worker,
                      uint64_t start, struct sp_outcome *out)
{
    const sp_task *t = i < run->n ? &run->tasks[i] : sp_graph_row(run, i);
    unsigned attempt =
        SP_UNLIKELY(run->tries || i >= run->n) ? sp_retry_attempt(run, i) : 1;
    return sp_task_exec_row(run, i, t, attempt, worker, start, out);
}

void sp_outcome_free(struct sp_outcome *o)
{
    if (!o->r.data && !(o->how.flags & SP_EF_MSG_OWNED))
        return;
    out_set_data(o, NULL, 0, NULL);
    sp_outcome_set_msg(o, NULL, NULL);
}
