/* SPDX-License-Identifier: MIT */
/* Seed 001's log count across the ranks of an MPI job: count
 * "/api/v1/login" in N log files of L lines, one task per file, each rank
 * counting its share on its local backend (docs/mpi.md).
 *
 *   mpiexec -n 3 mpi_logcount [--files N] [--lines N]
 *                             [--backend thread|process] [--workers N]
 *
 * Every rank builds the same table (the same keys in the same order);
 * rank 0 writes the files first, into a new directory under $TMPDIR
 * (/tmp by default) that every rank must be able to read: on several
 * machines, point TMPDIR at a shared file system. Rank 0 prints the
 * total, checked against a count on rank 0 alone. */
#include <simplepar/mockapi.h>
#include <simplepar/mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PATH = 4096 };

static int count_task(sp_ctx *ctx, void *arg)
{
    long c = sp_mock_count_lines(arg, "/api/v1/login");
    if (c < 0)
        return sp_fail(ctx, 1, "cannot read %s", (const char *)arg);
    return sp_set_resultf(ctx, "%ld", c);
}

int main(int argc, char **argv)
{
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &(int){0});
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    size_t files = 100, lines = 10000;
    sp_options o = {.backend = SP_BACKEND_THREAD};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--files") && i + 1 < argc)
            files = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--lines") && i + 1 < argc)
            lines = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--workers") && i + 1 < argc)
            o.max_workers = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc)
            o.backend = strcmp(argv[++i], "process") ? SP_BACKEND_THREAD
                                                     : SP_BACKEND_PROCESS;
        else {
            if (rank == 0)
                printf("usage: %s [--files N] [--lines N] [--backend "
                       "thread|process] [--workers N]\n",
                       argv[0]);
            MPI_Finalize();
            return 2;
        }
    }
    if (!files || files > 100000) {
        MPI_Finalize();
        return 2;
    }

    /* Rank 0 writes the logs; every rank learns where. */
    char dir[PATH] = "";
    char *made = NULL;
    if (rank == 0 && (made = sp_mock_write_logs(files, lines, 22)))
        snprintf(dir, sizeof dir, "%s", made);
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (!dir[0]) {
        if (rank == 0)
            perror("writing the logs");
        MPI_Finalize();
        return 1;
    }

    /* The same table on every rank. */
    char *paths = malloc(files * PATH);
    char *keys = malloc(files * 16);
    sp_task *t = calloc(files, sizeof *t);
    if (!paths || !keys || !t)
        MPI_Abort(MPI_COMM_WORLD, 1);
    for (size_t i = 0; i < files; i++) {
        sp_mock_log_path(dir, i, paths + i * PATH, PATH);
        snprintf(keys + i * 16, 16, "log%u", (unsigned)i);
        t[i] = (sp_task){
            .key = keys + i * 16, .fn = count_task, .arg = paths + i * PATH};
    }

    sp_results *res;
    int rc = sp_mpi_parallel(MPI_COMM_WORLD, t, files, &o, &res);
    if (rc) {
        fprintf(stderr, "rank %d: %s\n", rank, sp_last_error());
    } else if (rank == 0) {
        long total = 0, check = 0;
        for (size_t i = 0; i < files; i++) {
            const sp_entry *e = sp_results_at(res, i);
            if (sp_entry_kind(e) != SP_KIND_OK) {
                printf("%s: %s\n", sp_entry_key(e), sp_entry_message(e));
                rc = 1;
                continue;
            }
            total += atol(sp_entry_str(e));
            check += sp_mock_count_lines(paths + i * PATH, "/api/v1/login");
        }
        printf("%zu files x %zu lines on %d ranks (%u local workers in "
               "all)\n",
               files, lines, size, sp_results_workers(res));
        printf("Found %ld logins in %.4f s; %s\n", total,
               sp_results_elapsed(res),
               total == check ? "the same as counted on rank 0 alone"
                              : "NOT what rank 0 counts alone");
        if (total != check)
            rc = 1;
        sp_results_free(res);
    }
    MPI_Barrier(MPI_COMM_WORLD); /* every rank is done with the files */
    if (made)
        sp_mock_remove_logs(made, files);
    free(t);
    free(keys);
    free(paths);
    MPI_Finalize();
    return rc ? 1 : 0;
}
