/* SPDX-License-Identifier: MIT */
/* libsimplepar-mpi for real: every rank of MPI_COMM_WORLD runs this suite
 * (under `mpiexec -n 3`, or alone as an MPI singleton) and every test is
 * collective: each rank calls sp_mpi_parallel() with the same table, rank 0
 * checks the map, the other ranks check that they got none (or their
 * copy). argv[1] names the local backend each rank runs its tasks on. A
 * barrier after every test keeps the ranks in step even when an assertion
 * fails on one of them.
 *
 *   test-mpi thread|serial|process */
#include "common.h"

#include <simplepar/mpi.h>

#include <stdint.h>
#include <time.h>
#include <unistd.h>

static int rank, size;
static size_t ran_here; /* callbacks run on this rank (thread backend) */

static int world_teardown(void **state)
{
    (void)state;
    MPI_Barrier(MPI_COMM_WORLD);
    return 0;
}

/* The map on rank 0; NULL elsewhere (checked). */
static sp_results *run(const sp_task *t, size_t n, const sp_options *o,
                       const sp_mpi_options *m)
{
    sp_results *res = (sp_results *)&res;
    int rc = sp_mpi_parallel_ex(MPI_COMM_WORLD, t, n, o, m, &res);
    if (rc)
        fail_msg("rank %d: %s", rank, sp_last_error());
    if (rank != 0 && !(m && m->map_everywhere)) {
        assert_null(res);
        return NULL;
    }
    assert_non_null(res);
    assert_int_equal(sp_results_count(res), n);
    return res;
}

/* Keys "k0".."kN" in a table the caller frees. */
static sp_task *table(size_t n, sp_task_fn fn, char (**keys)[16])
{
    sp_task *t = calloc(n ? n : 1, sizeof *t);
    *keys = calloc(n ? n : 1, sizeof **keys);
    assert_non_null(t);
    assert_non_null(*keys);
    for (size_t i = 0; i < n; i++) {
        snprintf((*keys)[i], 16, "k%u", (unsigned)i);
        t[i] = (sp_task){.key = (*keys)[i], .fn = fn};
    }
    return t;
}

static sp_options local_opts(void)
{
    sp_options o = test_opts();
    o.max_workers = 2;
    return o;
}

/* ---- results of every kind a task can give without crashing ------------ */

/* What task i does, by i % 8; its result bytes are a pattern of i. */
static size_t result_len(size_t i)
{
    static const size_t lens[] = {0, 1, 100, 70000, 4096, 3};
    return lens[(i / 8) % (sizeof lens / sizeof *lens)];
}

static unsigned char pattern(size_t i, size_t k)
{
    return (unsigned char)(i * 31 + k * 7 + (k >> 9));
}

static int mixed_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t i = (size_t)atol(sp_ctx_key(ctx) + 1);
    __atomic_fetch_add(&ran_here, 1, __ATOMIC_RELAXED);
    switch (i % 8) {
    case 0:
    case 1:
    case 2: { /* OK with bytes */
        size_t len = result_len(i);
        unsigned char *b = malloc(len + 1);
        for (size_t k = 0; k < len; k++)
            b[k] = pattern(i, k);
        int rc = sp_set_result(ctx, b, len);
        free(b);
        return rc;
    }
    case 3: /* OK without bytes */
        return 0;
    case 4: /* the task's own code and message */
        return sp_fail(ctx, 40 + (int)(i % 5), "no quote for k%u", (unsigned)i);
    case 5: /* a plain non-zero return */
        return -1;
    case 6: /* sp_fail with 0: the library's SP_ETASK */
        return sp_fail(ctx, 0, NULL);
    default: /* bytes, then a failure: the bytes stay with the entry */
        sp_set_result_str(ctx, "partial");
        return 3;
    }
}

static void check_mixed(const sp_results *res, size_t n)
{
    unsigned workers = sp_results_workers(res);
    assert_true(workers >= 1);
    for (size_t i = 0; i < n; i++) {
        const sp_entry *e = sp_results_at(res, i);
        char key[16];
        snprintf(key, sizeof key, "k%u", (unsigned)i);
        assert_ptr_equal(sp_results_get(res, key), e);
        assert_true(sp_entry_worker(e) < workers);
        assert_true(sp_entry_start(e) >= 0);
        assert_true(sp_entry_start(e) <= sp_entry_end(e));
        /* Times are rank 0's; a copy's elapsed is its own rank's wall
         * time of the call, which started a moment later. */
        assert_true(sp_entry_end(e) <=
                    sp_results_elapsed(res) + (rank == 0 ? 1e-6 : 0.5));
        size_t len = 99;
        const unsigned char *d = sp_entry_data(e, &len);
        switch (i % 8) {
        case 0:
        case 1:
        case 2:
            assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
            assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_NONE);
            /* 0 bytes stored: the local process backend brings back no
             * buffer at all (as simple_parallel() does there). */
            if (result_len(i) || test_backend != SP_BACKEND_PROCESS)
                assert_non_null(d);
            assert_int_equal(len, result_len(i));
            if (!d)
                break;
            for (size_t k = 0; k < len; k++)
                if (d[k] != pattern(i, k))
                    fail_msg("k%zu: byte %zu differs", i, k);
            assert_int_equal(d[len], 0);
            break;
        case 3:
            assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
            assert_null(d);
            assert_int_equal(len, 0);
            assert_string_equal(sp_entry_str(e), "");
            break;
        case 4: {
            char msg[32];
            snprintf(msg, sizeof msg, "no quote for k%u", (unsigned)i);
            assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
            assert_int_equal(sp_entry_code(e), 40 + (int)(i % 5));
            assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_TASK);
            assert_string_equal(sp_entry_message(e), msg);
            break;
        }
        case 5:
            assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
            assert_int_equal(sp_entry_code(e), -1);
            assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_TASK);
            assert_string_equal(sp_entry_message(e), "task returned -1");
            break;
        case 6:
            assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
            assert_int_equal(sp_entry_code(e), SP_ETASK);
            assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_LIBRARY);
            break;
        default:
            assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
            assert_int_equal(sp_entry_code(e), 3);
            assert_string_equal(sp_entry_str(e), "partial");
            break;
        }
    }
}

static void test_every_result_comes_back(void **state)
{
    (void)state;
    enum { N = 400 };
    char(*keys)[16];
    sp_task *t = table(N, mixed_task, &keys);
    sp_options o = local_opts();
    ran_here = 0;
    sp_results *res = run(t, N, &o, NULL);
    /* Collectives before any assertion, which would leave the others
     * waiting in them. Every task ran exactly once, somewhere. */
    unsigned long mine = ran_here, all = 0;
    MPI_Reduce(&mine, &all, 1, MPI_UNSIGNED_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0 && test_backend != SP_BACKEND_PROCESS)
        assert_int_equal(all, N);
    if (res) {
        check_mixed(res, N);
        assert_int_equal(sp_results_ok(res), N / 2);
        assert_int_equal(sp_results_count_kind(res, SP_KIND_FAILED), N / 2);
        /* Rank 0 only schedules while there are other ranks. */
        if (size > 1)
            assert_int_equal(ran_here, 0);
        sp_results_free(res);
    }
    free(t);
    free(keys);
}

/* Small batches and one in flight: many round trips, same answers. */
static void test_small_batches(void **state)
{
    (void)state;
    enum { N = 120 };
    char(*keys)[16];
    sp_task *t = table(N, mixed_task, &keys);
    sp_options o = local_opts();
    sp_mpi_options m = {.batch = 1, .inflight = 1};
    sp_results *res = run(t, N, &o, &m);
    if (res) {
        check_mixed(res, N);
        sp_results_free(res);
    }
    sp_mpi_options m2 = {.batch = 7, .inflight = 5};
    res = run(t, N, &o, &m2);
    if (res) {
        check_mixed(res, N);
        sp_results_free(res);
    }
    free(t);
    free(keys);
}

/* The map on every rank, identical. */
static uint64_t map_digest(const sp_results *res)
{
    uint64_t h = 1469598103934665603u;
#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211u)
    for (size_t i = 0; i < sp_results_count(res); i++) {
        const sp_entry *e = sp_results_at(res, i);
        MIX(sp_entry_kind(e));
        MIX((unsigned)sp_entry_code(e));
        MIX(sp_entry_code_origin(e));
        MIX(sp_entry_worker(e));
        MIX((uint64_t)(sp_entry_start(e) * 1e9));
        MIX((uint64_t)(sp_entry_end(e) * 1e9));
        for (const char *s = sp_entry_message(e); *s; s++)
            MIX(*s);
        MIX(sp_entry_attempts(e));
        MIX(sp_entry_first_kind(e));
        MIX((unsigned)sp_entry_first_code(e));
        for (const char *s = sp_entry_first_message(e); *s; s++)
            MIX(*s);
        for (unsigned n = 1; n < sp_entry_attempts(e); n++) {
            const sp_entry *a = sp_entry_attempt(e, n);
            MIX(a != NULL);
            MIX(sp_entry_kind(a));
            MIX((unsigned)sp_entry_code(a));
            MIX(sp_entry_worker(a));
            MIX((uint64_t)(sp_entry_start(a) * 1e9));
            MIX((uint64_t)(sp_entry_end(a) * 1e9));
            for (const char *s = sp_entry_message(a); *s; s++)
                MIX(*s);
        }
        size_t len;
        const unsigned char *d = sp_entry_data(e, &len);
        MIX(d != NULL);
        for (size_t k = 0; k < len; k++)
            MIX(d[k]);
    }
    MIX(sp_results_workers(res));
#undef MIX
    return h;
}

static void test_map_everywhere(void **state)
{
    (void)state;
    enum { N = 64 };
    char(*keys)[16];
    sp_task *t = table(N, mixed_task, &keys);
    sp_options o = local_opts();
    sp_mpi_options m = {.map_everywhere = 1};
    sp_results *res = run(t, N, &o, &m);
    uint64_t mine = map_digest(res), root = mine;
    MPI_Bcast(&root, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    check_mixed(res, N);
    assert_true(mine == root);
    sp_results_free(res);
    free(t);
    free(keys);
}

static void test_empty_table(void **state)
{
    (void)state;
    sp_results *res = run(NULL, 0, NULL, NULL);
    if (res) {
        assert_int_equal(sp_results_workers(res), 0);
        sp_results_free(res);
    }
}

/* ---- 64 MiB results ----------------------------------------------------- */

#define BIG ((size_t)64 << 20)

static int big_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t i = sp_ctx_key(ctx)[1] - '0';
    if (i % 2)
        return sp_set_resultf(ctx, "small %u", (unsigned)i);
    unsigned char *b = malloc(BIG + 1);
    if (!b)
        return sp_fail(ctx, 1, "no memory");
    memset(b, (int)i, BIG);
    for (size_t k = 0; k < BIG; k += 4096)
        b[k] = pattern(i, k);
    b[BIG - 1] = (unsigned char)(0xa0 + i);
    return sp_set_result_owned(ctx, b, BIG, NULL);
}

static void test_64_mib_results(void **state)
{
    (void)state;
    enum { N = 4 };
    char(*keys)[16];
    sp_task *t = table(N, big_task, &keys);
    sp_options o = local_opts();
    sp_results *res = run(t, N, &o, NULL);
    if (res) {
        assert_int_equal(sp_results_ok(res), N);
        for (size_t i = 0; i < N; i++) {
            size_t len;
            const unsigned char *d = sp_entry_data(sp_results_at(res, i), &len);
            if (i % 2) {
                char want[16];
                snprintf(want, sizeof want, "small %u", (unsigned)i);
                assert_string_equal((const char *)d, want);
                continue;
            }
            assert_int_equal(len, BIG);
            for (size_t k = 0; k < BIG - 1; k++)
                if (d[k] != (k % 4096 ? (unsigned char)i : pattern(i, k)))
                    fail_msg("k%zu: byte %zu differs", i, k);
            assert_int_equal(d[BIG - 1], 0xa0 + i);
            assert_int_equal(d[BIG], 0);
        }
        sp_results_free(res);
    }
    free(t);
    free(keys);
}

/* ---- time: the deadline, task_timeout ----------------------------------- */

static int nap_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    if (test_wait_cancel(ctx, test_ms(40)))
        return sp_fail(ctx, 9, "asked to stop");
    return 0;
}

static void test_deadline(void **state)
{
    (void)state;
    enum { N = 120 }; /* 2.4 s of naps on 2 worker ranks */
    char(*keys)[16];
    sp_task *t = table(N, nap_task, &keys);
    sp_options o = local_opts();
    o.max_workers = 1;
    o.deadline = test_ms(600) / 1e3;
    sp_results *res = run(t, N, &o, NULL);
    if (res) {
        /* About 600 / 40 tasks per worker rank finish (at least one even
         * on a machine too busy to start the ranks' workers at once);
         * the rest never start or are stopped at the deadline. Every key
         * is back, well before the whole table could have run. */
        size_t ok = sp_results_ok(res);
        size_t cancelled = sp_results_count_kind(res, SP_KIND_CANCELLED);
        size_t timed = sp_results_count_kind(res, SP_KIND_TIMED_OUT);
        assert_true(ok >= 1);
        assert_true(ok < N);
        assert_true(cancelled >= 1);
        assert_int_equal(ok + cancelled + timed, N);
        for (size_t i = 0; i < N; i++) {
            const sp_entry *e = sp_results_at(res, i);
            if (sp_entry_kind(e) == SP_KIND_CANCELLED) {
                assert_int_equal(sp_entry_worker(e), SP_NO_WORKER);
                assert_string_equal(sp_entry_message(e),
                                    "not started: the deadline passed");
            }
            /* Nothing starts after the deadline. */
            if (sp_entry_worker(e) != SP_NO_WORKER)
                assert_true(sp_entry_start(e) <=
                            o.deadline + test_ms(50) / 1e3);
        }
        assert_true(sp_results_elapsed(res) < o.deadline + test_ms(1000) / 1e3);
        sp_results_free(res);
    }
    free(t);
    free(keys);
}

static int hang_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    if (strcmp(sp_ctx_key(ctx), "k1"))
        return sp_set_result_str(ctx, "fine");
    /* Threads and serial cannot be killed: they poll. */
    if (test_backend != SP_BACKEND_PROCESS)
        return test_wait_cancel(ctx, 30000) ? 1 : 0;
    for (;;)
        pause();
}

static void test_task_timeout(void **state)
{
    (void)state;
    enum { N = 6 };
    char(*keys)[16];
    sp_task *t = table(N, hang_task, &keys);
    sp_options o = local_opts();
    o.task_timeout = test_ms(200) / 1e3;
    sp_results *res = run(t, N, &o, NULL);
    if (res) {
        assert_int_equal(sp_results_ok(res), N - 1);
        const sp_entry *e = sp_results_get(res, "k1");
        assert_int_equal(sp_entry_kind(e), SP_KIND_TIMED_OUT);
        assert_true(sp_entry_end(e) - sp_entry_start(e) >= o.task_timeout);
        sp_results_free(res);
    }
    free(t);
    free(keys);
}

/* ---- stopping: fail-fast, on_done --------------------------------------- */

static int fail_one_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    if (!strcmp(sp_ctx_key(ctx), "k2"))
        return sp_fail(ctx, 5, "k2 fails");
    test_sleep_ms(test_ms(15));
    return 0;
}

static void test_fail_fast(void **state)
{
    (void)state;
    enum { N = 200 };
    char(*keys)[16];
    sp_task *t = table(N, fail_one_task, &keys);
    sp_options o = local_opts();
    o.max_workers = 1;
    o.on_error = SP_POLICY_FAIL_FAST;
    sp_results *res = run(t, N, &o, NULL);
    if (res) {
        assert_int_equal(sp_entry_kind(sp_results_get(res, "k2")),
                         SP_KIND_FAILED);
        size_t cancelled = sp_results_count_kind(res, SP_KIND_CANCELLED);
        assert_true(cancelled > N / 2);
        assert_int_equal(sp_results_ok(res) + cancelled + 1, N);
        for (size_t i = 0; i < N; i++) {
            const sp_entry *e = sp_results_at(res, i);
            if (sp_entry_kind(e) == SP_KIND_CANCELLED)
                assert_string_equal(sp_entry_message(e),
                                    "not started: task \"k2\" failed "
                                    "(fail-fast)");
        }
        sp_results_free(res);
    }
    free(t);
    free(keys);
}

struct done_count {
    size_t calls, stop_after;
};

static int count_done(const sp_entry *e, void *arg)
{
    (void)e;
    struct done_count *d = arg;
    return ++d->calls >= d->stop_after;
}

static int short_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    test_sleep_ms(test_ms(10));
    return sp_set_result_str(ctx, sp_ctx_key(ctx));
}

static void test_on_done(void **state)
{
    (void)state;
    enum { N = 150 };
    char(*keys)[16];
    sp_task *t = table(N, short_task, &keys);
    sp_options o = local_opts();
    o.max_workers = 1;
    struct done_count d = {.stop_after = SIZE_MAX};
    o.on_done = count_done;
    o.on_done_arg = &d;
    sp_results *res = run(t, N, &o, NULL);
    /* Called on rank 0 only, once per task. */
    assert_int_equal(d.calls, rank == 0 ? N : 0);
    if (res) {
        assert_int_equal(sp_results_ok(res), N);
        sp_results_free(res);
    }
    d = (struct done_count){.stop_after = 5};
    res = run(t, N, &o, NULL);
    if (res) {
        assert_int_equal(d.calls, N); /* the cancelled ones too */
        size_t cancelled = sp_results_count_kind(res, SP_KIND_CANCELLED);
        assert_true(cancelled > N / 2);
        assert_int_equal(sp_results_ok(res) + cancelled, N);
        for (size_t i = 0; i < N; i++) {
            const sp_entry *e = sp_results_at(res, i);
            if (sp_entry_kind(e) == SP_KIND_CANCELLED)
                assert_string_equal(
                    sp_entry_message(e),
                    "not started: the completion callback asked to stop");
            else
                assert_string_equal(sp_entry_str(e), sp_entry_key(e));
        }
        sp_results_free(res);
    }
    free(t);
    free(keys);
}

/* The local backend's default worker count (threads: one per CPU to start,
 * numbered up to 256 per rank): batches are sized for the workers a rank
 * starts with, so both worker ranks get tasks. */
static void test_default_workers_share(void **state)
{
    (void)state;
    if (size < 3) {
        skip(); /* one worker rank, or none */
        return;
    }
    enum { N = 40 };
    char(*keys)[16];
    sp_task *t = table(N, short_task, &keys);
    sp_options o = test_opts(); /* max_workers 0 */
    sp_results *res = run(t, N, &o, NULL);
    if (res) {
        assert_int_equal(sp_results_ok(res), N);
        unsigned half = sp_results_workers(res) / 2, low = 0, high = 0;
        for (size_t i = 0; i < N; i++) {
            unsigned w = sp_entry_worker(sp_results_at(res, i));
            low += w < half;
            high += w >= half;
        }
        if (!low || !high)
            fail_msg("rank 1 ran %u tasks, rank 2 ran %u", low, high);
        sp_results_free(res);
    }
    free(t);
    free(keys);
}

/* ---- validation: the same error on every rank --------------------------- */

static size_t validation_runs;

static int counting_task(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    /* Atomic: the table's last run is on the default thread backend. */
    __atomic_fetch_add(&validation_runs, 1, __ATOMIC_RELAXED);
    return 0;
}

/* Every rank got code and the same message as rank 0, containing want. */
static void expect_everywhere(int rc, int code, const char *want)
{
    char root[512];
    snprintf(root, sizeof root, "%s", sp_last_error());
    MPI_Bcast(root, sizeof root, MPI_CHAR, 0, MPI_COMM_WORLD);
    assert_int_equal(rc, code);
    assert_string_equal(sp_last_error(), root);
    if (!strstr(root, want))
        fail_msg("rank %d: \"%s\" lacks \"%s\"", rank, root, want);
}

static void test_validation_on_every_rank(void **state)
{
    (void)state;
    sp_task t[4] = {{.key = "a", .fn = counting_task},
                    {.key = "b", .fn = counting_task},
                    {.key = "a", .fn = counting_task},
                    {.key = "d", .fn = counting_task}};
    validation_runs = 0;
    sp_results *res = (sp_results *)&res;
    int rc = sp_mpi_parallel(MPI_COMM_WORLD, t, 4, NULL, &res);
    expect_everywhere(rc, SP_EDUPKEY,
                      "SP_EDUPKEY: duplicate task key \"a\" at index 2");
    assert_null(res);

    t[2].key = "c";
    t[3].fn = NULL;
    rc = sp_mpi_parallel(MPI_COMM_WORLD, t, 4, NULL, &res);
    expect_everywhere(rc, SP_ENOFN, "SP_ENOFN");
    t[3].fn = counting_task;

    /* An option only one rank gets wrong: its rank is named everywhere. */
    sp_options o = {.max_workers = rank == size - 1 ? SP_MAX_WORKERS + 1 : 0};
    rc = sp_mpi_parallel(MPI_COMM_WORLD, t, 4, &o, &res);
    char want[64];
    if (size > 1)
        snprintf(want, sizeof want, "SP_EOPTION: rank %d: ", size - 1);
    else
        snprintf(want, sizeof want, "SP_EOPTION: ");
    expect_everywhere(rc, SP_EOPTION, want);

    sp_mpi_options m = {.inflight = rank == 0 ? SP_MPI_MAX_INFLIGHT + 1 : 0};
    rc = sp_mpi_parallel_ex(MPI_COMM_WORLD, t, 4, NULL, &m, &res);
    expect_everywhere(rc, SP_EOPTION, "sp_mpi_options.inflight");
    m = (sp_mpi_options){.reserved[3] = 1};
    rc = sp_mpi_parallel_ex(MPI_COMM_WORLD, t, 4, NULL, &m, &res);
    expect_everywhere(rc, SP_ENOTSUP, "reserved");

    /* Index-keyed tables (keys NULL) need keys here: refused everywhere. */
    sp_task plain[4] = {{.fn = counting_task},
                        {.fn = counting_task},
                        {.fn = counting_task},
                        {.fn = counting_task}};
    sp_options ix = {.index_keys = 1};
    rc = sp_mpi_parallel(MPI_COMM_WORLD, plain, 4, &ix, &res);
    expect_everywhere(rc, SP_ENOTSUP, "sp_options.index_keys");

    /* 'out' NULL on one rank fails the call everywhere. */
    rc = sp_mpi_parallel(MPI_COMM_WORLD, t, 4, NULL,
                         rank == size - 1 ? NULL : &res);
    expect_everywhere(rc, SP_EINVAL, "the 'out' argument is NULL");

    if (size > 2) {
        /* Tables that differ between ranks. */
        t[1].key = rank == 1 ? "B" : "b";
        rc = sp_mpi_parallel(MPI_COMM_WORLD, t, 4, NULL, &res);
        expect_everywhere(rc, SP_EINVAL,
                          "the task table differs between ranks: rank 1's "
                          "keys or dependencies are not rank 0's");
        t[1].key = "b";
        /* Same keys, other dependencies on rank 2. */
        static const char *const after_a[] = {"a", NULL};
        static const char *const after_b[] = {"b", NULL};
        t[3].after = rank == 2 ? after_b : after_a;
        rc = sp_mpi_parallel(MPI_COMM_WORLD, t, 4, NULL, &res);
        expect_everywhere(rc, SP_EINVAL,
                          "the task table differs between ranks: rank 2's "
                          "keys or dependencies are not rank 0's");
        t[3].after = NULL;
        rc = sp_mpi_parallel(MPI_COMM_WORLD, t, rank == 2 ? 3 : 4, NULL, &res);
        expect_everywhere(rc, SP_EINVAL, "rank 2 has 3 tasks, rank 0 has 4");
    }
    /* nothing ran anywhere */
    assert_int_equal(__atomic_load_n(&validation_runs, __ATOMIC_RELAXED), 0);

    /* And the same table still runs afterwards. */
    res = run(t, 4, NULL, NULL);
    if (res) {
        assert_int_equal(sp_results_ok(res), 4);
        sp_results_free(res);
    }
}

static void test_bad_communicator(void **state)
{
    (void)state;
    sp_results *res;
    assert_int_equal(sp_mpi_parallel(MPI_COMM_NULL, NULL, 0, NULL, &res),
                     SP_EINVAL);
    assert_string_equal(sp_last_error(),
                        "SP_EINVAL: the communicator is MPI_COMM_NULL");
}

/* ---- dependencies, argument bytes, spawning ----------------------------- */

#define DEP_BIG ((size_t)5 << 20) /* a result above one message's size */
#define ARG_BIG ((size_t)100000)  /* argument bytes above the inline limit */

static unsigned char arg_big[ARG_BIG];

/* Rank 0's argument bytes of srcK (K != 4): "argK", a NUL, "tail". */
static void small_arg(size_t k, unsigned char out[9])
{
    memcpy(out, "argK\0tail", 9);
    out[3] = (unsigned char)('0' + k);
}

static int src_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t k = (size_t)(sp_ctx_key(ctx)[3] - '0'), len;
    const unsigned char *d = sp_ctx_data(ctx, &len);
    unsigned char want[9];
    small_arg(k, want);
    if (k == 4 ? len != ARG_BIG || !d || memcmp(d, arg_big, ARG_BIG)
               : len != 9 || !d || memcmp(d, want, 9))
        return sp_fail(ctx, 1, "src%zu: not rank 0's argument bytes (%zu)", k,
                       len);
    switch (k) {
    case 0: {
        unsigned char *b = malloc(DEP_BIG + 1);
        if (!b)
            return sp_fail(ctx, 2, "no memory");
        for (size_t j = 0; j < DEP_BIG; j++)
            b[j] = pattern(0, j);
        return sp_set_result_owned(ctx, b, DEP_BIG, NULL);
    }
    case 1:
        return 0; /* stores no result */
    case 2:
        return sp_set_result(ctx, "", 0); /* stores 0 bytes */
    default:
        return sp_set_resultf(ctx, "src%zu saw %zu bytes", k, len);
    }
}

/* 0 when d/len is what srcK's result must be, as a dependency reads it. */
static int src_result_differs(size_t k, const unsigned char *d, size_t len)
{
    if (!d || d[len])
        return 1;
    if (k == 0) {
        if (len != DEP_BIG)
            return 1;
        for (size_t j = 0; j < DEP_BIG; j++)
            if (d[j] != pattern(0, j))
                return 1;
        return 0;
    }
    if (k == 1 || k == 2)
        return len != 0;
    char want[64];
    snprintf(want, sizeof want, "src%zu saw %zu bytes", k,
             k == 4 ? ARG_BIG : (size_t)9);
    return len != strlen(want) || strcmp((const char *)d, want);
}

static int mid_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    const char *key = sp_ctx_key(ctx);
    size_t m = (size_t)(key[3] - '0'), lens[2];
    for (size_t j = 0; j < 2; j++) {
        char dep[8];
        snprintf(dep, sizeof dep, "src%zu", 2 * m + j);
        const unsigned char *d = sp_dep_result(ctx, dep, &lens[j]);
        if (!d)
            return sp_fail(ctx, 1, "%s: %s", dep, sp_last_error());
        if (src_result_differs(2 * m + j, d, lens[j]))
            return sp_fail(ctx, 2, "%s's result differs", dep);
    }
    char want[96];
    snprintf(want, sizeof want,
             "SP_ENODEP: sp_dep_result: \"top\" is not a dependency of task "
             "\"%s\"",
             key);
    if (sp_dep_result(ctx, "top", NULL) || strcmp(sp_last_error(), want))
        return sp_fail(ctx, 3, "a non-dependency answered: %s",
                       sp_last_error());
    return sp_set_resultf(ctx, "%s(%zu,%zu)", key, lens[0], lens[1]);
}

static int top_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    char out[128] = "top:";
    for (int m = 0; m < 3; m++) {
        char dep[8];
        snprintf(dep, sizeof dep, "mid%d", m);
        const char *d = sp_dep_result(ctx, dep, NULL);
        if (!d)
            return sp_fail(ctx, 1, "%s: %s", dep, sp_last_error());
        size_t used = strlen(out);
        snprintf(out + used, sizeof out - used, " %s", d);
    }
    return sp_set_result_str(ctx, out);
}

static int fail_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_fail(ctx, 7, "fails on purpose");
}

static int spawn_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    sp_task row = {.key = "spawned", .fn = spawn_task};
    if (sp_spawn(ctx, &row) != SP_ENOTSUP)
        return sp_fail(ctx, 1, "a spawn was accepted");
    return sp_set_result_str(ctx, sp_last_error());
}

static void check_graph(const sp_results *res)
{
    assert_int_equal(sp_results_count(res), 14); /* nothing was spawned */
    for (size_t i = 0; i < sp_results_count(res); i++) {
        const sp_entry *e = sp_results_at(res, i);
        const char *key = sp_entry_key(e);
        if (!strcmp(key, "fail") || !strcmp(key, "skipped"))
            continue;
        if (sp_entry_kind(e) != SP_KIND_OK)
            fail_msg("%s: %s", key, sp_entry_message(e));
    }
    assert_int_equal(sp_results_ok(res), 12);
    const sp_entry *e = sp_results_get(res, "skipped");
    assert_int_equal(sp_entry_kind(e), SP_KIND_SKIPPED);
    assert_int_equal(sp_entry_code(e), SP_ESKIPPED);
    assert_int_equal(sp_entry_worker(e), SP_NO_WORKER);
    assert_string_equal(sp_entry_message(e),
                        "dependency 'fail' FAILED: fails on purpose");
    assert_string_equal(sp_entry_str(sp_results_get(res, "top")),
                        "top: mid0(5242880,0) mid1(0,16) mid2(21,16)");
    assert_string_equal(
        sp_entry_str(sp_results_get(res, "spawner")),
        "SP_ENOTSUP: sp_spawn: not supported in sp_mpi_parallel() (task "
        "\"spawned\" was not added): a task cannot be sent to another rank "
        "by its function; put every task in the table, ordered with 'after'");
    /* A task starts after its dependencies ended, on rank 0's clock. */
    static const char *const pairs[][2] = {
        {"mid0", "src0"}, {"mid1", "src3"}, {"mid2", "src4"}, {"top", "mid1"}};
    for (size_t k = 0; k < 4; k++)
        assert_true(sp_entry_start(sp_results_get(res, pairs[k][0])) >=
                    sp_entry_end(sp_results_get(res, pairs[k][1])) - 1e-6);
}

static void test_dependencies_and_arguments(void **state)
{
    (void)state;
    static const char *const after_mid[3][3] = {
        {"src0", "src1", NULL}, {"src2", "src3", NULL}, {"src4", "src5", NULL}};
    static const char *const after_top[] = {"mid0", "mid2", "mid1", NULL};
    static const char *const after_fail[] = {"src5", "fail", NULL};
    static const char stale[] = "stale";
    char keys[6][8];
    unsigned char args[6][9];
    sp_task t[14];
    for (size_t j = 0; j < ARG_BIG; j++)
        arg_big[j] = pattern(4, j);
    for (size_t k = 0; k < 6; k++) {
        snprintf(keys[k], sizeof keys[k], "src%zu", k);
        small_arg(k, args[k]);
        /* Argument bytes travel from rank 0: the other ranks' tables
         * hold other bytes, which no task may see. */
        sp_task *r = &t[1 + k];
        *r = (sp_task){.key = keys[k], .fn = src_task};
        if (rank != 0) {
            r->data = stale;
            r->len = sizeof stale - 1;
        } else {
            r->data = k == 4 ? (const void *)arg_big : args[k];
            r->len = k == 4 ? ARG_BIG : 9;
        }
    }
    /* The graph's last task comes first in the table: the order is the
     * dependencies'. */
    t[0] = (sp_task){.key = "top", .fn = top_task, .after = after_top};
    static const char *const mids[] = {"mid0", "mid1", "mid2"};
    for (size_t m = 0; m < 3; m++)
        t[7 + m] =
            (sp_task){.key = mids[m], .fn = mid_task, .after = after_mid[m]};
    t[10] = (sp_task){.key = "fail", .fn = fail_task};
    t[11] = (sp_task){.key = "skipped", .fn = src_task, .after = after_fail};
    t[12] = (sp_task){.key = "spawner", .fn = spawn_task};
    t[13] = (sp_task){.key = "plain", .fn = short_task};
    /* Every collective call before any assertion. The second: one task
     * per batch (so a graph's tasks spread over the ranks), and the map on
     * every rank, SKIPPED entry included. */
    sp_options o = local_opts();
    sp_results *res = run(t, 14, &o, NULL);
    sp_mpi_options m = {.batch = 1, .inflight = 1, .map_everywhere = 1};
    sp_results *copy = run(t, 14, &o, &m);
    uint64_t mine = map_digest(copy), root = mine;
    MPI_Bcast(&root, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (res)
        check_graph(res);
    check_graph(copy);
    assert_true(mine == root);
    sp_results_free(res);
    sp_results_free(copy);
}

/* ---- crashes on a remote rank (local process backend) ------------------- */

static int crash_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    const char *key = sp_ctx_key(ctx);
    if (!strcmp(key, "k1")) {
        /* Batches go out to ranks 1, 2, ... in order at the start, one
         * task each with batch = 1: k1 goes to rank 2, which dies of it.
         * Anywhere else it says so and the test fails. */
        if (rank != 2)
            return sp_fail(ctx, 1, "k1 ran on rank %d, not 2", rank);
        raise(SIGSEGV);
    }
    if (!strcmp(key, "k7") || !strcmp(key, "k8") || !strcmp(key, "k9")) {
        /* Any rank: an abort, an exit and a hang. */
        if (key[1] == '7')
            abort();
        if (key[1] == '8')
            _exit(3);
        for (;;)
            pause();
    }
    test_sleep_ms(test_ms(5));
    return sp_set_resultf(ctx, "%s on rank %d", key, rank);
}

static void test_crash_on_rank_2(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS || size < 3) {
        skip(); /* a crash would take its rank, and the job, with it */
        return;
    }
    enum { N = 40 };
    char(*keys)[16];
    sp_task *t = table(N, crash_task, &keys);
    sp_options o = local_opts();
    o.task_timeout = test_ms(500) / 1e3;
    sp_mpi_options m = {.batch = 1, .inflight = 1};
    sp_results *res = run(t, N, &o, &m);
    if (res) {
        const sp_entry *e = sp_results_get(res, "k1");
        assert_int_equal(sp_entry_kind(e), SP_KIND_CRASHED);
        assert_int_equal(sp_entry_signal(e), SIGSEGV);
        assert_int_equal(sp_entry_code(e), SP_ECRASHED);
        assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_LIBRARY);
        assert_non_null(strstr(sp_entry_message(e), "SIGSEGV"));
        /* k1 ran on rank 2's local workers, numbered after rank 1's. */
        assert_true(sp_entry_worker(e) >= 2);
        e = sp_results_get(res, "k7");
        assert_int_equal(sp_entry_kind(e), SP_KIND_CRASHED);
        assert_int_equal(sp_entry_signal(e), SIGABRT);
        e = sp_results_get(res, "k8");
        assert_int_equal(sp_entry_kind(e), SP_KIND_CRASHED);
        assert_int_equal(sp_entry_exit_status(e), 3);
        assert_int_equal(sp_entry_signal(e), 0);
        e = sp_results_get(res, "k9");
        assert_int_equal(sp_entry_kind(e), SP_KIND_TIMED_OUT);
        assert_int_equal(sp_entry_code(e), SP_ETIMEDOUT);
        /* Every other key is OK: the job went on. */
        assert_int_equal(sp_results_ok(res), N - 4);
        for (size_t i = 0; i < N; i++) {
            e = sp_results_at(res, i);
            if (i == 1 || (i >= 7 && i <= 9))
                continue;
            char want[32];
            snprintf(want, sizeof want, "k%u on rank ", (unsigned)i);
            assert_int_equal(strncmp(sp_entry_str(e), want, strlen(want)), 0);
        }
        sp_results_free(res);
    }
    free(t);
    free(keys);
}

/* ---- retries, decided on rank 0 ----------------------------------------- */

/* What a retry test's task does, by its key: "flaky" fails on its first
 * two attempts, "broken" on every one, "crashy" dies on its first (local
 * process backend), "slow" hangs past its time limit on its first;
 * anything else returns its key after a short nap. The attempt is the
 * one sp_ctx_attempt() gives, on whichever rank the task runs. */
static int retry_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    const char *key = sp_ctx_key(ctx);
    unsigned a = sp_ctx_attempt(ctx);
    __atomic_fetch_add(&ran_here, 1, __ATOMIC_RELAXED);
    if (!strcmp(key, "flaky") && a < 3)
        return sp_fail(ctx, 503, "attempt %u on rank %d: unavailable", a, rank);
    if (!strcmp(key, "broken") || !strncmp(key, "fails", 5))
        return sp_fail(ctx, 404, "attempt %u: no such thing", a);
    if (!strcmp(key, "crashy") && a == 1)
        raise(SIGSEGV);
    if (!strcmp(key, "slow") && a == 1) {
        if (test_backend == SP_BACKEND_PROCESS)
            for (;;)
                pause();
        test_wait_cancel(ctx, 30000);
        return 0; /* returned after its limit: TIMED_OUT */
    }
    if (key[0] == 'k')
        test_sleep_ms(test_ms(2));
    return sp_set_resultf(ctx, "%s: attempt %u on rank %d", key, a, rank);
}

/* Rows "flaky", "broken", then k0..k(n-3): a table the caller frees. */
static sp_task *retry_table(size_t n, char (**keys)[16])
{
    sp_task *t = table(n, retry_task, keys);
    snprintf((*keys)[0], 16, "flaky");
    snprintf((*keys)[1], 16, "broken");
    for (size_t i = 2; i < n; i++)
        snprintf((*keys)[i], 16, "k%u", (unsigned)(i - 2));
    return t;
}

/* Entry e ran once, OK, on a rank other than 0 when there are others. */
static void check_once_ok(const sp_entry *e)
{
    if (sp_entry_kind(e) != SP_KIND_OK)
        fail_msg("%s: %s", sp_entry_key(e), sp_entry_message(e));
    assert_int_equal(sp_entry_attempts(e), 1);
    assert_int_equal(sp_entry_first_kind(e), SP_KIND_OK);
    assert_string_equal(sp_entry_first_message(e), sp_entry_message(e));
    char want[48];
    snprintf(want, sizeof want, "%s: attempt 1 on rank ", sp_entry_key(e));
    assert_int_equal(strncmp(sp_entry_str(e), want, strlen(want)), 0);
}

/* The rank named at the end of s ("... on rank R..."). */
static int rank_in(const char *s)
{
    const char *p = strstr(s, "on rank ");
    assert_non_null(p);
    return atoi(p + 8);
}

static void check_retries(const sp_results *res, size_t n)
{
    const sp_entry *e = sp_results_get(res, "flaky");
    if (sp_entry_kind(e) != SP_KIND_OK)
        fail_msg("flaky: %s", sp_entry_message(e));
    assert_int_equal(sp_entry_attempts(e), 3);
    assert_int_equal(strncmp(sp_entry_str(e), "flaky: attempt 3 on rank ", 25),
                     0);
    assert_int_equal(sp_entry_first_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_first_code(e), 503);
    assert_int_equal(
        strncmp(sp_entry_first_message(e), "attempt 1 on rank ", 18), 0);
    if (size > 1) { /* rank 0 only schedules */
        assert_true(rank_in(sp_entry_str(e)) != 0);
        assert_true(rank_in(sp_entry_first_message(e)) != 0);
    }
    e = sp_results_get(res, "broken");
    assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_attempts(e), 3); /* 1 + retries */
    assert_int_equal(sp_entry_code(e), 404);
    assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_TASK);
    assert_string_equal(sp_entry_message(e), "attempt 3: no such thing");
    assert_int_equal(sp_entry_first_kind(e), SP_KIND_FAILED);
    assert_int_equal(sp_entry_first_code(e), 404);
    assert_string_equal(sp_entry_first_message(e), "attempt 1: no such thing");
    /* Every attempt, each where and when it ran. */
    const sp_entry *a2 = sp_entry_attempt(e, 2);
    assert_non_null(a2);
    assert_int_equal(sp_entry_kind(a2), SP_KIND_FAILED);
    assert_int_equal(sp_entry_code(a2), 404);
    assert_string_equal(sp_entry_message(a2), "attempt 2: no such thing");
    assert_true(sp_entry_worker(a2) != SP_NO_WORKER);
    assert_true(sp_entry_end(sp_entry_attempt(e, 1)) <= sp_entry_start(a2));
    assert_true(sp_entry_end(a2) <= sp_entry_start(e));
    e = sp_results_get(res, "flaky");
    assert_int_equal(strncmp(sp_entry_message(sp_entry_attempt(e, 2)),
                             "attempt 2 on rank ", 18),
                     0);
    for (size_t i = 2; i < n; i++)
        check_once_ok(sp_results_at(res, i));
    assert_int_equal(sp_results_ok(res), n - 1);
    assert_int_equal(sp_results_count_kind(res, SP_KIND_FAILED), 1);
}

static void test_retries(void **state)
{
    (void)state;
    enum { N = 40 };
    char(*keys)[16];
    sp_task *t = retry_table(N, &keys);
    sp_options o = local_opts();
    o.retries = 2;
    ran_here = 0;
    sp_results *res = run(t, N, &o, NULL);
    /* Each callback ran once per attempt, somewhere: the ranks' local
     * calls tried nothing again on their own. */
    unsigned long mine = ran_here, all = 0;
    MPI_Reduce(&mine, &all, 1, MPI_UNSIGNED_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    /* One task per batch (retries go to whichever rank asks), and the map
     * on every rank, the attempts and first failures in it. */
    sp_mpi_options m = {.batch = 1, .inflight = 1, .map_everywhere = 1};
    sp_results *copy = run(t, N, &o, &m);
    uint64_t digest = map_digest(copy), root = digest;
    MPI_Bcast(&root, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (rank == 0 && test_backend != SP_BACKEND_PROCESS)
        assert_int_equal(all, N - 2 + 3 + 3);
    if (res) {
        check_retries(res, N);
        sp_results_free(res);
    }
    check_retries(copy, N);
    assert_true(digest == root);
    sp_results_free(copy);
    free(t);
    free(keys);
}

/* A row's policy overrides the call's retries, retry_on and time limit. */
static void test_retry_policies(void **state)
{
    (void)state;
    enum { N = 12 };
    static const sp_task_policy more = {.retries = 3};
    static const sp_task_policy never = {.retries = SP_NO_RETRIES};
    static const sp_task_policy crashes_only = {.retry_on = SP_RETRY_CRASHED};
    sp_task_policy slow = {.retries = 2,
                           .retry_on = SP_RETRY_TIMED_OUT,
                           .time_limit = test_ms(100) / 1e3};
    char(*keys)[16];
    sp_task *t = table(N, retry_task, &keys);
    static const char *const names[] = {"fails-more", "fails-never",
                                        "fails-crash", "fails", "slow"};
    const sp_task_policy *pols[] = {&more, &never, &crashes_only, NULL, &slow};
    for (size_t i = 0; i < N; i++) {
        if (i < 5) {
            snprintf(keys[i], 16, "%s", names[i]);
            t[i].policy = pols[i];
        } else {
            snprintf(keys[i], 16, "k%u", (unsigned)(i - 5));
        }
    }
    sp_options o = local_opts();
    o.retries = 1;
    o.retry_on = SP_RETRY_FAILED;
    sp_results *res = run(t, N, &o, NULL);
    if (res) {
        static const unsigned attempts[] = {4, 1, 1, 2};
        for (size_t i = 0; i < 4; i++) {
            const sp_entry *e = sp_results_at(res, i);
            char want[48];
            snprintf(want, sizeof want, "attempt %u: no such thing",
                     attempts[i]);
            assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
            assert_int_equal(sp_entry_attempts(e), attempts[i]);
            assert_string_equal(sp_entry_message(e), want);
            assert_string_equal(sp_entry_first_message(e),
                                "attempt 1: no such thing");
        }
        /* Timed out on its first attempt, then fine. */
        const sp_entry *e = sp_results_get(res, "slow");
        if (sp_entry_kind(e) != SP_KIND_OK)
            fail_msg("slow: %s", sp_entry_message(e));
        assert_int_equal(sp_entry_attempts(e), 2);
        assert_int_equal(sp_entry_first_kind(e), SP_KIND_TIMED_OUT);
        assert_int_equal(strncmp(sp_entry_str(e), "slow: attempt 2 on ", 19),
                         0);
        for (size_t i = 5; i < N; i++)
            check_once_ok(sp_results_at(res, i));
        sp_results_free(res);
    }
    free(t);
    free(keys);
}

/* The delay between attempts, in the clock every rank of this one machine
 * shares (CLOCK_MONOTONIC), so attempts that ran on different ranks can
 * be put in order: "waits" and "flaky" fail with the time they failed in
 * their message, and every task that succeeds returns the time it
 * started. */
static long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int delay_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    long long now = mono_ns();
    const char *key = sp_ctx_key(ctx);
    unsigned a = sp_ctx_attempt(ctx);
    if ((!strcmp(key, "waits") && a < 2) || (!strcmp(key, "flaky") && a < 3))
        return sp_fail(ctx, 1, "%lld", now);
    if (key[0] == 'k')
        test_sleep_ms(test_ms(2));
    return sp_set_resultf(ctx, "%lld", now);
}

/* The delay is rank 0's: a retry starts no earlier than its delay after
 * the attempt before it ended, and other tasks start meanwhile (rank 0
 * never waits for a delay while there is other work). */
static void test_retry_delay(void **state)
{
    (void)state;
    enum { N = 24 };
    char(*keys)[16];
    sp_task *t = table(N, delay_task, &keys);
    snprintf(keys[0], 16, "flaky");
    snprintf(keys[1], 16, "waits");
    /* "waits" waits long before its one retry; the rest go on. */
    sp_task_policy wait = {.retries = 1,
                           .retry_delay = test_ms(150) / 1e3,
                           .retry_backoff = SP_BACKOFF_FIXED};
    t[1].policy = &wait;
    sp_options o = local_opts();
    o.max_workers = 1;
    o.retries = 2;
    o.retry_delay = test_ms(5) / 1e3; /* then 10 ms: doubling */
    o.retry_backoff = SP_BACKOFF_DOUBLING;
    sp_mpi_options m = {.batch = 1, .inflight = 1};
    sp_results *res = run(t, N, &o, &m);
    if (res) {
        const sp_entry *e = sp_results_get(res, "flaky");
        assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
        assert_int_equal(sp_entry_attempts(e), 3);
        /* Attempt 3 began 5 + 10 ms or more after attempt 1 ended. */
        long long gap =
            atoll(sp_entry_str(e)) - atoll(sp_entry_first_message(e));
        assert_true(gap >= (long long)(3 * o.retry_delay * 1e9));
        /* In rank 0's clock too: attempt 1 began at 0 or later. */
        assert_true(sp_entry_start(e) >= 3 * o.retry_delay - 1e-6);
        e = sp_results_get(res, "waits");
        assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
        assert_int_equal(sp_entry_attempts(e), 2);
        long long failed = atoll(sp_entry_first_message(e));
        long long retried = atoll(sp_entry_str(e));
        assert_true(retried - failed >= (long long)(wait.retry_delay * 1e9));
        assert_true(sp_entry_start(e) >= wait.retry_delay - 1e-6);
        /* Tasks were handed out and started while it waited: more than
         * the one other rank may have held already. */
        unsigned meanwhile = 0;
        for (size_t i = 2; i < N; i++) {
            e = sp_results_at(res, i);
            assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
            assert_int_equal(sp_entry_attempts(e), 1);
            long long at = atoll(sp_entry_str(e));
            meanwhile += at > failed && at < retried;
        }
        if (meanwhile < 2)
            fail_msg("%u tasks started while \"waits\" waited", meanwhile);
        sp_results_free(res);
    }
    free(t);
    free(keys);
}

/* A task that crashes on its first attempt on a worker rank (its local
 * process backend isolates it) is tried again and comes back OK. */
static void test_retry_after_crash(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS) {
        skip(); /* a crash would take its rank, and the job, with it */
        return;
    }
    enum { N = 10 };
    char(*keys)[16];
    sp_task *t = retry_table(N, &keys);
    snprintf(keys[0], 16, "crashy");
    snprintf(keys[1], 16, "k%u", N);
    sp_options o = local_opts();
    o.retries = 1;
    o.retry_on = SP_RETRY_CRASHED;
    sp_mpi_options m = {.batch = 1, .inflight = 1};
    sp_results *res = run(t, N, &o, &m);
    if (res) {
        const sp_entry *e = sp_results_get(res, "crashy");
        if (sp_entry_kind(e) != SP_KIND_OK)
            fail_msg("crashy: %s", sp_entry_message(e));
        assert_int_equal(sp_entry_attempts(e), 2);
        assert_int_equal(
            strncmp(sp_entry_str(e), "crashy: attempt 2 on rank ", 26), 0);
        if (size > 1)
            assert_true(rank_in(sp_entry_str(e)) != 0);
        assert_int_equal(sp_entry_first_kind(e), SP_KIND_CRASHED);
        assert_int_equal(sp_entry_first_code(e), SP_ECRASHED);
        assert_non_null(strstr(sp_entry_first_message(e), "SIGSEGV"));
        for (size_t i = 1; i < N; i++)
            check_once_ok(sp_results_at(res, i));
        sp_results_free(res);
    }
    free(t);
    free(keys);
}

/* Fail-fast sees only last attempts: a failure that will be retried stops
 * nothing on any rank; the last one stops the run. */
static void test_retry_fail_fast(void **state)
{
    (void)state;
    enum { N = 200 };
    char(*keys)[16];
    sp_task *t = retry_table(N, &keys);
    sp_options o = local_opts();
    o.on_error = SP_POLICY_FAIL_FAST;
    o.retries = 2;
    /* "broken" only at the end of the table first: nothing stops. */
    snprintf(keys[1], 16, "k%u", N - 2);
    snprintf(keys[N - 1], 16, "broken");
    t[N - 1].fn = short_task;
    sp_results *res = run(t, N, &o, NULL);
    /* Then "broken" second: its third failure stops the run. */
    snprintf(keys[1], 16, "broken");
    snprintf(keys[N - 1], 16, "k%u", N - 2);
    sp_results *stopped = run(t, N, &o, NULL);
    if (res) {
        const sp_entry *e = sp_results_get(res, "flaky");
        assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
        assert_int_equal(sp_entry_attempts(e), 3);
        assert_int_equal(sp_results_ok(res), N);
        sp_results_free(res);
    }
    if (stopped) {
        const sp_entry *e = sp_results_get(stopped, "broken");
        assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
        assert_int_equal(sp_entry_attempts(e), 3);
        size_t cancelled = sp_results_count_kind(stopped, SP_KIND_CANCELLED);
        assert_true(cancelled >= 1);
        assert_int_equal(sp_results_ok(stopped) + cancelled + 1, N);
        for (size_t i = 0; i < N; i++) {
            e = sp_results_at(stopped, i);
            if (sp_entry_kind(e) == SP_KIND_CANCELLED &&
                sp_entry_worker(e) == SP_NO_WORKER)
                assert_string_equal(sp_entry_message(e),
                                    "not started: task \"broken\" failed "
                                    "(fail-fast)");
            if (sp_entry_kind(e) == SP_KIND_OK && i != 0)
                assert_int_equal(sp_entry_attempts(e), 1);
        }
        sp_results_free(stopped);
    }
    free(t);
    free(keys);
}

/* A retry whose delay would end after the deadline is not made. */
static void test_retry_deadline(void **state)
{
    (void)state;
    enum { N = 8 };
    char(*keys)[16];
    sp_task *t = retry_table(N, &keys);
    snprintf(keys[0], 16, "k%u", N);
    sp_options o = local_opts();
    o.retries = 3;
    o.deadline = test_ms(2000) / 1e3;
    o.retry_delay = 60; /* seconds: far after the deadline */
    sp_results *res = run(t, N, &o, NULL);
    if (res) {
        const sp_entry *e = sp_results_get(res, "broken");
        assert_int_equal(sp_entry_kind(e), SP_KIND_FAILED);
        assert_int_equal(sp_entry_attempts(e), 1);
        assert_string_equal(sp_entry_message(e), "attempt 1: no such thing");
        for (size_t i = 0; i < N; i++)
            if (i != 1)
                check_once_ok(sp_results_at(res, i));
        /* Nothing waited for the retry that was not made. */
        assert_true(sp_results_elapsed(res) < o.deadline);
        sp_results_free(res);
    }
    free(t);
    free(keys);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_teardown(test_every_result_comes_back, world_teardown),
    cmocka_unit_test_teardown(test_small_batches, world_teardown),
    cmocka_unit_test_teardown(test_default_workers_share, world_teardown),
    cmocka_unit_test_teardown(test_map_everywhere, world_teardown),
    cmocka_unit_test_teardown(test_empty_table, world_teardown),
    cmocka_unit_test_teardown(test_64_mib_results, world_teardown),
    cmocka_unit_test_teardown(test_deadline, world_teardown),
    cmocka_unit_test_teardown(test_task_timeout, world_teardown),
    cmocka_unit_test_teardown(test_fail_fast, world_teardown),
    cmocka_unit_test_teardown(test_on_done, world_teardown),
    cmocka_unit_test_teardown(test_dependencies_and_arguments, world_teardown),
    cmocka_unit_test_teardown(test_validation_on_every_rank, world_teardown),
    cmocka_unit_test_teardown(test_bad_communicator, world_teardown),
    cmocka_unit_test_teardown(test_crash_on_rank_2, world_teardown),
    cmocka_unit_test_teardown(test_retries, world_teardown),
    cmocka_unit_test_teardown(test_retry_policies, world_teardown),
    cmocka_unit_test_teardown(test_retry_delay, world_teardown),
    cmocka_unit_test_teardown(test_retry_after_crash, world_teardown),
    cmocka_unit_test_teardown(test_retry_fail_fast, world_teardown),
    cmocka_unit_test_teardown(test_retry_deadline, world_teardown),
};

/* `test-mpi rank-death`: k1 crashes rank 2 itself (local thread backend,
 * nothing isolates it). Not a cmocka test: what happens is Open MPI's
 * (it ends the job), and tests/check-mpi-rank-death.sh checks it. */
static int death_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    if (rank == 2 && !strcmp(sp_ctx_key(ctx), "k1")) {
        /* A real fault: worker threads block asynchronous signals, so a
         * raise() would only stay pending there. */
        volatile uintptr_t addr = 64;
        *(volatile int *)addr = 1;
    }
    test_sleep_ms(200);
    return 0;
}

static int rank_death(void)
{
    enum { N = 8 };
    char(*keys)[16];
    sp_task *t = table(N, death_task, &keys);
    sp_options o = {.backend = SP_BACKEND_THREAD, .max_workers = 1};
    sp_mpi_options m = {.batch = 1, .inflight = 1};
    sp_results *res = NULL;
    int rc = sp_mpi_parallel_ex(MPI_COMM_WORLD, t, N, &o, &m, &res);
    printf("rank %d: sp_mpi_parallel returned %d\n", rank, rc);
    sp_results_free(res);
    free(t);
    free(keys);
    MPI_Finalize();
    return 0;
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc > 1 && !strcmp(argv[1], "rank-death"))
        return rank_death();
    const char *group = test_init(argc, argv, "mpi");
    int rc = 2;
    if (group) {
        char name[160];
        snprintf(name, sizeof name, "%s/%d-ranks/rank-%d", group, size, rank);
        /* One report: rank 0's. Failures on any rank still show (cmocka
         * writes them to stderr) and fail the job. */
        if (rank != 0 && !freopen("/dev/null", "w", stdout))
            return 1;
        rc = cmocka_run_group_tests_name(name, tests, NULL, NULL);
    }
    MPI_Finalize();
    return rc;
}
