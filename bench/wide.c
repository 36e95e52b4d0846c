/* SPDX-License-Identifier: MIT */
/* simplepar-bench, the seed002 workload: wide calls, one thread per task, cold
 * and warm. */
#include "bench.h"

/* ---- wide calls: seed 002 at scale, cold and warm threads --------------- */

/* Each repetition of a wide configuration runs in a fresh process: this
 * harness again, executed with --wide-child (a forked copy would start
 * with the harness's own resident pages counted in its RSS), so its peak
 * RSS (ru_maxrss from wait4) is that run's alone and its first call
 * finds no thread in the shared pool. */

struct wide_out {
    double wall[2]; /* cold: the first call; warm: the same call again */
    size_t ok[2];
    double rss_mib; /* the child's peak RSS */
};

/* The child: kind "thread" (simple_parallel() with max_workers = workers,
 * twice) or "naive" (the naive-pool peer with that many threads, once);
 * prints the wall times and OK counts. */
int wide_child_main(const char *kind, size_t n, unsigned ms, unsigned workers)
{
    struct workload w = {.name = "wide",
                         .n = n,
                         .body = body_sleep,
                         .body_arg = (void *)(uintptr_t)ms};
    build(&w);
    double wall[2] = {0, 0};
    size_t ok[2] = {0, 0};
    int calls = strcmp(kind, "thread") ? 1 : 2;
    for (int k = 0; k < calls; k++) {
        double t0 = now_s();
        if (calls == 1) {
            peer_result *out = calloc(n ? n : 1, sizeof *out);
            if (!out || naive_pool_run(n, workers, body_sleep,
                                       (void *)(uintptr_t)ms, out))
                return 1;
            wall[k] = now_s() - t0;
            for (size_t i = 0; i < n; i++)
                ok[k] += out[i].state == PEER_OK;
            free(out);
        } else {
            sp_options o = {.max_workers = workers};
            sp_results *res = NULL;
            if (simple_parallel(w.tasks, n, &o, &res)) {
                fprintf(stderr, "wide: %s\n", sp_last_error());
                return 1;
            }
            ok[k] = sp_results_ok(res);
            sp_results_free(res);
            wall[k] = now_s() - t0;
        }
    }
    printf("%.9f %.9f %zu %zu\n", wall[0], wall[1], ok[0], ok[1]);
    unbuild(&w);
    return 0;
}

static int wide_run_c(const char *kind, size_t n, unsigned ms, unsigned workers,
                      struct wide_out *o)
{
    char self[4096], a_n[32], a_ms[16], a_w[16], line[256];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return -1;
    self[len] = 0;
    snprintf(a_n, sizeof a_n, "%zu", n);
    snprintf(a_ms, sizeof a_ms, "%u", ms);
    snprintf(a_w, sizeof a_w, "%u", workers);
    char *argv[] = {self, "--wide-child", (char *)kind, a_n, a_ms, a_w, NULL};
    if (run_child(argv, line, sizeof line, &o->rss_mib))
        return -1;
    return sscanf(line, "%lf %lf %zu %zu", &o->wall[0], &o->wall[1], &o->ok[0],
                  &o->ok[1]) == 4
               ? 0
               : -1;
}

static int wide_run_asyncio(const char *script, size_t n, unsigned ms,
                            struct wide_out *o)
{
    char a_n[32], a_ms[16], line[256];
    snprintf(a_n, sizeof a_n, "%zu", n);
    snprintf(a_ms, sizeof a_ms, "%u", ms);
    char *argv[] = {(char *)opt.python_path, (char *)script, a_n, a_ms, NULL};
    double rss_child;
    long kib;
    if (run_child(argv, line, sizeof line, &rss_child) ||
        sscanf(line, "{\"wall\": %lf, \"peak_rss_kib\": %ld, \"ok\": %zu}",
               &o->wall[0], &kib, &o->ok[0]) != 3)
        return -1;
    o->rss_mib = (double)kib / 1024;
    return 0;
}

/* One row of a wide table: a runner and its samples. */
struct wide_row {
    const char *label;
    unsigned workers;
    double wall[64], rss[64];
    int ok; /* every run of it returned every task OK */
    const char *skipped;
};

static void wide_emit(const char *workload, const struct wide_row *r, size_t n,
                      const char *ratio_to, double ratio, int peer)
{
    struct stats st = summarise(r->wall, opt.reps);
    emit(&(struct row){.workload = workload,
                       .runner = r->label,
                       .unit = "s",
                       .ratio_to = ratio_to,
                       .best_peer = "",
                       .workers = r->workers,
                       .n = n,
                       .st = st,
                       .ratio = ratio,
                       .vs_best = -1,
                       .peer = peer,
                       .checksum = r->ok ? n : 0},
         1);
}

/* seed 002 at scale: 10,000 tasks that sleep 200 ms on 10,000 threads
 * (--wide-tasks, --wide-ms), beside Python's asyncio.gather of as many
 * asyncio.sleep()s and the naive pool with a thread per task; then the
 * wide io table (--io-wide workers) cold and warm. */
void bench_seed002(const struct settings *s)
{
    enum { T_COLD, T_WARM, NAIVE, ASYNCIO, ROWS };
    size_t n = s->wide_n;
    unsigned ms = s->wide_ms;
    char script[4400] = "";
    if (with_python()) {
        snprintf(script, sizeof script, "%s", opt.peer_script);
        char *slash = strrchr(script, '/');
        snprintf(slash ? slash + 1 : script,
                 sizeof script - (size_t)(slash ? slash + 1 - script : 0),
                 "asyncio_peer.py");
    }
    static struct wide_row rows[ROWS];
    memset(rows, 0, sizeof rows);
    rows[T_COLD] = (struct wide_row){.label = "thread-cold", .ok = 1};
    rows[T_WARM] = (struct wide_row){.label = "thread-warm", .ok = 1};
    rows[NAIVE] = (struct wide_row){.label = "naive-pool", .ok = 1};
    rows[ASYNCIO] = (struct wide_row){.label = "py-asyncio-gather", .ok = 1};
    for (int k = 0; k < ROWS; k++)
        rows[k].workers = k == ASYNCIO ? 1 : (unsigned)n;
    if (!opt.c_peers)
        rows[NAIVE].skipped = "--no-peers";
    if (!script[0] || access(script, R_OK))
        rows[ASYNCIO].skipped = "no python3 or asyncio_peer.py";
    for (int r = 0; r < opt.reps; r++) {
        struct wide_out o;
        progress("seed002: repetition %d/%d, thread", r + 1, opt.reps);
        if (wide_run_c("thread", n, ms, (unsigned)n, &o)) {
            fprintf(stderr, "seed002: the thread child failed\n");
            exit(1);
        }
        for (int k = 0; k < 2; k++) {
            rows[k].wall[r] = o.wall[k];
            rows[k].rss[r] = o.rss_mib; /* one child: one peak for both */
            rows[k].ok &= o.ok[k] == n;
        }
        if (!rows[NAIVE].skipped) {
            progress("seed002: repetition %d/%d, naive-pool", r + 1, opt.reps);
            if (wide_run_c("naive", n, ms, (unsigned)n, &o))
                rows[NAIVE].skipped = "could not start its threads";
            rows[NAIVE].wall[r] = o.wall[0];
            rows[NAIVE].rss[r] = o.rss_mib;
            rows[NAIVE].ok &= o.ok[0] == n;
        }
        if (!rows[ASYNCIO].skipped) {
            progress("seed002: repetition %d/%d, asyncio", r + 1, opt.reps);
            if (wide_run_asyncio(script, n, ms, &o))
                rows[ASYNCIO].skipped = "the asyncio peer failed";
            rows[ASYNCIO].wall[r] = o.wall[0];
            rows[ASYNCIO].rss[r] = o.rss_mib;
            rows[ASYNCIO].ok &= o.ok[0] == n;
        }
    }
    progress(NULL);
    double py_wall = 0, py_rss = 0;
    if (!rows[ASYNCIO].skipped) {
        py_wall = summarise(rows[ASYNCIO].wall, opt.reps).median;
        py_rss = summarise(rows[ASYNCIO].rss, opt.reps).median;
    }
    printf("\nseed002: %zu tasks x %u ms on threads, one worker per task "
           "(max_workers %zu); each run in a fresh process; cold: the "
           "call starts every thread, warm: the same call again at once "
           "(the pool's threads reused); median of %d (min..max)\n",
           n, ms, n, opt.reps);
    printf("  %-24s %8s %19s %8s %9s %8s\n", "runner", "wall s", "min..max",
           "vs py", "peak MiB", "vs py");
    int all_ok = 1;
    for (int k = 0; k < ROWS; k++) {
        struct wide_row *r = &rows[k];
        char label[48];
        snprintf(label, sizeof label, "%s(%u)", r->label, r->workers);
        if (r->skipped) {
            printf("  %-24s (not run: %s)\n", label, r->skipped);
            continue;
        }
        struct stats st = summarise(r->wall, opt.reps);
        double rss = summarise(r->rss, opt.reps).median;
        printf("  %-24s %8.4f %9.4f..%-8.4f", label, st.median, st.min, st.max);
        if (py_wall > 0)
            printf(" %7.2fx %9.1f %7.2fx\n", st.median / py_wall, rss,
                   rss / py_rss);
        else
            printf(" %8s %9.1f\n", "", rss);
        wide_emit("seed002", r, n, py_wall > 0 ? "py-asyncio-gather" : "",
                  py_wall > 0 ? st.median / py_wall : 0, k >= NAIVE);
        wide_emit("seed002-rss-mib",
                  &(struct wide_row){
                      .label = r->label, .workers = r->workers, .ok = r->ok},
                  n, "MiB", rss, k >= NAIVE);
        all_ok &= r->ok;
    }
    if (py_wall > 0) {
        double w = summarise(rows[T_COLD].wall, opt.reps).median / py_wall;
        double rss = summarise(rows[T_COLD].rss, opt.reps).median;
        printf("  target, thread-cold: wall <= 1.25x asyncio's: %.2fx, %s; "
               "peak RSS <= 60 MiB: %.1f, %s\n",
               w, w <= 1.25 ? "reached" : "not reached", rss,
               rss <= 60 ? "reached" : "not reached");
    }
    printf("  every run returned every task OK: %s\n", all_ok ? "yes" : "NO");
    if (!all_ok)
        exit(1);

    /* The wide io table cold and warm: its io-N row is warm (the
     * repetitions follow each other within the pool's idle time). */
    size_t io_n = s->io_n;
    unsigned io_w = s->io_wide, io_ms = 10;
    struct wide_row io[2] = {
        {.label = "thread-cold", .workers = io_w, .ok = 1},
        {.label = "thread-warm", .workers = io_w, .ok = 1}};
    for (int r = 0; r < opt.reps; r++) {
        struct wide_out o;
        progress("seed002: io cold/warm, repetition %d/%d", r + 1, opt.reps);
        if (wide_run_c("thread", io_n, io_ms, io_w, &o)) {
            fprintf(stderr, "seed002: the io child failed\n");
            exit(1);
        }
        for (int k = 0; k < 2; k++) {
            io[k].wall[r] = o.wall[k];
            io[k].ok &= o.ok[k] == io_n;
        }
    }
    progress(NULL);
    double ideal = (double)((io_n + io_w - 1) / io_w) * io_ms / 1e3;
    printf("\nio-%u cold and warm: %zu tasks x %u ms on %u threads, ideal "
           "%.3f s; each run in a fresh process (the first call starts "
           "every thread, the second reuses them); median of %d\n",
           io_w, io_n, io_ms, io_w, ideal, opt.reps);
    for (int k = 0; k < 2; k++) {
        struct stats st = summarise(io[k].wall, opt.reps);
        char label[48];
        snprintf(label, sizeof label, "%s(%u)", io[k].label, io_w);
        printf("  %-24s %8.4f %9.4f..%-8.4f %7.2fx ideal (target <= 3.0x: "
               "%s)\n",
               label, st.median, st.min, st.max, st.median / ideal,
               st.median / ideal <= 3.0 ? "reached" : "not reached");
        char name[32];
        snprintf(name, sizeof name, "io-%u-%s", io_w, k ? "warm" : "cold");
        wide_emit(name, &io[k], io_n, "ideal", st.median / ideal, 0);
        if (!io[k].ok) {
            printf("  ^ a run LOST tasks\n");
            exit(1);
        }
    }
}
