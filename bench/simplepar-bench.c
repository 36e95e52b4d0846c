/* SPDX-License-Identifier: MIT */
/* simplepar-bench: what each backend buys you, measured side by side with
 * serial, a plain C thread pool and Python's concurrent.futures, in one
 * run. See docs/benchmarks.md.
 *
 * Every figure is the median of --reps repetitions (min and max shown),
 * after one warm-up run of each configuration; repetitions of different
 * configurations are interleaved so machine drift hits all alike. Every
 * configuration of a workload must produce the same checksum of its
 * results, and the harness says so. */
#define _DEFAULT_SOURCE
#include "simplepar.h"
#include "peers/naive-pool.h"
#include <simplepar/mockapi.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

enum runner { RUN_SERIAL, RUN_THREAD, RUN_PROCESS, RUN_NAIVE, RUN_PY };

struct config {
    const char *label;
    enum runner runner;
    unsigned workers;
    const char *py_executor; /* RUN_PY: "thread" or "process" */
    double samples[64];
    uint64_t checksum;
    int skipped; /* a peer that could not run */
};

struct workload {
    const char *name, *py_name; /* py_name: the peer's workload, or NULL */
    size_t n;
    sp_task *tasks;
    char *keys;
    naive_fn naive;
    void *naive_arg;
    const char *py_arg;
};

static struct {
    int reps, smoke, peers;
    FILE *json, *csv;
    const char *svg_dir, *python, *peer_script;
} opt = {.reps = 7, .peers = 1};

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

static int count_task(sp_ctx *ctx, void *arg)
{
    long c = sp_mock_count_lines(arg, "/api/v1/login");
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

static sp_backend backend_of(enum runner r)
{
    return r == RUN_SERIAL    ? SP_BACKEND_SERIAL
           : r == RUN_PROCESS ? SP_BACKEND_PROCESS
                              : SP_BACKEND_THREAD;
}

/* One timed run of simplepar or the naive pool; the map is built and freed
 * inside the timing, since a caller pays for both. */
static double run_once(const struct workload *w, struct config *c, int sum)
{
    double t0 = now_s();
    if (c->runner == RUN_NAIVE) {
        if (naive_pool_run(w->n, c->workers, w->naive, w->naive_arg)) {
            fprintf(stderr, "naive pool failed\n");
            exit(1);
        }
        c->checksum = w->n;
        return now_s() - t0;
    }
    sp_options o = {.backend = backend_of(c->runner),
                    .max_workers = c->workers};
    sp_results *res = NULL;
    int rc = simple_parallel(w->tasks, w->n, &o, &res);
    if (rc || sp_results_ok(res) != w->n) {
        fprintf(stderr, "%s/%s: %s\n", w->name, c->label,
                rc ? sp_last_error() : "a task failed");
        exit(1);
    }
    uint64_t s = sum ? checksum_of(res) : 0;
    sp_results_free(res);
    double dt = now_s() - t0;
    if (sum)
        c->checksum = s;
    return dt;
}

/* The Python peer: its own warm-up and repetitions; fills samples with its
 * min, median and max (so the median of the three is its median). */
static void run_peer(const struct workload *w, struct config *c)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s' %s %s %zu %u %d '%s' 2>/dev/null",
             opt.python, opt.peer_script, w->py_name, c->py_executor, w->n,
             c->workers, opt.reps < 3 ? opt.reps : 3,
             w->py_arg ? w->py_arg : "");
    FILE *p = popen(cmd, "r");
    char line[512] = "";
    if (!p || !fgets(line, sizeof line, p)) {
        c->skipped = 1;
        if (p)
            pclose(p);
        return;
    }
    pclose(p);
    double med, mn, mx;
    unsigned long long sum;
    if (sscanf(line,
               "{\"median\": %lf, \"min\": %lf, \"max\": %lf, \"checksum\": "
               "%llu}",
               &med, &mn, &mx, &sum) != 4) {
        c->skipped = 1;
        return;
    }
    for (int r = 0; r < opt.reps; r++)
        c->samples[r] = r == 0 ? mn : r == opt.reps - 1 ? mx : med;
    if (opt.reps == 2)
        c->samples[0] = c->samples[1] = med;
    c->checksum = sum;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct stats {
    double median, min, max;
};

static struct stats summarise(const double *in, int reps)
{
    double s[64];
    memcpy(s, in, (size_t)reps * sizeof *s);
    qsort(s, (size_t)reps, sizeof *s, cmp_double);
    double med = reps % 2 ? s[reps / 2] : (s[reps / 2 - 1] + s[reps / 2]) / 2;
    return (struct stats){med, s[0], s[reps - 1]};
}

static void measure(const struct workload *w, struct config *cs, int nc)
{
    for (int c = 0; c < nc; c++) {
        if (cs[c].runner == RUN_PY)
            run_peer(w, &cs[c]);
        else
            run_once(w, &cs[c], 1); /* warm-up, and the checksum */
    }
    for (int r = 0; r < opt.reps; r++) {
        for (int c = 0; c < nc; c++)
            if (cs[c].runner != RUN_PY)
                cs[c].samples[r] = run_once(w, &cs[c], 0);
        fprintf(stderr, "\r  %s: repetition %d/%d ", w->name, r + 1, opt.reps);
    }
    fprintf(stderr, "\r%*s\r", 60, "");
}

/* One row: to the table (unless quiet) and to --json / --csv. */
static void emit(const char *workload, const char *runner, unsigned workers,
                 size_t n, struct stats st, double scale, const char *unit,
                 const char *ratio_name, double ratio, uint64_t checksum,
                 int quiet)
{
    char label[48];
    snprintf(label, sizeof label, "%s(%u)", runner, workers);
    if (!quiet)
        printf("  %-20s %10.4f %11.4f..%-11.4f %10.3fx %s\n", label,
               st.median * scale, st.min * scale, st.max * scale, ratio,
               ratio_name);
    if (opt.json)
        fprintf(opt.json,
                "{\"workload\": \"%s\", \"runner\": \"%s\", \"workers\": %u, "
                "\"tasks\": %zu, \"unit\": \"%s\", \"median\": %.9g, \"min\": "
                "%.9g, \"max\": %.9g, \"ratio\": %.6g, \"ratio_to\": \"%s\", "
                "\"checksum\": %llu}\n",
                workload, runner, workers, n, unit, st.median * scale,
                st.min * scale, st.max * scale, ratio, ratio_name,
                (unsigned long long)checksum);
    if (opt.csv)
        fprintf(opt.csv, "%s,%s,%u,%zu,%s,%.9g,%.9g,%.9g,%.6g,%s,%llu\n",
                workload, runner, workers, n, unit, st.median * scale,
                st.min * scale, st.max * scale, ratio, ratio_name,
                (unsigned long long)checksum);
}

/* Print a table: per_task shows µs per task; ideal > 0 gives ratios to it,
 * else to configuration `base`. Returns the medians in med[]. */
static void report(const struct workload *w, struct config *cs, int nc,
                   int per_task, double ideal, int base, const char *title,
                   double *med)
{
    printf("\n%s: %s; median of %d (min..max)\n", w->name, title, opt.reps);
    printf("  %-20s %10s %23s %11s\n", "runner",
           per_task ? "us/task" : "wall s", "min..max", "ratio");
    double scale = per_task ? 1e6 / (double)w->n : 1.0;
    struct stats b = summarise(cs[base].samples, opt.reps);
    int same = 1;
    for (int c = 0; c < nc; c++) {
        if (cs[c].skipped) {
            printf("  %-20s (not run: no python3 or the peer failed)\n",
                   cs[c].label);
            continue;
        }
        struct stats st = summarise(cs[c].samples, opt.reps);
        if (med)
            med[c] = st.median;
        double ratio = ideal > 0 ? st.median / ideal : st.median / b.median;
        char vs[64];
        snprintf(vs, sizeof vs, "vs %s", ideal > 0 ? "ideal" : cs[base].label);
        emit(w->name, cs[c].label, cs[c].workers, w->n, st, scale,
             per_task ? "us/task" : "s", vs, ratio, cs[c].checksum, 0);
        if (cs[c].runner != RUN_NAIVE && cs[c].checksum != cs[0].checksum)
            same = 0;
    }
    /* simplepar against its Python peer of the same kind. */
    for (int c = 0; c < nc; c++) {
        if (cs[c].runner != RUN_PY || cs[c].skipped)
            continue;
        enum runner want =
            strcmp(cs[c].py_executor, "thread") ? RUN_PROCESS : RUN_THREAD;
        for (int d = 0; d < nc; d++) {
            if (cs[d].runner != want)
                continue;
            double a = summarise(cs[d].samples, opt.reps).median;
            double p = summarise(cs[c].samples, opt.reps).median;
            printf("  simplepar %s / %s: %.4fx (%.1f times faster)\n",
                   cs[d].label, cs[c].label, a / p, p / a);
            break;
        }
    }
    printf("  checksum %llu: %s\n", (unsigned long long)cs[0].checksum,
           same ? "identical for every runner" : "DIFFERS between runners");
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

static int with_peer(void)
{
    return opt.peers && opt.python && opt.peer_script &&
           access(opt.peer_script, R_OK) == 0;
}

/* ---- workloads ---------------------------------------------------------- */

static void bench_overhead(size_t n, unsigned workers, int process)
{
    struct workload w = {.name = process ? "overhead-process" : "overhead",
                         .py_name = "overhead",
                         .n = n,
                         .naive = naive_empty};
    build(&w, empty_task, NULL);
    struct config cs[5] = {
        {.label = "serial", .runner = RUN_SERIAL, .workers = 1},
        {.label = process ? "process" : "thread",
         .runner = process ? RUN_PROCESS : RUN_THREAD,
         .workers = workers},
        {.label = "naive-pool", .runner = RUN_NAIVE, .workers = workers},
        {.label = process ? "py-process" : "py-thread",
         .runner = RUN_PY,
         .workers = workers,
         .py_executor = process ? "process" : "thread"},
    };
    int nc = with_peer() ? 4 : 3;
    measure(&w, cs, nc);
    char title[96];
    snprintf(title, sizeof title, "%zu empty tasks", n);
    report(&w, cs, nc, 1, 0, 0, title, NULL);
    unbuild(&w);
}

static void bench_io(size_t n, unsigned ms, unsigned workers, int process)
{
    char name[32];
    snprintf(name, sizeof name, "io-%u", workers);
    struct workload w = {.name = name,
                         .py_name = "io",
                         .n = n,
                         .naive = naive_sleep,
                         .naive_arg = (void *)(uintptr_t)ms};
    char msarg[16];
    snprintf(msarg, sizeof msarg, "%u", ms);
    w.py_arg = msarg;
    build(&w, sleep_task, (void *)(uintptr_t)ms);
    struct config cs[5] = {
        {.label = "thread", .runner = RUN_THREAD, .workers = workers},
        {.label = "naive-pool", .runner = RUN_NAIVE, .workers = workers},
    };
    int nc = 2;
    if (process)
        cs[nc++] = (struct config){
            .label = "process", .runner = RUN_PROCESS, .workers = workers};
    if (with_peer())
        cs[nc++] = (struct config){.label = "py-thread",
                                   .runner = RUN_PY,
                                   .workers = workers,
                                   .py_executor = "thread"};
    measure(&w, cs, nc);
    double ideal = (double)((n + workers - 1) / workers) * ms / 1e3;
    char title[128];
    snprintf(title, sizeof title, "%zu tasks x %u ms, ideal %.3f s", n, ms,
             ideal);
    report(&w, cs, nc, 0, ideal, 0, title, NULL);
    if (opt.svg_dir && !process) {
        /* The per-task timeline of one run, as an SVG chart. */
        sp_options o = {.max_workers = workers};
        sp_results *res;
        if (simple_parallel(w.tasks, w.n, &o, &res) == 0) {
            sp_mock_event *ev = calloc(w.n, sizeof *ev);
            char *lanes = malloc(w.n * 16);
            char path[4096];
            snprintf(path, sizeof path, "%s/timeline.svg", opt.svg_dir);
            FILE *f = ev && lanes ? fopen(path, "w") : NULL;
            if (f) {
                size_t ne = sp_mock_events_from_results(res, ev, lanes, w.n);
                sp_mock_timeline_svg(f, ev, ne);
                fclose(f);
                printf("  chart: %s\n", path);
            }
            free(ev);
            free(lanes);
            sp_results_free(res);
        }
    }
    unbuild(&w);
}

/* seed 001's log count: the files, and a workload over them. */
static char *logs_dir;
static char *log_paths;
static size_t log_files;

static void make_logs(size_t files, size_t lines)
{
    logs_dir = sp_mock_write_logs(files, lines, 22);
    if (!logs_dir) {
        perror("writing the log files");
        exit(1);
    }
    log_files = files;
    log_paths = malloc(files * 4096);
    for (size_t i = 0; i < files; i++)
        sp_mock_log_path(logs_dir, i, log_paths + i * 4096, 4096);
}

static void build_cpu(struct workload *w)
{
    w->name = "cpu";
    w->py_name = "cpu";
    w->py_arg = logs_dir;
    w->n = log_files;
    build(w, count_task, NULL);
    for (size_t i = 0; i < log_files; i++)
        w->tasks[i].arg = log_paths + i * 4096;
}

static void bench_cpu(unsigned workers)
{
    struct workload w = {0};
    build_cpu(&w);
    struct config cs[5] = {
        {.label = "serial", .runner = RUN_SERIAL, .workers = 1},
        {.label = "thread", .runner = RUN_THREAD, .workers = workers},
        {.label = "process", .runner = RUN_PROCESS, .workers = workers},
        {.label = "py-thread",
         .runner = RUN_PY,
         .workers = workers,
         .py_executor = "thread"},
        {.label = "py-process",
         .runner = RUN_PY,
         .workers = workers,
         .py_executor = "process"},
    };
    int nc = with_peer() ? 5 : 3;
    measure(&w, cs, nc);
    char title[96];
    snprintf(title, sizeof title,
             "%zu log files, count /api/v1/login (speedup = 1 / ratio)",
             log_files);
    report(&w, cs, nc, 0, 0, 0, title, NULL);
    unbuild(&w);
}

static FILE *svg_open(const char *name, int width, int height)
{
    if (!opt.svg_dir)
        return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.svg", opt.svg_dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return NULL;
    }
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg "
            "xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n<rect "
            "width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            width, height);
    printf("  chart: %s\n", path);
    return f;
}

/* A line chart of series over x values on log2/log10 x and linear y. */
static void svg_lines(const char *name, const char *title, const char *xlab,
                      const char *ylab, const double *x, size_t nx,
                      const double *ys, const char *const *names, int ns)
{
    const int W = 720, H = 420, L = 70, R = 150, T = 40, B = 50;
    FILE *f = svg_open(name, W, H);
    if (!f)
        return;
    double ymax = 0, lx0 = log10(x[0]), lx1 = log10(x[nx - 1]);
    for (size_t i = 0; i < nx * (size_t)ns; i++)
        ymax = ys[i] > ymax ? ys[i] : ymax;
    ymax = ymax > 0 ? ymax * 1.1 : 1;
    if (lx1 <= lx0)
        lx1 = lx0 + 1;
    fprintf(f, "<text x=\"%d\" y=\"22\" font-size=\"15\">%s</text>\n", L,
            title);
    fprintf(f,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>"
            "\n<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
            "stroke=\"black\"/>\n",
            L, H - B, W - R, H - B, L, T, L, H - B);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
            (L + W - R) / 2, H - 12, xlab);
    fprintf(f,
            "<text x=\"14\" y=\"%d\" transform=\"rotate(-90 14 %d)\" "
            "text-anchor=\"middle\">%s</text>\n",
            (T + H - B) / 2, (T + H - B) / 2, ylab);
    for (int t = 0; t <= 4; t++) {
        int y = H - B - (H - B - T) * t / 4;
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.3g</text>\n",
                L - 6, y + 4, ymax * t / 4);
    }
    for (size_t i = 0; i < nx; i++) {
        double px = L + (log10(x[i]) - lx0) / (lx1 - lx0) * (W - L - R);
        fprintf(f,
                "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
                px, H - B + 16, x[i]);
    }
    static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c",
                                         "#ff7f0e"};
    for (int s = 0; s < ns; s++) {
        fprintf(f,
                "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                "points=\"",
                colors[s % 4]);
        for (size_t i = 0; i < nx; i++)
            fprintf(f, "%.1f,%.1f ",
                    L + (log10(x[i]) - lx0) / (lx1 - lx0) * (W - L - R),
                    H - B - ys[(size_t)s * nx + i] / ymax * (H - B - T));
        fprintf(f, "\"/>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n",
                W - R + 10, T + 20 * s + 10, colors[s % 4], names[s]);
    }
    fputs("</svg>\n", f);
    fclose(f);
}

static void bench_sweep(void)
{
    static const unsigned ws[] = {1, 2, 4, 8, 16, 32, 64, 100};
    enum { NW = sizeof ws / sizeof ws[0] };
    struct workload w = {0};
    build_cpu(&w);
    w.name = "sweep";
    struct config cs[1 + 2 * NW];
    memset(cs, 0, sizeof cs);
    cs[0] =
        (struct config){.label = "serial", .runner = RUN_SERIAL, .workers = 1};
    for (int k = 0; k < NW; k++) {
        cs[1 + k] = (struct config){
            .label = "thread", .runner = RUN_THREAD, .workers = ws[k]};
        cs[1 + NW + k] = (struct config){
            .label = "process", .runner = RUN_PROCESS, .workers = ws[k]};
    }
    measure(&w, cs, 1 + 2 * NW);
    double med[1 + 2 * NW];
    report(&w, cs, 1 + 2 * NW, 0, 0, 0,
           "seed 001's table: the log count on 1..100 workers", med);
    double x[NW], ys[2 * NW];
    for (int k = 0; k < NW; k++) {
        x[k] = ws[k];
        ys[k] = med[1 + k];
        ys[NW + k] = med[1 + NW + k];
    }
    const char *names[] = {"thread", "process"};
    svg_lines("sweep", "Log count: wall time by number of workers", "workers",
              "seconds (median)", x, NW, ys, names, 2);
    unbuild(&w);
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void bench_scale(size_t max_n, unsigned workers)
{
    printf("\nscale: per-task cost as the table grows (thread, %u workers, "
           "median of %d)\n  %-10s %10s %14s\n",
           workers, opt.reps, "tasks", "us/task", "peak RSS MiB");
    double x[8], ys[8];
    size_t nx = 0;
    for (size_t n = 10; n <= max_n && nx < 8; n *= 10) {
        struct workload w = {.name = "scale", .n = n};
        build(&w, empty_task, NULL);
        struct config c = {
            .label = "thread", .runner = RUN_THREAD, .workers = workers};
        measure(&w, &c, 1);
        struct stats st = summarise(c.samples, opt.reps);
        printf("  %-10zu %10.4f %14.1f\n", n, st.median / (double)n * 1e6,
               (double)peak_rss_kib() / 1024);
        emit("scale", "thread", workers, n, st, 1e6 / (double)n, "us/task",
             "peak_rss_kib", (double)peak_rss_kib(), c.checksum, 1);
        x[nx] = (double)n;
        ys[nx++] = st.median / (double)n * 1e6;
        unbuild(&w);
    }
    const char *names[] = {"thread"};
    svg_lines("scale", "Cost per task as the table grows", "tasks",
              "us per task (median)", x, nx, ys, names, 1);
}

static void bench_mockapi(double scale)
{
    printf("\nmockapi: seed 000's branch fetch at time scale %g\n", scale);
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        printf("  (cannot locate the branch_fetch program)\n");
        return;
    }
    self[len] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    /* Installed side by side, or in the build tree's docs/examples. */
    const char *const where[] = {"", "/../docs/examples"};
    for (size_t k = 0; k < 2; k++) {
        char prog[4200], cmd[4400];
        snprintf(prog, sizeof prog, "%s%s/branch_fetch", self, where[k]);
        if (access(prog, X_OK))
            continue;
        snprintf(cmd, sizeof cmd,
                 "'%s' --compare --scale %g 2>/dev/null | grep -E "
                 "'^(Fetched|Speedup)'",
                 prog, scale);
        fflush(stdout);
        if (system(cmd))
            printf("  branch_fetch failed\n");
        return;
    }
    printf("  (branch_fetch not found next to simplepar-bench)\n");
}

static void usage(FILE *f)
{
    fputs("usage: simplepar-bench [options] [WORKLOAD...]\n"
          "workloads (default: all but scale and sweep):\n"
          "  overhead          100,000 empty tasks (--tasks), 2 workers\n"
          "  overhead-process  20,000 empty tasks (--process-tasks), 2 "
          "processes\n"
          "  io                1,000 tasks x 10 ms on 100 and 1,000 workers\n"
          "  cpu               seed 001's log count, 100 files x 10,000 lines\n"
          "  mockapi           seed 000's branch fetch (--scale)\n"
          "  scale             per-task cost for 10 .. 1,000,000 tasks\n"
          "  sweep             the log count on 1 .. 100 workers\n"
          "options: --reps N  --tasks N  --process-tasks N  --workers N\n"
          "         --scale S  --json FILE  --csv FILE  --svg DIR  --no-peers\n"
          "         --python PATH  --smoke (tiny sizes, one repetition)\n",
          f);
}

int main(int argc, char **argv)
{
    size_t tasks = 100000, ptasks = 20000, files = 100, lines = 10000;
    size_t scale_max = 1000000, io_n = 1000;
    unsigned workers = 2;
    double mock_scale = 0.05;
    const char *chosen[16];
    int nchosen = 0;
    opt.python = "python3";

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(a, "--reps"))
            opt.reps = atoi(v), i++;
        else if (v && !strcmp(a, "--tasks"))
            tasks = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--process-tasks"))
            ptasks = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--workers"))
            workers = (unsigned)atoi(v), i++;
        else if (v && !strcmp(a, "--scale"))
            mock_scale = atof(v), i++;
        else if (v && !strcmp(a, "--json"))
            opt.json = fopen(v, "w"), i++;
        else if (v && !strcmp(a, "--csv"))
            opt.csv = fopen(v, "w"), i++;
        else if (v && !strcmp(a, "--svg"))
            opt.svg_dir = v, i++;
        else if (v && !strcmp(a, "--python"))
            opt.python = v, i++;
        else if (!strcmp(a, "--no-peers"))
            opt.peers = 0;
        else if (!strcmp(a, "--smoke"))
            opt.smoke = 1;
        else if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (a[0] != '-' && nchosen < 16)
            chosen[nchosen++] = a;
        else {
            usage(stderr);
            return 2;
        }
    }
    if (opt.smoke) {
        opt.reps = 1;
        opt.peers = 0;
        tasks = 2000, ptasks = 500, files = 6, lines = 200;
        scale_max = 1000, io_n = 20, mock_scale = 0.005;
    }
    if (opt.reps < 1 || opt.reps > 64 || !workers || !tasks || !ptasks) {
        usage(stderr);
        return 2;
    }
    if (opt.csv)
        fputs("workload,runner,workers,tasks,unit,median,min,max,ratio,"
              "ratio_to,checksum\n",
              opt.csv);
    /* The peer script: installed beside the harness, or in the source. */
    static char peer[4300];
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0) {
        self[len] = 0;
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = 0;
        snprintf(peer, sizeof peer, "%s/futures_peer.py", self);
        if (access(peer, R_OK))
            snprintf(peer, sizeof peer, "%s/../share/simplepar/futures_peer.py",
                     self);
        opt.peer_script = peer;
    }
    if (opt.peers && !with_peer())
        fprintf(stderr, "note: no Python peer (python3 or %s missing)\n", peer);

    static const char *const all[] = {"overhead", "overhead-process", "io",
                                      "cpu", "mockapi"};
    if (!nchosen)
        for (size_t k = 0; k < sizeof all / sizeof *all; k++)
            chosen[nchosen++] = all[k];
    printf("simplepar %s benchmark, %ld online CPUs, %s\n", sp_version_string(),
           sysconf(_SC_NPROCESSORS_ONLN),
           with_peer() ? "with Python peers" : "without Python peers");
    for (int k = 0; k < nchosen; k++) {
        const char *c = chosen[k];
        if (!strcmp(c, "overhead"))
            bench_overhead(tasks, workers, 0);
        else if (!strcmp(c, "overhead-process"))
            bench_overhead(ptasks, workers, 1);
        else if (!strcmp(c, "io") || !strcmp(c, "sleep")) {
            bench_io(io_n, 10, opt.smoke ? 5 : 100, 0);
            bench_io(io_n, 10, opt.smoke ? 20 : 1000, 1);
        } else if (!strcmp(c, "cpu") || !strcmp(c, "sweep")) {
            if (!logs_dir)
                make_logs(files, lines);
            if (!strcmp(c, "cpu"))
                bench_cpu(workers);
            else
                bench_sweep();
        } else if (!strcmp(c, "mockapi"))
            bench_mockapi(mock_scale);
        else if (!strcmp(c, "scale"))
            bench_scale(scale_max, workers);
        else {
            fprintf(stderr, "unknown workload %s\n", c);
            usage(stderr);
            return 2;
        }
        fflush(stdout);
    }
    if (logs_dir)
        sp_mock_remove_logs(logs_dir, log_files);
    free(log_paths);
    if (opt.json)
        fclose(opt.json);
    if (opt.csv)
        fclose(opt.csv);
    return 0;
}
