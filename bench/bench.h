/* SPDX-License-Identifier: MIT */
/* What the benchmark harness's files share (the .c files of bench/): the peers,
 * the configurations a table runs, the workload and its settings, the options,
 * and the functions each file gives the others. harness.c runs and reports
 * a table; one file per workload family; simplepar-bench.c holds the
 * workloads table, the options and main(). */
#ifndef SP_BENCH_H
#define SP_BENCH_H

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

/* The options every workload reads (harness.c). */
struct bench_opt {
    int reps, smoke, c_peers, python, tty, isolate;
    FILE *json, *csv;
    const char *svg_dir, *python_path, *peer_script;
    double t_start;
};
extern struct bench_opt opt;
extern unsigned peer_runs[N_C_PEERS]; /* tables each C peer ran in */

#if defined(__GNUC__)
#define BENCH_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define BENCH_PRINTF(f, a)
#endif

enum { PATH_LEN = 4096 };

struct stats {
    double median, min, max;
};

struct bench_iso {
    const char *def;           /* parent: the workload running now */
    const struct settings *s;  /* parent: its settings */
    const char *table, *label; /* child: the one row it runs */
    FILE *out;                 /* child: where its figures go */
};
extern struct bench_iso iso;

/* What a child needs besides its workload and row: the settings and the
 * options that decide a table's rows, as bytes. */
struct iso_args {
    struct settings s;
    int smoke, c_peers;
};

struct row {
    const char *workload, *runner, *unit, *ratio_to, *best_peer;
    unsigned workers;
    size_t n;
    struct stats st;       /* already scaled to unit */
    double ratio, vs_best; /* vs_best < 0: no peer in the table */
    int peer;
    uint64_t checksum;
};

/* How a table reads its figures. */
struct table {
    const char *title;
    int per_task; /* µs per task, else wall seconds */
    double ideal; /* > 0: ratios to this wall time */
    int base;     /* else: ratios to this configuration */
};

/* seed 001's log files, made once by the first workload that needs them
 * (workloads.c); main() removes them. */
extern char *logs_dir;
extern char *log_paths;
extern size_t log_files;

/* ---- harness.c -------------------------------------------------------------
 */
double now_s(void);
void sleep_ms(unsigned ms);
void progress(const char *fmt, ...) BENCH_PRINTF(1, 2);
int body_empty(size_t i, void *arg, long *value);
int body_sleep(size_t i, void *arg, long *value);
int body_count(size_t i, void *arg, long *value);
int sp_body(sp_ctx *ctx, void *arg);
uint64_t checksum_of(const sp_results *res);
uint64_t checksum_peer(const peer_result *out, size_t n);
double run_once(const struct workload *w, struct config *c, int sum);
int with_python(void);
void run_python(const struct workload *w, struct config *c);
int cmp_double(const void *a, const void *b);
struct stats summarise(const double *in, int reps);
int can_isolate(void);
int run_child(char *const argv[], char *line, size_t len, double *rss_mib);
int isolated_run(const struct workload *w, const char *label, double *t,
                 unsigned long long *sum, int *skipped);
void measure_isolated(const struct workload *w, struct config *cs, int nc);
void measure_child(const struct workload *w, struct config *cs, int nc);
void measure(const struct workload *w, struct config *cs, int nc);
int configs(struct config *cs, unsigned workers, unsigned what);
void emit(const struct row *r, int quiet);
void py_how(const struct config *c, char *buf, size_t len);
int ran(const struct config *c);
int best_peer(const struct config *cs, int nc, const double *med, int process);
void python_lines(const struct config *cs, int nc, const double *med);
void report(const struct workload *w, struct config *cs, int nc,
            const struct table *t, double *med);
void build(struct workload *w);
void unbuild(struct workload *w);

/* ---- workloads.c -----------------------------------------------------------
 */
void bench_overhead(const struct settings *s);
void bench_overhead_process(const struct settings *s);
void io_table(const struct settings *s, unsigned workers, int wide);
void bench_io(const struct settings *s);
void make_logs(const struct settings *s);
void build_cpu(const struct settings *s, struct workload *w);
void bench_cpu(const struct settings *s);
FILE *svg_open(const char *name, int width, int height);
void svg_lines(const char *name, const char *title, const char *xlab,
               const char *ylab, const double *x, size_t nx, const double *ys,
               const char *const *names, int ns);
void bench_sweep(const struct settings *s);
long peak_rss_kib(void);
void bench_scale(const struct settings *s);
void bench_mockapi(const struct settings *s);

/* ---- bigresult.c -----------------------------------------------------------
 */
unsigned char *big_make(void);
int big_body(sp_ctx *ctx, void *arg);
int big_check(const unsigned char *d, size_t len);
double rusage_mib(int who);
int big_child(int k, size_t mib);
size_t mem_available_mib(void);
void bench_bigresult(const struct settings *s);

/* ---- graph.c ---------------------------------------------------------------
 */
double graph_run(sp_task *t, size_t n, sp_backend b, unsigned workers);
int graph_empty(sp_ctx *ctx, void *arg);
void bench_graph(const struct settings *s);

/* ---- calls.c ---------------------------------------------------------------
 */
void bench_calls(const struct settings *s);

/* ---- mpi.c -----------------------------------------------------------------
 */
void beside(const char *name, char *out, size_t len);
const char *mpi4py_python(void);
void bench_mpi(const struct settings *s);

/* ---- wide.c ----------------------------------------------------------------
 */
int wide_child_main(const char *kind, size_t n, unsigned ms, unsigned workers);
void bench_seed002(const struct settings *s);

/* ---- simplepar-bench.c -----------------------------------------------------
 */
void wrap_at(FILE *f, const char *s, int at, int indent);
void wrap(FILE *f, const char *s, int indent);
void usage(FILE *f, int full);
int isolated_child_main(const char *def, const char *table, const char *label,
                        const char *hex);

#endif
