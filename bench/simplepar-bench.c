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
 * The files: bench.h (what they share), harness.c (running and reporting
 * a table, in this process or fresh ones), one file per workload family
 * (workloads.c, bigresult.c, graph.c, calls.c, mpi.c, wide.c), and this
 * one: the workloads table, --help and main().
 *
 * Adding a workload: write a bench_*() function that fills a struct
 * workload (a peer_fn body over task indices) and calls measure() and
 * report(), declare it in bench.h, then add one row to the workloads[]
 * table here. Adding a C peer: one file in peers/ with a peer_run_fn, one
 * row in c_peers[] (bench.h). */
#include "bench.h"

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
void wrap_at(FILE *f, const char *s, int at, int indent)
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

void wrap(FILE *f, const char *s, int indent)
{
    fprintf(f, "%*s", indent, "");
    wrap_at(f, s, indent, indent);
}

void usage(FILE *f, int full)
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
int isolated_child_main(const char *def, const char *table, const char *label,
                        const char *hex)
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
