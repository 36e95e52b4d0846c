/* SPDX-License-Identifier: MIT */
/* The mock-API module: latencies in range and a pure function of (seed,
 * label), distinct in forked workers; failure injection; the seeds' data;
 * the timelines. Runs on every backend where it applies. */
#include "common.h"

#include <simplepar/mockapi.h>

static sp_mock *mock;

static int timed_call(sp_ctx *ctx, void *arg)
{
    (void)arg;
    int rc = sp_mock_io(mock, ctx, "w", sp_ctx_key(ctx), 1.0);
    return rc ? rc : 0;
}

static void test_latency_range_and_streams(void **state)
{
    (void)state;
    sp_mock_options mo = {.time_scale = 0.01 * test_scale(), .record = 1};
    mock = sp_mock_new(&mo);
    assert_non_null(mock);
    enum { N = 12 };
    char keys[N][16];
    sp_task t[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "call-%d", i);
        t[i] = (sp_task){.key = keys[i], .fn = timed_call};
    }
    sp_options o = test_opts();
    o.max_workers = 4;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), N);
    /* Every call took between 0.5 and 1.0 s, scaled; and the delays differ
     * (each call draws its own, also in forked workers). */
    double lo = 1e9, hi = 0;
    for (int i = 0; i < N; i++) {
        const sp_entry *e = sp_results_at(res, (size_t)i);
        double d = sp_entry_end(e) - sp_entry_start(e);
        assert_true(d >= 0.5 * 0.01 * test_scale() * 0.9);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(hi - lo > 0.0005 * test_scale());
    sp_results_free(res);
    sp_mock_free(mock);
}

static void test_failure_injection(void **state)
{
    (void)state;
    const char *bad[] = {"b", NULL};
    sp_mock_options mo = {.time_scale = 0.001, .fail_inputs = bad};
    mock = sp_mock_new(&mo);
    sp_task t[] = {{.key = "a", .fn = timed_call},
                   {.key = "b", .fn = timed_call},
                   {.key = "c", .fn = timed_call}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 3, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), 2);
    const sp_entry *e = sp_results_get(res, "b");
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_string_equal(sp_entry_message(e), "timed out");
    sp_results_free(res);
    sp_mock_free(mock);

    sp_mock_options all = {.time_scale = 0.001, .fail_probability = 1.0};
    mock = sp_mock_new(&all);
    assert_int_equal(simple_parallel(t, 3, &o, &res), 0);
    assert_int_equal(sp_results_failed(res), 3);
    sp_results_free(res);
    sp_mock_free(mock);

    sp_mock_options bad_opts = {.fail_probability = 2};
    assert_null(sp_mock_new(&bad_opts));
}

static void test_seed_data(void **state)
{
    (void)state;
    sp_mock_options mo = {.time_scale = 0.001};
    sp_mock *m = sp_mock_new(&mo);
    const char *uris[8];
    assert_int_equal(sp_mock_branch_list(m, NULL, "t", 42, uris, 8), 3);
    sp_mock_branch b;
    assert_int_equal(sp_mock_branch_props(m, NULL, "t", "101", &b), 0);
    assert_string_equal(b.branch_name, "Sol - Mars");
    sp_mock_bus bus;
    assert_int_equal(sp_mock_bus_for_terminal(m, NULL, "t", "504", &bus), 0);
    assert_string_equal(bus.bus_name, "CERES");
    assert_int_equal(sp_mock_branch_props(m, NULL, "t", "999", &b), SP_EINVAL);
    sp_mock_ohlcv q1[5], q2[5];
    assert_int_equal(sp_mock_ticker_quotes(m, NULL, "t", "AAPL", q1, 5), 0);
    assert_int_equal(sp_mock_ticker_quotes(m, NULL, "t", "AAPL", q2, 5), 0);
    assert_memory_equal(q1, q2, sizeof q1); /* deterministic */
    assert_true(q1[0].high >= q1[0].low);
    char body[128];
    assert_int_equal(
        sp_mock_download(m, NULL, "t", "https://x/6", body, sizeof body), 0);
    assert_string_equal(body, "https://x/6: 200 OK (11 bytes)");
    assert_int_not_equal(
        sp_mock_download(m, NULL, "t", "https://x/7", body, sizeof body), 0);
    sp_mock_free(m);
}

static void test_timelines(void **state)
{
    (void)state;
    sp_mock_event ev[] = {{"worker-1", "props(100)", 0.5, 1.5},
                          {"worker-0", "branch_list", 0.0, 0.5},
                          {"worker-1", "a<b&\"c\"", 1.5, 2.0}};
    FILE *f = tmpfile();
    sp_mock_timeline_text(f, ev, 3, 20);
    rewind(f);
    char line[256];
    int bars = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, " |")) {
            bars++;
            assert_int_equal(strchr(line, '|')[21], '|'); /* 20 columns */
        }
    assert_int_equal(bars, 3);
    fclose(f);

    f = tmpfile();
    assert_int_equal(sp_mock_timeline_svg(f, ev, 3), 0);
    long len = ftell(f);
    rewind(f);
    char *svg = calloc(1, (size_t)len + 1);
    assert_int_equal(fread(svg, 1, (size_t)len, f), (size_t)len);
    assert_non_null(strstr(svg, "<svg"));
    assert_non_null(strstr(svg, "</svg>"));
    assert_non_null(strstr(svg, "a&lt;b&amp;&quot;c&quot;"));
    assert_null(strstr(svg, "a<b"));
    size_t rects = 0;
    for (char *p = svg; (p = strstr(p, "<rect x=")); p++)
        rects++;
    assert_int_equal(rects, 3);
    free(svg);
    fclose(f);
}

static void test_logs(void **state)
{
    (void)state;
    char *dir = sp_mock_write_logs(3, 100, 22);
    assert_non_null(dir);
    char path[4096];
    sp_mock_log_path(dir, 2, path, sizeof path);
    long c = sp_mock_count_lines(path, "/api/v1/login");
    assert_true(c > 0 && c < 100);
    assert_int_equal(sp_mock_count_lines(path, "/api/"), 100);
    sp_mock_remove_logs(dir, 3);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_latency_range_and_streams),
    cmocka_unit_test(test_failure_injection),
    cmocka_unit_test(test_seed_data),
    cmocka_unit_test(test_timelines),
    cmocka_unit_test(test_logs),
};

TEST_MAIN("mockapi", tests)
