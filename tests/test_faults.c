/* SPDX-License-Identifier: MIT */
/* Fault injection: every allocation the library makes fails in turn, then
 * every thread creation, every fork, pipes (RLIMIT_NOFILE set low), and a
 * storm of EINTR. Each run must end in a clean error with nothing run, or
 * with every key accounted for; nothing leaks (the sanitizer and valgrind
 * runs of this suite check memory; descriptors and children are counted
 * here). Linked against the fault-injection build of the library. Every
 * backend. */
#define _DEFAULT_SOURCE /* setitimer */
#include "common.h"
#include "fault.h"
#include "backend/thread/tpool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

enum { N = 12 };
static char keys[N][8];
static sp_task table[N];
static size_t done_calls;

static int task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    atomic_fetch_add(&fi->started, 1);
    size_t i = sp_ctx_index(ctx);
    if (i % 3 == 0)
        return sp_fail(ctx, 5, "boom %zu, attempt %u", i, sp_ctx_attempt(ctx));
    int rc = sp_set_resultf(ctx, "v%zu", i);
    /* A failed call names itself in the thread's last error. */
    if (rc == SP_ENOMEM &&
        !strstr(sp_last_error(), "SP_ENOMEM: sp_set_resultf"))
        return sp_fail(ctx, 99, "sp_set_resultf failed without a message");
    return rc;
}

static int count_done(const sp_entry *e, void *user)
{
    (void)e;
    (void)user;
    done_calls++;
    return 0;
}

static int setup(void **state)
{
    (void)state;
    if (!fi)
        fi_init();
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%zu", i);
        table[i] = (sp_task){.key = keys[i], .fn = task};
    }
    return 0;
}

/* The attempts of failing task i of a run with retries: 1 .. retries + 1
 * of them (a retry that could not be set up for lack of memory is not
 * made), each earlier one kept (FAILED, code 5 and its message or the one
 * sp_fail() gives when it cannot format it; or SP_ENOMEM when the
 * attempt's own allocation failed) or, from the first one lost for lack
 * of memory on, none. */
static void check_attempts(const sp_entry *e, size_t i, unsigned retries)
{
    unsigned n = sp_entry_attempts(e);
    assert_true(n >= 1 && n <= retries + 1);
    assert_ptr_equal(sp_entry_attempt(e, n), e);
    char want[48];
    bool lost = false;
    for (unsigned k = 1; k < n; k++) {
        const sp_entry *a = sp_entry_attempt(e, k);
        snprintf(want, sizeof want, "boom %zu, attempt %u", i, k);
        if (!a) {
            lost = true;
            continue;
        }
        assert_false(lost); /* kept ones are a prefix */
        assert_int_equal(sp_entry_kind(a), SP_KIND_FAILED);
        assert_int_equal(sp_entry_attempts(a), k);
        if (sp_entry_code(a) == SP_ENOMEM)
            continue; /* the attempt's own allocation failed: reported */
        assert_int_equal(sp_entry_code(a), 5);
        if (strcmp(sp_entry_message(a), want) != 0) /* or sp_fail()'s own */
            assert_string_equal(sp_entry_message(a),
                                "out of memory formatting the message");
    }
}

/* One run; checks the invariants and returns 1 if a fault fired. Failing
 * tasks are tried `retries` more times. */
static int run_checked_retries(unsigned workers, unsigned retries)
{
    /* The shared thread pool keeps threads between calls: end its idle
     * ones, so the run starts threads (and their creation can fail). */
    sp_tpool_shared_trim();
    long fired = atomic_load(&fi->fired);
    int fds = test_open_fds();
    atomic_store(&fi->started, 0);
    done_calls = 0;
    sp_options o = test_opts();
    o.max_workers = workers;
    o.on_done = count_done;
    o.retries = retries;
    sp_results *res = (sp_results *)&res;
    int rc = simple_parallel(table, N, &o, &res);
    /* Stop injecting before checking (the checks allocate too). */
    atomic_store(&fi->alloc, 0);
    atomic_store(&fi->thread, 0);
    atomic_store(&fi->fork, 0);
    int hit = atomic_load(&fi->fired) != fired;

    if (rc) {
        if (rc != SP_ENOMEM && rc != SP_ETHREAD && rc != SP_EFORK &&
            rc != SP_EPIPE)
            fail_msg("unexpected error %s", sp_err_name(rc));
        assert_null(res);
        assert_int_equal(atomic_load(&fi->started), 0); /* nothing ran */
        assert_int_equal(done_calls, 0);
        assert_non_null(strstr(sp_last_error(), sp_err_name(rc)));
    } else {
        assert_int_equal(sp_results_count(res), N);
        assert_int_equal(done_calls, N);
        size_t sum = 0;
        for (size_t i = 0; i < N; i++) {
            const sp_entry *e = sp_results_at(res, i);
            sp_kind k = sp_entry_kind(e);
            int code = sp_entry_code(e);
            sum += sp_results_count_kind(res, (sp_kind)(i % 5));
            assert_string_equal(sp_entry_key(e), keys[i]);
            if (k == SP_KIND_FAILED && code == SP_ENOMEM)
                continue; /* the task's own allocation failed: reported */
            if (k == SP_KIND_CANCELLED &&
                (code == SP_EFORK || code == SP_EPIPE)) {
                /* no worker could be started for it */
                assert_int_equal(sp_entry_cancel_reason(e), SP_CANCEL_BACKEND);
                continue;
            }
            if (k != (i % 3 ? SP_KIND_OK : SP_KIND_FAILED))
                fail_msg("%s: %s (%s) %s", keys[i], sp_kind_name(k),
                         sp_err_name(code), sp_entry_message(e));
            if (i % 3 == 0) {
                assert_int_equal(k, SP_KIND_FAILED);
                assert_int_equal(code, 5);
                check_attempts(e, i, retries);
            } else {
                assert_int_equal(k, SP_KIND_OK);
                char want[8];
                snprintf(want, sizeof want, "v%zu", i);
                assert_string_equal(sp_entry_str(e), want);
            }
        }
        (void)sum;
        assert_int_equal(sp_results_ok(res) + sp_results_failed(res), N);
        sp_results_free(res);
    }
    assert_int_equal(test_open_fds(), fds);
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* no child left */
    return hit;
}

static int run_checked(unsigned workers)
{
    return run_checked_retries(workers, 0);
}

/* Fail allocation k for k = 1, 2, ... until a run makes no allocation
 * fail: then every allocation point of the run has failed once. */
static void test_each_allocation_fails(void **state)
{
    (void)state;
    long k;
    for (k = 1; k < 100000; k++) {
        atomic_store(&fi->alloc, k);
        if (!run_checked(3))
            break;
    }
    assert_true(k < 100000);
    printf("  %ld allocation points failed in turn\n", k - 1);
}

/* The same with retries: what a task tried again keeps of its attempts
 * (its record, the story) fails in turn too. */
static void test_each_allocation_fails_with_retries(void **state)
{
    (void)state;
    long k;
    for (k = 1; k < 100000; k++) {
        atomic_store(&fi->alloc, k);
        if (!run_checked_retries(3, 2))
            break;
    }
    assert_true(k < 100000);
    printf("  %ld allocation points failed in turn\n", k - 1);
}

static void test_thread_creation_fails(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_THREAD)
        skip(); /* only the thread backend creates threads */
    for (long k = 1; k <= 4; k++) {
        atomic_store(&fi->thread, k);
        assert_true(run_checked(4));
    }
    atomic_store(&fi->thread, 1);
    sp_tpool_shared_trim();
    sp_results *res = NULL;
    sp_options o = test_opts();
    assert_int_equal(simple_parallel(table, N, &o, &res), SP_ETHREAD);
    atomic_store(&fi->thread, 0);
}

/* Thread creation fails while a wide call's workers come in a tree (the
 * caller starts the first few, workers bring the rest): the call still
 * ends, with fewer workers, and every task OK. */
static int wide_sleep(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    test_sleep_ms(5);
    return 0;
}

static void test_wide_thread_creation_fails(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_THREAD)
        skip(); /* only the thread backend creates threads */
    enum { W = 120 };
    static char wkeys[W][8];
    static sp_task wt[W];
    for (size_t i = 0; i < W; i++) {
        snprintf(wkeys[i], sizeof wkeys[i], "w%zu", i);
        wt[i] = (sp_task){.key = wkeys[i], .fn = wide_sleep};
    }
    static const long at[] = {6, 30};
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        sp_tpool_shared_trim();
        long fired = atomic_load(&fi->fired);
        atomic_store(&fi->thread, at[k]);
        sp_options o = test_opts();
        o.max_workers = W;
        sp_results *res = NULL;
        int rc = simple_parallel(wt, W, &o, &res);
        atomic_store(&fi->thread, 0);
        assert_int_equal(rc, 0);
        assert_int_equal(sp_results_ok(res), W);
        if (atomic_load(&fi->fired) != fired)
            assert_true(sp_results_workers(res) < W);
        sp_results_free(res);
    }
}

static void test_fork_fails(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip(); /* only the process backend forks */
    /* Workers are forked on demand, so a run may fork only once or
     * twice (plus replacements): fail each fork in turn until a run makes
     * no fork fail. */
    long k;
    for (k = 1; k < 100; k++) {
        atomic_store(&fi->fork, k);
        if (!run_checked(3))
            break;
    }
    assert_true(k > 1 && k < 100);
}

static int nap(sp_ctx *ctx, void *arg)
{
    (void)arg;
    test_sleep_ms(test_ms(20));
    return sp_set_resultf(ctx, "n%zu", sp_ctx_index(ctx));
}

/* A wide call forks its workers in batches: a fork that fails in the
 * middle of one (the 1st, the 2nd, the 9th of the first batch) leaves the
 * call with the workers it has, forking again once one ends; every key
 * comes back OK. (Under valgrind workers start so slowly that the parent
 * may fork fewer than 10, each running more tasks: the 10th fork need not
 * happen there.) */
static void test_fork_fails_in_a_wide_batch(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip(); /* only the process backend forks */
    enum { W = 64 };
    sp_task t[W];
    char k[W][8];
    for (size_t i = 0; i < W; i++) {
        snprintf(k[i], sizeof k[i], "n%zu", i);
        t[i] = (sp_task){.key = k[i], .fn = nap};
    }
    static const long nth[] = {2, 3, 10};
    for (size_t j = 0; j < sizeof nth / sizeof nth[0]; j++) {
        int fds = test_open_fds();
        long fired = atomic_load(&fi->fired);
        atomic_store(&fi->fork, nth[j]);
        sp_options o = test_opts();
        o.max_workers = W;
        sp_results *res = NULL;
        assert_int_equal(simple_parallel(t, W, &o, &res), 0);
        atomic_store(&fi->fork, 0);
        if (nth[j] <= 3 || test_scale() <= 1)
            assert_int_equal(atomic_load(&fi->fired), fired + 1);
        assert_int_equal(sp_results_ok(res), W);
        for (size_t i = 0; i < W; i++) {
            char want[8];
            snprintf(want, sizeof want, "n%zu", i);
            assert_string_equal(sp_entry_str(sp_results_at(res, i)), want);
        }
        sp_results_free(res);
        assert_int_equal(test_open_fds(), fds);
        errno = 0;
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
    }
}

/* The smallest RLIMIT_NOFILE under which exactly `free_fds` descriptor
 * numbers are free (RLIMIT_NOFILE caps descriptor numbers, not counts). */
static rlim_t limit_with_free(int free_fds)
{
    int fd = 0;
    for (int seen = 0;; fd++) {
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
            if (seen == free_fds)
                return (rlim_t)fd;
            seen++;
        }
    }
}

/* Pipes fail for real: RLIMIT_NOFILE at the number of open descriptors. */
static void test_pipe_fails(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip(); /* only the process backend makes pipes */
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int fds = test_open_fds();
    low = old;
    for (int extra = 0; extra <= 4; extra++) {
        low.rlim_cur = limit_with_free(extra);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
        if (extra == 0) {
            /* valgrind virtualises RLIMIT_NOFILE and does not enforce it on
             * socketpair(): the limit this test needs is not there. */
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
                close(sv[0]);
                close(sv[1]);
                setrlimit(RLIMIT_NOFILE, &old);
                skip();
            }
        }
        sp_results *res = NULL;
        sp_options o = test_opts();
        o.max_workers = 4;
        int rc = simple_parallel(table, N, &o, &res);
        setrlimit(RLIMIT_NOFILE, &old);
        if (extra < 2) { /* a channel needs two descriptors */
            assert_int_equal(rc, SP_EPIPE);
            assert_null(res);
            /* The message names the call and the system's reason. */
            if (!strstr(sp_last_error(), "socketpair: Too many open files"))
                fail_msg("message: %s", sp_last_error());
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(sp_results_count(res), N);
            assert_int_equal(sp_results_ok(res), N - N / 3);
            sp_results_free(res);
        }
        assert_int_equal(test_open_fds(), fds);
    }
}

static void on_alarm(int sig)
{
    (void)sig;
}

static int sleepy(sp_ctx *ctx, void *arg)
{
    (void)arg;
    test_sleep_ms(2);
    return sp_set_resultf(ctx, "slept %zu", sp_ctx_index(ctx));
}

/* A timer signal every millisecond, handled without SA_RESTART, so every
 * blocking call on the calling thread keeps failing with EINTR. */
static void test_eintr_storm(void **state)
{
    (void)state;
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &old);
    struct itimerval it = {{0, 1000}, {0, 1000}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
    enum { M = 40 };
    char k[M][8];
    sp_task t[M];
    for (size_t i = 0; i < M; i++) {
        snprintf(k[i], sizeof k[i], "s%zu", i);
        t[i] = (sp_task){.key = k[i], .fn = sleepy};
    }
    for (int round = 0; round < 5; round++) {
        sp_options o = test_opts();
        o.max_workers = 4;
        o.on_done = count_done;
        done_calls = 0;
        sp_results *res = NULL;
        assert_int_equal(simple_parallel(t, M, &o, &res), 0);
        assert_int_equal(sp_results_ok(res), M);
        assert_int_equal(done_calls, M);
        for (size_t i = 0; i < M; i++) {
            char want[16];
            snprintf(want, sizeof want, "slept %zu", i);
            assert_string_equal(sp_entry_str(sp_results_at(res, i)), want);
        }
        sp_results_free(res);
    }
    setitimer(ITIMER_REAL, &off, NULL);
    /* Ignoring discards a signal still pending, then restore. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    sigaction(SIGALRM, &ign, NULL);
    sigaction(SIGALRM, &old, NULL);
}

/* Signals blocked in the calling thread change nothing; nor does SIGPIPE
 * at its default action (the test mains ignore it otherwise). */
static void test_signals_blocked_in_caller(void **state)
{
    (void)state;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    assert_int_equal(run_checked(3), 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    void (*was)(int) = signal(SIGPIPE, SIG_DFL);
    assert_int_equal(run_checked(3), 0);
    signal(SIGPIPE, was);
}

/* ---- pools ----------------------------------------------------------------
 */

/* A task that crashes its worker process (process pools only). */
static int crash(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    raise(SIGKILL);
    return 0;
}

/* One call on pool, checked like run_checked(); 1 if a fault fired.
 * fds: whether the descriptors must be the same afterwards (not when the
 * call may fork a worker the pool lacks). */
static int pool_run_checked(sp_pool *pool, bool fds_same)
{
    long fired = atomic_load(&fi->fired);
    int fds = test_open_fds();
    atomic_store(&fi->started, 0);
    done_calls = 0;
    sp_options o = {0};
    o.on_done = count_done;
    sp_results *res = (sp_results *)&res;
    int rc = sp_pool_run(pool, table, N, &o, &res);
    atomic_store(&fi->alloc, 0);
    atomic_store(&fi->fork, 0);
    int hit = atomic_load(&fi->fired) != fired;
    if (rc) {
        if (rc != SP_ENOMEM)
            fail_msg("unexpected error %s", sp_err_name(rc));
        assert_null(res);
        assert_int_equal(atomic_load(&fi->started), 0);
        assert_int_equal(done_calls, 0);
    } else {
        assert_int_equal(sp_results_count(res), N);
        assert_int_equal(done_calls, N);
        for (size_t i = 0; i < N; i++) {
            const sp_entry *e = sp_results_at(res, i);
            sp_kind k = sp_entry_kind(e);
            int code = sp_entry_code(e);
            if (k == SP_KIND_FAILED && code == SP_ENOMEM)
                continue; /* an allocation for its result failed */
            if (k != (i % 3 ? SP_KIND_OK : SP_KIND_FAILED))
                fail_msg("%s: %s (%s) %s", keys[i], sp_kind_name(k),
                         sp_err_name(code), sp_entry_message(e));
        }
        sp_results_free(res);
    }
    if (fds_same)
        assert_int_equal(test_open_fds(), fds);
    return hit;
}

/* Every allocation of sp_pool_create() fails in turn, then every fork
 * (the fork server's and each worker's): a clean error and nothing left
 * behind, or a pool that works. */
static void test_pool_create_faults(void **state)
{
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        if (kind == 1 && test_backend != SP_BACKEND_PROCESS)
            break; /* only process pools fork */
        _Atomic long *counter = kind ? &fi->fork : &fi->alloc;
        long k;
        for (k = 1; k < 100000; k++) {
            sp_tpool_shared_trim();
            int fds = test_open_fds();
            long fired = atomic_load(&fi->fired);
            sp_pool_options po = {.backend = test_backend, .max_workers = 3};
            sp_pool *pool = (sp_pool *)&po;
            atomic_store(counter, k);
            int rc = sp_pool_create(&po, &pool);
            atomic_store(counter, 0);
            int hit = atomic_load(&fi->fired) != fired;
            if (rc) {
                if (rc != (kind ? SP_EFORK : SP_ENOMEM) &&
                    !(kind == 0 && rc == SP_ETHREAD))
                    fail_msg("unexpected error %s: %s", sp_err_name(rc),
                             sp_last_error());
                assert_null(pool);
            } else {
                assert_int_equal(pool_run_checked(pool, true), 0);
                sp_pool_free(pool);
            }
            assert_int_equal(test_open_fds(), fds);
            errno = 0;
            assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
            if (!hit)
                break;
        }
        assert_true(k > 1 && k < 100000);
        printf("  %ld %s points of sp_pool_create() failed in turn\n", k - 1,
               kind ? "fork" : "allocation");
    }
}

/* On one pool: every allocation of a call fails in turn; then, on process
 * pools, a worker dies while forks fail: the pool goes on with fewer
 * workers and forks the missing one again later. */
static void test_pool_run_faults(void **state)
{
    (void)state;
    sp_pool_options po = {.backend = test_backend, .max_workers = 3};
    sp_pool *pool = NULL;
    assert_int_equal(sp_pool_create(&po, &pool), 0);
    long k;
    for (k = 1; k < 100000; k++) {
        atomic_store(&fi->alloc, k);
        if (!pool_run_checked(pool, true))
            break;
    }
    assert_true(k < 100000);
    printf("  %ld allocation points of sp_pool_run() failed in turn\n", k - 1);
    if (test_backend == SP_BACKEND_PROCESS) {
        sp_task boom = {.key = "boom", .fn = crash};
        for (int round = 0; round < 3; round++) {
            atomic_store(&fi->fork, 1); /* the replacement's fork fails */
            sp_results *res = NULL;
            assert_int_equal(sp_pool_run(pool, &boom, 1, NULL, &res), 0);
            atomic_store(&fi->fork, 0);
            assert_int_equal(sp_entry_kind(sp_results_at(res, 0)),
                             SP_KIND_CRASHED);
            sp_results_free(res);
            /* The missing worker is forked again by this call. */
            int fds = test_open_fds();
            assert_int_equal(pool_run_checked(pool, false), 0);
            assert_true(test_open_fds() > fds); /* its channel (+ pidfd) */
            assert_int_equal(pool_run_checked(pool, true), 0);
        }
    }
    sp_pool_free(pool);
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
}

/* The EINTR storm on a pool: its calls, a worker's replacement (the fork
 * server's requests) and its free all go on through the signals. */
static void test_pool_eintr_storm(void **state)
{
    (void)state;
    sp_pool_options po = {.backend = test_backend, .max_workers = 3};
    sp_pool *pool = NULL;
    assert_int_equal(sp_pool_create(&po, &pool), 0);
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &old);
    struct itimerval it = {{0, 1000}, {0, 1000}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
    enum { M = 24 };
    char k[M][8];
    sp_task t[M];
    for (size_t i = 0; i < M; i++) {
        snprintf(k[i], sizeof k[i], "s%zu", i);
        t[i] = (sp_task){.key = k[i], .fn = sleepy};
    }
    for (int round = 0; round < 5; round++) {
        sp_options o = {0};
        o.on_done = count_done;
        done_calls = 0;
        sp_results *res = NULL;
        assert_int_equal(sp_pool_run(pool, t, M, &o, &res), 0);
        assert_int_equal(sp_results_ok(res), M);
        assert_int_equal(done_calls, M);
        sp_results_free(res);
        if (test_backend == SP_BACKEND_PROCESS) {
            sp_task boom = {.key = "boom", .fn = crash};
            assert_int_equal(sp_pool_run(pool, &boom, 1, NULL, &res), 0);
            assert_int_equal(sp_entry_kind(sp_results_at(res, 0)),
                             SP_KIND_CRASHED);
            sp_results_free(res);
        }
    }
    sp_pool_free(pool);
    setitimer(ITIMER_REAL, &off, NULL);
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    sigaction(SIGALRM, &ign, NULL);
    sigaction(SIGALRM, &old, NULL);
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_each_allocation_fails, setup),
    cmocka_unit_test_setup(test_each_allocation_fails_with_retries, setup),
    cmocka_unit_test_setup(test_thread_creation_fails, setup),
    cmocka_unit_test_setup(test_wide_thread_creation_fails, setup),
    cmocka_unit_test_setup(test_fork_fails, setup),
    cmocka_unit_test_setup(test_fork_fails_in_a_wide_batch, setup),
    cmocka_unit_test_setup(test_pipe_fails, setup),
    cmocka_unit_test_setup(test_eintr_storm, setup),
    cmocka_unit_test_setup(test_signals_blocked_in_caller, setup),
    cmocka_unit_test_setup(test_pool_create_faults, setup),
    cmocka_unit_test_setup(test_pool_run_faults, setup),
    cmocka_unit_test_setup(test_pool_eintr_storm, setup),
};

TEST_MAIN("faults", tests)
