/* SPDX-License-Identifier: MIT */
/* Trace export: sp_results_write_trace() and sp_results_write_svg() on maps
 * with every kind of entry and keys full of characters that need escaping.
 * The output is read back with real parsers (Python's json and
 * xml.etree, through tests/check-trace.py) and compared with what the
 * map's accessors say, entry by entry. Write errors give SP_EIO. Every
 * backend. */
#include "common.h"

#include <errno.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Keys that need escaping in JSON or XML, or are not valid UTF-8. */
static const char *const tricky[] = {
    "plain",
    "quote\"d 'single'",
    "back\\slash \\u0041 /",
    "new\nline\r\ttab",
    "ctl\x01\x08\x0c\x1b\x1f\x7f",
    "<tag attr='v'>&amp;</tag> ]]>",
    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",       /* valid UTF-8 */
    "bad \xff\xfe \xc0\xaf \xe2\x82 \xed\xa0\x80 end", /* not UTF-8 */
    "\xef\xbf\xbe nonchar \xef\xbf\xbf",               /* UTF-8, not XML */
    "cut \xf0\x9f\x98",                                /* truncated */
};
enum { NTRICKY = sizeof tricky / sizeof tricky[0] };

static int ok_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_set_resultf(ctx, "result %zu", sp_ctx_index(ctx) * 1000);
}

static int fail_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_fail(ctx, 5, "bad \"input\"\n\tat <x> & \xff\xfe\x01 end");
}

static int exit_task(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    _exit(7); /* process backend only: the worker dies, CRASHED */
}

/* Fails its first two attempts (crashes the first on the process
 * backend), then succeeds. */
static int third_time_lucky(sp_ctx *ctx, void *arg)
{
    (void)arg;
    unsigned a = sp_ctx_attempt(ctx);
    if (a == 1 && test_backend == SP_BACKEND_PROCESS)
        _exit(3);
    if (a < 3)
        return sp_fail(ctx, (int)(10 + a), "attempt %u <failed> \"here\"", a);
    return sp_set_result_str(ctx, "made it");
}

/* Fails every attempt with its number as the code. */
static int never_lucky(sp_ctx *ctx, void *arg)
{
    (void)arg;
    unsigned a = sp_ctx_attempt(ctx);
    return sp_fail(ctx, (int)(20 + a), "no luck on attempt %u", a);
}

/* Waits (at most 5 s) until asked to stop, then fails. */
static int waits_for_cancel(sp_ctx *ctx, void *arg)
{
    (void)arg;
    if (!test_wait_cancel(ctx, 5000))
        return sp_set_result_str(ctx, "never cancelled");
    return sp_fail(ctx, 9, "gave up: cancelled");
}

/* ---- helpers ------------------------------------------------------------- */

static void hex(char *out, const char *s)
{
    for (; *s; s++, out += 2)
        sprintf(out, "%02x", (unsigned char)*s);
    *out = 0;
}

/* "INDEX:KIND:CODE:RESULT_BYTES:WORKER:KEYHEX:MSGHEX:ATTEMPTS:FIRST_KIND:
 * FIRST_CODE:FIRST_MSGHEX:CANCEL_REASON:EARLIER" (check-trace.py), from
 * the map's accessors; EARLIER is "KIND/CODE/WORKER/MSGHEX" per earlier
 * attempt, joined by ",", or "-". malloc'd. */
static char *spec(const sp_entry *e)
{
    const char *key = sp_entry_key(e), *msg = sp_entry_message(e),
               *first = sp_entry_first_message(e);
    size_t len = 0,
           size = 160 + 2 * strlen(key) + 2 * strlen(msg) + 2 * strlen(first);
    for (unsigned k = 1; k < sp_entry_attempts(e); k++)
        size += 64 + 2 * strlen(sp_entry_message(sp_entry_attempt(e, k)));
    char *s = malloc(size);
    assert_non_null(s);
    sp_entry_data(e, &len);
    unsigned w = sp_entry_worker(e);
    int n = snprintf(s, size, "%zu:%s:%d:%zu:%ld:", sp_entry_index(e),
                     sp_kind_name(sp_entry_kind(e)), sp_entry_code(e), len,
                     w == SP_NO_WORKER ? -1L : (long)w);
    hex(s + n, key);
    n += (int)strlen(s + n);
    s[n++] = ':';
    hex(s + n, msg);
    n += (int)strlen(s + n);
    n += snprintf(s + n, size - (size_t)n, ":%u:%s:%d:", sp_entry_attempts(e),
                  sp_kind_name(sp_entry_first_kind(e)), sp_entry_first_code(e));
    hex(s + n, first);
    n += (int)strlen(s + n);
    n += snprintf(s + n, size - (size_t)n,
                  ":%s:", sp_cancel_reason_name(sp_entry_cancel_reason(e)));
    if (sp_entry_attempts(e) < 2)
        s[n++] = '-';
    for (unsigned k = 1; k < sp_entry_attempts(e); k++) {
        const sp_entry *a = sp_entry_attempt(e, k);
        n += snprintf(s + n, size - (size_t)n, "%s%s/%d/%u/", k > 1 ? "," : "",
                      sp_kind_name(sp_entry_kind(a)), sp_entry_code(a),
                      sp_entry_worker(a));
        hex(s + n, sp_entry_message(a));
        n += (int)strlen(s + n);
    }
    s[n] = 0;
    return s;
}

/* Run tests/check-trace.py MODE PATH --tasks N --expect SPEC... and
 * return its exit status. */
static int check(const char *mode, const char *path, const sp_results *res)
{
    size_t n = sp_results_count(res);
    char **argv = calloc(2 * n + 8, sizeof *argv);
    char tasks[32];
    assert_non_null(argv);
    snprintf(tasks, sizeof tasks, "%zu", n);
    size_t a = 0;
    argv[a++] = (char *)TEST_PYTHON;
    argv[a++] = (char *)TEST_CHECK_TRACE;
    argv[a++] = (char *)mode;
    argv[a++] = (char *)path;
    argv[a++] = "--tasks";
    argv[a++] = tasks;
    for (size_t i = 0; i < n; i++) {
        argv[a++] = "--expect";
        argv[a++] = spec(sp_results_at(res, i));
    }
    fflush(NULL);
    pid_t pid;
    int rc = posix_spawn(&pid, TEST_PYTHON, NULL, NULL, argv, environ);
    if (rc)
        fail_msg("cannot run %s: %s", TEST_PYTHON, strerror(rc));
    int status = -1;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    for (size_t i = 0; i < n; i++)
        free(argv[7 + 2 * i]);
    free(argv);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* A new empty file in the temporary directory; its name into path. */
static FILE *temp_file(char *path, size_t len)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, len, "%s/sp-trace-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    return f;
}

/* Write both exports of res and check them with the real parsers. */
static void export_and_check(const sp_results *res)
{
    char path[4096];
    FILE *f = temp_file(path, sizeof path);
    assert_int_equal(sp_results_write_trace(res, f), 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(check("trace", path, res), 0);
    unlink(path);

    f = temp_file(path, sizeof path);
    assert_int_equal(sp_results_write_svg(res, f), 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(check("svg", path, res), 0);
    unlink(path);
}

/* ---- tests ----------------------------------------------------------------
 */

/* One worker and fail-fast, so the outcome is the same on every backend:
 * the first tasks run OK, one fails, the rest never start (CANCELLED, on
 * the "not started" track). Every key is a tricky one. */
static void test_fail_fast_map(void **state)
{
    (void)state;
    enum { FAILING = 7, N = NTRICKY + 1 };
    sp_task t[N];
    for (size_t i = 0; i < N; i++)
        t[i] = (sp_task){.key = i < NTRICKY ? tricky[i] : "after\n<fail>",
                         .fn = i == FAILING ? fail_task : ok_task};
    sp_options o = test_opts();
    o.max_workers = 1;
    o.on_error = SP_FAIL_FAST;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    for (size_t i = 0; i < N; i++) {
        const sp_entry *e = sp_results_at(res, i);
        sp_kind want = i < FAILING    ? SP_KIND_OK
                       : i == FAILING ? SP_KIND_FAILED
                                      : SP_KIND_CANCELLED;
        assert_int_equal(sp_entry_kind(e), want);
        assert_int_equal(sp_entry_worker(e) == SP_NO_WORKER, i > FAILING);
    }
    export_and_check(res);
    sp_results_free(res);
}

/* A deadline, with one worker: "fast" is OK; on the process backend
 * "exits" calls _exit(7) and comes back CRASHED; "slow" is running at the
 * deadline (TIMED_OUT) and the rest never start (CANCELLED). */
static void test_deadline_map(void **state)
{
    (void)state;
    int process = test_backend == SP_BACKEND_PROCESS;
    sp_task t[] = {
        {.key = "fast", .fn = ok_task},
        {.key = "exits", .fn = process ? exit_task : ok_task},
        {.key = "slow \"one\"", .fn = waits_for_cancel},
        {.key = tricky[5], .fn = ok_task},
        {.key = tricky[7], .fn = ok_task},
    };
    sp_options o = test_opts();
    o.max_workers = 1;
    o.deadline = 0.3 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 5, &o, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 0)), SP_KIND_OK);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 1)),
                     process ? SP_KIND_CRASHED : SP_KIND_OK);
    if (process)
        assert_int_equal(sp_entry_exit_status(sp_results_at(res, 1)), 7);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 2)), SP_KIND_TIMED_OUT);
    assert_int_equal(sp_results_count_kind(res, SP_KIND_CANCELLED), 2);
    export_and_check(res);
    sp_results_free(res);
}

/* Retries: each event is the task's last attempt and says how many there
 * were and how the first ended; a task never started says why. */
static void test_retries_map(void **state)
{
    (void)state;
    sp_task t[] = {
        {.key = "lucky", .fn = third_time_lucky},
        {.key = "unlucky \xff", .fn = never_lucky},
        {.key = "once", .fn = ok_task},
        {.key = "late",
         .fn = ok_task,
         .after = (const char *[]){"unlucky \xff", NULL}},
    };
    sp_options o = test_opts();
    o.max_workers = 2;
    o.retries = 2;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 4, &o, &res), 0);
    const sp_entry *lucky = sp_results_at(res, 0),
                   *unlucky = sp_results_at(res, 1);
    assert_int_equal(sp_entry_kind(lucky), SP_KIND_OK);
    assert_int_equal(sp_entry_attempts(lucky), 3);
    assert_int_equal(sp_entry_first_kind(lucky),
                     test_backend == SP_BACKEND_PROCESS ? SP_KIND_CRASHED
                                                        : SP_KIND_FAILED);
    assert_int_equal(sp_entry_kind(unlucky), SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(unlucky), 3);
    assert_int_equal(sp_entry_code(unlucky), 23);
    assert_int_equal(sp_entry_first_code(unlucky), 21);
    assert_int_equal(sp_entry_attempts(sp_results_at(res, 2)), 1);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 3)), SP_KIND_SKIPPED);
    assert_int_equal(sp_entry_attempts(sp_results_at(res, 3)), 0);
    export_and_check(res);
    sp_results_free(res);
}

/* Many tasks on several workers: one track per worker, each named. */
static void test_many_workers(void **state)
{
    (void)state;
    enum { N = 64 };
    sp_task t[N];
    char keys[N][16];
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "task-%zu", i);
        t[i] = (sp_task){.key = keys[i], .fn = i % 9 ? ok_task : fail_task};
    }
    sp_options o = test_opts();
    o.max_workers = 4;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_results_failed(res), (N + 8) / 9);
    export_and_check(res);
    sp_results_free(res);
}

static void test_empty_map(void **state)
{
    (void)state;
    sp_results *res = NULL;
    sp_options o = test_opts();
    assert_int_equal(simple_parallel(NULL, 0, &o, &res), 0);
    export_and_check(res);
    sp_results_free(res);
}

/* Contents of a stream written so far, as a string (malloc'd). */
static char *slurp(FILE *f)
{
    long len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    char *s = calloc(1, (size_t)len + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)len, f), (size_t)len);
    return s;
}

/* The shape of the output, checked from C as well: the JSON object form
 * and the escapes as documented. */
static void test_output_text(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "a\"b\\c\n\x01", .fn = ok_task},
                   {.key = "<&>\xff", .fn = fail_task}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(sp_results_write_trace(res, f), 0);
    char *s = slurp(f);
    assert_non_null(strstr(s, "{\"traceEvents\":["));
    assert_non_null(strstr(s, "\"name\":\"a\\\"b\\\\c\\n\\u0001\""));
    assert_non_null(strstr(s, "\"name\":\"<&>\\ufffd\""));
    assert_non_null(strstr(s, "\"displayTimeUnit\":\"ms\""));
    assert_non_null(strstr(s, "\"schema_version\":1"));
    assert_null(strstr(s, "\xff"));
    free(s);
    fclose(f);

    f = tmpfile();
    assert_non_null(f);
    assert_int_equal(sp_results_write_svg(res, f), 0);
    s = slurp(f);
    assert_non_null(strstr(s, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_non_null(strstr(s, "&lt;&amp;&gt;\xef\xbf\xbd"));
    assert_null(strstr(s, "<&>"));
    assert_null(strstr(s, "\xff"));
    assert_non_null(strstr(s, ">worker 0<"));
    free(s);
    fclose(f);
    sp_results_free(res);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    sp_results *res = NULL;
    sp_options o = test_opts();
    assert_int_equal(simple_parallel(NULL, 0, &o, &res), 0);
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(sp_results_write_trace(NULL, f), SP_EINVAL);
    assert_non_null(strstr(sp_last_error(), "sp_results_write_trace"));
    assert_non_null(strstr(sp_last_error(), "'res'"));
    assert_int_equal(sp_results_write_svg(NULL, f), SP_EINVAL);
    assert_non_null(strstr(sp_last_error(), "sp_results_write_svg"));
    assert_int_equal(ftell(f), 0); /* nothing written */
    assert_int_equal(sp_results_write_trace(res, NULL), SP_EINVAL);
    assert_non_null(strstr(sp_last_error(), "'f'"));
    assert_int_equal(sp_results_write_svg(res, NULL), SP_EINVAL);
    assert_non_null(strstr(sp_last_error(), "'f'"));
    fclose(f);
    sp_results_free(res);
}

/* A stream that cannot be written gives SP_EIO, and sp_last_error() names
 * the function, the failing call and the system's reason. */
static void test_write_errors(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "a", .fn = ok_task}, {.key = "b", .fn = ok_task}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    int (*const writers[])(const sp_results *, FILE *) = {
        sp_results_write_trace, sp_results_write_svg};
    const char *const names[] = {"sp_results_write_trace",
                                 "sp_results_write_svg"};
    char path[4096];
    FILE *w = temp_file(path, sizeof path);
    fclose(w);
    for (int k = 0; k < 2; k++) {
        /* A read-only stream: the first write fails with EBADF. */
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        assert_int_equal(writers[k](res, f), SP_EIO);
        assert_non_null(strstr(sp_last_error(), "SP_EIO: "));
        assert_non_null(strstr(sp_last_error(), names[k]));
        assert_non_null(strstr(sp_last_error(), strerror(EBADF)));
        fclose(f);

        /* A full device: the writes are buffered, the flush fails. */
        f = fopen("/dev/full", "w");
        if (!f) {
            print_message("no /dev/full here: %s\n", strerror(errno));
            continue;
        }
        assert_int_equal(writers[k](res, f), SP_EIO);
        assert_non_null(strstr(sp_last_error(), names[k]));
        assert_non_null(strstr(sp_last_error(), strerror(ENOSPC)));
        fclose(f);

        /* Unbuffered: a write itself fails. */
        f = fopen("/dev/full", "w");
        assert_non_null(f);
        setvbuf(f, NULL, _IONBF, 0);
        assert_int_equal(writers[k](res, f), SP_EIO);
        assert_non_null(strstr(sp_last_error(), strerror(ENOSPC)));
        fclose(f);
    }
    unlink(path);
    assert_string_equal(sp_strerror(SP_EIO), "could not write the output");
    assert_string_equal(sp_err_name(SP_EIO), "SP_EIO");
    sp_results_free(res);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_fail_fast_map), cmocka_unit_test(test_deadline_map),
    cmocka_unit_test(test_many_workers),  cmocka_unit_test(test_empty_map),
    cmocka_unit_test(test_output_text),   cmocka_unit_test(test_bad_arguments),
    cmocka_unit_test(test_write_errors),  cmocka_unit_test(test_retries_map),
};

TEST_MAIN("trace", tests)
