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
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* Private: end the shared pool's idle threads (backend/tpool.c), so that
 * thread counts compare. */
void sp_tpool_shared_trim(void);

struct counters {
    atomic_int setups, teardowns, setup_fail_at;
    atomic_int running, max_running, started;
    atomic_int states_bad;
    atomic_int call_started[4];
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
    assert_int_equal(threads_now(), threads);
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
    assert_int_equal(threads_now(), threads);
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
    };
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
