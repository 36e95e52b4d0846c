/* Spawning: a running task adds tasks to the call. "index" learns which
 * pages exist only when it runs; it spawns a task per page, with the page
 * number as argument bytes, and a "summary" task after them all. Bytes
 * reach the task wherever it runs, worker processes included. */
#include <simplepar.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int page(sp_ctx *ctx, void *arg)
{
    (void)arg;
    int n;
    memcpy(&n, sp_ctx_data(ctx, NULL), sizeof n);
    return sp_set_resultf(ctx, "%d", 100 * n); /* the page's size */
}

static int summary(sp_ctx *ctx, void *arg) /* after every page */
{
    (void)arg;
    int pages;
    long bytes = 0;
    memcpy(&pages, sp_ctx_data(ctx, NULL), sizeof pages);
    for (int n = 1; n <= pages; n++) {
        char key[24];
        snprintf(key, sizeof key, "page:%d", n);
        bytes += atol(sp_dep_result(ctx, key, NULL));
    }
    return sp_set_resultf(ctx, "%d pages, %ld bytes", pages, bytes);
}

static int index_pages(sp_ctx *ctx, void *arg)
{
    (void)arg;
    int pages = 4; /* as read from the index */
    char keys[4][24];
    const char *after[5] = {NULL};
    for (int n = 1; n <= pages; n++) {
        snprintf(keys[n - 1], sizeof keys[n - 1], "page:%d", n);
        after[n - 1] = keys[n - 1];
        int rc = sp_spawn(ctx, &(sp_task){.key = keys[n - 1],
                                          .fn = page,
                                          .data = &n,
                                          .len = sizeof n});
        if (rc)
            return rc;
    }
    sp_set_resultf(ctx, "%d pages", pages);
    return sp_spawn(ctx, &(sp_task){.key = "summary",
                                    .fn = summary,
                                    .after = after,
                                    .data = &pages,
                                    .len = sizeof pages});
}

int main(void)
{
    sp_task tasks[] = {{.key = "index", .fn = index_pages}};
    sp_options opts = {.backend = SP_BACKEND_PROCESS};
    sp_results *res;
    if (simple_parallel(tasks, 1, &opts, &res) != 0) {
        fprintf(stderr, "simple_parallel: %s\n", sp_last_error());
        return 1;
    }
    for (size_t i = 0; i < sp_results_count(res); i++) {
        const sp_entry *e = sp_results_at(res, i);
        printf("%-8s %s %s\n", sp_entry_key(e), sp_kind_name(sp_entry_kind(e)),
               sp_entry_str(e));
    }
    sp_results_free(res);
    return 0;
}
