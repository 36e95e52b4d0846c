/* SPDX-License-Identifier: MIT */
/*
 * A run driven by its caller instead of a backend's workers: the same
 * validation, scheduler, completion path and results map as
 * simple_parallel(), with tasks handed out by sp__run_next() and outcomes
 * handed in by sp__run_record(). For companion libraries built in this tree
 * (libsimplepar-mpi's rank 0, whose workers are other MPI ranks): exported
 * from libsimplepar in the version node SIMPLEPAR_PRIVATE_0, not installed,
 * not part of the public contract, and may change with any release
 * (companions are built and installed together with the library).
 *
 * Everything happens on one thread: the one that called sp__run_begin().
 * The completion callback (sp_options.on_done) is called from
 * sp__run_record() on that thread.
 *
 * Also here: sp__parallel(), a simple_parallel() whose tasks read their
 * dependency results from, and spawn through, the companion library (the
 * MPI library's local calls, whose rows' dependencies ended on rank 0).
 */
#ifndef SP_COLLECT_H
#define SP_COLLECT_H

#include "simplepar.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef SP_PRIVATE_API
#if defined(__GNUC__)
#define SP_PRIVATE_API __attribute__((visibility("default")))
#else
#define SP_PRIVATE_API
#endif
#endif

typedef struct sp__run sp__run;

/* How one task ended, as the caller learned it (e.g. from a remote rank). */
typedef struct sp__outcome {
    sp_kind kind;
    int code;        /* 0 for OK */
    int task_code;   /* 1: code is the task's own number */
    const char *msg; /* NULL = none; copied */
    void *data;      /* result bytes, or NULL; see data_owned */
    size_t len;
    int data_owned;    /* 1: data came from malloc() with len + 1 bytes and
                          the run takes it (writes data[len] = 0);
                          0: data is copied */
    double start, end; /* seconds since the run began (sp__run_now()) */
    unsigned worker;   /* worker index, or SP_NO_WORKER */
    int signo;         /* CRASHED: the signal, else 0 */
    int exit_status;   /* CRASHED by exit: the status, else -1 */
    /* Which attempt this is the outcome of (1 = the first).
     * sp__run_record(): 0 = the one handed out last; another number than
     * that one's is not recorded (a stale outcome). sp__run_put(): the
     * task's last attempt, which is its number of attempts; 0 = 1. */
    unsigned attempt;
    /* sp__run_put() with attempt > 1: the earlier attempts, past[0] the
     * first, npast of them (at most attempt - 1; fewer leaves the later
     * ones unknown). Of each, all but data is read. */
    const struct sp__outcome *past;
    unsigned npast;
} sp__outcome;

/* Validate the table and options exactly as simple_parallel() does (same
 * codes, same sp_last_error() messages, nothing recorded on error) and
 * start a run. `workers` is what sp_results_workers() will report.
 * opts->backend is not used (the caller runs the tasks). */
SP_PRIVATE_API int sp__run_begin(const sp_task *tasks, size_t n,
                                 const sp_options *opts, unsigned workers,
                                 sp__run **out);

/* The next task to start: 1 with *i set, 0 when none is ready now (tasks
 * are running whose outcomes may make more ready, or a task waits for its
 * retry delay: sp__run_due()), -1 when none will ever be (all handed out,
 * or the run stopped: deadline, fail-fast, the callback, the cancel
 * handle). Checks the deadline and the cancel handle. Among ready tasks
 * the lowest index comes first, as in simple_parallel(). A task whose
 * attempt failed may be handed out again (sp_options.retries,
 * sp_task.policy): sp__run_attempt() says which attempt it is. */
SP_PRIVATE_API int sp__run_next(sp__run *r, size_t *i);

/* Task i as sp__run_next() last handed it out: the number of that attempt
 * (1 for the first), and in *retry_on (when not NULL) the outcomes after
 * which the run would try it again (bits 1 << sp_kind, as
 * sp_options.retry_on; 0 when this attempt is its last), the run's state
 * (deadline, stop) aside. */
SP_PRIVATE_API unsigned sp__run_attempt(sp__run *r, size_t i,
                                        unsigned *retry_on);

/* When sp__run_next() returned 0 because a task waits for its retry delay:
 * the time it is due, in seconds since the run began (never after the
 * deadline); 0 when no task waits, or the run stopped. */
SP_PRIVATE_API double sp__run_due(sp__run *r);

/* Record how task i (handed out by sp__run_next()) ended, once per hand-out.
 * Decides retries (the task is then handed out again, at once or after its
 * delay, and the outcome kept until its last attempt), applies fail-fast
 * and calls on_done, all on the last attempt only, as simple_parallel()
 * does. An attempt after the first that never started (a CANCELLED
 * outcome without a worker) leaves the task with its last attempt's
 * outcome. Returns 0, or -1 when o->attempt names another attempt than
 * the one handed out (nothing recorded). */
SP_PRIVATE_API int sp__run_record(sp__run *r, size_t i, const sp__outcome *o);

/* Write the final outcome of task i without handing it out: for a copy of
 * a map finished elsewhere (libsimplepar-mpi's map on every rank). Meant
 * for a run begun with NULL options, where it applies no policy: no
 * fail-fast, no callback, no retry: the outcome is final, and with
 * o->attempt above 1 the entry tells that many attempts and the earlier
 * ones (o->past), as sp_entry_attempts() and sp_entry_attempt() read them.
 * Once per task, in any order; tasks never put are cancelled by
 * sp__run_end(). */
SP_PRIVATE_API void sp__run_put(sp__run *r, size_t i, const sp__outcome *o);

/* The result bytes of task i's k-th dependency (in the order of its
 * sp_task.after, k below their number), once task i was handed out (its
 * dependencies ended OK): the bytes, followed by a NUL, or "" with *len 0
 * when it stored none. Valid until sp__run_end(). */
SP_PRIVATE_API const void *sp__run_dep_at(const sp__run *r, size_t i, size_t k,
                                          size_t *len);

/* The workers simple_parallel() would use for a table of n rows with these
 * options: *most, the most at once (max_workers, or the backend's default,
 * at most n), and *first, those it starts with (the thread backend's
 * default starts one per CPU and adds more while they block). Both at
 * least 1. opts may be NULL (the defaults) and is not validated (an
 * unknown backend counts as the thread backend). */
SP_PRIVATE_API void sp__workers(const sp_options *opts, size_t n,
                                unsigned *most, unsigned *first);

/* Seconds since the run began (for sp__outcome.start/end). */
SP_PRIVATE_API double sp__run_now(const sp__run *r);

/* Whether the run stopped (nothing more may start), and the absolute
 * deadline in seconds since the run began (0 = none). */
SP_PRIVATE_API int sp__run_stopped(const sp__run *r);
SP_PRIVATE_API double sp__run_deadline(const sp__run *r);

/* The backend cannot go on (e.g. a rank died): tasks never handed out come
 * back CANCELLED with code and "not started: msg". */
SP_PRIVATE_API void sp__run_fail(sp__run *r, int code, const char *msg);

/* End the run: every task without an outcome is recorded CANCELLED (with
 * the stop reason), and the map is returned (free with
 * sp_results_free()). r is freed. */
SP_PRIVATE_API sp_results *sp__run_end(sp__run *r);

/* What sp_dep_result() and sp_spawn() do in a call of sp__parallel(). Both
 * are called from whichever thread runs the task (a worker thread, or the
 * calling thread for the serial and process backends), possibly at once;
 * i is the task's index in that call's table. */
typedef struct sp__local {
    /* sp_dep_result(): the bytes, followed by a NUL not counted in *len
     * (len is never NULL), valid until the call returns; or NULL with
     * sp_last_error() set (SP_ENODEP: key is NULL or not a dependency). */
    const void *(*dep)(void *user, size_t i, const char *key, size_t *len);
    /* sp_spawn() of a row that passed the row checks: 0 when the hook took
     * it (it is not added to this call), or a code with sp_last_error()
     * set, which the spawning task gets. */
    int (*spawn)(void *user, size_t i, const sp_task *task);
    void *user;
    /* Per row of the call, the number sp_ctx_attempt() gives its callback
     * (the attempt the companion's run hands out: 1 for the first), or
     * NULL for 1 everywhere; borrowed for the call. The call itself
     * should not retry (no retries in its options and rows' policies):
     * its attempts would add to these numbers. */
    const unsigned *attempt;
} sp__local;

/* simple_parallel(), except that the table's dependencies (sp_task.after)
 * must be NULL (they were met elsewhere) and its tasks' sp_dep_result()
 * and sp_spawn() calls go to `local` (borrowed for the call), on every
 * backend (a worker process asks the calling process, which asks the
 * hook). */
SP_PRIVATE_API int sp__parallel(const sp_task *tasks, size_t n,
                                const sp_options *opts, const sp__local *local,
                                sp_results **out);

/* Set this thread's sp_last_error() message (as the library's own errors
 * do: "NAME: message") and return code. */
SP_PRIVATE_API int sp__set_error(int code, const char *fmt, ...)
    SP_PRINTF(2, 3);

#ifdef __cplusplus
}
#endif

#endif /* SP_COLLECT_H */
