/* SPDX-License-Identifier: MIT */
/* Per-task policy: time limits per task, retries with their delays, why a
 * task was cancelled, and the cancel handle. Every backend; where one
 * differs (a thread cannot be killed), the test says why. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "common.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* Shared with worker processes: what tasks saw, across attempts. */
struct shared {
    atomic_int calls[16];     /* per task index: callbacks started */
    atomic_int first_pid[16]; /* per task index: pid of its first attempt */
    atomic_int started;       /* tasks that began (cancel tests) */
    /* per task index and attempt: when it began and ended (CLOCK_MONOTONIC
     * ns, the same clock in every process) */
    _Atomic uint64_t began[16][16], ended[16][16];
};
static struct shared *sh;

static int setup(void **state)
{
    (void)state;
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return sh == MAP_FAILED ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    munmap(sh, sizeof *sh);
    return 0;
}

static void reset(void)
{
    memset(sh, 0, sizeof *sh);
}

static int quick(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_set_resultf(ctx, "%zu", sp_ctx_index(ctx));
}

/* Waits (at most 5 s) until asked to stop, then gives up with an error. */
static int waits_for_cancel(sp_ctx *ctx, void *arg)
{
    (void)arg;
    atomic_fetch_add(&sh->started, 1);
    if (!test_wait_cancel(ctx, 5000))
        return sp_set_result_str(ctx, "never cancelled");
    return sp_fail(ctx, 9, "gave up: cancelled");
}

/* Sleeps arg milliseconds without looking at sp_cancelled(), then
 * succeeds. */
static int sleeps(sp_ctx *ctx, void *arg)
{
    test_sleep_ms((unsigned)(uintptr_t)arg);
    return sp_set_result_str(ctx, "slept");
}

/* ---- time limits -------------------------------------------------------- */

/* A row's time_limit shorter than the call's task_timeout applies to it
 * alone: it is stopped (asked on threads and serial, killed on process)
 * and comes back TIMED_OUT; the others run under the call's long limit. */
static void test_limit_shorter_than_the_calls(void **state)
{
    (void)state;
    sp_task_policy short_limit = {.time_limit = 0.03 * test_scale()};
    sp_task t[] = {
        {.key = "a", .fn = quick},
        {.key = "short", .fn = waits_for_cancel, .policy = &short_limit},
        {.key = "c", .fn = sleeps, .arg = (void *)(uintptr_t)test_ms(60)},
    };
    sp_options o = test_opts();
    o.max_workers = 2;
    o.task_timeout = 5.0 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 3, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), 2);
    const sp_entry *e = sp_results_get(res, "short");
    assert_int_equal(sp_entry_kind(e), SP_KIND_TIMED_OUT);
    assert_true(sp_entry_end(e) - sp_entry_start(e) >= 0.029 * test_scale());
    /* On process the parent's kill may come first. */
    if (test_backend != SP_BACKEND_PROCESS || sp_entry_code(e) == 9)
        assert_string_equal(sp_entry_message(e), "gave up: cancelled");
    else
        assert_non_null(strstr(sp_entry_message(e), "its time_limit of"));
    sp_results_free(res);
}

/* A row's time_limit longer than the call's task_timeout: it may run past
 * the call's limit, the row beside it may not. */
static void test_limit_longer_than_the_calls(void **state)
{
    (void)state;
    sp_task_policy long_limit = {.time_limit = 5.0 * test_scale()};
    void *ms = (void *)(uintptr_t)test_ms(80);
    sp_task t[] = {
        {.key = "long", .fn = sleeps, .arg = ms, .policy = &long_limit},
        {.key = "plain", .fn = sleeps, .arg = ms},
    };
    sp_options o = test_opts();
    o.max_workers = 2;
    o.task_timeout = 0.03 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    const sp_entry *e = sp_results_get(res, "long");
    assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
    assert_string_equal(sp_entry_str(e), "slept");
    e = sp_results_get(res, "plain");
    assert_int_equal(sp_entry_kind(e), SP_KIND_TIMED_OUT);
    assert_int_equal(sp_entry_code(e), SP_ETIMEDOUT);
    assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_LIBRARY);
    if (test_backend == SP_BACKEND_PROCESS) {
        /* Killed at the limit: no result. */
        assert_non_null(strstr(sp_entry_message(e), "the task_timeout of"));
        assert_null(sp_entry_data(e, NULL));
    } else {
        /* A thread cannot be killed: it returned late, which is TIMED_OUT
         * all the same, its result kept. */
        assert_non_null(strstr(sp_entry_message(e), "past its time limit"));
        assert_string_equal(sp_entry_str(e), "slept");
    }
    sp_results_free(res);
}

/* A late task that fails keeps its own code and message, as TIMED_OUT. */
static int sleeps_then_fails(sp_ctx *ctx, void *arg)
{
    test_sleep_ms((unsigned)(uintptr_t)arg);
    return sp_fail(ctx, 4, "late and wrong");
}

static void test_late_failure_is_timed_out(void **state)
{
    (void)state;
    if (test_backend == SP_BACKEND_PROCESS)
        skip(); /* killed at its limit: it never returns late */
    sp_task_policy limit = {.time_limit = 0.02 * test_scale()};
    sp_task t[] = {{.key = "late",
                    .fn = sleeps_then_fails,
                    .arg = (void *)(uintptr_t)test_ms(50),
                    .policy = &limit}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    const sp_entry *e = sp_results_at(res, 0);
    assert_int_equal(sp_entry_kind(e), SP_KIND_TIMED_OUT);
    assert_int_equal(sp_entry_code(e), 4);
    assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_TASK);
    assert_string_equal(sp_entry_message(e), "late and wrong");
    sp_results_free(res);
}

/* A spawned task brings its policy along (copied), on every backend. */
static int spawns_limited(sp_ctx *ctx, void *arg)
{
    (void)arg;
    sp_task_policy limit = {.time_limit = 0.03 * test_scale()};
    int err = sp_spawn(
        ctx,
        &(sp_task){.key = "child", .fn = waits_for_cancel, .policy = &limit});
    if (err)
        return sp_fail(ctx, err, "%s", sp_last_error());
    return 0;
}

static void test_spawned_task_limit(void **state)
{
    (void)state;
    reset();
    sp_task t[] = {{.key = "parent", .fn = spawns_limited}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    assert_int_equal(sp_results_count(res), 2);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "parent")), SP_KIND_OK);
    const sp_entry *e = sp_results_get(res, "child");
    assert_int_equal(sp_entry_kind(e), SP_KIND_TIMED_OUT);
    if (test_backend != SP_BACKEND_PROCESS || sp_entry_code(e) == 9)
        assert_string_equal(sp_entry_message(e), "gave up: cancelled");
    else
        assert_non_null(strstr(sp_entry_message(e), "its time_limit"));
    sp_results_free(res);
}

/* ---- retries ------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Fails until its attempt reaches (uintptr_t)arg, then succeeds; counts
 * its calls and notes when each attempt began and ended (in the shared
 * mapping: the monotonic clock is the same in worker processes). */
static int flaky(sp_ctx *ctx, void *arg)
{
    size_t i = sp_ctx_index(ctx) % 16;
    unsigned a = sp_ctx_attempt(ctx);
    atomic_fetch_add(&sh->calls[i], 1);
    if (a < 16)
        atomic_store(&sh->began[i][a], now_ns());
    int rc;
    if (a < (unsigned)(uintptr_t)arg)
        rc = sp_fail(ctx, 40 + (int)a, "attempt %u failed", a);
    else
        rc = sp_set_resultf(ctx, "ok on attempt %u", a);
    if (a < 16)
        atomic_store(&sh->ended[i][a], now_ns());
    return rc;
}

struct done_count {
    size_t calls;
    size_t per_index[16];
};

/* Every attempt of e, read through sp_entry_attempt(): the last is e, an
 * earlier one has kind FAILED, code 40 + n and message "attempt n failed"
 * (flaky()), the task's key and index, no result, a worker, and ends
 * before the next one starts. */
static void check_flaky_attempts(const sp_entry *e)
{
    unsigned n = sp_entry_attempts(e);
    assert_null(sp_entry_attempt(e, 0));
    assert_null(sp_entry_attempt(e, n + 1));
    assert_ptr_equal(sp_entry_attempt(e, n), e);
    for (unsigned k = 1; k < n; k++) {
        const sp_entry *a = sp_entry_attempt(e, k);
        char want[32];
        snprintf(want, sizeof want, "attempt %u failed", k);
        assert_non_null(a);
        assert_ptr_not_equal(a, e);
        assert_int_equal(sp_entry_attempts(a), k);
        assert_int_equal(sp_entry_kind(a), SP_KIND_FAILED);
        assert_int_equal(sp_entry_code(a), 40 + (int)k);
        assert_int_equal(sp_entry_code_origin(a), SP_ORIGIN_TASK);
        assert_string_equal(sp_entry_message(a), want);
        assert_string_equal(sp_entry_key(a), sp_entry_key(e));
        assert_int_equal(sp_entry_index(a), sp_entry_index(e));
        assert_null(sp_entry_data(a, NULL));
        assert_true(sp_entry_worker(a) != SP_NO_WORKER);
        assert_int_equal(sp_entry_first_kind(a), SP_KIND_FAILED);
        assert_string_equal(sp_entry_first_message(a), "attempt 1 failed");
        const sp_entry *next = sp_entry_attempt(e, k + 1);
        assert_true(sp_entry_start(a) <= sp_entry_end(a));
        assert_true(sp_entry_end(a) <= sp_entry_start(next));
    }
}

static int count_done(const sp_entry *e, void *user)
{
    struct done_count *d = user;
    d->calls++;
    d->per_index[sp_entry_index(e) % 16]++;
    return 0;
}

static void test_fails_twice_then_ok(void **state)
{
    (void)state;
    reset();
    sp_task t[] = {{.key = "flaky", .fn = flaky, .arg = (void *)3},
                   {.key = "plain", .fn = quick}};
    struct done_count d = {0};
    sp_options o = test_opts();
    o.retries = 2;
    o.on_done = count_done;
    o.on_done_arg = &d;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    const sp_entry *e = sp_results_get(res, "flaky");
    assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
    assert_string_equal(sp_entry_str(e), "ok on attempt 3");
    assert_string_equal(sp_entry_message(e), "");
    assert_int_equal(sp_entry_attempts(e), 3);
    assert_int_equal(atomic_load(&sh->calls[0]), 3);
    /* The first failure is kept beside the final outcome. */
    assert_int_equal(sp_entry_first_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_first_code(e), 41);
    assert_string_equal(sp_entry_first_message(e), "attempt 1 failed");
    /* And every attempt, each as an entry of its own. */
    check_flaky_attempts(e);
    /* A task tried once: its first attempt is its last. */
    e = sp_results_get(res, "plain");
    assert_int_equal(sp_entry_attempts(e), 1);
    assert_ptr_equal(sp_entry_attempt(e, 1), e);
    assert_null(sp_entry_attempt(e, 2));
    assert_int_equal(sp_entry_first_kind(e), SP_KIND_OK);
    assert_string_equal(sp_entry_first_message(e), "");
    /* Only last attempts are counted and reported. */
    assert_int_equal(sp_results_ok(res), 2);
    assert_int_equal(d.calls, 2);
    assert_int_equal(d.per_index[0], 1);
    sp_results_free(res);
}

static void test_always_fails(void **state)
{
    (void)state;
    reset();
    sp_task t[] = {{.key = "bad", .fn = flaky, .arg = (void *)99}};
    sp_options o = test_opts();
    o.retries = 2;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    const sp_entry *e = sp_results_at(res, 0);
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(e), 3);
    assert_int_equal(sp_entry_code(e), 43);
    assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_TASK);
    assert_string_equal(sp_entry_message(e), "attempt 3 failed");
    assert_int_equal(sp_entry_first_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_first_code(e), 41);
    assert_string_equal(sp_entry_first_message(e), "attempt 1 failed");
    check_flaky_attempts(e);
    assert_int_equal(atomic_load(&sh->calls[0]), 3);
    assert_int_equal(sp_results_failed(res), 1);
    sp_results_free(res);
}

/* Rows choose: their own count over the call's, or none at all. */
static void test_policy_overrides_the_call(void **state)
{
    (void)state;
    reset();
    sp_task_policy twice = {.retries = 2}, never = {.retries = SP_NO_RETRIES};
    sp_task t[] = {
        {.key = "own", .fn = flaky, .arg = (void *)3, .policy = &twice},
        {.key = "never", .fn = flaky, .arg = (void *)2, .policy = &never},
        {.key = "call", .fn = flaky, .arg = (void *)2},
    };
    sp_options o = test_opts();
    o.retries = 1;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 3, &o, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "own")), SP_KIND_OK);
    assert_int_equal(sp_entry_attempts(sp_results_get(res, "own")), 3);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "never")),
                     SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(sp_results_get(res, "never")), 1);
    assert_int_equal(atomic_load(&sh->calls[1]), 1);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "call")), SP_KIND_OK);
    assert_int_equal(sp_entry_attempts(sp_results_get(res, "call")), 2);
    sp_results_free(res);

    /* A row's policy alone, in a call without retries. */
    reset();
    o.retries = 0;
    assert_int_equal(simple_parallel(t, 3, &o, &res), 0);
    assert_int_equal(sp_entry_attempts(sp_results_get(res, "own")), 3);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "call")),
                     SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(sp_results_get(res, "call")), 1);
    sp_results_free(res);
}

/* Segfaults on its first attempt (after noting its pid), then returns the
 * pid of the process that runs it. */
static int crashes_once(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t i = sp_ctx_index(ctx);
    atomic_fetch_add(&sh->calls[i], 1);
    if (sp_ctx_attempt(ctx) == 1) {
        atomic_store(&sh->first_pid[i], (int)getpid());
        raise(SIGSEGV);
    }
    return sp_set_resultf(ctx, "%d", (int)getpid());
}

static void test_crash_retried_in_a_fresh_worker(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip(); /* a crash is only survivable in a worker process */
    reset();
    sp_task t[] = {{.key = "crashy", .fn = crashes_once},
                   {.key = "plain", .fn = quick}};
    sp_options o = test_opts();
    o.retries = 1;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    const sp_entry *e = sp_results_get(res, "crashy");
    assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
    assert_int_equal(sp_entry_attempts(e), 2);
    assert_int_equal(sp_entry_first_kind(e), SP_KIND_CRASHED);
    assert_int_equal(sp_entry_first_code(e), SP_ECRASHED);
    assert_non_null(strstr(sp_entry_first_message(e), "SIGSEGV"));
    int first = atomic_load(&sh->first_pid[0]), second = atoi(sp_entry_str(e));
    assert_true(first > 0 && second > 0);
    assert_int_not_equal(first, second);
    assert_int_not_equal(second, (int)getpid());
    assert_int_equal(atomic_load(&sh->calls[0]), 2);
    assert_int_equal(sp_results_ok(res), 2);
    sp_results_free(res);
}

/* retry_on = CRASHED only: a FAILED task is not tried again (and, on the
 * process backend, a crashing one is). */
static void test_retry_only_on_crashed(void **state)
{
    (void)state;
    reset();
    sp_task t[] = {{.key = "fails", .fn = flaky, .arg = (void *)2},
                   {.key = "crashy", .fn = crashes_once}};
    size_t n = test_backend == SP_BACKEND_PROCESS ? 2 : 1;
    sp_options o = test_opts();
    o.retries = 3;
    o.retry_on = SP_RETRY_CRASHED;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, n, &o, &res), 0);
    const sp_entry *e = sp_results_get(res, "fails");
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(e), 1);
    assert_string_equal(sp_entry_message(e), "attempt 1 failed");
    assert_int_equal(atomic_load(&sh->calls[0]), 1);
    if (n == 2) {
        e = sp_results_get(res, "crashy");
        assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
        assert_int_equal(sp_entry_attempts(e), 2);
    }
    sp_results_free(res);
}

/* Times out on its first attempt (gives up when stopped, or is killed),
 * succeeds on the next. */
static int slow_once(sp_ctx *ctx, void *arg)
{
    (void)arg;
    if (sp_ctx_attempt(ctx) == 1) {
        test_wait_cancel(ctx, 5000);
        return sp_fail(ctx, 9, "gave up: cancelled");
    }
    return sp_set_result_str(ctx, "fast this time");
}

static void test_timed_out_retried(void **state)
{
    (void)state;
    sp_task_policy p = {.time_limit = 0.03 * test_scale(),
                        .retries = 1,
                        .retry_on = SP_RETRY_TIMED_OUT};
    sp_task t[] = {{.key = "slow", .fn = slow_once, .policy = &p}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    const sp_entry *e = sp_results_at(res, 0);
    assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
    assert_string_equal(sp_entry_str(e), "fast this time");
    assert_int_equal(sp_entry_attempts(e), 2);
    assert_int_equal(sp_entry_first_kind(e), SP_KIND_TIMED_OUT);
    sp_results_free(res);
}

/* Process: crashed, then timed out (killed at its limit): both show. */
static int crashes_then_hangs(sp_ctx *ctx, void *arg)
{
    (void)arg;
    if (sp_ctx_attempt(ctx) == 1)
        raise(SIGSEGV);
    test_sleep_ms(5000);
    return 0;
}

static void test_crashed_then_timed_out(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip(); /* a crash is only survivable in a worker process */
    sp_task_policy p = {.time_limit = 0.05 * test_scale()};
    sp_task t[] = {{.key = "x", .fn = crashes_then_hangs, .policy = &p}};
    sp_options o = test_opts();
    o.retries = 1;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    const sp_entry *e = sp_results_at(res, 0);
    assert_int_equal(sp_entry_kind(e), SP_KIND_TIMED_OUT);
    assert_non_null(strstr(sp_entry_message(e), "its time_limit"));
    assert_int_equal(sp_entry_attempts(e), 2);
    assert_int_equal(sp_entry_first_kind(e), SP_KIND_CRASHED);
    assert_non_null(strstr(sp_entry_first_message(e), "SIGSEGV"));
    const sp_entry *a = sp_entry_attempt(e, 1);
    assert_int_equal(sp_entry_kind(a), SP_KIND_CRASHED);
    assert_int_equal(sp_entry_signal(a), SIGSEGV);
    assert_int_equal(sp_entry_exit_status(a), -1);
    assert_true(sp_entry_end(a) <= sp_entry_start(e));
    sp_results_free(res);
}

static void make_quick(sp_task *t, char (*keys)[16], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], sizeof keys[i], "k%u", (unsigned)i);
        t[i] = (sp_task){.key = keys[i], .fn = quick};
    }
}

/* The delay: the next attempt starts at least retry_delay after the last
 * one ended, and the other tasks run meanwhile (one worker: they all end
 * before the retry starts). */
static void test_backoff_delay(void **state)
{
    (void)state;
    reset();
    enum { N = 6 };
    sp_task t[N];
    char keys[N][16];
    make_quick(t, keys, N);
    t[0].fn = flaky;
    t[0].arg = (void *)2;
    sp_options o = test_opts();
    o.max_workers = 1;
    o.retries = 1;
    o.retry_delay = 0.08 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), N);
    const sp_entry *e = sp_results_at(res, 0);
    assert_int_equal(sp_entry_attempts(e), 2);
    uint64_t gap =
        atomic_load(&sh->began[0][2]) - atomic_load(&sh->ended[0][1]);
    assert_true((double)gap / 1e9 >= o.retry_delay);
    for (size_t i = 1; i < N; i++)
        assert_true(sp_entry_end(sp_results_at(res, i)) <= sp_entry_start(e));
    sp_results_free(res);
}

/* Doubling delays with a cap: at least 1, 2, 2, ... times the base
 * between attempts; and the capped series ends (uncapped, its eight
 * delays would add up to 255 times the base). */
static void test_backoff_doubling(void **state)
{
    (void)state;
    reset();
    double base = 0.02 * test_scale();
    sp_task_policy p = {.retries = 8,
                        .retry_delay = base,
                        .retry_delay_max = 2 * base,
                        .retry_backoff = SP_BACKOFF_DOUBLING};
    sp_task t[] = {
        {.key = "bad", .fn = flaky, .arg = (void *)99, .policy = &p}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    const sp_entry *e = sp_results_at(res, 0);
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(e), 9);
    for (unsigned a = 2; a <= 9; a++) {
        uint64_t gap =
            atomic_load(&sh->began[0][a]) - atomic_load(&sh->ended[0][a - 1]);
        assert_true((double)gap / 1e9 >= (a == 2 ? 1 : 2) * base);
    }
    assert_true(sp_results_elapsed(res) < 100 * base);
    sp_results_free(res);
}

/* The deadline passes while a retry waits (its delay passed, the only
 * worker busy): no attempt starts after it, the task keeps its failure. */
static void test_deadline_while_a_retry_waits(void **state)
{
    (void)state;
    reset();
    sp_task t[] = {{.key = "flaky", .fn = flaky, .arg = (void *)2},
                   {.key = "busy", .fn = waits_for_cancel}};
    sp_options o = test_opts();
    o.max_workers = 1;
    o.retries = 3;
    o.retry_delay = 0.03 * test_scale();
    o.deadline = 0.15 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    const sp_entry *e = sp_results_get(res, "flaky");
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(e), 1);
    assert_string_equal(sp_entry_message(e), "attempt 1 failed");
    assert_int_equal(atomic_load(&sh->calls[0]), 1);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "busy")),
                     SP_KIND_TIMED_OUT);
    sp_results_free(res);
}

/* A delay that would end after the deadline: the retry is not made, and
 * the call does not wait for the deadline to say so. */
static void test_retry_past_the_deadline_is_not_made(void **state)
{
    (void)state;
    reset();
    sp_task t[] = {{.key = "flaky", .fn = flaky, .arg = (void *)2}};
    sp_options o = test_opts();
    o.retries = 1;
    o.retry_delay = 30.0 * test_scale();
    o.deadline = 20.0 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    const sp_entry *e = sp_results_at(res, 0);
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(e), 1);
    assert_true(sp_results_elapsed(res) < 10.0 * test_scale());
    sp_results_free(res);
}

/* Under fail-fast only a task's last attempt counts: a task that fails and
 * then succeeds stops nothing. */
static void test_fail_fast_counts_the_last_attempt(void **state)
{
    (void)state;
    reset();
    enum { N = 5 };
    sp_task t[N];
    char keys[N][16];
    make_quick(t, keys, N);
    t[0].fn = flaky;
    t[0].arg = (void *)2;
    sp_options o = test_opts();
    o.max_workers = 1;
    o.on_error = SP_POLICY_FAIL_FAST;
    o.retries = 1;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), N);
    sp_results_free(res);

    /* Its last attempt failing does stop the run: the task beside it gives
     * up when asked to stop (or never started), and so on. */
    reset();
    t[0].arg = (void *)99;
    t[1].fn = waits_for_cancel;
    o.max_workers = 2;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 0)), SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(sp_results_at(res, 0)), 2);
    const sp_entry *e = sp_results_at(res, 1);
    assert_int_equal(sp_entry_kind(e), SP_KIND_CANCELLED);
    if (sp_entry_attempts(e))
        assert_string_equal(sp_entry_message(e), "gave up: cancelled");
    else
        assert_non_null(strstr(sp_entry_message(e), "fail-fast"));
    for (size_t i = 2; i < N; i++) {
        e = sp_results_at(res, i);
        if (sp_entry_kind(e) != SP_KIND_OK) {
            assert_int_equal(sp_entry_kind(e), SP_KIND_CANCELLED);
            assert_int_equal(sp_entry_attempts(e), 0);
        }
    }
    sp_results_free(res);
}

/* A dependent waits for the last attempt of what it depends on. */
static void test_dependent_waits_for_the_last_attempt(void **state)
{
    (void)state;
    reset();
    static const char *const on_flaky[] = {"flaky", NULL};
    sp_task t[] = {{.key = "flaky", .fn = flaky, .arg = (void *)2},
                   {.key = "after", .fn = quick, .after = on_flaky}};
    sp_options o = test_opts();
    o.retries = 1;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), 2);
    assert_true(sp_entry_start(sp_results_get(res, "after")) >=
                sp_entry_end(sp_results_get(res, "flaky")));
    sp_results_free(res);
}

/* A spawned task's retry policy travels with it (every backend). */
static int spawns_flaky(sp_ctx *ctx, void *arg)
{
    (void)arg;
    sp_task_policy p = {.retries = 2};
    int err = sp_spawn(
        ctx, &(sp_task){
                 .key = "child", .fn = flaky, .arg = (void *)3, .policy = &p});
    return err ? sp_fail(ctx, err, "%s", sp_last_error()) : 0;
}

static void test_spawned_task_retries(void **state)
{
    (void)state;
    reset();
    sp_task t[] = {{.key = "parent", .fn = spawns_flaky}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    const sp_entry *e = sp_results_get(res, "child");
    assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
    assert_int_equal(sp_entry_attempts(e), 3);
    assert_string_equal(sp_entry_first_message(e), "attempt 1 failed");
    sp_results_free(res);
}

/* Many tasks retried at once, on several workers: each comes back once,
 * with its own count of attempts. */
static void test_many_retries(void **state)
{
    (void)state;
    enum { N = 200 };
    static sp_task t[N];
    static char keys[N][16];
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%u", (unsigned)i);
        t[i] = (sp_task){
            .key = keys[i], .fn = flaky, .arg = (void *)(uintptr_t)(1 + i % 3)};
    }
    struct done_count d = {0};
    sp_options o = test_opts();
    o.max_workers = 4;
    o.retries = 2;
    o.retry_delay = 0.001;
    o.on_done = count_done;
    o.on_done_arg = &d;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), N);
    assert_int_equal(d.calls, N);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(sp_entry_attempts(sp_results_at(res, i)), 1 + i % 3);
    sp_results_free(res);
}

/* ---- why a task was cancelled -------------------------------------------- */

static int fails_now(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_fail(ctx, 5, "boom");
}

/* Every CANCELLED or SKIPPED entry of res has a reason, and only those. */
static void check_reasons_present(const sp_results *res)
{
    for (size_t i = 0; i < sp_results_count(res); i++) {
        const sp_entry *e = sp_results_at(res, i);
        sp_kind k = sp_entry_kind(e);
        if (k == SP_KIND_CANCELLED || k == SP_KIND_SKIPPED)
            assert_int_not_equal(sp_entry_cancel_reason(e), SP_CANCEL_NONE);
        else
            assert_int_equal(sp_entry_cancel_reason(e), SP_CANCEL_NONE);
        assert_int_equal(sp_entry_signal(e) != 0, k == SP_KIND_CRASHED);
    }
}

static void test_reason_deadline(void **state)
{
    (void)state;
    reset();
    sp_task t[] = {{.key = "busy", .fn = waits_for_cancel},
                   {.key = "late", .fn = quick}};
    sp_options o = test_opts();
    o.max_workers = 1;
    o.deadline = 0.05 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    const sp_entry *e = sp_results_get(res, "late");
    assert_int_equal(sp_entry_kind(e), SP_KIND_CANCELLED);
    assert_int_equal(sp_entry_cancel_reason(e), SP_CANCEL_DEADLINE);
    assert_string_equal(sp_entry_message(e),
                        "not started: the deadline passed");
    assert_int_equal(sp_entry_attempts(e), 0);
    check_reasons_present(res);
    sp_results_free(res);
}

static void test_reason_fail_fast(void **state)
{
    (void)state;
    reset();
    sp_task t[] = {{.key = "boom", .fn = fails_now},
                   {.key = "waits", .fn = waits_for_cancel},
                   {.key = "never", .fn = quick},
                   {.key = "never2", .fn = quick}};
    sp_options o = test_opts();
    o.max_workers = 2;
    o.on_error = SP_POLICY_FAIL_FAST;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 4, &o, &res), 0);
    assert_int_equal(sp_entry_cancel_reason(sp_results_get(res, "boom")),
                     SP_CANCEL_NONE);
    /* It gave up when it saw the stop, or never started. */
    const sp_entry *e = sp_results_get(res, "waits");
    assert_int_equal(sp_entry_kind(e), SP_KIND_CANCELLED);
    assert_int_equal(sp_entry_cancel_reason(e), SP_CANCEL_FAIL_FAST);
    /* What never started names the failure that stopped the run. */
    for (size_t i = 1; i < 4; i++) {
        e = sp_results_at(res, i);
        if (sp_entry_kind(e) != SP_KIND_CANCELLED || sp_entry_attempts(e))
            continue;
        assert_int_equal(sp_entry_cancel_reason(e), SP_CANCEL_FAIL_FAST);
        assert_string_equal(sp_entry_message(e),
                            "not started: task \"boom\" failed (fail-fast)");
    }
    e = sp_results_get(res, "never2");
    if (test_backend == SP_BACKEND_SERIAL) /* one worker, in order */
        assert_int_equal(sp_entry_kind(e), SP_KIND_CANCELLED);
    check_reasons_present(res);
    sp_results_free(res);
}

static int stop_at_once(const sp_entry *e, void *user)
{
    (void)e;
    (void)user;
    return 1;
}

static void test_reason_on_done(void **state)
{
    (void)state;
    reset();
    sp_task t[] = {{.key = "first", .fn = quick},
                   {.key = "second", .fn = quick},
                   {.key = "third", .fn = quick}};
    sp_options o = test_opts();
    o.max_workers = 1;
    o.on_done = stop_at_once;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 3, &o, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "first")), SP_KIND_OK);
    /* The others either ran before the stop was seen (threads: the worker
     * does not wait for the callback) or never started. */
    size_t stopped = 0;
    for (size_t i = 1; i < 3; i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (sp_entry_kind(e) == SP_KIND_OK)
            continue;
        stopped++;
        assert_int_equal(sp_entry_kind(e), SP_KIND_CANCELLED);
        assert_int_equal(sp_entry_cancel_reason(e), SP_CANCEL_ON_DONE);
        assert_string_equal(
            sp_entry_message(e),
            "not started: the completion callback asked to stop");
    }
    if (test_backend == SP_BACKEND_SERIAL)
        assert_int_equal(stopped, 2);
    check_reasons_present(res);
    sp_results_free(res);
}

static void test_reason_dependency(void **state)
{
    (void)state;
    static const char *const on_boom[] = {"boom", NULL};
    sp_task t[] = {{.key = "boom", .fn = fails_now},
                   {.key = "after", .fn = quick, .after = on_boom}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    const sp_entry *e = sp_results_get(res, "after");
    assert_int_equal(sp_entry_kind(e), SP_KIND_SKIPPED);
    assert_int_equal(sp_entry_cancel_reason(e), SP_CANCEL_DEPENDENCY);
    assert_string_equal(sp_entry_message(e), "dependency 'boom' FAILED: boom");
    check_reasons_present(res);
    sp_results_free(res);
}

static void test_reason_names(void **state)
{
    (void)state;
    static const struct {
        sp_cancel_reason r;
        const char *name;
    } all[] = {
#define X(name, value, text) {name, text},
        SP_CANCEL_MAP(X)
#undef X
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        assert_int_equal((int)all[i].r, (int)i);
        assert_string_equal(sp_cancel_reason_name(all[i].r), all[i].name);
    }
    assert_string_equal(sp_cancel_reason_name(SP_CANCEL_FAIL_FAST),
                        "FAIL_FAST");
    assert_string_equal(sp_cancel_reason_name((sp_cancel_reason)99), "UNKNOWN");
    assert_int_equal(sp_entry_cancel_reason(NULL), SP_CANCEL_NONE);
}

/* ---- the cancel handle --------------------------------------------------- */

/* Sleeps without looking at sp_cancelled(): on the process backend only
 * the kill after the grace period ends it. */
static int stubborn(sp_ctx *ctx, void *arg)
{
    (void)arg;
    atomic_fetch_add(&sh->started, 1);
    test_sleep_ms(20000);
    return sp_set_result_str(ctx, "finished anyway");
}

struct firer {
    pthread_t th;
    sp_cancel *c;
    int signal; /* send SIGINT to the process instead of firing */
};

/* Once a task has started (at most 5 s), fire the handle or raise SIGINT.
 */
static void *fire_later(void *arg)
{
    struct firer *f = arg;
    for (int k = 0; k < 5000 && !atomic_load(&sh->started); k++)
        test_sleep_ms(1);
    test_sleep_ms(test_ms(20));
    if (f->signal)
        kill(getpid(), SIGINT); /* this thread blocks it: another gets it */
    else
        sp_cancel_fire(f->c);
    return NULL;
}

static void start_firer(struct firer *f)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old); /* inherited by the thread */
    assert_int_equal(pthread_create(&f->th, NULL, fire_later, f), 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Every key is back, CANCELLED by the caller unless it finished; what ran
 * has one attempt, what never started none. */
static void check_cancelled(const sp_results *res, size_t n)
{
    assert_int_equal(sp_results_count(res), n);
    for (size_t i = 0; i < n; i++) {
        const sp_entry *e = sp_results_at(res, i);
        assert_int_equal(sp_entry_kind(e), SP_KIND_CANCELLED);
        assert_int_equal(sp_entry_cancel_reason(e), SP_CANCEL_CALLER);
        if (sp_entry_attempts(e) == 0)
            assert_string_equal(sp_entry_message(e),
                                "not started: cancelled by the caller");
        else if (sp_entry_code(e) == SP_ECANCELED)
            assert_non_null(
                strstr(sp_entry_message(e), "killed: cancelled by the caller"));
        else
            assert_string_equal(sp_entry_message(e), "gave up: cancelled");
    }
}

/* Fired from another thread: tasks that look at sp_cancelled() give up,
 * the others never start. */
static void test_cancel_from_another_thread(void **state)
{
    (void)state;
    reset();
    enum { N = 8 };
    sp_task t[N];
    char keys[N][16];
    make_quick(t, keys, N);
    for (size_t i = 0; i < N; i++)
        t[i].fn = waits_for_cancel;
    sp_cancel *c = NULL;
    assert_int_equal(sp_cancel_create(&c), 0);
    struct firer f = {.c = c};
    start_firer(&f);
    sp_options o = test_opts();
    o.max_workers = 2;
    o.cancel = c;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    pthread_join(f.th, NULL);
    assert_true(sp_cancel_fired(c));
    check_cancelled(res, N);
    assert_true(atomic_load(&sh->started) >= 1);
    sp_results_free(res);
    sp_cancel_free(c);
}

/* A long process-backend call of tasks that ignore sp_cancelled(): the
 * handle ends it promptly (the workers are killed after the grace
 * period), every key present. */
static void test_cancel_kills_process_workers(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip(); /* a thread cannot be killed: the call waits for it */
    reset();
    enum { N = 6 };
    sp_task t[N];
    char keys[N][16];
    make_quick(t, keys, N);
    for (size_t i = 0; i < N; i++)
        t[i].fn = stubborn;
    sp_cancel *c = NULL;
    assert_int_equal(sp_cancel_create(&c), 0);
    struct firer f = {.c = c};
    start_firer(&f);
    sp_options o = test_opts();
    o.max_workers = 2;
    o.cancel = c;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    pthread_join(f.th, NULL);
    check_cancelled(res, N);
    assert_true(sp_results_elapsed(res) < 10.0 * test_scale());
    size_t killed = 0;
    for (size_t i = 0; i < N; i++)
        killed += sp_entry_attempts(sp_results_at(res, i));
    assert_true(killed >= 1 && killed <= 2);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* no child left */
    sp_results_free(res);
    sp_cancel_free(c);
}

static sp_cancel *sigint_handle;

static void on_sigint(int sig)
{
    (void)sig;
    sp_cancel_fire(sigint_handle); /* async-signal-safe */
}

/* Ctrl-C: a SIGINT handler fires the handle during a long call. */
static void test_cancel_from_a_signal_handler(void **state)
{
    (void)state;
    reset();
    enum { N = 6 };
    sp_task t[N];
    char keys[N][16];
    make_quick(t, keys, N);
    for (size_t i = 0; i < N; i++) /* the process backend kills them */
        t[i].fn =
            test_backend == SP_BACKEND_PROCESS ? stubborn : waits_for_cancel;
    assert_int_equal(sp_cancel_create(&sigint_handle), 0);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGINT, &sa, &old), 0);
    struct firer f = {.signal = 1};
    start_firer(&f);
    sp_options o = test_opts();
    o.max_workers = 2;
    o.cancel = sigint_handle;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    pthread_join(f.th, NULL);
    sigaction(SIGINT, &old, NULL);
    assert_true(sp_cancel_fired(sigint_handle));
    check_cancelled(res, N);
    assert_true(sp_results_elapsed(res) < 10.0 * test_scale());
    sp_results_free(res);
    sp_cancel_free(sigint_handle);
    sigint_handle = NULL;
}

/* A handle that fired already: nothing runs, not even a worker; after a
 * reset the same options run normally. */
static void test_cancel_before_the_call(void **state)
{
    (void)state;
    reset();
    sp_task t[] = {{.key = "a", .fn = flaky, .arg = (void *)1},
                   {.key = "b", .fn = flaky, .arg = (void *)1}};
    sp_cancel *c = NULL;
    assert_int_equal(sp_cancel_create(&c), 0);
    assert_false(sp_cancel_fired(c));
    sp_cancel_fire(c);
    sp_options o = test_opts();
    o.cancel = c;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    check_cancelled(res, 2);
    assert_int_equal(atomic_load(&sh->calls[0]) + atomic_load(&sh->calls[1]),
                     0);
    assert_int_equal(sp_results_workers(res), 0);
    sp_results_free(res);

    sp_cancel_reset(c);
    assert_false(sp_cancel_fired(c));
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), 2);
    sp_results_free(res);
    sp_cancel_free(c);

    assert_int_equal(sp_cancel_create(NULL), SP_EINVAL);
    assert_non_null(strstr(sp_last_error(), "SP_EINVAL"));
    sp_cancel_fire(NULL);
    sp_cancel_reset(NULL);
    assert_false(sp_cancel_fired(NULL));
    sp_cancel_free(NULL);
}

/* Cancelled while a task waits out its retry delay: no further attempt,
 * it keeps its failure, and the call does not wait for the delay. */
static void test_cancel_during_a_backoff(void **state)
{
    (void)state;
    reset();
    sp_task t[] = {{.key = "flaky", .fn = flaky, .arg = (void *)2}};
    sp_cancel *c = NULL;
    assert_int_equal(sp_cancel_create(&c), 0);
    atomic_store(&sh->started, 1); /* fire 20 ms in */
    struct firer f = {.c = c};
    start_firer(&f);
    sp_options o = test_opts();
    o.retries = 1;
    o.retry_delay = 30.0 * test_scale();
    o.cancel = c;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    pthread_join(f.th, NULL);
    const sp_entry *e = sp_results_at(res, 0);
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(e), 1);
    assert_int_equal(atomic_load(&sh->calls[0]), 1);
    assert_true(sp_results_elapsed(res) < 10.0 * test_scale());
    sp_results_free(res);
    sp_cancel_free(c);
}

/* Fires f->c once the second attempt of task 0 (flaky()) has ended and
 * its next attempt waits out its delay. */
static void *fire_after_second(void *arg)
{
    struct firer *f = arg;
    for (int k = 0; k < 5000 && !atomic_load(&sh->ended[0][2]); k++)
        test_sleep_ms(1);
    test_sleep_ms(test_ms(20));
    sp_cancel_fire(f->c);
    return NULL;
}

/* Cancelled while a task tried twice waits for its third attempt: it
 * keeps its second attempt's failure, and the first as an earlier one. */
static void test_cancel_between_attempts(void **state)
{
    (void)state;
    reset();
    sp_task t[] = {{.key = "flaky", .fn = flaky, .arg = (void *)9}};
    sp_cancel *c = NULL;
    assert_int_equal(sp_cancel_create(&c), 0);
    struct firer f = {.c = c};
    assert_int_equal(pthread_create(&f.th, NULL, fire_after_second, &f), 0);
    sp_options o = test_opts();
    o.retries = 5;
    o.retry_delay = 0.1 * test_scale(); /* then 0.2 s before the third */
    o.retry_backoff = SP_BACKOFF_DOUBLING;
    o.cancel = c;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    pthread_join(f.th, NULL);
    const sp_entry *e = sp_results_at(res, 0);
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(e), 2);
    assert_int_equal(sp_entry_code(e), 42);
    assert_string_equal(sp_entry_message(e), "attempt 2 failed");
    assert_int_equal(atomic_load(&sh->calls[0]), 2);
    check_flaky_attempts(e);
    sp_results_free(res);
    sp_cancel_free(c);
}

/* A pool's handle stops every call of the pool, in flight and new, until
 * it is reset. */
struct pool_call {
    pthread_t th;
    sp_pool *pool;
    sp_results *res;
    int err;
    sp_task t[4];
    char keys[4][16];
};

static void *pool_call_main(void *arg)
{
    struct pool_call *pc = arg;
    make_quick(pc->t, pc->keys, 4);
    for (size_t i = 0; i < 4; i++)
        pc->t[i].fn = waits_for_cancel;
    pc->err = sp_pool_run(pc->pool, pc->t, 4, NULL, &pc->res);
    return NULL;
}

static void test_cancel_every_call_of_a_pool(void **state)
{
    (void)state;
    reset();
    sp_cancel *c = NULL;
    assert_int_equal(sp_cancel_create(&c), 0);
    sp_pool_options po = {
        .backend = test_backend, .max_workers = 4, .cancel = c};
    sp_pool *pool = NULL;
    assert_int_equal(sp_pool_create(&po, &pool), 0);
    /* Serial pools run one call at a time. */
    int callers = test_backend == SP_BACKEND_SERIAL ? 1 : 2;
    struct pool_call pc[2] = {{.pool = pool}, {.pool = pool}};
    for (int k = 0; k < callers; k++)
        assert_int_equal(
            pthread_create(&pc[k].th, NULL, pool_call_main, &pc[k]), 0);
    struct firer f = {.c = c};
    start_firer(&f);
    for (int k = 0; k < callers; k++) {
        pthread_join(pc[k].th, NULL);
        assert_int_equal(pc[k].err, 0);
        check_cancelled(pc[k].res, 4);
        sp_results_free(pc[k].res);
    }
    pthread_join(f.th, NULL);
    /* Still fired: a new call runs nothing. */
    sp_task q[] = {{.key = "q", .fn = quick}};
    sp_results *res = NULL;
    assert_int_equal(sp_pool_run(pool, q, 1, NULL, &res), 0);
    check_cancelled(res, 1);
    sp_results_free(res);
    sp_cancel_reset(c);
    assert_int_equal(sp_pool_run(pool, q, 1, NULL, &res), 0);
    assert_int_equal(sp_results_ok(res), 1);
    sp_results_free(res);
    sp_pool_free(pool);
    sp_cancel_free(c);
}

/* ---- validation --------------------------------------------------------- */

static _Atomic int ran;

static int bump(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    ran++;
    return 0;
}

/* Run, expect err, nothing run, out left NULL, message containing each of
 * want and want2 (NULL = anything). */
static void expect_error(const sp_task *t, size_t n, const sp_options *o,
                         int err, const char *want, const char *want2)
{
    sp_results *res = (sp_results *)&res; /* poison: must become NULL */
    ran = 0;
    assert_int_equal(simple_parallel(t, n, o, &res), err);
    assert_null(res);
    assert_int_equal(ran, 0);
    assert_non_null(strstr(sp_last_error(), sp_err_name(err)));
    if ((want && !strstr(sp_last_error(), want)) ||
        (want2 && !strstr(sp_last_error(), want2)))
        fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", sp_last_error(), want,
                 want2 ? want2 : "");
}

static const double bad_seconds[] = {-1.0,     -0.001,    NAN,
                                     INFINITY, -INFINITY, 1e12};

static void test_bad_policies(void **state)
{
    (void)state;
    sp_options o = test_opts();
    for (size_t k = 0; k < sizeof bad_seconds / sizeof *bad_seconds; k++) {
        sp_task_policy p = {.time_limit = bad_seconds[k]};
        sp_task t[] = {{.key = "a", .fn = bump},
                       {.key = "b", .fn = bump, .policy = &p}};
        expect_error(t, 2, &o, SP_EOPTION, "task \"b\" at index 1",
                     "time_limit");
    }
    for (size_t k = 0; k < sizeof bad_seconds / sizeof *bad_seconds; k++) {
        sp_task_policy p = {.retry_delay = bad_seconds[k]};
        sp_task_policy q = {.retry_delay_max = bad_seconds[k]};
        sp_task t[] = {{.key = "a", .fn = bump, .policy = &p}};
        expect_error(t, 1, &o, SP_EOPTION, "task \"a\" at index 0",
                     "retry_delay ");
        t[0].policy = &q;
        expect_error(t, 1, &o, SP_EOPTION, "task \"a\" at index 0",
                     "retry_delay_max");
    }
    const unsigned bad_counts[] = {SP_MAX_RETRIES + 1, 1000000, 0xfffffffeu};
    for (size_t k = 0; k < sizeof bad_counts / sizeof *bad_counts; k++) {
        sp_task_policy p = {.retries = bad_counts[k]};
        sp_task t[] = {{.key = "a", .fn = bump},
                       {.key = "c", .fn = bump},
                       {.key = "d", .fn = bump, .policy = &p}};
        expect_error(t, 3, &o, SP_EOPTION, "task \"d\" at index 2", "retries");
    }
    sp_task_policy p = {.retry_on = 0x1};
    sp_task t[] = {{.key = "a", .fn = bump, .policy = &p}};
    expect_error(t, 1, &o, SP_EOPTION, "index 0", "retry_on 0x1");
    p = (sp_task_policy){.retry_on = SP_RETRY_FAILED | 0x20};
    expect_error(t, 1, &o, SP_EOPTION, "index 0", "retry_on 0x22");
    p = (sp_task_policy){.retry_backoff = (sp_backoff)7};
    expect_error(t, 1, &o, SP_EOPTION, "index 0", "retry_backoff 7");
    p = (sp_task_policy){.reserved = {[5] = 1}};
    expect_error(t, 1, &o, SP_ENOTSUP, "task \"a\" at index 0", "reserved[5]");
    /* The largest values are fine. */
    p = (sp_task_policy){.retries = SP_MAX_RETRIES,
                         .retry_on = SP_RETRY_FAILED | SP_RETRY_CRASHED |
                                     SP_RETRY_TIMED_OUT,
                         .retry_backoff = SP_BACKOFF_DOUBLING,
                         .retry_delay_max = SP_MAX_SECONDS / 2};
    t[0].fn = quick;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), 1);
    sp_results_free(res);
}

static void test_bad_retry_options(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "a", .fn = bump}};
    sp_options o;
    for (size_t k = 0; k < sizeof bad_seconds / sizeof *bad_seconds; k++) {
        o = test_opts();
        o.retry_delay = bad_seconds[k];
        expect_error(t, 1, &o, SP_EOPTION, "retry_delay ", NULL);
        o = test_opts();
        o.retry_delay_max = bad_seconds[k];
        expect_error(t, 1, &o, SP_EOPTION, "retry_delay_max", NULL);
    }
    o = test_opts();
    o.retries = SP_MAX_RETRIES + 1;
    expect_error(t, 1, &o, SP_EOPTION, "retries 101 is above the limit 100",
                 NULL);
    o = test_opts();
    o.retry_on = 0x40;
    expect_error(t, 1, &o, SP_EOPTION, "retry_on 0x40", NULL);
    o = test_opts();
    o.retry_backoff = (sp_backoff)3;
    expect_error(t, 1, &o, SP_EOPTION, "retry_backoff 3", NULL);
    o = test_opts();
    o.reserved[15] = 1;
    expect_error(t, 1, &o, SP_ENOTSUP, "reserved[15]", NULL);
}

static int spawns_bad(sp_ctx *ctx, void *arg)
{
    (void)arg;
    sp_task_policy p = {.time_limit = -1};
    int err = sp_spawn(ctx, &(sp_task){.key = "x", .fn = quick, .policy = &p});
    if (err == SP_EOPTION && strstr(sp_last_error(), "sp_spawn: task \"x\"") &&
        strstr(sp_last_error(), "time_limit"))
        return sp_set_result_str(ctx, "refused");
    return sp_fail(ctx, 1, "sp_spawn gave %d: %s", err, sp_last_error());
}

static void test_bad_spawned_policy(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "a", .fn = spawns_bad}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    assert_int_equal(sp_results_count(res), 1);
    assert_string_equal(sp_entry_message(sp_results_at(res, 0)), "");
    assert_string_equal(sp_entry_str(sp_results_at(res, 0)), "refused");
    sp_results_free(res);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_limit_shorter_than_the_calls),
    cmocka_unit_test(test_limit_longer_than_the_calls),
    cmocka_unit_test(test_late_failure_is_timed_out),
    cmocka_unit_test(test_spawned_task_limit),
    cmocka_unit_test(test_fails_twice_then_ok),
    cmocka_unit_test(test_always_fails),
    cmocka_unit_test(test_policy_overrides_the_call),
    cmocka_unit_test(test_crash_retried_in_a_fresh_worker),
    cmocka_unit_test(test_retry_only_on_crashed),
    cmocka_unit_test(test_timed_out_retried),
    cmocka_unit_test(test_crashed_then_timed_out),
    cmocka_unit_test(test_backoff_delay),
    cmocka_unit_test(test_backoff_doubling),
    cmocka_unit_test(test_deadline_while_a_retry_waits),
    cmocka_unit_test(test_retry_past_the_deadline_is_not_made),
    cmocka_unit_test(test_fail_fast_counts_the_last_attempt),
    cmocka_unit_test(test_dependent_waits_for_the_last_attempt),
    cmocka_unit_test(test_spawned_task_retries),
    cmocka_unit_test(test_many_retries),
    cmocka_unit_test(test_reason_deadline),
    cmocka_unit_test(test_reason_fail_fast),
    cmocka_unit_test(test_reason_on_done),
    cmocka_unit_test(test_reason_dependency),
    cmocka_unit_test(test_reason_names),
    cmocka_unit_test(test_cancel_from_another_thread),
    cmocka_unit_test(test_cancel_kills_process_workers),
    cmocka_unit_test(test_cancel_from_a_signal_handler),
    cmocka_unit_test(test_cancel_before_the_call),
    cmocka_unit_test(test_cancel_during_a_backoff),
    cmocka_unit_test(test_cancel_between_attempts),
    cmocka_unit_test(test_cancel_every_call_of_a_pool),
    cmocka_unit_test(test_bad_policies),
    cmocka_unit_test(test_bad_retry_options),
    cmocka_unit_test(test_bad_spawned_policy),
};

int main(int argc, char **argv)
{
    const char *group = test_init(argc, argv, "retry");
    if (!group)
        return 2;
    return cmocka_run_group_tests_name(group, tests, setup, teardown);
}
