/* Retries: a flaky call tried again until it works, a broken one given
 * up on after its retries, a row that must not be retried, and the task
 * that depends on the broken one, skipped with the reason. */
#include <simplepar.h>
#include <stdio.h>

/* Fails on its first two attempts, like a flaky endpoint. */
static int flaky(sp_ctx *ctx, void *arg)
{
    (void)arg;
    unsigned a = sp_ctx_attempt(ctx);
    if (a < 3)
        return sp_fail(ctx, 503, "attempt %u: service unavailable", a);
    return sp_set_resultf(ctx, "quote after %u attempts", a);
}

static int broken(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_fail(ctx, 404, "attempt %u: no such ticker", sp_ctx_attempt(ctx));
}

static int report(sp_ctx *ctx, void *arg) /* after "broken" */
{
    (void)arg;
    return sp_set_result_str(ctx, "never runs");
}

int main(void)
{
    static const char *const on_broken[] = {"broken", NULL};
    /* A payment must not happen twice: this row is never tried again. */
    static const sp_task_policy once = {.retries = SP_NO_RETRIES};
    sp_task tasks[] = {
        {.key = "flaky", .fn = flaky},
        {.key = "broken", .fn = broken},
        {.key = "payment", .fn = broken, .policy = &once},
        {.key = "report", .fn = report, .after = on_broken},
    };
    /* Two more attempts for every task, 10 ms apart, then 20 ms. */
    sp_options opts = {.retries = 2,
                       .retry_delay = 0.01,
                       .retry_backoff = SP_BACKOFF_DOUBLING};
    sp_results *res;
    if (simple_parallel(tasks, 4, &opts, &res) != 0) {
        fprintf(stderr, "simple_parallel: %s\n", sp_last_error());
        return 1;
    }
    for (size_t i = 0; i < sp_results_count(res); i++) {
        const sp_entry *e = sp_results_at(res, i);
        printf("%-8s %-8s %u  ", sp_entry_key(e),
               sp_kind_name(sp_entry_kind(e)), sp_entry_attempts(e));
        if (sp_entry_kind(e) == SP_KIND_OK)
            printf("%s\n", sp_entry_str(e));
        else if (sp_entry_cancel_reason(e) != SP_CANCEL_NONE)
            printf("[%s] %s\n",
                   sp_cancel_reason_name(sp_entry_cancel_reason(e)),
                   sp_entry_message(e));
        else
            printf("%s\n", sp_entry_message(e));
        /* The attempts before the last, each an entry of its own. */
        for (unsigned n = 1; n < sp_entry_attempts(e); n++) {
            const sp_entry *a = sp_entry_attempt(e, n);
            printf("%21s%s %s\n", "", sp_kind_name(sp_entry_kind(a)),
                   sp_entry_message(a));
        }
    }
    sp_results_free(res);
    return 0;
}
