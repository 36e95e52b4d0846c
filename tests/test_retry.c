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
#include <unistd.h>

/* Shared with worker processes: what tasks saw, across attempts. */
struct shared {
    atomic_int calls[16];     /* per task index: callbacks started */
    atomic_int first_pid[16]; /* per task index: pid of its first attempt */
    atomic_int started;       /* tasks that began (cancel tests) */
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
        assert_non_null(strstr(sp_entry_message(e), "its time_limit of 0.03"));
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
    sp_task_policy p = {.reserved = {[5] = 1}};
    sp_task t[] = {{.key = "a", .fn = bump, .policy = &p}};
    expect_error(t, 1, &o, SP_ENOTSUP, "task \"a\" at index 0", "reserved[5]");
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
    cmocka_unit_test(test_bad_policies),
    cmocka_unit_test(test_bad_spawned_policy),
};

int main(int argc, char **argv)
{
    const char *group = test_init(argc, argv, "retry");
    if (!group)
        return 2;
    return cmocka_run_group_tests_name(group, tests, setup, teardown);
}
