/* SPDX-License-Identifier: MIT */
/* simplepar-bench, the mpi workload: libsimplepar-mpi under mpiexec, beside its
 * peers. */
#include "bench.h"

/* ---- the mpi workload ---------------------------------------------------- */

/* The path of a file beside this program, or "" when it is not there. */
void beside(const char *name, char *out, size_t len)
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
const char *mpi4py_python(void)
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

void bench_mpi(const struct settings *s)
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
