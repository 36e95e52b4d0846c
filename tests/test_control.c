/* SPDX-License-Identifier: MIT */
/* Run control: the completion callback, fail-fast, the deadline, stopping
 * from the callback, nested and concurrent calls. Every backend. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

static int quick(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_set_resultf(ctx, "%zu", sp_ctx_index(ctx));
}

static int fails(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_fail(ctx, 5, "boom");
}

/* Waits (at most 5 s) until asked to stop, then gives up with an error. */
static int waits_for_cancel(sp_ctx *ctx, void *arg)
{
    (void)arg;
    if (!test_wait_cancel(ctx, 5000))
        return sp_set_result_str(ctx, "never cancelled");
    return sp_fail(ctx, 9, "gave up: cancelled");
}

/* Ignores cancellation: sleeps past the deadline, then succeeds. */
static int stubborn(sp_ctx *ctx, void *arg)
{
    test_sleep_ms((unsigned)(uintptr_t)arg);
    return sp_set_result_str(ctx, "finished anyway");
}

struct done_log {
    pthread_t caller;
    size_t calls;
    size_t *seen; /* per index */
    atomic_int inside;
    int overlap, wrong_thread;
    size_t stop_after; /* 0 = never */
};

static int on_done(const sp_entry *e, void *user)
{
    struct done_log *log = user;
    if (atomic_fetch_add(&log->inside, 1))
        log->overlap = 1;
    if (!pthread_equal(pthread_self(), log->caller))
        log->wrong_thread = 1;
    log->seen[sp_entry_index(e)]++;
    log->calls++;
    test_sleep_ms(0);
    atomic_fetch_sub(&log->inside, 1);
    return log->stop_after && log->calls >= log->stop_after;
}

static void make_tasks(sp_task *t, char (*keys)[16], size_t n, sp_task_fn fn)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], 16, "k%u", (unsigned)i % 100000u);
        t[i] = (sp_task){.key = keys[i], .fn = fn};
    }
}

static void test_completion_callback(void **state)
{
    (void)state;
    enum { N = 2000 };
    static sp_task t[N];
    static char keys[N][16];
    make_tasks(t, keys, N, quick);
    t[7].fn = fails;
    size_t seen[N] = {0};
    struct done_log log = {.caller = pthread_self(), .seen = seen};
    sp_options o = test_opts();
    o.max_workers = 4;
    o.on_done = on_done;
    o.on_done_arg = &log;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(log.calls, N);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_false(log.overlap);
    assert_false(log.wrong_thread);
    assert_int_equal(sp_results_ok(res), N - 1);
    sp_results_free(res);
}

/* Fail-fast in the middle of many quick tasks (which process workers claim
 * in spans): every key comes back once, each either run (its own result)
 * or cancelled without a worker; none runs after the stop is seen. */
static int quick_or_fails(sp_ctx *ctx, void *arg)
{
    (void)arg;
    if (sp_ctx_index(ctx) == 10000)
        return sp_fail(ctx, 5, "boom");
    return quick(ctx, arg);
}

static void test_fail_fast_among_quick_tasks(void **state)
{
    (void)state;
    size_t N = test_scale() > 1 ? 12000 : 20000; /* valgrind: fewer */
    test_table tt = test_table_new(N, "q", quick_or_fails, NULL);
    sp_options o = test_opts();
    o.max_workers = 2;
    o.on_error = SP_FAIL_FAST;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(tt.t, N, &o, &res), 0);
    assert_int_equal(sp_results_count(res), N);
    size_t ok = 0, cancelled = 0;
    for (size_t i = 0; i < N; i++) {
        const sp_entry *e = sp_results_at(res, i);
        assert_string_equal(sp_entry_key(e), test_key(&tt, i));
        sp_kind k = sp_entry_kind(e);
        if (i == 10000) {
            assert_int_equal(k, SP_KIND_FAILED);
        } else if (k == SP_KIND_OK) {
            char want[24];
            snprintf(want, sizeof want, "%zu", i);
            assert_string_equal(sp_entry_str(e), want);
            ok++;
        } else {
            if (k != SP_KIND_CANCELLED)
                fail_msg("%s: %s", test_key(&tt, i), sp_kind_name(k));
            assert_int_equal(sp_entry_worker(e), SP_NO_WORKER);
            assert_non_null(strstr(sp_entry_message(e), "fail-fast"));
            cancelled++;
        }
    }
    assert_int_equal(ok + cancelled + 1, N);
    assert_int_equal(sp_results_ok(res), ok);
    sp_results_free(res);
    test_table_free(&tt);
}

static void test_fail_fast(void **state)
{
    (void)state;
    enum { N = 40 };
    sp_task t[N];
    char keys[N][16];
    make_tasks(t, keys, N, quick);
    t[0].fn = fails;
    t[1].fn = waits_for_cancel;
    sp_options o = test_opts();
    o.max_workers = 2;
    o.on_error = SP_FAIL_FAST;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_results_count(res), N);
    const sp_entry *e = sp_results_at(res, 0);
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_string_equal(sp_entry_message(e), "boom");
    /* Task 1 either never started or saw the cancellation and gave up. */
    e = sp_results_at(res, 1);
    assert_int_equal(sp_entry_kind(e), SP_KIND_CANCELLED);
    /* Quick tasks may have run on the other worker before task 0 failed
     * (how many depends on scheduling); every other one never started. */
    size_t cancelled = sp_results_count_kind(res, SP_KIND_CANCELLED);
    assert_int_equal(sp_results_ok(res) + cancelled + 1, N);
    for (size_t i = 2; i < N; i++) {
        e = sp_results_at(res, i);
        if (sp_entry_kind(e) == SP_KIND_CANCELLED) {
            assert_int_equal(sp_entry_code(e), SP_ECANCELED);
            assert_non_null(strstr(sp_entry_message(e), "fail-fast"));
            assert_int_equal(sp_entry_worker(e), SP_NO_WORKER);
            assert_null(sp_entry_data(e, NULL));
        }
    }
    sp_results_free(res);

    /* One worker runs the table in order: after task 0 fails nothing else
     * starts, on every backend. */
    o.max_workers = 1;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 0)), SP_KIND_FAILED);
    assert_int_equal(sp_results_count_kind(res, SP_KIND_CANCELLED), N - 1);
    for (size_t i = 1; i < N; i++)
        assert_int_equal(sp_entry_worker(sp_results_at(res, i)), SP_NO_WORKER);
    sp_results_free(res);
}

static void test_collect_all_keeps_going(void **state)
{
    (void)state;
    enum { N = 40 };
    sp_task t[N];
    char keys[N][16];
    make_tasks(t, keys, N, quick);
    for (size_t i = 0; i < N; i += 4)
        t[i].fn = fails;
    sp_options o = test_opts();
    o.max_workers = 2;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_results_failed(res), N / 4);
    assert_int_equal(sp_results_ok(res), N - N / 4);
    for (size_t i = 1; i < N; i += 4)
        assert_string_equal(sp_entry_str(sp_results_at(res, i)), keys[i] + 1);
    sp_results_free(res);
}

/* One worker, so the order is fixed on every backend: "fast" runs,
 * "slow" is running when the 50 ms deadline passes and gives up (threads,
 * serial) or is killed (process), the rest never start. */
static void test_deadline(void **state)
{
    (void)state;
    enum { N = 6 };
    sp_task t[N];
    char keys[N][16];
    make_tasks(t, keys, N, quick);
    t[1].fn = waits_for_cancel;
    sp_options o = test_opts();
    o.max_workers = 1;
    o.deadline = 0.05 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 0)), SP_KIND_OK);
    const sp_entry *e = sp_results_at(res, 1);
    assert_int_equal(sp_entry_kind(e), SP_KIND_TIMED_OUT);
    if (test_backend != SP_BACKEND_PROCESS || sp_entry_code(e) == 9) {
        /* it saw the deadline and gave up before the parent's kill */
        assert_int_equal(sp_entry_code(e), 9);
        assert_string_equal(sp_entry_message(e), "gave up: cancelled");
    } else {
        assert_int_equal(sp_entry_code(e), SP_ETIMEDOUT);
        assert_non_null(strstr(sp_entry_message(e), "deadline"));
    }
    assert_true(sp_entry_end(e) >= 0.049 * test_scale());
    for (size_t i = 2; i < N; i++) {
        e = sp_results_at(res, i);
        assert_int_equal(sp_entry_kind(e), SP_KIND_CANCELLED);
        assert_non_null(strstr(sp_entry_message(e), "deadline"));
    }
    sp_results_free(res);
}

/* Threads and serial: a finished result is never thrown away, even when it
 * is late. Process: a task still running at the deadline is killed. */
static void test_deadline_keeps_late_success(void **state)
{
    (void)state;
    sp_task t[] = {
        {.key = "late", .fn = stubborn, .arg = (void *)(uintptr_t)test_ms(500)},
        {.key = "never", .fn = quick}};
    sp_options o = test_opts();
    o.max_workers = 1;
    /* Wide enough that the first task always starts before it, even on a
     * loaded machine, and ends well after it. */
    o.deadline = 0.25 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    const sp_entry *e = sp_results_get(res, "late");
    if (test_backend == SP_BACKEND_PROCESS) {
        assert_int_equal(sp_entry_kind(e), SP_KIND_TIMED_OUT);
        assert_int_equal(sp_entry_code(e), SP_ETIMEDOUT);
    } else {
        assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
        assert_string_equal(sp_entry_str(e), "finished anyway");
    }
    assert_int_equal(sp_entry_kind(sp_results_get(res, "never")),
                     SP_KIND_CANCELLED);
    sp_results_free(res);
}

/* A per-task time limit: the waiting task is stopped (asked on threads and
 * serial, killed on process) and comes back TIMED_OUT; the others run. */
static void test_task_timeout(void **state)
{
    (void)state;
    enum { N = 6 };
    sp_task t[N];
    char keys[N][16];
    make_tasks(t, keys, N, quick);
    t[2].fn = waits_for_cancel;
    sp_options o = test_opts();
    o.max_workers = 2;
    o.task_timeout = 0.03 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), N - 1);
    const sp_entry *e = sp_results_at(res, 2);
    assert_int_equal(sp_entry_kind(e), SP_KIND_TIMED_OUT);
    assert_true(sp_entry_end(e) - sp_entry_start(e) >= 0.029 * test_scale());
    /* On process the parent's kill may come first. */
    if (test_backend != SP_BACKEND_PROCESS || sp_entry_code(e) == 9)
        assert_string_equal(sp_entry_message(e), "gave up: cancelled");
    else
        assert_non_null(strstr(sp_entry_message(e), "task_timeout"));
    sp_results_free(res);
}

static void test_stop_from_callback(void **state)
{
    (void)state;
    enum { N = 12 };
    sp_task t[N];
    char keys[N][16];
    make_tasks(t, keys, N, waits_for_cancel);
    t[0].fn = quick;
    size_t seen[N] = {0};
    struct done_log log = {
        .caller = pthread_self(), .seen = seen, .stop_after = 1};
    sp_options o = test_opts();
    o.max_workers = 4;
    o.on_done = on_done;
    o.on_done_arg = &log;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    /* Task 0 is the only one that can finish before the stop; every other
     * task either never started or saw the stop and gave up. */
    assert_int_equal(log.calls, N);
    assert_int_equal(sp_results_ok(res), 1);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 0)), SP_KIND_OK);
    assert_int_equal(sp_results_count_kind(res, SP_KIND_CANCELLED), N - 1);
    sp_results_free(res);
}

/* A task that runs a whole simple_parallel() of its own, on each of the
 * in-process backends, and returns the sum of the inner results. */
static int inner_value(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_set_resultf(ctx, "%zu", sp_ctx_index(ctx) + 1);
}

static int nested(sp_ctx *ctx, void *arg)
{
    sp_task inner[5];
    char keys[5][16];
    make_tasks(inner, keys, 5, inner_value);
    sp_options o = {0};
    o.backend = (sp_backend)(uintptr_t)arg;
    sp_results *res = NULL;
    int rc = simple_parallel(inner, 5, &o, &res);
    if (rc)
        return sp_fail(ctx, rc, "inner call: %s", sp_last_error());
    long sum = 0;
    for (size_t i = 0; i < 5; i++)
        sum += atol(sp_entry_str(sp_results_at(res, i)));
    sp_results_free(res);
    return sp_set_resultf(ctx, "%ld", sum);
}

static void test_nested(void **state)
{
    (void)state;
    sp_task t[] = {
        {.key = "on-thread",
         .fn = nested,
         .arg = (void *)(uintptr_t)SP_BACKEND_THREAD},
        {.key = "on-serial",
         .fn = nested,
         .arg = (void *)(uintptr_t)SP_BACKEND_SERIAL},
        {.key = "on-thread-2",
         .fn = nested,
         .arg = (void *)(uintptr_t)SP_BACKEND_THREAD},
    };
    sp_options o = test_opts();
    o.max_workers = 2; /* fewer workers than nested calls: no deadlock */
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 3, &o, &res), 0);
    for (size_t i = 0; i < 3; i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (sp_entry_kind(e) != SP_KIND_OK)
            fail_msg("%s: %s", sp_entry_key(e), sp_entry_message(e));
        assert_string_equal(sp_entry_str(e), "15");
    }
    sp_results_free(res);
}

struct caller {
    pthread_t thread;
    int id, rc, ok;
};

static void *concurrent_caller(void *arg)
{
    struct caller *c = arg;
    enum { N = 300 };
    sp_task t[N];
    char keys[N][16];
    make_tasks(t, keys, N, quick);
    sp_options o = test_opts();
    o.max_workers = 3;
    for (int round = 0; round < 5 && !c->rc; round++) {
        sp_results *res = NULL;
        c->rc = simple_parallel(t, N, &o, &res);
        c->ok = 1;
        for (size_t i = 0; i < N && res; i++) {
            char want[16];
            snprintf(want, sizeof want, "%zu", i);
            if (strcmp(sp_entry_str(sp_results_get(res, keys[i])), want))
                c->ok = 0;
        }
        sp_results_free(res);
    }
    return NULL;
}

static void test_concurrent_callers(void **state)
{
    (void)state;
    if (TEST_ASAN && test_backend == SP_BACKEND_PROCESS)
        skip(); /* see TEST_ASAN in common.h */
    struct caller c[4] = {{0}};
    for (int i = 0; i < 4; i++) {
        c[i].id = i;
        assert_int_equal(
            pthread_create(&c[i].thread, NULL, concurrent_caller, &c[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(c[i].thread, NULL);
        assert_int_equal(c[i].rc, 0);
        assert_true(c[i].ok);
    }
}

/* Concurrent callers each see their own error message. */
static void *bad_caller(void *arg)
{
    struct caller *c = arg;
    char key[16];
    snprintf(key, sizeof key, "dup%d", c->id);
    sp_task t[] = {{.key = key, .fn = quick}, {.key = key, .fn = quick}};
    sp_results *res = NULL;
    for (int round = 0; round < 200; round++) {
        c->rc = simple_parallel(t, 2, NULL, &res);
        if (c->rc != SP_EDUPKEY || !strstr(sp_last_error(), key))
            return NULL;
    }
    c->ok = 1;
    return NULL;
}

static void test_error_message_per_thread(void **state)
{
    (void)state;
    struct caller c[4] = {{0}};
    for (int i = 0; i < 4; i++) {
        c[i].id = i;
        assert_int_equal(pthread_create(&c[i].thread, NULL, bad_caller, &c[i]),
                         0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(c[i].thread, NULL);
        assert_true(c[i].ok);
    }
}

/* Shared with forked workers: how many short tasks have finished. */
static _Atomic unsigned *short_done;

static int short_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    test_sleep_ms(10);
    atomic_fetch_add(short_done, 1);
    return sp_set_result_str(ctx, "short");
}

/* The slow task ends once all `n` short tasks have, or after 3 s: a short
 * task stuck behind it would make it wait the whole 3 s and then end after
 * it. */
static int slow_task(sp_ctx *ctx, void *arg)
{
    unsigned n = (unsigned)(uintptr_t)arg;
    for (unsigned ms = 0; ms < 3000 * test_scale(); ms++) {
        if (atomic_load(short_done) >= n) {
            /* The last short task counted itself just before returning;
             * let its end be stamped first. */
            test_sleep_ms(test_ms(50));
            break;
        }
        test_sleep_ms(1);
    }
    return sp_set_result_str(ctx, "slow");
}

/* The hostile-task issue's table: 100 tasks, task 0 slow, the rest 10 ms,
 * on 2, 4 and 8 workers. An idle worker takes any task that has not
 * started, so every short task ends before the slow one. The serial
 * backend runs one task at a time, in order: there the slow task does hold
 * up the rest, by design (docs/guide.md). */
static void test_slow_task_holds_up_only_itself(void **state)
{
    (void)state;
    if (test_backend == SP_BACKEND_SERIAL)
        skip();
    enum { N = 100 };
    sp_task t[N];
    char keys[N][16];
    short_done = mmap(NULL, sizeof *short_done, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(short_done != MAP_FAILED);
    make_tasks(t, keys, N, short_task);
    t[0].fn = slow_task;
    t[0].arg = (void *)(uintptr_t)(N - 1);
    static const unsigned workers[] = {2, 4, 8};
    for (size_t w = 0; w < sizeof workers / sizeof workers[0]; w++) {
        atomic_store(short_done, 0);
        sp_options o = test_opts();
        o.max_workers = workers[w];
        sp_results *res = NULL;
        assert_int_equal(simple_parallel(t, N, &o, &res), 0);
        assert_int_equal(sp_results_ok(res), N);
        double slow_end = sp_entry_end(sp_results_at(res, 0));
        for (size_t i = 1; i < N; i++) {
            const sp_entry *e = sp_results_at(res, i);
            if (sp_entry_end(e) > slow_end)
                fail_msg("%u workers: %s ended at %.3f s, after the slow "
                         "task (%.3f s)",
                         workers[w], sp_entry_key(e), sp_entry_end(e),
                         slow_end);
        }
        /* Nothing waited for the 3 s cap. */
        assert_true(slow_end < 2.5 * test_scale());
        sp_results_free(res);
    }
    munmap((void *)short_done, sizeof *short_done);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_slow_task_holds_up_only_itself),
    cmocka_unit_test(test_completion_callback),
    cmocka_unit_test(test_fail_fast),
    cmocka_unit_test(test_fail_fast_among_quick_tasks),
    cmocka_unit_test(test_collect_all_keeps_going),
    cmocka_unit_test(test_deadline),
    cmocka_unit_test(test_deadline_keeps_late_success),
    cmocka_unit_test(test_task_timeout),
    cmocka_unit_test(test_stop_from_callback),
    cmocka_unit_test(test_nested),
    cmocka_unit_test(test_concurrent_callers),
    cmocka_unit_test(test_error_message_per_thread),
};

TEST_MAIN("control", tests)
