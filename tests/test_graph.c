/* SPDX-License-Identifier: MIT */
/* Task graphs: dependencies ('after'), dependency results, failure
 * travelling down the graph as SKIPPED, validation of the graph, spawning
 * from running tasks, and the run controls over a graph. Every backend. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "common.h"

#include <unistd.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

/* Each task's result is its key followed by the results of its
 * dependencies in 'after' order, joined by '+': a task that ran before
 * its dependencies, or read the wrong one, shows in the string. */
static int join(sp_ctx *ctx, void *arg)
{
    (void)arg;
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf, "%s", sp_ctx_key(ctx));
    const sp_task *row = arg;
    for (size_t k = 0; row && row->after && row->after[k]; k++) {
        size_t len;
        const char *dep = sp_dep_result(ctx, row->after[k], &len);
        if (!dep)
            return sp_fail(ctx, 90, "no result for %s: %s", row->after[k],
                           sp_last_error());
        if (strlen(dep) != len)
            return sp_fail(ctx, 91, "length of %s", row->after[k]);
        n += (size_t)snprintf(buf + n, n < sizeof buf ? sizeof buf - n : 0,
                              "+(%s)", dep);
    }
    return sp_set_result_str(ctx, buf);
}

static int fails(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_fail(ctx, 7, "boom in %s", sp_ctx_key(ctx));
}

static int ok_empty(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return 0;
}

static sp_results *run_table(sp_task *t, size_t n, unsigned workers)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].fn == join)
            t[i].arg = &t[i];
    sp_options o = test_opts();
    o.max_workers = workers;
    sp_results *res = NULL;
    int rc = simple_parallel(t, n, &o, &res);
    if (rc)
        fail_msg("simple_parallel: %s", sp_last_error());
    return res;
}

static void test_chain_and_diamond(void **state)
{
    (void)state;
    const char *b_after[] = {"a", NULL}, *c_after[] = {"b", NULL},
               *d_after[] = {"a", NULL}, *e_after[] = {"c", "d", NULL};
    /* Listed out of order on purpose: dependencies are by key. */
    sp_task t[] = {
        {.key = "e", .fn = join, .after = e_after},
        {.key = "c", .fn = join, .after = c_after},
        {.key = "a", .fn = join},
        {.key = "d", .fn = join, .after = d_after},
        {.key = "b", .fn = join, .after = b_after},
    };
    for (unsigned w = 1; w <= 4; w *= 2) {
        sp_results *res = run_table(t, 5, w);
        assert_int_equal(sp_results_ok(res), 5);
        assert_string_equal(sp_entry_str(sp_results_get(res, "e")),
                            "e+(c+(b+(a)))+(d+(a))");
        const sp_entry *a = sp_results_get(res, "a"),
                       *e = sp_results_get(res, "e");
        assert_true(sp_entry_start(e) >= sp_entry_end(a));
        sp_results_free(res);
    }
}

/* The threads of this process (Linux), or -1. */
static long thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %ld", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

/* 10,000 tasks fan out from one and back into one. The 10,000 made ready
 * at once start no more than the call's 4 workers (each used to start a
 * thread while the first ones were still starting: hundreds under
 * valgrind). */
static void test_fan_out_fan_in(void **state)
{
    (void)state;
    enum { N = 10000 };
    sp_task *t = calloc(N + 2, sizeof *t);
    char(*keys)[16] = malloc((N + 2) * sizeof *keys);
    const char **all = malloc((N + 1) * sizeof *all);
    static const char *root_only[] = {"root", NULL};
    assert_non_null(t);
    t[0] = (sp_task){.key = "root", .fn = ok_empty};
    for (size_t i = 1; i <= N; i++) {
        snprintf(keys[i], sizeof keys[i], "m%zu", i);
        t[i] = (sp_task){.key = keys[i], .fn = ok_empty, .after = root_only};
        all[i - 1] = keys[i];
    }
    all[N] = NULL;
    t[N + 1] = (sp_task){.key = "sink", .fn = ok_empty, .after = all};
    long before = thread_count();
    sp_results *res = run_table(t, N + 2, 4);
    long after = thread_count();
    if (before > 0 && after > before + 4)
        fail_msg("%ld threads before the call, %ld after", before, after);
    assert_int_equal(sp_results_ok(res), N + 2);
    double root_end = sp_entry_end(sp_results_get(res, "root"));
    double sink_start = sp_entry_start(sp_results_get(res, "sink"));
    for (size_t i = 1; i <= N; i++) {
        const sp_entry *e = sp_results_at(res, i);
        assert_true(sp_entry_start(e) >= root_end);
        assert_true(sp_entry_end(e) <= sink_start);
    }
    sp_results_free(res);
    free(all);
    free(keys);
    free(t);
}

/* A failure skips the whole subtree below it, transitively, with
 * messages naming the dependency and how it ended; unrelated tasks run. */
static void test_failure_skips_the_subtree(void **state)
{
    (void)state;
    const char *after_bad[] = {"bad", NULL}, *after_mid[] = {"mid", NULL},
               *after_both[] = {"leaf", "ok", NULL};
    sp_task t[] = {
        {.key = "bad", .fn = fails},
        {.key = "ok", .fn = join},
        {.key = "mid", .fn = join, .after = after_bad},
        {.key = "leaf", .fn = join, .after = after_mid},
        {.key = "both", .fn = join, .after = after_both},
        {.key = "free", .fn = join},
    };
    sp_results *res = run_table(t, 6, 2);
    const sp_entry *e = sp_results_get(res, "mid");
    assert_int_equal(sp_entry_kind(e), SP_KIND_SKIPPED);
    assert_int_equal(sp_entry_code(e), SP_ESKIPPED);
    assert_int_equal(sp_entry_code_origin(e), SP_ORIGIN_LIBRARY);
    assert_int_equal(sp_entry_worker(e), SP_NO_WORKER);
    assert_string_equal(sp_entry_message(e),
                        "dependency 'bad' FAILED: boom in bad");
    assert_string_equal(
        sp_entry_message(sp_results_get(res, "leaf")),
        "dependency 'mid' SKIPPED: dependency 'bad' FAILED: boom in bad");
    assert_int_equal(sp_entry_kind(sp_results_get(res, "both")),
                     SP_KIND_SKIPPED);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "ok")), SP_KIND_OK);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "free")), SP_KIND_OK);
    assert_int_equal(sp_results_count_kind(res, SP_KIND_SKIPPED), 3);
    assert_int_equal(sp_results_failed(res), 4);
    sp_results_free(res);
}

static int segfaults(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    volatile uintptr_t addr = 64;
    *(volatile int *)addr = 1;
    return 0;
}

/* Process backend: a crashed dependency skips its dependents, and the
 * message says how it crashed. */
static void test_crashed_dependency(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip(); /* a crash takes down a thread or serial caller */
    const char *after[] = {"branch:101", NULL};
    sp_task t[] = {{.key = "branch:101", .fn = segfaults},
                   {.key = "bus:7", .fn = join, .after = after}};
    sp_results *res = run_table(t, 2, 2);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 0)), SP_KIND_CRASHED);
    const sp_entry *e = sp_results_at(res, 1);
    assert_int_equal(sp_entry_kind(e), SP_KIND_SKIPPED);
    assert_non_null(strstr(sp_entry_message(e),
                           "dependency 'branch:101' CRASHED: killed by "
                           "SIGSEGV"));
    sp_results_free(res);
}

/* Bad graphs are refused before anything runs, naming the row. */
static int ran;
static int counts(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    ran++;
    return 0;
}

static void expect_error(sp_task *t, size_t n, int err, const char *want)
{
    sp_options o = test_opts();
    sp_results *res = (sp_results *)&res;
    ran = 0;
    assert_int_equal(simple_parallel(t, n, &o, &res), err);
    assert_null(res);
    assert_int_equal(ran, 0);
    if (!strstr(sp_last_error(), want))
        fail_msg("\"%s\" lacks \"%s\"", sp_last_error(), want);
}

static void test_graph_validation(void **state)
{
    (void)state;
    const char *unknown[] = {"a", "zz", NULL}, *self[] = {"b", NULL};
    sp_task t1[] = {{.key = "a", .fn = counts},
                    {.key = "b", .fn = counts, .after = unknown}};
    expect_error(t1, 2, SP_EDEPKEY,
                 "task \"b\" at index 1 depends on \"zz\", which is not in "
                 "the table");
    sp_task t2[] = {{.key = "a", .fn = counts},
                    {.key = "b", .fn = counts, .after = self}};
    expect_error(t2, 2, SP_ECYCLE, "task \"b\" at index 1 depends on itself");
    /* A 3-cycle among other rows: named with the keys around it. */
    const char *ca[] = {"c", NULL}, *cb[] = {"a", NULL}, *cc[] = {"b", NULL},
               *cz[] = {"x", NULL};
    sp_task t3[] = {{.key = "x", .fn = counts},
                    {.key = "a", .fn = counts, .after = ca},
                    {.key = "z", .fn = counts, .after = cz},
                    {.key = "b", .fn = counts, .after = cb},
                    {.key = "c", .fn = counts, .after = cc}};
    expect_error(t3, 5, SP_ECYCLE,
                 "task \"a\" at index 1 is in a dependency cycle: \"a\" "
                 "(index 1) waits for \"c\"; \"c\" (index 4) waits for "
                 "\"b\"; \"b\" (index 3) waits for \"a\"");
}

/* The completion callback never sees a dependent before what it depends
 * on. */
struct order_log {
    size_t seen;
    char first_b[8];
    int bad;
};

static int check_order(const sp_entry *e, void *user)
{
    struct order_log *log = user;
    const char *k = sp_entry_key(e);
    /* keys: "pN" (parent), "cN" (child of pN) */
    if (k[0] == 'p')
        log->seen |= (size_t)1 << atoi(k + 1);
    else if (!(log->seen & ((size_t)1 << atoi(k + 1))))
        log->bad = 1;
    return 0;
}

static void test_on_done_order(void **state)
{
    (void)state;
    enum { P = 20 };
    sp_task t[2 * P];
    char keys[2 * P][8];
    const char *after[P][2];
    for (size_t i = 0; i < P; i++) {
        snprintf(keys[i], sizeof keys[i], "p%zu", i);
        snprintf(keys[P + i], sizeof keys[P + i], "c%zu", i);
        after[i][0] = keys[i];
        after[i][1] = NULL;
        /* children first in the table: the order must come from the
         * graph, not the table */
        t[i] = (sp_task){.key = keys[P + i], .fn = ok_empty, .after = after[i]};
        t[P + i] = (sp_task){.key = keys[i], .fn = ok_empty};
    }
    struct order_log log = {0};
    sp_options o = test_opts();
    o.max_workers = 4;
    o.on_done = check_order;
    o.on_done_arg = &log;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2 * P, &o, &res), 0);
    assert_false(log.bad);
    assert_int_equal(sp_results_ok(res), 2 * P);
    sp_results_free(res);
}

/* ---- spawning ----------------------------------------------------------- */

/* Spawns "<key>.<k>" for k < width, each of which spawns one level down,
 * to `depth` levels; the argument bytes carry the remaining depth. */
static int spawner(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t len;
    const unsigned char *d = sp_ctx_data(ctx, &len);
    unsigned depth = len ? d[0] : 3;
    if (depth == 0)
        return sp_set_resultf(ctx, "leaf %s", sp_ctx_key(ctx));
    for (unsigned k = 0; k < 2; k++) {
        char key[128];
        snprintf(key, sizeof key, "%s.%u", sp_ctx_key(ctx), k);
        unsigned char next = (unsigned char)(depth - 1);
        sp_task child = {.key = key, .fn = spawner, .data = &next, .len = 1};
        int rc = sp_spawn(ctx, &child);
        if (rc)
            return sp_fail(ctx, 80, "spawn %s: %s", key, sp_last_error());
    }
    return sp_set_resultf(ctx, "spawned at depth %u", depth);
}

static void test_spawn_three_levels(void **state)
{
    (void)state;
    unsigned char three = 3;
    sp_task t[] = {{.key = "r", .fn = spawner, .data = &three, .len = 1},
                   {.key = "s", .fn = ok_empty}};
    sp_results *res = run_table(t, 2, 3);
    /* r, its 2 children, 4 grandchildren, 8 leaves; and s. */
    assert_int_equal(sp_results_count(res), 2 + 2 + 4 + 8);
    assert_int_equal(sp_results_ok(res), 16);
    const sp_entry *leaf = sp_results_get(res, "r.1.0.1");
    assert_non_null(leaf);
    assert_string_equal(sp_entry_str(leaf), "leaf r.1.0.1");
    /* Spawned entries come after the table's, in spawn order. */
    assert_string_equal(sp_entry_key(sp_results_at(res, 0)), "r");
    assert_string_equal(sp_entry_key(sp_results_at(res, 1)), "s");
    assert_string_equal(sp_entry_key(sp_results_at(res, 2)), "r.0");
    for (size_t i = 2; i < sp_results_count(res); i++)
        assert_int_equal(sp_entry_index(sp_results_at(res, i)), i);
    sp_results_free(res);
}

/* A spawned task waits for a sibling still running and reads its result;
 * bytes arguments travel; a duplicate key is refused to the spawner only;
 * a key the task does not depend on is an error, not undefined. */
static int slow_sibling(sp_ctx *ctx, void *arg)
{
    (void)arg;
    test_sleep_ms(test_ms(30));
    return sp_set_result_str(ctx, "sibling done");
}

static int reader(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t n;
    const char *data = sp_ctx_data(ctx, &n);
    const char *dep = sp_dep_result(ctx, "sibling", NULL);
    if (!dep)
        return sp_fail(ctx, 1, "no sibling result: %s", sp_last_error());
    /* The message as the library wrote it, also when a worker process
     * got it from the caller. */
    if (sp_dep_result(ctx, "parent", NULL) ||
        strcmp(sp_last_error(), "SP_ENODEP: sp_dep_result: \"parent\" is "
                                "not a dependency of task \"child\""))
        return sp_fail(ctx, 2, "a non-dependency answered");
    char out[128];
    static const char mid[] = " / ";
    if (n + sizeof mid + strlen(dep) > sizeof out)
        return sp_fail(ctx, 6, "too long");
    memcpy(out, data, n);
    memcpy(out + n, mid, sizeof mid - 1);
    memcpy(out + n + sizeof mid - 1, dep, strlen(dep));
    return sp_set_result(ctx, out, n + sizeof mid - 1 + strlen(dep));
}

static int parent(sp_ctx *ctx, void *arg)
{
    (void)arg;
    static const char *after[] = {"sibling", NULL};
    const char bytes[] = "payload\0with a NUL";
    sp_task child = {.key = "child",
                     .fn = reader,
                     .after = after,
                     .data = bytes,
                     .len = sizeof bytes - 1};
    int rc = sp_spawn(ctx, &child);
    if (rc)
        return sp_fail(ctx, 3, "spawn: %s", sp_last_error());
    rc = sp_spawn(ctx, &child);
    static const char dup[] =
        "SP_EDUPKEY: sp_spawn: key \"child\" is already in the call";
    if (rc != SP_EDUPKEY || strncmp(sp_last_error(), dup, sizeof dup - 1))
        return sp_fail(ctx, 4, "duplicate accepted: %d", rc);
    sp_task bad = {
        .key = "bad", .fn = reader, .after = (const char *[]){"nope", NULL}};
    if (sp_spawn(ctx, &bad) != SP_EDEPKEY)
        return sp_fail(ctx, 5, "unknown dependency accepted");
    return sp_set_result_str(ctx, "parent done");
}

static void test_spawn_waits_for_a_sibling(void **state)
{
    (void)state;
    sp_task t[] = {{.key = "parent", .fn = parent},
                   {.key = "sibling", .fn = slow_sibling}};
    sp_results *res = run_table(t, 2, 2);
    for (size_t i = 0; i < sp_results_count(res); i++) {
        const sp_entry *e = sp_results_at(res, i);
        if (sp_entry_kind(e) != SP_KIND_OK)
            fail_msg("%s: %s", sp_entry_key(e), sp_entry_message(e));
    }
    assert_int_equal(sp_results_count(res), 3);
    const sp_entry *c = sp_results_get(res, "child");
    size_t len;
    const char *s = sp_entry_data(c, &len);
    static const char want[] = "payload\0with a NUL / sibling done";
    assert_int_equal(len, sizeof want - 1);
    assert_memory_equal(s, want, len);
    assert_true(sp_entry_start(c) >=
                sp_entry_end(sp_results_get(res, "sibling")));
    assert_null(sp_results_get(res, "bad"));
    sp_results_free(res);
}

/* Fail-fast and the deadline stop the whole graph: what waits never
 * starts, and every key still comes back. */
static int waits_for_cancel(sp_ctx *ctx, void *arg)
{
    (void)arg;
    if (!test_wait_cancel(ctx, 5000))
        return sp_set_result_str(ctx, "never cancelled");
    return sp_fail(ctx, 9, "gave up");
}

static void test_stops_apply_to_the_graph(void **state)
{
    (void)state;
    const char *after_slow[] = {"slow", NULL};
    sp_task t[] = {{.key = "bad", .fn = fails},
                   {.key = "slow", .fn = waits_for_cancel},
                   {.key = "later", .fn = ok_empty, .after = after_slow}};
    sp_options o = test_opts();
    o.max_workers = 2;
    o.on_error = SP_POLICY_FAIL_FAST;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 3, &o, &res), 0);
    assert_int_equal(sp_results_count(res), 3);
    assert_int_equal(sp_entry_kind(sp_results_at(res, 0)), SP_KIND_FAILED);
    sp_kind later = sp_entry_kind(sp_results_at(res, 2));
    assert_true(later == SP_KIND_CANCELLED || later == SP_KIND_SKIPPED);
    sp_results_free(res);

    o.on_error = SP_POLICY_COLLECT_ALL;
    o.deadline = 0.05 * test_scale();
    t[0].fn = ok_empty;
    assert_int_equal(simple_parallel(t, 3, &o, &res), 0);
    /* slow is TIMED_OUT, or CANCELLED when a loaded machine (TSan,
     * valgrind) had not started it when the deadline passed. */
    sp_kind slow = sp_entry_kind(sp_results_at(res, 1));
    assert_true(slow == SP_KIND_TIMED_OUT || slow == SP_KIND_CANCELLED);
    later = sp_entry_kind(sp_results_at(res, 2));
    assert_true(later == SP_KIND_CANCELLED || later == SP_KIND_SKIPPED);
    assert_non_null(strstr(sp_entry_message(sp_results_at(res, 2)), "dead") ||
                    strstr(sp_entry_message(sp_results_at(res, 2)), "slow"));
    sp_results_free(res);
}

/* A spawned task run by a worker that did not exist when it was spawned:
 * its result is accepted. The spawner keeps its worker busy; the other
 * worker takes the first child and dies of it, and its replacement, forked
 * after the spawn, runs the second. Regression: a worker forked after a
 * spawn took frames only for the table's rows, so the second child's
 * result was dropped ("not started"). Process backend only: a crash. */
static int dies(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    _exit(3);
}

static int spawn_then_stay(sp_ctx *ctx, void *arg)
{
    (void)arg;
    int err = sp_spawn(ctx, &(sp_task){.key = "dies", .fn = dies});
    if (!err)
        err = sp_spawn(ctx, &(sp_task){.key = "late child", .fn = ok_empty});
    if (err)
        return sp_fail(ctx, err, "%s", sp_last_error());
    test_sleep_ms(test_ms(200));
    return 0;
}

static void test_spawned_task_on_a_later_worker(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip(); /* a task that kills its worker: processes only */
    sp_task t[] = {{.key = "spawner", .fn = spawn_then_stay}};
    sp_options o = test_opts();
    o.max_workers = 2;
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 1, &o, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "dies")),
                     SP_KIND_CRASHED);
    const sp_entry *e = sp_results_get(res, "late child");
    if (sp_entry_kind(e) != SP_KIND_OK)
        fail_msg("late child: %s %s", sp_kind_name(sp_entry_kind(e)),
                 sp_entry_message(e));
    sp_results_free(res);
}

/* A task stopped by the deadline dooms two levels below it, also when
 * the dependents are only reached by the sweep after the workers are gone
 * (regression: that sweep once tried to start a worker). */
static void test_deadline_dooms_two_levels(void **state)
{
    (void)state;
    static const char *on_slow[] = {"slow", NULL}, *on_a[] = {"a", NULL},
                      *on_b[] = {"b", NULL};
    sp_task t[] = {{.key = "slow", .fn = waits_for_cancel},
                   {.key = "a", .fn = ok_empty, .after = on_slow},
                   {.key = "b", .fn = ok_empty, .after = on_slow},
                   {.key = "a2", .fn = ok_empty, .after = on_a},
                   {.key = "b2", .fn = ok_empty, .after = on_b}};
    sp_options o = test_opts();
    o.max_workers = 2;
    o.deadline = 0.03 * test_scale();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 5, &o, &res), 0);
    assert_int_equal(sp_entry_kind(sp_results_get(res, "slow")),
                     SP_KIND_TIMED_OUT);
    static const char *const want[][2] = {
        {"a", "dependency 'slow' TIMED_OUT: "},
        {"b", "dependency 'slow' TIMED_OUT: "},
        {"a2", "dependency 'a' SKIPPED: dependency 'slow' TIMED_OUT: "},
        {"b2", "dependency 'b' SKIPPED: dependency 'slow' TIMED_OUT: "}};
    for (size_t k = 0; k < 4; k++) {
        const sp_entry *e = sp_results_get(res, want[k][0]);
        assert_int_equal(sp_entry_kind(e), SP_KIND_SKIPPED);
        assert_int_equal(sp_entry_code(e), SP_ESKIPPED);
        const char *m = sp_entry_message(e);
        if (strncmp(m, want[k][1], strlen(want[k][1])) != 0)
            fail_msg("%s: \"%s\"", want[k][0], m);
    }
    sp_results_free(res);
}

/* A task that read a dependency's result and then makes a call of its own
 * whose task depends on a task of the same key: the inner task gets the
 * inner result (in a worker process, not an answer its forker cached). */
static int inner_base(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_set_result_str(ctx, "inner");
}

static int inner_blocker(sp_ctx *ctx, void *arg)
{
    (void)arg;
    test_sleep_ms(test_ms(200));
    return sp_set_result_str(ctx, "blocked");
}

static int inner_reader(sp_ctx *ctx, void *arg)
{
    (void)arg;
    const char *v = sp_dep_result(ctx, "base", NULL);
    return v ? sp_set_result_str(ctx, v) : sp_fail(ctx, 1, "no base");
}

static int outer_reader(sp_ctx *ctx, void *arg)
{
    (void)arg;
    const char *v = sp_dep_result(ctx, "base", NULL);
    if (!v || strcmp(v, "outer"))
        return sp_fail(ctx, 1, "outer base: %s", v ? v : "none");
    static const char *after[] = {"base", NULL};
    /* The blocker keeps the first worker busy once base is done, so the
     * reader starts first thing in a worker of its own. */
    sp_task t[] = {{.key = "base", .fn = inner_base},
                   {.key = "blocker", .fn = inner_blocker},
                   {.key = "reader", .fn = inner_reader, .after = after}};
    sp_options o = test_opts();
    o.max_workers = 2;
    sp_results *res = NULL;
    if (simple_parallel(t, 3, &o, &res))
        return sp_fail(ctx, 2, "nested call: %s", sp_last_error());
    int rc = sp_set_resultf(ctx, "%s/%s", v,
                            sp_entry_str(sp_results_get(res, "reader")));
    sp_results_free(res);
    return rc;
}

static int outer_base(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_set_result_str(ctx, "outer");
}

static void test_nested_call_sees_its_own_dependencies(void **state)
{
    (void)state;
    static const char *after[] = {"base", NULL};
    sp_task t[] = {{.key = "base", .fn = outer_base},
                   {.key = "reader", .fn = outer_reader, .after = after}};
    sp_options o = test_opts();
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(t, 2, &o, &res), 0);
    const sp_entry *e = sp_results_get(res, "reader");
    if (sp_entry_kind(e) != SP_KIND_OK)
        fail_msg("%s", sp_entry_message(e));
    assert_string_equal(sp_entry_str(e), "outer/inner");
    sp_results_free(res);
}

/* Spawned tasks that wait for tasks ending at that very moment: every
 * RACE_EVERYth task spawns one after the task that follows it, which the
 * other worker is likely running or finishing: every spawned task must
 * run once, after its dependency, with its result, in every call. A lost
 * mark would leave a waiter pending: the deadline then turns the hang
 * into a failure. */
#define RACE_N 2000
#define RACE_EVERY 25

static int race_waiter(sp_ctx *ctx, void *arg)
{
    (void)arg;
    size_t klen, len;
    const char *key = sp_ctx_data(ctx, &klen);
    const uint32_t *v = sp_dep_result(ctx, key, &len);
    if (!v || len != sizeof *v)
        return sp_fail(ctx, 1, "no result from %s: %s", key, sp_last_error());
    uint32_t w = *v + 1;
    return sp_set_result(ctx, &w, sizeof w);
}

static int race_leaf(sp_ctx *ctx, void *arg)
{
    (void)arg;
    uint32_t i = (uint32_t)sp_ctx_index(ctx);
    if (i % RACE_EVERY == 0 && i + 1 < RACE_N) {
        char key[32], dep[32];
        snprintf(key, sizeof key, "w%u", (unsigned)i);
        snprintf(dep, sizeof dep, "k%u", (unsigned)i + 1);
        const char *after[] = {dep, NULL};
        sp_task t = {.key = key,
                     .fn = race_waiter,
                     .after = after,
                     .data = dep,
                     .len = strlen(dep) + 1};
        if (sp_spawn(ctx, &t))
            return sp_fail(ctx, 2, "spawn: %s", sp_last_error());
    }
    return sp_set_result(ctx, &i, sizeof i);
}

static void test_spawns_race_completions(void **state)
{
    (void)state;
    test_table tt = test_table_new(RACE_N, "k", race_leaf, NULL);
    size_t waiters = (RACE_N - 2) / RACE_EVERY + 1;
    unsigned calls = test_backend == SP_BACKEND_THREAD ? 40 : 4;
    if (test_scale() > 1) /* valgrind */
        calls = 2;
    for (unsigned c = 0; c < calls; c++) {
        sp_options o = test_opts();
        o.max_workers = 2;
        o.deadline = 15; /* reached only if a waiter is lost */
        sp_results *res = NULL;
        assert_int_equal(simple_parallel(tt.t, tt.n, &o, &res), 0);
        assert_int_equal(sp_results_count(res), RACE_N + waiters);
        assert_int_equal(sp_results_ok(res), RACE_N + waiters);
        for (size_t i = 0; i + 1 < RACE_N; i += RACE_EVERY) {
            char key[32];
            snprintf(key, sizeof key, "w%zu", i);
            const sp_entry *e = sp_results_get(res, key);
            assert_non_null(e);
            size_t len;
            const uint32_t *v = sp_entry_data(e, &len);
            assert_int_equal(len, sizeof *v);
            assert_int_equal(*v, i + 2);
            assert_true(sp_entry_start(e) >=
                        sp_entry_end(sp_results_at(res, i + 1)));
        }
        sp_results_free(res);
    }
    test_table_free(&tt);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_chain_and_diamond),
    cmocka_unit_test(test_fan_out_fan_in),
    cmocka_unit_test(test_failure_skips_the_subtree),
    cmocka_unit_test(test_crashed_dependency),
    cmocka_unit_test(test_graph_validation),
    cmocka_unit_test(test_on_done_order),
    cmocka_unit_test(test_spawn_three_levels),
    cmocka_unit_test(test_spawn_waits_for_a_sibling),
    cmocka_unit_test(test_stops_apply_to_the_graph),
    cmocka_unit_test(test_deadline_dooms_two_levels),
    cmocka_unit_test(test_spawned_task_on_a_later_worker),
    cmocka_unit_test(test_nested_call_sees_its_own_dependencies),
    cmocka_unit_test(test_spawns_race_completions),
};

TEST_MAIN("graph", tests)
