/* SPDX-License-Identifier: MIT */
/* simplepar-bench: what each backend buys you, measured side by side with
 * serial and with peers (other ways of running the same tasks: C thread
 * and process pools, GLib, OpenMP, Python's concurrent.futures), in one
 * run. See docs/benchmarks.md.
 *
 * Every figure is the median of --reps repetitions (min and max shown),
 * after one warm-up run of each configuration; repetitions of simplepar
 * and of the C peers are interleaved so machine drift hits all alike (the
 * Python peers time themselves in their own process). Every configuration
 * runs the same task body for every index and collects every outcome;
 * all must produce the same checksum of their results, and the harness
 * fails if they do not.
 *
 * Adding a workload: write a bench_*() function that fills a struct
 * workload (a peer_fn body over task indices) and calls measure() and
 * report(), then add one row to the workloads[] table. Adding a C peer:
 * one file in peers/ with a peer_run_fn, one row in c_peers[]. */
#define _DEFAULT_SOURCE
#include "simplepar.h"
#include "peers/peer.h"
#include "peers/naive-pool.h"
#include "peers/prefork-pool.h"
#ifdef SP_BENCH_HAVE_GLIB
#include "peers/glib-pool.h"
#endif
#ifdef SP_BENCH_HAVE_OPENMP
#include "peers/omp-tasks.h"
#endif
#include <simplepar/mockapi.h>

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the C peers -------------------------------------------------------- */

struct c_peer {
    const char *name;
    int process; /* its workers are processes */
    peer_run_fn run;
    const char *what;
};

static const struct c_peer c_peers[] = {
    {"naive-pool", 0, naive_pool_run,
     "a mutex+condvar thread pool fed one task at a time "
     "(bench/peers/naive-pool.c)"},
#ifdef SP_BENCH_HAVE_GLIB
    {"glib-pool", 0, glib_pool_run,
     "GLib's GThreadPool, one push per task (bench/peers/glib-pool.c)"},
#endif
#ifdef SP_BENCH_HAVE_OPENMP
    {"omp-tasks", 0, omp_tasks_run,
     "one OpenMP task per index in a parallel region "
     "(bench/peers/omp-tasks.c)"},
#endif
    {"prefork", 1, prefork_run,
     "fork()ed workers pulling index ranges from a pipe, outcomes back over "
     "a pipe (bench/peers/prefork-pool.c)"},
};
enum { N_C_PEERS = sizeof c_peers / sizeof c_peers[0] };

/* The peers a build may lack, and why, for --help. */
static const char *const optional_peers[][2] = {
    {"glib-pool", "meson found no glib-2.0, or a ThreadSanitizer build"},
    {"omp-tasks", "meson found no OpenMP 5, or a ThreadSanitizer build"},
};

/* ---- configurations: who runs a workload, on how many workers ----------- */

enum who { WHO_SIMPLEPAR, WHO_C_PEER, WHO_PYTHON };

struct config {
    char label[32];
    enum who who;
    sp_backend backend;        /* WHO_SIMPLEPAR */
    int index_keys;            /* WHO_SIMPLEPAR: sp_options.index_keys */
    const struct c_peer *peer; /* WHO_C_PEER */
    const char *py_executor;   /* WHO_PYTHON: "thread" or "process" */
    const char *py_mode;       /* WHO_PYTHON: "submit" or "batch" */
    int process;               /* tasks run in worker processes */
    unsigned workers;
    double samples[64];
    uint64_t checksum;
    unsigned chunksize;  /* WHO_PYTHON: tasks per chunk */
    const char *skipped; /* why it did not run, or NULL */
};

enum { MAX_CONFIGS = 24 };

/* What a table runs; or'ed together. */
enum {
    SERIAL = 1 << 0,
    THREAD = 1 << 1,
    PROCESS = 1 << 2,
    C_THREAD_PEERS = 1 << 3,
    C_PROCESS_PEERS = 1 << 4,
    PY_THREAD = 1 << 5,
    PY_PROCESS = 1 << 6,
    INDEX = 1 << 7, /* serial and thread also index-keyed (no keys) */
};

struct workload {
    const char *name;    /* the table's name: "io-100" */
    const char *py_name; /* the Python peer's workload */
    const char *py_arg;
    size_t n;
    peer_fn body; /* the task body every configuration runs */
    void *body_arg;
    int has_value; /* the body produces a result to collect */
    sp_task *tasks;
    char *keys;
    int index;       /* build itasks too: the workload has index-keyed runs */
    sp_task *itasks; /* the same rows with NULL keys; NULL unless index */
    int isolate;     /* each timed run of a C configuration in a fresh
                        process (see measure_isolated()) */
};

struct settings {
    size_t tasks, ptasks, files, lines, io_n, scale_max, calls, wide_n;
    unsigned workers, io_narrow, io_wide, wide_ms;
    double mock_scale;
    size_t bigresult_mib;      /* bigresult: the result's size */
    const char *bigresult_lib; /* bigresult: another libsimplepar's dir */
};

static struct {
    int reps, smoke, c_peers, python, tty, isolate;
    FILE *json, *csv;
    const char *svg_dir, *python_path, *peer_script;
    double t_start;
} opt = {.reps = 7, .c_peers = 1, .python = 1, .isolate = 1};

static unsigned peer_runs[N_C_PEERS]; /* tables each C peer ran in */

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

/* A progress line on stderr, only when stderr is a terminal; NULL clears
 * it. */
#if defined(__GNUC__)
#define BENCH_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define BENCH_PRINTF(f, a)
#endif
static void progress(const char *fmt, ...) BENCH_PRINTF(1, 2);
static void progress(const char *fmt, ...)
{
    if (!opt.tty)
        return;
    if (!fmt) {
        fputs("\r\033[K", stderr);
        return;
    }
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\r\033[K[%4.0f s] %s", now_s() - opt.t_start, line);
}

/* ---- task bodies: the same for simplepar and every peer ----------------- */

static int body_empty(size_t i, void *arg, long *value)
{
    (void)i;
    (void)arg;
    (void)value;
    return 0;
}

static int body_sleep(size_t i, void *arg, long *value)
{
    (void)i;
    (void)value;
    sleep_ms((unsigned)(uintptr_t)arg);
    return 0;
}

enum { PATH_LEN = 4096 };

static int body_count(size_t i, void *arg, long *value)
{
    long c =
        sp_mock_count_lines((const char *)arg + i * PATH_LEN, "/api/v1/login");
    if (c < 0)
        return 1;
    *value = c;
    return 0;
}

/* simplepar's task: the workload's body for this task's index; a result
 * is stored as the bytes of the long. */
static int sp_body(sp_ctx *ctx, void *arg)
{
    const struct workload *w = arg;
    long v = 0;
    if (w->body(sp_ctx_index(ctx), w->body_arg, &v))
        return sp_fail(ctx, 1, "%s: task %zu failed", w->name,
                       sp_ctx_index(ctx));
    return w->has_value ? sp_set_result(ctx, &v, sizeof v) : 0;
}

/* ---- running ------------------------------------------------------------ */

/* Checksums, computed alike by every configuration (and by the Python
 * peer): one per OK task plus 1000003 times its result. */
static uint64_t checksum_of(const sp_results *res)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < sp_results_count(res); i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (sp_entry_kind(e) != SP_KIND_OK)
            continue;
        size_t len;
        const void *data = sp_entry_data(e, &len);
        long v = 0;
        if (len == sizeof v)
            memcpy(&v, data, sizeof v);
        sum += 1 + (uint64_t)v * 1000003u;
    }
    return sum;
}

static uint64_t checksum_peer(const peer_result *out, size_t n)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        if (out[i].state == PEER_OK)
            sum += 1 + (uint64_t)out[i].value * 1000003u;
    return sum;
}

/* One timed run of simplepar or of a C peer; the map (or the peer's
 * array of outcomes) is built and freed inside the timing, since a caller
 * pays for both. sum: also compute the checksum. */
static double run_once(const struct workload *w, struct config *c, int sum)
{
    double t0 = now_s();
    if (c->who == WHO_C_PEER) {
        peer_result *out = calloc(w->n ? w->n : 1, sizeof *out);
        if (!out) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        if (c->peer->run(w->n, c->workers, w->body, w->body_arg, out)) {
            c->skipped = "could not start its workers";
            free(out);
            return 0;
        }
        uint64_t s = sum ? checksum_peer(out, w->n) : 0;
        free(out);
        double dt = now_s() - t0;
        if (sum)
            c->checksum = s;
        return dt;
    }
    sp_options o = {.backend = c->backend,
                    .max_workers = c->workers,
                    .index_keys = c->index_keys};
    sp_results *res = NULL;
    int rc =
        simple_parallel(c->index_keys ? w->itasks : w->tasks, w->n, &o, &res);
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

static int with_python(void)
{
    return opt.python && opt.python_path && opt.peer_script &&
           access(opt.peer_script, R_OK) == 0;
}

/* The Python peer: its own warm-up and repetitions (at most 3, it is
 * slow); fills samples with its min, median and max (so the median of
 * the samples is its median). */
static void run_python(const struct workload *w, struct config *c)
{
    char cmd[4096];
    int reps = opt.reps < 3 ? opt.reps : 3;
    progress("%s: %s(%u), %d runs and a warm-up in Python", w->name, c->label,
             c->workers, reps);
    snprintf(cmd, sizeof cmd, "'%s' '%s' %s %s %s %zu %u %d '%s' 2>/dev/null",
             opt.python_path, opt.peer_script, w->py_name, c->py_executor,
             c->py_mode, w->n, c->workers, reps, w->py_arg ? w->py_arg : "");
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    char line[512] = "";
    int got = p && fgets(line, sizeof line, p);
    if (p)
        pclose(p);
    double med, mn, mx;
    unsigned long long sum;
    if (!got || sscanf(line,
                       "{\"median\": %lf, \"min\": %lf, \"max\": %lf, "
                       "\"checksum\": %llu, \"chunksize\": %u}",
                       &med, &mn, &mx, &sum, &c->chunksize) != 5) {
        c->skipped = "the Python peer failed";
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

/* ---- isolation ---------------------------------------------------------- */

/* A workload that forks many processes or starts many threads (isolate
 * set) runs each timed run of each C configuration, simplepar's and the C
 * peers', in a fresh process: this harness again, executed with
 * --isolated-child, which builds the same workload, runs that one row
 * once to warm up and once timed, and prints the time. The harness
 * process carries what the rows before it left: the OpenMP peer's team
 * (1,000 threads after io-1000, kept to the end of the program), other
 * pools' idle threads and their stacks, gigabytes mapped and freed. Every
 * fork copies those mappings, and glibc's fork handler writes to each
 * other thread's descriptor in the child, so a fork there cost 2-3 times
 * one in a small program, for simplepar and for the pre-forked peer alike.
 * A fresh process per run measures each row as a program that does only
 * that would see it. --no-isolate runs everything in the harness. */
static struct {
    const char *def;           /* parent: the workload running now */
    const struct settings *s;  /* parent: its settings */
    const char *table, *label; /* child: the one row it runs */
    FILE *out;                 /* child: where its figures go */
} iso;

/* What a child needs besides its workload and row: the settings and the
 * options that decide a table's rows, as bytes. */
struct iso_args {
    struct settings s;
    int smoke, c_peers;
};

static int wide_spawn(char *const argv[], char *line, size_t len,
                      double *rss_mib);

/* Whether rows can run in fresh processes: this program can find itself
 * (/proc/self/exe; elsewhere every row runs in the harness). */
static int can_isolate(void)
{
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return 0;
    self[len] = 0;
    return opt.isolate && iso.s && access(self, X_OK) == 0;
}

/* One timed run of row `label` of table w in a fresh process: 0 and *t,
 * *sum (*skipped set when the row could not start its workers), or -1. */
static int isolated_run(const struct workload *w, const char *label, double *t,
                        unsigned long long *sum, int *skipped)
{
    char self[4096], hex[2 * sizeof(struct iso_args) + 1], line[256];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return -1;
    self[len] = 0;
    struct iso_args a;
    memset(&a, 0, sizeof a); /* the padding too: it is printed */
    a.s = *iso.s;
    a.s.bigresult_lib = NULL;
    a.smoke = opt.smoke;
    a.c_peers = opt.c_peers;
    for (size_t k = 0; k < sizeof a; k++)
        snprintf(hex + 2 * k, 3, "%02x", ((const unsigned char *)&a)[k]);
    char *argv[] = {self,
                    "--isolated-child",
                    (char *)iso.def,
                    (char *)w->name,
                    (char *)label,
                    hex,
                    NULL};
    double rss;
    char word[16] = "";
    if (wide_spawn(argv, line, sizeof line, &rss) ||
        sscanf(line, "%15s %lf %llu", word, t, sum) != 3)
        return -1;
    *skipped = !strcmp(word, "skipped");
    return 0;
}

static void measure_isolated(const struct workload *w, struct config *cs,
                             int nc)
{
    for (int c = 0; c < nc; c++)
        if (cs[c].who == WHO_PYTHON)
            run_python(w, &cs[c]);
    for (int r = 0; r < opt.reps; r++)
        for (int c = 0; c < nc; c++) {
            if (cs[c].who == WHO_PYTHON || cs[c].skipped)
                continue;
            progress("%s: repetition %d/%d, %s(%u), in a fresh process",
                     w->name, r + 1, opt.reps, cs[c].label, cs[c].workers);
            double t;
            unsigned long long sum;
            int skipped;
            if (isolated_run(w, cs[c].label, &t, &sum, &skipped)) {
                fprintf(stderr, "%s/%s: the isolated run failed\n", w->name,
                        cs[c].label);
                exit(1);
            }
            if (skipped) {
                cs[c].skipped = "could not start its workers";
                continue;
            }
            if (r > 0 && sum != cs[c].checksum) {
                fprintf(stderr, "%s/%s: checksum %llu, then %llu\n", w->name,
                        cs[c].label, (unsigned long long)cs[c].checksum, sum);
                exit(1);
            }
            cs[c].checksum = sum;
            cs[c].samples[r] = t;
        }
    progress(NULL);
}

/* In a child: run the row it was made for (a warm-up, then the timed
 * run), print its figures and end; every other table is left out. */
static void measure_child(const struct workload *w, struct config *cs, int nc)
{
    for (int c = 0; c < nc; c++)
        cs[c].skipped = "run in another process";
    if (strcmp(w->name, iso.table))
        return;
    for (int c = 0; c < nc; c++) {
        if (strcmp(cs[c].label, iso.label) || cs[c].who == WHO_PYTHON)
            continue;
        cs[c].skipped = NULL;
        run_once(w, &cs[c], 1);
        double t = cs[c].skipped ? 0 : run_once(w, &cs[c], 0);
        fprintf(iso.out, "%s %.9f %llu\n", cs[c].skipped ? "skipped" : "ran", t,
                (unsigned long long)cs[c].checksum);
        fflush(iso.out);
        _exit(0);
    }
    fprintf(stderr, "%s: no row %s\n", w->name, iso.label);
    _exit(2);
}

static void measure(const struct workload *w, struct config *cs, int nc)
{
    if (iso.out) {
        measure_child(w, cs, nc);
        return;
    }
    if (w->isolate && can_isolate()) {
        measure_isolated(w, cs, nc);
        return;
    }
    for (int c = 0; c < nc; c++) {
        if (cs[c].who == WHO_PYTHON) {
            run_python(w, &cs[c]);
            continue;
        }
        progress("%s: warm-up of %s(%u)", w->name, cs[c].label, cs[c].workers);
        run_once(w, &cs[c], 1); /* warm-up, and the checksum */
    }
    for (int r = 0; r < opt.reps; r++)
        for (int c = 0; c < nc; c++) {
            if (cs[c].who == WHO_PYTHON || cs[c].skipped)
                continue;
            progress("%s: repetition %d/%d, %s(%u)", w->name, r + 1, opt.reps,
                     cs[c].label, cs[c].workers);
            cs[c].samples[r] = run_once(w, &cs[c], 0);
        }
    progress(NULL);
}

/* The configurations of one table, in the order they print. */
static int configs(struct config *cs, unsigned workers, unsigned what)
{
    int nc = 0;
    memset(cs, 0, MAX_CONFIGS * sizeof *cs);
    static const struct {
        unsigned flag;
        const char *label;
        sp_backend backend;
    } ours[] = {{SERIAL, "serial", SP_BACKEND_SERIAL},
                {THREAD, "thread", SP_BACKEND_THREAD},
                {PROCESS, "process", SP_BACKEND_PROCESS}};
    for (size_t k = 0; k < sizeof ours / sizeof ours[0]; k++)
        if (what & ours[k].flag) {
            struct config *c = &cs[nc++];
            snprintf(c->label, sizeof c->label, "%s", ours[k].label);
            c->who = WHO_SIMPLEPAR;
            c->backend = ours[k].backend;
            c->process = ours[k].backend == SP_BACKEND_PROCESS;
            c->workers = ours[k].flag == SERIAL ? 1 : workers;
        }
    for (size_t k = 0; (what & INDEX) && k < 2; k++)
        if (what & ours[k].flag) {
            struct config *c = &cs[nc++];
            snprintf(c->label, sizeof c->label, "%s-index", ours[k].label);
            c->who = WHO_SIMPLEPAR;
            c->backend = ours[k].backend;
            c->index_keys = 1;
            c->workers = ours[k].flag == SERIAL ? 1 : workers;
        }
    for (size_t k = 0; opt.c_peers && k < N_C_PEERS; k++)
        if (what & (c_peers[k].process ? C_PROCESS_PEERS : C_THREAD_PEERS)) {
            struct config *c = &cs[nc++];
            snprintf(c->label, sizeof c->label, "%s", c_peers[k].name);
            c->who = WHO_C_PEER;
            c->peer = &c_peers[k];
            c->process = c_peers[k].process;
            c->workers = workers;
        }
    static const char *const executors[] = {"thread", "process"};
    static const char *const modes[] = {"batch", "submit"};
    for (int e = 0; with_python() && e < 2; e++) {
        if (!(what & (e ? PY_PROCESS : PY_THREAD)))
            continue;
        for (int m = 0; m < 2; m++) {
            struct config *c = &cs[nc++];
            snprintf(c->label, sizeof c->label, "py-%s-%s", executors[e],
                     modes[m]);
            c->who = WHO_PYTHON;
            c->py_executor = executors[e];
            c->py_mode = modes[m];
            c->process = e;
            c->workers = workers;
        }
    }
    return nc;
}

/* One row: to the table (unless quiet) and to --json / --csv. */
struct row {
    const char *workload, *runner, *unit, *ratio_to, *best_peer;
    unsigned workers;
    size_t n;
    struct stats st;       /* already scaled to unit */
    double ratio, vs_best; /* vs_best < 0: no peer in the table */
    int peer;
    uint64_t checksum;
};

static void emit(const struct row *r, int quiet)
{
    char label[48];
    snprintf(label, sizeof label, "%s(%u)", r->runner, r->workers);
    if (!quiet) {
        printf("  %-22s %10.4f %11.4f..%-11.4f %9.3fx", label, r->st.median,
               r->st.min, r->st.max, r->ratio);
        if (r->vs_best >= 0)
            printf(" %11.3fx", r->vs_best);
        putchar('\n');
    }
    if (opt.json)
        fprintf(opt.json,
                "{\"workload\": \"%s\", \"runner\": \"%s\", \"peer\": %s, "
                "\"workers\": %u, \"tasks\": %zu, \"unit\": \"%s\", "
                "\"median\": %.9g, \"min\": %.9g, \"max\": %.9g, \"ratio\": "
                "%.6g, \"ratio_to\": \"%s\", \"vs_best_peer\": %.6g, "
                "\"best_peer\": \"%s\", \"checksum\": %llu}\n",
                r->workload, r->runner, r->peer ? "true" : "false", r->workers,
                r->n, r->unit, r->st.median, r->st.min, r->st.max, r->ratio,
                r->ratio_to, r->vs_best, r->best_peer,
                (unsigned long long)r->checksum);
    if (opt.csv)
        fprintf(opt.csv,
                "%s,%s,%d,%u,%zu,%s,%.9g,%.9g,%.9g,%.6g,%s,%.6g,%s,%llu\n",
                r->workload, r->runner, r->peer, r->workers, r->n, r->unit,
                r->st.median, r->st.min, r->st.max, r->ratio, r->ratio_to,
                r->vs_best, r->best_peer, (unsigned long long)r->checksum);
}

/* How a Python configuration hands its tasks to the pool, for the text. */
static void py_how(const struct config *c, char *buf, size_t len)
{
    if (!strcmp(c->py_mode, "submit"))
        snprintf(buf, len, "one submit() per task, then each result()");
    else if (!strcmp(c->py_executor, "process"))
        snprintf(buf, len, "executor.map(fn, tasks, chunksize=%u)",
                 c->chunksize);
    else
        snprintf(buf, len, "executor.map over chunks of %u task%s",
                 c->chunksize, c->chunksize == 1 ? "" : "s");
}

static int ran(const struct config *c)
{
    return !c->skipped;
}

/* Index of the fastest peer among the configurations (process: only
 * process peers, -1: any), or -1 when there is none. */
static int best_peer(const struct config *cs, int nc, const double *med,
                     int process)
{
    int best = -1;
    for (int c = 0; c < nc; c++)
        if (cs[c].who != WHO_SIMPLEPAR && ran(&cs[c]) &&
            (process < 0 || cs[c].process == process) &&
            (best < 0 || med[c] < med[best]))
            best = c;
    return best;
}

/* The comparisons with Python under a table: the headline against
 * Python's faster way for each simplepar backend, then the per-task
 * futures shape, each saying what both sides do. */
static void python_lines(const struct config *cs, int nc, const double *med)
{
    for (int d = 0; d < nc; d++) {
        if (cs[d].who != WHO_SIMPLEPAR || cs[d].backend == SP_BACKEND_SERIAL)
            continue;
        int fast = -1, submit = -1;
        for (int c = 0; c < nc; c++) {
            if (cs[c].who != WHO_PYTHON || !ran(&cs[c]) ||
                cs[c].process != cs[d].process)
                continue;
            if (fast < 0 || med[c] < med[fast])
                fast = c;
            if (!strcmp(cs[c].py_mode, "submit"))
                submit = c;
        }
        if (fast < 0)
            continue;
        char how[96];
        py_how(&cs[fast], how, sizeof how);
        printf("  vs Python, headline: simplepar %s(%u), one "
               "simple_parallel() call, %.1f times faster than Python's "
               "faster way here, %s(%u): %s\n",
               cs[d].label, cs[d].workers, med[fast] / med[d], cs[fast].label,
               cs[fast].workers, how);
        if (submit >= 0 && submit != fast) {
            py_how(&cs[submit], how, sizeof how);
            printf("  vs Python, per-task futures (the seed's shape): %.1f "
                   "times faster than %s(%u): %s\n",
                   med[submit] / med[d], cs[submit].label, cs[submit].workers,
                   how);
        }
    }
}

/* How a table reads its figures. */
struct table {
    const char *title;
    int per_task; /* µs per task, else wall seconds */
    double ideal; /* > 0: ratios to this wall time */
    int base;     /* else: ratios to this configuration */
};

/* Print a table and its comparisons; fails the run if the checksums
 * differ. Returns the medians in med[] (seconds). */
static void report(const struct workload *w, struct config *cs, int nc,
                   const struct table *t, double *med)
{
    double scale = t->per_task ? 1e6 / (double)w->n : 1.0;
    const char *unit = t->per_task ? "us/task" : "s";
    double m[MAX_CONFIGS] = {0};
    for (int c = 0; c < nc; c++)
        if (ran(&cs[c]))
            m[c] = summarise(cs[c].samples, opt.reps).median;
    int best = best_peer(cs, nc, m, -1);
    char ratio_to[48];
    if (t->ideal > 0)
        snprintf(ratio_to, sizeof ratio_to, "ideal");
    else
        snprintf(ratio_to, sizeof ratio_to, "%s", cs[t->base].label);
    printf("\n%s: %s; median of %d (min..max)\n", w->name, t->title, opt.reps);
    printf("  %-22s %10s %23s %10s%s\n", "runner",
           t->per_task ? "us/task" : "wall s", "min..max", ratio_to,
           best >= 0 ? "  vs best peer" : "");
    double ref = t->ideal > 0 ? t->ideal : m[t->base];
    uint64_t want = 0;
    int have_want = 0, same = 1;
    for (int c = 0; c < nc; c++) {
        if (!ran(&cs[c])) {
            printf("  %-22s (not run: %s)\n", cs[c].label, cs[c].skipped);
            continue;
        }
        if (cs[c].who == WHO_C_PEER)
            peer_runs[cs[c].peer - c_peers]++;
        struct stats st = summarise(cs[c].samples, opt.reps);
        if (med)
            med[c] = st.median;
        struct row r = {
            .workload = w->name,
            .runner = cs[c].label,
            .unit = unit,
            .ratio_to = ratio_to,
            .best_peer = best >= 0 ? cs[best].label : "",
            .workers = cs[c].workers,
            .n = w->n,
            .st = {st.median * scale, st.min * scale, st.max * scale},
            .ratio = st.median / ref,
            .vs_best = best >= 0 ? st.median / m[best] : -1,
            .peer = cs[c].who != WHO_SIMPLEPAR,
            .checksum = cs[c].checksum,
        };
        emit(&r, 0);
        if (!have_want)
            want = cs[c].checksum, have_want = 1;
        else if (cs[c].checksum != want) {
            same = 0;
            printf("  ^ checksum %llu differs from %llu\n",
                   (unsigned long long)cs[c].checksum,
                   (unsigned long long)want);
        }
    }
    if (best >= 0) {
        printf("  best peer: %s(%u), %.4f %s\n", cs[best].label,
               cs[best].workers, m[best] * scale, unit);
        int bp = best_peer(cs, nc, m, 1);
        for (int d = 0; d < nc; d++)
            if (cs[d].who == WHO_SIMPLEPAR && cs[d].process && bp >= 0 &&
                bp != best)
                printf("  best process peer: %s(%u), %.4f %s; simplepar "
                       "%s(%u) takes %.3fx its time\n",
                       cs[bp].label, cs[bp].workers, m[bp] * scale, unit,
                       cs[d].label, cs[d].workers, m[d] / m[bp]);
    }
    python_lines(cs, nc, m);
    printf("  checksum %llu: %s\n", (unsigned long long)want,
           same ? "identical for every runner" : "DIFFERS between runners");
    if (!same)
        exit(1);
}

static void build(struct workload *w)
{
    w->tasks = calloc(w->n ? w->n : 1, sizeof *w->tasks);
    w->keys = malloc((w->n ? w->n : 1) * 16);
    w->itasks = w->index ? calloc(w->n ? w->n : 1, sizeof *w->itasks) : NULL;
    if (!w->tasks || !w->keys || (w->index && !w->itasks)) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < w->n; i++) {
        snprintf(w->keys + i * 16, 16, "task-%u", (unsigned)(i % 100000000));
        w->tasks[i] =
            (sp_task){.key = w->keys + i * 16, .fn = sp_body, .arg = w};
        if (w->index)
            w->itasks[i] = (sp_task){.fn = sp_body, .arg = w};
    }
}

static void unbuild(struct workload *w)
{
    free(w->tasks);
    free(w->keys);
    free(w->itasks);
}

/* ---- workloads ---------------------------------------------------------- */

static void bench_overhead(const struct settings *s)
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

static void bench_overhead_process(const struct settings *s)
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

static void io_table(const struct settings *s, unsigned workers, int wide)
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

static void bench_io(const struct settings *s)
{
    io_table(s, s->io_narrow, 0);
    io_table(s, s->io_wide, 1);
}

/* seed 001's log count: the files, made once, and a workload over them. */
static char *logs_dir;
static char *log_paths;
static size_t log_files;

static void make_logs(const struct settings *s)
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

static void build_cpu(const struct settings *s, struct workload *w)
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

static void bench_cpu(const struct settings *s)
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

static FILE *svg_open(const char *name, int width, int height)
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
    if (fclose(f)) {
        fprintf(stderr, "%s.svg: %s\n", name, strerror(errno));
        exit(1);
    }
}

static void bench_sweep(const struct settings *s)
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

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void bench_scale(const struct settings *s)
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

static void bench_mockapi(const struct settings *s)
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

/* ---- large results ------------------------------------------------------ */

/* One task makes a result of --bigresult-mib MiB; each configuration runs
 * once per repetition in a fresh process (the harness re-executes itself
 * with --bigresult-child), so peaks do not mix. The caller reads every
 * byte of the result, as a real caller would. Peak RSS: the caller's is
 * its own ru_maxrss; the worker's is RUSAGE_CHILDREN's ru_maxrss after the
 * workers were reaped (the largest of them; for a pool, through its fork
 * server), or the caller's own on threads. */
enum {
    BIG_THREAD_OWNED,
    BIG_THREAD_COPY,
    BIG_PROCESS_OWNED,
    BIG_PROCESS_COPY,
    BIG_PPOOL_OWNED,
    BIG_PIPE_PEER,
    BIG_CONFIGS
};
static const struct {
    const char *label;
    int process, copy;
    const char *what;
} big_configs[BIG_CONFIGS] = {
    {"thread-owned", 0, 0, "thread backend, sp_set_result_owned()"},
    {"thread-copy", 0, 1, "thread backend, sp_set_result() (copies)"},
    {"process-owned", 1, 0, "process backend, sp_set_result_owned()"},
    {"process-copy", 1, 1, "process backend, sp_set_result() (copies)"},
    {"ppool-owned", 1, 0, "process pool, sp_set_result_owned()"},
    {"pipe-peer", 1, 0,
     "peer: fork, the child write()s its buffer to a pipe, the parent "
     "read()s it into one buffer of the known size"},
};

struct big_fig {
    double wall, caller_mib, worker_mib;
    int ok;
};

static size_t big_len;

static unsigned char *big_make(void)
{
    unsigned char *p = malloc(big_len + 1);
    if (p)
        memset(p, 0x5a, big_len); /* every page touched */
    return p;
}

static int big_body(sp_ctx *ctx, void *arg)
{
    int copy = *(const int *)arg;
    unsigned char *p = big_make();
    if (!p)
        return sp_fail(ctx, 1, "out of memory for %zu bytes", big_len);
    if (!copy)
        return sp_set_result_owned(ctx, p, big_len, NULL);
    int rc = sp_set_result(ctx, p, big_len);
    free(p);
    return rc;
}

/* Every byte as made, and the NUL after them. */
static int big_check(const unsigned char *d, size_t len)
{
    if (!d || len != big_len || d[len] != 0)
        return 0;
    size_t bad = 0;
    for (size_t j = 0; j < len; j++)
        bad |= d[j] ^ 0x5a;
    return !bad;
}

static double rusage_mib(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_maxrss / 1024;
}

/* Run configuration k once, in this (fresh) process. */
static struct big_fig big_run(int k)
{
    struct big_fig f = {0};
    int copy = big_configs[k].copy;
    double t0 = now_s();
    if (k == BIG_PIPE_PEER) {
        int fd[2];
        if (pipe(fd))
            return f;
        pid_t pid = fork();
        if (pid == 0) {
            close(fd[0]);
            unsigned char *p = big_make();
            for (size_t off = 0; p && off < big_len;) {
                ssize_t w = write(fd[1], p + off, big_len - off);
                if (w <= 0)
                    _exit(1);
                off += (size_t)w;
            }
            _exit(p ? 0 : 1);
        }
        close(fd[1]);
        unsigned char *d = malloc(big_len + 1);
        size_t got = 0;
        for (ssize_t r = 1; d && r > 0 && got < big_len; got += (size_t)r)
            if ((r = read(fd[0], d + got, big_len - got)) <= 0)
                break;
        close(fd[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        if (d)
            d[got] = 0;
        f.ok = d && got == big_len && status == 0 && big_check(d, got);
        free(d);
    } else {
        sp_task t = {.key = "big", .fn = big_body, .arg = &copy};
        sp_options o = {.backend = big_configs[k].process ? SP_BACKEND_PROCESS
                                                          : SP_BACKEND_THREAD,
                        .max_workers = 1};
        sp_results *res = NULL;
        sp_pool *pool = NULL;
        int rc;
        if (k == BIG_PPOOL_OWNED) {
            sp_pool_options po = {.backend = SP_BACKEND_PROCESS,
                                  .max_workers = 1};
            rc = sp_pool_create(&po, &pool);
            t0 = now_s(); /* the call, not the pool's start */
            if (!rc)
                rc = sp_pool_run(pool, &t, 1, NULL, &res);
        } else {
            rc = simple_parallel(&t, 1, &o, &res);
        }
        size_t len = 0;
        const sp_entry *e = rc ? NULL : sp_results_get(res, "big");
        const unsigned char *d = e ? sp_entry_data(e, &len) : NULL;
        f.ok = e && sp_entry_kind(e) == SP_KIND_OK && big_check(d, len);
        sp_results_free(res);
        sp_pool_free(pool);
    }
    f.wall = now_s() - t0;
    f.caller_mib = rusage_mib(RUSAGE_SELF);
    f.worker_mib =
        big_configs[k].process ? rusage_mib(RUSAGE_CHILDREN) : f.caller_mib;
    return f;
}

/* --bigresult-child K MIB: run configuration K and print its figures. */
static int big_child(int k, size_t mib)
{
    big_len = mib << 20;
    struct big_fig f = big_run(k);
    printf("%.6f %.1f %.1f %d\n", f.wall, f.caller_mib, f.worker_mib, f.ok);
    return f.ok ? 0 : 1;
}

/* Run configuration k in a fresh process: this program again, with lib
 * (when not NULL) first on the library path. */
static struct big_fig big_spawn(int k, size_t mib, const char *lib)
{
    struct big_fig f = {0};
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    int fd[2];
    if (len <= 0 || pipe(fd))
        return f;
    self[len] = 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        if (lib)
            setenv("LD_LIBRARY_PATH", lib, 1);
        char ks[16], ms[32];
        snprintf(ks, sizeof ks, "%d", k);
        snprintf(ms, sizeof ms, "%zu", mib);
        execl(self, self, "--bigresult-child", ks, ms, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char line[128] = "";
    FILE *in = fdopen(fd[0], "r");
    if (in && !fgets(line, sizeof line, in))
        line[0] = 0;
    if (in)
        fclose(in);
    int status = 0;
    waitpid(pid, &status, 0);
    if (sscanf(line, "%lf %lf %lf %d", &f.wall, &f.caller_mib, &f.worker_mib,
               &f.ok) != 4)
        f.ok = 0;
    return f;
}

/* MiB of memory available now (MemAvailable), or 0 when unknown. */
static size_t mem_available_mib(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    size_t kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %zu kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib / 1024;
}

static void bench_bigresult(const struct settings *s)
{
    size_t mib = s->bigresult_mib;
    size_t avail = mem_available_mib();
    /* The copying rows hold the result three times at their peak. */
    while (avail && mib > 8 && 3 * mib + 256 > avail)
        mib /= 2;
    if (mib != s->bigresult_mib)
        printf("\nbigresult: only %zu MiB available: %zu MiB results instead "
               "of %zu\n",
               avail, mib, s->bigresult_mib);
    enum { ROWS = BIG_CONFIGS + 2 }; /* + the old library's process rows */
    const char *labels[ROWS];
    int cfg[ROWS];
    const char *lib[ROWS];
    int nrows = 0;
    for (int k = 0; k < BIG_CONFIGS; k++, nrows++) {
        labels[nrows] = big_configs[k].label;
        cfg[nrows] = k;
        lib[nrows] = NULL;
    }
    if (s->bigresult_lib) {
        static const int old[] = {BIG_PROCESS_OWNED, BIG_PROCESS_COPY};
        static const char *const names[] = {"process-owned@lib",
                                            "process-copy@lib"};
        for (int j = 0; j < 2; j++, nrows++) {
            labels[nrows] = names[j];
            cfg[nrows] = old[j];
            lib[nrows] = s->bigresult_lib;
        }
    }
    static double wall[ROWS][64], caller[ROWS][64], worker[ROWS][64];
    for (int r = 0; r < opt.reps; r++)
        for (int k = 0; k < nrows; k++) {
            progress("bigresult: repetition %d/%d, %s", r + 1, opt.reps,
                     labels[k]);
            struct big_fig f = big_spawn(cfg[k], mib, lib[k]);
            if (!f.ok) {
                progress(NULL);
                fprintf(stderr, "bigresult/%s: the run failed\n", labels[k]);
                exit(1);
            }
            wall[k][r] = f.wall;
            caller[k][r] = f.caller_mib / (double)mib;
            worker[k][r] = f.worker_mib / (double)mib;
        }
    progress(NULL);
    double peer_wall = summarise(wall[BIG_PIPE_PEER], opt.reps).median;
    printf("\nbigresult: one task's %zu MiB result, read whole by the caller; "
           "peak RSS as a multiple of the result size; median of %d "
           "(min..max)\n",
           mib, opt.reps);
    printf("  %-20s %8s %8s %15s %9s %15s\n", "runner", "wall s", "vs peer",
           "caller peak x", "", "worker peak x");
    for (int k = 0; k < nrows; k++) {
        struct stats w = summarise(wall[k], opt.reps);
        struct stats c = summarise(caller[k], opt.reps);
        struct stats p = summarise(worker[k], opt.reps);
        printf("  %-20s %8.3f %7.2fx %6.2f (%.2f..%.2f) %6.2f (%.2f..%.2f)\n",
               labels[k], w.median, w.median / peer_wall, c.median, c.min,
               c.max, p.median, p.min, p.max);
        const char *what[3] = {"s", "caller_peak_x", "worker_peak_x"};
        struct stats st[3] = {w, c, p};
        for (int j = 0; j < 3; j++)
            emit(&(struct row){.workload = "bigresult",
                               .runner = labels[k],
                               .unit = what[j],
                               .ratio_to = j ? "result size" : "pipe-peer",
                               .best_peer = "pipe-peer",
                               .workers = 1,
                               .n = mib,
                               .st = st[j],
                               .ratio = j ? st[j].median : w.median / peer_wall,
                               .vs_best = w.median / peer_wall,
                               .peer = cfg[k] == BIG_PIPE_PEER,
                               .checksum = 1},
                 1);
    }
    for (int k = 0; k < BIG_CONFIGS; k++)
        printf("  %-20s %s\n", big_configs[k].label, big_configs[k].what);
    if (s->bigresult_lib)
        printf("  %-20s the process rows with the library in %s\n", "...@lib",
               s->bigresult_lib);
}

/* ---- task graphs -------------------------------------------------------- */

/* One table of the graph workload: empty tasks, each waiting for
 * deps[i] (a NULL-terminated list, or none). */
static double graph_run(sp_task *t, size_t n, sp_backend b, unsigned workers)
{
    double t0 = now_s();
    sp_options o = {.backend = b, .max_workers = workers};
    sp_results *res = NULL;
    if (simple_parallel(t, n, &o, &res) || sp_results_ok(res) != n) {
        fprintf(stderr, "graph: %s\n", res ? "a task failed" : sp_last_error());
        exit(1);
    }
    sp_results_free(res);
    return now_s() - t0;
}

static int graph_empty(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return 0;
}

/* The three tables of the graph workload, n rows each. */
struct graph_tables {
    size_t n;
    char *keys;
    const char **links, **all;
    sp_task *t[3]; /* plain, chain, fan-in */
};

static void graph_tables_build(struct graph_tables *g, size_t n)
{
    g->n = n;
    g->keys = malloc(n * 16);
    g->links = malloc(2 * n * sizeof *g->links); /* the chain's lists */
    g->all = malloc(n * sizeof *g->all);         /* the fan-in's */
    for (int k = 0; k < 3; k++)
        g->t[k] = calloc(n, sizeof *g->t[k]);
    if (!g->keys || !g->links || !g->all || !g->t[0] || !g->t[1] || !g->t[2]) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    sp_task *plain = g->t[0], *chain = g->t[1], *fanin = g->t[2];
    for (size_t i = 0; i < n; i++) {
        char *k = g->keys + i * 16;
        snprintf(k, 16, "g%u", (unsigned)(i % 100000000));
        plain[i] = (sp_task){.key = k, .fn = graph_empty};
        chain[i] = plain[i];
        fanin[i] = plain[i];
        if (i) {
            g->links[2 * i] = g->keys + (i - 1) * 16;
            g->links[2 * i + 1] = NULL;
            chain[i].after = &g->links[2 * i];
        }
        if (i + 1 < n)
            g->all[i] = k;
    }
    g->all[n - 1] = NULL;
    fanin[n - 1].after = g->all;
}

static void graph_tables_free(struct graph_tables *g)
{
    for (int k = 0; k < 3; k++)
        free(g->t[k]);
    free(g->all);
    free(g->links);
    free(g->keys);
}

static void bench_graph(const struct settings *s)
{
    struct graph_tables big, small;
    graph_tables_build(&big, s->tasks);
    graph_tables_build(&small, s->ptasks);
    struct {
        const char *label;
        sp_backend b;
        unsigned workers;
        struct graph_tables *g;
    } runners[] = {{"serial", SP_BACKEND_SERIAL, 1, &big},
                   {"thread", SP_BACKEND_THREAD, s->workers, &big},
                   {"process", SP_BACKEND_PROCESS, s->workers, &small}};
    enum { RUNNERS = sizeof runners / sizeof runners[0] };
    static const char *const shapes[] = {"plain", "chain", "fan-in"};
    double samples[RUNNERS][3][64];
    for (int r = -1; r < opt.reps; r++) /* r = -1: warm-up */
        for (int b = 0; b < RUNNERS; b++)
            for (int g = 0; g < 3; g++) {
                progress("graph: repetition %d/%d, %s %s", r + 1, opt.reps,
                         runners[b].label, shapes[g]);
                double dt = graph_run(runners[b].g->t[g], runners[b].g->n,
                                      runners[b].b, runners[b].workers);
                if (r >= 0)
                    samples[b][g][r] = dt;
            }
    progress(NULL);
    printf("\ngraph: empty tasks (%zu; %zu on processes) as a plain table, "
           "a chain (each after the one before) and a fan-in (the last after "
           "all the others); median of %d (min..max)\n",
           big.n, small.n, opt.reps);
    printf("  %-22s %10s %23s %10s\n", "runner", "us/task", "min..max",
           "plain");
    for (int b = 0; b < RUNNERS; b++) {
        double base = summarise(samples[b][0], opt.reps).median;
        double scale = 1e6 / (double)runners[b].g->n;
        for (int g = 0; g < 3; g++) {
            struct stats st = summarise(samples[b][g], opt.reps);
            char runner[40];
            snprintf(runner, sizeof runner, "%s-%s", runners[b].label,
                     shapes[g]);
            emit(&(struct row){.workload = "graph",
                               .runner = runner,
                               .unit = "us/task",
                               .ratio_to = "plain",
                               .best_peer = "",
                               .workers = runners[b].workers,
                               .n = runners[b].g->n,
                               .st = {st.median * scale, st.min * scale,
                                      st.max * scale},
                               .ratio = st.median / base,
                               .vs_best = -1},
                 0);
        }
    }
    printf("  target: a task with one dependency costs at most 2x a task "
           "without (the ratio column)\n");
    graph_tables_free(&big);
    graph_tables_free(&small);
}

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

static void bench_calls(const struct settings *s)
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

/* ---- the mpi workload ---------------------------------------------------- */

/* The path of a file beside this program, or "" when it is not there. */
static void beside(const char *name, char *out, size_t len)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    out[0] = 0;
    if (n <= 0)
        return;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    snprintf(out, len, "%s/%s", self, name);
    if (access(out, R_OK))
        out[0] = 0;
}

/* A Python that has mpi4py.futures: --python's, else Debian's own (where
 * python3-mpi4py installs it), or NULL. */
static const char *mpi4py_python(void)
{
    static const char *const tries[] = {NULL, "/usr/bin/python3"};
    for (size_t k = 0; k < 2; k++) {
        const char *py = k ? tries[k] : opt.python_path;
        char cmd[4200];
        snprintf(cmd, sizeof cmd,
                 "'%s' -c 'import mpi4py.futures' >/dev/null 2>&1", py);
        if (py && system(cmd) == 0)
            return py;
    }
    return NULL;
}

struct mpi_fig {
    char workload[16], runner[48];
    size_t n;
    double med, min, max;
    unsigned long long sum;
    int peer;
};

static int read_fig(const char *line, struct mpi_fig *f)
{
    return sscanf(line,
                  "{\"workload\": \"%15[^\"]\", \"runner\": \"%47[^\"]\", "
                  "\"tasks\": %zu, \"median\": %lf, \"min\": %lf, \"max\": "
                  "%lf, \"checksum\": %llu}",
                  f->workload, f->runner, &f->n, &f->med, &f->min, &f->max,
                  &f->sum) == 7;
}

static void mpi_table(const char *name, const char *title, struct mpi_fig *f,
                      int nf, double ideal)
{
    int per_task = ideal <= 0;
    double best = -1, farm = -1;
    for (int k = 0; k < nf; k++) {
        double v = per_task ? f[k].med / (double)f[k].n : f[k].med;
        if (f[k].peer && (best < 0 || v < best))
            best = v;
        if (!strcmp(f[k].runner, "mpi-farm"))
            farm = v;
    }
    const char *ratio_to = per_task ? "mpi-farm" : "ideal";
    printf("\n%s: %s; median of %d (min..max)\n", name, title, opt.reps);
    printf("  %-22s %10s %23s %10s%s\n", "runner",
           per_task ? "us/task" : "wall s", "min..max", ratio_to,
           best > 0 ? "  vs best peer" : "");
    for (int k = 0; k < nf; k++) {
        double scale = per_task ? 1e6 / (double)f[k].n : 1.0;
        double v = f[k].med * scale / (per_task ? 1e6 : 1.0);
        double ref = per_task ? farm : ideal;
        struct row r = {
            .workload = name,
            .runner = f[k].runner,
            .unit = per_task ? "us/task" : "s",
            .ratio_to = ratio_to,
            .best_peer = "",
            .workers = 2,
            .n = f[k].n,
            .st = {f[k].med * scale, f[k].min * scale, f[k].max * scale},
            .ratio = ref > 0 ? v / ref : 0,
            .vs_best = best > 0 ? v / best : -1,
            .peer = f[k].peer,
            .checksum = f[k].sum,
        };
        emit(&r, 0);
        if (f[k].sum != f[k].n) {
            printf("  ^ checksum %llu: not one OK outcome per task\n",
                   f[k].sum);
            exit(1);
        }
    }
    printf("  checksum: one OK outcome per task for every runner\n");
}

static void bench_mpi(const struct settings *s)
{
    char driver[4300], peer[4300];
    beside("simplepar-bench-mpi", driver, sizeof driver);
    if (!driver[0]) {
        printf("\nmpi: not run: simplepar-bench-mpi was not built (meson "
               "found no MPI; see docs/mpi.md)\n");
        return;
    }
    if (system("command -v mpiexec >/dev/null 2>&1")) {
        printf("\nmpi: not run: no mpiexec on PATH\n");
        return;
    }
    /* What Open MPI needs on one machine in a container, unless the
     * caller says otherwise: running as root, and shared memory without
     * cross-memory attach (tests/mpi-env.sh explains each). */
    if (geteuid() == 0) {
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
    }
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
    size_t n = s->tasks, sleeps = opt.smoke ? 20 : 200;
    size_t py_n = n < 5000 ? n : 5000;
    const unsigned ms = 10;
    struct mpi_fig empty[8], sleep[8];
    int ne = 0, ns = 0;
    char cmd[9000], line[512];
    snprintf(cmd, sizeof cmd,
             "mpiexec -n 3 --oversubscribe '%s' --tasks %zu --sleep-tasks %zu "
             "--ms %u --reps %d",
             driver, n, sleeps, ms, opt.reps);
    progress("mpi: simplepar-mpi and the MPI farm under mpiexec -n 3");
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    while (p && fgets(line, sizeof line, p)) {
        struct mpi_fig f = {0};
        if (!read_fig(line, &f))
            continue;
        f.peer = !strncmp(f.runner, "mpi-farm", 8);
        if (!strcmp(f.workload, "empty") && ne < 8)
            empty[ne++] = f;
        else if (!strcmp(f.workload, "sleep") && ns < 8)
            sleep[ns++] = f;
    }
    if (!p || pclose(p) != 0 || ne < 3 || ns < 3) {
        progress(NULL);
        printf("\nmpi: %s failed\n", cmd);
        exit(1);
    }
    /* mpi4py.futures: fewer empty tasks (it takes about 200 us each). */
    const char *py = opt.python ? mpi4py_python() : NULL;
    beside("mpi4py_peer.py", peer, sizeof peer);
    if (!peer[0])
        beside("../share/simplepar/mpi4py_peer.py", peer, sizeof peer);
    static const char *const modes[] = {"submit", "map"};
    for (int w = 0; py && peer[0] && w < 2; w++)
        for (int m = 0; m < 2; m++) {
            size_t tn = w ? sleeps : py_n;
            progress("mpi: mpi4py.futures, %s tasks, %s", w ? "sleep" : "empty",
                     modes[m]);
            snprintf(cmd, sizeof cmd,
                     "mpiexec -n 3 --oversubscribe '%s' -m mpi4py.futures "
                     "'%s' %s %s %zu 2 %d %u 2>/dev/null",
                     py, peer, w ? "sleep" : "empty", modes[m], tn,
                     opt.reps < 3 ? opt.reps : 3, ms);
            fflush(NULL);
            FILE *q = popen(cmd, "r");
            struct mpi_fig f = {.n = tn, .peer = 1};
            unsigned chunk = 0;
            int got = q && fgets(line, sizeof line, q) &&
                      sscanf(line,
                             "{\"median\": %lf, \"min\": %lf, \"max\": %lf, "
                             "\"checksum\": %llu, \"chunksize\": %u}",
                             &f.med, &f.min, &f.max, &f.sum, &chunk) == 5;
            if (q)
                pclose(q);
            if (!got)
                continue;
            snprintf(f.workload, sizeof f.workload, "%s",
                     w ? "sleep" : "empty");
            snprintf(f.runner, sizeof f.runner, "mpi4py-%s", modes[m]);
            if (w)
                sleep[ns++] = f;
            else
                empty[ne++] = f;
        }
    progress(NULL);
    char title[160];
    snprintf(title, sizeof title,
             "%zu empty tasks (mpi4py: %zu) on 2 worker ranks of "
             "mpiexec -n 3",
             n, py_n);
    mpi_table("mpi-empty", title, empty, ne, 0);
    double ideal = (double)((sleeps + 1) / 2) * ms / 1e3;
    snprintf(title, sizeof title,
             "%zu tasks x %u ms on 2 worker ranks, ideal %.3f s", sleeps, ms,
             ideal);
    mpi_table("mpi-sleep", title, sleep, ns, ideal);
    if (!py)
        printf("  (no mpi4py peer: no python3 with mpi4py.futures, "
               "e.g. Debian's python3-mpi4py)\n");
}

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
static int wide_child_main(const char *kind, size_t n, unsigned ms,
                           unsigned workers)
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

/* Run one child (argv: the program and its arguments, NULL-terminated)
 * and read its one line; 0, or -1 if it failed. */
static int wide_spawn(char *const argv[], char *line, size_t len,
                      double *rss_mib)
{
    int fd[2];
    if (pipe(fd))
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    int got = f && fgets(line, (int)len, f) != NULL;
    if (f)
        fclose(f);
    else
        close(fd[0]);
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR)
        ;
    *rss_mib = (double)ru.ru_maxrss / 1024;
    return got && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
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
    if (wide_spawn(argv, line, sizeof line, &o->rss_mib))
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
    if (wide_spawn(argv, line, sizeof line, &rss_child) ||
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
static void bench_seed002(const struct settings *s)
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

/* ---- the workloads table ------------------------------------------------ */

struct workload_def {
    const char *name;
    int by_default;
    /* Seconds one run takes with the default options on the 2-CPU virtual
     * machine of docs/benchmarks.md, as the harness printed it ("took");
     * keep both in step when a workload changes. */
    int secs_here;
    const char *about; /* what it runs and what its figures are */
    void (*run)(const struct settings *);
};

static const struct workload_def workloads[] = {
    {"overhead", 1, 9,
     "100,000 empty tasks (--tasks) on 2 workers (--workers): the cost per "
     "task of validation, scheduling, timing and the results map, with no "
     "work to hide it. serial and thread, keyed (keys formatted before the "
     "timing) and index-keyed (serial-index, thread-index: "
     "sp_options.index_keys, no keys), against the C thread peers and "
     "Python threads; figure: us per task, ratio to serial.",
     bench_overhead},
    {"overhead-process", 1, 12,
     "20,000 empty tasks (--process-tasks) on 2 worker processes: fork, the "
     "shared ring and the frame decoder per task. process against the "
     "pre-forked pool and Python processes; each timed run of a C row in a "
     "fresh process (--no-isolate: in the harness); figure: us per task, "
     "ratio to serial.",
     bench_overhead_process},
    {"io", 1, 55,
     "1,000 tasks that sleep 10 ms, on 100 workers and on 1,000: what "
     "starting and switching between many workers costs. Every backend and "
     "peer (no Python processes at 1,000); each timed run of a C row in a "
     "fresh process (--no-isolate: in the harness); figure: wall seconds, "
     "ratio to the ideal ceil(tasks / workers) x 10 ms.",
     bench_io},
    {"cpu", 1, 8,
     "seed 001's log count: /api/v1/login counted in 100 files of 10,000 "
     "lines on 2 workers. Every backend and peer; figure: wall seconds, "
     "ratio to serial (the speedup is 1 / ratio).",
     bench_cpu},
    {"mockapi", 1, 1,
     "seed 000's branch fetch against the mock API at time scale --scale, "
     "in parallel and one call after another; prints the speedup.",
     bench_mockapi},
    {"graph", 1, 9,
     "100,000 empty tasks (--tasks) as a plain table, as a chain (each "
     "waits for the one before) and as a fan-in (the last waits for all the "
     "others), on serial and on 2 threads, and 20,000 (--process-tasks) "
     "on 2 worker processes: what a dependency costs. figure: us per task, "
     "ratio to the plain table of the same runner.",
     bench_graph},
    {"calls", 1, 17,
     "10,000 calls (--calls) of 8 empty tasks on 2 workers: what a call "
     "costs when the workers outlive it (sp_pool_run on a thread pool and "
     "a process pool) and when they do not (simple_parallel() on threads, "
     "and on processes), against Python's ThreadPoolExecutor and "
     "ProcessPoolExecutor made once and reused (per call 8 submit()s, then "
     "wait for all). One-shot processes and Python make a tenth of the "
     "calls. Each timed run of a simplepar row in a fresh process, its pool "
     "made there (--no-isolate: in the harness). figure: us per call, each "
     "row's target and whether it is reached; how many times faster than "
     "Python's reused executor.",
     bench_calls},
    {"seed002", 1, 20,
     "seed 002 at scale: 10,000 tasks (--wide-tasks) that sleep 200 ms "
     "on threads, one worker per task (max_workers 10,000), each run in a "
     "fresh process: the first call (thread-cold: it starts every thread) "
     "and the same call again (thread-warm: the pool's threads reused), "
     "beside the naive pool with a thread per task and Python's "
     "asyncio.gather of as many asyncio.sleep(0.2) (bench/peers/"
     "asyncio_peer.py). figure: wall seconds and peak RSS (ru_maxrss) with "
     "their ratios to asyncio's, and issue 17's targets. Then io's wide "
     "table (1,000 x 10 ms on 1,000 threads) cold and warm the same way, "
     "against the ideal: io-1000's thread row is warm.",
     bench_seed002},
    {"scale", 0, 6,
     "the thread overhead for 10, 100, ..., 1,000,000 empty tasks, keyed "
     "and index-keyed, with the peak RSS: the cost per task should stay "
     "flat.",
     bench_scale},
    {"mpi", 0, 40,
     "libsimplepar-mpi under mpiexec -n 3 (rank 0 schedules, 2 worker "
     "ranks with one local worker each): --tasks empty tasks and 200 tasks "
     "of 10 ms, against a hand-written MPI task farm and mpi4py.futures "
     "(which gets at most 5,000 empty tasks: it takes ~200 us each); "
     "figures: us per task, and wall seconds against the ideal. Needs the "
     "simplepar-bench-mpi driver (built when meson finds MPI).",
     bench_mpi},
    {"bigresult", 0, 60,
     "one task makes a 1 GiB result (--bigresult-mib; less when the "
     "machine has not 3x that available), which the caller reads whole: "
     "sp_set_result_owned() and sp_set_result() on threads, on one-shot "
     "processes and on a process pool, each run in a fresh process, beside "
     "a fork-and-pipe peer (and, with --bigresult-lib DIR, the process rows "
     "again with the libsimplepar in DIR, e.g. an older build). figures: "
     "wall seconds and their ratio to the peer; peak RSS of the caller and "
     "of the worker as multiples of the result size.",
     bench_bigresult},
    {"sweep", 0, 18,
     "the log count on 1, 2, 4, ..., 100 thread and process workers "
     "(seed 001's tables); ratio to serial.",
     bench_sweep},
};
enum { N_WORKLOADS = sizeof workloads / sizeof workloads[0] };

static const struct workload_def *find_workload(const char *name)
{
    for (size_t k = 0; k < N_WORKLOADS; k++)
        if (!strcmp(workloads[k].name, name))
            return &workloads[k];
    return NULL;
}

/* Print s wrapped at 78 columns, each line indented by `indent` except
 * the first, which starts where the cursor is (at column `at`). */
static void wrap_at(FILE *f, const char *s, int at, int indent)
{
    int room = 78 - at;
    while (*s) {
        int len = (int)strlen(s), cut = len;
        if (len > room) {
            cut = room;
            while (cut > 0 && s[cut] != ' ')
                cut--;
            if (cut == 0)
                cut = room;
        }
        fprintf(f, "%.*s\n", cut, s);
        s += cut;
        while (*s == ' ')
            s++;
        if (*s)
            fprintf(f, "%*s", indent, "");
        room = 78 - indent;
    }
}

static void wrap(FILE *f, const char *s, int indent)
{
    fprintf(f, "%*s", indent, "");
    wrap_at(f, s, indent, indent);
}

static void usage(FILE *f, int full)
{
    fputs("usage: simplepar-bench [options] [WORKLOAD...]\n", f);
    if (!full) {
        fputs("simplepar-bench --help explains the workloads, the columns "
              "and the options.\n",
              f);
        return;
    }
    wrap(f,
         "Runs each WORKLOAD on simplepar's backends and on peers, other ways "
         "of running the same task body and collecting every result, all in "
         "one run; every figure is the median of --reps runs, interleaved "
         "across configurations, after a warm-up run of each.",
         0);
    fputs("\nworkloads (times: one run with the default options on a shared "
          "2-CPU virtual\nmachine; longer when it is busy):\n",
          f);
    int total = 0;
    for (size_t k = 0; k < N_WORKLOADS; k++) {
        fprintf(f, "  %-17s about %d s%s\n", workloads[k].name,
                workloads[k].secs_here,
                workloads[k].by_default ? "" : " (only when named)");
        if (workloads[k].by_default)
            total += workloads[k].secs_here;
        wrap(f, workloads[k].about, 6);
    }
    fprintf(f,
            "With no WORKLOAD: every workload not marked 'only when named', "
            "about %d s\nthere in all.\n\n",
            total);
    fputs("columns:\n", f);
    static const char *const cols[][2] = {
        {"runner(N)", "who ran the tasks, on N workers: serial, thread and "
                      "process are simplepar's backends (in calls: "
                      "thread-pool, process-pool, thread-oneshot, "
                      "process-oneshot), the rest are peers"},
        {"us/task, us/call, wall s",
         "the median of the runs: cost per task, per call (calls), or wall "
         "time of the whole batch"},
        {"min..max", "the fastest and the slowest run"},
        {"serial, ideal", "the median divided by serial's median, or by the "
                          "ideal wall time"},
        {"vs best peer", "the median divided by the fastest peer's median "
                         "in the same table: below 1, faster than every "
                         "peer"},
        {"target, status", "calls only: the row's target in us per call, and "
                           "whether its median is within it"},
    };
    for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
        fprintf(f, "  %s\n", cols[k][0]);
        wrap(f, cols[k][1], 6);
    }
    fputs("\npeers in this build:\n", f);
    for (size_t k = 0; k < N_C_PEERS; k++) {
        fprintf(f, "  %s\n", c_peers[k].name);
        wrap(f, c_peers[k].what, 6);
    }
    for (size_t k = 0; k < sizeof optional_peers / sizeof *optional_peers;
         k++) {
        int built = 0;
        for (size_t j = 0; j < N_C_PEERS; j++)
            built |= !strcmp(c_peers[j].name, optional_peers[k][0]);
        if (!built)
            fprintf(f, "  %s: not built (%s)\n", optional_peers[k][0],
                    optional_peers[k][1]);
    }
    fputs("  py-thread-batch, py-process-batch\n", f);
    wrap(f,
         "Python's concurrent.futures handed the whole batch in chunks of "
         "ceil(tasks / (4 x workers)): executor.map(fn, tasks, chunksize) "
         "on processes, map over the chunks on threads (ThreadPoolExecutor "
         "ignores chunksize). Like simplepar's one call, this is the fair "
         "comparison; the headline under each table compares with Python's "
         "faster way.",
         6);
    fputs("  py-thread-submit, py-process-submit\n", f);
    wrap(f,
         "one submit() per task, then every future's result(): the shape of "
         "the seeds' simple_parallel().",
         6);
    fputs("  py-thread-reused, py-process-reused\n", f);
    wrap(f,
         "calls only: one executor made once, outside the timing, serving "
         "every call; a call is 8 submit()s, then wait() for all. Python "
         "peers need python3 and time themselves (3 runs after a warm-up).",
         6);
    fputs("\noptions:\n", f);
    static const char *const opts[][2] = {
        {"--reps N", "runs per configuration (default 7, at most 64)"},
        {"--tasks N", "tasks of overhead and graph (default 100000)"},
        {"--process-tasks N", "tasks of overhead-process and of graph on "
                              "processes (default 20000)"},
        {"--calls N", "calls of the calls workload (default 10000; a tenth "
                      "on one-shot processes and on Python)"},
        {"--wide-tasks N", "tasks (and threads) of seed002 (default "
                           "10000)"},
        {"--workers N", "workers of overhead, overhead-process, cpu, graph, "
                        "scale (default 2; calls always has 2)"},
        {"--scale S", "time scale of mockapi (default 0.05)"},
        {"--bigresult-mib N", "the result size of bigresult in MiB (default "
                              "1024)"},
        {"--bigresult-lib DIR", "bigresult also runs its process rows with "
                                "the libsimplepar.so in DIR"},
        {"--json FILE", "also write one JSON object per row"},
        {"--csv FILE", "also write one CSV line per row"},
        {"--svg DIR", "also draw charts: timeline.svg (the per-task "
                      "timeline of one io-1000 run on threads, drawn by "
                      "sp_results_write_svg()), scale.svg, sweep.svg"},
        {"--no-python", "leave out the Python peers"},
        {"--no-peers", "leave out every peer, C and Python"},
        {"--no-isolate", "run the rows of io, overhead-process and calls "
                         "in the harness process too (by default each of "
                         "their timed runs has a fresh process of its "
                         "own)"},
        {"--python PATH", "the Python interpreter (default python3)"},
        {"--require PEER", "fail unless the C peer PEER was built and ran "
                           "(repeatable; for tests)"},
        {"--smoke", "tiny sizes, one run, no Python: checks that every "
                    "configuration runs and agrees, measures nothing"},
    };
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
        fprintf(f, "  %-18s ", opts[k][0]);
        wrap_at(f, opts[k][1], 21, 21);
    }
    fputs("Each workload ends with the time it took; a progress line goes to "
          "stderr when it\nis a terminal.\n",
          f);
}

/* --isolated-child DEF TABLE LABEL ARGS: run workload DEF as the parent
 * would, measuring only row LABEL of table TABLE (measure_child()); the
 * figures go to standard output, everything else the workload prints to
 * /dev/null. */
static int isolated_child_main(const char *def, const char *table,
                               const char *label, const char *hex)
{
    struct iso_args a;
    const struct workload_def *d = find_workload(def);
    if (!d || strlen(hex) != 2 * sizeof a)
        return 2;
    for (size_t k = 0; k < sizeof a; k++) {
        unsigned byte;
        if (sscanf(hex + 2 * k, "%2x", &byte) != 1)
            return 2;
        ((unsigned char *)&a)[k] = (unsigned char)byte;
    }
    int fd = dup(STDOUT_FILENO);
    iso.out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!iso.out || !freopen("/dev/null", "w", stdout))
        return 2;
    opt.reps = 1;
    opt.smoke = a.smoke;
    opt.c_peers = a.c_peers;
    opt.python = 0;
    opt.tty = 0;
    iso.table = table;
    iso.label = label;
    d->run(&a.s);
    fprintf(stderr, "no table %s in %s\n", table, def);
    return 2;
}

int main(int argc, char **argv)
{
    struct settings s = {.tasks = 100000,
                         .ptasks = 20000,
                         .files = 100,
                         .lines = 10000,
                         .io_n = 1000,
                         .scale_max = 1000000,
                         .calls = 10000,
                         .workers = 2,
                         .io_narrow = 100,
                         .io_wide = 1000,
                         .wide_n = 10000,
                         .wide_ms = 200,
                         .mock_scale = 0.05,
                         .bigresult_mib = 1024};
    const struct workload_def *chosen[32];
    const char *required[8];
    int nchosen = 0, nrequired = 0;
    opt.python_path = "python3";
    opt.tty = isatty(STDERR_FILENO);
    opt.t_start = now_s();
    /* A dead pipe reader must not kill the harness. */
    signal(SIGPIPE, SIG_IGN);

    if (argc == 6 && !strcmp(argv[1], "--isolated-child"))
        return isolated_child_main(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 6 && !strcmp(argv[1], "--wide-child"))
        return wide_child_main(argv[2], strtoul(argv[3], NULL, 10),
                               (unsigned)atoi(argv[4]),
                               (unsigned)atoi(argv[5]));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(a, "--reps"))
            opt.reps = atoi(v), i++;
        else if (v && !strcmp(a, "--tasks"))
            s.tasks = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--process-tasks"))
            s.ptasks = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--wide-tasks"))
            s.wide_n = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--calls"))
            s.calls = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--workers"))
            s.workers = (unsigned)atoi(v), i++;
        else if (v && !strcmp(a, "--scale"))
            s.mock_scale = atof(v), i++;
        else if (v && !strcmp(a, "--bigresult-mib"))
            s.bigresult_mib = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--bigresult-lib"))
            s.bigresult_lib = v, i++;
        else if (i + 2 < argc && !strcmp(a, "--bigresult-child"))
            return big_child(atoi(v), strtoul(argv[i + 2], NULL, 10));
        else if (v && !strcmp(a, "--json")) {
            if (!(opt.json = fopen(v, "w"))) {
                perror(v);
                return 2;
            }
            i++;
        } else if (v && !strcmp(a, "--csv")) {
            if (!(opt.csv = fopen(v, "w"))) {
                perror(v);
                return 2;
            }
            i++;
        } else if (v && !strcmp(a, "--svg"))
            opt.svg_dir = v, i++;
        else if (v && !strcmp(a, "--python"))
            opt.python_path = v, i++;
        else if (v && !strcmp(a, "--require") && nrequired < 8)
            required[nrequired++] = v, i++;
        else if (!strcmp(a, "--no-python"))
            opt.python = 0;
        else if (!strcmp(a, "--no-isolate"))
            opt.isolate = 0;
        else if (!strcmp(a, "--no-peers"))
            opt.python = opt.c_peers = 0;
        else if (!strcmp(a, "--smoke"))
            opt.smoke = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, 1);
            return 0;
        } else if (a[0] != '-' && find_workload(a) && nchosen < 32)
            chosen[nchosen++] = find_workload(a);
        else {
            if (a[0] != '-')
                fprintf(stderr, "unknown workload %s\n", a);
            else
                fprintf(stderr, "unknown option %s\n", a);
            usage(stderr, 0);
            return 2;
        }
    }
    if (opt.smoke) {
        opt.reps = 1;
        opt.python = 0;
        s = (struct settings){.tasks = 2000,
                              .ptasks = 500,
                              .files = 6,
                              .lines = 200,
                              .io_n = 20,
                              .scale_max = 1000,
                              .calls = 50,
                              .workers = s.workers,
                              .io_narrow = 5,
                              .io_wide = 20,
                              .wide_n = 200,
                              .wide_ms = 5,
                              .mock_scale = 0.005,
                              .bigresult_mib = 8,
                              .bigresult_lib = s.bigresult_lib};
    }
    if (opt.reps < 1 || opt.reps > 64 || !s.workers || !s.tasks || !s.ptasks ||
        !s.calls || !s.bigresult_mib || !s.wide_n ||
        s.wide_n > SP_MAX_WORKERS) {
        fprintf(stderr, "--reps must be 1..64; --workers, --tasks, "
                        "--process-tasks, --calls and --bigresult-mib at "
                        "least 1; --wide-tasks 1..65536\n");
        return 2;
    }
    for (int k = 0; k < nrequired; k++) {
        int built = 0;
        for (size_t j = 0; j < N_C_PEERS; j++)
            built |= !strcmp(c_peers[j].name, required[k]);
        if (!built) {
            fprintf(stderr, "required peer %s is not built in\n", required[k]);
            return 1;
        }
    }
    if (opt.csv)
        fputs("workload,runner,peer,workers,tasks,unit,median,min,max,ratio,"
              "ratio_to,vs_best_peer,best_peer,checksum\n",
              opt.csv);
    /* The Python peer: installed beside the harness, or in the source. */
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
    if (opt.python && !with_python())
        fprintf(stderr, "note: no Python peer (python3 or %s missing)\n", peer);

    if (!nchosen)
        for (size_t k = 0; k < N_WORKLOADS; k++)
            if (workloads[k].by_default)
                chosen[nchosen++] = &workloads[k];
    printf("simplepar %s benchmark, %ld online CPUs; peers:",
           sp_version_string(), sysconf(_SC_NPROCESSORS_ONLN));
    for (size_t k = 0; opt.c_peers && k < N_C_PEERS; k++)
        printf(" %s", c_peers[k].name);
    printf("%s%s\n", with_python() ? " python" : "",
           !opt.c_peers && !with_python() ? " none" : "");
    iso.s = &s;
    for (int k = 0; k < nchosen; k++) {
        double t0 = now_s();
        iso.def = chosen[k]->name;
        chosen[k]->run(&s);
        printf("  (%s took %.1f s)\n", chosen[k]->name, now_s() - t0);
        fflush(stdout);
    }
    printf("\nall took %.1f s\n", now_s() - opt.t_start);
    if (logs_dir)
        sp_mock_remove_logs(logs_dir, log_files);
    free(log_paths);
    if (opt.json)
        fclose(opt.json);
    if (opt.csv)
        fclose(opt.csv);
    int missing = 0;
    for (int k = 0; k < nrequired; k++)
        for (size_t j = 0; j < N_C_PEERS; j++)
            if (!strcmp(c_peers[j].name, required[k]) && !peer_runs[j]) {
                fprintf(stderr, "required peer %s did not run\n", required[k]);
                missing = 1;
            }
    return missing;
}
