/* SPDX-License-Identifier: MIT */
/* simplepar-bench, running a table: configurations, task bodies, timed runs (in
 * this process or a fresh one), statistics, the report and its JSON/CSV rows.
 */
#include "bench.h"

/* ---- configurations: who runs a workload, on how many workers ----------- */

struct bench_opt opt = {.reps = 7, .c_peers = 1, .python = 1, .isolate = 1};
unsigned peer_runs[N_C_PEERS]; /* tables each C peer ran in */

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts))
        ;
}

/* A progress line on stderr, only when stderr is a terminal; NULL clears
 * it. */
void progress(const char *fmt, ...)
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

int body_empty(size_t i, void *arg, long *value)
{
    (void)i;
    (void)arg;
    (void)value;
    return 0;
}

int body_sleep(size_t i, void *arg, long *value)
{
    (void)i;
    (void)value;
    sleep_ms((unsigned)(uintptr_t)arg);
    return 0;
}

int body_count(size_t i, void *arg, long *value)
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
int sp_body(sp_ctx *ctx, void *arg)
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
uint64_t checksum_of(const sp_results *res)
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

uint64_t checksum_peer(const peer_result *out, size_t n)
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
double run_once(const struct workload *w, struct config *c, int sum)
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

int with_python(void)
{
    return opt.python && opt.python_path && opt.peer_script &&
           access(opt.peer_script, R_OK) == 0;
}

/* The Python peer: its own warm-up and repetitions (at most 3, it is
 * slow); fills samples with its min, median and max (so the median of
 * the samples is its median). */
void run_python(const struct workload *w, struct config *c)
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

int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct stats summarise(const double *in, int reps)
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

struct bench_iso iso;

/* Whether rows can run in fresh processes: this program can find itself
 * (/proc/self/exe; elsewhere every row runs in the harness). */
int can_isolate(void)
{
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return 0;
    self[len] = 0;
    return opt.isolate && iso.s && access(self, X_OK) == 0;
}

/* Run one child (argv: the program and its arguments, NULL-terminated)
 * and read its one line; 0, or -1 if it failed. *rss_mib: its peak RSS. */
int run_child(char *const argv[], char *line, size_t len, double *rss_mib)
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

/* One timed run of row `label` of table w in a fresh process: 0 and *t,
 * *sum (*skipped set when the row could not start its workers), or -1. */
int isolated_run(const struct workload *w, const char *label, double *t,
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
    if (run_child(argv, line, sizeof line, &rss) ||
        sscanf(line, "%15s %lf %llu", word, t, sum) != 3)
        return -1;
    *skipped = !strcmp(word, "skipped");
    return 0;
}

void measure_isolated(const struct workload *w, struct config *cs, int nc)
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
void measure_child(const struct workload *w, struct config *cs, int nc)
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

void measure(const struct workload *w, struct config *cs, int nc)
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
int configs(struct config *cs, unsigned workers, unsigned what)
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

void emit(const struct row *r, int quiet)
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
void py_how(const struct config *c, char *buf, size_t len)
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

int ran(const struct config *c)
{
    return !c->skipped;
}

/* Index of the fastest peer among the configurations (process: only
 * process peers, -1: any), or -1 when there is none. */
int best_peer(const struct config *cs, int nc, const double *med, int process)
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
void python_lines(const struct config *cs, int nc, const double *med)
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

/* Print a table and its comparisons; fails the run if the checksums
 * differ. Returns the medians in med[] (seconds). */
void report(const struct workload *w, struct config *cs, int nc,
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

void build(struct workload *w)
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

void unbuild(struct workload *w)
{
    free(w->tasks);
    free(w->keys);
    free(w->itasks);
}
