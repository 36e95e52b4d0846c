/* SPDX-License-Identifier: MIT */
/* simplepar-demo: seed 001's ticker example in C. Seven "API calls" that
 * each take 0.1-0.3 s (one of them fails) run on every backend; the demo
 * streams completions as they happen, prints the keyed results and the
 * speedup over the serial run. Then the same table runs on forked worker
 * processes with two more tasks, one that segfaults and one that hangs
 * past its time limit, and every other key still comes back.
 *
 *   simplepar-demo [--scale S]   S multiplies every delay (default 1.0)
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, pause */
#include <simplepar.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const tickers[] = {"AAPL", "GOOG", "NFLX", "TSLA",
                                      "META", "AMZN", "NVDA"};
#define N_TICKERS (sizeof tickers / sizeof tickers[0])

struct call {
    const char *ticker;
    double delay; /* seconds */
};

/* A slow quote lookup. The delay and the price are derived from the ticker
 * so every backend sees the same data; NFLX is "down". */
static int fetch_quote(sp_ctx *ctx, void *arg)
{
    const struct call *c = arg;
    struct timespec ts = {(time_t)c->delay,
                          (long)((c->delay - (double)(time_t)c->delay) * 1e9)};
    while (nanosleep(&ts, &ts))
        if (sp_cancelled(ctx))
            break;
    if (!strcmp(c->ticker, "NFLX"))
        return sp_fail(ctx, 503, "quote service for %s answered 503",
                       c->ticker);
    unsigned h = 0;
    for (const char *p = c->ticker; *p; p++)
        h = h * 31 + (unsigned char)*p;
    return sp_set_resultf(ctx, "{\"ticker\": \"%s\", \"close\": %u.%02u}",
                          c->ticker, 50 + h % 400, h % 100);
}

static int segfault(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    volatile uintptr_t addr = 64; /* an address nothing is mapped at */
    *(volatile int *)addr = 1;
    return 0;
}

static int hang(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    for (;;)
        pause();
    return 0;
}

static int progress(const sp_entry *e, void *user)
{
    (void)user;
    printf("  %7.3f s  %-5s %-9s worker %u\n", sp_entry_end(e), sp_entry_key(e),
           sp_kind_name(sp_entry_kind(e)), sp_entry_worker(e));
    return 0;
}

static double run(const char *label, sp_backend backend, sp_task *tasks,
                  size_t n, double timeout, int show)
{
    sp_options o = {
        .backend = backend, .on_done = progress, .task_timeout = timeout};
    sp_results *res;
    printf("\n== %s backend\n", label);
    if (simple_parallel(tasks, n, &o, &res)) {
        fprintf(stderr, "simple_parallel: %s\n", sp_last_error());
        exit(1);
    }
    if (show) {
        printf("  results by key, in input order:\n");
        for (size_t i = 0; i < sp_results_count(res); i++) {
            const sp_entry *e = sp_results_at(res, i);
            if (sp_entry_kind(e) == SP_KIND_OK)
                printf("    %-5s %s\n", sp_entry_key(e), sp_entry_str(e));
            else
                printf("    %-5s %s (code %d): %s\n", sp_entry_key(e),
                       sp_kind_name(sp_entry_kind(e)), sp_entry_code(e),
                       sp_entry_message(e));
        }
    }
    double t = sp_results_elapsed(res);
    printf("  %zu ok, %zu failed in %.3f s on %u worker(s)\n",
           sp_results_ok(res), sp_results_failed(res), t,
           sp_results_workers(res));
    sp_results_free(res);
    return t;
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
    if (!(scale > 0 && scale <= 100)) {
        fprintf(stderr, "--scale must be in (0, 100]\n");
        return 2;
    }

    struct call calls[N_TICKERS];
    sp_task tasks[N_TICKERS + 2];
    for (size_t i = 0; i < N_TICKERS; i++) {
        calls[i] = (struct call){tickers[i], scale * (0.1 + 0.03 * (double)i)};
        tasks[i] =
            (sp_task){.key = tickers[i], .fn = fetch_quote, .arg = &calls[i]};
    }
    printf("simplepar %s demo: %zu quote lookups of %.2f-%.2f s each\n",
           sp_version_string(), N_TICKERS, calls[0].delay,
           calls[N_TICKERS - 1].delay);

    double serial = run("serial", SP_BACKEND_SERIAL, tasks, N_TICKERS, 0, 0);
    double thread = run("thread", SP_BACKEND_THREAD, tasks, N_TICKERS, 0, 1);
    double process = run("process", SP_BACKEND_PROCESS, tasks, N_TICKERS, 0, 0);
    printf("\nspeedup over serial: thread %.2fx, process %.2fx\n"
           "(the process backend defaults to one worker per core: it is for "
           "CPU-bound work\nand for isolation; waiting on I/O wants "
           "threads)\n",
           serial / thread, serial / process);

    /* Crash isolation: the same table plus a task that segfaults and one
     * that hangs, with a per-task time limit, on worker processes. */
    tasks[N_TICKERS] = (sp_task){.key = "CRASH", .fn = segfault};
    tasks[N_TICKERS + 1] = (sp_task){.key = "HANG", .fn = hang};
    printf("\nNow with a task that segfaults and one that hangs "
           "(task_timeout %.2f s):",
           scale * 0.5);
    run("process", SP_BACKEND_PROCESS, tasks, N_TICKERS + 2, scale * 0.5, 1);
    return 0;
}
