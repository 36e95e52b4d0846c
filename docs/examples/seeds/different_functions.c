/* SPDX-License-Identifier: MIT */
/* Seed 003: different functions run concurrently, and wait() with a
 * timeout splits them into done and not done. first() takes 2 s, second()
 * and third() 1 s; with a deadline of 1.5 s, first() is not done.
 *
 *   different_functions [--scale S] [--backend thread|process|serial] */
#include <simplepar.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double scale = 1.0;

/* Sleep n seconds (scaled), giving up if asked to stop. */
static int sleep_for(sp_ctx *ctx, double n)
{
    for (double left = n * scale; left > 0; left -= 0.005) {
        if (sp_cancelled(ctx))
            return sp_fail(ctx, 1, "stopped after the deadline");
        struct timespec ts = {0, (long)((left < 0.005 ? left : 0.005) * 1e9)};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int first(sp_ctx *ctx, void *arg)
{
    int rc = sleep_for(ctx, *(double *)arg);
    return rc ? rc : sp_set_result_str(ctx, "first() is done");
}

static int second(sp_ctx *ctx, void *arg)
{
    int rc = sleep_for(ctx, *(double *)arg);
    return rc ? rc : sp_set_result_str(ctx, "second() is done");
}

static int third(sp_ctx *ctx, void *arg)
{
    int rc = sleep_for(ctx, *(double *)arg);
    return rc ? rc : sp_set_result_str(ctx, "third() is done");
}

int main(int argc, char **argv)
{
    sp_backend backend = SP_BACKEND_THREAD;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = atof(argv[++i]);
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
            const char *b = argv[++i];
            backend = !strcmp(b, "process")  ? SP_BACKEND_PROCESS
                      : !strcmp(b, "serial") ? SP_BACKEND_SERIAL
                                             : SP_BACKEND_THREAD;
        } else {
            printf("usage: %s [--scale S] [--backend thread|process|serial]\n",
                   argv[0]);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    double two = 2, one = 1;
    sp_task tasks[] = {{.key = "first", .fn = first, .arg = &two},
                       {.key = "second", .fn = second, .arg = &one},
                       {.key = "third", .fn = third, .arg = &one}};
    /* max_workers 4 as in the seed; the deadline is wait(timeout). */
    sp_options o = {
        .backend = backend, .max_workers = 4, .deadline = 1.5 * scale};
    sp_results *res;
    if (simple_parallel(tasks, 3, &o, &res)) {
        fprintf(stderr, "%s\n", sp_last_error());
        return 1;
    }
    printf("Done:\n");
    for (size_t i = 0; i < sp_results_count(res); i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (sp_entry_kind(e) == SP_KIND_OK)
            printf("  %s\n", sp_entry_str(e));
    }
    printf("\nNot done (by the deadline of %.2f s):\n", 1.5 * scale);
    for (size_t i = 0; i < sp_results_count(res); i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (sp_entry_kind(e) != SP_KIND_OK)
            printf("  %s: %s (%s)\n", sp_entry_key(e),
                   sp_kind_name(sp_entry_kind(e)), sp_entry_message(e));
    }
    /* first() cannot be done by the deadline; whether the others made it
     * depends on the machine's load, so only the former is an error. */
    int ok = sp_entry_kind(sp_results_get(res, "first")) != SP_KIND_OK;
    sp_results_free(res);
    return ok ? 0 : 1;
}
