/* SPDX-License-Identifier: MIT */
/* simplepar-bench: what each backend costs, measured against baselines
 * taken in the same run.
 *
 *   overhead  N empty tasks (default 100,000) on 2 workers: µs per task on
 *             the thread and serial backends and on a plain mutex+condvar
 *             pool (bench/peers/naive-pool.c).
 *   sleep     N tasks (default 1,000) that each sleep T ms (default 10) on
 *             W workers (default 100): wall time as a ratio to the ideal
 *             ceil(N / W) * T.
 *
 * Every figure is the median of --reps repetitions (min and max shown),
 * after one warm-up run of each configuration; repetitions of different
 * configurations are interleaved so machine drift hits all alike.
 */
#include "simplepar.h"
#include "peers/naive-pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum runner { RUN_SERIAL, RUN_THREAD, RUN_NAIVE };

struct config {
    const char *label;
    enum runner runner;
    unsigned workers;
    double *samples; /* seconds, one per repetition */
};

struct workload {
    size_t n;
    unsigned sleep_ms;
    sp_task *tasks;
    char *keys;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts))
        ;
}

static int empty_task(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return 0;
}

static int sleep_task(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    sleep_ms((unsigned)(uintptr_t)arg);
    return 0;
}

static void naive_empty(size_t i, void *arg)
{
    (void)i;
    (void)arg;
}

static void naive_sleep(size_t i, void *arg)
{
    (void)i;
    sleep_ms((unsigned)(uintptr_t)arg);
}

static void build(struct workload *w)
{
    w->tasks = calloc(w->n, sizeof *w->tasks);
    w->keys = malloc(w->n * 16);
    if (!w->tasks || !w->keys) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < w->n; i++) {
        snprintf(w->keys + i * 16, 16, "task-%zu", i % 100000000u);
        w->tasks[i] = (sp_task){
            .key = w->keys + i * 16,
            .fn = w->sleep_ms ? sleep_task : empty_task,
            .arg = (void *)(uintptr_t)w->sleep_ms,
        };
    }
}

/* One timed run; the results map is built and freed inside the timing,
 * because a caller pays for both. */
static double run_once(const struct workload *w, const struct config *c)
{
    double t0 = now_s();
    if (c->runner == RUN_NAIVE) {
        if (naive_pool_run(w->n, c->workers,
                           w->sleep_ms ? naive_sleep : naive_empty,
                           (void *)(uintptr_t)w->sleep_ms)) {
            fprintf(stderr, "naive pool failed\n");
            exit(1);
        }
        return now_s() - t0;
    }
    sp_options o = {0};
    o.backend = c->runner == RUN_SERIAL ? SP_BACKEND_SERIAL
                                        : SP_BACKEND_THREAD;
    o.max_workers = c->workers;
    sp_results *res = NULL;
    int rc = simple_parallel(w->tasks, w->n, &o, &res);
    if (rc || sp_results_ok(res) != w->n) {
        fprintf(stderr, "%s: %s\n", c->label,
                rc ? sp_last_error() : "a task failed");
        exit(1);
    }
    sp_results_free(res);
    return now_s() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct stats {
    double median, min, max;
};

static struct stats summarise(double *s, int reps)
{
    qsort(s, (size_t)reps, sizeof *s, cmp_double);
    double med = reps % 2 ? s[reps / 2] : (s[reps / 2 - 1] + s[reps / 2]) / 2;
    return (struct stats){med, s[0], s[reps - 1]};
}

static void measure(const struct workload *w, struct config *cs, int nc,
                    int reps)
{
    for (int c = 0; c < nc; c++) {
        cs[c].samples = calloc((size_t)reps, sizeof(double));
        run_once(w, &cs[c]); /* warm-up */
    }
    for (int r = 0; r < reps; r++) {
        for (int c = 0; c < nc; c++)
            cs[c].samples[r] = run_once(w, &cs[c]);
        fprintf(stderr, "\r  repetition %d/%d", r + 1, reps);
    }
    fprintf(stderr, "\r%*s\r", 30, "");
}

static void bench_overhead(size_t n, unsigned workers, int reps)
{
    struct workload w = {.n = n};
    build(&w);
    struct config cs[] = {
        {"serial", RUN_SERIAL, 1, NULL},
        {"thread", RUN_THREAD, workers, NULL},
        {"naive-pool", RUN_NAIVE, workers, NULL},
    };
    int nc = (int)(sizeof cs / sizeof cs[0]);
    measure(&w, cs, nc, reps);
    printf("\noverhead: %zu empty tasks, %u workers, median of %d "
           "(min..max)\n",
           n, workers, reps);
    printf("  %-11s %10s %21s %10s %12s\n", "runner", "us/task",
           "min..max us/task", "vs serial", "vs naive");
    struct stats st[3];
    for (int c = 0; c < nc; c++)
        st[c] = summarise(cs[c].samples, reps);
    for (int c = 0; c < nc; c++) {
        double per = st[c].median / (double)n * 1e6;
        printf("  %-11s %10.4f %10.4f..%-10.4f %9.2fx %11.2fx\n",
               cs[c].label, per, st[c].min / (double)n * 1e6,
               st[c].max / (double)n * 1e6, st[c].median / st[0].median,
               st[c].median / st[2].median);
        free(cs[c].samples);
    }
    free(w.tasks);
    free(w.keys);
}

static void bench_sleep(size_t n, unsigned ms, unsigned workers, int reps)
{
    struct workload w = {.n = n, .sleep_ms = ms};
    build(&w);
    struct config cs[] = {
        {"thread", RUN_THREAD, workers, NULL},
        {"naive-pool", RUN_NAIVE, workers, NULL},
    };
    int nc = (int)(sizeof cs / sizeof cs[0]);
    measure(&w, cs, nc, reps);
    double ideal = (double)((n + workers - 1) / workers) * ms / 1e3;
    printf("\nsleep: %zu tasks x %u ms on %u workers, ideal %.3f s, median "
           "of %d (min..max)\n",
           n, ms, workers, ideal, reps);
    printf("  %-11s %10s %21s %10s %12s\n", "runner", "wall s",
           "min..max s", "vs ideal", "vs naive");
    struct stats st[2];
    for (int c = 0; c < nc; c++)
        st[c] = summarise(cs[c].samples, reps);
    for (int c = 0; c < nc; c++) {
        printf("  %-11s %10.4f %10.4f..%-10.4f %9.3fx %11.3fx\n",
               cs[c].label, st[c].median, st[c].min, st[c].max,
               st[c].median / ideal, st[c].median / st[1].median);
        free(cs[c].samples);
    }
    free(w.tasks);
    free(w.keys);
}

static void usage(void)
{
    puts("usage: simplepar-bench [--reps N] [--tasks N] [--workers N]\n"
         "                       [--sleep-tasks N] [--sleep-ms T]\n"
         "                       [--sleep-workers W] [overhead] [sleep]\n"
         "Runs the named workloads (default: all). See bench/README in "
         "docs/benchmarks.md.");
}

int main(int argc, char **argv)
{
    int reps = 11, run_overhead = 0, run_sleep = 0;
    size_t tasks = 100000, sleep_tasks = 1000;
    unsigned workers = 2, sleep_ms_each = 10, sleep_workers = 100;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "overhead"))
            run_overhead = 1;
        else if (!strcmp(a, "sleep"))
            run_sleep = 1;
        else if (v && !strcmp(a, "--reps"))
            reps = atoi(v), i++;
        else if (v && !strcmp(a, "--tasks"))
            tasks = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--workers"))
            workers = (unsigned)atoi(v), i++;
        else if (v && !strcmp(a, "--sleep-tasks"))
            sleep_tasks = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--sleep-ms"))
            sleep_ms_each = (unsigned)atoi(v), i++;
        else if (v && !strcmp(a, "--sleep-workers"))
            sleep_workers = (unsigned)atoi(v), i++;
        else {
            usage();
            return strcmp(a, "--help") ? 2 : 0;
        }
    }
    if (reps < 1 || !workers || !sleep_workers || !tasks || !sleep_tasks) {
        usage();
        return 2;
    }
    if (!run_overhead && !run_sleep)
        run_overhead = run_sleep = 1;

    printf("simplepar %s benchmark\n", sp_version_string());
    if (run_overhead)
        bench_overhead(tasks, workers, reps);
    if (run_sleep)
        bench_sleep(sleep_tasks, sleep_ms_each, sleep_workers, reps);
    return 0;
}
