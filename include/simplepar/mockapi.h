/* SPDX-License-Identifier: MIT */
/**
 * @file simplepar/mockapi.h
 * @brief The mock API of the seed programs: slow, failing, crashing calls
 * with the seeds' data, live logging and timelines. A separate library,
 * libsimplepar-mockapi, built on simplepar; the core never depends on it.
 *
 * Every call sleeps a latency drawn uniformly from [min(0.5, max), max]
 * seconds (seed 000's `random.uniform`), multiplied by the handle's time
 * scale, so tests and CI run the same programs in milliseconds. The
 * latency of a call is a pure function of (seed, label): no generator
 * state is shared between threads or inherited by forked workers, so
 * every worker draws its own delays, the same in every run.
 *
 * All functions are thread-safe; a handle may be used from any number of
 * workers at once, and from forked workers (the recorded events of a
 * forked worker stay in that worker).
 */
#ifndef SIMPLEPAR_MOCKAPI_H
#define SIMPLEPAR_MOCKAPI_H

#include <simplepar.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A mock API instance: its clock, options and recorded calls. Opaque. */
typedef struct sp_mock sp_mock;

/** Options of a mock instance; all-zero means every default. */
typedef struct sp_mock_options {
    /** Multiplies every latency; 0 = 1.0 (real seconds). Must be >= 0. */
    double time_scale;
    /** Seed of every latency and failure draw; 0 = 22 (seed 001's). */
    unsigned long long seed;
    /** Probability in [0, 1] that a call fails with "timed out". */
    double fail_probability;
    /** NULL-terminated list of inputs whose calls always fail (borrowed
     *  for the handle's life); NULL = none. */
    const char *const *fail_inputs;
    /** Where START / DONE lines go; NULL = no live log. */
    FILE *log;
    /** Record every call for sp_mock_recorded(); 0 = do not. */
    int record;
    /** Must be zero. */
    unsigned char reserved[32];
} sp_mock_options;

/** @brief New instance; its clock starts now. NULL on bad options (errno
 *  EINVAL) or out of memory. Free with sp_mock_free(). */
SP_API sp_mock *sp_mock_new(const sp_mock_options *opts);

/** @brief Free an instance; NULL is a no-op. */
SP_API void sp_mock_free(sp_mock *m);

/** @brief Milliseconds since the instance was created (the shared clock of
 *  the live log). */
SP_API double sp_mock_clock_ms(const sp_mock *m);

/**
 * @brief One simulated slow call: log START, sleep the drawn latency
 * (polling sp_cancelled() when @p ctx is given), log DONE, record it.
 * @param who   the worker's name for the log and the timeline, e.g.
 *              "worker-3"; copied.
 * @param label the call, e.g. "props(100)"; it also picks the latency.
 * @param max_delay upper bound of the latency in seconds (before scaling).
 * @return 0; or, when the call fails (failure injection), SP_ETASK
 *         after sp_fail(ctx, SP_ETASK, "timed out"); or SP_ECANCELED when
 *         the task was asked to stop while waiting. Every failure is also
 *         recorded on @p ctx; with a NULL ctx only the code is returned.
 */
SP_API int sp_mock_io(sp_mock *m, sp_ctx *ctx, const char *who,
                      const char *label, double max_delay);

/** How sp_mock_crash() ends the calling worker. */
typedef enum sp_mock_crash_kind {
    SP_MOCK_SEGFAULT = 1, /**< write to an unmapped address */
    SP_MOCK_ABORT = 2,    /**< abort() */
    SP_MOCK_HANG = 3,     /**< sleep forever */
} sp_mock_crash_kind;

/** @brief Crash injection for showing off the process backend. Never
 *  returns. On the thread backend this takes the whole program down. */
SP_API void sp_mock_crash(sp_mock_crash_kind kind);

/* --- seed 000: branches, terminals, buses -------------------------------- */

/** A bus at a branch terminal. */
typedef struct sp_mock_bus {
    const char *bus_name, *bus_num;
    int kv;
} sp_mock_bus;

/** Direct properties of a branch. */
typedef struct sp_mock_branch {
    const char *branch_uri, *branch_name;
    double length;
    const char *terminal1_uri, *terminal2_uri;
} sp_mock_branch;

/** @brief branch_list(scenario): the URIs of the branches of a scenario
 *  (latency cap 1.0 s). Stores up to @p max pointers to static strings in
 *  @p uris. @return the number of branches, or a negative code. */
SP_API int sp_mock_branch_list(sp_mock *m, sp_ctx *ctx, const char *who,
                               int scenario, const char **uris, size_t max);

/** @brief props(uri): a branch's properties (latency cap 2.0 s). Strings
 *  are static. @return 0, a failure code, or SP_EINVAL for an unknown uri. */
SP_API int sp_mock_branch_props(sp_mock *m, sp_ctx *ctx, const char *who,
                                const char *uri, sp_mock_branch *out);

/** @brief bus@term(uri): the bus of a terminal (latency cap 3.5 s). */
SP_API int sp_mock_bus_for_terminal(sp_mock *m, sp_ctx *ctx, const char *who,
                                    const char *terminal_uri, sp_mock_bus *out);

/* --- seed 001: ticker quotes ---------------------------------------------- */

/** One day of a ticker: open, high, low, close, volume. */
typedef struct sp_mock_ohlcv {
    double open, high, low, close;
    long long volume;
} sp_mock_ohlcv;

/** The tickers of seed 001: AAPL GOOG NFLX TSLA META AMZN NVDA, NULL. */
SP_API const char *const *sp_mock_tickers(void);

/** @brief A deterministic fake daily series of @p days for a ticker (one
 *  call, latency cap 0.5 s). @return 0, a failure code, or SP_EINVAL for an
 *  unknown ticker. */
SP_API int sp_mock_ticker_quotes(sp_mock *m, sp_ctx *ctx, const char *who,
                                 const char *ticker, sp_mock_ohlcv *out,
                                 size_t days);

/** @brief Seed 001's log files: @p files files of @p lines lines each
 *  ("<timestamp> <endpoint> <status>", endpoints and statuses drawn from a
 *  fixed seed) written into a new temporary directory. @return the
 *  directory (malloc'd; remove it with sp_mock_remove_logs()) or NULL. */
SP_API char *sp_mock_write_logs(size_t files, size_t lines,
                                unsigned long long seed);

/** @brief The path of log file @p i in @p dir, into @p out. */
SP_API void sp_mock_log_path(const char *dir, size_t i, char *out,
                             size_t outlen);

/** @brief Delete the files and the directory sp_mock_write_logs() made,
 *  and free @p dir. */
SP_API void sp_mock_remove_logs(char *dir, size_t files);

/** @brief Count the lines of a file that contain @p needle (CPU-bound
 *  work, no sleeping). @return the count, or -1 if it cannot be read. */
SP_API long sp_mock_count_lines(const char *path, const char *needle);

/* --- seed 004: downloads -------------------------------------------------- */

/** @brief download(url): "<url>: 200 OK (<n> bytes)" into @p out (latency
 *  uniform in [0.1, 0.6] s). A URL ending in '7' fails with "timed out",
 *  like the seed's. @return 0 or a failure code. */
SP_API int sp_mock_download(sp_mock *m, sp_ctx *ctx, const char *who,
                            const char *url, char *out, size_t outlen);

/* --- timelines ------------------------------------------------------------ */

/** One bar of a timeline: a call or a task, on a lane (worker). */
typedef struct sp_mock_event {
    const char *lane;  /**< e.g. "worker-3" */
    const char *label; /**< e.g. "props(100)" */
    double start, end; /**< seconds on a common clock */
} sp_mock_event;

/** @brief The calls recorded so far (opts.record) in this process; stores
 *  up to @p max events (strings owned by @p m, valid until sp_mock_free())
 *  and returns how many were recorded in all. */
SP_API size_t sp_mock_recorded(sp_mock *m, sp_mock_event *out, size_t max);

/** @brief Events from a results map: one per task that ran (lane
 *  "worker-N", label the key, times from the entry). @p lanes must hold
 *  16 bytes per event for the lane names. Returns the events stored. */
SP_API size_t sp_mock_events_from_results(const sp_results *res,
                                          sp_mock_event *out, char *lanes,
                                          size_t max);

/** @brief The ASCII Gantt chart of seed 000's print_timeline: one line per
 *  event sorted by start, "lane |   ####   | label (1.2s)", @p width
 *  columns of bar (0 = 60). */
SP_API void sp_mock_timeline_text(FILE *out, const sp_mock_event *ev, size_t n,
                                  int width);

/** @brief The same chart as a standalone SVG document (one lane per row,
 *  bars labelled, a time axis), drawn by the renderer behind
 *  sp_results_write_svg(); opens in any browser. @return 0 or -1 on a
 *  write error. */
SP_API int sp_mock_timeline_svg(FILE *out, const sp_mock_event *ev, size_t n);

#ifdef __cplusplus
}
#endif
#endif
