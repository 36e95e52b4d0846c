/* SPDX-License-Identifier: MIT */
/* Running one task: the context API a callback sees, and how its return
 * value, sp_fail() call and cancellation turn into an entry. Shared by every
 * backend, so a task means the same thing wherever it runs. */
#include "sp-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void entry_set_msg(struct sp_run *run, sp_entry *e, char *owned,
                          const char *fallback)
{
    if (owned)
        sp_results_note_owned(run->res);
    if (e->msg_owned)
        free((void *)e->msg);
    e->msg = owned ? owned : fallback;
    e->msg_owned = owned != NULL;
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

SP_API int sp_set_result(sp_ctx *ctx, const void *data, size_t len)
{
    if (!ctx || (!data && len))
        return SP_EINVAL;
    if (len == SIZE_MAX)
        return SP_ENOMEM;
    unsigned char *copy = sp_malloc(len + 1);
    if (!copy) {
        ctx->oom = true;
        return SP_ENOMEM;
    }
    if (len)
        memcpy(copy, data, len);
    copy[len] = 0;
    free(ctx->e->data);
    sp_results_note_owned(ctx->run->res);
    ctx->e->data = copy;
    ctx->e->len = len;
    ctx->oom = false;
    return 0;
}

SP_API int sp_set_result_str(sp_ctx *ctx, const char *str)
{
    if (!str)
        return SP_EINVAL;
    return sp_set_result(ctx, str, strlen(str));
}

SP_API int sp_set_resultf(sp_ctx *ctx, const char *fmt, ...)
{
    if (!ctx || !fmt)
        return SP_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    char *s = format_message(fmt, ap);
    va_end(ap);
    if (!s) {
        ctx->oom = true;
        return SP_ENOMEM;
    }
    free(ctx->e->data);
    sp_results_note_owned(ctx->run->res);
    ctx->e->data = (unsigned char *)s;
    ctx->e->len = strlen(s);
    ctx->oom = false;
    return 0;
}

SP_API int sp_vfail(sp_ctx *ctx, int code, const char *fmt, va_list ap)
{
    if (code == 0)
        code = SP_ETASK;
    if (!ctx)
        return code;
    ctx->failed = true;
    ctx->fail_code = code;
    if (fmt) {
        char *msg = format_message(fmt, ap);
        entry_set_msg(ctx->run, ctx->e, msg,
                      msg ? NULL : "out of memory formatting the message");
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
    if (!why && (run->deadline || run->task_timeout)) {
        uint64_t now = sp_now();
        if (!sp_run_may_start(run, now))
            why = atomic_load_explicit(run->stop, memory_order_relaxed);
        else if (run->task_timeout && now - ctx->start >= run->task_timeout)
            why = SP_STOP_TIMEOUT;
    }
    if (why)
        ctx->saw_cancel = why;
    return why != 0;
}

SP_API const char *sp_ctx_key(const sp_ctx *ctx)
{
    return ctx ? ctx->run->tasks[ctx->index].key : "";
}

SP_API size_t sp_ctx_index(const sp_ctx *ctx)
{
    return ctx ? ctx->index : 0;
}

SP_API unsigned sp_ctx_worker(const sp_ctx *ctx)
{
    return ctx ? ctx->worker : 0;
}

static const char *stop_message(int why)
{
    switch (why) {
    case SP_STOP_FAILFAST:
        return "not started: another task failed (fail-fast)";
    case SP_STOP_DEADLINE:
        return "not started: the deadline passed";
    case SP_STOP_CALLBACK:
        return "not started: the completion callback asked to stop";
    default:
        return "not started";
    }
}

/* Turn what the callback did into the entry's kind, code and message. */
static void classify(struct sp_ctx *ctx, int rc)
{
    sp_entry *e = ctx->e;
    struct sp_run *run = ctx->run;
    int code = ctx->failed ? ctx->fail_code : rc;

    if (code == 0 && ctx->oom) {
        code = SP_ENOMEM;
        entry_set_msg(run, e, NULL, "could not store the task's result");
    }
    e->code = code;
    if (code == 0) {
        e->kind = SP_KIND_OK;
        entry_set_msg(run, e, NULL, NULL);
        return;
    }
    e->kind = SP_KIND_FAILED;
    if (!e->msg) {
        char buf[64];
        snprintf(buf, sizeof buf, "task returned %d", code);
        size_t len = strlen(buf) + 1;
        char *msg = sp_malloc(len);
        if (msg)
            memcpy(msg, buf, len);
        entry_set_msg(run, e, msg, "task failed");
    }
    if (ctx->saw_cancel)
        e->kind = ctx->saw_cancel == SP_STOP_DEADLINE ||
                          ctx->saw_cancel == SP_STOP_TIMEOUT
                      ? SP_KIND_TIMED_OUT
                      : SP_KIND_CANCELLED;
    if (run->opts.on_error == SP_FAIL_FAST)
        sp_run_stop(run, SP_STOP_FAILFAST);
}

uint64_t sp_task_exec(struct sp_run *run, size_t i, unsigned worker,
                      uint64_t start, sp_entry *e)
{
    const sp_task *t = &run->tasks[i];
    struct sp_ctx ctx = {
        .run = run, .e = e, .index = i, .worker = worker, .start = start};
    int rc = t->fn(&ctx, t->arg);
    uint64_t end = sp_now();
    classify(&ctx, rc);
    e->t_start = start - run->t0;
    e->t_end = end - run->t0;
    e->worker = worker;
    return end;
}

void sp_task_cancel(struct sp_run *run, size_t i, uint64_t now)
{
    sp_entry *e = &run->res->entries[i];
    int why = atomic_load_explicit(run->stop, memory_order_relaxed);
    e->kind = SP_KIND_CANCELLED;
    e->code = SP_ECANCELED;
    e->msg = stop_message(why);
    e->msg_owned = 0;
    e->t_start = e->t_end = now > run->t0 ? now - run->t0 : 0;
    e->worker = SP_NO_WORKER;
}
