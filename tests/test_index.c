/* SPDX-License-Identifier: MIT */
/* Index-keyed tables (sp_options.index_keys): every key NULL, entries by
 * index, duplicates fine; the checks before anything runs; what sp_spawn(),
 * sp_dep_result(), sp_results_get() and the exports do; fail-fast,
 * deadline, retries, on_done and pools, on every backend. */
#include "common.h"

#include <stdatomic.h>

enum { N = 1000 };

/* Rows of one kind share everything: fn, arg, data. i % 3: 0 fails, 1 is
 * OK with its index as the result, 2 is OK with no result. */
static int mixed(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t i = sp_ctx_index(ctx);
    if (strcmp(sp_ctx_key(ctx), "") != 0)
        return sp_fail(ctx, 99, "sp_ctx_key is \"%s\"", sp_ctx_key(ctx));
    size_t len = 0;
    const char *data = sp_ctx_data(ctx, &len);
    if (len != 3 || memcmp(data, "abc", 3) != 0)
        return sp_fail(ctx, 98, "data lost");
    if (i % 3 == 0)
        return sp_fail(ctx, 7, "task %zu fails", i);
    if (i % 3 == 1)
        return sp_set_result(ctx, &i, sizeof i);
    return 0;
}

static sp_task *rows(size_t n, sp_task_fn fn, void *arg)
{
    sp_task *t = calloc(n, sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++)
        t[i] = (sp_task){.fn = fn, .arg = arg, .data = "abc", .len = 3};
    return t;
}

static sp_options index_opts(void)
{
    sp_options o = test_opts();
    o.index_keys = 1;
    return o;
}

static void check_mixed(sp_results *res, size_t n)
{
    assert_int_equal(sp_results_count(res), n);
    size_t want_failed = (n + 2) / 3;
    assert_int_equal(sp_results_count_kind(res, SP_KIND_FAILED), want_failed);
    assert_int_equal(sp_results_ok(res), n - want_failed);
    for (size_t i = 0; i < n; i++) {
        const sp_entry *e = sp_results_at(res, i);
        assert_non_null(e);
        assert_int_equal(sp_entry_index(e), i);
        assert_string_equal(sp_entry_key(e), "");
        size_t len = 0;
        const void *d = sp_entry_data(e, &len);
        if (i % 3 == 0) {
            assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
            assert_int_equal(sp_entry_code(e), 7);
            char msg[64];
            snprintf(msg, sizeof msg, "task %zu fails", i);
            assert_string_equal(sp_entry_message(e), msg);
        } else if (i % 3 == 1) {
            assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
            size_t got;
            assert_int_equal(len, sizeof got);
            memcpy(&got, d, sizeof got);
            assert_int_equal(got, i);
        } else {
            assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
            assert_int_equal(len, 0);
        }
        assert_int_equal(sp_entry_attempts(e), 1);
    }
    assert_null(sp_results_at(res, n));
}

static void test_every_entry(void **state)
{
    (void)state;
    sp_task *t = rows(N, mixed, NULL);
    sp_options o = index_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    check_mixed(res, N);
    sp_results_free(res);
    free(t);
}

static void test_get_refused(void **state)
{
    (void)state;
    sp_task *t = rows(4, mixed, NULL);
    sp_options o = index_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 4, &o, &res), 0);
    assert_null(sp_results_get(res, "0"));
    assert_non_null(strstr(sp_last_error(), "SP_EINVAL"));
    assert_non_null(strstr(sp_last_error(), "index-keyed"));
    assert_null(sp_results_get(res, ""));
    sp_results_free(res);
    free(t);
}

static atomic_int ran;

static int counted(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    atomic_fetch_add(&ran, 1);
    return 0;
}

static void expect_refused(const sp_task *t, size_t n, const sp_options *o,
                           int code, const char *part1, const char *part2)
{
    sp_results *res = (sp_results *)1;
    atomic_store(&ran, 0);
    assert_int_equal(simple_parallel(t, n, o, &res), code);
    assert_null(res);
    assert_int_equal(atomic_load(&ran), 0);
    const char *msg = sp_last_error();
    if (!strstr(msg, part1) || (part2 && !strstr(msg, part2)))
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", msg, part1,
                 part2 ? part2 : "");
}

static void test_mixed_tables(void **state)
{
    (void)state;
    sp_task *t = rows(8, counted, NULL);
    sp_options o = index_opts();
    /* A key in an index-keyed table. */
    t[3].key = "k";
    expect_refused(t, 8, &o, SP_EINVAL, "index 3", "index_keys");
    t[3].key = NULL;
    /* Dependencies name keys. */
    static const char *const after[] = {"a", NULL};
    t[5].after = after;
    expect_refused(t, 8, &o, SP_EINVAL, "index 5", "'after'");
    t[5].after = NULL;
    /* The row's own faults, named by index. */
    t[6].fn = NULL;
    expect_refused(t, 8, &o, SP_ENOFN, "index 6", NULL);
    t[6].fn = counted;
    t[2].data = NULL; /* len 3 stays */
    expect_refused(t, 8, &o, SP_EINVAL, "index 2", "no data");
    t[2].data = "abc";
    static const sp_task_policy bad = {.time_limit = -1};
    t[4].policy = &bad;
    expect_refused(t, 8, &o, SP_EOPTION, "task at index 4", "time_limit");
    t[4].policy = NULL;
    t[1].reserved[0] = &o;
    expect_refused(t, 8, &o, SP_ENOTSUP, "index 1", "reserved");
    t[1].reserved[0] = NULL;
    /* An index_keys value other than 0 and 1. */
    o.index_keys = 2;
    expect_refused(t, 8, &o, SP_EOPTION, "index_keys 2", NULL);
    /* A keyed call (the default) still wants every key. */
    sp_options keyed = test_opts();
    expect_refused(t, 8, &keyed, SP_ENOKEY, "index 0", "NULL key");
    /* The same rows, index-keyed, run. */
    sp_results *res = NULL;
    o.index_keys = 1;
    atomic_store(&ran, 0);
    assert_int_equal(simple_parallel(t, 8, &o, &res), 0);
    /* Worker processes count in their own memory. */
    if (test_backend != SP_BACKEND_PROCESS)
        assert_int_equal(atomic_load(&ran), 8);
    assert_int_equal(sp_results_ok(res), 8);
    sp_results_free(res);
    free(t);
}

/* Big tables: on threads they are checked by two threads (from 32,768
 * rows); the error still names the first bad row. */
static void test_big_table(void **state)
{
    (void)state;
    enum { BIG = 40000 };
    sp_task *t = rows(BIG, counted, NULL);
    sp_options o = index_opts();
    t[30000].key = "late";
    expect_refused(t, BIG, &o, SP_EINVAL, "index 30000", "index_keys");
    t[25000].fn = NULL;
    expect_refused(t, BIG, &o, SP_ENOFN, "index 25000", NULL);
    t[5].after = (const char *const[]){"x", NULL};
    expect_refused(t, BIG, &o, SP_EINVAL, "index 5", "'after'");
    t[5].after = NULL;
    t[25000].fn = counted;
    t[30000].key = NULL;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, BIG, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), BIG);
    for (size_t i = 0; i < BIG; i += 101)
        assert_int_equal(sp_entry_index(sp_results_at(res, i)), i);
    sp_results_free(res);
    free(t);
}

/* sp_spawn() is refused, sp_dep_result() has nothing: the task says what
 * it saw in its result. */
static int spawner(sp_ctx *ctx, void *arg)
{
    (void)arg;
    sp_task child = {.fn = counted};
    int a = sp_spawn(ctx, &child);
    child.key = "child";
    int b = sp_spawn(ctx, &child);
    const void *dep = sp_dep_result(ctx, "x", NULL);
    return sp_set_resultf(ctx, "%s %s %s", sp_err_name(a), sp_err_name(b),
                          dep ? "dep" : "nodep");
}

static void test_spawn_and_deps(void **state)
{
    (void)state;
    sp_task *t = rows(3, spawner, NULL);
    sp_options o = index_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 3, &o, &res), 0);
    assert_int_equal(sp_results_count(res), 3);
    for (size_t i = 0; i < 3; i++) {
        const sp_entry *e = sp_results_at(res, i);
        assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
        assert_string_equal(sp_entry_str(e), "SP_ENOTSUP SP_ENOTSUP nodep");
    }
    sp_results_free(res);
    free(t);
}

static int fail_first(sp_ctx *ctx, void *arg)
{
    (void)arg;
    if (sp_ctx_index(ctx) == 0)
        return sp_fail(ctx, 3, "first");
    test_sleep_ms(2);
    return 0;
}

static void test_fail_fast(void **state)
{
    (void)state;
    enum { M = 200 };
    sp_task *t = rows(M, fail_first, NULL);
    sp_options o = index_opts();
    o.on_error = SP_POLICY_FAIL_FAST;
    o.max_workers = 1;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, M, &o, &res), 0);
    assert_int_equal(sp_results_count(res), M);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 0)), SP_KIND_FAILED);
    size_t cancelled = 0;
    for (size_t i = 1; i < M; i++) {
        const sp_entry *e = sp_results_at(res, i);
        assert_int_equal(sp_entry_index(e), i);
        if (sp_entry_kind(e) == SP_KIND_OK)
            continue;
        assert_int_equal(sp_entry_kind(e), SP_KIND_CANCELLED);
        assert_int_equal(sp_entry_cancel_reason(e), SP_CANCEL_FAIL_FAST);
        assert_string_equal(sp_entry_message(e),
                            "not started: task #0 failed (fail-fast)");
        cancelled++;
    }
    assert_true(cancelled > 0);
    sp_results_free(res);
    free(t);
}

static int sleepy(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    test_sleep_ms(5);
    return 0;
}

static void test_deadline(void **state)
{
    (void)state;
    enum { M = 100 };
    sp_task *t = rows(M, sleepy, NULL);
    sp_options o = index_opts();
    o.max_workers = 1;
    o.deadline = 0.05 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, M, &o, &res), 0);
    assert_int_equal(sp_results_count(res), M);
    size_t ok = sp_results_ok(res);
    size_t late = sp_results_count_kind(res, SP_KIND_CANCELLED) +
                  sp_results_count_kind(res, SP_KIND_TIMED_OUT);
    assert_int_equal(ok + late, M);
    assert_true(late > 0);
    for (size_t i = 0; i < M; i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (sp_entry_kind(e) == SP_KIND_CANCELLED)
            assert_int_equal(sp_entry_cancel_reason(e), SP_CANCEL_DEADLINE);
    }
    sp_results_free(res);
    free(t);
}

static int flaky(sp_ctx *ctx, void *arg)
{
    (void)arg;
    if (sp_ctx_attempt(ctx) == 1)
        return sp_fail(ctx, 5, "once");
    return 0;
}

static void test_retries(void **state)
{
    (void)state;
    enum { M = 20 };
    sp_task *t = rows(M, flaky, NULL);
    sp_options o = index_opts();
    o.retries = 1;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, M, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), M);
    for (size_t i = 0; i < M; i++) {
        const sp_entry *e = sp_results_at(res, i);
        assert_int_equal(sp_entry_attempts(e), 2);
        assert_int_equal(sp_entry_first_kind(e), SP_KIND_FAILED);
    }
    sp_results_free(res);
    free(t);
}

struct seen {
    size_t calls;
    unsigned char hit[N];
};

static int on_done(const sp_entry *e, void *user)
{
    struct seen *s = user;
    s->calls++;
    assert_true(sp_entry_index(e) < N);
    s->hit[sp_entry_index(e)]++;
    return 0;
}

static void test_on_done(void **state)
{
    (void)state;
    sp_task *t = rows(N, mixed, NULL);
    sp_options o = index_opts();
    struct seen s = {0};
    o.on_done = on_done;
    o.on_done_arg = &s;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(s.calls, N);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(s.hit[i], 1);
    check_mixed(res, N);
    sp_results_free(res);
    free(t);
}

static void test_pool(void **state)
{
    (void)state;
    sp_pool_options po = {.backend = test_backend, .max_workers = 2};
    sp_pool *pool = NULL;
    assert_int_equal(sp_pool_create(&po, &pool), 0);
    sp_task *t = rows(N, mixed, NULL);
    sp_options o = index_opts();
    for (int round = 0; round < 2; round++) {
        sp_results *res = NULL;
        assert_int_equal(sp_pool_run(pool, t, N, &o, &res), 0);
        check_mixed(res, N);
        sp_results_free(res);
    }
    /* Keyed and index-keyed calls share the pool. */
    t[0].key = "a";
    t[1].key = "b";
    sp_options keyed = test_opts();
    sp_results *res = NULL;
    assert_int_equal(sp_pool_run(pool, t, 2, &keyed, &res), 0);
    assert_string_equal(sp_entry_key(sp_results_at(res, 1)), "b");
    assert_non_null(sp_results_get(res, "a"));
    sp_results_free(res);
    free(t);
    sp_pool_free(pool);
}

static char *slurp(FILE *f)
{
    long len = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = 0;
    return buf;
}

static void test_exports(void **state)
{
    (void)state;
    sp_task *t = rows(12, mixed, NULL);
    sp_options o = index_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 12, &o, &res), 0);
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(sp_results_write_trace(res, f), 0);
    char *json = slurp(f);
    fclose(f);
    for (size_t i = 0; i < 12; i++) {
        char name[32];
        snprintf(name, sizeof name, "{\"name\":\"#%zu\"", i);
        if (!strstr(json, name))
            fail_msg("the trace lacks %s", name);
    }
    free(json);
    f = tmpfile();
    assert_non_null(f);
    assert_int_equal(sp_results_write_svg(res, f), 0);
    char *svg = slurp(f);
    fclose(f);
    assert_non_null(strstr(svg, "#11"));
    free(svg);
    sp_results_free(res);
    free(t);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_entry),
        cmocka_unit_test(test_get_refused),
        cmocka_unit_test(test_mixed_tables),
        cmocka_unit_test(test_big_table),
        cmocka_unit_test(test_spawn_and_deps),
        cmocka_unit_test(test_fail_fast),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_retries),
        cmocka_unit_test(test_on_done),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_exports),
    };
    const char *group = test_init(argc, argv, "index");
    if (!group)
        return 2;
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
