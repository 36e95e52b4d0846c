/* SPDX-License-Identifier: MIT */
/* Bad input: each validation error has its own code and a message naming
 * the offending row, and no callback has run. Runs on every backend. */
#include "common.h"

#include <math.h>
#include <stdlib.h>

/* Every callback here bumps this; validation failures must leave it 0. In
 * a forked worker the bump would be invisible, but validation happens in
 * the caller before any worker exists, so it stays meaningful. */
static _Atomic int ran;

static int bump(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    ran++;
    return 0;
}

/* Run, expect err, nothing run, out left NULL, message containing want. */
static void expect_error(const sp_task *t, size_t n, const sp_options *o,
                         int err, const char *want)
{
    sp_results *res = (sp_results *)&res; /* poison: must become NULL */
    ran = 0;
    int rc = simple_parallel(t, n, o, &res);
    assert_int_equal(rc, err);
    assert_null(res);
    assert_int_equal(ran, 0);
    assert_non_null(strstr(sp_last_error(), sp_err_name(err)));
    if (want && !strstr(sp_last_error(), want))
        fail_msg("message \"%s\" lacks \"%s\"", sp_last_error(), want);
}

/* Big tables: on threads the library validates them with two threads
 * (from 32,768 rows); the errors, and which row they name, are those of
 * one thread. */
static void test_big_table(void **state)
{
    (void)state;
    enum { BIG = 40000 };
    sp_task *t = calloc(BIG, sizeof *t);
    char *keys = malloc((size_t)BIG * 16);
    assert_non_null(t);
    assert_non_null(keys);
    for (size_t i = 0; i < BIG; i++) {
        snprintf(keys + i * 16, 16, "k%zu", i);
        t[i] = (sp_task){.key = keys + i * 16, .fn = bump};
    }
    sp_options o = test_opts();
    /* A duplicate across the halves, then one within the second half. */
    t[39000].key = "k5";
    expect_error(t, BIG, &o, SP_EDUPKEY,
                 "duplicate task key \"k5\" at index 39000 (first at "
                 "index 5)");
    t[25000].key = "k30000";
    expect_error(t, BIG, &o, SP_EDUPKEY,
                 "duplicate task key \"k30000\" at index 30000 (first at "
                 "index 25000)");
    t[25000].key = keys + 25000 * 16;
    /* A bad row in the second half before a duplicate in it. */
    t[21000].fn = NULL;
    expect_error(t, BIG, &o, SP_ENOFN, "index 21000");
    t[21000].fn = bump;
    t[39000].key = keys + 39000 * 16;
    sp_results *res = NULL;
    ran = 0;
    assert_int_equal(simple_parallel(t, BIG, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), BIG);
    for (size_t i = 0; i < BIG; i += 97) {
        const sp_entry *e = sp_results_get(res, keys + i * 16);
        assert_non_null(e);
        assert_int_equal(sp_entry_index(e), i);
        assert_string_equal(sp_entry_key(e), keys + i * 16);
    }
    sp_results_free(res);
    free(keys);
    free(t);
}

static void test_null_out(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "a", .fn = bump}};
    sp_options o = test_opts();
    ran = 0;
    assert_int_equal(simple_parallel(t, 1, &o, NULL), SP_EINVAL);
    assert_int_equal(ran, 0);
}

static void test_null_table(void **state)
{
    (void)state;
    sp_options o = test_opts();
    expect_error(NULL, 3, &o, SP_ENULLTABLE, "n is 3");
}

static void test_null_and_empty_key(void **state)
{
    (void)state;
    sp_options o = test_opts();
    sp_task t[] = {{.key = "a", .fn = bump}, {.key = NULL, .fn = bump}};
    expect_error(t, 2, &o, SP_ENOKEY, "index 1 has a NULL key");
    sp_task u[] = {{.key = "a", .fn = bump},
                   {.key = "b", .fn = bump},
                   {.key = "", .fn = bump}};
    expect_error(u, 3, &o, SP_ENOKEY, "index 2 has an empty key");
}

static void test_duplicate_key(void **state)
{
    (void)state;
    sp_options o = test_opts();
    char dup[] = "b"; /* a different pointer, same text */
    sp_task t[] = {{.key = "a", .fn = bump},
                   {.key = "b", .fn = bump},
                   {.key = "c", .fn = bump},
                   {.key = dup, .fn = bump}};
    expect_error(t, 4, &o, SP_EDUPKEY,
                 "duplicate task key \"b\" at index 3 (first at index 1)");
}

static void test_duplicate_among_many(void **state)
{
    (void)state;
    enum { N = 5000 };
    static char keys[N][16];
    static sp_task t[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        t[i] = (sp_task){.key = keys[i], .fn = bump};
    }
    /* Keys that share a prefix and length must not collide. */
    snprintf(keys[N - 1], sizeof keys[0], "k%d", 1234);
    sp_options o = test_opts();
    expect_error(t, N, &o, SP_EDUPKEY, "index 4999 (first at index 1234)");
}

static void test_null_fn(void **state)
{
    (void)state;
    sp_options o = test_opts();
    sp_task t[] = {{.key = "a", .fn = bump}, {.key = "noop", .fn = NULL}};
    expect_error(t, 2, &o, SP_ENOFN, "\"noop\" at index 1 has a NULL callback");
}

static void test_first_offender_wins(void **state)
{
    (void)state;
    sp_options o = test_opts();
    /* Row 1 has no callback, row 2 repeats row 0: row 1 is reported. */
    sp_task t[] = {
        {.key = "a", .fn = bump}, {.key = "b"}, {.key = "a", .fn = bump}};
    expect_error(t, 3, &o, SP_ENOFN, "index 1");
}

static void test_reserved_task_fields(void **state)
{
    (void)state;
    sp_options o = test_opts();
    int x;
    sp_task u[] = {{.key = "a", .fn = bump, .reserved = {&x}}};
    expect_error(u, 1, &o, SP_ENOTSUP, "reserved field 0");
    char bytes[] = "x";
    sp_task v[] = {{.key = "a", .fn = bump, .data = NULL, .len = 3},
                   {.key = "b", .fn = bump, .data = bytes, .len = 1}};
    expect_error(v, 2, &o, SP_EINVAL, "\"a\" at index 0 has len 3 but no data");
}

static void test_bad_options(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "a", .fn = bump}};
    sp_options o;

    o = test_opts();
    o.backend = (sp_backend)42;
    expect_error(t, 1, &o, SP_EOPTION, "backend 42");

    o = test_opts();
    o.max_workers = SP_MAX_WORKERS + 1;
    expect_error(t, 1, &o, SP_EOPTION, "max_workers");

    o = test_opts();
    o.on_error = (sp_policy)7;
    expect_error(t, 1, &o, SP_EOPTION, "on_error 7");

    const double bad_deadlines[] = {-1.0, NAN, INFINITY, 1e12};
    for (size_t k = 0; k < sizeof bad_deadlines / sizeof *bad_deadlines; k++) {
        o = test_opts();
        o.deadline = bad_deadlines[k];
        expect_error(t, 1, &o, SP_EOPTION, "deadline");
    }

    for (size_t k = 0; k < sizeof bad_deadlines / sizeof *bad_deadlines; k++) {
        o = test_opts();
        o.task_timeout = bad_deadlines[k];
        expect_error(t, 1, &o, SP_EOPTION, "task_timeout");
    }

    o = test_opts();
    o.stack_size = 1;
    expect_error(t, 1, &o, SP_EOPTION, "stack_size 1");

    o = test_opts();
    o.reserved[13] = 1;
    expect_error(t, 1, &o, SP_ENOTSUP, "reserved[13]");
}

static void test_zero_tasks(void **state)
{
    (void)state;
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(NULL, 0, &o, &res), 0);
    assert_non_null(res);
    assert_int_equal(sp_results_count(res), 0);
    assert_int_equal(sp_results_ok(res), 0);
    assert_int_equal(sp_results_failed(res), 0);
    assert_null(sp_results_at(res, 0));
    assert_null(sp_results_get(res, "a"));
    sp_results_free(res);

    sp_task t[] = {{.key = "a", .fn = bump}};
    assert_int_equal(simple_parallel(t, 0, &o, &res), 0);
    assert_int_equal(sp_results_count(res), 0);
    sp_results_free(res);
    sp_results_free(NULL);
}

static void test_null_options_mean_defaults(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "a", .fn = bump}, {.key = "b", .fn = bump}};
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, NULL, &res), 0);
    assert_int_equal(sp_results_ok(res), 2);
    sp_results_free(res);
}

static void test_error_table(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *name;
    } all[] = {
#define X(name, value, msg) {value, #name},
        SP_ERROR_MAP(X)
#undef X
    };
    size_t n = sizeof all / sizeof all[0];
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(sp_err_name(all[i].code), all[i].name);
        assert_true(strlen(sp_strerror(all[i].code)) > 0);
        assert_true(all[i].code == 0 || all[i].code < 0);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(all[i].code, all[j].code);
            assert_string_not_equal(sp_strerror(all[i].code),
                                    sp_strerror(all[j].code));
        }
    }
    assert_string_equal(sp_err_name(12345), "SP_UNKNOWN");
    assert_string_equal(sp_strerror(12345), "unknown error");
    assert_string_equal(sp_kind_name(SP_KIND_TIMED_OUT), "TIMED_OUT");
    assert_string_equal(sp_kind_name((sp_kind)99), "UNKNOWN");
}

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(sp_version(), SP_VERSION_NUMBER);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", SP_VERSION_MAJOR, SP_VERSION_MINOR,
             SP_VERSION_PATCH);
    assert_string_equal(sp_version_string(), want);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_null_out),
    cmocka_unit_test(test_null_table),
    cmocka_unit_test(test_null_and_empty_key),
    cmocka_unit_test(test_duplicate_key),
    cmocka_unit_test(test_duplicate_among_many),
    cmocka_unit_test(test_null_fn),
    cmocka_unit_test(test_first_offender_wins),
    cmocka_unit_test(test_reserved_task_fields),
    cmocka_unit_test(test_bad_options),
    cmocka_unit_test(test_zero_tasks),
    cmocka_unit_test(test_null_options_mean_defaults),
    cmocka_unit_test(test_error_table),
    cmocka_unit_test(test_version),
    cmocka_unit_test(test_big_table),
};

TEST_MAIN("validation", tests)
