/* SPDX-License-Identifier: MIT */
/* Pools (sp_pool_create(), sp_pool_run(), sp_pool_free()) on every
 * backend: many calls on one pool, per-worker set-up and tear-down, a
 * failing set-up, concurrent callers within the cap, nested calls, a free
 * with calls in flight, nothing left behind; on process pools also a
 * crashed worker replaced and workers that never inherit a lock held by
 * another thread of the caller.
 *
 * Counters live in a shared anonymous mapping made before any pool, so
 * that worker processes (forked from the fork server, a copy of the
 * caller at sp_pool_create()) count in the same place as threads. */
#define _GNU_SOURCE /* MAP_ANONYMOUS */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* Private: end the shared pool's idle threads (backend/thread/shared.c),
 * so that thread counts compare. */
void sp_tpool_shared_trim(void);

struct counters {
    atomic_int setups, teardowns, setup_fail_at;
    atomic_int running, max_running, started;
    atomic_int states_bad;
    atomic_int call_started[4];
    atomic_uint runs[64]; /* callback starts per task index */
};
static struct counters *cnt;

static void reset(void)
{
    memset(cnt, 0, sizeof *cnt);
    atomic_store(&cnt->setup_fail_at, -1);
}

static int setup_fn(unsigned worker, void *user, void **state)
{
    if (*state) /* no cmocka assert here: this may be a worker */
        atomic_fetch_add(&cnt->states_bad, 1);
    if (atomic_load(&cnt->setup_fail_at) == (int)worker)
        return 7;
    atomic_fetch_add(&cnt->setups, 1);
    unsigned *s = malloc(sizeof *s);
    if (!s)
        return -1;
    *s = worker + 1000u * (unsigned)(uintptr_t)user;
    *state = s;
    return 0;
}

static void teardown_fn(unsigned worker, void *user, void *state)
{
    unsigned *s = state;
    if (!s || *s != worker + 1000u * (unsigned)(uintptr_t)user)
        atomic_fetch_add(&cnt->states_bad, 1);
    free(s);
    atomic_fetch_add(&cnt->teardowns, 1);
}

static sp_pool_options pool_opts(unsigned workers)
{
    sp_pool_options po = {0};
    po.backend = test_backend;
    po.max_workers = workers;
    return po;
}

static sp_pool *make_pool(unsigned workers)
{
    sp_pool_options po = pool_opts(workers);
    sp_pool *pool = NULL;
    int err = sp_pool_create(&po, &pool);
    if (err)
        fail_msg("sp_pool_create: %s", sp_last_error());
    return pool;
}

/* Start and end one pool first: runtimes start helper threads lazily
 * (TSan's), and those must not count as leaked. */
static int threads_now(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* The thread count once threads that ended are gone: a joined thread may
 * be listed in /proc for a moment after pthread_join() returns. */
static int threads_settled(int expected)
{
    int n = threads_now();
    for (int k = 0; k < 1000 && n > expected; k++) {
        test_sleep_ms(1);
        n = threads_now();
    }
    return n;
}

static void warm_up(void)
{
    sp_pool_free(make_pool(1));
    /* The shared pool's threads are detached: trimmed, they may still be
     * on their way out. Wait until the count holds still. */
    sp_tpool_shared_trim();
    for (int k = 0, last = -1, same = 0; k < 1000 && same < 5; k++) {
        int now = threads_now();
        same = now == last ? same + 1 : 0;
        last = now;
        test_sleep_ms(1);
    }
}

/* A task that reports its key back, doubled. */
static int echo(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_set_resultf(ctx, "%s%s", sp_ctx_key(ctx), sp_ctx_key(ctx));
}

static void check_echo(sp_results *res, size_t n)
{
    assert_int_equal(sp_results_count(res), n);
    for (size_t i = 0; i < n; i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (sp_entry_kind(e) != SP_KIND_OK)
            fail_msg("%s: %s %s", sp_entry_key(e),
                     sp_kind_name(sp_entry_kind(e)), sp_entry_message(e));
        char want[64];
        snprintf(want, sizeof want, "%s%s", sp_entry_key(e), sp_entry_key(e));
        assert_string_equal(sp_entry_str(e), want);
    }
}

static sp_task *echo_table(size_t n, char (*keys)[24])
{
    sp_task *t = calloc(n, sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], 24, "k%zu", i);
        t[i].key = keys[i];
        t[i].fn = echo;
    }
    return t;
}

/* ---- many calls ---------------------------------------------------------- */

static void test_many_calls(void **state)
{
    (void)state;
    sp_pool *pool = make_pool(2);
    assert_int_equal(sp_pool_workers(pool),
                     test_backend == SP_BACKEND_SERIAL ? 1 : 2);
    char keys[8][24];
    sp_task *t = echo_table(8, keys);
    for (int call = 0; call < 300; call++) {
        sp_results *res = NULL;
        assert_int_equal(sp_pool_run(pool, t, call % 9, NULL, &res), 0);
        check_echo(res, (size_t)(call % 9));
        assert_true(sp_results_workers(res) <= 2);
        sp_results_free(res);
    }
    /* Same validation as simple_parallel(), before anything runs. */
    t[1].key = t[0].key;
    sp_results *res = NULL;
    assert_int_equal(sp_pool_run(pool, t, 8, NULL, &res), SP_EDUPKEY);
    assert_null(res);
    assert_int_equal(sp_pool_run(NULL, t, 8, NULL, &res), SP_EINVAL);
    assert_int_equal(sp_pool_run(pool, t, 8, NULL, NULL), SP_EINVAL);
    free(t);
    sp_pool_free(pool);
    sp_pool_free(NULL);
    assert_int_equal(sp_pool_workers(NULL), 0);
}

/* A graph and spawning work on a pool as on simple_parallel(). */
static int dep_user(sp_ctx *ctx, void *arg)
{
    (void)arg;
    const char *v = sp_dep_result(ctx, "first", NULL);
    if (!v)
        return sp_fail(ctx, 1, "no dependency result");
    return sp_set_resultf(ctx, "after %s", v);
}

static int spawner(sp_ctx *ctx, void *arg)
{
    (void)arg;
    sp_task child = {.key = "spawned", .fn = echo};
    return sp_spawn(ctx, &child);
}

static void test_graph_on_a_pool(void **state)
{
    (void)state;
    sp_pool *pool = make_pool(2);
    const char *after_first[] = {"first", NULL};
    sp_task t[] = {{.key = "second", .fn = dep_user, .after = after_first},
                   {.key = "first", .fn = echo},
                   {.key = "parent", .fn = spawner}};
    for (int call = 0; call < 20; call++) {
        sp_results *res = NULL;
        assert_int_equal(sp_pool_run(pool, t, 3, NULL, &res), 0);
        assert_int_equal(sp_results_count(res), 4);
        assert_string_equal(sp_entry_str(sp_results_get(res, "second")),
                            "after firstfirst");
        assert_string_equal(sp_entry_str(sp_results_get(res, "spawned")),
                            "spawnedspawned");
        sp_results_free(res);
    }
    sp_pool_free(pool);
}

/* ---- set-up and tear-down ------------------------------------------------ */

static int read_state(sp_ctx *ctx, void *arg)
{
    (void)arg;
    const unsigned *s = sp_ctx_worker_state(ctx);
    if (!s)
        return sp_fail(ctx, 1, "no worker state");
    if (*s % 1000u >= 3u || *s / 1000u != 5u)
        return sp_fail(ctx, 2, "state %u is not a worker's", *s);
    return sp_set_resultf(ctx, "%u", *s % 1000u);
}

static void test_setup_and_teardown(void **state)
{
    (void)state;
    reset();
    int fds = test_open_fds();
    sp_pool_options po = pool_opts(3);
    po.setup = setup_fn;
    po.teardown = teardown_fn;
    po.user = (void *)(uintptr_t)5;
    sp_pool *pool = NULL;
    assert_int_equal(sp_pool_create(&po, &pool), 0);
    unsigned workers = sp_pool_workers(pool);
    /* Every set-up has run when create returns. */
    assert_int_equal(atomic_load(&cnt->setups), (int)workers);
    assert_int_equal(atomic_load(&cnt->teardowns), 0);
    sp_task t[12];
    char keys[12][24];
    for (size_t i = 0; i < 12; i++) {
        snprintf(keys[i], sizeof keys[i], "s%zu", i);
        t[i] = (sp_task){.key = keys[i], .fn = read_state};
    }
    for (int call = 0; call < 30; call++) {
        sp_results *res = NULL;
        assert_int_equal(sp_pool_run(pool, t, 12, NULL, &res), 0);
        for (size_t i = 0; i < 12; i++) {
            const sp_entry *e = sp_results_at(res, i);
            if (sp_entry_kind(e) != SP_KIND_OK)
                fail_msg("%s: %s", sp_entry_key(e), sp_entry_message(e));
        }
        sp_results_free(res);
    }
    /* Set-up ran once per worker, not per call. */
    assert_int_equal(atomic_load(&cnt->setups), (int)workers);
    sp_pool_free(pool);
    assert_int_equal(atomic_load(&cnt->teardowns), (int)workers);
    assert_int_equal(atomic_load(&cnt->states_bad), 0);
    assert_int_equal(test_open_fds(), fds);
    /* Outside a pool there is no worker state. */
    sp_results *res = NULL;
    sp_options o = test_opts();
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 0)), SP_KIND_FAILED);
    assert_string_equal(sp_entry_message(sp_results_at(res, 0)),
                        "no worker state");
    sp_results_free(res);
}

static void test_failing_setup(void **state)
{
    (void)state;
    warm_up();
    reset();
    int fds = test_open_fds(), threads = threads_now();
    unsigned fail_at = test_backend == SP_BACKEND_SERIAL ? 0 : 1;
    atomic_store(&cnt->setup_fail_at, (int)fail_at);
    sp_pool_options po = pool_opts(3);
    po.setup = setup_fn;
    po.teardown = teardown_fn;
    sp_pool *pool = (sp_pool *)&po; /* must be reset to NULL */
    assert_int_equal(sp_pool_create(&po, &pool), SP_ESETUP);
    assert_null(pool);
    char want[64];
    snprintf(want, sizeof want, "worker %u", fail_at);
    if (!strstr(sp_last_error(), want) || !strstr(sp_last_error(), "7"))
        fail_msg("unclear message: %s", sp_last_error());
    /* Every worker whose set-up succeeded was torn down. */
    assert_int_equal(atomic_load(&cnt->teardowns), atomic_load(&cnt->setups));
    assert_int_equal(test_open_fds(), fds);
    assert_int_equal(threads_settled(threads), threads);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_bad_options(void **state)
{
    (void)state;
    sp_pool *pool = NULL;
    assert_int_equal(sp_pool_create(NULL, NULL), SP_EINVAL);
    sp_pool_options po = pool_opts(SP_MAX_WORKERS + 1);
    assert_int_equal(sp_pool_create(&po, &pool), SP_EOPTION);
    po = pool_opts(1);
    po.reserved[3] = 1;
    assert_int_equal(sp_pool_create(&po, &pool), SP_ENOTSUP);
    po = pool_opts(1);
    po.backend = (sp_backend)42;
    assert_int_equal(sp_pool_create(&po, &pool), SP_EOPTION);
    assert_null(pool);
}

/* ---- concurrency --------------------------------------------------------- */

static int counted(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    int now = atomic_fetch_add(&cnt->running, 1) + 1;
    int max = atomic_load(&cnt->max_running);
    while (now > max &&
           !atomic_compare_exchange_weak(&cnt->max_running, &max, now))
        ;
    atomic_fetch_add(&cnt->started, 1);
    test_sleep_ms(1);
    atomic_fetch_sub(&cnt->running, 1);
    return sp_set_result_str(ctx, "ok");
}

struct caller {
    pthread_t th;
    sp_pool *pool;
    unsigned per_call_cap;
    int calls;
    int failures;
};

static void *caller_main(void *arg)
{
    struct caller *c = arg;
    sp_task t[4];
    char keys[4][24];
    for (size_t i = 0; i < 4; i++) {
        snprintf(keys[i], sizeof keys[i], "c%zu", i);
        t[i] = (sp_task){.key = keys[i], .fn = counted};
    }
    sp_options o = {0};
    o.max_workers = c->per_call_cap;
    for (int k = 0; k < c->calls; k++) {
        sp_results *res = NULL;
        if (sp_pool_run(c->pool, t, 4, &o, &res) != 0 ||
            sp_results_ok(res) != 4)
            c->failures++;
        sp_results_free(res);
    }
    return NULL;
}

static void test_concurrent_callers_share_the_cap(void **state)
{
    (void)state;
    reset();
    sp_pool *pool = make_pool(3);
    struct caller c[8];
    for (int k = 0; k < 8; k++) {
        c[k] = (struct caller){.pool = pool, .calls = 10};
        assert_int_equal(pthread_create(&c[k].th, NULL, caller_main, &c[k]), 0);
    }
    for (int k = 0; k < 8; k++) {
        pthread_join(c[k].th, NULL);
        assert_int_equal(c[k].failures, 0);
    }
    assert_int_equal(atomic_load(&cnt->started), 8 * 10 * 4);
    assert_true(atomic_load(&cnt->max_running) <= (int)sp_pool_workers(pool));
    assert_true(atomic_load(&cnt->max_running) >= 1);

    /* max_workers in a call's options lowers its share. */
    reset();
    c[0] = (struct caller){.pool = pool, .calls = 10, .per_call_cap = 1};
    caller_main(&c[0]);
    assert_int_equal(c[0].failures, 0);
    assert_int_equal(atomic_load(&cnt->max_running), 1);
    sp_pool_free(pool);
}

/* ---- nested calls -------------------------------------------------------- */

static int nested(sp_ctx *ctx, void *arg)
{
    sp_pool *pool = arg;
    char keys[4][24];
    sp_task t[4];
    for (size_t i = 0; i < 4; i++) {
        snprintf(keys[i], sizeof keys[i], "%s.%zu", sp_ctx_key(ctx), i);
        t[i] = (sp_task){.key = keys[i], .fn = echo};
    }
    sp_results *res = NULL;
    int err = sp_pool_run(pool, t, 4, NULL, &res);
    if (err)
        return sp_fail(ctx, 1, "nested call: %s", sp_last_error());
    size_t ok = sp_results_ok(res);
    sp_results_free(res);
    return sp_set_resultf(ctx, "%zu", ok);
}

static void test_nested_calls(void **state)
{
    (void)state;
    /* More outer tasks than workers: every worker waits in a nested call
     * at some point, which would deadlock a pool that only waits. */
    sp_pool *pool = make_pool(2);
    char keys[6][24];
    sp_task t[6];
    for (size_t i = 0; i < 6; i++) {
        snprintf(keys[i], sizeof keys[i], "outer%zu", i);
        t[i] = (sp_task){.key = keys[i], .fn = nested, .arg = pool};
    }
    for (int call = 0; call < 10; call++) {
        sp_results *res = NULL;
        assert_int_equal(sp_pool_run(pool, t, 6, NULL, &res), 0);
        for (size_t i = 0; i < 6; i++) {
            const sp_entry *e = sp_results_at(res, i);
            if (sp_entry_kind(e) != SP_KIND_OK)
                fail_msg("%s: %s", sp_entry_key(e), sp_entry_message(e));
            assert_string_equal(sp_entry_str(e), "4");
        }
        sp_results_free(res);
    }
    sp_pool_free(pool);
}

/* ---- freeing ------------------------------------------------------------- */

static int free_own_pool(sp_ctx *ctx, void *arg)
{
    sp_pool_free(arg); /* must refuse: it would wait for itself */
    if (!strstr(sp_last_error(), "SP_EBUSY") &&
        !strstr(sp_last_error(), "itself"))
        return sp_fail(ctx, 1, "no SP_EBUSY: %s", sp_last_error());
    return sp_set_result_str(ctx, "refused");
}

static void test_free_from_own_task(void **state)
{
    (void)state;
    if (test_backend == SP_BACKEND_PROCESS)
        skip(); /* a worker process frees only its copy: see sp_pool(3) */
    sp_pool *pool = make_pool(2);
    sp_task t[] = {{.key = "suicide", .fn = free_own_pool, .arg = pool}};
    sp_results *res = NULL;
    assert_int_equal(sp_pool_run(pool, t, 1, NULL, &res), 0);
    assert_string_equal(sp_entry_str(sp_results_at(res, 0)), "refused");
    sp_results_free(res);
    /* Still usable. */
    char keys[3][24];
    sp_task *e = echo_table(3, keys);
    assert_int_equal(sp_pool_run(pool, e, 3, NULL, &res), 0);
    check_echo(res, 3);
    sp_results_free(res);
    free(e);
    sp_pool_free(pool);
}

static int slow(sp_ctx *ctx, void *arg)
{
    atomic_store(&cnt->call_started[(uintptr_t)arg], 1);
    test_sleep_ms(test_ms(20));
    return sp_set_result_str(ctx, "done");
}

struct inflight {
    pthread_t th;
    sp_pool *pool;
    uintptr_t index;
    int err;
    size_t ok;
};

static void *inflight_main(void *arg)
{
    struct inflight *f = arg;
    void *i = (void *)f->index;
    sp_task t[3] = {{.key = "a", .fn = slow, .arg = i},
                    {.key = "b", .fn = slow, .arg = i},
                    {.key = "c", .fn = slow, .arg = i}};
    sp_results *res = NULL;
    f->err = sp_pool_run(f->pool, t, 3, NULL, &res);
    f->ok = sp_results_ok(res);
    sp_results_free(res);
    return NULL;
}

static void test_free_waits_for_calls_in_flight(void **state)
{
    (void)state;
    warm_up();
    reset();
    int fds = test_open_fds(), threads = threads_now();
    sp_pool *pool = make_pool(4);
    /* Serial pools run one call at a time: one caller is in flight. */
    int callers = test_backend == SP_BACKEND_SERIAL ? 1 : 4;
    struct inflight f[4];
    for (int k = 0; k < callers; k++) {
        f[k] = (struct inflight){.pool = pool, .index = (uintptr_t)k};
        assert_int_equal(pthread_create(&f[k].th, NULL, inflight_main, &f[k]),
                         0);
    }
    /* Each call is in flight once one of its tasks started. */
    for (int k = 0; k < callers; k++)
        while (!atomic_load(&cnt->call_started[k]))
            test_sleep_ms(1);
    sp_pool_free(pool); /* waits for all of them */
    for (int k = 0; k < callers; k++) {
        pthread_join(f[k].th, NULL);
        assert_int_equal(f[k].err, 0);
        assert_int_equal(f[k].ok, 3);
    }
    /* Nothing of the pool is left. */
    assert_int_equal(test_open_fds(), fds);
    assert_int_equal(threads_settled(threads), threads);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* ---- process pools ------------------------------------------------------- */

static int crash_or_echo(sp_ctx *ctx, void *arg)
{
    if (arg)
        raise(SIGSEGV);
    return echo(ctx, NULL);
}

static void test_crashed_worker_is_replaced(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip(); /* a crash is only survivable in a worker process */
    reset();
    sp_pool_options po = pool_opts(2);
    po.setup = setup_fn;
    po.teardown = teardown_fn;
    sp_pool *pool = NULL;
    assert_int_equal(sp_pool_create(&po, &pool), 0);
    sp_task t[] = {{.key = "boom", .fn = crash_or_echo, .arg = (void *)1},
                   {.key = "a", .fn = crash_or_echo},
                   {.key = "b", .fn = crash_or_echo}};
    sp_results *res = NULL;
    assert_int_equal(sp_pool_run(pool, t, 3, NULL, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "boom")),
                     SP_KIND_CRASHED);
    assert_int_equal(sp_entry_signal(sp_results_get(res, "boom")), SIGSEGV);
    assert_int_equal(sp_results_ok(res), 2);
    sp_results_free(res);
    for (int call = 0; call < 5; call++) {
        assert_int_equal(sp_pool_run(pool, t + 1, 2, NULL, &res), 0);
        check_echo(res, 2);
        sp_results_free(res);
    }
    /* The replacement ran set-up again, with the same index. */
    assert_int_equal(atomic_load(&cnt->setups), 3);
    sp_pool_free(pool);
    /* The crashed worker never tore down. */
    assert_int_equal(atomic_load(&cnt->teardowns), 2);
    assert_int_equal(atomic_load(&cnt->states_bad), 0);
}

/* A lock that other threads of the caller hold across short sleeps, and
 * malloc, which they hammer: a worker forked from the caller while one of
 * them holds a lock would wait forever. Workers come from the fork server,
 * which the pool forked before these threads started. */
static pthread_mutex_t busy_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool hammer_stop;

static void *hammer(void *arg)
{
    (void)arg;
    while (!atomic_load(&hammer_stop)) {
        pthread_mutex_lock(&busy_lock);
        void *p = malloc(1000);
        test_sleep_ms(1);
        free(p);
        pthread_mutex_unlock(&busy_lock);
        free(malloc(4000));
    }
    return NULL;
}

static int take_the_lock(sp_ctx *ctx, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&busy_lock);
    char *p = malloc(100);
    pthread_mutex_unlock(&busy_lock);
    if (!p)
        return sp_fail(ctx, 1, "malloc");
    free(p);
    return sp_set_result_str(ctx, "ok");
}

static void test_workers_never_inherit_a_held_lock(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip(); /* only a fork can inherit a held lock */
    sp_pool *pool = make_pool(2);
    atomic_store(&hammer_stop, false);
    pthread_t th[4];
    for (int k = 0; k < 4; k++)
        assert_int_equal(pthread_create(&th[k], NULL, hammer, NULL), 0);
    sp_task t[8];
    char keys[8][24];
    for (size_t i = 0; i < 8; i++) {
        snprintf(keys[i], sizeof keys[i], "l%zu", i);
        t[i] = (sp_task){.key = keys[i], .fn = take_the_lock};
    }
    /* A task stuck on an inherited lock would come back TIMED_OUT. Every
     * 8th call crashes a worker, so replacements are forked meanwhile. */
    sp_options o = {0};
    o.task_timeout = 5.0 * test_scale();
    for (int call = 0; call < 40; call++) {
        sp_results *res = NULL;
        assert_int_equal(sp_pool_run(pool, t, 8, &o, &res), 0);
        for (size_t i = 0; i < 8; i++) {
            const sp_entry *e = sp_results_at(res, i);
            if (sp_entry_kind(e) != SP_KIND_OK)
                fail_msg("call %d, %s: %s %s", call, sp_entry_key(e),
                         sp_kind_name(sp_entry_kind(e)), sp_entry_message(e));
        }
        sp_results_free(res);
        if (call % 8 == 7) { /* a crash: the replacement comes from the
                                server, never from this busy process */
            sp_task boom = {
                .key = "boom", .fn = crash_or_echo, .arg = (void *)1};
            assert_int_equal(sp_pool_run(pool, &boom, 1, NULL, &res), 0);
            assert_int_equal(sp_entry_kind(sp_results_at(res, 0)),
                             SP_KIND_CRASHED);
            sp_results_free(res);
        }
    }
    atomic_store(&hammer_stop, true);
    for (int k = 0; k < 4; k++)
        pthread_join(th[k], NULL);
    sp_pool_free(pool);
}

/* ---- every outcome on a pool --------------------------------------------- */

/* arg: what to do. */
enum { DO_OK, DO_FAIL, DO_RETURN, DO_SEGV, DO_EXIT };

static int outcome_task(sp_ctx *ctx, void *arg)
{
    switch ((int)(uintptr_t)arg) {
    case DO_FAIL:
        return sp_fail(ctx, 42, "failed on purpose: %s", sp_ctx_key(ctx));
    case DO_RETURN:
        return 5;
    case DO_SEGV:
        raise(SIGSEGV);
        return 0;
    case DO_EXIT:
        _exit(3);
    default:
        return sp_set_resultf(ctx, "ok %s", sp_ctx_key(ctx));
    }
}

static void test_outcomes_on_a_pool(void **state)
{
    (void)state;
    reset();
    sp_pool_options po = pool_opts(2);
    po.setup = setup_fn;
    po.teardown = teardown_fn;
    sp_pool *pool = NULL;
    assert_int_equal(sp_pool_create(&po, &pool), 0);
    bool proc = test_backend == SP_BACKEND_PROCESS;
    sp_task t[] = {
        {.key = "ok", .fn = outcome_task, .arg = (void *)DO_OK},
        {.key = "fail", .fn = outcome_task, .arg = (void *)DO_FAIL},
        {.key = "ret", .fn = outcome_task, .arg = (void *)DO_RETURN},
        {.key = "segv", .fn = outcome_task, .arg = (void *)DO_SEGV},
        {.key = "exit", .fn = outcome_task, .arg = (void *)DO_EXIT},
    };
    size_t n = proc ? 5 : 3; /* crashes are survivable in processes only */
    for (int call = 0; call < 4; call++) {
        sp_results *res = NULL;
        assert_int_equal(sp_pool_run(pool, t, n, NULL, &res), 0);
        const sp_entry *e = sp_results_get(res, "ok");
        assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
        assert_string_equal(sp_entry_str(e), "ok ok");
        e = sp_results_get(res, "fail");
        assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
        assert_int_equal(sp_entry_code(e), 42);
        assert_string_equal(sp_entry_message(e), "failed on purpose: fail");
        e = sp_results_get(res, "ret");
        assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
        assert_int_equal(sp_entry_code(e), 5);
        if (proc) {
            e = sp_results_get(res, "segv");
            assert_int_equal(sp_entry_kind(e), SP_KIND_CRASHED);
            assert_int_equal(sp_entry_signal(e), SIGSEGV);
            assert_int_equal(sp_entry_code(e), SP_ECRASHED);
            e = sp_results_get(res, "exit");
            assert_int_equal(sp_entry_kind(e), SP_KIND_CRASHED);
            assert_int_equal(sp_entry_exit_status(e), 3);
        }
        for (size_t i = 0; i < n; i++)
            assert_true(sp_entry_worker(sp_results_at(res, i)) <
                        sp_pool_workers(pool));
        sp_results_free(res);
    }
    sp_pool_free(pool);
    assert_int_equal(atomic_load(&cnt->states_bad), 0);
    if (proc) {
        /* Two workers died per call and were replaced, set-up and all; the
         * replacements' set-up ran before they took a task, and each live
         * worker tore down once. */
        assert_true(atomic_load(&cnt->setups) >= 2 + 2 * 3);
        assert_int_equal(atomic_load(&cnt->teardowns), 2);
    }
}

/* ---- dependencies that fail: SKIPPED ------------------------------------- */

static void test_skipped_on_a_pool(void **state)
{
    (void)state;
    sp_pool *pool = make_pool(2);
    const char *after_fail[] = {"fail", NULL};
    const char *after_dep[] = {"dep", NULL};
    sp_task t[] = {
        {.key = "fail", .fn = outcome_task, .arg = (void *)DO_FAIL},
        {.key = "dep", .fn = outcome_task, .after = after_fail},
        {.key = "dep2", .fn = outcome_task, .after = after_dep},
        {.key = "free", .fn = outcome_task},
    };
    for (int call = 0; call < 5; call++) {
        sp_results *res = NULL;
        assert_int_equal(sp_pool_run(pool, t, 4, NULL, &res), 0);
        assert_int_equal(sp_entry_kind(sp_results_get(res, "fail")),
                         SP_KIND_FAILED);
        assert_int_equal(sp_entry_kind(sp_results_get(res, "dep")),
                         SP_KIND_SKIPPED);
        assert_int_equal(sp_entry_kind(sp_results_get(res, "dep2")),
                         SP_KIND_SKIPPED);
        assert_int_equal(sp_entry_kind(sp_results_get(res, "free")),
                         SP_KIND_OK);
        sp_results_free(res);
    }
    sp_pool_free(pool);
}

/* ---- argument bytes, results and spawning with data ---------------------- */

/* Echoes its argument bytes reversed; "spawn" rows spawn a child carrying
 * bytes of their own, which depends on a sibling and reads its result. */
static int bytes_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t len = 0;
    const unsigned char *d = sp_ctx_data(ctx, &len);
    if (!d || !len)
        return sp_fail(ctx, 1, "no argument bytes");
    unsigned char *out = malloc(len);
    if (!out)
        return sp_fail(ctx, SP_ENOMEM, "malloc");
    for (size_t k = 0; k < len; k++)
        out[k] = d[len - 1 - k];
    int rc = sp_set_result(ctx, out, len);
    free(out);
    return rc;
}

static int child_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t len = 0, dlen = 0;
    const char *d = sp_ctx_data(ctx, &len);
    const char *dep = sp_dep_result(ctx, "b0", &dlen);
    if (!d || !dep)
        return sp_fail(ctx, 1, "data %p dep %p", (const void *)d,
                       (const void *)dep);
    return sp_set_resultf(ctx, "%.*s+%.*s", (int)len, d, (int)dlen, dep);
}

static int spawn_with_bytes(sp_ctx *ctx, void *arg)
{
    (void)arg;
    static const char *after[] = {"b0", NULL};
    sp_task child = {.key = "child",
                     .fn = child_task,
                     .data = "payload",
                     .len = 7,
                     .after = after};
    return sp_spawn(ctx, &child);
}

static void test_bytes_on_a_pool(void **state)
{
    (void)state;
    sp_pool *pool = make_pool(2);
    /* Allocated after the pool (and its fork server) exists. */
    enum { N = 24 };
    char keys[N][16];
    unsigned char *bufs[N];
    sp_task t[N + 1];
    for (size_t i = 0; i < N; i++) {
        size_t len = 1 + i * 997; /* up to 22 KiB */
        bufs[i] = malloc(len);
        assert_non_null(bufs[i]);
        for (size_t k = 0; k < len; k++)
            bufs[i][k] = (unsigned char)(k * 7 + i);
        snprintf(keys[i], sizeof keys[i], "b%u", (unsigned)i);
        t[i] = (sp_task){
            .key = keys[i], .fn = bytes_task, .data = bufs[i], .len = len};
    }
    t[N] = (sp_task){.key = "spawner", .fn = spawn_with_bytes};
    for (int call = 0; call < 5; call++) {
        sp_results *res = NULL;
        assert_int_equal(sp_pool_run(pool, t, N + 1, NULL, &res), 0);
        for (size_t i = 0; i < N; i++) {
            const sp_entry *e = sp_results_at(res, i);
            if (sp_entry_kind(e) != SP_KIND_OK)
                fail_msg("%s: %s", sp_entry_key(e), sp_entry_message(e));
            size_t len = 0;
            const unsigned char *r = sp_entry_data(e, &len);
            assert_int_equal(len, t[i].len);
            for (size_t k = 0; k < len; k++)
                if (r[k] != bufs[i][len - 1 - k])
                    fail_msg("%s: byte %zu", keys[i], k);
        }
        const sp_entry *c = sp_results_get(res, "child");
        assert_non_null(c);
        if (sp_entry_kind(c) != SP_KIND_OK)
            fail_msg("child: %s", sp_entry_message(c));
        char want[8];
        want[0] = 0;
        snprintf(want, sizeof want, "payload");
        assert_int_equal(strncmp(sp_entry_str(c), want, 7), 0);
        assert_int_equal(sp_entry_str(c)[7], '+');
        assert_int_equal((unsigned char)sp_entry_str(c)[8], bufs[0][0]);
        sp_results_free(res);
    }
    for (size_t i = 0; i < N; i++)
        free(bufs[i]);
    sp_pool_free(pool);
}

/* ---- the completion callback --------------------------------------------- */

struct done_log {
    pthread_t caller;
    int calls, wrong_thread, stop_after;
};

static int on_done_count(const sp_entry *e, void *arg)
{
    (void)e;
    struct done_log *l = arg;
    if (!pthread_equal(pthread_self(), l->caller))
        l->wrong_thread++;
    return ++l->calls == l->stop_after;
}

static int sleepy(sp_ctx *ctx, void *arg)
{
    (void)arg;
    test_sleep_ms(2);
    return sp_set_result_str(ctx, "slept");
}

static void test_on_done_on_a_pool(void **state)
{
    (void)state;
    sp_pool *pool = make_pool(2);
    char keys[16][16];
    sp_task t[16];
    for (size_t i = 0; i < 16; i++) {
        snprintf(keys[i], sizeof keys[i], "d%u", (unsigned)i);
        t[i] = (sp_task){.key = keys[i], .fn = sleepy};
    }
    for (int call = 0; call < 5; call++) {
        struct done_log l = {.caller = pthread_self()};
        sp_options o = {0};
        o.on_done = on_done_count;
        o.on_done_arg = &l;
        sp_results *res = NULL;
        assert_int_equal(sp_pool_run(pool, t, 16, &o, &res), 0);
        assert_int_equal(l.calls, 16);
        assert_int_equal(l.wrong_thread, 0);
        assert_int_equal(sp_results_ok(res), 16);
        sp_results_free(res);
    }
    /* A callback that asks to stop: nothing starts afterwards. */
    struct done_log l = {.caller = pthread_self(), .stop_after = 1};
    sp_options o = {0};
    o.on_done = on_done_count;
    o.on_done_arg = &l;
    o.max_workers = 1;
    sp_results *res = NULL;
    assert_int_equal(sp_pool_run(pool, t, 16, &o, &res), 0);
    assert_int_equal(l.calls, 16); /* every key, cancelled ones too */
    assert_true(sp_results_count_kind(res, SP_KIND_CANCELLED) >= 8);
    assert_int_equal(
        sp_results_ok(res) + sp_results_count_kind(res, SP_KIND_CANCELLED), 16);
    sp_results_free(res);
    /* The pool is fine afterwards. */
    assert_int_equal(sp_pool_run(pool, t, 16, NULL, &res), 0);
    assert_int_equal(sp_results_ok(res), 16);
    sp_results_free(res);
    sp_pool_free(pool);
}

/* ---- fail-fast with concurrent callers ----------------------------------- */

struct ff_caller {
    pthread_t th;
    sp_pool *pool;
    bool fail_fast;
    int bad;
};

static int ff_task(sp_ctx *ctx, void *arg)
{
    if (arg)
        return sp_fail(ctx, 9, "the failing one");
    test_sleep_ms(1);
    return sp_set_result_str(ctx, "fine");
}

static void *ff_main(void *arg)
{
    struct ff_caller *c = arg;
    char keys[12][24];
    sp_task t[12];
    for (size_t i = 0; i < 12; i++) {
        snprintf(keys[i], sizeof keys[i], "f%u", (unsigned)i);
        t[i] = (sp_task){.key = keys[i],
                         .fn = ff_task,
                         .arg = c->fail_fast && i == 0 ? (void *)1 : NULL};
    }
    sp_options o = {0};
    o.on_error = c->fail_fast ? SP_POLICY_FAIL_FAST : SP_POLICY_COLLECT_ALL;
    o.max_workers = 1; /* in table order: the failure comes first */
    for (int call = 0; call < 8; call++) {
        sp_results *res = NULL;
        if (sp_pool_run(c->pool, t, 12, &o, &res)) {
            c->bad++;
            continue;
        }
        if (c->fail_fast) {
            /* The failure stops its own call, and only its call. */
            c->bad += sp_entry_kind(sp_results_at(res, 0)) != SP_KIND_FAILED ||
                      sp_results_count_kind(res, SP_KIND_CANCELLED) < 8 ||
                      sp_results_count(res) != 12;
        } else {
            c->bad += sp_results_ok(res) != 12;
        }
        sp_results_free(res);
    }
    return NULL;
}

static void test_fail_fast_with_concurrent_callers(void **state)
{
    (void)state;
    if (test_backend == SP_BACKEND_SERIAL)
        skip(); /* calls take turns: nothing is concurrent */
    sp_pool *pool = make_pool(3);
    struct ff_caller c[6];
    for (int k = 0; k < 6; k++) {
        c[k] = (struct ff_caller){.pool = pool, .fail_fast = k % 2 == 0};
        assert_int_equal(pthread_create(&c[k].th, NULL, ff_main, &c[k]), 0);
    }
    for (int k = 0; k < 6; k++) {
        pthread_join(c[k].th, NULL);
        assert_int_equal(c[k].bad, 0);
    }
    sp_pool_free(pool);
}

/* ---- process pools: time limits, lost workers ---------------------------- */

static int hang(sp_ctx *ctx, void *arg)
{
    (void)arg;
    for (;;) /* ignores sp_cancelled(): only a kill ends it */
        test_sleep_ms(10);
    return sp_set_result_str(ctx, "never");
}

static void test_time_limits_on_a_process_pool(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip(); /* threads cannot be killed */
    warm_up();
    reset();
    int fds = test_open_fds(), threads = threads_now();
    sp_pool_options po = pool_opts(2);
    po.setup = setup_fn;
    po.teardown = teardown_fn;
    sp_pool *pool = NULL;
    assert_int_equal(sp_pool_create(&po, &pool), 0);
    char keys[6][24];
    sp_task *clean = echo_table(6, keys);
    sp_task t[] = {{.key = "hang", .fn = hang}, {.key = "quick", .fn = echo}};

    /* task_timeout: the hanging task's worker is killed and replaced. */
    sp_options o = {0};
    o.task_timeout = 0.2 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(sp_pool_run(pool, t, 2, &o, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "hang")),
                     SP_KIND_TIMED_OUT);
    assert_int_equal(sp_entry_code(sp_results_get(res, "hang")), SP_ETIMEDOUT);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "quick")), SP_KIND_OK);
    sp_results_free(res);
    assert_int_equal(sp_pool_run(pool, clean, 6, NULL, &res), 0);
    check_echo(res, 6);
    sp_results_free(res);

    /* The deadline: the running task is killed, the rest never start. */
    o = (sp_options){0};
    o.deadline = 0.2 * test_scale();
    o.max_workers = 1;
    sp_task d[] = {{.key = "hang", .fn = hang},
                   {.key = "later1", .fn = echo},
                   {.key = "later2", .fn = echo}};
    assert_int_equal(sp_pool_run(pool, d, 3, &o, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "hang")),
                     SP_KIND_TIMED_OUT);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "later1")),
                     SP_KIND_CANCELLED);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "later2")),
                     SP_KIND_CANCELLED);
    sp_results_free(res);
    for (int call = 0; call < 3; call++) {
        assert_int_equal(sp_pool_run(pool, clean, 6, NULL, &res), 0);
        check_echo(res, 6);
        sp_results_free(res);
    }
    /* Two workers were killed and replaced: four set-ups in all. */
    assert_int_equal(atomic_load(&cnt->setups), 4);
    sp_pool_free(pool);
    assert_int_equal(atomic_load(&cnt->teardowns), 2);
    assert_int_equal(atomic_load(&cnt->states_bad), 0);
    free(clean);
    assert_int_equal(test_open_fds(), fds);
    assert_int_equal(threads_settled(threads), threads);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* From cnt->setup_fail_at == -2 on, every set-up fails. */
static int setup_until(unsigned worker, void *user, void **state)
{
    (void)user;
    (void)state;
    if (atomic_load(&cnt->setup_fail_at) == -2)
        return 11;
    atomic_fetch_add(&cnt->setups, 1);
    return (int)(worker * 0); /* 0 */
}

static void test_lost_workers_on_a_process_pool(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip(); /* only worker processes die and get replaced */
    warm_up();
    reset();
    int fds = test_open_fds();
    sp_pool_options po = pool_opts(2);
    po.setup = setup_until;
    sp_pool *pool = NULL;
    assert_int_equal(sp_pool_create(&po, &pool), 0);
    assert_int_equal(atomic_load(&cnt->setups), 2);
    atomic_store(&cnt->setup_fail_at, -2); /* replacements fail from now */
    char keys[6][24];
    sp_task *clean = echo_table(6, keys);
    sp_task boom = {.key = "boom", .fn = crash_or_echo, .arg = (void *)1};
    sp_results *res = NULL;

    /* One worker lost: the pool goes on with the other. */
    assert_int_equal(sp_pool_run(pool, &boom, 1, NULL, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 0)), SP_KIND_CRASHED);
    sp_results_free(res);
    for (int call = 0; call < 3; call++) {
        assert_int_equal(sp_pool_run(pool, clean, 6, NULL, &res), 0);
        check_echo(res, 6);
        sp_results_free(res);
    }
    /* Both lost: tasks come back CANCELLED with SP_ESETUP. */
    assert_int_equal(sp_pool_run(pool, &boom, 1, NULL, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 0)), SP_KIND_CRASHED);
    sp_results_free(res);
    for (int call = 0; call < 2; call++) {
        assert_int_equal(sp_pool_run(pool, clean, 6, NULL, &res), 0);
        assert_int_equal(sp_results_count_kind(res, SP_KIND_CANCELLED), 6);
        for (size_t i = 0; i < 6; i++) {
            const sp_entry *e = sp_results_at(res, i);
            assert_int_equal(sp_entry_code(e), SP_ESETUP);
            if (!strstr(sp_entry_message(e), "set-up of worker") ||
                !strstr(sp_entry_message(e), "returned 11"))
                fail_msg("unclear message: %s", sp_entry_message(e));
        }
        sp_results_free(res);
    }
    assert_int_equal(atomic_load(&cnt->setups), 2);
    sp_pool_free(pool);
    free(clean);
    assert_int_equal(test_open_fds(), fds);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* ---- process pools: hostile tasks ---------------------------------------- */

static void count_run(sp_ctx *ctx)
{
    size_t i = sp_ctx_index(ctx);
    if (i < 64)
        atomic_fetch_add(&cnt->runs[i], 1);
}

/* What a hostile task does; the expected outcome is in the table below. */
enum {
    H_NORMAL,
    H_SEGV,
    H_ABORT,
    H_EXIT3,
    H_EXIT0,
    H_SIGKILL,
    H_SPIN,
    H_CLOSE_FDS,
    H_REPLACE_FDS,
    H_GARBAGE,
    H_HELPER,
    H_BIG,
    H_MINUS_ONE,
    H_LONG_MESSAGE,
};

#define H_BIG_LEN ((size_t)4 << 20)

static int hostile(sp_ctx *ctx, void *arg)
{
    count_run(ctx);
    switch ((int)(uintptr_t)arg) {
    case H_SEGV: {
        volatile uintptr_t addr = 64;
        *(volatile int *)addr = 1;
        return 0;
    }
    case H_ABORT:
        abort();
    case H_EXIT3:
        exit(3);
    case H_EXIT0:
        _exit(0);
    case H_SIGKILL:
        kill(getpid(), SIGKILL);
        pause();
        return 0;
    case H_SPIN:
        for (volatile unsigned long n = 0;; n++)
            ;
    case H_CLOSE_FDS:
        for (int fd = 0; fd < 1024; fd++)
            close(fd);
        return sp_set_result_str(ctx, "closed everything");
    case H_REPLACE_FDS: {
        int null = open("/dev/null", O_RDWR);
        for (int fd = 0; fd < 1024; fd++)
            if (fd != null)
                dup2(null, fd);
        return sp_set_result_str(ctx, "replaced everything");
    }
    case H_GARBAGE: {
        unsigned char junk[4096];
        memset(junk, 0xa5, sizeof junk);
        for (int fd = 3; fd < 1024; fd++) { /* not the test's output */
            ssize_t w = write(fd, junk, sizeof junk);
            (void)w;
        }
        return sp_set_result_str(ctx, "wrote garbage");
    }
    case H_HELPER: {
        pid_t pid = fork(); /* keeps the worker's descriptors */
        if (pid == 0) {
            for (int k = 0; k < 30; k++)
                sleep(1);
            _exit(0);
        }
        return sp_set_result_str(ctx, "helper started");
    }
    case H_BIG: {
        unsigned char *p = malloc(H_BIG_LEN);
        if (!p)
            return sp_fail(ctx, 1, "malloc");
        for (size_t k = 0; k < H_BIG_LEN; k++)
            p[k] = (unsigned char)(k * 7);
        int rc = sp_set_result(ctx, p, H_BIG_LEN);
        free(p);
        return rc;
    }
    case H_MINUS_ONE:
        return -1;
    case H_LONG_MESSAGE: {
        char *msg = malloc(200001);
        if (!msg)
            return sp_fail(ctx, 1, "malloc");
        for (size_t k = 0; k < 200000; k++)
            msg[k] = (char)('a' + k % 26);
        msg[200000] = 0;
        int rc = sp_fail(ctx, 7, "%s", msg);
        free(msg);
        return rc;
    }
    default:
        return sp_set_resultf(ctx, "normal %s", sp_ctx_key(ctx));
    }
}

static void test_hostile_tasks_on_a_process_pool(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip(); /* these end their worker: processes only */
    warm_up();
    reset();
    int fds = test_open_fds();
    static const struct {
        const char *key;
        int what;
        sp_kind kind; /* expected */
        int sig;      /* CRASHED by a signal */
        int status;   /* CRASHED by an exit, -1 = not */
    } bad[] = {
        {"segv", H_SEGV, SP_KIND_CRASHED, SIGSEGV, -1},
        {"abort", H_ABORT, SP_KIND_CRASHED, SIGABRT, -1},
        {"exit3", H_EXIT3, SP_KIND_CRASHED, 0, 3},
        {"_exit0", H_EXIT0, SP_KIND_CRASHED, 0, 0},
        {"sigkill", H_SIGKILL, SP_KIND_CRASHED, SIGKILL, -1},
        {"spin", H_SPIN, SP_KIND_TIMED_OUT, 0, -1},
        {"close-fds", H_CLOSE_FDS, SP_KIND_OK, 0, -1},
        {"replace-fds", H_REPLACE_FDS, SP_KIND_OK, 0, -1},
        {"garbage", H_GARBAGE, SP_KIND_CRASHED, 0, -1},
        {"helper", H_HELPER, SP_KIND_OK, 0, -1},
        {"big", H_BIG, SP_KIND_OK, 0, -1},
        {"minus-one", H_MINUS_ONE, SP_KIND_FAILED, 0, -1},
        {"long-message", H_LONG_MESSAGE, SP_KIND_FAILED, 0, -1},
    };
    enum { NB = sizeof bad / sizeof bad[0], NORMAL = 20, N = NB + NORMAL };
    sp_task t[N];
    char keys[NORMAL][16];
    size_t n = 0;
    for (size_t i = 0; i < NORMAL; i++) {
        snprintf(keys[i], sizeof keys[i], "normal%u", (unsigned)i);
        t[n++] = (sp_task){.key = keys[i], .fn = hostile};
        if (i < NB)
            t[n++] = (sp_task){.key = bad[i].key,
                               .fn = hostile,
                               .arg = (void *)(uintptr_t)bad[i].what};
    }
    sp_pool *pool = make_pool(4);
    for (int round = 0; round < 3; round++) {
        memset((void *)cnt->runs, 0, sizeof cnt->runs);
        sp_options o = {0};
        o.task_timeout = 0.5 * test_scale();
        sp_results *res = NULL;
        assert_int_equal(sp_pool_run(pool, t, N, &o, &res), 0);
        assert_int_equal(sp_results_count(res), N);
        for (size_t i = 0; i < N; i++) {
            const sp_entry *e = sp_results_at(res, i);
            unsigned runs = atomic_load(&cnt->runs[i]);
            if (runs != 1)
                fail_msg("round %d: %s ran %u times", round, sp_entry_key(e),
                         runs);
        }
        for (size_t i = 0; i < NORMAL; i++) {
            const sp_entry *e = sp_results_get(res, keys[i]);
            char want[32];
            snprintf(want, sizeof want, "normal %.15s", keys[i]);
            if (sp_entry_kind(e) != SP_KIND_OK)
                fail_msg("round %d: %s came back %s: %s", round, keys[i],
                         sp_kind_name(sp_entry_kind(e)), sp_entry_message(e));
            assert_string_equal(sp_entry_str(e), want);
        }
        for (size_t b = 0; b < NB; b++) {
            const sp_entry *e = sp_results_get(res, bad[b].key);
            sp_kind k = sp_entry_kind(e);
            /* The garbage writer may get its own result through before
             * its garbage is read; otherwise it costs only itself. */
            if (bad[b].what == H_GARBAGE && k == SP_KIND_OK)
                continue;
            if (k != bad[b].kind)
                fail_msg("round %d: %s came back %s, not %s: %s", round,
                         bad[b].key, sp_kind_name(k), sp_kind_name(bad[b].kind),
                         sp_entry_message(e));
            if (bad[b].sig)
                assert_int_equal(sp_entry_signal(e), bad[b].sig);
            if (bad[b].status >= 0)
                assert_int_equal(sp_entry_exit_status(e), bad[b].status);
        }
        const sp_entry *e = sp_results_get(res, "big");
        size_t len = 0;
        const unsigned char *p = sp_entry_data(e, &len);
        assert_int_equal(len, H_BIG_LEN);
        for (size_t k = 0; k < len; k += 4093)
            assert_int_equal(p[k], (unsigned char)(k * 7));
        assert_int_equal(
            strlen(sp_entry_message(sp_results_get(res, "long-message"))),
            200000);
        sp_results_free(res);
    }
    /* Still whole: a clean call on every worker. */
    char ekeys[16][24];
    sp_task *clean = echo_table(16, ekeys);
    sp_results *res = NULL;
    assert_int_equal(sp_pool_run(pool, clean, 16, NULL, &res), 0);
    check_echo(res, 16);
    sp_results_free(res);
    free(clean);
    sp_pool_free(pool);
    assert_int_equal(test_open_fds(), fds);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* ---- worker state stays with its worker ---------------------------------- */

static int state_is_null(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_ctx_worker_state(ctx) ? sp_fail(ctx, 1, "a worker state")
                                    : sp_set_result_str(ctx, "none");
}

/* Has its worker's state, and a one-shot process call it makes does not
 * hand it on to its own workers. */
static int state_then_nested(sp_ctx *ctx, void *arg)
{
    (void)arg;
    if (!sp_ctx_worker_state(ctx))
        return sp_fail(ctx, 1, "no worker state");
    sp_task t = {.key = "inner", .fn = state_is_null};
    sp_options o = {0};
    o.backend = SP_BACKEND_PROCESS;
    sp_results *res = NULL;
    if (simple_parallel(&t, 1, &o, &res))
        return sp_fail(ctx, 2, "nested: %s", sp_last_error());
    const sp_entry *e = sp_results_at(res, 0);
    int rc = sp_entry_kind(e) == SP_KIND_OK
                 ? sp_set_result_str(ctx, sp_entry_str(e))
                 : sp_fail(ctx, 3, "inner: %s", sp_entry_message(e));
    sp_results_free(res);
    return rc;
}

static void test_worker_state_stays_in_its_worker(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip(); /* a one-shot process call forks from the worker */
    reset();
    sp_pool_options po = pool_opts(2);
    po.setup = setup_fn;
    po.teardown = teardown_fn;
    sp_pool *pool = NULL;
    assert_int_equal(sp_pool_create(&po, &pool), 0);
    sp_task t[] = {{.key = "a", .fn = state_then_nested},
                   {.key = "b", .fn = state_then_nested}};
    sp_results *res = NULL;
    assert_int_equal(sp_pool_run(pool, t, 2, NULL, &res), 0);
    for (size_t i = 0; i < 2; i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (sp_entry_kind(e) != SP_KIND_OK)
            fail_msg("%s: %s", sp_entry_key(e), sp_entry_message(e));
        assert_string_equal(sp_entry_str(e), "none");
    }
    sp_results_free(res);
    sp_pool_free(pool);
}

/* ---- retries, per-task limits ------------------------------------------- */

/* Fails its first two attempts (crashes them on a process pool), then
 * says which attempt it is. */
static int third_time_lucky(sp_ctx *ctx, void *arg)
{
    (void)arg;
    unsigned a = sp_ctx_attempt(ctx);
    if (a < 3) {
        if (test_backend == SP_BACKEND_PROCESS && a == 2)
            raise(SIGSEGV);
        return sp_fail(ctx, 4, "attempt %u failed", a);
    }
    return sp_set_resultf(ctx, "attempt %u", a);
}

static int naps(sp_ctx *ctx, void *arg)
{
    /* Long enough to pass a short limit; returns early when asked. */
    for (unsigned ms = 0; ms < (unsigned)(uintptr_t)arg; ms++) {
        if (sp_cancelled(ctx))
            return sp_fail(ctx, 8, "stopped after %u ms", ms);
        test_sleep_ms(1);
    }
    return sp_set_result_str(ctx, "napped");
}

static void test_retries_and_limits_on_a_pool(void **state)
{
    (void)state;
    sp_pool *pool = make_pool(2);
    sp_task_policy retry3 = {.retries = 3, .retry_delay = 0.01};
    sp_task_policy short_limit = {.time_limit = 0.05 * test_scale()};
    sp_task t[] = {
        {.key = "lucky", .fn = third_time_lucky, .policy = &retry3},
        {.key = "once", .fn = third_time_lucky},
        /* In a process the time limit kills: a task that never looks. */
        {.key = "short",
         .fn = test_backend == SP_BACKEND_PROCESS ? hang : naps,
         .arg = (void *)5000,
         .policy = &short_limit},
        {.key = "plain", .fn = echo},
    };
    for (int call = 0; call < 3; call++) {
        sp_options o = {0};
        o.task_timeout = 20 * test_scale();
        sp_results *res = NULL;
        assert_int_equal(sp_pool_run(pool, t, 4, &o, &res), 0);
        const sp_entry *e = sp_results_get(res, "lucky");
        if (sp_entry_kind(e) != SP_KIND_OK)
            fail_msg("lucky: %s", sp_entry_message(e));
        assert_string_equal(sp_entry_str(e), "attempt 3");
        assert_int_equal(sp_entry_attempts(e), 3);
        /* Every attempt, on a pool's workers (the second crashed its
         * process on a process pool, which replaced it). */
        const sp_entry *a1 = sp_entry_attempt(e, 1),
                       *a2 = sp_entry_attempt(e, 2);
        assert_int_equal(sp_entry_kind(a1), SP_KIND_FAILED);
        assert_string_equal(sp_entry_message(a1), "attempt 1 failed");
        assert_int_equal(sp_entry_kind(a2), test_backend == SP_BACKEND_PROCESS
                                                ? SP_KIND_CRASHED
                                                : SP_KIND_FAILED);
        assert_true(sp_entry_worker(a1) < 2 && sp_entry_worker(a2) < 2);
        assert_true(sp_entry_end(a1) <= sp_entry_start(a2));
        assert_true(sp_entry_end(a2) <= sp_entry_start(e));
        e = sp_results_get(res, "once"); /* no retries: its first failure */
        assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
        assert_int_equal(sp_entry_attempts(e), 1);
        assert_string_equal(sp_entry_message(e), "attempt 1 failed");
        e = sp_results_get(res, "short");
        assert_int_equal(sp_entry_kind(e), SP_KIND_TIMED_OUT);
        if (test_backend == SP_BACKEND_PROCESS) /* killed, not asked */
            assert_non_null(strstr(sp_entry_message(e), "its time_limit"));
        assert_int_equal(sp_entry_kind(sp_results_get(res, "plain")),
                         SP_KIND_OK);
        sp_results_free(res);
    }
    sp_pool_free(pool);
}

/* ---- the thread default: one per CPU, more while they block ------------- */

static int sleeper(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    test_sleep_ms(20);
    return 0;
}

static int spinner(sp_ctx *ctx, void *arg)
{
    (void)arg;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    volatile unsigned x = 0;
    do {
        for (int k = 0; k < 10000; k++)
            x = x * 31u + 7u;
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) <
             3000000L);
    return sp_set_resultf(ctx, "%u", x);
}

static void test_default_workers_adapt(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_THREAD)
        skip(); /* the adaptive default is the thread backend's */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    enum { N = 64 };
    sp_task t[N];
    char keys[N][24];
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "w%zu", i);
        t[i] = (sp_task){.key = keys[i], .fn = sleeper};
    }
    sp_options o = test_opts(); /* max_workers 0: the default */
    sp_results *res = NULL;
    /* Sleeping tasks: the workers block with tasks waiting, so more
     * start than there are CPUs. */
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), N);
    if (sp_results_workers(res) <= (unsigned)cpus)
        fail_msg("%u workers for 64 sleeping tasks on %ld CPUs",
                 sp_results_workers(res), cpus);
    sp_results_free(res);
    /* CPU-bound tasks keep about one worker per CPU (a loaded machine,
     * where workers wait for a CPU, may add a few; one thread per task
     * would be 64). Under valgrind, which runs one thread at a time and
     * makes the others wait for it, every worker looks blocked: not
     * checked there. */
    if (test_scale() > 1.0)
        return;
    for (size_t i = 0; i < N; i++)
        t[i].fn = spinner;
    assert_int_equal(simple_parallel(t, N, &o, &res), 0);
    assert_int_equal(sp_results_ok(res), N);
    if (sp_results_workers(res) > (unsigned)cpus + N / 4)
        fail_msg("%u workers for 64 CPU-bound tasks on %ld CPUs",
                 sp_results_workers(res), cpus);
    sp_results_free(res);
}

int main(int argc, char **argv)
{
    const char *group = test_init(argc, argv, "pool");
    if (!group)
        return 2;
    cnt = mmap(NULL, sizeof *cnt, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (cnt == MAP_FAILED)
        return 2;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_calls),
        cmocka_unit_test(test_graph_on_a_pool),
        cmocka_unit_test(test_setup_and_teardown),
        cmocka_unit_test(test_failing_setup),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_concurrent_callers_share_the_cap),
        cmocka_unit_test(test_nested_calls),
        cmocka_unit_test(test_free_from_own_task),
        cmocka_unit_test(test_free_waits_for_calls_in_flight),
        cmocka_unit_test(test_crashed_worker_is_replaced),
        cmocka_unit_test(test_workers_never_inherit_a_held_lock),
        cmocka_unit_test(test_default_workers_adapt),
        cmocka_unit_test(test_outcomes_on_a_pool),
        cmocka_unit_test(test_skipped_on_a_pool),
        cmocka_unit_test(test_bytes_on_a_pool),
        cmocka_unit_test(test_on_done_on_a_pool),
        cmocka_unit_test(test_fail_fast_with_concurrent_callers),
        cmocka_unit_test(test_time_limits_on_a_process_pool),
        cmocka_unit_test(test_lost_workers_on_a_process_pool),
        cmocka_unit_test(test_hostile_tasks_on_a_process_pool),
        cmocka_unit_test(test_worker_state_stays_in_its_worker),
        cmocka_unit_test(test_retries_and_limits_on_a_pool),
    };
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
