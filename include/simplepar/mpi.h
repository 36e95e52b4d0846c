/* SPDX-License-Identifier: MIT */
/**
 * @file simplepar/mpi.h
 * @brief libsimplepar-mpi: run one task table across the ranks of an MPI
 * communicator, each rank running its share on a local simplepar backend.
 *
 * A separate library (`pkg-config simplepar-mpi`, CMake `simplepar::mpi`),
 * built when meson finds MPI; the core library never depends on it.
 *
 * The model is SPMD: every rank of the communicator calls
 * sp_mpi_parallel() with the same task table, built by the same code.
 * Task indices cross the wire, never pointers, with the bytes a task needs
 * from elsewhere: its argument bytes (::sp_task.data) and the results of
 * the tasks it depends on (::sp_task.after). Rank 0 validates the table,
 * runs its dependency graph, hands out batches of ready task indices to
 * the other ranks as they ask for work (several batches in flight per
 * rank, so a rank never waits for the next one), and builds the results
 * map from what they send back: every key, with the same kinds, codes,
 * messages and result bytes as simple_parallel() gives. Each other rank
 * runs the tasks it receives as one call per batch on its own
 * ::sp_options.backend (the local backend):
 * threads or forked processes inside the rank, so a job is ranks x local
 * workers (one rank per machine, its cores used by the local backend).
 * With the local process backend, a task that segfaults, aborts, exits or
 * hangs on any rank comes back CRASHED or TIMED_OUT under its own key on
 * rank 0, and the job goes on.
 *
 * Rank 0 runs no task itself while there are other ranks: it schedules
 * and collects (start one rank more than you have machines, see
 * docs/mpi.md). A communicator of one rank (a program started without
 * mpiexec: MPI's singleton mode) runs every task on rank 0's local backend.
 *
 * Requirements: MPI is initialised (MPI_Init_thread() with at least
 * MPI_THREAD_FUNNELED when the local backend is threads, since worker
 * threads exist while the calling thread uses MPI; they never call MPI
 * themselves), and the calling thread is the one that makes MPI calls. Two
 * threads may run sp_mpi_parallel() at once (on any communicators) only
 * with MPI_THREAD_MULTIPLE. The call is collective over the communicator:
 * every rank must call it, in the same order relative to its other
 * collective operations on that communicator. It works on a duplicate of
 * the communicator, so its messages never mix with the caller's.
 *
 * Doxygen format, like simplepar.h; docs/api.md and the man page
 * sp_mpi_parallel(3) are written from these comments.
 */
#ifndef SIMPLEPAR_MPI_H
#define SIMPLEPAR_MPI_H

#include <mpi.h>
#include <simplepar.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Largest accepted ::sp_mpi_options.batch. */
#define SP_MPI_MAX_BATCH 1000000u
/** Largest accepted ::sp_mpi_options.inflight. */
#define SP_MPI_MAX_INFLIGHT 64u

/**
 * Options that only the MPI library has. All-zero (or a NULL pointer)
 * means every default. Initialise with `sp_mpi_options m = {0};` or
 * designated initialisers so that fields added later stay zero. Rank 0's
 * values are the ones used (the other ranks' are checked for range only).
 */
typedef struct sp_mpi_options {
    /** Most tasks in one batch, the unit rank 0 hands to a rank; 0 =
     *  automatic: guided self-scheduling, each batch an eighth of the
     *  rank's share (the local workers its calls start with over all
     *  ranks': max_workers, or the local backend's default, which is one
     *  per CPU for threads) of the tasks not yet handed out, at least the
     *  rank's starting local workers and at most 4,096, so batches shrink
     *  to single tasks near the end and no rank is left holding a long
     *  tail. Range 0 ..
     *  ::SP_MPI_MAX_BATCH; larger gives ::SP_EOPTION. */
    unsigned batch;
    /** Batches a rank holds at once (running and queued), so the next batch
     *  is there when one ends; 0 = automatic: 2 while a batch takes less
     *  than about 2 ms to run, 1 for longer tasks (where a queued batch
     *  would only lengthen the tail). Range 0 .. ::SP_MPI_MAX_INFLIGHT;
     *  larger gives ::SP_EOPTION. */
    unsigned inflight;
    /** 0 (default): the results map is returned on rank 0 only and `*out`
     *  is NULL on the other ranks. 1: rank 0 broadcasts the finished map
     *  and every rank returns its own copy (same entries, kinds, codes,
     *  messages, bytes, times and workers; sp_results_elapsed() is each
     *  rank's own wall time of the call). Any other value gives
     *  ::SP_EOPTION. */
    int map_everywhere;
    /** Reserved; must be zero: non-zero gives ::SP_ENOTSUP. */
    unsigned char reserved[52];
} sp_mpi_options;

/**
 * @brief Run a task table across the ranks of @p comm and collect a keyed
 * results map on rank 0.
 *
 * Collective: every rank of @p comm calls it with the same table (same
 * keys in the same order, the same dependencies, same callbacks by
 * meaning; pointers may differ between ranks, as they do between
 * processes). Rank 0 compares a hash of every rank's task count, keys and
 * dependency lists with its own before anything runs.
 *
 * Which rank's arguments count:
 *  - rank 0's @p opts: ::sp_options.on_error, deadline, task_timeout,
 *    on_done and on_done_arg, and the retries (retries, retry_on,
 *    retry_delay, retry_delay_max, retry_backoff), with rank 0's rows'
 *    ::sp_task.policy retry fields. The deadline runs from rank 0's entry into
 *    the call; each rank's local call gets the time that is left.
 *    on_done is called on rank 0 only, on its calling thread, once per
 *    task as its outcome reaches rank 0 (batches arrive whole, so entries
 *    of one batch are delivered together).
 *  - each rank's own @p opts: backend (the local backend it runs its
 *    tasks on), max_workers (local workers per rank; 0 = the local
 *    backend's default for each batch) and stack_size.
 *  - @p mopts: rank 0's.
 *  - rank 0's @p tasks for ::sp_task.data / len: a task reads rank 0's
 *    argument bytes with sp_ctx_data() on whichever rank it runs (they
 *    travel with its index); the other ranks' bytes are not used.
 *
 * Every option is checked on every rank; an error found on any rank is
 * returned on every rank with the same code and the same sp_last_error()
 * text (a rank other than 0 is named in it: "rank 2: ..."), and then no
 * callback has run on any rank. The same holds for table errors found by
 * rank 0 (::SP_ENOKEY, ::SP_EDUPKEY, ...) and for tables that differ
 * between ranks (::SP_EINVAL, "the task table differs between ranks").
 *
 * Once validation passes, every task comes back in the map on rank 0: OK
 * with its result bytes (of any size; large results travel in chunks of
 * at most 4 MiB), or FAILED / CRASHED / TIMED_OUT / CANCELLED with its
 * code, sp_entry_code_origin(), message, signal and exit status as the
 * local backend reported them. sp_entry_start() and sp_entry_end() are
 * seconds since rank 0 entered the call (each batch carries rank 0's
 * clock, so ranks' clocks need not agree); sp_entry_worker() numbers the
 * local workers of all ranks in rank order (rank 1's from 0, then rank
 * 2's, ...), and sp_results_workers() is their total.
 *
 * Retries are decided on rank 0, as simple_parallel() decides them: an
 * attempt whose outcome its row's rule retries is handed out again after
 * its delay (rank 0 hands out other work meanwhile), to any rank, and
 * sp_ctx_attempt() gives the attempt's number there; the ranks' local
 * calls never retry on their own (each rank drops the retry fields of its
 * options and its rows' policies; a policy's time_limit is kept). The map
 * on rank 0 has sp_entry_attempts() and the first attempt
 * (sp_entry_first_kind() and its siblings) as a local call's would. Only a
 * task's last attempt counts for fail-fast and on_done; with the local
 * process backend, a task that crashed on a rank is retried like any
 * other outcome (::SP_RETRY_CRASHED).
 *
 * Stopping (fail-fast after a failure, on_done returning non-zero, the
 * deadline): rank 0 hands out no more batches and tells every rank to
 * stop. Batches a rank holds but has not started come back CANCELLED
 * ("not started: ..." with the reason, as simple_parallel() says it).
 * Tasks already running on a rank are asked to stop as simple_parallel()
 * asks them (sp_cancelled() turns true; at the deadline the local
 * process backend kills them and they come back TIMED_OUT); a task that
 * finishes keeps its result. The call returns when every rank has
 * reported every task it started.
 *
 * Dependencies (::sp_task.after) are rank 0's: a task is handed out once
 * every task it names has ended OK, on any rank, and their result bytes
 * travel with it, so sp_dep_result() answers on every rank and every local
 * backend as it does in simple_parallel(); a task one of whose
 * dependencies did not end OK never runs and comes back ::SP_KIND_SKIPPED.
 *
 * Spawning is not supported: sp_spawn() in a task of sp_mpi_parallel()
 * adds nothing and returns ::SP_ENOTSUP ("sp_spawn: not supported in
 * sp_mpi_parallel() ..."), on every rank and local backend, because a
 * spawned task's callback is a function pointer of one process that no
 * other rank could call. Put every task in the table and order them with
 * ::sp_task.after. Inside a task, sp_ctx_index() and sp_ctx_worker() are
 * the task's position in its rank's batch and its local worker; use
 * sp_ctx_key() to know which task runs.
 *
 * When a whole rank dies (a task crashes a rank whose local backend is
 * threads or serial, or the machine is lost), Open MPI ends the whole job:
 * mpiexec prints which rank exited on which signal and every rank is
 * killed; nothing is returned on any rank. See docs/mpi.md.
 *
 * @param comm   the communicator; every rank of it takes part. Borrowed.
 * @param tasks  the task table, the same on every rank; borrowed for the
 *               call. May be NULL only when @p n is 0.
 * @param n      number of tasks, the same on every rank, at most
 *               ::SP_MAX_TASKS.
 * @param opts   options, or NULL for all defaults; borrowed.
 * @param out    on rank 0 receives the new map, to be freed with
 *               sp_results_free(); on the other ranks set to NULL (unless
 *               ::sp_mpi_options.map_everywhere). Must not be NULL on any
 *               rank.
 *
 * @retval 0              on every rank: every task ran or was accounted
 *                        for; see the map on rank 0.
 * @retval SP_EINVAL      @p out is NULL (on any rank), MPI is not
 *                        initialised or already finalised, @p comm is
 *                        MPI_COMM_NULL or an intercommunicator, or the
 *                        table differs between ranks.
 * @retval SP_ENULLTABLE, SP_ENOKEY, SP_EDUPKEY, SP_ENOFN, SP_EDEPKEY,
 *         SP_ECYCLE, SP_EOPTION, SP_ENOTSUP, SP_ETOOMANY, SP_ENOMEM  as
 *                        simple_parallel(), on every rank; nothing
 *                        ran.
 * @retval SP_ESYSTEM     an MPI call failed (sp_last_error() names it and
 *                        gives MPI's error string): during the handshake,
 *                        on the ranks where it failed; during the run, on
 *                        a rank other than 0 (rank 0 then returns 0 with
 *                        the tasks out on other ranks CRASHED, "lost: ...",
 *                        and the rest CANCELLED). With Open MPI 4.1 a
 *                        failed peer ends the job instead (above). The
 *                        errors for MPI_COMM_NULL, an intercommunicator
 *                        and "not initialised" are local to the rank.
 *
 * Not thread-safe on one communicator; see the requirements above for
 * several.
 */
SP_API int sp_mpi_parallel(MPI_Comm comm, const sp_task *tasks, size_t n,
                           const sp_options *opts, sp_results **out);

/**
 * @brief sp_mpi_parallel() with the MPI library's own options.
 *
 * @param mopts  ::sp_mpi_options, or NULL for all defaults; borrowed.
 *               Checked on every rank like @p opts.
 * Everything else, the return values and the rules are sp_mpi_parallel()'s.
 */
SP_API int sp_mpi_parallel_ex(MPI_Comm comm, const sp_task *tasks, size_t n,
                              const sp_options *opts,
                              const sp_mpi_options *mopts, sp_results **out);

#ifdef __cplusplus
}
#endif

#endif /* SIMPLEPAR_MPI_H */
