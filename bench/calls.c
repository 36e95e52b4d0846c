/* SPDX-License-Identifier: MIT */
/* simplepar-bench, the calls workload: many small calls on pools and one-shot.
 */
#include "bench.h"

/* ---- many small calls -------------------------------------------------- */

/* One row of the calls workload: who makes the calls, and the figures. */
struct calls_row {
    const char *label;
    sp_backend backend;
    sp_pool *pool; /* while it runs; NULL: one-shot simple_parallel() */
    size_t calls;  /* calls per repetition */
    double target; /* us per call */
    double samples[64];
    uint64_t ok; /* OK entries in the last repetition */
};

enum { CALL_TASKS = 8, CALL_WORKERS = 2 };

/* One repetition: r->calls calls of the CALL_TASKS tasks, each results map
 * checked and freed inside the timing. Returns seconds per call. */
static double calls_once(struct calls_row *r, const sp_task *tasks,
                         size_t calls)
{
    sp_options o = {.backend = r->backend, .max_workers = CALL_WORKERS};
    uint64_t ok = 0;
    double t0 = now_s();
    for (size_t i = 0; i < calls; i++) {
        sp_results *res = NULL;
        int rc = r->pool ? sp_pool_run(r->pool, tasks, CALL_TASKS, NULL, &res)
                         : simple_parallel(tasks, CALL_TASKS, &o, &res);
        if (rc || sp_results_ok(res) != CALL_TASKS) {
            fprintf(stderr, "calls/%s: %s\n", r->label,
                    rc ? sp_last_error() : "a task failed");
            exit(1);
        }
        ok += sp_results_ok(res);
        sp_results_free(res);
    }
    double dt = now_s() - t0;
    r->ok = ok;
    return dt / (double)calls;
}

void bench_calls(const struct settings *s)
{
    /* The tasks exist before the process pool forks its workers: their
     * .arg points at w, which the workers must see. */
    struct workload w = {.name = "calls", .n = CALL_TASKS, .body = body_empty};
    build(&w);
    size_t pcalls = s->calls / 10 ? s->calls / 10 : 1;
    /* The first POOLS rows run on pools; the targets are issue 14's. */
    struct calls_row rows[] = {
        {.label = "thread-pool",
         .backend = SP_BACKEND_THREAD,
         .calls = s->calls,
         .target = 5},
        {.label = "process-pool",
         .backend = SP_BACKEND_PROCESS,
         .calls = s->calls,
         .target = 25},
        {.label = "thread-oneshot",
         .backend = SP_BACKEND_THREAD,
         .calls = s->calls,
         .target = 30},
        {.label = "process-oneshot",
         .backend = SP_BACKEND_PROCESS,
         .calls = pcalls,
         .target = 400},
    };
    enum { ROWS = sizeof rows / sizeof rows[0], POOLS = 2 };
    /* Each repetition of each row in a fresh process, as for io
     * (measure_isolated()): there a one-shot process call took about 0.45
     * ms, against 0.9-1.6 ms in the harness, whose pools and peers every
     * fork copied. */
    int isolated = can_isolate();
    if (iso.out) { /* a child: its one row, a warm-up and one timed run */
        for (int k = 0; k < ROWS; k++) {
            if (strcmp(rows[k].label, iso.label))
                continue;
            sp_pool_options po = {.backend = rows[k].backend,
                                  .max_workers = CALL_WORKERS};
            if (k < POOLS && sp_pool_create(&po, &rows[k].pool)) {
                fprintf(stderr, "calls/%s: %s\n", rows[k].label,
                        sp_last_error());
                _exit(1);
            }
            calls_once(&rows[k], w.tasks, (rows[k].calls + 9) / 10);
            double dt = calls_once(&rows[k], w.tasks, rows[k].calls);
            sp_pool_free(rows[k].pool);
            fprintf(iso.out, "ran %.9f %llu\n", dt,
                    (unsigned long long)rows[k].ok);
            fflush(iso.out);
            _exit(0);
        }
        _exit(2);
    }
    for (int k = 0; !isolated && k < POOLS; k++) { /* made once, untimed */
        sp_pool_options po = {.backend = rows[k].backend,
                              .max_workers = CALL_WORKERS};
        if (sp_pool_create(&po, &rows[k].pool)) {
            fprintf(stderr, "calls/%s: %s\n", rows[k].label, sp_last_error());
            exit(1);
        }
    }
    /* Python's executors, made once in the peer and reused by every call. */
    struct workload pw[2];
    struct config py[2];
    memset(py, 0, sizeof py);
    static const char *const executors[] = {"thread", "process"};
    int npy = 0;
    for (int e = 0; with_python() && e < 2; e++, npy++) {
        pw[e] = (struct workload){
            .name = "calls", .py_name = "calls", .py_arg = "8", .n = pcalls};
        snprintf(py[e].label, sizeof py[e].label, "py-%s-reused", executors[e]);
        py[e].who = WHO_PYTHON;
        py[e].py_executor = executors[e];
        py[e].py_mode = "reused";
        py[e].process = e;
        py[e].workers = CALL_WORKERS;
        run_python(&pw[e], &py[e]);
    }
    for (int r = -1; r < opt.reps; r++) /* r = -1: a short warm-up */
        for (int k = 0; k < ROWS; k++) {
            if (isolated) {
                if (r < 0)
                    continue; /* each child warms up */
                progress("calls: repetition %d/%d, %s(%d), in a fresh "
                         "process",
                         r + 1, opt.reps, rows[k].label, CALL_WORKERS);
                unsigned long long ok;
                int skipped;
                if (isolated_run(&w, rows[k].label, &rows[k].samples[r], &ok,
                                 &skipped) ||
                    skipped) {
                    fprintf(stderr, "calls/%s: the isolated run failed\n",
                            rows[k].label);
                    exit(1);
                }
                rows[k].ok = ok;
                continue;
            }
            if (r < 0)
                progress("calls: warm-up of %s(%d)", rows[k].label,
                         CALL_WORKERS);
            else
                progress("calls: repetition %d/%d, %s(%d)", r + 1, opt.reps,
                         rows[k].label, CALL_WORKERS);
            size_t n = r < 0 ? (rows[k].calls + 9) / 10 : rows[k].calls;
            double dt = calls_once(&rows[k], w.tasks, n);
            if (r >= 0)
                rows[k].samples[r] = dt;
        }
    progress(NULL);
    for (int k = 0; k < POOLS; k++) {
        sp_pool_free(rows[k].pool);
        rows[k].pool = NULL;
    }

    /* The table. */
    double pymed[2] = {0, 0};
    int best = -1;
    for (int e = 0; e < npy; e++)
        if (!py[e].skipped) {
            pymed[e] =
                summarise(py[e].samples, opt.reps).median / (double)pw[e].n;
            if (best < 0 || pymed[e] < pymed[best])
                best = e;
        }
    printf("\ncalls: %zu calls of %d empty tasks on %d workers (%zu on "
           "one-shot processes and on Python); median of %d (min..max)\n",
           s->calls, CALL_TASKS, CALL_WORKERS, pcalls, opt.reps);
    printf("  %-22s %10s %23s %10s  %s\n", "runner", "us/call", "min..max",
           "target", "status");
    int all_ok = 1;
    for (int k = 0; k < ROWS; k++) {
        struct calls_row *c = &rows[k];
        struct stats st = summarise(c->samples, opt.reps);
        double med_us = st.median * 1e6;
        char target[16];
        snprintf(target, sizeof target, "<= %g", c->target);
        char label[48];
        snprintf(label, sizeof label, "%s(%d)", c->label, CALL_WORKERS);
        printf("  %-22s %10.3f %11.3f..%-11.3f %10s  %s\n", label, med_us,
               st.min * 1e6, st.max * 1e6, target,
               med_us <= c->target ? "reached" : "not reached");
        emit(&(struct row){.workload = "calls",
                           .runner = c->label,
                           .unit = "us/call",
                           .ratio_to = "target",
                           .best_peer = best >= 0 ? py[best].label : "",
                           .workers = CALL_WORKERS,
                           .n = c->calls * CALL_TASKS,
                           .st = {med_us, st.min * 1e6, st.max * 1e6},
                           .ratio = med_us / c->target,
                           .vs_best = best >= 0 ? st.median / pymed[best] : -1,
                           .checksum = c->ok},
             1);
        all_ok &= c->ok == (uint64_t)c->calls * CALL_TASKS;
    }
    for (int e = 0; e < npy; e++) {
        struct config *c = &py[e];
        char label[48];
        snprintf(label, sizeof label, "%.31s(%u)", c->label, c->workers);
        if (c->skipped) {
            printf("  %s: not run: %s\n", label, c->skipped);
            continue;
        }
        double k = 1e6 / (double)pw[e].n;
        struct stats st = summarise(c->samples, opt.reps);
        printf("  %-22s %10.3f %11.3f..%.3f\n", label, st.median * k,
               st.min * k, st.max * k);
        /* The ratio: to simplepar's pool of the same kind. */
        const struct calls_row *pool = &rows[e];
        double pool_med = summarise(pool->samples, opt.reps).median;
        emit(&(struct row){.workload = "calls",
                           .runner = c->label,
                           .unit = "us/call",
                           .ratio_to = pool->label,
                           .best_peer = py[best].label,
                           .workers = c->workers,
                           .n = pw[e].n * CALL_TASKS,
                           .st = {st.median * k, st.min * k, st.max * k},
                           .ratio = pool_med > 0 ? pymed[e] / pool_med : 0,
                           .vs_best = pymed[e] / pymed[best],
                           .peer = 1,
                           .checksum = c->checksum},
             1);
        all_ok &= c->checksum == (uint64_t)pw[e].n * CALL_TASKS;
    }
    /* The Python ratios: each simplepar row against Python's reused
     * executor of the same kind, pools first. */
    for (int k = 0; k < ROWS; k++) {
        int e = rows[k].backend == SP_BACKEND_PROCESS;
        if (e >= npy || py[e].skipped)
            continue;
        double ratio = pymed[e] / summarise(rows[k].samples, opt.reps).median;
        printf("  vs Python: simplepar %s(%d), one %s() per call, %.1f times "
               "%s than %s(%u): %s(max_workers=%d) made once, per call %d "
               "submit()s, then wait() for all\n",
               rows[k].label, CALL_WORKERS,
               k < POOLS ? "sp_pool_run" : "simple_parallel",
               ratio >= 1 ? ratio : 1 / ratio, ratio >= 1 ? "faster" : "slower",
               py[e].label, py[e].workers,
               e ? "ProcessPoolExecutor" : "ThreadPoolExecutor", CALL_WORKERS,
               CALL_TASKS);
    }
    printf("  checksum: %s\n",
           all_ok ? "every call of every runner returned 8 OK entries"
                  : "a runner LOST entries");
    unbuild(&w);
    if (!all_ok)
        exit(1);
}
