/* SPDX-License-Identifier: MIT */
/* Seed 004: download ten URLs. First like executor.map: fail-fast, results
 * read in input order, stopping at the first failure. Then like
 * as_completed: collect everything, print each result as it finishes,
 * and report "9 ok, 1 failed" with the failure kept under its key.
 *
 *   map_vs_completed [--scale S] */
#include <simplepar.h>
#include <simplepar/mockapi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int download(sp_ctx *ctx, void *arg)
{
    char who[16], body[256];
    snprintf(who, sizeof who, "worker-%u", sp_ctx_worker(ctx));
    int rc =
        sp_mock_download(arg, ctx, who, sp_ctx_key(ctx), body, sizeof body);
    return rc ? rc : sp_set_result_str(ctx, body);
}

static int as_completed(const sp_entry *e, void *user)
{
    (void)user;
    if (sp_entry_kind(e) == SP_KIND_OK)
        printf("  %6.3f s  %s\n", sp_entry_end(e), sp_entry_str(e));
    else
        printf("  %6.3f s  %s failed: %s\n", sp_entry_end(e), sp_entry_key(e),
               sp_entry_message(e));
    return 0;
}

int main(int argc, char **argv)
{
    double scale = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = atof(argv[++i]);
        else {
            printf("usage: %s [--scale S]\n", argv[0]);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    sp_mock_options mo = {.time_scale = scale};
    sp_mock *m = sp_mock_new(&mo);
    if (!m)
        return 2;
    char urls[10][40];
    sp_task t[10];
    for (int i = 0; i < 10; i++) {
        snprintf(urls[i], sizeof urls[i], "https://example.com/page/%d", i);
        t[i] = (sp_task){.key = urls[i], .fn = download, .arg = m};
    }

    printf("map: fail-fast, ordered (max_workers 5)\n");
    sp_options o = {.max_workers = 5, .on_error = SP_POLICY_FAIL_FAST};
    sp_results *res;
    if (simple_parallel(t, 10, &o, &res))
        return 1;
    for (size_t i = 0; i < 10; i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (sp_entry_kind(e) != SP_KIND_OK) {
            printf("  raised at %s: %s (later results are lost to map; here "
                   "%zu were cancelled)\n",
                   sp_entry_key(e), sp_entry_message(e),
                   sp_results_count_kind(res, SP_KIND_CANCELLED));
            break;
        }
        printf("  %s\n", sp_entry_str(e));
    }
    sp_results_free(res);

    printf("\nas_completed: collect all, per-task errors kept\n");
    o = (sp_options){.max_workers = 5, .on_done = as_completed};
    if (simple_parallel(t, 10, &o, &res))
        return 1;
    printf("%zu ok, %zu failed\nfailures:", sp_results_ok(res),
           sp_results_failed(res));
    for (size_t i = 0; i < 10; i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (sp_entry_kind(e) != SP_KIND_OK)
            printf(" {'%s': '%s'}", sp_entry_key(e), sp_entry_message(e));
    }
    printf("\n");
    int ok = sp_results_ok(res) == 9;
    sp_results_free(res);
    sp_mock_free(m);
    return ok ? 0 : 1;
}
