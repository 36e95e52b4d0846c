/* SPDX-License-Identifier: MIT */
/* The README's example: three named tasks, one of which fails, on threads.
 * Build: cc quickstart.c $(pkg-config --cflags --libs simplepar) */
#include <simplepar.h>
#include <stdio.h>

static int square(sp_ctx *ctx, void *arg)
{
    int x = *(int *)arg;
    if (x < 0)
        return sp_fail(ctx, 1, "negative input %d", x);
    return sp_set_resultf(ctx, "%d", x * x);
}

int main(void)
{
    int a = 3, b = 4, c = -1;
    sp_task tasks[] = {
        {.key = "three", .fn = square, .arg = &a},
        {.key = "four", .fn = square, .arg = &b},
        {.key = "minus-one", .fn = square, .arg = &c},
    };
    sp_options opts = {.backend = SP_BACKEND_THREAD}; /* or _SERIAL */
    sp_results *res;
    if (simple_parallel(tasks, 3, &opts, &res) != 0) {
        fprintf(stderr, "simple_parallel: %s\n", sp_last_error());
        return 1;
    }
    for (size_t i = 0; i < sp_results_count(res); i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (sp_entry_kind(e) == SP_KIND_OK)
            printf("%-10s = %s\n", sp_entry_key(e), sp_entry_str(e));
        else
            printf("%-10s ! %s: %s\n", sp_entry_key(e),
                   sp_kind_name(sp_entry_kind(e)), sp_entry_message(e));
    }
    printf("four squared is %s\n", sp_entry_str(sp_results_get(res, "four")));
    sp_results_free(res);
    return 0;
}
