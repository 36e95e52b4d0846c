/* SPDX-License-Identifier: MIT */
/* simplepar-bench-mpi: the MPI half of simplepar-bench's `mpi` workload.
 * simplepar-bench starts it under `mpiexec -n 3` (rank 0 schedules, ranks
 * 1 and 2 run the tasks) and reads what rank 0 prints; it is a program of
 * its own so that the harness itself never links MPI.
 *
 *   mpiexec -n 3 simplepar-bench-mpi [--tasks N] [--sleep-tasks N]
 *                                    [--ms MS] [--reps R]
 *
 * Two tables, each run by every configuration: N empty tasks (the cost
 * per task of handing work out and results back) and N tasks that sleep
 * MS ms (how close to the ideal the load balancing gets). Configurations:
 * sp_mpi_parallel() with each worker rank's local thread backend on one
 * worker, the same with the local serial backend, and the hand-written
 * task farm of bench/peers/mpi-farm.c. Every figure is the median of R
 * runs after a warm-up of each configuration, runs interleaved across
 * configurations; the wall time is rank 0's, from a barrier to the
 * moment it holds every outcome (the map built and freed). Prints one
 * JSON object per configuration and table, and fails if the checksums
 * of the outcomes differ. */
#define _DEFAULT_SOURCE
#include <simplepar/mpi.h>

#include "peers/mpi-farm.h"
#include "peers/peer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    unsigned ms = (unsigned)(uintptr_t)arg;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts))
        ;
    return 0;
}

/* One task of simplepar's table: the body for its own index (a task's
 * sp_ctx_index() is its place in its rank's batch, not in the table). */
struct item {
    peer_fn body;
    void *arg;
    size_t index;
};

static int sp_body(sp_ctx *ctx, void *arg)
{
    const struct item *it = arg;
    long v = 0;
    if (it->body(it->index, it->arg, &v))
        return sp_fail(ctx, 1, "task %zu failed", it->index);
    return 0;
}

enum who { SP_THREAD, SP_SERIAL, FARM, N_CONFIGS };
static const char *const labels[] = {"simplepar-mpi-thread",
                                     "simplepar-mpi-serial", "mpi-farm"};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One timed run; on rank 0 returns seconds and sets *sum. */
static double run_once(enum who who, sp_task *tasks, size_t n, peer_fn body,
                       void *arg, uint64_t *sum)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    uint64_t s = 0;
    if (who == FARM) {
        peer_result *out = rank == 0 ? calloc(n ? n : 1, sizeof *out) : NULL;
        if (mpi_farm_run(MPI_COMM_WORLD, n, body, arg, out))
            MPI_Abort(MPI_COMM_WORLD, 1);
        for (size_t i = 0; out && i < n; i++)
            if (out[i].state == PEER_OK)
                s += 1 + (uint64_t)out[i].value * 1000003u;
        free(out);
    } else {
        sp_options o = {.backend = who == SP_THREAD ? SP_BACKEND_THREAD
                                                    : SP_BACKEND_SERIAL,
                        .max_workers = 1};
        sp_results *res;
        if (sp_mpi_parallel(MPI_COMM_WORLD, tasks, n, &o, &res)) {
            fprintf(stderr, "rank %d: %s\n", rank, sp_last_error());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        for (size_t i = 0; res && i < n; i++)
            if (sp_entry_kind(sp_results_at(res, i)) == SP_KIND_OK)
                s += 1; /* no result bytes: value 0 */
        sp_results_free(res);
    }
    double dt = MPI_Wtime() - t0;
    *sum = s;
    return dt;
}

static int table(const char *name, size_t n, peer_fn body, void *arg, int reps)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    sp_task *t = calloc(n ? n : 1, sizeof *t);
    struct item *items = calloc(n ? n : 1, sizeof *items);
    char *keys = malloc((n ? n : 1) * 16);
    double(*samples)[64] = calloc(N_CONFIGS, sizeof *samples);
    if (!t || !items || !keys || !samples)
        MPI_Abort(MPI_COMM_WORLD, 1);
    for (size_t i = 0; i < n; i++) {
        snprintf(keys + i * 16, 16, "task-%u", (unsigned)i);
        items[i] = (struct item){body, arg, i};
        t[i] = (sp_task){.key = keys + i * 16, .fn = sp_body, .arg = &items[i]};
    }
    uint64_t sums[N_CONFIGS];
    for (int c = 0; c < N_CONFIGS; c++) /* warm-up, and the checksum */
        run_once((enum who)c, t, n, body, arg, &sums[c]);
    for (int r = 0; r < reps; r++)
        for (int c = 0; c < N_CONFIGS; c++) {
            uint64_t s;
            samples[c][r] = run_once((enum who)c, t, n, body, arg, &s);
        }
    int same = 1;
    for (int c = 0; rank == 0 && c < N_CONFIGS; c++) {
        qsort(samples[c], (size_t)reps, sizeof(double), cmp_double);
        double med =
            reps % 2 ? samples[c][reps / 2]
                     : (samples[c][reps / 2 - 1] + samples[c][reps / 2]) / 2;
        printf("{\"workload\": \"%s\", \"runner\": \"%s\", \"tasks\": %zu, "
               "\"median\": %.9g, \"min\": %.9g, \"max\": %.9g, "
               "\"checksum\": %llu}\n",
               name, labels[c], n, med, samples[c][0], samples[c][reps - 1],
               (unsigned long long)sums[c]);
        same &= sums[c] == sums[0];
    }
    fflush(stdout);
    free(samples);
    free(keys);
    free(items);
    free(t);
    return same ? 0 : 1;
}

int main(int argc, char **argv)
{
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &(int){0});
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    size_t tasks = 100000, sleep_tasks = 200;
    unsigned ms = 10;
    int reps = 7;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(argv[i], "--tasks"))
            tasks = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(argv[i], "--sleep-tasks"))
            sleep_tasks = strtoul(v, NULL, 10), i++;
        else if (v && !strcmp(argv[i], "--ms"))
            ms = (unsigned)atoi(v), i++;
        else if (v && !strcmp(argv[i], "--reps"))
            reps = atoi(v), i++;
        else {
            fprintf(stderr,
                    "usage: mpiexec -n 3 %s [--tasks N] "
                    "[--sleep-tasks N] [--ms MS] [--reps R]\n",
                    argv[0]);
            MPI_Finalize();
            return 2;
        }
    }
    if (size < 2 || reps < 1 || reps > 64) {
        fprintf(stderr, "needs at least 2 ranks and --reps 1..64\n");
        MPI_Finalize();
        return 2;
    }
    int rc = table("empty", tasks, body_empty, NULL, reps);
    rc |= table("sleep", sleep_tasks, body_sleep, (void *)(uintptr_t)ms, reps);
    MPI_Finalize();
    return rc;
}
