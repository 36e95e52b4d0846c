/* SPDX-License-Identifier: MIT */
/* Process backend isolation: every way a task can die lands under its own
 * key, the caller survives, nothing leaks. Runs on the process backend
 * only (a crash on threads takes the caller down, by nature). */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* No child of ours is left, running or zombie. */
static void assert_no_children(void)
{
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static int ok_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_set_resultf(ctx, "pid-independent %zu", sp_ctx_index(ctx));
}

static int segfault(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    /* A real fault, at an address no sanitizer check stops first. */
    volatile uintptr_t addr = 64;
    *(volatile int *)addr = 1;
    return 0;
}

static int aborts(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    abort();
}

static int raises_usr1(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    raise(SIGUSR1);
    return 0;
}

static int calls_exit(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    exit(4);
}

static int calls__exit(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    _exit(3);
}

static int killed_from_outside(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    kill(getpid(), SIGKILL);
    pause(); /* SIGKILL cannot be caught: never returns */
    return 0;
}

static int hangs(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    for (;;)
        pause(); /* until the parent's SIGKILL */
    return 0;
}

static const struct {
    const char *key;
    sp_task_fn fn;
    int sig, status;
    const char *msg;
} crashers[] = {
    {"segv", segfault, SIGSEGV, -1, "killed by SIGSEGV"},
    {"abort", aborts, SIGABRT, -1, "killed by SIGABRT"},
    {"usr1", raises_usr1, SIGUSR1, -1, "killed by SIGUSR1"},
    {"exit4", calls_exit, 0, 4, "exited with status 4"},
    {"_exit3", calls__exit, 0, 3, "exited with status 3"},
    {"sigkill", killed_from_outside, SIGKILL, -1, "killed by SIGKILL"},
};
#define N_CRASH (sizeof crashers / sizeof crashers[0])

/* Crashers interleaved with good tasks; every key must come back. */
static sp_results *run_crash_table(unsigned workers, int *rc)
{
    enum { GOOD = 10 };
    static char keys[GOOD][16];
    sp_task t[N_CRASH + GOOD];
    size_t n = 0;
    for (size_t i = 0; i < GOOD; i++) {
        snprintf(keys[i], sizeof keys[i], "ok%zu", i);
        t[n++] = (sp_task){.key = keys[i], .fn = ok_task};
        if (i < N_CRASH)
            t[n++] = (sp_task){.key = crashers[i].key, .fn = crashers[i].fn};
    }
    sp_options o = {.backend = SP_BACKEND_PROCESS, .max_workers = workers};
    sp_results *res = NULL;
    *rc = simple_parallel(t, n, &o, &res);
    return res;
}

static void check_crash_table(const sp_results *res, int exact_signals)
{
    assert_int_equal(sp_results_count(res), N_CRASH + 10);
    assert_int_equal(sp_results_ok(res), 10);
    assert_int_equal(sp_results_count_kind(res, SP_KIND_CRASHED), N_CRASH);
    for (size_t i = 0; i < 10; i++) {
        char key[16], want[32];
        snprintf(key, sizeof key, "ok%zu", i);
        const sp_entry *e = sp_results_get(res, key);
        size_t idx = sp_entry_index(e);
        snprintf(want, sizeof want, "pid-independent %zu", idx);
        assert_string_equal(sp_entry_str(e), want);
    }
    for (size_t c = 0; c < N_CRASH; c++) {
        const sp_entry *e = sp_results_get(res, crashers[c].key);
        assert_int_equal(sp_entry_kind(e), SP_KIND_CRASHED);
        assert_int_equal(sp_entry_code(e), SP_ECRASHED);
        assert_true(sp_entry_worker(e) != SP_NO_WORKER);
        if (!exact_signals)
            continue; /* status unavailable: only the crash is known */
        if (!strstr(sp_entry_message(e), crashers[c].msg))
            fail_msg("%s: \"%s\" lacks \"%s\"", crashers[c].key,
                     sp_entry_message(e), crashers[c].msg);
        assert_int_equal(sp_entry_signal(e), crashers[c].sig);
        assert_int_equal(sp_entry_exit_status(e), crashers[c].status);
    }
}

static void test_every_crash_kind(void **state)
{
    (void)state;
    int fds = test_open_fds();
    int rc;
    sp_results *res = run_crash_table(2, &rc);
    assert_int_equal(rc, 0);
    check_crash_table(res, 1);
    sp_results_free(res);
    assert_no_children();
    assert_int_equal(test_open_fds(), fds);
}

static void test_sigchld_ignored(void **state)
{
    (void)state;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old, now;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGCHLD, &ign, &old);
    int rc;
    sp_results *res = run_crash_table(3, &rc);
    sigaction(SIGCHLD, NULL, &now);
    sigaction(SIGCHLD, &old, NULL);
    assert_int_equal(rc, 0);
    assert_true(now.sa_handler == SIG_IGN); /* left as the caller set it */
    /* Statuses are gone with SIG_IGN, but every key comes back, and the
     * fatal signals the workers caught themselves are still named. */
    check_crash_table(res, 0);
    assert_int_equal(sp_entry_signal(sp_results_get(res, "segv")), SIGSEGV);
    assert_int_equal(sp_entry_signal(sp_results_get(res, "abort")), SIGABRT);
    sp_results_free(res);
}

static atomic_int reaped;

static void reaper(int sig)
{
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        atomic_fetch_add(&reaped, 1);
    errno = saved;
}

/* A caller whose own SIGCHLD handler reaps every child it can. */
static void test_caller_sigchld_handler(void **state)
{
    (void)state;
    struct sigaction sa = {.sa_handler = reaper, .sa_flags = SA_RESTART}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, &old);
    int rc;
    sp_results *res = run_crash_table(2, &rc);
    struct sigaction now;
    sigaction(SIGCHLD, NULL, &now);
    sigaction(SIGCHLD, &old, NULL);
    assert_int_equal(rc, 0);
    assert_true(now.sa_handler == reaper);
    check_crash_table(res, 0);
    sp_results_free(res);
}

static void test_timeout_replaces_worker(void **state)
{
    (void)state;
    enum { N = 8 };
    sp_task t[N];
    char keys[N][16];
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "t%zu", i);
        t[i] = (sp_task){.key = keys[i], .fn = i % 3 == 1 ? hangs : ok_task};
    }
    sp_options o = {.backend = SP_BACKEND_PROCESS,
                    .max_workers = 2,
                    .task_timeout = 0.05 * test_scale()};
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    for (size_t i = 0; i < N; i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (i % 3 == 1) {
            assert_int_equal(sp_entry_kind(e), SP_KIND_TIMED_OUT);
            assert_int_equal(sp_entry_code(e), SP_ETIMEDOUT);
            assert_true(sp_entry_end(e) - sp_entry_start(e) >=
                        0.049 * test_scale());
        } else {
            assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
        }
    }
    sp_results_free(res);
    assert_no_children();
}

static void test_deadline_kills_running(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "ok", .fn = ok_task},
                   {.key = "hang1", .fn = hangs},
                   {.key = "hang2", .fn = hangs},
                   {.key = "later", .fn = ok_task}};
    sp_options o = {.backend = SP_BACKEND_PROCESS,
                    .max_workers = 2,
                    .deadline = 0.1 * test_scale()};
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 4, &o, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "ok")), SP_KIND_OK);
    const sp_entry *e = sp_results_get(res, "hang1");
    assert_int_equal(sp_entry_kind(e), SP_KIND_TIMED_OUT);
    assert_non_null(strstr(sp_entry_message(e), "deadline"));
    assert_int_equal(sp_entry_kind(sp_results_get(res, "hang2")),
                     SP_KIND_TIMED_OUT);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "later")),
                     SP_KIND_CANCELLED);
    assert_true(sp_results_elapsed(res) >= 0.1 * test_scale());
    sp_results_free(res);
    assert_no_children();
}

#define BIG ((size_t)100 * 1024 * 1024)

static int hundred_mib(sp_ctx *ctx, void *arg)
{
    (void)arg;
    unsigned char *p = malloc(BIG);
    if (!p)
        return sp_fail(ctx, SP_ENOMEM, "malloc");
    for (size_t i = 0; i < BIG; i++)
        p[i] = (unsigned char)(i ^ (i >> 13));
    int rc = sp_set_result(ctx, p, BIG);
    free(p);
    return rc;
}

static void test_hundred_mib_result(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "big", .fn = hundred_mib},
                   {.key = "small", .fn = ok_task}};
    sp_options o = {.backend = SP_BACKEND_PROCESS, .max_workers = 2};
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    const sp_entry *e = sp_results_get(res, "big");
    if (sp_entry_kind(e) != SP_KIND_OK)
        fail_msg("big: %s", sp_entry_message(e));
    size_t len;
    const unsigned char *p = sp_entry_data(e, &len);
    assert_int_equal(len, BIG);
    for (size_t i = 0; i < BIG; i++)
        if (p[i] != (unsigned char)(i ^ (i >> 13)))
            fail_msg("byte %zu differs", i);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "small")), SP_KIND_OK);
    sp_results_free(res);
}

static FILE *atexit_log;

static void parent_atexit(void)
{
    if (atexit_log)
        fputs("atexit ran\n", atexit_log), fflush(atexit_log);
}

/* Buffered output is not printed twice; the parent's atexit handlers do
 * not run in workers that leave normally. */
static void test_stdio_and_atexit(void **state)
{
    (void)state;
    FILE *out = tmpfile();
    atexit_log = tmpfile();
    assert_non_null(out);
    assert_non_null(atexit_log);
    atexit(parent_atexit);
    fputs("once", out); /* buffered, not yet written */
    sp_task t[] = {{.key = "a", .fn = ok_task}, {.key = "b", .fn = ok_task}};
    sp_options o = {.backend = SP_BACKEND_PROCESS, .max_workers = 2};
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), 2);
    sp_results_free(res);
    char buf[64] = "";
    fflush(out);
    rewind(out);
    size_t got = fread(buf, 1, sizeof buf - 1, out);
    assert_int_equal(got, 4);
    assert_string_equal(buf, "once");
    fflush(atexit_log);
    assert_int_equal(ftell(atexit_log), 0);
    fclose(out);
    FILE *log = atexit_log;
    atexit_log = NULL;
    fclose(log);
}

static void *spinner(void *arg)
{
    atomic_int *stop = arg;
    while (!atomic_load(stop))
        test_sleep_ms(1);
    return NULL;
}

/* Many runs in a row, with other threads alive in the caller: descriptor
 * and child counts stay flat, dispositions are untouched. */
static void test_many_runs_no_leaks(void **state)
{
    (void)state;
    atomic_int stop = 0;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, spinner, &stop), 0);
    struct sigaction pipe_before, pipe_after;
    sigaction(SIGPIPE, NULL, &pipe_before);
    int fds = test_open_fds();
    for (int round = 0; round < 60; round++) {
        sp_task t[] = {{.key = "ok", .fn = ok_task},
                       {.key = "segv", .fn = segfault},
                       {.key = "ok2", .fn = ok_task}};
        sp_options o = {.backend = SP_BACKEND_PROCESS, .max_workers = 2};
        sp_results *res = NULL;
        assert_int_equal(simple_parallel(t, 3, &o, &res), 0);
        assert_int_equal(sp_results_ok(res), 2);
        assert_int_equal(sp_entry_kind(sp_results_get(res, "segv")),
                         SP_KIND_CRASHED);
        sp_results_free(res);
        assert_int_equal(test_open_fds(), fds);
        assert_no_children();
    }
    sigaction(SIGPIPE, NULL, &pipe_after);
    assert_true(pipe_before.sa_handler == pipe_after.sa_handler);
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
}

/* ---- a caller slow to read: full rings -------------------------------- */

enum { SLOW_N = 20000, SLOW_CRASH_EVERY = 4001 };

static int index_or_crash(sp_ctx *ctx, void *arg)
{
    size_t i = sp_ctx_index(ctx);
    if (arg && i % SLOW_CRASH_EVERY == SLOW_CRASH_EVERY - 1)
        return segfault(ctx, NULL);
    return sp_set_resultf(ctx, "r%zu", i);
}

/* The caller stalls now and then in on_done, on its own thread: the
 * workers fill their rings with short tasks' frames meanwhile and must wait
 * for room (or use their channels) without losing or repeating one. */
static int stall_now_and_then(const sp_entry *e, void *user)
{
    (void)e;
    unsigned *seen = user;
    if (++*seen % 2000 == 0)
        test_sleep_ms(3);
    return 0;
}

static void check_slow_caller(sp_pool *pool, bool crash)
{
    sp_task *t = calloc(SLOW_N, sizeof *t);
    char(*keys)[16] = calloc(SLOW_N, sizeof *keys);
    assert_non_null(t);
    assert_non_null(keys);
    for (size_t i = 0; i < SLOW_N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%zu", i);
        t[i] = (sp_task){
            .key = keys[i], .fn = index_or_crash, .arg = crash ? t : NULL};
    }
    unsigned seen = 0;
    sp_options o = {.backend = SP_BACKEND_PROCESS,
                    .max_workers = 2,
                    .on_done = stall_now_and_then,
                    .on_done_arg = &seen};
    int fds = test_open_fds();
    sp_results *res = NULL;
    int rc = pool ? sp_pool_run(pool, t, SLOW_N, &o, &res)
                  : simple_parallel(t, SLOW_N, &o, &res);
    assert_int_equal(rc, 0);
    assert_int_equal(seen, SLOW_N);
    size_t crashed = 0;
    for (size_t i = 0; i < SLOW_N; i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (crash && i % SLOW_CRASH_EVERY == SLOW_CRASH_EVERY - 1) {
            assert_int_equal(sp_entry_kind(e), SP_KIND_CRASHED);
            crashed++;
            continue;
        }
        char want[24];
        snprintf(want, sizeof want, "r%zu", i);
        const char *got = sp_entry_str(e);
        if (sp_entry_kind(e) != SP_KIND_OK || strcmp(got, want))
            fail_msg("%s: kind %d, result \"%s\"", keys[i],
                     (int)sp_entry_kind(e), got);
    }
    assert_int_equal(sp_results_ok(res), SLOW_N - crashed);
    sp_results_free(res);
    if (!pool) {
        assert_int_equal(test_open_fds(), fds);
        assert_no_children();
    }
    free(keys);
    free(t);
}

static void test_slow_caller_loses_nothing(void **state)
{
    (void)state;
    check_slow_caller(NULL, false);
    check_slow_caller(NULL, true);
}

static void test_slow_caller_loses_nothing_pool(void **state)
{
    (void)state;
    sp_pool *pool = NULL;
    sp_pool_options po = {.backend = SP_BACKEND_PROCESS, .max_workers = 2};
    assert_int_equal(sp_pool_create(&po, &pool), 0);
    check_slow_caller(pool, false);
    check_slow_caller(pool, true);
    sp_pool_free(pool);
    assert_no_children();
}

/* ---- small tables -------------------------------------------------------- */

static int sleeps(sp_ctx *ctx, void *arg)
{
    (void)arg;
    test_sleep_ms(test_ms(150));
    return sp_set_resultf(ctx, "slept %zu", sp_ctx_index(ctx));
}

/* A small table forks one worker first; slow tasks still spread over more
 * (the first worker holds its task long past the wait for a second). */
static void test_small_table_of_slow_tasks_spreads(void **state)
{
    (void)state;
    sp_task t[6];
    char keys[6][8];
    for (int i = 0; i < 6; i++) {
        snprintf(keys[i], sizeof keys[i], "s%d", i);
        t[i] = (sp_task){.key = keys[i], .fn = sleeps};
    }
    sp_options o = {.backend = SP_BACKEND_PROCESS, .max_workers = 3};
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 6, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), 6);
    unsigned used = 0;
    for (size_t i = 0; i < 6; i++)
        used |= 1u << sp_entry_worker(sp_results_at(res, i));
    assert_true(used != 1u && (used & (used - 1)) != 0); /* two or more */
    sp_results_free(res);
    assert_no_children();
}

/* A small table whose first task crashes the only worker: the call goes on
 * in a replacement, every other key OK. */
static void test_small_table_first_worker_crashes(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "segv", .fn = segfault},
                   {.key = "a", .fn = ok_task},
                   {.key = "b", .fn = ok_task},
                   {.key = "c", .fn = ok_task}};
    for (unsigned w = 1; w <= 4; w++) {
        sp_options o = {.backend = SP_BACKEND_PROCESS, .max_workers = w};
        sp_results *res = NULL;
        assert_int_equal(simple_parallel(t, 4, &o, &res), 0);
        assert_int_equal(sp_results_ok(res), 3);
        assert_int_equal(sp_entry_kind(sp_results_get(res, "segv")),
                         SP_KIND_CRASHED);
        sp_results_free(res);
        assert_no_children();
    }
}

/* ---- wide calls -----------------------------------------------------------
 */

static int naps_or_crashes(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t i = sp_ctx_index(ctx);
    if (i % 97 == 13)
        return segfault(ctx, NULL);
    test_sleep_ms(test_ms(20));
    return sp_set_resultf(ctx, "w%zu", i);
}

/* ---- spans: short tasks are claimed several at a time ------------------ */

static int quick_or_crash(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t i = sp_ctx_index(ctx);
    if (i % 1000 == 500) {
        volatile uintptr_t addr = 64;
        *(volatile int *)addr = 1;
    }
    return sp_set_resultf(ctx, "q%zu", i);
}

/* Short tasks are claimed in spans (worker.c); a worker that crashes in
 * the middle of one leaves the rest of it, which other workers run: every
 * key comes back once, each crash under its own. */
static void test_crash_inside_a_span(void **state)
{
    (void)state;
    size_t N = test_scale() > 1 ? 4000 : 20000; /* valgrind: 4 crashes */
    test_table tt = test_table_new(N, "q", quick_or_crash, NULL);
    sp_options o = {.backend = SP_BACKEND_PROCESS, .max_workers = 2};
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(tt.t, N, &o, &res), 0);
    for (size_t i = 0; i < N; i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (i % 1000 == 500) {
            assert_int_equal(sp_entry_kind(e), SP_KIND_CRASHED);
            assert_int_equal(sp_entry_signal(e), SIGSEGV);
        } else if (sp_entry_kind(e) != SP_KIND_OK ||
                   strcmp(sp_entry_str(e), test_key(&tt, i)))
            fail_msg("%s: kind %d: %s", test_key(&tt, i), (int)sp_entry_kind(e),
                     sp_entry_message(e));
    }
    assert_int_equal(sp_results_ok(res), N - N / 1000);
    sp_results_free(res);
    test_table_free(&tt);
    assert_no_children();
}

/* ---- a map of its own: big tables' arrays are not in the workers ------- */

enum { BIG_ROWS = 4000 }; /* entries and key index both over 64 KiB */

static int big_nested_ok(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_set_resultf(ctx, "n%zu", sp_ctx_index(ctx));
}

static int big_row(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t i = sp_ctx_index(ctx);
    if (i % 500 == 7 && sp_ctx_attempt(ctx) == 1)
        return sp_fail(ctx, 3, "first attempt of %s fails", sp_ctx_key(ctx));
    if (i % 1000 == 1) { /* after "k0": its result comes from the parent */
        size_t len;
        const char *d = sp_dep_result(ctx, "k0", &len);
        if (!d || strcmp(d, "k0"))
            return sp_fail(ctx, 4, "dependency result %s", d ? d : "missing");
    }
    if (i == 5 && sp_spawn(ctx, &(sp_task){.key = "spawned", .fn = ok_task}))
        return sp_fail(ctx, 5, "spawn: %s", sp_last_error());
    if (i == 9) { /* a call of its own, from a worker: its map is its own */
        enum { M = 3000 };
        sp_task *t = calloc(M, sizeof *t);
        char(*keys)[16] = calloc(M, sizeof *keys);
        if (!t || !keys)
            return sp_fail(ctx, 6, "out of memory");
        for (size_t j = 0; j < M; j++) {
            snprintf(keys[j], sizeof keys[j], "n%zu", j);
            t[j] = (sp_task){.key = keys[j], .fn = big_nested_ok};
        }
        sp_options o = {.backend = SP_BACKEND_PROCESS, .max_workers = 2};
        sp_results *res = NULL;
        int rc = simple_parallel(t, M, &o, &res);
        size_t ok = rc ? 0 : sp_results_ok(res);
        const sp_entry *e = rc ? NULL : sp_results_get(res, "n2999");
        bool right = e && !strcmp(sp_entry_str(e), "n2999");
        sp_results_free(res);
        free(keys);
        free(t);
        if (ok != M || !right)
            return sp_fail(ctx, 7, "nested call: %zu of %d OK", ok, (int)M);
    }
    return sp_set_resultf(ctx, "%s", sp_ctx_key(ctx));
}

/* A call of BIG_ROWS keyed tasks with dependencies, a spawned task,
 * retries and a nested process call: the map's arrays are kept from the
 * forked workers (results.c), and nothing a worker needs was in them.
 * Afterwards those pages are the caller's to fork again. */
static void test_big_map_not_inherited(void **state)
{
    (void)state;
    test_table tt = test_table_new(BIG_ROWS, "k", big_row, NULL);
    static const char *after_k0[] = {"k0", NULL};
    for (size_t i = 1; i < BIG_ROWS; i += 1000)
        tt.t[i].after = after_k0;
    sp_options o = {.backend = SP_BACKEND_PROCESS,
                    .max_workers = 2,
                    .retries = 1,
                    .retry_on = SP_RETRY_FAILED};
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(tt.t, BIG_ROWS, &o, &res), 0);
    for (size_t i = 0; i < BIG_ROWS; i++) {
        const char *key = test_key(&tt, i);
        const sp_entry *e = sp_results_get(res, key);
        if (sp_entry_kind(e) != SP_KIND_OK || strcmp(sp_entry_str(e), key))
            fail_msg("%s: kind %d: %s", key, (int)sp_entry_kind(e),
                     sp_entry_message(e));
        assert_int_equal(sp_entry_attempts(e), i % 500 == 7 ? 2 : 1);
    }
    assert_int_equal(sp_entry_kind(sp_results_get(res, "spawned")), SP_KIND_OK);
    assert_int_equal(sp_results_ok(res), BIG_ROWS + 1);
    sp_results_free(res);

    /* Freed pages may come back from malloc for anything: a child must
     * see them again. */
    size_t len = BIG_ROWS * 64;
    unsigned char *p = malloc(len);
    assert_non_null(p);
    memset(p, 0x5a, len);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A missing page faults: killed by it, not caught by cmocka's
         * handler (which would run the remaining tests in this child). */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        for (size_t i = 0; i < len; i++)
            if (p[i] != 0x5a)
                _exit(1);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    free(p);
    test_table_free(&tt);
    assert_no_children();
}

/* A call as wide as its table: the workers are forked in batches while the
 * first ones already run (and some crash); every key comes back, each
 * crash under its own key, nothing is left behind. Under valgrind
 * (SP_TEST_SCALE > 1) a tenth as wide. */
static void test_thousand_workers(void **state)
{
    (void)state;
    size_t n = test_scale() > 1 ? 100 : 1000;
    test_table tt = test_table_new(n, "w", naps_or_crashes, NULL);
    int fds = test_open_fds();
    sp_options o = {.backend = SP_BACKEND_PROCESS, .max_workers = (unsigned)n};
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(tt.t, n, &o, &res), 0);
    size_t crashed = 0;
    for (size_t i = 0; i < n; i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (i % 97 == 13) {
            assert_int_equal(sp_entry_kind(e), SP_KIND_CRASHED);
            assert_int_equal(sp_entry_signal(e), SIGSEGV);
            crashed++;
            continue;
        }
        if (sp_entry_kind(e) != SP_KIND_OK ||
            strcmp(sp_entry_str(e), test_key(&tt, i)))
            fail_msg("%s: kind %d: %s", test_key(&tt, i), (int)sp_entry_kind(e),
                     sp_entry_message(e));
    }
    assert_int_equal(sp_results_ok(res), n - crashed);
    sp_results_free(res);
    assert_int_equal(test_open_fds(), fds);
    assert_no_children();
    test_table_free(&tt);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_thousand_workers),
    cmocka_unit_test(test_big_map_not_inherited),
    cmocka_unit_test(test_crash_inside_a_span),
    cmocka_unit_test(test_slow_caller_loses_nothing),
    cmocka_unit_test(test_slow_caller_loses_nothing_pool),
    cmocka_unit_test(test_small_table_of_slow_tasks_spreads),
    cmocka_unit_test(test_small_table_first_worker_crashes),
    cmocka_unit_test(test_every_crash_kind),
    cmocka_unit_test(test_sigchld_ignored),
    cmocka_unit_test(test_caller_sigchld_handler),
    cmocka_unit_test(test_timeout_replaces_worker),
    cmocka_unit_test(test_deadline_kills_running),
    cmocka_unit_test(test_hundred_mib_result),
    cmocka_unit_test(test_stdio_and_atexit),
    cmocka_unit_test(test_many_runs_no_leaks),
};

TEST_MAIN("process", tests)
