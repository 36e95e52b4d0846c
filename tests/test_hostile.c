/* SPDX-License-Identifier: MIT */
/* Hostile tasks on the process backend: a task that forks helpers, writes
 * garbage to every descriptor, closes or replaces them, returns a huge
 * result under a short limit, leaves children behind at a timeout; callers
 * that run concurrently; a caller killed mid-run. Whatever a task does
 * costs at most its own result, no callback runs twice, and nothing is
 * left behind. Every callback counts its runs in shared memory. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, kill */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXT 64

/* Shared with every worker. */
struct shm {
    _Atomic unsigned runs[MAXT]; /* callback starts per task index */
    _Atomic int pids[MAXT];      /* pids a task reports (helpers, itself) */
    _Atomic int ready;
};
static struct shm *shm;

static int setup(void **state)
{
    (void)state;
    if (!shm) {
        void *m = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return -1;
        shm = m;
    }
    memset(shm, 0, sizeof *shm);
    return 0;
}

static void count_run(sp_ctx *ctx)
{
    size_t i = sp_ctx_index(ctx);
    if (i < MAXT)
        atomic_fetch_add(&shm->runs[i], 1);
}

/* Whether pid is a live process (not gone, not a zombie). */
static int alive(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

/* Wait up to ms milliseconds for pid to be gone. */
static int gone_within(pid_t pid, unsigned ms)
{
    for (unsigned t = 0; t < ms; t += 5) {
        if (!alive(pid))
            return 1;
        test_sleep_ms(5);
    }
    return !alive(pid);
}

static void assert_no_children(void)
{
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Stdin, stdout and stderr go to /dev/null while tasks write garbage; the
 * test keeps copies to restore them, which the writers leave alone (the
 * test's own output is not what is under test). -1 = none. */
static int saved_std[3] = {-1, -1, -1};

static int is_saved(int fd)
{
    return fd == saved_std[0] || fd == saved_std[1] || fd == saved_std[2];
}

/* ---- task bodies -------------------------------------------------------- */

static int normal(sp_ctx *ctx, void *arg)
{
    (void)arg;
    count_run(ctx);
    return sp_set_resultf(ctx, "normal %s", sp_ctx_key(ctx));
}

/* Forks a helper that keeps the worker's descriptors and sleeps 30 s; the
 * task itself returns at once. */
static int forks_helper(sp_ctx *ctx, void *arg)
{
    (void)arg;
    count_run(ctx);
    pid_t pid = fork();
    if (pid == 0) {
        for (int s = 0; s < 30; s++)
            sleep(1);
        _exit(0);
    }
    atomic_store(&shm->pids[sp_ctx_index(ctx)], (int)pid);
    return sp_set_result_str(ctx, "helper started");
}

static int writes_garbage(sp_ctx *ctx, void *arg)
{
    (void)arg;
    count_run(ctx);
    unsigned char junk[4096];
    memset(junk, 0xa5, sizeof junk);
    for (int fd = 0; fd < 1024; fd++) {
        if (is_saved(fd))
            continue;
        ssize_t w = write(fd, junk, sizeof junk);
        (void)w;
    }
    return sp_set_result_str(ctx, "wrote garbage");
}

static int closes_fds(sp_ctx *ctx, void *arg)
{
    (void)arg;
    count_run(ctx);
    for (int fd = 0; fd < 1024; fd++)
        close(fd);
    return sp_set_result_str(ctx, "closed everything");
}

/* Puts /dev/null on every descriptor number, then returns a result of
 * (size_t)arg bytes. */
static int replaces_fds(sp_ctx *ctx, void *arg)
{
    count_run(ctx);
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 1024; fd++)
        if (fd != null)
            dup2(null, fd);
    size_t len = (size_t)(uintptr_t)arg;
    char *buf = malloc(len ? len : 1);
    if (!buf)
        return sp_fail(ctx, 1, "malloc");
    memset(buf, 'r', len);
    int rc = sp_set_result(ctx, buf, len);
    free(buf);
    return rc;
}

/* Writes its shell's pid (which exec makes the sleep's) to the file named
 * by arg, then sleeps 7.77 s. */
static int sleeps_in_shell(sp_ctx *ctx, void *arg)
{
    count_run(ctx);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "echo $$ > '%s'; exec sleep 7.77",
             (const char *)arg);
    int rc = system(cmd);
    return sp_fail(ctx, 2, "system returned %d", rc);
}

static int spins(sp_ctx *ctx, void *arg)
{
    (void)arg;
    count_run(ctx);
    for (volatile unsigned long n = 0;; n++)
        ;
    return 0;
}

static int segfaults(sp_ctx *ctx, void *arg)
{
    (void)arg;
    count_run(ctx);
    volatile uintptr_t addr = 64;
    *(volatile int *)addr = 1;
    return 0;
}

static int aborts(sp_ctx *ctx, void *arg)
{
    (void)arg;
    count_run(ctx);
    abort();
}

static int exits3(sp_ctx *ctx, void *arg)
{
    (void)arg;
    count_run(ctx);
    exit(3);
}

static int exits0_without_result(sp_ctx *ctx, void *arg)
{
    (void)arg;
    count_run(ctx);
    _exit(0);
}

static int sigkills_itself(sp_ctx *ctx, void *arg)
{
    (void)arg;
    count_run(ctx);
    kill(getpid(), SIGKILL);
    pause();
    return 0;
}

static int returns_minus_one(sp_ctx *ctx, void *arg)
{
    (void)arg;
    count_run(ctx);
    return -1;
}

static int long_message(sp_ctx *ctx, void *arg)
{
    (void)arg;
    count_run(ctx);
    char *msg = malloc(200001);
    if (!msg)
        return sp_fail(ctx, 1, "malloc");
    for (size_t i = 0; i < 200000; i++)
        msg[i] = (char)('a' + i % 26);
    msg[200000] = 0;
    int rc = sp_fail(ctx, 7, "%s", msg);
    free(msg);
    return rc;
}

/* A result that already exists when the task runs (built by the test before
 * the call): the task returns it at once, as the trial did. */
static unsigned char *prebuilt;

static void no_release(void *data)
{
    (void)data; /* the test frees the prebuilt buffer itself */
}

static int returns_prebuilt(sp_ctx *ctx, void *arg)
{
    count_run(ctx);
    /* Handed over, not copied: the callback returns in microseconds. The
     * buffer has len + 1 bytes (for the NUL the library writes). */
    return sp_set_result_owned(ctx, prebuilt, (size_t)(uintptr_t)arg,
                               no_release);
}

static void check_big(const sp_entry *e, size_t len)
{
    if (sp_entry_kind(e) != SP_KIND_OK)
        fail_msg("%s: %s %s", sp_entry_key(e), sp_kind_name(sp_entry_kind(e)),
                 sp_entry_message(e));
    size_t got;
    const unsigned char *p = sp_entry_data(e, &got);
    assert_int_equal(got, len);
    for (size_t i = 0; i < len; i += 4093)
        assert_int_equal(p[i], (unsigned char)(i * 7));
    assert_int_equal(p[len - 1], (unsigned char)((len - 1) * 7));
}

/* ---- the tests ---------------------------------------------------------- */

static void quiet_std(void)
{
    fflush(NULL);
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; fd++) {
        saved_std[fd] = dup(fd);
        dup2(null, fd);
    }
    close(null);
}

static void restore_std(void)
{
    fflush(NULL);
    for (int fd = 0; fd < 3; fd++) {
        dup2(saved_std[fd], fd);
        close(saved_std[fd]);
        saved_std[fd] = -1;
    }
}

static sp_options proc_opts(unsigned workers)
{
    sp_options o = {0};
    o.backend = SP_BACKEND_PROCESS;
    o.max_workers = workers;
    return o;
}

/* Point 1: a helper the task forks keeps the worker's descriptors and
 * sleeps 30 s; the call still returns within its deadline, and the helper
 * dies with its worker's process group. */
static void test_helper_does_not_hold_the_call(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "helper", .fn = forks_helper},
                   {.key = "a", .fn = normal},
                   {.key = "b", .fn = normal}};
    sp_options o = proc_opts(2);
    o.deadline = 0.5 * test_scale();
    o.task_timeout = 0.2 * test_scale();
    sp_results *res = NULL;
    double t0 = now_s();
    assert_int_equal(simple_parallel(t, 3, &o, &res), 0);
    double took = now_s() - t0;
    assert_true(took < o.deadline + 0.5 * test_scale());
    assert_int_equal(sp_results_ok(res), 3);
    sp_results_free(res);
    pid_t helper = atomic_load(&shm->pids[0]);
    assert_true(helper > 0);
    assert_true(gone_within(helper, 1000 * (unsigned)test_scale()));
    assert_no_children();
}

/* Point 2: garbage written to every descriptor reaches only the writer's
 * own channel: every other task comes back OK with its own bytes. */
static void test_garbage_costs_only_the_writer(void **state)
{
    (void)state;
    enum { N = 21 };
    sp_task t[N];
    char keys[N][16];
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "n%zu", i);
        t[i] = (sp_task){.key = keys[i], .fn = normal};
    }
    t[10].fn = writes_garbage;
    static const unsigned workers[] = {1, 2, 4};
    for (size_t w = 0; w < 3; w++) {
        memset((void *)shm->runs, 0, sizeof shm->runs);
        sp_options o = proc_opts(workers[w]);
        sp_results *res = NULL;
        int fds = test_open_fds();
        quiet_std();
        int rc = simple_parallel(t, N, &o, &res);
        restore_std();
        assert_int_equal(rc, 0);
        for (size_t i = 0; i < N; i++) {
            const sp_entry *e = sp_results_at(res, i);
            assert_int_equal(atomic_load(&shm->runs[i]), 1);
            if (i == 10) {
                /* At worst its own result is lost. */
                if (sp_entry_kind(e) != SP_KIND_OK)
                    assert_int_equal(sp_entry_code(e), SP_EPROTO);
                continue;
            }
            char want[32];
            snprintf(want, sizeof want, "normal %.15s", keys[i]);
            if (sp_entry_kind(e) != SP_KIND_OK)
                fail_msg("%u workers: %s came back %s: %s", workers[w], keys[i],
                         sp_kind_name(sp_entry_kind(e)), sp_entry_message(e));
            assert_string_equal(sp_entry_str(e), want);
        }
        sp_results_free(res);
        assert_int_equal(test_open_fds(), fds);
        assert_no_children();
    }
}

/* Points 2 and 11: a task that closes or replaces every descriptor, on one
 * worker: it runs once, never comes back "not started", and the innocent
 * task after it runs once, in a fresh worker, and is OK. A small result
 * still arrives (through the ring); one too big for it is reported lost,
 * saying why. */
static void test_descriptor_scribbler_runs_once(void **state)
{
    (void)state;
    struct {
        sp_task_fn fn;
        size_t len;
    } cases[] = {{closes_fds, 0}, {replaces_fds, 100}, {replaces_fds, 1 << 20}};
    for (size_t c = 0; c < 3; c++) {
        memset((void *)shm->runs, 0, sizeof shm->runs);
        sp_task t[] = {{.key = "scribbler",
                        .fn = cases[c].fn,
                        .arg = (void *)(uintptr_t)cases[c].len},
                       {.key = "innocent", .fn = normal}};
        sp_options o = proc_opts(1);
        sp_results *res = NULL;
        quiet_std();
        int rc = simple_parallel(t, 2, &o, &res);
        restore_std();
        assert_int_equal(rc, 0);
        assert_int_equal(atomic_load(&shm->runs[0]), 1);
        assert_int_equal(atomic_load(&shm->runs[1]), 1);
        const sp_entry *s = sp_results_at(res, 0);
        assert_int_not_equal(sp_entry_kind(s), SP_KIND_CANCELLED);
        if (cases[c].len < 1024) {
            if (sp_entry_kind(s) != SP_KIND_OK)
                fail_msg("case %zu: %s", c, sp_entry_message(s));
        } else {
            assert_int_equal(sp_entry_kind(s), SP_KIND_CRASHED);
            assert_non_null(strstr(sp_entry_message(s), "closed or replaced"));
        }
        const sp_entry *e = sp_results_at(res, 1);
        if (sp_entry_kind(e) != SP_KIND_OK)
            fail_msg("case %zu: innocent %s", c, sp_entry_message(e));
        assert_string_equal(sp_entry_str(e), "normal innocent");
        sp_results_free(res);
        assert_no_children();
    }
}

struct slow_caller {
    pthread_t thread;
    int rc, ok;
};

static int sleeps_ms(sp_ctx *ctx, void *arg)
{
    count_run(ctx);
    if (sp_ctx_index(ctx) < MAXT)
        atomic_store(&shm->pids[sp_ctx_index(ctx)], (int)getpid());
    atomic_fetch_add(&shm->ready, 1);
    test_sleep_ms((unsigned)(uintptr_t)arg);
    return sp_set_result_str(ctx, "slept");
}

static void *slow_call(void *arg)
{
    struct slow_caller *c = arg;
    unsigned ms = (unsigned)(2000 * test_scale());
    sp_task t[] = {
        {.key = "s1", .fn = sleeps_ms, .arg = (void *)(uintptr_t)ms},
        {.key = "s2", .fn = sleeps_ms, .arg = (void *)(uintptr_t)ms}};
    sp_options o = proc_opts(2);
    sp_results *res = NULL;
    c->rc = simple_parallel(t, 2, &o, &res);
    c->ok = res && sp_results_ok(res) == 2;
    sp_results_free(res);
    return NULL;
}

/* Point 3: one thread's call holds workers for seconds while another makes
 * hundreds of quick calls; no quick call waits for the slow call. */
static void test_concurrent_calls_are_independent(void **state)
{
    (void)state;
    if (TEST_ASAN)
        skip(); /* forks from two threads at once: see TEST_ASAN */
    struct slow_caller slow = {0};
    assert_int_equal(pthread_create(&slow.thread, NULL, slow_call, &slow), 0);
    while (atomic_load(&shm->ready) < 2)
        test_sleep_ms(1);
    unsigned calls = (unsigned)(200 / test_scale());
    double worst = 0;
    for (unsigned k = 0; k < calls; k++) {
        sp_task t[] = {{.key = "q1", .fn = normal},
                       {.key = "q2", .fn = normal},
                       {.key = "q3", .fn = normal}};
        sp_options o = proc_opts(2);
        sp_results *res = NULL;
        double t0 = now_s();
        assert_int_equal(simple_parallel(t, 3, &o, &res), 0);
        double took = now_s() - t0;
        worst = took > worst ? took : worst;
        assert_int_equal(sp_results_ok(res), 3);
        sp_results_free(res);
    }
    pthread_join(slow.thread, NULL);
    assert_int_equal(slow.rc, 0);
    assert_true(slow.ok);
    /* A quick call held by the slow one would take about 2 s. */
    if (worst >= 1.0 * test_scale())
        fail_msg("a quick call took %.3f s", worst);
}

/* Point 5: the limit bounds the callback, not the transfer of its result:
 * 200 MiB returned under a 0.2 s limit arrive intact. */
static void test_big_result_under_short_limit(void **state)
{
    (void)state;
    size_t len = (size_t)(200.0 / test_scale()) << 20;
    prebuilt = malloc(len + 1);
    assert_non_null(prebuilt);
    for (size_t i = 0; i < len; i++)
        prebuilt[i] = (unsigned char)(i * 7);
    sp_task t[] = {{.key = "big", .fn = returns_prebuilt, .arg = (void *)len}};
    sp_options o = proc_opts(1);
    o.task_timeout = 0.2 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    check_big(sp_results_at(res, 0), len);
    sp_results_free(res);
    free(prebuilt);
    prebuilt = NULL;
}

/* Point 9: a caller killed mid-run takes its workers with it. */
static void test_workers_die_with_their_caller(void **state)
{
    (void)state;
    static const int sigs[] = {SIGKILL, SIGTERM};
    for (size_t s = 0; s < 2; s++) {
        memset((void *)shm->pids, 0, sizeof shm->pids);
        atomic_store(&shm->ready, 0);
        pid_t caller = fork();
        assert_true(caller >= 0);
        if (caller == 0) {
            unsigned ms = 30000;
            sp_task t[] = {
                {.key = "w0", .fn = sleeps_ms, .arg = (void *)(uintptr_t)ms},
                {.key = "w1", .fn = sleeps_ms, .arg = (void *)(uintptr_t)ms},
                {.key = "w2", .fn = sleeps_ms, .arg = (void *)(uintptr_t)ms}};
            sp_options o = proc_opts(3);
            sp_results *res = NULL;
            simple_parallel(t, 3, &o, &res);
            _exit(0);
        }
        while (atomic_load(&shm->ready) < 3)
            test_sleep_ms(1);
        /* The workers' pids, as their tasks reported them. */
        pid_t workers[3];
        size_t nw = 0;
        for (size_t k = 0; k < 3; k++)
            workers[nw++] = atomic_load(&shm->pids[k]);
        kill(caller, sigs[s]);
        int status;
        assert_int_equal(waitpid(caller, &status, 0), caller);
        for (size_t k = 0; k < nw; k++)
            if (!gone_within(workers[k], 1000 * (unsigned)test_scale()))
                fail_msg("worker %d outlived its caller (signal %d)",
                         (int)workers[k], sigs[s]);
    }
}

/* Point 9: killing a worker at its time limit kills what the task started:
 * the shell's `sleep` is gone too. */
static void test_timeout_kills_the_tasks_children(void **state)
{
    (void)state;
    char file[] = "/tmp/sp-sleep-pid-XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    close(fd);
    sp_task t[] = {{.key = "shell", .fn = sleeps_in_shell, .arg = file}};
    sp_options o = proc_opts(1);
    o.task_timeout = 0.3 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    const sp_entry *e = sp_results_at(res, 0);
    assert_int_equal(sp_entry_kind(e), SP_KIND_TIMED_OUT);
    sp_results_free(res);
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    int pid = 0;
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    unlink(file);
    assert_true(pid > 0);
    if (!gone_within(pid, 1000 * (unsigned)test_scale()))
        fail_msg("the task's sleep (pid %d) outlived its worker", pid);
    assert_int_equal(atomic_load(&shm->runs[0]), 1);
}

/* Every misbehaviour in one table with 20 normal tasks, three times:
 * every key comes back with the right kind, no callback runs twice, the
 * caller's descriptors and children are as before, and the call ends well
 * within its deadline. */
static void test_hostile_table(void **state)
{
    (void)state;
    char file[] = "/tmp/sp-hostile-XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    close(fd);
    size_t big = (size_t)(64.0 / test_scale()) << 20;
    prebuilt = malloc(big + 1);
    assert_non_null(prebuilt);
    for (size_t i = 0; i < big; i++)
        prebuilt[i] = (unsigned char)(i * 7);
    struct {
        const char *key;
        sp_task_fn fn;
        void *arg;
        sp_kind kind; /* expected */
        int sig;      /* CRASHED by a signal */
        int status;   /* CRASHED by an exit, -1 = not */
    } bad[] = {
        {"segv", segfaults, NULL, SP_KIND_CRASHED, SIGSEGV, -1},
        {"abort", aborts, NULL, SP_KIND_CRASHED, SIGABRT, -1},
        {"exit3", exits3, NULL, SP_KIND_CRASHED, 0, 3},
        {"_exit0", exits0_without_result, NULL, SP_KIND_CRASHED, 0, 0},
        {"sigkill", sigkills_itself, NULL, SP_KIND_CRASHED, SIGKILL, -1},
        {"spin", spins, NULL, SP_KIND_TIMED_OUT, 0, -1},
        {"close-fds", closes_fds, NULL, SP_KIND_OK, 0, -1},
        {"garbage", writes_garbage, NULL, SP_KIND_CRASHED, 0, -1},
        {"helper", forks_helper, NULL, SP_KIND_OK, 0, -1},
        {"shell-sleep", sleeps_in_shell, file, SP_KIND_TIMED_OUT, 0, -1},
        {"big", returns_prebuilt, (void *)big, SP_KIND_OK, 0, -1},
        {"minus-one", returns_minus_one, NULL, SP_KIND_FAILED, 0, -1},
        {"long-message", long_message, NULL, SP_KIND_FAILED, 0, -1},
    };
    enum { NB = sizeof bad / sizeof bad[0], NORMAL = 20, N = NB + NORMAL };
    sp_task t[N];
    char keys[NORMAL][16];
    size_t n = 0;
    for (size_t i = 0; i < NORMAL; i++) {
        snprintf(keys[i], sizeof keys[i], "normal%zu", i);
        t[n++] = (sp_task){.key = keys[i], .fn = normal};
        if (i < NB)
            t[n++] = (sp_task){
                .key = bad[i].key, .fn = bad[i].fn, .arg = bad[i].arg};
    }
    int fds = test_open_fds();
    for (int round = 0; round < 3; round++) {
        memset((void *)shm->runs, 0, sizeof shm->runs);
        sp_options o = proc_opts(4);
        o.task_timeout = 0.5 * test_scale();
        o.deadline = 20 * test_scale();
        sp_results *res = NULL;
        quiet_std();
        int rc = simple_parallel(t, N, &o, &res);
        restore_std();
        assert_int_equal(rc, 0);
        assert_int_equal(sp_results_count(res), N);
        assert_true(sp_results_elapsed(res) < o.deadline / 2);
        for (size_t i = 0; i < N; i++) {
            const sp_entry *e = sp_results_at(res, i);
            unsigned runs = atomic_load(&shm->runs[i]);
            if (runs > 1)
                fail_msg("%s ran %u times", sp_entry_key(e), runs);
            if (sp_entry_kind(e) == SP_KIND_CANCELLED)
                fail_msg("round %d: %s CANCELLED: %s", round, sp_entry_key(e),
                         sp_entry_message(e));
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
            if (!strcmp(bad[b].key, "garbage") && k == SP_KIND_OK)
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
        const sp_entry *e = sp_results_get(res, "minus-one");
        assert_int_equal(sp_entry_code(e), -1);
        assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_TASK);
        assert_string_equal(sp_entry_message(e), "task returned -1");
        e = sp_results_get(res, "long-message");
        assert_int_equal(strlen(sp_entry_message(e)), 200000);
        check_big(sp_results_get(res, "big"), big);
        assert_int_equal(sp_entry_code_origin(sp_results_get(res, "segv")),
                         SP_ORIGIN_LIBRARY);
        sp_results_free(res);
        assert_int_equal(test_open_fds(), fds);
        assert_no_children();
    }
    unlink(file);
    free(prebuilt);
    prebuilt = NULL;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_helper_does_not_hold_the_call, setup),
    cmocka_unit_test_setup(test_garbage_costs_only_the_writer, setup),
    cmocka_unit_test_setup(test_descriptor_scribbler_runs_once, setup),
    cmocka_unit_test_setup(test_concurrent_calls_are_independent, setup),
    cmocka_unit_test_setup(test_big_result_under_short_limit, setup),
    cmocka_unit_test_setup(test_workers_die_with_their_caller, setup),
    cmocka_unit_test_setup(test_timeout_kills_the_tasks_children, setup),
    cmocka_unit_test_setup(test_hostile_table, setup),
};

TEST_MAIN("hostile", tests)
