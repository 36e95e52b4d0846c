/* SPDX-License-Identifier: MIT */
/* The caller-driven run (lib/sp-collect.h), the private interface the MPI
 * library's rank 0 is built on: the same validation as simple_parallel(),
 * tasks handed out in order, outcomes recorded as given (kinds, codes,
 * origins, signals, exit statuses, owned and copied bytes), fail-fast and
 * the completion callback applied, the rest cancelled with the reason;
 * dependencies released by recorded outcomes, with their results; and
 * sp__parallel(), whose dependency results and spawns go to the caller's
 * hooks on every backend; retries decided by the run, with attempt
 * numbers handed out and given to sp__parallel()'s tasks; and the worker
 * counts of sp__workers(). */
#include "common.h"

#include "sp-collect.h"

#include <stdatomic.h>
#include <unistd.h>

static int never(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return 1; /* the caller runs the tasks elsewhere: never called here */
}

static void make_table(sp_task *t, char (*keys)[16], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], 16, "t%u", (unsigned)(i % 1000));
        t[i] = (sp_task){.key = keys[i], .fn = never};
    }
}

static void test_validation_is_simple_parallels(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "a", .fn = never}, {.key = "a", .fn = never}};
    sp__run *r = (sp__run *)&r;
    assert_int_equal(sp__run_begin(t, 2, NULL, 3, &r), SP_EDUPKEY);
    assert_null(r);
    assert_non_null(strstr(sp_last_error(), "SP_EDUPKEY: duplicate task key"));
    sp_options o = {.deadline = -1};
    assert_int_equal(sp__run_begin(t, 1, &o, 3, &r), SP_EOPTION);
    assert_int_equal(sp__set_error(SP_EINVAL, "rank %d is gone", 2), SP_EINVAL);
    assert_string_equal(sp_last_error(), "SP_EINVAL: rank 2 is gone");
}

static size_t done_calls;
static int count_done(const sp_entry *e, void *user)
{
    (void)e;
    (void)user;
    done_calls++;
    return 0;
}

static void test_outcomes_as_given(void **state)
{
    (void)state;
    enum { N = 5 };
    sp_task t[N];
    char keys[N][16];
    make_table(t, keys, N);
    sp_options o = {.on_done = count_done};
    done_calls = 0;
    sp__run *r;
    assert_int_equal(sp__run_begin(t, N, &o, 2, &r), 0);
    size_t got[N], k = 0, i;
    while (k < N && sp__run_next(r, &i) == 1)
        got[k++] = i;
    assert_int_equal(k, N);
    for (size_t j = 0; j < N; j++)
        assert_int_equal(got[j], j);          /* table order */
    assert_int_equal(sp__run_next(r, &i), 0); /* all out, none recorded */

    char *owned = malloc(6);
    memcpy(owned, "owned", 5);
    sp__outcome ok = {.kind = SP_KIND_OK,
                      .data = owned,
                      .len = 5,
                      .data_owned = 1,
                      .start = 0.1,
                      .end = 0.2,
                      .worker = 1,
                      .exit_status = -1};
    sp__run_record(r, 0, &ok);
    sp__outcome copied = ok;
    copied.data = (void *)"copied";
    copied.len = 6;
    copied.data_owned = 0;
    sp__run_record(r, 1, &copied);
    sp__outcome failed = {.kind = SP_KIND_FAILED,
                          .code = -1,
                          .task_code = 1,
                          .msg = "task returned -1",
                          .worker = 0,
                          .exit_status = -1};
    sp__run_record(r, 2, &failed);
    sp__outcome crashed = {.kind = SP_KIND_CRASHED,
                           .code = SP_ECRASHED,
                           .msg = "killed by SIGSEGV (signal 11)",
                           .signo = SIGSEGV,
                           .exit_status = -1};
    sp__run_record(r, 3, &crashed);
    sp__outcome exited = {.kind = SP_KIND_CRASHED,
                          .code = SP_ECRASHED,
                          .msg = "exited",
                          .exit_status = 3};
    sp__run_record(r, 4, &exited);
    assert_int_equal(sp__run_next(r, &i), -1);
    assert_int_equal(done_calls, N);
    sp_results *res = sp__run_end(r);
    assert_int_equal(sp_results_count(res), N);
    assert_int_equal(sp_results_workers(res), 2);
    assert_int_equal(sp_results_ok(res), 2);
    const sp_entry *e = sp_results_at(res, 0);
    assert_string_equal(sp_entry_str(e), "owned");
    assert_int_equal(sp_entry_worker(e), 1);
    assert_true(sp_entry_start(e) > 0.09 && sp_entry_end(e) < 0.21);
    assert_string_equal(sp_entry_str(sp_results_at(res, 1)), "copied");
    e = sp_results_at(res, 2);
    assert_int_equal(sp_entry_code(e), -1);
    assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_TASK);
    assert_string_equal(sp_entry_message(e), "task returned -1");
    e = sp_results_at(res, 3);
    assert_int_equal(sp_entry_signal(e), SIGSEGV);
    assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_LIBRARY);
    e = sp_results_at(res, 4);
    assert_int_equal(sp_entry_exit_status(e), 3);
    assert_int_equal(sp_entry_signal(e), 0);
    sp_results_free(res);
}

static void test_fail_fast_and_the_rest(void **state)
{
    (void)state;
    enum { N = 6 };
    sp_task t[N];
    char keys[N][16];
    make_table(t, keys, N);
    sp_options o = {.on_error = SP_POLICY_FAIL_FAST};
    sp__run *r;
    assert_int_equal(sp__run_begin(t, N, &o, 1, &r), 0);
    size_t i;
    assert_int_equal(sp__run_next(r, &i), 1);
    sp__outcome failed = {
        .kind = SP_KIND_FAILED, .code = 5, .task_code = 1, .exit_status = -1};
    sp__run_record(r, i, &failed);
    assert_true(sp__run_stopped(r));
    assert_int_equal(sp__run_next(r, &i), -1);
    sp_results *res = sp__run_end(r);
    assert_int_equal(sp_results_count_kind(res, SP_KIND_CANCELLED), N - 1);
    assert_non_null(
        strstr(sp_entry_message(sp_results_at(res, 1)), "fail-fast"));
    sp_results_free(res);

    /* A backend that cannot go on: the rest carry its code and reason. */
    assert_int_equal(sp__run_begin(t, N, NULL, 1, &r), 0);
    assert_int_equal(sp__run_next(r, &i), 1);
    sp__run_fail(r, SP_ESYSTEM, "rank 2 died");
    assert_int_equal(sp__run_next(r, &i), -1);
    sp__outcome ok = {.kind = SP_KIND_OK, .exit_status = -1};
    sp__run_record(r, 0, &ok);
    res = sp__run_end(r);
    assert_int_equal(sp_results_ok(res), 1);
    const sp_entry *e = sp_results_at(res, 3);
    assert_int_equal(sp_entry_kind(e), SP_KIND_CANCELLED);
    assert_int_equal(sp_entry_code(e), SP_ESYSTEM);
    assert_string_equal(sp_entry_message(e), "not started: rank 2 died");
    assert_int_equal(sp_entry_cancel_reason(e), SP_CANCEL_BACKEND);
    sp_results_free(res);
}

static void test_deadline(void **state)
{
    (void)state;
    sp_task t[3];
    char keys[3][16];
    make_table(t, keys, 3);
    sp_options o = {.deadline = 0.02};
    sp__run *r;
    assert_int_equal(sp__run_begin(t, 3, &o, 1, &r), 0);
    assert_true(sp__run_deadline(r) > 0.019 && sp__run_deadline(r) < 0.021);
    size_t i;
    assert_int_equal(sp__run_next(r, &i), 1);
    test_sleep_ms(30);
    assert_true(sp__run_now(r) >= 0.03);
    assert_true(sp__run_stopped(r));
    assert_int_equal(sp__run_next(r, &i), -1);
    sp__outcome timed = {.kind = SP_KIND_TIMED_OUT,
                         .code = SP_ETIMEDOUT,
                         .msg = "killed at the deadline",
                         .exit_status = -1};
    sp__run_record(r, 0, &timed);
    sp_results *res = sp__run_end(r);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 0)), SP_KIND_TIMED_OUT);
    assert_non_null(
        strstr(sp_entry_message(sp_results_at(res, 2)), "deadline"));
    sp_results_free(res);
}

/* A copy of a finished map: outcomes put in any order, without handing
 * anything out, written as given; nothing applies a policy to them. */
static void test_put_copies_a_map(void **state)
{
    (void)state;
    enum { N = 4 };
    sp_task t[N];
    char keys[N][16];
    make_table(t, keys, N);
    sp__run *r;
    assert_int_equal(sp__run_begin(t, N, NULL, 6, &r), 0);
    sp__outcome failed = {.kind = SP_KIND_FAILED,
                          .code = 7,
                          .task_code = 1,
                          .msg = "no quote",
                          .start = 0.5,
                          .end = 0.7,
                          .worker = 5,
                          .exit_status = -1};
    sp__run_put(r, 3, &failed);
    sp__outcome ok = {.kind = SP_KIND_OK,
                      .data = (void *)"abc",
                      .len = 3,
                      .worker = 0,
                      .exit_status = -1};
    sp__run_put(r, 1, &ok);
    sp__outcome cancelled = {.kind = SP_KIND_CANCELLED,
                             .code = SP_ECANCELED,
                             .msg = "not started: another task failed",
                             .start = 0.8,
                             .end = 0.8,
                             .worker = SP_NO_WORKER,
                             .exit_status = -1};
    sp__run_put(r, 0, &cancelled);
    sp_results *res = sp__run_end(r);
    assert_int_equal(sp_results_workers(res), 6);
    assert_int_equal(sp_results_ok(res), 1);
    const sp_entry *e = sp_results_at(res, 3);
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_code(e), 7);
    assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_TASK);
    assert_int_equal(sp_entry_worker(e), 5);
    assert_true(sp_entry_start(e) > 0.49 && sp_entry_end(e) < 0.71);
    assert_string_equal(sp_entry_str(sp_results_at(res, 1)), "abc");
    e = sp_results_at(res, 0);
    assert_string_equal(sp_entry_message(e),
                        "not started: another task failed");
    assert_int_equal(sp_entry_worker(e), SP_NO_WORKER);
    /* Never put: cancelled at the end. */
    assert_int_equal(sp_entry_kind(sp_results_at(res, 2)), SP_KIND_CANCELLED);
    sp_results_free(res);
}

/* A task waits for its dependencies: it is handed out once they are
 * recorded OK, and sp__run_dep_at() gives their results in 'after' order;
 * one whose dependency failed never is (SKIPPED). */
static void test_dependencies(void **state)
{
    (void)state;
    static const char *const after2[] = {"t0", "t1", NULL};
    static const char *const after3[] = {"t2", NULL};
    static const char *const after4[] = {"t5", NULL};
    enum { N = 6 };
    sp_task t[N];
    char keys[N][16];
    make_table(t, keys, N);
    t[2].after = after2;
    t[3].after = after3;
    t[4].after = after4;
    sp__run *r;
    assert_int_equal(sp__run_begin(t, N, NULL, 2, &r), 0);
    size_t i, got[N], k = 0;
    while (sp__run_next(r, &i) == 1)
        got[k++] = i;
    assert_int_equal(k, 3); /* t0, t1, t5: the ones without dependencies */
    assert_int_equal(got[0], 0);
    assert_int_equal(got[1], 1);
    assert_int_equal(got[2], 5);
    sp__outcome ok = {.kind = SP_KIND_OK, .exit_status = -1};
    sp__outcome bytes = ok;
    bytes.data = (void *)"from t0";
    bytes.len = 7;
    sp__run_record(r, 0, &bytes);
    assert_int_equal(sp__run_next(r, &i), 0); /* t2 still waits for t1 */
    sp__run_record(r, 1, &ok);
    sp__outcome failed = {.kind = SP_KIND_FAILED, .code = 2, .exit_status = -1};
    sp__run_record(r, 5, &failed);
    assert_int_equal(sp__run_next(r, &i), 1);
    assert_int_equal(i, 2);
    size_t len = 99;
    const char *d = sp__run_dep_at(r, 2, 0, &len);
    assert_int_equal(len, 7);
    assert_string_equal(d, "from t0");
    d = sp__run_dep_at(r, 2, 1, &len); /* stored none */
    assert_int_equal(len, 0);
    assert_string_equal(d, "");
    bytes.data = (void *)"from t2";
    sp__run_record(r, 2, &bytes);
    assert_int_equal(sp__run_next(r, &i), 1);
    assert_int_equal(i, 3);
    assert_string_equal(sp__run_dep_at(r, 3, 0, NULL), "from t2");
    sp__run_record(r, 3, &ok);
    assert_int_equal(sp__run_next(r, &i), -1); /* t4 is doomed by t5 */
    sp_results *res = sp__run_end(r);
    assert_int_equal(sp_results_ok(res), 4);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "t4")), SP_KIND_SKIPPED);
    sp_results_free(res);
}

/* ---- sp__parallel(): the caller answers sp_dep_result() and sp_spawn() */

struct hooks_seen {
    _Atomic int deps, spawns;
};

static const void *hook_dep(void *user, size_t i, const char *key, size_t *len)
{
    struct hooks_seen *s = user;
    atomic_fetch_add(&s->deps, 1);
    static const char *const answers[] = {"dep of 0", "dep of 1", "dep of 2"};
    if (!key || strcmp(key, "up")) {
        *len = 0;
        sp__set_error(SP_ENODEP, "no dependency \"%s\" here",
                      key ? key : "(null)");
        return NULL;
    }
    *len = strlen(answers[i % 3]);
    return answers[i % 3];
}

static int hook_spawn(void *user, size_t i, const sp_task *task)
{
    struct hooks_seen *s = user;
    atomic_fetch_add(&s->spawns, 1);
    return sp__set_error(SP_ENOTSUP, "task %zu may not spawn \"%s\"", i,
                         task->key);
}

static int hooked_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t len = 99;
    const char *d = sp_dep_result(ctx, "up", &len);
    if (!d || len != strlen(d))
        return sp_fail(ctx, 1, "no dependency result");
    if (strcmp(sp_dep_result(ctx, "up", NULL), d) ||
        sp_dep_result(ctx, "down", &len) || len ||
        !strstr(sp_last_error(), "SP_ENODEP: no dependency \"down\" here"))
        return sp_fail(ctx, 2, "the hook's error did not arrive");
    if (sp_spawn(ctx, &(sp_task){.key = "child"}) != SP_ENOFN)
        return sp_fail(ctx, 4, "a bad row reached the hook");
    sp_task row = {.key = "child", .fn = hooked_task};
    if (sp_spawn(ctx, &row) != SP_ENOTSUP)
        return sp_fail(ctx, 3, "the spawn was not refused");
    return sp_set_resultf(ctx, "%s | %s", d, sp_last_error());
}

static void test_parallel_hooks(void **state)
{
    (void)state;
    static const sp_backend backends[] = {SP_BACKEND_THREAD, SP_BACKEND_SERIAL,
                                          SP_BACKEND_PROCESS};
    sp_task t[3] = {{.key = "a", .fn = hooked_task},
                    {.key = "b", .fn = hooked_task},
                    {.key = "c", .fn = hooked_task}};
    for (size_t b = 0; b < 3; b++) {
        struct hooks_seen seen = {0};
        sp__local local = {.dep = hook_dep, .spawn = hook_spawn, .user = &seen};
        sp_options o = {.backend = backends[b], .max_workers = 2};
        sp_results *res = NULL;
        assert_int_equal(sp__parallel(t, 3, &o, &local, &res), 0);
        for (size_t i = 0; i < 3; i++) {
            const sp_entry *e = sp_results_at(res, i);
            char want[96];
            snprintf(want, sizeof want,
                     "dep of %zu | SP_ENOTSUP: task %zu may not spawn "
                     "\"child\"",
                     i, i);
            if (sp_entry_kind(e) != SP_KIND_OK)
                fail_msg("backend %zu, task %zu: %s", b, i,
                         sp_entry_message(e));
            assert_string_equal(sp_entry_str(e), want);
        }
        assert_int_equal(sp_results_count(res), 3); /* nothing was added */
        assert_int_equal(atomic_load(&seen.deps),
                         backends[b] == SP_BACKEND_PROCESS ? 6 : 9);
        assert_int_equal(atomic_load(&seen.spawns), 3);
        sp_results_free(res);
    }
    sp_results *res = (sp_results *)&res;
    assert_int_equal(sp__parallel(t, 3, NULL, NULL, &res), SP_EINVAL);
}

/* ---- retries: the run decides, the caller only reports ------------------ */

#define ALL_RETRIED (SP_RETRY_FAILED | SP_RETRY_CRASHED | SP_RETRY_TIMED_OUT)

static void test_retries(void **state)
{
    (void)state;
    enum { N = 4 };
    sp_task t[N];
    char keys[N][16];
    make_table(t, keys, N);
    static const sp_task_policy once = {.retries = SP_NO_RETRIES};
    t[2].policy = &once;
    sp_options o = {.retries = 2};
    sp__run *r;
    assert_int_equal(sp__run_begin(t, N, &o, 2, &r), 0);
    size_t i;
    unsigned on = 99;
    for (size_t k = 0; k < N; k++) {
        assert_int_equal(sp__run_next(r, &i), 1);
        assert_int_equal(i, k);
        assert_int_equal(sp__run_attempt(r, i, &on), 1);
        assert_int_equal(on, k == 2 ? 0u : ALL_RETRIED);
    }
    assert_int_equal(sp__run_next(r, &i), 0);
    sp__outcome failed = {.kind = SP_KIND_FAILED,
                          .code = 5,
                          .task_code = 1,
                          .msg = "first try",
                          .worker = 1,
                          .exit_status = -1,
                          .attempt = 1};
    assert_int_equal(sp__run_record(r, 0, &failed), 0);
    /* The same attempt again: stale, not recorded. */
    assert_int_equal(sp__run_record(r, 0, &failed), -1);
    assert_int_equal(sp__run_next(r, &i), 1);
    assert_int_equal(i, 0);
    assert_int_equal(sp__run_attempt(r, 0, &on), 2);
    assert_int_equal(on, ALL_RETRIED);
    sp__outcome crashed = {.kind = SP_KIND_CRASHED,
                           .code = SP_ECRASHED,
                           .msg = "crashed",
                           .worker = 0,
                           .signo = SIGSEGV,
                           .exit_status = -1,
                           .attempt = 2};
    assert_int_equal(sp__run_record(r, 0, &crashed), 0);
    assert_int_equal(sp__run_next(r, &i), 1);
    assert_int_equal(sp__run_attempt(r, 0, &on), 3);
    assert_int_equal(on, 0u); /* its last */
    sp__outcome ok = {.kind = SP_KIND_OK,
                      .data = (void *)"third",
                      .len = 5,
                      .worker = 1,
                      .exit_status = -1};
    assert_int_equal(sp__run_record(r, 0, &ok), 0);
    /* t1: its retry never starts (the rank could not run its batch). */
    sp__outcome failed1 = failed;
    failed1.msg = "t1 failed";
    assert_int_equal(sp__run_record(r, 1, &failed1), 0);
    assert_int_equal(sp__run_next(r, &i), 1);
    assert_int_equal(i, 1);
    sp__outcome unstarted = {.kind = SP_KIND_CANCELLED,
                             .code = SP_EPROTO,
                             .msg = "not started: rank 1: a malformed batch",
                             .worker = SP_NO_WORKER,
                             .exit_status = -1};
    assert_int_equal(sp__run_record(r, 1, &unstarted), 0);
    /* t2 is never retried; t3 is fine. */
    assert_int_equal(sp__run_record(r, 2, &failed), 0);
    ok.data = NULL;
    assert_int_equal(sp__run_record(r, 3, &ok), 0);
    assert_int_equal(sp__run_next(r, &i), -1);
    sp_results *res = sp__run_end(r);
    const sp_entry *e = sp_results_at(res, 0);
    assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
    assert_string_equal(sp_entry_str(e), "third");
    assert_int_equal(sp_entry_attempts(e), 3);
    assert_int_equal(sp_entry_first_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_first_code(e), 5);
    assert_string_equal(sp_entry_first_message(e), "first try");
    e = sp_results_at(res, 1);
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(e), 1);
    assert_string_equal(sp_entry_message(e), "t1 failed");
    e = sp_results_at(res, 2);
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(e), 1);
    assert_int_equal(sp_entry_attempts(sp_results_at(res, 3)), 1);
    assert_int_equal(sp_results_ok(res), 2);
    sp_results_free(res);
}

/* A retry waits for its delay: nothing to hand out until it is due. */
static void test_retry_delay(void **state)
{
    (void)state;
    sp_task t[1];
    char keys[1][16];
    make_table(t, keys, 1);
    sp_options o = {.retries = 1, .retry_delay = 0.02};
    sp__run *r;
    assert_int_equal(sp__run_begin(t, 1, &o, 1, &r), 0);
    size_t i;
    assert_int_equal(sp__run_next(r, &i), 1);
    assert_true(sp__run_due(r) == 0);
    sp__outcome failed = {
        .kind = SP_KIND_FAILED, .code = 1, .worker = 0, .exit_status = -1};
    double before = sp__run_now(r);
    sp__run_record(r, 0, &failed);
    double due = sp__run_due(r);
    assert_true(due >= before + 0.02);
    assert_int_equal(sp__run_next(r, &i), 0);
    while (sp__run_now(r) < due)
        test_sleep_ms(1);
    assert_int_equal(sp__run_next(r, &i), 1);
    assert_int_equal(sp__run_attempt(r, 0, NULL), 2);
    assert_true(sp__run_due(r) == 0);
    sp__run_record(r, 0, &failed);
    assert_int_equal(sp__run_next(r, &i), -1);
    sp_results *res = sp__run_end(r);
    assert_int_equal(sp_entry_attempts(sp_results_at(res, 0)), 2);
    sp_results_free(res);

    /* A stop while it waits: it keeps its last attempt. */
    o.on_error = SP_POLICY_FAIL_FAST;
    static const sp_task_policy once = {.retries = SP_NO_RETRIES};
    sp_task t2[2];
    char keys2[2][16];
    make_table(t2, keys2, 2);
    t2[1].policy = &once;
    assert_int_equal(sp__run_begin(t2, 2, &o, 1, &r), 0);
    assert_int_equal(sp__run_next(r, &i), 1);
    assert_int_equal(sp__run_next(r, &i), 1);
    sp__run_record(r, 0, &failed);
    assert_false(sp__run_stopped(r)); /* it will be retried */
    assert_true(sp__run_due(r) > 0);
    sp__run_record(r, 1, &failed); /* its last attempt: fail-fast */
    assert_true(sp__run_stopped(r));
    assert_true(sp__run_due(r) == 0);
    assert_int_equal(sp__run_next(r, &i), -1);
    res = sp__run_end(r);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 0)), SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(sp_results_at(res, 0)), 1);
    sp_results_free(res);
}

/* A copied map tells the attempts, each earlier one as given. */
static void test_put_a_story(void **state)
{
    (void)state;
    sp_task t[3];
    char keys[3][16];
    make_table(t, keys, 3);
    sp__run *r;
    assert_int_equal(sp__run_begin(t, 3, NULL, 2, &r), 0);
    sp__outcome past[2] = {{.kind = SP_KIND_CRASHED,
                            .code = SP_ECRASHED,
                            .msg = "worker killed by SIGSEGV",
                            .start = 0.25,
                            .end = 0.5,
                            .worker = 1,
                            .signo = 11,
                            .exit_status = -1},
                           {.kind = SP_KIND_TIMED_OUT,
                            .code = SP_ETIMEDOUT,
                            .msg = "over its limit",
                            .start = 0.5,
                            .end = 0.75,
                            .worker = 0,
                            .exit_status = -1}};
    sp__outcome last = {.kind = SP_KIND_FAILED,
                        .code = 9,
                        .task_code = 1,
                        .msg = "attempt 3 failed",
                        .start = 1,
                        .end = 1.5,
                        .worker = 1,
                        .exit_status = -1,
                        .attempt = 3,
                        .past = past,
                        .npast = 2};
    sp__run_put(r, 0, &last);
    sp__outcome once = {.kind = SP_KIND_OK, .worker = 0, .exit_status = -1};
    sp__run_put(r, 1, &once);
    /* Only the first of two earlier attempts known: the second is not. */
    last.npast = 1;
    sp__run_put(r, 2, &last);
    sp_results *res = sp__run_end(r);
    const sp_entry *e = sp_results_at(res, 0);
    assert_int_equal(sp_entry_attempts(e), 3);
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_code(e), 9);
    assert_string_equal(sp_entry_message(e), "attempt 3 failed");
    assert_int_equal(sp_entry_first_kind(e), SP_KIND_CRASHED);
    assert_int_equal(sp_entry_first_code(e), SP_ECRASHED);
    assert_string_equal(sp_entry_first_message(e), "worker killed by SIGSEGV");
    assert_ptr_equal(sp_entry_attempt(e, 3), e);
    const sp_entry *a1 = sp_entry_attempt(e, 1), *a2 = sp_entry_attempt(e, 2);
    assert_non_null(a1);
    assert_non_null(a2);
    assert_null(sp_entry_attempt(e, 0));
    assert_null(sp_entry_attempt(e, 4));
    assert_int_equal(sp_entry_kind(a1), SP_KIND_CRASHED);
    assert_int_equal(sp_entry_signal(a1), 11);
    assert_int_equal(sp_entry_worker(a1), 1);
    assert_true(sp_entry_start(a1) == 0.25 && sp_entry_end(a1) == 0.5);
    assert_int_equal(sp_entry_attempts(a1), 1);
    assert_int_equal(sp_entry_kind(a2), SP_KIND_TIMED_OUT);
    assert_int_equal(sp_entry_code(a2), SP_ETIMEDOUT);
    assert_string_equal(sp_entry_message(a2), "over its limit");
    assert_int_equal(sp_entry_worker(a2), 0);
    assert_int_equal(sp_entry_attempts(a2), 2);
    assert_int_equal(sp_entry_first_kind(a2), SP_KIND_CRASHED);
    assert_string_equal(sp_entry_key(a2), sp_entry_key(e));
    assert_int_equal(sp_entry_index(a2), 0);
    assert_null(sp_entry_data(a2, NULL));
    assert_int_equal(sp_entry_attempts(sp_results_at(res, 1)), 1);
    assert_ptr_equal(sp_entry_attempt(sp_results_at(res, 1), 1),
                     sp_results_at(res, 1));
    const sp_entry *part = sp_results_at(res, 2);
    assert_int_equal(sp_entry_attempts(part), 3);
    assert_non_null(sp_entry_attempt(part, 1));
    assert_null(sp_entry_attempt(part, 2)); /* not kept */
    assert_int_equal(sp_entry_first_kind(part), SP_KIND_CRASHED);
    sp_results_free(res);
}

/* sp__parallel(): sp_ctx_attempt() gives the caller's attempt numbers on
 * every backend. */
static int attempt_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_set_resultf(ctx, "%u", sp_ctx_attempt(ctx));
}

static void test_parallel_attempts(void **state)
{
    (void)state;
    static const sp_backend backends[] = {SP_BACKEND_THREAD, SP_BACKEND_SERIAL,
                                          SP_BACKEND_PROCESS};
    static const unsigned attempts[] = {1, 4, 2};
    sp_task t[3] = {{.key = "a", .fn = attempt_task},
                    {.key = "b", .fn = attempt_task},
                    {.key = "c", .fn = attempt_task}};
    for (size_t b = 0; b < 3; b++) {
        struct hooks_seen seen = {0};
        sp__local local = {.dep = hook_dep,
                           .spawn = hook_spawn,
                           .user = &seen,
                           .attempt = attempts};
        sp_options o = {.backend = backends[b], .max_workers = 2};
        sp_results *res = NULL;
        assert_int_equal(sp__parallel(t, 3, &o, &local, &res), 0);
        for (size_t i = 0; i < 3; i++) {
            char want[8];
            snprintf(want, sizeof want, "%u", attempts[i]);
            assert_string_equal(sp_entry_str(sp_results_at(res, i)), want);
        }
        sp_results_free(res);
    }
}

/* The worker counts the MPI library sizes its batches by are the backends'
 * own: max_workers when set; else the thread backend's cap, starting one
 * per CPU, the process backend's one per CPU, the serial backend's one;
 * never more than the table's rows, never 0. */
static void test_workers_are_the_backends(void **state)
{
    (void)state;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned cpus = online > 0 ? (unsigned)online : 1, most = 0, first = 0;
    unsigned wide = SP_THREAD_DEFAULT_CAP + 10;
    sp__workers(NULL, wide, &most, &first);
    assert_int_equal(most, SP_THREAD_DEFAULT_CAP);
    assert_int_equal(first, cpus < most ? cpus : most);
    sp__workers(NULL, 1, &most, &first);
    assert_int_equal(most, 1);
    assert_int_equal(first, 1);
    sp__workers(&(sp_options){.max_workers = 5}, 100, &most, &first);
    assert_int_equal(most, 5);
    assert_int_equal(first, 5); /* set: all start at once */
    sp__workers(&(sp_options){.max_workers = 5}, 3, &most, &first);
    assert_int_equal(most, 3);
    assert_int_equal(first, 3);
    sp__workers(&(sp_options){.backend = SP_BACKEND_PROCESS}, wide, &most,
                &first);
    assert_int_equal(most, cpus);
    assert_int_equal(first, cpus);
    sp__workers(&(sp_options){.backend = SP_BACKEND_SERIAL, .max_workers = 8},
                wide, &most, &first);
    assert_int_equal(most, 1);
    assert_int_equal(first, 1);
    sp__workers(&(sp_options){.backend = (sp_backend)77}, 0, &most, &first);
    assert_int_equal(most, SP_THREAD_DEFAULT_CAP); /* as the thread backend */
    assert_true(first >= 1 && first <= most);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_validation_is_simple_parallels),
    cmocka_unit_test(test_outcomes_as_given),
    cmocka_unit_test(test_fail_fast_and_the_rest),
    cmocka_unit_test(test_deadline),
    cmocka_unit_test(test_put_copies_a_map),
    cmocka_unit_test(test_dependencies),
    cmocka_unit_test(test_parallel_hooks),
    cmocka_unit_test(test_retries),
    cmocka_unit_test(test_retry_delay),
    cmocka_unit_test(test_put_a_story),
    cmocka_unit_test(test_parallel_attempts),
    cmocka_unit_test(test_workers_are_the_backends),
};

TEST_MAIN("collect", tests)
