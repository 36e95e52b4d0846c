/* SPDX-License-Identifier: MIT */
/**
 * @file simplepar.h
 * @brief simplepar: keyed parallel task execution for C11.
 *
 * A program hands simple_parallel() a table of named callbacks
 * (key -> function + argument), picks where they run with one field of
 * ::sp_options (threads, forked processes, or inline on the calling thread),
 * and gets back a results map in which every key has either its result bytes
 * or a precise error. One failing task never hides another's result.
 *
 * Conventions used throughout this header:
 *  - Functions that can fail return 0 or a negative ::sp_error code.
 *  - "Borrowed" pointers stay owned by whoever passed them; the library
 *    never frees them and never keeps them after the call returns.
 *  - Every function is thread-safe unless its comment says otherwise:
 *    several threads may call simple_parallel() or sp_pool_run() at once,
 *    or from inside a running task (nested use). The only process-wide
 *    state is the thread backend's shared pool of idle threads.
 *
 * Doxygen format; the man pages and docs/api.md are written from these
 * comments.
 */
#ifndef SIMPLEPAR_H
#define SIMPLEPAR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @name Version
 * Compile-time version of this header. The shared library's soname major is
 * ::SP_VERSION_MAJOR; sp_version() reports the version of the library
 * actually loaded at run time.
 * @{ */
#define SP_VERSION_MAJOR 0
#define SP_VERSION_MINOR 2
#define SP_VERSION_PATCH 0
/** The version as one comparable number: major * 10000 + minor * 100 + patch.
 */
#define SP_VERSION_NUMBER                                                      \
    (SP_VERSION_MAJOR * 10000 + SP_VERSION_MINOR * 100 + SP_VERSION_PATCH)
/** @} */

/** Marks the exported API. Every other symbol of the library is hidden. */
#ifndef SP_API
#if defined(__GNUC__)
#define SP_API __attribute__((visibility("default")))
#else
#define SP_API
#endif
#endif

#if defined(__GNUC__)
#define SP_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SP_PRINTF(fmt, args)
#endif

/* ------------------------------------------------------------------------ */
/** @name Errors
 * @{ */

/**
 * X-macro table of every error code: name, value, message. It generates
 * ::sp_error, sp_strerror() and sp_err_name(), so the three never disagree.
 * Values are stable across releases; new codes are only ever appended.
 */
#define SP_ERROR_MAP(X)                                                        \
    X(SP_OK, 0, "success")                                                     \
    X(SP_EINVAL, -1, "invalid argument")                                       \
    X(SP_ENULLTABLE, -2, "task table is NULL but the task count is not zero")  \
    X(SP_ENOKEY, -3, "task key is NULL or empty")                              \
    X(SP_EDUPKEY, -4, "duplicate task key")                                    \
    X(SP_ENOFN, -5, "task callback is NULL")                                   \
    X(SP_EOPTION, -6, "option out of range")                                   \
    X(SP_ENOTSUP, -7, "not supported by this version or backend")              \
    X(SP_ENOMEM, -8, "out of memory")                                          \
    X(SP_ETHREAD, -9, "could not create a worker thread")                      \
    X(SP_EFORK, -10, "could not fork a worker process")                        \
    X(SP_EPIPE, -11, "could not create a pipe")                                \
    X(SP_ETOOMANY, -12, "too many tasks")                                      \
    X(SP_ETASK, -13, "task failed")                                            \
    X(SP_ECANCELED, -14, "task was cancelled before it started")               \
    X(SP_ETIMEDOUT, -15, "task timed out")                                     \
    X(SP_ECRASHED, -16, "task crashed")                                        \
    X(SP_EPROTO, -17, "malformed result from a worker")                        \
    X(SP_EIO, -18, "could not write the output")                               \
    X(SP_ESYSTEM, -19, "a system call the library needs failed")               \
    X(SP_EDEPKEY, -20, "a task depends on a key that is not in the call")      \
    X(SP_ECYCLE, -21, "the tasks' dependencies form a cycle")                  \
    X(SP_ENODEP, -22, "the key is not one of the task's dependencies")         \
    X(SP_ESKIPPED, -23, "a dependency did not end OK")                         \
    X(SP_ESETUP, -24, "a worker's set-up failed")                              \
    X(SP_EBUSY, -25, "the pool is in use by the calling task")

/** Error codes. 0 is success; every error is negative. */
typedef enum sp_error {
#define SP_X_ENUM_(name, value, msg) name = value,
    SP_ERROR_MAP(SP_X_ENUM_)
#undef SP_X_ENUM_
} sp_error;

/**
 * @brief Describe an error code.
 * @param code a value of ::sp_error (any other int gives "unknown error").
 * @return a static, NUL-terminated string; never NULL; never to be freed.
 * Thread-safe.
 */
SP_API const char *sp_strerror(int code);

/**
 * @brief The symbolic name of an error code, e.g. "SP_EDUPKEY".
 * @return a static string; "SP_UNKNOWN" for a value not in the table.
 * Thread-safe.
 */
SP_API const char *sp_err_name(int code);

/**
 * @brief Details of the last error returned on the calling thread.
 *
 * Every function of this header that returns a negative ::sp_error (for
 * example simple_parallel(), sp_set_result()) also writes a message naming
 * the cause, prefixed with the code's name, e.g.
 * `SP_EDUPKEY: duplicate task key "b" at index 3 (first at index 1)`.
 * Functions that return pointers, counts or kinds do not fail this way:
 * they return NULL, 0 or a documented placeholder for bad arguments and
 * leave the message alone. sp_fail() returns the code it records, which is
 * not a failure of sp_fail(). The message is kept per thread, so
 * concurrent callers (and tasks on other threads) never see each other's
 * messages.
 *
 * @return a NUL-terminated string owned by the library, valid on this thread
 *         until its next call into simplepar that fails; "" when no call on
 *         this thread has failed yet. Never NULL.
 */
SP_API const char *sp_last_error(void);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Version query
 * @{ */

/**
 * @brief Version of the library loaded at run time.
 * @return ::SP_VERSION_NUMBER as the library was built (major * 10000 +
 *         minor * 100 + patch). Thread-safe.
 */
SP_API int sp_version(void);

/** @brief The run-time version as a static string "MAJOR.MINOR.PATCH". */
SP_API const char *sp_version_string(void);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Tasks
 * @{ */

/** Per-task context handed to every task callback. Opaque. */
typedef struct sp_ctx sp_ctx;

/**
 * A task callback.
 *
 * It reports success by returning 0, optionally after storing result bytes
 * with sp_set_result() (or sp_set_result_str(), sp_set_resultf()). It
 * reports failure by returning non-zero and/or by calling sp_fail(); the
 * returned value becomes the entry's code.
 *
 * @param ctx  the task's context; valid only until the callback returns.
 * @param arg  the ::sp_task.arg pointer, passed through untouched.
 * @return 0 for success, anything else for failure.
 *
 * The same callback runs unchanged on every backend. On the process backend
 * it runs in a forked child (see docs/guide.md): only result bytes and the
 * failure message travel back to the caller; side effects on the child's
 * memory are lost with the child (on a process pool, the child is a worker
 * that runs many tasks and keeps them until it ends).
 */
typedef int (*sp_task_fn)(sp_ctx *ctx, void *arg);

/** @name Retry outcomes
 * Bits of ::sp_options.retry_on and ::sp_task_policy.retry_on: which
 * outcomes of an attempt are tried again (bit 1 << the ::sp_kind).
 * ::SP_KIND_CANCELLED and ::SP_KIND_SKIPPED are never retried.
 * @{ */
#define SP_RETRY_FAILED 0x2u    /**< ::SP_KIND_FAILED: it returned an error */
#define SP_RETRY_CRASHED 0x4u   /**< ::SP_KIND_CRASHED: its worker died */
#define SP_RETRY_TIMED_OUT 0x8u /**< ::SP_KIND_TIMED_OUT: over its limit */
/** @} */

/** Most further attempts a task may have (::sp_options.retries,
 *  ::sp_task_policy.retries); more gives ::SP_EOPTION. */
#define SP_MAX_RETRIES 100u
/** ::sp_task_policy.retries: this task is never tried again, whatever
 *  ::sp_options.retries says (for work that must not happen twice). */
#define SP_NO_RETRIES 0xffffffffu

/** How the delay between attempts grows (::sp_options.retry_backoff,
 *  ::sp_task_policy.retry_backoff). */
typedef enum sp_backoff {
    /** In ::sp_options: fixed. In ::sp_task_policy: the call's. */
    SP_BACKOFF_DEFAULT = 0,
    /** Every delay is retry_delay. */
    SP_BACKOFF_FIXED = 1,
    /** retry_delay before the second attempt, then twice the last delay,
     *  at most retry_delay_max (when not 0). */
    SP_BACKOFF_DOUBLING = 2,
} sp_backoff;

/**
 * Per-task settings: what a row of the task table (::sp_task.policy) or a
 * spawned task may set for itself. Every field's zero means "the call's
 * setting" (the matching field of ::sp_options), so one policy can be
 * shared by many rows and name only what differs.
 *
 * Initialise with designated initialisers so that fields added later stay
 * zero: `static const sp_task_policy slow = {.time_limit = 30};`.
 */
typedef struct sp_task_policy {
    /** Time limit of each attempt of this task, in seconds from its start;
     *  0 = the call's ::sp_options.task_timeout. What it does per backend
     *  is what task_timeout does. A task cannot remove the call's limit
     *  (give it a longer one). Range: finite, >= 0 and below
     *  ::SP_MAX_SECONDS (1e9); anything else gives ::SP_EOPTION. */
    double time_limit;
    /** Seconds from the end of a failed attempt to the earliest start of
     *  the next; 0 = the call's ::sp_options.retry_delay. Range as
     *  time_limit. */
    double retry_delay;
    /** With ::SP_BACKOFF_DOUBLING, the longest delay; 0 = the call's
     *  ::sp_options.retry_delay_max. Range as time_limit. */
    double retry_delay_max;
    /** Further attempts after a failed one, 1 .. ::SP_MAX_RETRIES (100);
     *  0 = the call's ::sp_options.retries; ::SP_NO_RETRIES = none for
     *  this task, whatever the call says. Anything else gives
     *  ::SP_EOPTION. */
    unsigned retries;
    /** Which outcomes are tried again: ::SP_RETRY_FAILED,
     *  ::SP_RETRY_CRASHED, ::SP_RETRY_TIMED_OUT, or-ed; 0 = the call's
     *  ::sp_options.retry_on. Other bits give ::SP_EOPTION. */
    unsigned retry_on;
    /** ::SP_BACKOFF_FIXED or ::SP_BACKOFF_DOUBLING; ::SP_BACKOFF_DEFAULT
     *  (0) = the call's ::sp_options.retry_backoff. */
    sp_backoff retry_backoff;
    /** Reserved for later settings. Must be zero: non-zero gives
     *  ::SP_ENOTSUP. */
    unsigned char reserved[28];
} sp_task_policy;

/**
 * One row of the task table.
 *
 * Initialise with designated initialisers so that fields added later stay
 * zero: `(sp_task){.key = "a", .fn = fetch, .arg = &x}`.
 */
typedef struct sp_task {
    /** Unique, non-empty, NUL-terminated key. Borrowed for the duration of
     *  the call; the results map keeps its own copy. NULL in every row of
     *  an index-keyed call (::sp_options.index_keys), and only there. */
    const char *key;
    /** The callback; must not be NULL. */
    sp_task_fn fn;
    /** Passed to fn as-is; may be NULL. Borrowed. On the process backend it
     *  is meaningful only if it points to memory that exists, at the same
     *  address, in the worker that runs the task: memory the caller had
     *  when the worker was forked (a table row, or a task spawned from a
     *  worker of the same call; on a process pool, whose workers are
     *  copies of the caller at sp_pool_create(), only memory that existed
     *  then). Bytes travel safely: use data/len. */
    void *arg;
    /** Keys of tasks of the same call this task waits for: a
     *  NULL-terminated list, or NULL for none. Borrowed for the duration of
     *  the call. The task starts as soon as every task it names has ended
     *  OK; if one of them did not, it never runs and comes back
     *  ::SP_KIND_SKIPPED. Every key must be in the table (::SP_EDEPKEY) and
     *  the dependencies must not form a cycle (::SP_ECYCLE). Read a
     *  dependency's result with sp_dep_result(). */
    const char *const *after;
    /** Argument bytes, copied by the library: read them in the callback
     *  with sp_ctx_data(). NULL with len 0 = none. Unlike arg they reach
     *  the task wherever it runs (another process, a spawned task), so
     *  they are the way to give a spawned task its input. */
    const void *data;
    /** Number of argument bytes at data. */
    size_t len;
    /** Per-task settings (a time limit, ...); NULL = the call's settings
     *  for everything. Borrowed for the duration of the call (sp_spawn()
     *  copies it), so many rows may point to one policy. Checked before
     *  anything runs: a bad value gives ::SP_EOPTION naming the row. */
    const sp_task_policy *policy;
    /** Reserved for later fields. Must be NULL: non-NULL gives
     *  ::SP_ENOTSUP. */
    void *reserved[1];
} sp_task;

/**
 * @brief Store the task's result bytes (copied).
 *
 * The bytes are copied at once, so @p data may be a local buffer. A later
 * call replaces an earlier one. The stored copy is followed by a NUL byte
 * that is not counted in its length, so text results can be read with
 * sp_entry_str(). On the process backend a result of 256 KiB or more is
 * copied straight into the sealed memfd that carries it to the caller
 * (see sp_set_result_owned()), not into a second buffer of the worker.
 *
 * @param ctx  the running task's context.
 * @param data bytes to copy; may be NULL only when @p len is 0.
 * @param len  number of bytes.
 * @return 0; ::SP_EINVAL for a NULL ctx or NULL data with len > 0;
 *         ::SP_ENOMEM when the copy cannot be allocated (the earlier result,
 *         if any, is kept; if the task then returns 0 its entry becomes
 *         FAILED with ::SP_ENOMEM rather than silently losing the result).
 *         Either error also sets sp_last_error() on the calling thread.
 * Call only from inside the task that owns @p ctx.
 */
SP_API int sp_set_result(sp_ctx *ctx, const void *data, size_t len);

/**
 * @brief Hand the task's result buffer over to the library, without a copy.
 *
 * For large results: the buffer itself becomes the result, so it is not
 * copied inside the callback (sp_set_result() copies). A later call, or a
 * later sp_set_result(), replaces it (and releases it).
 *
 * @param ctx     the running task's context.
 * @param data    the result: a buffer of at least @p len + 1 bytes. The
 *                library writes a NUL at data[len] (not counted in the
 *                length), so text results read with sp_entry_str().
 * @param len     number of result bytes.
 * @param release how to free @p data; NULL means free(). Called exactly
 *                once: on the thread and serial backends by
 *                sp_results_free() (the entry's bytes are @p data
 *                itself); on the process backend in the worker, after the
 *                bytes were sent (the caller's map holds the bytes it
 *                received, which sp_results_free() frees). On the process
 *                backend a result of 256 KiB or more is written into a
 *                sealed memfd that the caller maps read-only as the
 *                entry's bytes (no copy in the caller; the worker's peak
 *                is this buffer); sp_results_free() unmaps it. Without
 *                memfds (not Linux, or none could be made) the bytes go
 *                through the worker's channel instead.
 * @return 0, and from then on the library owns @p data; ::SP_EINVAL (with
 *         sp_last_error() set) for a NULL @p ctx or @p data or a
 *         @p len of SIZE_MAX, and then the caller still owns @p data.
 * Call only from inside the task that owns @p ctx.
 */
SP_API int sp_set_result_owned(sp_ctx *ctx, void *data, size_t len,
                               void (*release)(void *data));

/** @brief sp_set_result() with the bytes of a NUL-terminated string
 *  (without the NUL).
 *  @return as sp_set_result(); ::SP_EINVAL also for a NULL @p str. */
SP_API int sp_set_result_str(sp_ctx *ctx, const char *str);

/** @brief sp_set_result() with a printf-formatted string.
 *  @return as sp_set_result(); ::SP_EINVAL also for a NULL @p fmt,
 *  ::SP_ENOMEM when the string cannot be formatted. */
SP_API int sp_set_resultf(sp_ctx *ctx, const char *fmt, ...) SP_PRINTF(2, 3);

/**
 * @brief Mark the task as failed with a code and a formatted message.
 *
 * Meant to be returned from the callback: `return sp_fail(ctx, 7, "no
 * quote for %s", ticker);`. The task counts as failed even if the callback
 * then returns 0. A later call replaces the earlier message.
 *
 * @param code the error code to record, the task's own number
 *        (sp_entry_code_origin() says ::SP_ORIGIN_TASK); 0 is replaced by
 *        the library's ::SP_ETASK so the returned value always signals
 *        failure.
 * @param fmt  printf format for the message; NULL records no message. A
 *        message longer than ::SP_MAX_MESSAGE bytes (1 MiB) is cut to that
 *        length, ending in "...", on every backend alike.
 * @return the recorded (non-zero) code.
 */
SP_API int sp_fail(sp_ctx *ctx, int code, const char *fmt, ...) SP_PRINTF(3, 4);

/** @brief va_list form of sp_fail(). */
SP_API int sp_vfail(sp_ctx *ctx, int code, const char *fmt, va_list ap)
    SP_PRINTF(3, 0);

/**
 * @brief Whether the task has been asked to stop early.
 *
 * True once the overall deadline (::sp_options.deadline) or this task's
 * own limit (::sp_task_policy.time_limit, else ::sp_options.task_timeout)
 * has passed, or, under ::SP_POLICY_FAIL_FAST, once another task has
 * failed, or once the completion callback asked to stop, or once a cancel
 * handle of the call fired (sp_cancel_fire()). Long tasks on the
 * thread and serial backends should poll it and return; a thread cannot be
 * killed. A task that saw this return 1 and then returns non-zero is
 * reported as ::SP_KIND_TIMED_OUT (deadline, time limit) or
 * ::SP_KIND_CANCELLED (fail-fast, stop, cancel handle), keeping its own
 * code and message. One that returns 0 keeps its result: as ::SP_KIND_OK after
 * the deadline or a stop (a finished result is never thrown away), as
 * ::SP_KIND_TIMED_OUT with the result bytes kept after its own time limit
 * (see ::sp_options.task_timeout).
 * @return 1 or 0.
 */
SP_API int sp_cancelled(sp_ctx *ctx);

/** @brief The running task's key (borrowed from the task table, or the
 *  library's copy for a spawned task); valid until the callback returns.
 *  "" in an index-keyed call (::sp_options.index_keys): sp_ctx_index()
 *  names the task. */
SP_API const char *sp_ctx_key(const sp_ctx *ctx);

/**
 * @brief The task's argument bytes (::sp_task.data, copied).
 * @param ctx the running task's context.
 * @param len receives the number of bytes (0 when there are none); may be
 *        NULL.
 * @return the bytes, valid until the callback returns; NULL when the task
 *         has none. On every backend, also in a worker process and for
 *         spawned tasks.
 */
SP_API const void *sp_ctx_data(const sp_ctx *ctx, size_t *len);

/**
 * @brief The result of a task this task depends on.
 *
 * @param ctx the running task's context.
 * @param key a key named in this task's ::sp_task.after.
 * @param len receives the number of result bytes; may be NULL.
 * @return the dependency's result bytes, followed by a NUL not counted in
 *         @p len; "" with length 0 when it stored none. Valid until the
 *         callback returns (on the process backend the bytes are brought
 *         to the worker that runs this task). NULL when @p key is not one
 *         of this task's dependencies (or is NULL): then sp_last_error()
 *         says ::SP_ENODEP and names the key. A dependency always ended OK
 *         before its dependent starts.
 */
SP_API const void *sp_dep_result(sp_ctx *ctx, const char *key, size_t *len);

/**
 * @brief Add a task to the running call.
 *
 * The new task runs like a row of the table, on the same backend, once
 * every task named in its ::sp_task.after (any key of the call, finished
 * or not: typically the spawner's siblings) has ended OK; if one did not,
 * it comes back ::SP_KIND_SKIPPED. Its key must be unique in the whole
 * call. Its entry appears in the results map after the table's entries, in
 * spawn order, and on_done sees it like any other. A spawned task may
 * spawn in turn.
 *
 * Everything in @p task is copied (key, data bytes, the after list); arg
 * is passed as-is (see ::sp_task.arg for the process backend). A task
 * spawned after the run stopped (deadline, fail-fast, stop) is accepted
 * and comes back CANCELLED, so every key comes back.
 *
 * @param ctx  the running task's context.
 * @param task the new row; read only during this call (it may be a
 *             local): everything the task needs later is copied.
 * @retval 0             added.
 * @retval SP_EINVAL     @p ctx or @p task is NULL.
 * @retval SP_ENOKEY, SP_ENOFN, SP_ENOTSUP  the row is invalid, as in
 *                       simple_parallel().
 * @retval SP_ENOTSUP    also: the call takes no spawned tasks (a task of
 *                       sp_mpi_parallel(), <simplepar/mpi.h>, or of an
 *                       index-keyed call, ::sp_options.index_keys).
 * @retval SP_EDUPKEY    the key is already in the call.
 * @retval SP_EDEPKEY    after names a key that is not in the call.
 * @retval SP_ECYCLE     after names the task's own key.
 * @retval SP_ETOOMANY   the call would exceed ::SP_MAX_TASKS.
 * @retval SP_ENOMEM     out of memory; nothing was added.
 * Every error sets sp_last_error() and adds nothing; the spawner goes on.
 * Call only from inside the task that owns @p ctx, on any backend.
 */
SP_API int sp_spawn(sp_ctx *ctx, const sp_task *task);

/** @brief The running task's index in the task table. */
SP_API size_t sp_ctx_index(const sp_ctx *ctx);

/** @brief Which attempt of its task is running: 1 for the first, 2 for the
 *  first retry, ... (::sp_options.retries); 0 for a NULL @p ctx. On every
 *  backend, also in a worker process. */
SP_API unsigned sp_ctx_attempt(const sp_ctx *ctx);

/** @brief Index of the worker running the task: 0 .. workers-1 (always 0 on
 *  the serial backend). Useful for per-worker scratch storage. In a call
 *  on a pool it numbers the pool workers the call uses, 0 .. its share -
 *  1, which need not be their set-up index (::sp_setup_fn): keep state of
 *  a worker's own with sp_ctx_worker_state(). */
SP_API unsigned sp_ctx_worker(const sp_ctx *ctx);

/** @brief The state its worker's set-up stored (::sp_pool_options.setup),
 *  in the thread or process running the task; NULL outside a pool or when
 *  the set-up stored none. Valid until the worker ends. */
SP_API void *sp_ctx_worker_state(const sp_ctx *ctx);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Results
 * @{ */

/** The results map: one entry per task, in input order. Opaque. */
typedef struct sp_results sp_results;

/** One entry of the results map. Opaque; read it with the sp_entry_*
 *  accessors. Owned by its ::sp_results. */
typedef struct sp_entry sp_entry;

/**
 * X-macro table of result kinds: name, value, printed name. It generates
 * ::sp_kind and sp_kind_name(), so the enum, the names and the library's
 * per-kind counts cannot drift apart. Values are stable; new kinds are only
 * appended.
 *
 *  - ::SP_KIND_OK: returned 0; its result bytes are in the entry.
 *  - ::SP_KIND_FAILED: returned non-zero or called sp_fail().
 *  - ::SP_KIND_CRASHED: its worker process died while running it (signal,
 *    exit); process backend only.
 *  - ::SP_KIND_TIMED_OUT: ran past the deadline or its time limit.
 *  - ::SP_KIND_CANCELLED: never started (deadline, fail-fast, stop), or saw
 *    fail-fast / stop through sp_cancelled() and then failed;
 *    sp_entry_cancel_reason() says which.
 *  - ::SP_KIND_SKIPPED: never started because a task it depends on
 *    (::sp_task.after) did not end OK; code ::SP_ESKIPPED, and a message
 *    naming that dependency and how it ended.
 */
#define SP_KIND_MAP(X)                                                         \
    X(SP_KIND_OK, 0, "OK")                                                     \
    X(SP_KIND_FAILED, 1, "FAILED")                                             \
    X(SP_KIND_CRASHED, 2, "CRASHED")                                           \
    X(SP_KIND_TIMED_OUT, 3, "TIMED_OUT")                                       \
    X(SP_KIND_CANCELLED, 4, "CANCELLED")                                       \
    X(SP_KIND_SKIPPED, 5, "SKIPPED")

/** How a task ended (see ::SP_KIND_MAP). */
typedef enum sp_kind {
#define SP_X_KIND_(name, value, text) name = value,
    SP_KIND_MAP(SP_X_KIND_)
#undef SP_X_KIND_
} sp_kind;

/**
 * X-macro table of the reasons a task was cancelled or skipped: name,
 * value, printed name. It generates ::sp_cancel_reason and
 * sp_cancel_reason_name(). Values are stable; new reasons are only
 * appended.
 *
 *  - ::SP_CANCEL_NONE: the entry is neither CANCELLED nor SKIPPED.
 *  - ::SP_CANCEL_DEADLINE: the deadline (::sp_options.deadline) passed
 *    before it started.
 *  - ::SP_CANCEL_FAIL_FAST: another task failed under
 *    ::SP_POLICY_FAIL_FAST; the message of a task that never started names
 *    it ("not started: task "fetch" failed (fail-fast)").
 *  - ::SP_CANCEL_ON_DONE: the completion callback asked to stop.
 *  - ::SP_CANCEL_DEPENDENCY: a task it depends on did not end OK (every
 *    ::SP_KIND_SKIPPED entry; the message names it).
 *  - ::SP_CANCEL_BACKEND: the backend could not go on (no worker could be
 *    started, or the caller could no longer watch its workers); the code
 *    says why (::SP_EFORK, ::SP_EPIPE, ::SP_ESETUP, ::SP_ESYSTEM).
 *  - ::SP_CANCEL_CALLER: a cancel handle of the call or its pool fired
 *    (sp_cancel_fire()); a task on the process backend still running
 *    ::SP_CANCEL_GRACE_MS later was killed.
 */
#define SP_CANCEL_MAP(X)                                                       \
    X(SP_CANCEL_NONE, 0, "NONE")                                               \
    X(SP_CANCEL_DEADLINE, 1, "DEADLINE")                                       \
    X(SP_CANCEL_FAIL_FAST, 2, "FAIL_FAST")                                     \
    X(SP_CANCEL_ON_DONE, 3, "ON_DONE")                                         \
    X(SP_CANCEL_DEPENDENCY, 4, "DEPENDENCY")                                   \
    X(SP_CANCEL_BACKEND, 5, "BACKEND")                                         \
    X(SP_CANCEL_CALLER, 6, "CALLER")

/** Why a task was cancelled or skipped (see ::SP_CANCEL_MAP). */
typedef enum sp_cancel_reason {
#define SP_X_CANCEL_(name, value, text) name = value,
    SP_CANCEL_MAP(SP_X_CANCEL_)
#undef SP_X_CANCEL_
} sp_cancel_reason;

/** @brief Name of a reason as ::SP_CANCEL_MAP spells it: "DEADLINE",
 *  "FAIL_FAST", ...; "UNKNOWN" for any other value. Static string.
 *  Thread-safe. */
SP_API const char *sp_cancel_reason_name(sp_cancel_reason reason);

/** @brief Name of a kind as ::SP_KIND_MAP spells it: "OK", "FAILED",
 *  "CRASHED", "TIMED_OUT", "CANCELLED", "SKIPPED"; "UNKNOWN" for any other
 *  value.
 *  Static string. Thread-safe. */
SP_API const char *sp_kind_name(sp_kind kind);

/** @brief Number of entries (= number of tasks). NULL gives 0. */
SP_API size_t sp_results_count(const sp_results *res);

/** @brief The entry of task @p index, in input order; NULL when out of
 *  range. Valid until sp_results_free(). */
SP_API const sp_entry *sp_results_at(const sp_results *res, size_t index);

/** @brief The entry for @p key in O(1); NULL when no task had that key.
 *  Valid until sp_results_free(). A map of an index-keyed call
 *  (::sp_options.index_keys) has no keys: this returns NULL and, unlike
 *  other pointer-returning functions, sets sp_last_error() to
 *  ::SP_EINVAL saying so; use sp_results_at(). */
SP_API const sp_entry *sp_results_get(const sp_results *res, const char *key);

/** @brief How many entries ended with @p kind. */
SP_API size_t sp_results_count_kind(const sp_results *res, sp_kind kind);

/** @brief How many entries are OK. */
SP_API size_t sp_results_ok(const sp_results *res);

/** @brief How many entries are not OK (failed, crashed, timed out,
 *  cancelled or skipped). */
SP_API size_t sp_results_failed(const sp_results *res);

/** @brief Wall time of the whole call in seconds, from entry into
 *  simple_parallel() until every task had ended. */
SP_API double sp_results_elapsed(const sp_results *res);

/** @brief Number of workers the run actually used (threads or processes;
 *  1 on the serial backend, 0 for an empty table). */
SP_API unsigned sp_results_workers(const sp_results *res);

/** @brief Free the map and everything it owns. NULL is a no-op. Every
 *  pointer obtained from it becomes invalid. */
SP_API void sp_results_free(sp_results *res);

/** @brief The entry's key: the map's own NUL-terminated copy; "" (never
 *  NULL) in a map of an index-keyed call (::sp_options.index_keys), where
 *  sp_entry_index() names the task. */
SP_API const char *sp_entry_key(const sp_entry *e);

/** @brief The entry's index in the task table. */
SP_API size_t sp_entry_index(const sp_entry *e);

/** @brief How the task ended. */
SP_API sp_kind sp_entry_kind(const sp_entry *e);

/**
 * @brief The entry's code: 0 for OK; the task's own non-zero code for
 * FAILED (and for TIMED_OUT / CANCELLED tasks that returned one after being
 * asked to stop); ::SP_ECANCELED for tasks that never started; a negative
 * ::sp_error when the library itself failed the task (e.g. ::SP_ENOMEM,
 * ::SP_ECRASHED, ::SP_ETIMEDOUT).
 *
 * A task's own numbers and the library's codes share one int, so -1 may be
 * a task's "-1" or ::SP_EINVAL: sp_entry_code_origin() tells which. To
 * print an entry, print sp_entry_message(), which every non-OK entry has
 * ("task returned -1" when the task gave no message); pass a code to
 * sp_strerror() only when its origin is ::SP_ORIGIN_LIBRARY.
 */
SP_API int sp_entry_code(const sp_entry *e);

/** Who put an entry's code there. */
typedef enum sp_code_origin {
    SP_ORIGIN_NONE = 0,    /**< an OK entry: its code is 0 */
    SP_ORIGIN_TASK = 1,    /**< the task's own number: it returned it or
                                passed it to sp_fail() */
    SP_ORIGIN_LIBRARY = 2, /**< an ::sp_error the library set: crashed,
                                timed out, cancelled, out of memory, or
                                sp_fail() called with code 0 (::SP_ETASK) */
} sp_code_origin;

/** @brief Whether sp_entry_code() is the task's own number or a library
 *  ::sp_error (see ::sp_code_origin); ::SP_ORIGIN_NONE for OK entries and
 *  NULL. Thread-safe. */
SP_API sp_code_origin sp_entry_code_origin(const sp_entry *e);

/** @brief The failure message ("" for OK entries and failures without a
 *  message). Never NULL. Owned by the map. */
SP_API const char *sp_entry_message(const sp_entry *e);

/** @brief The result bytes and their length (NULL and 0 when the task stored
 *  none). The bytes are followed by a NUL that @p len does not count. */
SP_API const void *sp_entry_data(const sp_entry *e, size_t *len);

/** @brief The result as a string: the stored bytes, or "" when none. Never
 *  NULL. */
SP_API const char *sp_entry_str(const sp_entry *e);

/** @brief When the task started, in seconds since the call started. For a
 *  task that never started: when it was cancelled.
 *
 *  Resolution: times are CLOCK_MONOTONIC nanoseconds (its resolution,
 *  clock_getres(), is 1 ns on Linux). Where the kernel keeps that clock
 *  with the CPU's time-stamp counter (its clocksource is "tsc", x86-64),
 *  a call from 50 ms after the process's first one reads the counter
 *  instead, scaled to CLOCK_MONOTONIC at the call's start: it strays from
 *  it by at most about 1 us per second of the call (the scale is measured
 *  to 1 ppm), and costs half as much to read. Every time of one call
 *  comes from the same clock. To read it once per task, a worker's
 *  reading at the end of one task is also the start of the next task it
 *  takes at once, so a task's start includes the time (tens of
 *  nanoseconds) its worker spent recording the task before and taking
 *  this one; a worker's tasks never overlap. */
SP_API double sp_entry_start(const sp_entry *e);

/** @brief When the task ended, in seconds since the call started (read
 *  as sp_entry_start() says). For a task that never started: equal to
 *  sp_entry_start(). */
SP_API double sp_entry_end(const sp_entry *e);

/**
 * @brief Why a ::SP_KIND_CANCELLED or ::SP_KIND_SKIPPED entry did not run
 * (or, having seen a stop through sp_cancelled(), gave up).
 *
 * Every such entry has a reason other than ::SP_CANCEL_NONE, and its
 * message says it in words ("not started: the deadline passed").
 * SKIPPED entries have ::SP_CANCEL_DEPENDENCY.
 * @return the reason; ::SP_CANCEL_NONE for entries of any other kind and
 *         for NULL. Thread-safe.
 */
SP_API sp_cancel_reason sp_entry_cancel_reason(const sp_entry *e);

/** @brief For a ::SP_KIND_CRASHED entry: the signal that killed the worker
 *  while it ran the task (e.g. SIGSEGV), else 0. */
SP_API int sp_entry_signal(const sp_entry *e);

/** @brief For a ::SP_KIND_CRASHED entry whose worker called exit() or
 *  _exit() inside the task: that exit status (0-255); else -1. */
SP_API int sp_entry_exit_status(const sp_entry *e);

/** Worker index of tasks that never ran. */
#define SP_NO_WORKER 0xffffffffu

/** @brief Index of the worker that ran the task, or ::SP_NO_WORKER. */
SP_API unsigned sp_entry_worker(const sp_entry *e);

/**
 * @brief How many times the task's callback was started.
 *
 * 1 for a task that ran once, more for one that was tried again
 * (::sp_options.retries), 0 for one that never started (CANCELLED "not
 * started", SKIPPED) and for NULL. The entry's kind, code, message,
 * result, times and worker are those of the last attempt;
 * sp_entry_attempt() gives each earlier one, sp_entry_first_kind() and
 * its siblings the first.
 */
SP_API unsigned sp_entry_attempts(const sp_entry *e);

/**
 * @brief Attempt @p n of the task, as an entry of its own.
 *
 * For a task tried more than once the map keeps every attempt: where it
 * ran, when, and how it ended. Attempt sp_entry_attempts(e) is @p e
 * itself. An earlier attempt is an entry owned by the map, valid until
 * sp_results_free(), that every entry accessor reads: sp_entry_key() and
 * sp_entry_index() are the task's; sp_entry_kind() (FAILED, CRASHED or
 * TIMED_OUT: the outcomes that are tried again), sp_entry_code(),
 * sp_entry_code_origin(), sp_entry_message(), sp_entry_start(),
 * sp_entry_end(), sp_entry_worker(), sp_entry_signal() and
 * sp_entry_exit_status() are that attempt's; it holds no result
 * (sp_entry_data() gives NULL); sp_entry_attempts() gives @p n and
 * sp_entry_first_kind() and its siblings the task's first attempt.
 *
 * @code
 * for (unsigned n = 1; n <= sp_entry_attempts(e); n++) {
 *     const sp_entry *a = sp_entry_attempt(e, n);
 *     printf("attempt %u on worker %u: %s %s\n", n, sp_entry_worker(a),
 *            sp_kind_name(sp_entry_kind(a)), sp_entry_message(a));
 * }
 * @endcode
 *
 * @param e the task's entry (from the map, not itself an attempt's).
 * @param n 1 .. sp_entry_attempts(e).
 * @return the attempt's entry; NULL for a NULL @p e, @p n out of range, or
 *         an attempt the map could not keep for lack of memory. Thread-safe;
 *         every backend (and maps of sp_mpi_parallel(), on every rank).
 */
SP_API const sp_entry *sp_entry_attempt(const sp_entry *e, unsigned n);

/** @brief How the task's first attempt ended: for a task tried more than
 *  once, its first failure (so one that crashed and then timed out shows
 *  both); otherwise the same as sp_entry_kind(). */
SP_API sp_kind sp_entry_first_kind(const sp_entry *e);

/** @brief The first attempt's code (see sp_entry_first_kind()); the same
 *  as sp_entry_code() for a task tried once. */
SP_API int sp_entry_first_code(const sp_entry *e);

/** @brief The first attempt's message (see sp_entry_first_kind()); the
 *  same as sp_entry_message() for a task tried once. Never NULL; owned by
 *  the map. */
SP_API const char *sp_entry_first_message(const sp_entry *e);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Export
 * Write a results map out as a trace or a chart, to see where the time of a
 * call went. Both functions read the map only through the accessors above,
 * so they work on any map, and may run while other threads read the same
 * map. Numbers are written with a '.' decimal point whatever the locale.
 * Text from the map (keys, messages) that is not valid UTF-8 has each
 * maximal ill-formed subsequence (the Unicode "maximal subpart" practice,
 * as Python's `errors="replace"` and WHATWG decoders do) replaced by U+FFFD.
 * @{ */

/**
 * @brief Write the map as a Chrome trace-event JSON document.
 *
 * The output opens in Perfetto (https://ui.perfetto.dev) and in
 * chrome://tracing. It is the trace-event "JSON Object Format", schema
 * version 1, which stays stable: later versions only add fields.
 *
 * @code
 * {"traceEvents":[ EVENT, ... ],
 *  "displayTimeUnit":"ms",
 *  "otherData":{"schema":"simplepar-trace","schema_version":1,
 *               "library":"simplepar 0.2.0","tasks":N,"workers":W,
 *               "ok":N_OK,"failed":N_NOT_OK,"elapsed_us":T}}
 * @endcode
 *
 * Events, in this order:
 *  - `{"name":"process_name","ph":"M","pid":1,"tid":0,
 *    "args":{"name":"simplepar"}}`;
 *  - per worker track w = 0 .. W-1 a `"thread_name"` metadata event with
 *    `"args":{"name":"worker w"}` and a `"thread_sort_index"` one; W is
 *    the larger of sp_results_workers() and the highest worker index in
 *    the map plus one;
 *  - when some task never ran, the same two events for the track
 *    `"tid":W` named `"not started"`;
 *  - one event per entry, in input order: every key has exactly one
 *    event without `"attempt"` in its args. A task that ran is a complete
 *    event: `"ph":"X"`,
 *    `"tid"` its worker, `"ts"` its start and `"dur"` its run time. A task
 *    that never ran (worker ::SP_NO_WORKER) is an instant event `"ph":"i"`,
 *    `"s":"t"` on the "not started" track at the time it was cancelled.
 *    Both carry `"name"`: the key; `"cat"`: sp_kind_name() of its kind;
 *    `"pid":1`; and `"args":{"index":I,"kind":"...","code":C,
 *    "message":"...","result_bytes":B,"attempts":A}` (A as
 *    sp_entry_attempts(): 0 for a task that never ran), plus `"signal"`
 *    and `"exit_status"` for CRASHED entries, `"cancel_reason"`
 *    (sp_cancel_reason_name(), e.g. "DEADLINE") for CANCELLED and SKIPPED
 *    ones, and for a task tried more than once `"first_kind"`,
 *    `"first_code"` and `"first_message"` (sp_entry_first_kind() and its
 *    siblings). The event is the task's last attempt;
 *  - then, for each task tried more than once (in input order), one
 *    complete event per earlier attempt n (sp_entry_attempt()), on the
 *    track of the worker that ran it: `"name"` the key, `"cat"` its kind,
 *    `"args":{"index":I,"attempt":n,"kind":"...","code":C,
 *    "message":"..."}` (plus `"signal"` and `"exit_status"` when it
 *    CRASHED). A worker's time spent on attempts that failed shows where
 *    it went.
 *
 * Times are microseconds since the call started (as sp_entry_start()),
 * with three decimals, never negative; `ts` + `dur` is exactly the task's
 * (or the attempt's) end, so the slices of one worker never overlap;
 * `elapsed_us` is sp_results_elapsed(). Strings are escaped as JSON
 * requires (`\"`, `\\`, `\n`, `\t`, ..., other control characters as
 * `\u00XX`); bytes that are not valid UTF-8 become `\ufffd` (see the
 * group's description). The stream is flushed at the end.
 *
 * @param res the map; borrowed.
 * @param f   a stream open for writing; borrowed, left open.
 * @retval 0         written and flushed.
 * @retval SP_EINVAL @p res or @p f is NULL; nothing written.
 * @retval SP_EIO    a write or the flush failed, or @p f has its error
 *                   indicator set; the output is incomplete.
 *                   sp_last_error() names the failing call and the
 *                   system's reason, e.g. `SP_EIO: fflush: No space left
 *                   on device`.
 * Thread-safe; any backend's map.
 */
SP_API int sp_results_write_trace(const sp_results *res, FILE *f);

/**
 * @brief Write the map as an SVG Gantt chart.
 *
 * A standalone SVG 1.1 document (well-formed XML, UTF-8) that opens in any
 * browser: one row per worker ("worker N"), a bar per task from its start
 * to its end coloured by kind, a row "not started" with a marker for each
 * task that never ran, a time axis in seconds from the call's start, a
 * legend of the kinds present, and a `<title>` tooltip on every bar with
 * the key, kind, worker, times, code and message (and, for a task tried
 * more than once, "the last of N attempts (the first KIND, code C)").
 * A task's earlier attempts are paler, dashed bars on the rows of the
 * workers that ran them ("attempt n of N" in their tooltips). Keys are
 * drawn on bars wide enough for them. Each task's element carries
 * `data-index="I"` (its input index) and `class="bar"` or
 * `class="marker"`; an earlier attempt's `class="attempt"`,
 * `data-index="I"` and `data-attempt="n"`. Text is XML-escaped;
 * characters XML cannot hold (control characters other than tab, newline
 * and carriage return, U+FFFE, U+FFFF, invalid UTF-8) become U+FFFD. The
 * stream is flushed at the end.
 *
 * @param res the map; borrowed.
 * @param f   a stream open for writing; borrowed, left open.
 * @return as sp_results_write_trace().
 * Thread-safe; any backend's map.
 */
SP_API int sp_results_write_svg(const sp_results *res, FILE *f);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Running
 * @{ */

/** Where the tasks run. */
typedef enum sp_backend {
    /** Threads of the calling process (default), from a process-wide
     *  pool whose idle threads wait 2 s for the next call and then exit,
     *  so repeated calls create no threads. Best for I/O-bound work, and
     *  in C also for CPU-bound work: there is no GIL. */
    SP_BACKEND_THREAD = 0,
    /** Inline, one after another, in input order, on the calling thread.
     *  For debugging (a breakpoint in any task just works) and as the
     *  baseline of benchmarks. */
    SP_BACKEND_SERIAL = 1,
    /** Forked worker processes: crash isolation and hard time limits. A
     *  task that segfaults, aborts, exits or hangs comes back CRASHED or
     *  TIMED_OUT under its own key and the caller survives.
     *
     *  Workers are forked from the calling thread after validation, so
     *  tasks see the caller's memory as it was at that moment (copy on
     *  write) and need no serialisation; only result bytes and failure
     *  messages travel back. In a forked worker only the forking thread
     *  exists: a task must not wait for other threads of the caller, nor
     *  rely on locks they may have held at the fork (glibc's malloc and
     *  stdio are safe; other allocators and libraries may not be). Changes a
     *  task makes to memory stay in the worker. Output buffered in stdio is
     *  flushed before each fork, so nothing is printed twice. Workers leave
     *  with _exit() and run none of the caller's atexit handlers, unless a
     *  task itself calls exit(). The caller's signal dispositions are not
     *  changed; SIGCHLD may be ignored or handled by the caller (exit
     *  statuses then come from the workers' own reports, see
     *  docs/guide.md).
     *
     *  Isolation from hostile tasks (docs/reliability.md lists each case):
     *  each worker holds only its own channel to the caller (the
     *  library's other descriptors, of this call and of concurrent calls,
     *  are closed in it), so stray writes cost at most the writing task's
     *  own result, and concurrent calls never wait for each other's
     *  workers. Each worker leads its own process group: whatever a task
     *  starts and leaves behind is killed with the group when the worker
     *  ends (time limit, deadline, crash, or its normal exit); a task that
     *  wants a process to outlive it must start it in a new session
     *  (setsid()). Workers die with their caller (Linux:
     *  PR_SET_PDEATHSIG; elsewhere they leave once the caller's end of
     *  their channel closes). The call never waits on a process it did not
     *  start. */
    SP_BACKEND_PROCESS = 2,
} sp_backend;

/** What happens after a task fails. */
typedef enum sp_policy {
    /** Run every task; collect every result and error (as_completed). */
    SP_POLICY_COLLECT_ALL = 0,
    /** After the first failure nothing new starts; tasks not yet started
     *  come back ::SP_KIND_CANCELLED (like executor.map raising). */
    SP_POLICY_FAIL_FAST = 1,
    /** Old name of ::SP_POLICY_COLLECT_ALL (0.1.0), kept as an alias. */
    SP_COLLECT_ALL = SP_POLICY_COLLECT_ALL,
    /** Old name of ::SP_POLICY_FAIL_FAST (0.1.0), kept as an alias. */
    SP_FAIL_FAST = SP_POLICY_FAIL_FAST,
} sp_policy;

/**
 * Completion callback: called once per task as it ends, in completion order
 * (cancelled tasks included), always on the thread that called
 * simple_parallel() and never concurrently with itself: it needs no locks.
 *
 * @param e     the finished entry; valid until sp_results_free() of the map
 *              the call returns.
 * @param user  ::sp_options.on_done_arg.
 * @return 0 to go on; non-zero to stop: no new task starts afterwards (they
 *         come back ::SP_KIND_CANCELLED) and running tasks see sp_cancelled().
 */
typedef int (*sp_done_fn)(const sp_entry *e, void *user);

/** A cancel handle (see sp_cancel_create()). Opaque. */
typedef struct sp_cancel sp_cancel;

/** Most thread workers a call with ::sp_options.max_workers 0 grows to
 *  while its workers block. */
#define SP_THREAD_DEFAULT_CAP 256u
/** Largest accepted ::sp_options.max_workers. */
#define SP_MAX_WORKERS 65536u
/** ::sp_options.deadline and ::sp_options.task_timeout must be below this
 *  many seconds (about 31.7 years): larger values cannot be represented as
 *  nanoseconds on the library's 64-bit clock. */
#define SP_MAX_SECONDS 1e9
/** Largest accepted ::sp_options.stack_size: 1 GiB. */
#define SP_MAX_STACK_SIZE ((size_t)1 << 30)
/** Most tasks in one table: 2^32 - 2 (indices are 32-bit internally). */
#define SP_MAX_TASKS 4294967294u
/** Longest failure message kept, in bytes (1 MiB), on every backend: a
 *  longer sp_fail() message is cut to this length (at a UTF-8 character
 *  boundary) and ends with "...". */
#define SP_MAX_MESSAGE 1048576u

/**
 * Options of one call. All-zero (or a NULL pointer) means every default.
 * Initialise with `sp_options o = {0};` or designated initialisers so that
 * fields added later stay zero.
 */
typedef struct sp_options {
    /** Where tasks run. Default ::SP_BACKEND_THREAD. */
    sp_backend backend;
    /** Most workers running at once; 0 = default:
     *  thread: one per online CPU to start with, more while they block
     *  (sleep, I/O, waiting on locks) with tasks waiting, at most
     *  ::SP_THREAD_DEFAULT_CAP; so CPU-bound tables get one thread per
     *  CPU and I/O-bound ones grow to many in a few milliseconds;
     *  process: min(online CPUs, tasks);
     *  serial: ignored (always 1).
     *  Range 0 .. ::SP_MAX_WORKERS (65,536); a larger value gives
     *  ::SP_EOPTION. A call starts at most one worker per task of its
     *  table; tasks spawned with sp_spawn() and dependents made ready
     *  while every worker is busy may start more, up to this limit. */
    unsigned max_workers;
    /** ::SP_POLICY_COLLECT_ALL (default) or ::SP_POLICY_FAIL_FAST. */
    sp_policy on_error;
    /** Overall deadline in seconds from the call's start; 0 = none.
     *  Tasks not started by then come back ::SP_KIND_CANCELLED; running tasks
     *  see sp_cancelled() (threads, serial) and the call returns when they
     *  do; on the process backend they are killed and come back
     *  ::SP_KIND_TIMED_OUT. Range: finite, >= 0 and below ::SP_MAX_SECONDS
     *  (1e9); anything else gives ::SP_EOPTION. */
    double deadline;
    /** Completion callback; NULL = none. */
    sp_done_fn on_done;
    /** Passed to on_done; borrowed. */
    void *on_done_arg;
    /** Stack size of each worker thread in bytes; 0 = the system default
     *  (8 MiB on Linux, from `ulimit -s`). Range: 0, or PTHREAD_STACK_MIN
     *  (the system minimum, 16 KiB on Linux) .. ::SP_MAX_STACK_SIZE
     *  (1 GiB); anything else gives ::SP_EOPTION. Thread backend only;
     *  checked on every backend.
     *
     *  What it changes is address space, not memory in use: a stack's pages
     *  are touched only as deep as the task's calls go, so resident memory
     *  (RSS) is about the same for 16 KiB and 8 MiB stacks. It matters
     *  when address space is limited: under `ulimit -v` (RLIMIT_AS),
     *  thousands of 8 MiB stacks exhaust it, thread creation fails and the
     *  run goes on with the workers that could be created; tasks whose
     *  results can then not be stored come back FAILED with ::SP_ENOMEM and
     *  a message saying how many threads were created and why. A smaller
     *  stack lets more threads fit; too small a stack crashes a task that
     *  needs more. */
    size_t stack_size;
    /** Time limit of each task in seconds from its start; 0 = none. A
     *  row's ::sp_task_policy.time_limit replaces it for that task.
     *  Range: finite, >= 0 and below ::SP_MAX_SECONDS (1e9); anything else
     *  gives ::SP_EOPTION. Process backend: a task over it is killed and
     *  comes back ::SP_KIND_TIMED_OUT. Thread and serial backends (a thread
     *  cannot be killed): sp_cancelled() turns true for that task, and a
     *  task that returns after its limit comes back ::SP_KIND_TIMED_OUT
     *  whatever it returned: with its own code and message if it failed,
     *  else with ::SP_ETIMEDOUT and its result bytes kept in the entry. */
    double task_timeout;
    /** Seconds from the end of a failed attempt to the earliest start of
     *  the next (retries); 0 = at once. Other tasks run meanwhile: the
     *  delay holds up only the task that waits. Range as deadline. */
    double retry_delay;
    /** With ::SP_BACKOFF_DOUBLING, the longest delay in seconds; 0 = no
     *  cap (below ::SP_MAX_SECONDS). Range as deadline. */
    double retry_delay_max;
    /** A cancel handle that stops this call when fired (sp_cancel_fire(),
     *  from any thread or a signal handler); NULL = none. Borrowed: it
     *  must outlive the call. */
    sp_cancel *cancel;
    /** How many further attempts a task that ended with one of the
     *  outcomes in retry_on gets, 0 .. ::SP_MAX_RETRIES (100); 0 = none
     *  (default). Each attempt is a new call of the task's callback, on
     *  any worker (on the process backend, a retry after a crash runs in
     *  a fresh worker); sp_ctx_attempt() tells the task which it is. Rows
     *  may set their own (::sp_task_policy). No attempt starts after the
     *  deadline, a fail-fast stop or a stop from on_done: a task waiting
     *  for its next attempt then keeps its last outcome, and a retry that
     *  could start only after the deadline is not made. on_done, the
     *  counts, fail-fast and the tasks that depend on it see only a
     *  task's last attempt. */
    unsigned retries;
    /** Which outcomes are tried again: ::SP_RETRY_FAILED,
     *  ::SP_RETRY_CRASHED, ::SP_RETRY_TIMED_OUT, or-ed; 0 = all three.
     *  Other bits give ::SP_EOPTION. */
    unsigned retry_on;
    /** How the delay grows: ::SP_BACKOFF_FIXED (the default, also for
     *  ::SP_BACKOFF_DEFAULT) or ::SP_BACKOFF_DOUBLING. */
    sp_backoff retry_backoff;
    /** 1 = an index-keyed table: every ::sp_task.key is NULL and the
     *  entries are addressed by their index (sp_results_at()), so the
     *  caller formats no keys and the library builds no key index; there
     *  are no duplicates to reject. 0 (default) = every row has a unique
     *  string key. Other values give ::SP_EOPTION.
     *
     *  In an index-keyed call: a row with a non-NULL key, or with
     *  ::sp_task.after (dependencies name keys), gives ::SP_EINVAL naming
     *  the row, before anything runs; sp_spawn() gives ::SP_ENOTSUP;
     *  sp_entry_key() and sp_ctx_key() return ""; sp_results_get()
     *  returns NULL and sets sp_last_error() (::SP_EINVAL); the trace and
     *  the SVG chart name each task "#I" (its index). Every backend and
     *  pool takes it; sp_mpi_parallel() (<simplepar/mpi.h>) refuses it
     *  with ::SP_ENOTSUP. Everything else (kinds, fail-fast, deadline,
     *  cancel, retries, on_done, the counts) is as for a keyed table. */
    int index_keys;
    /** Reserved for later options. Must be zero: non-zero gives
     *  ::SP_ENOTSUP. (Its size keeps sp_options as large as in 0.1 on
     *  every ABI: 16 bytes on LP64.) */
    unsigned char reserved[24 - sizeof(void *)];
} sp_options;

/**
 * @brief Run every task of a table and collect a keyed results map.
 *
 * Validates the whole table and the options first; on any error nothing has
 * run (no callback was called) and *out is left NULL. Errors are reported
 * for the first offending row in table order, with a message naming its
 * index and key (see sp_last_error()). On the thread backend a table of
 * 32,768 rows or more is validated by the calling thread and a helper
 * thread (all signals blocked) that is joined before the run starts; the
 * outcome and the error are those of one thread, and a helper that cannot
 * be created only makes validation slower.
 *
 * Once validation passes, every task comes back in the map: OK with its
 * result bytes, or FAILED / CRASHED / TIMED_OUT / CANCELLED with a code and
 * message. A failing task never hides another's result.
 *
 * Each callback runs once per attempt, and a task has one attempt unless
 * the caller asked for retries (::sp_options.retries,
 * ::sp_task_policy.retries): no backend runs a task again behind the
 * caller's back (a task's side effects, a payment or a write, do not
 * happen twice). A task whose callback began never comes back CANCELLED
 * "not started": if its worker died, it is CRASHED or TIMED_OUT, also when
 * it had returned and only its result was lost. On the process backend a
 * task whose worker died after claiming it but before calling it is run by
 * another worker; that is not a new attempt.
 *
 * Time limits (::sp_options.task_timeout, the deadline) bound the
 * callback, not the transfer of its result: a result that was completely
 * produced is delivered however long its bytes take to arrive.
 *
 * @param tasks  the task table; borrowed for the duration of the call. May
 *               be NULL only when @p n is 0.
 * @param n      number of tasks; 0 gives an empty map. At most
 *               ::SP_MAX_TASKS (2^32 - 2); more gives ::SP_ETOOMANY. Keys
 *               may have any length that fits in memory (error messages
 *               show their first 64 bytes).
 * @param opts   options, or NULL for all defaults; borrowed.
 * @param out    receives the new map, to be freed with sp_results_free().
 *
 * @retval 0              every task ran or was accounted for; see the map.
 * @retval SP_EINVAL      @p out is NULL, or a row has len > 0 with NULL
 *                        data; in an index-keyed call
 *                        (::sp_options.index_keys), a row has a key or
 *                        ::sp_task.after.
 * @retval SP_ENULLTABLE  @p tasks is NULL and @p n > 0.
 * @retval SP_ENOKEY      a key is NULL or "" (keyed calls).
 * @retval SP_EDUPKEY     two tasks share a key (keyed calls).
 * @retval SP_ENOFN       a callback is NULL.
 * @retval SP_EDEPKEY     an ::sp_task.after key is not in the table.
 * @retval SP_ECYCLE      a task depends on itself, or the dependencies
 *                        form a cycle (the message names its keys).
 * @retval SP_EOPTION     an option is out of range.
 * @retval SP_ENOTSUP     a reserved field is set.
 * @retval SP_ETOOMANY    @p n is too large.
 * @retval SP_ENOMEM      the map could not be allocated; nothing ran.
 * @retval SP_ETHREAD     not even one worker thread could be created;
 *                        nothing ran. (If some could, the run goes on with
 *                        fewer workers.)
 * @retval SP_EPIPE       process backend: no pipe for the first worker
 *                        (e.g. RLIMIT_NOFILE reached); nothing ran.
 * @retval SP_EFORK       process backend: the first worker could not be
 *                        forked; nothing ran. Later fork failures shrink the
 *                        pool; tasks left with no worker at all come back
 *                        CANCELLED with code ::SP_EFORK or ::SP_EPIPE.
 *
 * Thread-safe and re-entrant: any number of threads may call it at once,
 * and a task may call it again (on any backend) without deadlock.
 */
SP_API int simple_parallel(const sp_task *tasks, size_t n,
                           const sp_options *opts, sp_results **out);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Cancelling from outside
 * A cancel handle stops a running call (::sp_options.cancel) or every
 * call of a pool (::sp_pool_options.cancel) from another thread, or from
 * a signal handler: a SIGINT handler can end a long call. Once fired,
 * nothing new starts; running tasks see sp_cancelled(); on the process
 * backend a task still running ::SP_CANCEL_GRACE_MS after the call
 * noticed is killed with its worker. Every key still comes back: tasks
 * that had not ended are ::SP_KIND_CANCELLED with the reason
 * ::SP_CANCEL_CALLER ("not started: cancelled by the caller"); a task that
 * returns 0 in the meantime keeps its result. A thread cannot be killed,
 * so on the thread and serial backends the call returns once its running
 * tasks have returned. The call notices a fired handle within a few
 * milliseconds (it looks at least every ::SP_CANCEL_POLL_MS). Calls that
 * its tasks make are stopped only if they are given the handle too.
 * @{ */

/** How long a task on the process backend may still run after its call
 *  noticed a fired cancel handle before its worker is killed (ms). */
#define SP_CANCEL_GRACE_MS 250u
/** The longest a waiting call takes to notice a fired cancel handle when
 *  nothing else wakes it (ms). */
#define SP_CANCEL_POLL_MS 5u

/**
 * @brief Create a cancel handle, not fired.
 * @param out receives the handle, to be freed with sp_cancel_free().
 * @retval 0          created.
 * @retval SP_EINVAL  @p out is NULL.
 * @retval SP_ENOMEM  out of memory.
 * Thread-safe.
 */
SP_API int sp_cancel_create(sp_cancel **out);

/**
 * @brief Fire the handle: every call that has it (in its options, or
 * through its pool) stops, now and until sp_cancel_reset().
 *
 * Async-signal-safe (one lock-free atomic store): it may be called from a
 * signal handler, and from any thread. A call given a handle that has
 * already fired runs nothing: every task comes back CANCELLED. NULL is a
 * no-op.
 */
SP_API void sp_cancel_fire(sp_cancel *c);

/** @brief Whether the handle has fired (and not been reset since): 1 or 0;
 *  0 for NULL. Async-signal-safe. */
SP_API int sp_cancel_fired(const sp_cancel *c);

/** @brief Make a fired handle usable again: calls that start afterwards
 *  run normally (calls that saw it fired stay stopped). NULL is a no-op.
 *  Async-signal-safe. */
SP_API void sp_cancel_reset(sp_cancel *c);

/** @brief Free the handle. NULL is a no-op. No call or pool may still be
 *  using it. */
SP_API void sp_cancel_free(sp_cancel *c);

/** @} */

/* ------------------------------------------------------------------------ */
/** @name Pools: workers that outlive a call
 * @{ */

/** A pool of workers (threads or processes) that run many calls. Opaque;
 *  created by sp_pool_create(), freed by sp_pool_free(). */
typedef struct sp_pool sp_pool;

/**
 * A worker's set-up: runs once in each worker of a pool when it starts,
 * before the worker runs any task: in the worker thread, or in the worker
 * process (so a connection opened here belongs to that process).
 *
 * @param worker the worker's index, 0 .. workers - 1; a worker that
 *               replaces one that died gets the same index.
 * @param user   ::sp_pool_options.user.
 * @param state  where to store the worker's state (*state is NULL at
 *               entry); tasks read it with sp_ctx_worker_state().
 * @return 0 on success; anything else is a failure: see sp_pool_create().
 */
typedef int (*sp_setup_fn)(unsigned worker, void *user, void **state);

/**
 * A worker's tear-down: runs once in each worker whose set-up succeeded,
 * when the worker ends in sp_pool_free(), with what set-up stored. Not
 * run in a worker process that died (crashed, killed).
 */
typedef void (*sp_teardown_fn)(unsigned worker, void *user, void *state);

/**
 * Options of a pool. All-zero (or a NULL pointer) means every default.
 * Initialise with designated initialisers so that fields added later stay
 * zero.
 */
typedef struct sp_pool_options {
    /** Where the pool's tasks run: ::SP_BACKEND_THREAD (default),
     *  ::SP_BACKEND_PROCESS or ::SP_BACKEND_SERIAL (one worker: the
     *  thread that calls sp_pool_run(); calls take turns). */
    sp_backend backend;
    /** The pool's number of workers, all started by sp_pool_create();
     *  0 = the number of online CPUs. Range 0 .. ::SP_MAX_WORKERS; a
     *  larger value gives ::SP_EOPTION. Serial pools have 1. For I/O-bound
     *  tasks (network calls) more workers than CPUs is right. */
    unsigned max_workers;
    /** Per-worker set-up; NULL = none. */
    sp_setup_fn setup;
    /** Per-worker tear-down; NULL = none. */
    sp_teardown_fn teardown;
    /** Passed to setup and teardown; borrowed for the pool's life. */
    void *user;
    /** Stack size of each worker thread, as ::sp_options.stack_size
     *  (thread pools; checked for every backend). */
    size_t stack_size;
    /** A cancel handle that stops every call of the pool when fired,
     *  those in flight and those that start until it is reset (as
     *  ::sp_options.cancel does for one call); NULL = none. Borrowed for
     *  the pool's life. */
    sp_cancel *cancel;
    /** Reserved for later options. Must be zero: non-zero gives
     *  ::SP_ENOTSUP. (Its size keeps sp_pool_options as large as in 0.2's
     *  first pools on every ABI.) */
    unsigned char reserved[48 - sizeof(void *)];
} sp_pool_options;

/**
 * @brief Create a pool and start all its workers.
 *
 * Every worker is started, and has run its set-up, when this returns. If
 * a set-up fails (returns non-zero, or its worker process dies), the pool
 * is not created: the workers already started are ended (their tear-down
 * runs) and ::SP_ESETUP is returned, with sp_last_error() naming the worker
 * and what its set-up returned.
 *
 * A process pool forks its workers from a fork server: a single-threaded
 * process forked from the caller here, at creation, which forks every
 * worker, replacements included. Workers therefore see the caller's
 * memory as it was at sp_pool_create(), never a lock another thread of the
 * caller held at a later fork. Create process pools early, before the
 * program starts other threads (then no lock can be held at that one
 * fork); memory the caller allocates later does not exist in the workers:
 * pass a task's input as bytes (::sp_task.data).
 *
 * @param po  options, or NULL for all defaults; borrowed.
 * @param out receives the pool, to be freed with sp_pool_free().
 * @retval 0            created.
 * @retval SP_EINVAL    @p out is NULL.
 * @retval SP_EOPTION   an option is out of range.
 * @retval SP_ENOTSUP   a reserved field is set.
 * @retval SP_ESETUP    a worker's set-up failed; nothing is left behind.
 * @retval SP_ENOMEM, SP_ETHREAD, SP_EPIPE, SP_EFORK  a resource could not
 *                      be had; nothing is left behind.
 */
SP_API int sp_pool_create(const sp_pool_options *po, sp_pool **out);

/**
 * @brief Run a task table on a pool's workers.
 *
 * Everything simple_parallel() promises holds: the same validation and
 * errors before anything runs, the same results map with every key, the
 * same dependencies, spawning, deadline, fail-fast and completion callback.
 * The differences: the workers are the pool's, already started, so a call
 * costs microseconds; ::sp_options.backend and ::sp_options.stack_size are
 * ignored (the pool's apply); ::sp_options.max_workers, when not 0, lets
 * this call use at most that many of the pool's workers.
 *
 * Any number of threads may call it on one pool at once: the calls share
 * the workers, and together never run more tasks at once than the pool has
 * workers (a task waiting in a nested call does not count: see below).
 * Calls are served in the order they arrive.
 *
 * A task may call sp_pool_run() on its own pool: its worker runs the
 * nested call's tasks itself while it waits, and idle workers help, so
 * nested calls never deadlock, however deep (on a process pool the nested
 * call runs in the task's worker process, on its own threads).
 *
 * On a process pool, a worker that dies (crash, time limit, deadline) is
 * replaced by a new one from the fork server, which runs set-up again; the
 * pool never becomes unusable. If a replacement's set-up fails, the pool
 * goes on with the workers it has; tasks that find no worker at all come
 * back ::SP_KIND_CANCELLED with code ::SP_ESETUP (or the error of the
 * fork, such as ::SP_EFORK, when the last replacement could not even be
 * forked; a later call tries that fork again). ::sp_task.arg is passed
 * as is and is only meaningful for memory that existed at
 * sp_pool_create(); ::sp_task.data is copied to the worker.
 *
 * @param pool  the pool.
 * @param tasks,n,opts,out  as for simple_parallel().
 * @return as simple_parallel(); ::SP_EINVAL also for a NULL @p pool or a
 *         pool being freed.
 */
SP_API int sp_pool_run(sp_pool *pool, const sp_task *tasks, size_t n,
                       const sp_options *opts, sp_results **out);

/** @brief The pool's number of workers (::sp_pool_options.max_workers, or
 *  its default); 0 for NULL. */
SP_API unsigned sp_pool_workers(const sp_pool *pool);

/**
 * @brief End every worker of the pool and free it.
 *
 * Waits for calls of sp_pool_run() in flight in other threads to return
 * (nested calls made by their tasks may still start; any other call fails
 * with ::SP_EINVAL), then ends each worker (its tear-down runs in it),
 * joins every thread or reaps every process (and the fork server), and
 * closes every descriptor: nothing of the pool is left behind. NULL is a
 * no-op. Called from a task running on the pool itself (it would wait for
 * itself), it does nothing and sets sp_last_error() to ::SP_EBUSY. In a
 * forked child (a process pool's worker included) the pool's workers are
 * not the child's: sp_pool_run() runs on the child's own threads and
 * sp_pool_free() frees only memory.
 */
SP_API void sp_pool_free(sp_pool *pool);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* SIMPLEPAR_H */
