/* SPDX-License-Identifier: MIT */
/* simplepar-bench: what each backend costs, measured against baselines
 * taken in the same run.
 *
 *   overhead          N empty tasks (default 100,000) on 2 workers: µs per
 *                     task on serial, thread, and a plain mutex+condvar pool
 *                     (bench/peers/naive-pool.c)
 *   overhead-process  N empty tasks (default 20,000) on 2 worker processes
 *   sleep             1,000 tasks x 10 ms on 100 workers: wall time / ideal
 *   sleep-wide        1,000 tasks x 10 ms on 1,000 workers, thread, process
 *                     and the naive pool: wall time / ideal
 *   logcount          seed 001's CPU-bound log count: 100 files x 10,000
 *                     lines written to a temporary directory (fixed seed),
 *                     "/api/v1/login" counted per file on serial, thread and
 *                     process with 2 workers: speedup over serial
 *
 * Every figure is the median of --reps repetitions (min and max shown),
 * after one warm-up run of each configuration; repetitions of different
 * configurations are interleaved so machine drift hits all alike. Every
 * configuration of a workload must produce the same checksum of its
 * results, and the harness says so.
 */
#define _DEFAULT_SOURCE /* mkdtemp */
#include "simplepar.h"
#include "peers/naive-pool.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum runner { RUN_SERIAL, RUN_THREAD, RUN_PROCESS, RUN_NAIVE };

struct config {
    const char *label;
    enum runner runner;
    unsigned workers;
    double *samples; /* seconds, one per repetition */
    uint64_t checksum;
};

struct workload {
    const char *name;
    size_t n;
    sp_task *tasks;
    char *keys;
    naive_fn naive; /* the same work for the naive pool */
    void *naive_arg;
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

/* ---- task bodies -------------------------------------------------------- */

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

static const char LOGIN[] = "/api/v1/login";

/* Count lines of a file that contain "/api/v1/login". */
static long count_file(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    char buf[1 << 16];
    size_t carry = 0;
    long count = 0;
    for (;;) {
        ssize_t r = read(fd, buf + carry, sizeof buf - carry);
        if (r <= 0)
            break;
        size_t len = carry + (size_t)r, start = 0;
        for (size_t i = 0; i < len; i++) {
            if (buf[i] != '\n')
                continue;
            size_t ll = i - start;
            for (size_t j = start; j + sizeof LOGIN - 1 <= start + ll; j++)
                if (buf[j] == '/' &&
                    !memcmp(buf + j, LOGIN, sizeof LOGIN - 1)) {
                    count++;
                    break;
                }
            start = i + 1;
        }
        carry = len - start;
        memmove(buf, buf + start, carry);
    }
    close(fd);
    return count;
}

static int count_task(sp_ctx *ctx, void *arg)
{
    long c = count_file(arg);
    if (c < 0)
        return sp_fail(ctx, 1, "cannot read %s", (const char *)arg);
    return sp_set_resultf(ctx, "%ld", c);
}

/* ---- running ------------------------------------------------------------ */

static uint64_t checksum_of(const sp_results *res)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < sp_results_count(res); i++) {
        const sp_entry *e = sp_results_at(res, i);
        sum += sp_entry_kind(e) == SP_KIND_OK;
        sum += (uint64_t)atol(sp_entry_str(e)) * 1000003u;
    }
    return sum;
}

/* One timed run; the results map is built and freed inside the timing,
 * because a caller pays for both. */
static double run_once(const struct workload *w, struct config *c)
{
    double t0 = now_s();
    if (c->runner == RUN_NAIVE) {
        if (naive_pool_run(w->n, c->workers, w->naive, w->naive_arg)) {
            fprintf(stderr, "naive pool failed\n");
            exit(1);
        }
        double dt = now_s() - t0;
        c->checksum = w->n; /* only defined for the count-only workloads */
        return dt;
    }
    static const sp_backend backend[] = {
        [RUN_SERIAL] = SP_BACKEND_SERIAL,
        [RUN_THREAD] = SP_BACKEND_THREAD,
        [RUN_PROCESS] = SP_BACKEND_PROCESS,
    };
    sp_options o = {.backend = backend[c->runner], .max_workers = c->workers};
    sp_results *res = NULL;
    int rc = simple_parallel(w->tasks, w->n, &o, &res);
    if (rc || sp_results_ok(res) != w->n) {
        fprintf(stderr, "%s/%s: %s\n", w->name, c->label,
                rc ? sp_last_error() : "a task failed");
        exit(1);
    }
    sp_results_free(res);
    double dt = now_s() - t0;
    /* The checksum is taken outside the timing, on a separate run. */
    return dt;
}

static uint64_t checksum_run(const struct workload *w, struct config *c)
{
    if (c->runner == RUN_NAIVE)
        return w->n;
    static const sp_backend backend[] = {
        [RUN_SERIAL] = SP_BACKEND_SERIAL,
        [RUN_THREAD] = SP_BACKEND_THREAD,
        [RUN_PROCESS] = SP_BACKEND_PROCESS,
    };
    sp_options o = {.backend = backend[c->runner], .max_workers = c->workers};
    sp_results *res = NULL;
    if (simple_parallel(w->tasks, w->n, &o, &res))
        return 0;
    uint64_t sum = checksum_of(res);
    sp_results_free(res);
    return sum;
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
        cs[c].checksum = checksum_run(w, &cs[c]); /* also the warm-up */
    }
    for (int r = 0; r < reps; r++) {
        for (int c = 0; c < nc; c++)
            cs[c].samples[r] = run_once(w, &cs[c]);
        fprintf(stderr, "\r  %s: repetition %d/%d", w->name, r + 1, reps);
    }
    fprintf(stderr, "\r%*s\r", 50, "");
}

/* Print one table. per_task: show µs per task; ideal > 0: show the ratio
 * to it; base: index of the configuration ratios are taken against. */
static void report(const struct workload *w, struct config *cs, int nc,
                   int reps, int per_task, double ideal, int base,
                   const char *title)
{
    struct stats st[8];
    for (int c = 0; c < nc; c++)
        st[c] = summarise(cs[c].samples, reps);
    printf("\n%s: %s; median of %d (min..max)\n", w->name, title, reps);
    double scale = per_task ? 1e6 / (double)w->n : 1.0;
    printf("  %-16s %10s %23s %12s\n", "runner",
           per_task ? "us/task" : "wall s", "min..max",
           ideal > 0 ? "vs ideal" : "vs baseline");
    int same = 1;
    for (int c = 0; c < nc; c++) {
        char label[48];
        snprintf(label, sizeof label, "%s(%u)", cs[c].label, cs[c].workers);
        double ratio =
            ideal > 0 ? st[c].median / ideal : st[c].median / st[base].median;
        printf("  %-16s %10.4f %11.4f..%-11.4f %11.3fx\n", label,
               st[c].median * scale, st[c].min * scale, st[c].max * scale,
               ratio);
        if (cs[c].runner != RUN_NAIVE && cs[c].checksum != cs[0].checksum)
            same = 0;
        free(cs[c].samples);
    }
    if (ideal <= 0)
        printf("  baseline: %s; speedup over it = 1 / ratio\n", cs[base].label);
    printf("  checksum %llu: %s\n", (unsigned long long)cs[0].checksum,
           same ? "identical on every backend" : "DIFFERS between backends");
    if (!same)
        exit(1);
}

static void build(struct workload *w, sp_task_fn fn, void *arg)
{
    w->tasks = calloc(w->n, sizeof *w->tasks);
    w->keys = malloc(w->n * 16);
    if (!w->tasks || !w->keys) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < w->n; i++) {
        snprintf(w->keys + i * 16, 16, "task-%u", (unsigned)(i % 100000000));
        w->tasks[i] = (sp_task){.key = w->keys + i * 16, .fn = fn, .arg = arg};
    }
}

static void unbuild(struct workload *w)
{
    free(w->tasks);
    free(w->keys);
}

static void bench_overhead(size_t n, unsigned workers, int reps)
{
    struct workload w = {.name = "overhead", .n = n, .naive = naive_empty};
    build(&w, empty_task, NULL);
    struct config cs[] = {
        {"serial", RUN_SERIAL, 1, NULL, 0},
        {"thread", RUN_THREAD, workers, NULL, 0},
        {"naive-pool", RUN_NAIVE, workers, NULL, 0},
    };
    measure(&w, cs, 3, reps);
    char title[96];
    snprintf(title, sizeof title, "%zu empty tasks", n);
    report(&w, cs, 3, reps, 1, 0, 2, title);
    unbuild(&w);
}

static void bench_overhead_process(size_t n, unsigned workers, int reps)
{
    struct workload w = {.name = "overhead-process", .n = n};
    build(&w, empty_task, NULL);
    struct config cs[] = {
        {"serial", RUN_SERIAL, 1, NULL, 0},
        {"process", RUN_PROCESS, workers, NULL, 0},
        {"thread", RUN_THREAD, workers, NULL, 0},
    };
    measure(&w, cs, 3, reps);
    char title[96];
    snprintf(title, sizeof title, "%zu empty tasks", n);
    report(&w, cs, 3, reps, 1, 0, 0, title);
    unbuild(&w);
}

static void bench_sleep(const char *name, size_t n, unsigned ms,
                        unsigned workers, int with_process, int reps)
{
    struct workload w = {.name = name,
                         .n = n,
                         .naive = naive_sleep,
                         .naive_arg = (void *)(uintptr_t)ms};
    build(&w, sleep_task, (void *)(uintptr_t)ms);
    struct config cs[] = {
        {"thread", RUN_THREAD, workers, NULL, 0},
        {"naive-pool", RUN_NAIVE, workers, NULL, 0},
        {"process", RUN_PROCESS, workers, NULL, 0},
    };
    int nc = with_process ? 3 : 2;
    measure(&w, cs, nc, reps);
    double ideal = (double)((n + workers - 1) / workers) * ms / 1e3;
    char title[128];
    snprintf(title, sizeof title, "%zu tasks x %u ms, ideal %.3f s", n, ms,
             ideal);
    report(&w, cs, nc, reps, 0, ideal, 0, title);
    unbuild(&w);
}

/* seed 001's log files: 100 x 10,000 lines, a fixed seed. */
static char *make_logs(size_t files, size_t lines, char ***paths)
{
    static const char *const endpoints[] = {"/api/v1/login", "/api/v1/users",
                                            "/api/v1/products",
                                            "/api/v1/orders", "/api/v1/cart"};
    static const int status[] = {200, 400, 500};
    const char *tmp = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/simplepar-logs-XXXXXX", tmp ? tmp : "/tmp");
    char *dir = strdup(tmpl);
    if (!dir || !mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    *paths = calloc(files, sizeof **paths);
    uint64_t x = 22; /* random.seed(22) */
    for (size_t f = 0; f < files; f++) {
        char *p = malloc(strlen(dir) + 32);
        sprintf(p, "%s/log%zu.log", dir, f);
        (*paths)[f] = p;
        FILE *out = fopen(p, "w");
        if (!out) {
            perror(p);
            exit(1);
        }
        for (size_t l = 0; l < lines; l++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            fprintf(out, "2026-11-22T03:%02zu:%02zu.%06zu %s %d\n",
                    (l / 60) % 60, l % 60, (l * 7919) % 1000000,
                    endpoints[x % 5], status[(x >> 8) % 3]);
        }
        fclose(out);
    }
    return dir;
}

static void bench_logcount(unsigned workers, int reps)
{
    enum { FILES = 100, LINES = 10000 };
    char **paths;
    char *dir = make_logs(FILES, LINES, &paths);
    struct workload w = {.name = "logcount", .n = FILES};
    build(&w, count_task, NULL);
    for (size_t i = 0; i < FILES; i++)
        w.tasks[i].arg = paths[i];
    struct config cs[] = {
        {"serial", RUN_SERIAL, 1, NULL, 0},
        {"thread", RUN_THREAD, workers, NULL, 0},
        {"process", RUN_PROCESS, workers, NULL, 0},
    };
    measure(&w, cs, 3, reps);
    report(&w, cs, 3, reps, 0, 0, 0,
           "100 files x 10,000 lines, count /api/v1/login");
    for (size_t i = 0; i < FILES; i++) {
        unlink(paths[i]);
        free(paths[i]);
    }
    free(paths);
    rmdir(dir);
    free(dir);
    unbuild(&w);
}

static void usage(FILE *f)
{
    fputs("usage: simplepar-bench [--reps N] [--tasks N] [--process-tasks N]\n"
          "                       [--workers N] [WORKLOAD...]\n"
          "workloads: overhead overhead-process sleep sleep-wide logcount\n"
          "(default: all). See docs/benchmarks.md.\n",
          f);
}

int main(int argc, char **argv)
{
    int reps = 7;
    size_t tasks = 100000, ptasks = 20000;
    unsigned workers = 2;
    const char *chosen[8];
    int nchosen = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(a, "--reps"))
            reps = atoi(v), i++;
        else if (v && !strcmp(a, "--tasks"))
            tasks = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--process-tasks"))
            ptasks = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--workers"))
            workers = (unsigned)atoi(v), i++;
        else if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (a[0] != '-' && nchosen < 8)
            chosen[nchosen++] = a;
        else {
            usage(stderr);
            return 2;
        }
    }
    if (reps < 1 || !workers || !tasks || !ptasks) {
        usage(stderr);
        return 2;
    }
    static const char *const all[] = {"overhead", "overhead-process", "sleep",
                                      "sleep-wide", "logcount"};
    if (!nchosen)
        for (size_t k = 0; k < sizeof all / sizeof *all; k++)
            chosen[nchosen++] = all[k];

    printf("simplepar %s benchmark, %ld online CPUs\n", sp_version_string(),
           sysconf(_SC_NPROCESSORS_ONLN));
    for (int k = 0; k < nchosen; k++) {
        const char *c = chosen[k];
        if (!strcmp(c, "overhead"))
            bench_overhead(tasks, workers, reps);
        else if (!strcmp(c, "overhead-process"))
            bench_overhead_process(ptasks, workers, reps);
        else if (!strcmp(c, "sleep"))
            bench_sleep("sleep", 1000, 10, 100, 0, reps);
        else if (!strcmp(c, "sleep-wide"))
            bench_sleep("sleep-wide", 1000, 10, 1000, 1, reps);
        else if (!strcmp(c, "logcount"))
            bench_logcount(workers, reps);
        else {
            fprintf(stderr, "unknown workload %s\n", c);
            usage(stderr);
            return 2;
        }
        fflush(stdout);
    }
    return 0;
}
