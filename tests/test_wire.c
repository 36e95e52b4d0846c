/* SPDX-License-Identifier: MIT */
/* The frame decoder on its own: round trips in any split, and every kind
 * of malformed, truncated or oversized frame is refused without acting on
 * it. White-box: includes the private header. */
#include "common.h"
#include "sp-wire.h"

#include <stdlib.h>

struct got {
    int frames;
    struct sp_wire_header last;
    char msg[64];
    unsigned char *data;
    size_t data_len;
};

static int collect(struct sp_wire_frame *f, void *arg)
{
    struct got *g = arg;
    g->frames++;
    g->last = f->h;
    snprintf(g->msg, sizeof g->msg, "%s", f->msg ? f->msg : "");
    free(g->data);
    g->data = f->data;
    g->data_len = f->data ? (size_t)f->h.data_len : 0;
    free(f->msg);
    return 0;
}

/* Build one frame: header, message, data. */
static size_t build(unsigned char *out, struct sp_wire_header h,
                    const char *msg, const void *data, size_t len)
{
    h.magic = h.magic ? h.magic : SP_WIRE_MAGIC;
    size_t mlen = msg ? strlen(msg) : 0;
    if (!h.msg_len)
        h.msg_len = (uint32_t)mlen;
    if (!h.data_len)
        h.data_len = len;
    sp_wire_encode(out, &h);
    memcpy(out + SP_WIRE_HEADER, msg ? msg : "", mlen);
    if (len)
        memcpy(out + SP_WIRE_HEADER + mlen, data, len);
    return SP_WIRE_HEADER + mlen + len;
}

static void test_round_trip_any_split(void **state)
{
    (void)state;
    unsigned char buf[4096];
    unsigned char payload[1000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (unsigned char)(i * 7);
    size_t n = 0;
    n += build(buf + n, (struct sp_wire_header){.index = 3, .t_end = 5}, NULL,
               payload, sizeof payload);
    n += build(
        buf + n,
        (struct sp_wire_header){.index = 1, .code = 42, .kind = SP_KIND_FAILED},
        "no quote", NULL, 0);
    n += build(buf + n, (struct sp_wire_header){.index = 0}, NULL, NULL, 0);

    for (size_t step = 1; step <= n; step = step * 3 + 1) {
        struct sp_wire_dec d;
        struct got g = {0};
        sp_wire_dec_init(&d, 10);
        for (size_t off = 0; off < n; off += step) {
            size_t len = off + step < n ? step : n - off;
            assert_int_equal(sp_wire_feed(&d, buf + off, len, collect, &g), 0);
        }
        assert_int_equal(g.frames, 3);
        assert_false(sp_wire_partial(&d));
        assert_int_equal(g.last.index, 0);
        assert_null(g.data);
        sp_wire_dec_free(&d);
        free(g.data);
    }

    /* Check the first two frames' contents with a whole-buffer feed. */
    struct sp_wire_dec d;
    struct got g = {0};
    sp_wire_dec_init(&d, 10);
    size_t first = SP_WIRE_HEADER + sizeof payload;
    assert_int_equal(sp_wire_feed(&d, buf, first, collect, &g), 0);
    assert_int_equal(g.data_len, sizeof payload);
    assert_memory_equal(g.data, payload, sizeof payload);
    assert_int_equal(g.data[sizeof payload], 0); /* NUL after the bytes */
    assert_int_equal(
        sp_wire_feed(&d, buf + first, SP_WIRE_HEADER + 8, collect, &g), 0);
    assert_int_equal(g.last.code, 42);
    assert_string_equal(g.msg, "no quote");
    sp_wire_dec_free(&d);
    free(g.data);
}

/* Feed one frame; expect a refusal whose message contains want. */
static void refused(struct sp_wire_header h, size_t extra, const char *want)
{
    unsigned char buf[256] = {0};
    sp_wire_encode(buf, &h);
    struct sp_wire_dec d;
    struct got g = {0};
    sp_wire_dec_init(&d, 10);
    int rc = sp_wire_feed(&d, buf, SP_WIRE_HEADER + extra, collect, &g);
    assert_int_equal(rc, SP_EPROTO);
    assert_int_equal(g.frames, 0);
    if (!strstr(d.err, want))
        fail_msg("\"%s\" lacks \"%s\"", d.err, want);
    sp_wire_dec_free(&d);
}

static void test_malformed_headers(void **state)
{
    (void)state;
    const uint32_t M = SP_WIRE_MAGIC;
    refused((struct sp_wire_header){.magic = 0xdeadbeef}, 0, "magic");
    refused((struct sp_wire_header){.magic = M, .index = 10}, 0, "range");
    refused(
        (struct sp_wire_header){.magic = M, .kind = SP_KIND_CRASHED, .code = 1},
        0, "kind");
    refused((struct sp_wire_header){.magic = M, .kind = 9, .code = 1}, 0,
            "kind");
    refused((struct sp_wire_header){.magic = M, .code = 5}, 0, "code");
    refused((struct sp_wire_header){.magic = M, .kind = SP_KIND_FAILED}, 0,
            "code");
    refused((struct sp_wire_header){.magic = M, .reserved = 1}, 0, "reserved");
    refused((struct sp_wire_header){.magic = M, .t_start = 9, .t_end = 3}, 0,
            "before");
    refused((struct sp_wire_header){.magic = M, .msg_len = SP_WIRE_MAX_MSG + 1},
            0, "message is oversized");
    refused(
        (struct sp_wire_header){.magic = M, .data_len = SP_WIRE_MAX_DATA + 1},
        0, "result is oversized");
    refused((struct sp_wire_header){.magic = M, .data_len = UINT64_MAX}, 0,
            "result is oversized");
    refused((struct sp_wire_header){.magic = M, .flags = 4}, 0, "reserved");
    refused((struct sp_wire_header){.magic = M, .flags = SP_WIRE_SHM}, 0,
            "shared-memory frame without a result");
}

/* A shared-memory frame: its data_len bytes are not in the stream (they
 * come in a memfd), so the next frame follows its message at once, and
 * it is delivered with no data and its length. */
static void test_shm_frame_has_no_stream_bytes(void **state)
{
    (void)state;
    unsigned char buf[512];
    size_t n = 0;
    struct sp_wire_header h = {.magic = SP_WIRE_MAGIC,
                               .index = 2,
                               .flags = SP_WIRE_SHM,
                               .msg_len = 2,
                               .data_len = (uint64_t)1 << 30};
    sp_wire_encode(buf, &h);
    memcpy(buf + SP_WIRE_HEADER, "hi", 2);
    n = SP_WIRE_HEADER + 2;
    n += build(buf + n, (struct sp_wire_header){.index = 1}, NULL, "abc", 3);
    struct sp_wire_dec d;
    struct got g = {0};
    sp_wire_dec_init(&d, 10);
    /* One byte at a time: the frame ends with its message. */
    for (size_t off = 0; off < SP_WIRE_HEADER + 2; off++)
        assert_int_equal(sp_wire_feed(&d, buf + off, 1, collect, &g), 0);
    assert_int_equal(g.frames, 1);
    assert_int_equal(g.last.index, 2);
    assert_int_equal(g.last.flags, SP_WIRE_SHM);
    assert_int_equal(g.last.data_len, (uint64_t)1 << 30);
    assert_string_equal(g.msg, "hi");
    assert_null(g.data);
    assert_false(sp_wire_partial(&d));
    assert_int_equal(sp_wire_feed(&d, buf + SP_WIRE_HEADER + 2,
                                  n - SP_WIRE_HEADER - 2, collect, &g),
                     0);
    assert_int_equal(g.frames, 2);
    assert_int_equal(g.data_len, 3);
    assert_memory_equal(g.data, "abc", 3);
    sp_wire_dec_free(&d);
    free(g.data);
}

/* A header that promises a huge result costs memory only as bytes come. */
static void test_lying_length_and_truncation(void **state)
{
    (void)state;
    unsigned char buf[SP_WIRE_HEADER + 16];
    struct sp_wire_header h = {
        .magic = SP_WIRE_MAGIC, .index = 2, .data_len = (uint64_t)1 << 39};
    sp_wire_encode(buf, &h);
    memset(buf + SP_WIRE_HEADER, 'x', 16);
    struct sp_wire_dec d;
    struct got g = {0};
    sp_wire_dec_init(&d, 10);
    assert_int_equal(sp_wire_feed(&d, buf, sizeof buf, collect, &g), 0);
    assert_int_equal(g.frames, 0);
    assert_true(d.cap <= 64 * 1024);
    assert_true(sp_wire_partial(&d)); /* the stream ends mid-frame */
    sp_wire_dec_free(&d);

    /* A header cut short is partial too. */
    sp_wire_dec_init(&d, 10);
    assert_int_equal(sp_wire_feed(&d, buf, 20, collect, &g), 0);
    assert_true(sp_wire_partial(&d));
    sp_wire_dec_free(&d);
}

static int reject(struct sp_wire_frame *f, void *arg)
{
    (void)arg;
    free(f->msg);
    free(f->data);
    return SP_EPROTO;
}

static void test_receiver_rejects(void **state)
{
    (void)state;
    unsigned char buf[128];
    size_t n = build(buf, (struct sp_wire_header){.index = 1}, "m", "d", 1);
    struct sp_wire_dec d;
    sp_wire_dec_init(&d, 10);
    assert_int_equal(sp_wire_feed(&d, buf, n, reject, NULL), SP_EPROTO);
    assert_non_null(strstr(d.err, "rejected"));
    sp_wire_dec_free(&d);
}

/* Resynchronising (the process backend's channels): stray bytes between
 * frames, in any split, are skipped and counted, and every frame is
 * delivered; bytes that are not stray (a strict decoder) are an error. */
static void test_resync_skips_stray_bytes(void **state)
{
    (void)state;
    unsigned char buf[8192];
    size_t n = 0, stray = 0;
    /* Garbage, with a partial magic at its end. */
    for (size_t i = 0; i < 700; i++)
        buf[n++] = (unsigned char)(0xa5 ^ i);
    memcpy(buf + n, "SPF", 3);
    n += 3;
    stray = n;
    n += build(buf + n, (struct sp_wire_header){.index = 2, .t_end = 1},
               "first", "abc", 3);
    memcpy(buf + n, "SPF1garbage", 11);
    n += 11;
    stray += 11;
    n += build(
        buf + n,
        (struct sp_wire_header){.index = 4, .code = 3, .kind = SP_KIND_FAILED},
        "second", NULL, 0);
    for (size_t split = 1; split <= n; split += split < 64 ? 1 : 97) {
        struct sp_wire_dec d;
        sp_wire_dec_init(&d, 10);
        d.resync = true;
        struct got g = {0};
        for (size_t at = 0; at < n; at += split) {
            size_t len = n - at < split ? n - at : split;
            assert_int_equal(sp_wire_feed(&d, buf + at, len, collect, &g), 0);
        }
        assert_int_equal(g.frames, 2);
        assert_int_equal(g.last.index, 4);
        assert_string_equal(g.msg, "second");
        assert_int_equal(d.skipped, stray);
        assert_false(sp_wire_partial(&d));
        free(g.data);
        sp_wire_dec_free(&d);
    }
    struct sp_wire_dec d;
    sp_wire_dec_init(&d, 10);
    struct got g = {0};
    assert_int_equal(sp_wire_feed(&d, buf, n, collect, &g), SP_EPROTO);
    assert_int_equal(g.frames, 0);
    sp_wire_dec_free(&d);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_resync_skips_stray_bytes),
    cmocka_unit_test(test_round_trip_any_split),
    cmocka_unit_test(test_malformed_headers),
    cmocka_unit_test(test_shm_frame_has_no_stream_bytes),
    cmocka_unit_test(test_lying_length_and_truncation),
    cmocka_unit_test(test_receiver_rejects),
};

TEST_MAIN("wire", tests)
