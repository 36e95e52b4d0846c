/* SPDX-License-Identifier: MIT */
/* The results map: every key comes back, in input order and by key, with
 * its bytes or its error; timings and worker indices. Every backend. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "common.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

static int ok_str(sp_ctx *ctx, void *arg)
{
    return sp_set_resultf(ctx, "value of %s (%d)", sp_ctx_key(ctx),
                          *(int *)arg);
}

static int fail_msg_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_fail(ctx, 42, "no quote for %s", sp_ctx_key(ctx));
}

static int fail_rc(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return 3;
}

static int fail_zero_code(sp_ctx *ctx, void *arg)
{
    (void)arg;
    sp_fail(ctx, 0, NULL);
    return 0; /* the sp_fail() call still counts */
}

static int binary(sp_ctx *ctx, void *arg)
{
    (void)arg;
    static const unsigned char bytes[] = {0, 1, 2, 0, 255, 7};
    return sp_set_result(ctx, bytes, sizeof bytes);
}

static int no_result(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return 0;
}

static int replaced(sp_ctx *ctx, void *arg)
{
    (void)arg;
    /* No cmocka asserts off the main thread: report through the result. */
    if (sp_set_result_str(ctx, "first") || sp_set_result_str(ctx, "second"))
        return sp_fail(ctx, 1, "sp_set_result_str failed");
    if (sp_set_result(ctx, NULL, 5) != SP_EINVAL)
        return sp_fail(ctx, 2, "NULL data accepted");
    return 0;
}

static void test_mixed_outcomes(void **state)
{
    (void)state;
    int one = 1, two = 2;
    sp_task t[] = {
        {.key = "AAPL", .fn = ok_str, .arg = &one},
        {.key = "GOOG", .fn = fail_msg_task},
        {.key = "NFLX", .fn = ok_str, .arg = &two},
        {.key = "TSLA", .fn = fail_rc},
        {.key = "META", .fn = fail_zero_code},
        {.key = "AMZN", .fn = binary},
        {.key = "NVDA", .fn = no_result},
        {.key = "MSFT", .fn = replaced},
    };
    size_t n = sizeof t / sizeof t[0];
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, n, &o, &res), 0);
    assert_int_equal(sp_results_count(res), n);
    assert_int_equal(sp_results_ok(res), 5);
    assert_int_equal(sp_results_failed(res), 3);
    assert_int_equal(sp_results_count_kind(res, SP_KIND_FAILED), 3);

    /* Input order is kept and every key comes back. */
    for (size_t i = 0; i < n; i++) {
        const sp_entry *e = sp_results_at(res, i);
        assert_non_null(e);
        assert_string_equal(sp_entry_key(e), t[i].key);
        assert_ptr_not_equal(sp_entry_key(e), t[i].key); /* own copy */
        assert_int_equal(sp_entry_index(e), i);
        assert_ptr_equal(sp_results_get(res, t[i].key), e);
    }
    assert_null(sp_results_at(res, n));
    assert_null(sp_results_get(res, "IBM"));
    assert_null(sp_results_get(res, NULL));

    const sp_entry *e = sp_results_get(res, "AAPL");
    assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
    assert_int_equal(sp_entry_code(e), 0);
    assert_string_equal(sp_entry_str(e), "value of AAPL (1)");
    assert_string_equal(sp_entry_message(e), "");
    assert_string_equal(sp_entry_str(sp_results_get(res, "NFLX")),
                        "value of NFLX (2)");

    e = sp_results_get(res, "GOOG");
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_code(e), 42);
    assert_string_equal(sp_entry_message(e), "no quote for GOOG");

    e = sp_results_get(res, "TSLA");
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_code(e), 3);
    assert_string_equal(sp_entry_message(e), "task returned 3");

    e = sp_results_get(res, "META");
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_code(e), SP_ETASK);

    size_t len = 99;
    e = sp_results_get(res, "AMZN");
    const unsigned char *b = sp_entry_data(e, &len);
    assert_int_equal(len, 6);
    assert_int_equal(b[4], 255);
    assert_int_equal(b[6], 0); /* trailing NUL, not counted */

    e = sp_results_get(res, "NVDA");
    assert_null(sp_entry_data(e, &len));
    assert_int_equal(len, 0);
    assert_string_equal(sp_entry_str(e), "");

    assert_string_equal(sp_entry_str(sp_results_get(res, "MSFT")), "second");
    sp_results_free(res);
}

static void test_timings_and_workers(void **state)
{
    (void)state;
    enum { N = 16 };
    char keys[N][24];
    sp_task t[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "t%d", i);
        t[i] = (sp_task){.key = keys[i], .fn = no_result};
    }
    sp_options o = test_opts();
    o.max_workers = 3;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    unsigned workers = sp_results_workers(res);
    assert_true(workers >= 1 && workers <= 3);
    if (test_backend == SP_BACKEND_SERIAL)
        assert_int_equal(workers, 1);
    double prev_end = 0;
    for (size_t i = 0; i < N; i++) {
        const sp_entry *e = sp_results_at(res, i);
        assert_true(sp_entry_start(e) >= 0);
        assert_true(sp_entry_start(e) <= sp_entry_end(e));
        assert_true(sp_entry_end(e) <= sp_results_elapsed(res));
        assert_true(sp_entry_worker(e) < workers);
        if (test_backend == SP_BACKEND_SERIAL) { /* in order, one by one */
            assert_true(sp_entry_start(e) >= prev_end);
            prev_end = sp_entry_end(e);
        }
    }
    sp_results_free(res);
}

static int slow_ms(sp_ctx *ctx, void *arg)
{
    test_sleep_ms((unsigned)(uintptr_t)arg);
    return sp_set_result_str(ctx, "slept");
}

/* Task times agree with the clock on the wall: a task that sleeps 30 ms
 * lasts 30 ms, and neither it nor the call lasts longer than the call
 * measured from outside. From a process's second call on (50 ms after its
 * first) they come from the time-stamp counter where the kernel keeps
 * time with it (lib/clock.c): the later rounds are on it. */
static void test_task_times_match_the_wall(void **state)
{
    (void)state;
    unsigned ms = test_ms(30);
    sp_task t = {.key = "nap", .fn = slow_ms, .arg = (void *)(uintptr_t)ms};
    for (int k = 0; k < 4; k++) {
        struct timespec a, b;
        sp_options o = test_opts();
        sp_results *res = NULL;
        clock_gettime(CLOCK_MONOTONIC, &a);
        assert_int_equal(simple_parallel(&t, 1, &o, &res), 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double outside = (double)(b.tv_sec - a.tv_sec) +
                         (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        const sp_entry *e = sp_results_at(res, 0);
        double d = sp_entry_end(e) - sp_entry_start(e);
        if (d < ms / 1e3 - 1e-6 || d > outside + 1e-6 ||
            sp_results_elapsed(res) > outside + 1e-6)
            fail_msg("round %d: the task lasted %.9f s, the call %.9f s, "
                     "%.9f s from outside",
                     k, d, sp_results_elapsed(res), outside);
        sp_results_free(res);
    }
}

/* The timeline is real: 4 tasks of 150 ms on 4 workers overlap (except on
 * the serial backend, where they follow each other). 150 ms leaves room for
 * forking four workers on a loaded machine. */
static void test_timeline_overlap(void **state)
{
    (void)state;
    sp_task t[4];
    const char *keys[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++)
        t[i] = (sp_task){.key = keys[i],
                         .fn = slow_ms,
                         .arg = (void *)(uintptr_t)test_ms(150)};
    sp_options o = test_opts();
    o.max_workers = 4;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 4, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), 4);
    const sp_entry *a = sp_results_get(res, "a"), *d = sp_results_get(res, "d");
    assert_true(sp_entry_end(a) - sp_entry_start(a) >= 0.149 * test_scale());
    if (test_backend == SP_BACKEND_SERIAL) {
        assert_true(sp_entry_start(d) >= sp_entry_end(a));
    } else {
        /* overlap: d started before a ended (all four were handed out at
         * once to four workers) */
        assert_int_equal(sp_results_workers(res), 4);
        assert_true(sp_entry_start(d) < sp_entry_end(a));
    }
    sp_results_free(res);
}

#define MIB (1024 * 1024)

static int big(sp_ctx *ctx, void *arg)
{
    size_t seed = (size_t)(uintptr_t)arg;
    unsigned char *buf = malloc(MIB);
    if (!buf)
        return sp_fail(ctx, SP_ENOMEM, "malloc");
    for (size_t i = 0; i < MIB; i++)
        buf[i] = (unsigned char)(i * 31 + seed);
    int rc = sp_set_result(ctx, buf, MIB);
    free(buf); /* the library holds its own copy */
    return rc;
}

static void test_one_mib_payloads(void **state)
{
    (void)state;
    enum { N = 8 };
    char keys[N][24];
    sp_task t[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "big%d", i);
        t[i] =
            (sp_task){.key = keys[i], .fn = big, .arg = (void *)(uintptr_t)i};
    }
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), N);
    for (size_t k = 0; k < N; k++) {
        size_t len;
        const unsigned char *b = sp_entry_data(sp_results_at(res, k), &len);
        assert_int_equal(len, MIB);
        for (size_t i = 0; i < MIB; i += 4093)
            assert_int_equal(b[i], (unsigned char)(i * 31 + k));
        assert_int_equal(b[MIB - 1], (unsigned char)((MIB - 1) * 31 + k));
    }
    sp_results_free(res);
}

static int echo_index(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t i = sp_ctx_index(ctx);
    return sp_set_result(ctx, &i, sizeof i);
}

static void test_hundred_thousand_tasks(void **state)
{
    (void)state;
    enum { N = 100000 };
    char *keys = malloc((size_t)N * 12);
    sp_task *t = calloc(N, sizeof *t);
    assert_non_null(keys);
    assert_non_null(t);
    for (size_t i = 0; i < N; i++) {
        snprintf(keys + i * 12, 12, "task-%u", (unsigned)i % 100000u);
        t[i] = (sp_task){.key = keys + i * 12, .fn = echo_index};
    }
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_results_count(res), N);
    assert_int_equal(sp_results_ok(res), N);
    for (size_t i = 0; i < N; i++) {
        const sp_entry *e = sp_results_get(res, keys + i * 12);
        assert_int_equal(sp_entry_index(e), i);
        size_t len, got;
        const void *d = sp_entry_data(e, &len);
        assert_int_equal(len, sizeof got);
        memcpy(&got, d, sizeof got);
        assert_int_equal(got, i);
    }
    /* Thread workers default to one per task, capped. */
    if (test_backend == SP_BACKEND_THREAD)
        assert_true(sp_results_workers(res) <= SP_THREAD_DEFAULT_CAP);
    sp_results_free(res);
    free(t);
    free(keys);
}

/* Inside a task, every function that returns an error code also sets the
 * thread's last-error message, naming the code and the function. The task
 * reports the first check that failed, or "all set". */
static int failing_calls(sp_ctx *ctx, void *arg)
{
    (void)arg;
    /* Called through a pointer so the format checker lets NULL through. */
    int (*resultf)(sp_ctx *, const char *, ...) = sp_set_resultf;
    static const struct {
        const char *want;
    } expect[] = {
        {"SP_EINVAL: sp_set_result: data is NULL but len is 5"},
        {"SP_EINVAL: sp_set_result: the context is NULL"},
        {"SP_EINVAL: sp_set_result_str: the string is NULL"},
        {"SP_EINVAL: sp_set_resultf: the format is NULL"},
        {"SP_EINVAL: sp_set_resultf: the context is NULL"},
        {"SP_ENOMEM: sp_set_result: cannot copy a result of"},
    };
    int rc[6];
    const char *msg[6];
    static char copies[6][160];
    rc[0] = sp_set_result(ctx, NULL, 5);
    msg[0] = strcpy(copies[0], sp_last_error());
    rc[1] = sp_set_result(NULL, "x", 1);
    msg[1] = strcpy(copies[1], sp_last_error());
    rc[2] = sp_set_result_str(ctx, NULL);
    msg[2] = strcpy(copies[2], sp_last_error());
    rc[3] = resultf(ctx, NULL);
    msg[3] = strcpy(copies[3], sp_last_error());
    rc[4] = resultf(NULL, "%d", 1);
    msg[4] = strcpy(copies[4], sp_last_error());
    rc[5] = sp_set_result(ctx, "x", SIZE_MAX);
    msg[5] = strcpy(copies[5], sp_last_error());
    for (int k = 0; k < 6; k++) {
        int want_rc = k == 5 ? SP_ENOMEM : SP_EINVAL;
        if (rc[k] != want_rc ||
            strncmp(msg[k], expect[k].want, strlen(expect[k].want)) != 0)
            return sp_fail(ctx, 100 + k, "call %d: rc %d, message \"%s\"", k,
                           rc[k], msg[k]);
    }
    return sp_set_result_str(ctx, "all set"); /* clears the failed copy */
}

static void test_failing_calls_set_last_error(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "calls", .fn = failing_calls}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    const sp_entry *e = sp_results_at(res, 0);
    if (sp_entry_kind(e) != SP_KIND_OK)
        fail_msg("%s", sp_entry_message(e));
    assert_string_equal(sp_entry_str(e), "all set");
    sp_results_free(res);
}

/* Releases counted where they happen: the caller, or a forked worker. */
static _Atomic int *releases;

static void counted_release(void *data)
{
    atomic_fetch_add(releases, 1);
    free(data);
}

static int hands_over(sp_ctx *ctx, void *arg)
{
    size_t len = (size_t)(uintptr_t)arg;
    char *first = malloc(8), *buf = malloc(len + 1);
    if (!first || !buf)
        return sp_fail(ctx, 1, "malloc");
    memcpy(first, "first", 6);
    if (sp_set_result_owned(ctx, first, 5, counted_release))
        return sp_fail(ctx, 2, "first handover refused");
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('a' + i % 26);
    /* Replaces (and releases) the first buffer. */
    if (sp_set_result_owned(ctx, buf, len, counted_release))
        return sp_fail(ctx, 3, "second handover refused");
    if (sp_set_result_owned(ctx, NULL, 1, NULL) != SP_EINVAL ||
        !strstr(sp_last_error(), "sp_set_result_owned"))
        return sp_fail(ctx, 4, "NULL data accepted");
    return 0;
}

static int hands_over_malloc(sp_ctx *ctx, void *arg)
{
    (void)arg;
    char *buf = malloc(4);
    if (!buf)
        return sp_fail(ctx, 1, "malloc");
    memcpy(buf, "abc", 3); /* the library writes buf[3] */
    return sp_set_result_owned(ctx, buf, 3, NULL);
}

/* A task hands its own buffer over: the entry has its bytes and a NUL, the
 * library releases every buffer exactly once with the task's function
 * (here: the replaced one and the kept one), also on the process backend
 * where the worker releases after sending. */
static void test_result_handed_over(void **state)
{
    (void)state;
    releases = mmap(NULL, sizeof *releases, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(releases != MAP_FAILED);
    atomic_store(releases, 0);
    sp_task t[] = {{.key = "owned", .fn = hands_over, .arg = (void *)100000},
                   {.key = "free", .fn = hands_over_malloc}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    const sp_entry *e = sp_results_at(res, 0);
    if (sp_entry_kind(e) != SP_KIND_OK)
        fail_msg("%s", sp_entry_message(e));
    size_t len;
    const char *p = sp_entry_data(e, &len);
    assert_int_equal(len, 100000);
    assert_int_equal(p[len], 0);
    for (size_t i = 0; i < len; i += 997)
        assert_int_equal(p[i], 'a' + i % 26);
    assert_string_equal(sp_entry_str(sp_results_at(res, 1)), "abc");
    sp_results_free(res);
    assert_int_equal(atomic_load(releases), 2);
    munmap((void *)releases, sizeof *releases);
}

static int returns_minus_one(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return -1;
}

static int fails_without_code(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_fail(ctx, 0, "no code given");
}

/* A task's own numbers are told from the library's codes: -1 returned by
 * a task is the task's, and its message says so; a code the library chose
 * is the library's. */
static void test_code_origin(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "minus-one", .fn = returns_minus_one},
                   {.key = "no-code", .fn = fails_without_code},
                   {.key = "own", .fn = fail_msg_task},
                   {.key = "ok", .fn = no_result}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 4, &o, &res), 0);
    const sp_entry *e = sp_results_get(res, "minus-one");
    assert_int_equal(sp_entry_code(e), -1);
    assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_TASK);
    assert_string_equal(sp_entry_message(e), "task returned -1");
    e = sp_results_get(res, "no-code");
    assert_int_equal(sp_entry_code(e), SP_ETASK);
    assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_LIBRARY);
    e = sp_results_get(res, "own");
    assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_TASK);
    assert_int_equal(sp_entry_code_origin(sp_results_get(res, "ok")),
                     SP_ORIGIN_NONE);
    assert_int_equal(sp_entry_code_origin(NULL), SP_ORIGIN_NONE);
    sp_results_free(res);
}

static int long_failure(sp_ctx *ctx, void *arg)
{
    size_t len = (size_t)(uintptr_t)arg;
    char *msg = malloc(len + 1);
    if (!msg)
        return sp_fail(ctx, 1, "malloc");
    for (size_t i = 0; i < len; i++)
        msg[i] = (char)('a' + i % 26);
    msg[len] = 0;
    int rc = sp_fail(ctx, 7, "%s", msg);
    free(msg);
    return rc;
}

/* Failure messages: 200,000 bytes arrive whole, and one over
 * SP_MAX_MESSAGE is cut to exactly that length, ending in "...", alike on
 * every backend. */
static void test_long_failure_messages(void **state)
{
    (void)state;
    sp_task t[] = {
        {.key = "200k", .fn = long_failure, .arg = (void *)200000},
        {.key = "2M", .fn = long_failure, .arg = (void *)(2u << 20)}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    const char *m = sp_entry_message(sp_results_get(res, "200k"));
    assert_int_equal(strlen(m), 200000);
    assert_int_equal(m[199999], 'a' + 199999 % 26);
    m = sp_entry_message(sp_results_get(res, "2M"));
    assert_int_equal(strlen(m), SP_MAX_MESSAGE);
    assert_string_equal(m + SP_MAX_MESSAGE - 3, "...");
    sp_results_free(res);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_result_handed_over),
    cmocka_unit_test(test_code_origin),
    cmocka_unit_test(test_long_failure_messages),
    cmocka_unit_test(test_failing_calls_set_last_error),
    cmocka_unit_test(test_mixed_outcomes),
    cmocka_unit_test(test_timings_and_workers),
    cmocka_unit_test(test_task_times_match_the_wall),
    cmocka_unit_test(test_timeline_overlap),
    cmocka_unit_test(test_one_mib_payloads),
    cmocka_unit_test(test_hundred_thousand_tasks),
};

TEST_MAIN("results", tests)
