/* SPDX-License-Identifier: MIT */
/* The wire layout of entries between MPI ranks (lib/mpi/codec.c), white
 * box, without MPI running: an entry of a task tried three times goes
 * through wire_from_entry(), wire_entry_put(), wire_entry_get() and
 * wire_to_outcome() into a copy of the map (sp__run_put(), as every rank
 * does with map_everywhere) with every attempt as it was; and a frame cut
 * short anywhere, or with its story's counts, kinds, lengths or NULs
 * corrupted, is refused without a byte read past its end (each buffer is
 * exactly as long as the bytes under test, for AddressSanitizer). */
#include "common.h"

#include "mpi/sp-mpi.h"

/* Fails its first two attempts (code 40 + n), then succeeds. */
static int third_time(sp_ctx *ctx, void *arg)
{
    (void)arg;
    unsigned a = sp_ctx_attempt(ctx);
    if (a < 3)
        return sp_fail(ctx, 40 + (int)a, "attempt %u went wrong", a);
    return sp_set_result_str(ctx, "done");
}

static int always(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_fail(ctx, 7, "no (attempt %u)", sp_ctx_attempt(ctx));
}

static int once(sp_ctx *ctx, void *arg)
{
    (void)arg;
    return sp_set_result_str(ctx, "fine");
}

static sp_task tasks[] = {
    {.key = "third", .fn = third_time},
    {.key = "always", .fn = always},
    {.key = "once", .fn = once},
};
enum { N = sizeof tasks / sizeof tasks[0] };

static sp_results *run_map(void)
{
    sp_options o = {.backend = SP_BACKEND_SERIAL, .retries = 2};
    sp_results *res = NULL;
    assert_int_equal(simple_parallel(tasks, N, &o, &res), 0);
    assert_int_equal(sp_entry_attempts(sp_results_at(res, 0)), 3);
    assert_int_equal(sp_entry_attempts(sp_results_at(res, 1)), 3);
    return res;
}

/* Entry i of res as its bytes on the wire, in a buffer of exactly that
 * size. */
static unsigned char *encode(const sp_results *res, size_t i, size_t *size)
{
    struct wire_entry w;
    wire_from_entry(sp_results_at(res, i), (uint32_t)i, 0, &w);
    *size = wire_entry_size(&w);
    unsigned char *buf = malloc(*size);
    assert_non_null(buf);
    wire_entry_put(buf, &w);
    return buf;
}

/* Whether the bytes [p, p + len) decode, in a copy of exactly len bytes. */
static size_t decodes(const unsigned char *p, size_t len)
{
    unsigned char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, p, len);
    struct wire_entry w;
    size_t used = wire_entry_get(copy, copy + len, &w);
    free(copy);
    return used;
}

static void same_entry(const sp_entry *a, const sp_entry *b)
{
    assert_int_equal(sp_entry_kind(a), sp_entry_kind(b));
    assert_int_equal(sp_entry_code(a), sp_entry_code(b));
    assert_int_equal(sp_entry_code_origin(a), sp_entry_code_origin(b));
    assert_string_equal(sp_entry_message(a), sp_entry_message(b));
    assert_int_equal(sp_entry_worker(a), sp_entry_worker(b));
    assert_true(sp_entry_start(a) == sp_entry_start(b));
    assert_true(sp_entry_end(a) == sp_entry_end(b));
    assert_int_equal(sp_entry_attempts(a), sp_entry_attempts(b));
}

/* Every entry, its earlier attempts included, survives the trip. */
static void test_round_trip(void **state)
{
    (void)state;
    sp_results *res = run_map();
    sp__run *r = NULL;
    assert_int_equal(sp__run_begin(tasks, N, NULL, 1, &r), 0);
    for (size_t i = 0; i < N; i++) {
        size_t size;
        unsigned char *buf = encode(res, i, &size);
        struct wire_entry w;
        assert_int_equal(wire_entry_get(buf, buf + size, &w), size);
        assert_int_equal(w.npast, i < 2 ? 2 : 0);
        sp__outcome o, past[SP_MAX_RETRIES];
        wire_to_outcome(&w, 0, &o, past);
        sp__run_put(r, w.index, &o);
        free(buf);
    }
    sp_results *copy = sp__run_end(r);
    for (size_t i = 0; i < N; i++) {
        const sp_entry *a = sp_results_at(res, i), *b = sp_results_at(copy, i);
        same_entry(a, b);
        for (unsigned k = 1; k <= sp_entry_attempts(a); k++) {
            assert_non_null(sp_entry_attempt(b, k));
            same_entry(sp_entry_attempt(a, k), sp_entry_attempt(b, k));
        }
        assert_string_equal(sp_entry_first_message(a),
                            sp_entry_first_message(b));
    }
    assert_string_equal(
        sp_entry_message(sp_entry_attempt(sp_results_at(copy, 0), 2)),
        "attempt 2 went wrong");
    sp_results_free(copy);
    sp_results_free(res);
}

/* Cut short anywhere: refused. */
static void test_every_truncation_is_refused(void **state)
{
    (void)state;
    sp_results *res = run_map();
    for (size_t i = 0; i < N; i++) {
        size_t size;
        unsigned char *buf = encode(res, i, &size);
        assert_int_equal(decodes(buf, size), size);
        for (size_t len = 0; len < size; len++)
            if (decodes(buf, len) != 0)
                fail_msg("entry %zu cut to %zu of %zu bytes was accepted", i,
                         len, size);
        free(buf);
    }
    sp_results_free(res);
}

/* The story's fields corrupted one at a time: refused. */
static void test_corrupt_story_is_refused(void **state)
{
    (void)state;
    sp_results *res = run_map();
    size_t size;
    unsigned char *buf = encode(res, 1, &size);
    uint32_t mlen = get_u32(buf + 32);
    size_t story = ENTRY_HEAD + (mlen ? (size_t)mlen + 1 : 0);
    size_t first = story + 4; /* the first earlier attempt's head */
    uint32_t first_len = get_u32(buf + first + 12);
    assert_true(first_len > 0);
    unsigned char *bad = malloc(size);
    assert_non_null(bad);
    struct {
        size_t at;
        uint32_t value;
        int width; /* 4: a u32, 1: a byte */
    } cases[] = {
        {story, 0, 4},                           /* no earlier attempt */
        {story, 3, 4},                           /* as many as attempts */
        {story, 0xffffffffu, 4},                 /* absurd */
        {first, SP_KIND_SKIPPED + 1, 1},         /* no such kind */
        {first + 1, 0x80, 1},                    /* an unknown flag */
        {first + 12, 0xfffffff0u, 4},            /* message past the end */
        {first + PAST_HEAD + first_len, 'x', 1}, /* its NUL gone */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(bad, buf, size);
        if (cases[k].width == 4)
            put_u32(bad + cases[k].at, cases[k].value);
        else
            bad[cases[k].at] = (unsigned char)cases[k].value;
        if (decodes(bad, size) != 0)
            fail_msg("corruption %zu was accepted", k);
    }
    free(bad);
    free(buf);
    sp_results_free(res);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_every_truncation_is_refused),
    cmocka_unit_test(test_corrupt_story_is_refused),
};

TEST_MAIN("mpi-codec", tests)
