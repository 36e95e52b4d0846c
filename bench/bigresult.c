/* SPDX-License-Identifier: MIT */
/* simplepar-bench, the bigresult workload: one large result per call, each run
 * in a fresh process. */
#include "bench.h"

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

unsigned char *big_make(void)
{
    unsigned char *p = malloc(big_len + 1);
    if (p)
        memset(p, 0x5a, big_len); /* every page touched */
    return p;
}

int big_body(sp_ctx *ctx, void *arg)
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
int big_check(const unsigned char *d, size_t len)
{
    if (!d || len != big_len || d[len] != 0)
        return 0;
    size_t bad = 0;
    for (size_t j = 0; j < len; j++)
        bad |= d[j] ^ 0x5a;
    return !bad;
}

double rusage_mib(int who)
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
int big_child(int k, size_t mib)
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
size_t mem_available_mib(void)
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

void bench_bigresult(const struct settings *s)
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
