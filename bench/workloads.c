/* SPDX-License-Identifier: MIT */
/* simplepar-bench, the overhead, overhead-process, io, cpu, sweep, scale and
 * mockapi workloads. */
#include "bench.h"

/* ---- workloads ---------------------------------------------------------- */

void bench_overhead(const struct settings *s)
{
    struct workload w = {.name = "overhead",
                         .py_name = "overhead",
                         .n = s->tasks,
                         .body = body_empty,
                         .index = 1};
    build(&w);
    struct config cs[MAX_CONFIGS];
    int nc = configs(cs, s->workers,
                     SERIAL | THREAD | INDEX | C_THREAD_PEERS | PY_THREAD);
    measure(&w, cs, nc);
    char title[96];
    snprintf(title, sizeof title, "%zu empty tasks", w.n);
    report(&w, cs, nc, &(struct table){.title = title, .per_task = 1}, NULL);
    unbuild(&w);
}

void bench_overhead_process(const struct settings *s)
{
    struct workload w = {.name = "overhead-process",
                         .py_name = "overhead",
                         .n = s->ptasks,
                         .body = body_empty,
                         .isolate = 1};
    build(&w);
    struct config cs[MAX_CONFIGS];
    int nc = configs(cs, s->workers,
                     SERIAL | PROCESS | C_PROCESS_PEERS | PY_PROCESS);
    measure(&w, cs, nc);
    char title[96];
    snprintf(title, sizeof title, "%zu empty tasks in worker processes", w.n);
    report(&w, cs, nc, &(struct table){.title = title, .per_task = 1}, NULL);
    unbuild(&w);
}

void io_table(const struct settings *s, unsigned workers, int wide)
{
    enum { MS = 10 };
    char name[32], msarg[16];
    snprintf(name, sizeof name, "io-%u", workers);
    snprintf(msarg, sizeof msarg, "%u", (unsigned)MS);
    struct workload w = {.name = name,
                         .py_name = "io",
                         .py_arg = msarg,
                         .n = s->io_n,
                         .body = body_sleep,
                         .body_arg = (void *)(uintptr_t)MS,
                         .isolate = 1};
    build(&w);
    struct config cs[MAX_CONFIGS];
    /* Python's process pool is left out on the wide table: forking 1,000
     * interpreters takes seconds per run. */
    int nc = configs(cs, workers,
                     THREAD | PROCESS | C_THREAD_PEERS | C_PROCESS_PEERS |
                         PY_THREAD | (wide ? 0 : PY_PROCESS));
    measure(&w, cs, nc);
    double ideal = (double)((w.n + workers - 1) / workers) * MS / 1e3;
    char title[128];
    snprintf(title, sizeof title, "%zu tasks x %u ms, ideal %.3f s", w.n,
             (unsigned)MS, ideal);
    report(&w, cs, nc, &(struct table){.title = title, .ideal = ideal}, NULL);
    if (opt.svg_dir && wide) {
        /* The per-task timeline of one run on threads: the results map
         * drawn by the library's own Gantt chart (a row per worker). */
        sp_options o = {.max_workers = workers};
        sp_results *res;
        if (simple_parallel(w.tasks, w.n, &o, &res)) {
            fprintf(stderr, "%s: %s\n", w.name, sp_last_error());
            exit(1);
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/timeline.svg", opt.svg_dir);
        FILE *f = fopen(path, "w");
        if (!f) {
            perror(path);
            exit(1);
        }
        int rc = sp_results_write_svg(res, f);
        if (fclose(f) || rc) {
            fprintf(stderr, "%s: %s\n", path,
                    rc ? sp_last_error() : strerror(errno));
            exit(1);
        }
        printf("  chart: %s\n", path);
        sp_results_free(res);
    }
    unbuild(&w);
}

void bench_io(const struct settings *s)
{
    io_table(s, s->io_narrow, 0);
    io_table(s, s->io_wide, 1);
}

/* seed 001's log count: the files, made once, and a workload over them. */
char *logs_dir;
char *log_paths;
size_t log_files;

void make_logs(const struct settings *s)
{
    if (logs_dir)
        return;
    logs_dir = sp_mock_write_logs(s->files, s->lines, 22);
    if (!logs_dir) {
        perror("writing the log files");
        exit(1);
    }
    log_files = s->files;
    log_paths = malloc(log_files * PATH_LEN);
    if (!log_paths) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < log_files; i++)
        sp_mock_log_path(logs_dir, i, log_paths + i * PATH_LEN, PATH_LEN);
}

void build_cpu(const struct settings *s, struct workload *w)
{
    make_logs(s);
    *w = (struct workload){.name = "cpu",
                           .py_name = "cpu",
                           .py_arg = logs_dir,
                           .n = log_files,
                           .body = body_count,
                           .body_arg = log_paths,
                           .has_value = 1};
    build(w);
}

void bench_cpu(const struct settings *s)
{
    struct workload w;
    build_cpu(s, &w);
    struct config cs[MAX_CONFIGS];
    int nc = configs(cs, s->workers,
                     SERIAL | THREAD | PROCESS | C_THREAD_PEERS |
                         C_PROCESS_PEERS | PY_THREAD | PY_PROCESS);
    measure(&w, cs, nc);
    char title[96];
    snprintf(title, sizeof title,
             "%zu log files, count /api/v1/login (speedup = 1 / ratio)",
             log_files);
    report(&w, cs, nc, &(struct table){.title = title}, NULL);
    unbuild(&w);
}

FILE *svg_open(const char *name, int width, int height)
{
    if (!opt.svg_dir)
        return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.svg", opt.svg_dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
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
void svg_lines(const char *name, const char *title, const char *xlab,
               const char *ylab, const double *x, size_t nx, const double *ys,
               const char *const *names, int ns)
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
    if (fclose(f)) {
        fprintf(stderr, "%s.svg: %s\n", name, strerror(errno));
        exit(1);
    }
}

void bench_sweep(const struct settings *s)
{
    static const unsigned ws[] = {1, 2, 4, 8, 16, 32, 64, 100};
    enum { NW = sizeof ws / sizeof ws[0] };
    struct workload w;
    build_cpu(s, &w);
    w.name = "sweep";
    struct config cs[1 + 2 * NW];
    memset(cs, 0, sizeof cs);
    cs[0] = (struct config){.label = "serial",
                            .who = WHO_SIMPLEPAR,
                            .backend = SP_BACKEND_SERIAL,
                            .workers = 1};
    for (int k = 0; k < NW; k++) {
        cs[1 + k] = (struct config){.label = "thread",
                                    .who = WHO_SIMPLEPAR,
                                    .backend = SP_BACKEND_THREAD,
                                    .workers = ws[k]};
        cs[1 + NW + k] = (struct config){.label = "process",
                                         .who = WHO_SIMPLEPAR,
                                         .backend = SP_BACKEND_PROCESS,
                                         .process = 1,
                                         .workers = ws[k]};
    }
    measure(&w, cs, 1 + 2 * NW);
    double med[1 + 2 * NW];
    report(&w, cs, 1 + 2 * NW,
           &(struct table){
               .title = "seed 001's table: the log count on 1..100 workers"},
           med);
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

long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

void bench_scale(const struct settings *s)
{
    printf("\nscale: per-task cost as the table grows (thread, %u workers, "
           "median of %d)\n  %-10s %10s %13s %14s\n",
           s->workers, opt.reps, "tasks", "us/task", "index us/task",
           "peak RSS MiB");
    double x[8], ys[16];
    size_t nx = 0;
    for (size_t n = 10; n <= s->scale_max && nx < 8; n *= 10) {
        struct workload w = {
            .name = "scale", .n = n, .body = body_empty, .index = 1};
        build(&w);
        /* Keyed and index-keyed, interleaved. */
        struct config c[2] = {{.label = "thread",
                               .who = WHO_SIMPLEPAR,
                               .backend = SP_BACKEND_THREAD,
                               .workers = s->workers},
                              {.label = "thread-index",
                               .who = WHO_SIMPLEPAR,
                               .backend = SP_BACKEND_THREAD,
                               .index_keys = 1,
                               .workers = s->workers}};
        measure(&w, c, 2);
        double us[2];
        for (int k = 0; k < 2; k++) {
            struct stats st = summarise(c[k].samples, opt.reps);
            us[k] = st.median / (double)n * 1e6;
            double f = 1e6 / (double)n;
            emit(&(struct row){.workload = "scale",
                               .runner = c[k].label,
                               .unit = "us/task",
                               .ratio_to = "peak_rss_kib",
                               .best_peer = "",
                               .workers = s->workers,
                               .n = n,
                               .st = {st.median * f, st.min * f, st.max * f},
                               .ratio = (double)peak_rss_kib(),
                               .vs_best = -1,
                               .checksum = c[k].checksum},
                 1);
        }
        printf("  %-10zu %10.4f %13.4f %14.1f\n", n, us[0], us[1],
               (double)peak_rss_kib() / 1024);
        x[nx] = (double)n;
        ys[nx] = us[0];
        ys[8 + nx++] = us[1];
        unbuild(&w);
    }
    /* Series-major: the index-keyed series follows the keyed one. */
    memmove(ys + nx, ys + 8, nx * sizeof *ys);
    const char *names[] = {"thread", "thread-index"};
    svg_lines("scale", "Cost per task as the table grows", "tasks",
              "us per task (median)", x, nx, ys, names, 2);
}

void bench_mockapi(const struct settings *s)
{
    printf("\nmockapi: seed 000's branch fetch at time scale %g\n",
           s->mock_scale);
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
    /* Installed side by side (as simplepar-branch-fetch), or in the build
     * tree's docs/examples. */
    const char *const where[] = {"/simplepar-branch-fetch",
                                 "/../docs/examples/branch_fetch"};
    for (size_t k = 0; k < 2; k++) {
        char prog[4200], cmd[4400];
        snprintf(prog, sizeof prog, "%s%s", self, where[k]);
        if (access(prog, X_OK))
            continue;
        snprintf(cmd, sizeof cmd,
                 "'%s' --compare --scale %g 2>/dev/null | grep -E "
                 "'^(Fetched|Speedup)'",
                 prog, s->mock_scale);
        progress("mockapi: branch fetch, parallel then sequential");
        fflush(stdout);
        int rc = system(cmd);
        progress(NULL);
        if (rc)
            printf("  branch_fetch failed\n");
        return;
    }
    printf("  (branch_fetch not found next to simplepar-bench)\n");
}
