/* Dependencies: a task starts once the tasks in its `after` list ended OK
 * and reads their results; a failure skips what depends on it. */
#include <simplepar.h>
#include <stdio.h>
#include <stdlib.h>

static int config(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_set_result_str(ctx, "21");
}

static int twice(sp_ctx *ctx, void *arg) /* after "config" */
{
    (void)arg;
    long v = atol(sp_dep_result(ctx, "config", NULL));
    return sp_set_resultf(ctx, "%ld", 2 * v);
}

static int lookup(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_fail(ctx, 1, "no such host");
}

static int report(sp_ctx *ctx, void *arg) /* after "twice" and "lookup" */
{
    (void)arg;
    return sp_set_result_str(ctx, "never runs");
}

int main(void)
{
    static const char *const on_config[] = {"config", NULL};
    static const char *const on_both[] = {"twice", "lookup", NULL};
    sp_task tasks[] = {
        {.key = "report", .fn = report, .after = on_both},
        {.key = "twice", .fn = twice, .after = on_config},
        {.key = "config", .fn = config},
        {.key = "lookup", .fn = lookup},
    };
    sp_results *res;
    if (simple_parallel(tasks, 4, NULL, &res) != 0) {
        fprintf(stderr, "simple_parallel: %s\n", sp_last_error());
        return 1;
    }
    for (size_t i = 0; i < sp_results_count(res); i++) {
        const sp_entry *e = sp_results_at(res, i);
        printf("%-7s %-8s %s\n", sp_entry_key(e),
               sp_kind_name(sp_entry_kind(e)),
               sp_entry_kind(e) == SP_KIND_OK ? sp_entry_str(e)
                                              : sp_entry_message(e));
    }
    sp_results_free(res);
    return 0;
}
