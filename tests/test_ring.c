/* SPDX-License-Identifier: MIT */
/* The process backend's ring (lib/backend/process/ring.c), on its own:
 * bytes come out in order and intact across wrap-arounds, the fill limit is
 * kept, a refused write writes nothing, scribbled positions are detected,
 * and a producer in another process can fill it while the consumer empties
 * it. White-box: links the core archive. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "common.h"

#include "backend/process/ring.h"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

enum { SIZE = 4096 };

struct fixture {
    _Atomic uint64_t head, tail;
    unsigned char buf[SIZE];
    struct sp_ring ring;
};

static int setup(void **state)
{
    struct fixture *f = mmap(NULL, sizeof *f, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (f == MAP_FAILED)
        return -1;
    atomic_init(&f->head, 0);
    atomic_init(&f->tail, 0);
    f->ring = (struct sp_ring){&f->head, &f->tail, f->buf, SIZE};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    munmap(*state, sizeof(struct fixture));
    return 0;
}

/* What the consumer saw, in order. */
struct sink {
    unsigned char bytes[1 << 16];
    size_t len, calls;
};

static void collect(void *arg, const unsigned char *p, size_t len)
{
    struct sink *k = arg;
    if (k->len + len <= sizeof k->bytes)
        memcpy(k->bytes + k->len, p, len);
    k->len += len;
    k->calls++;
}

static unsigned rnd(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 16;
}

/* Frames of random sizes in three parts, many times round the ring. */
static void test_round_trip_across_wraps(void **state)
{
    struct fixture *f = *state;
    static struct sink out, want;
    memset(&out, 0, sizeof out);
    memset(&want, 0, sizeof want);
    unsigned seed = 7;
    unsigned char part[3][300];
    while (want.len < sizeof want.bytes - 1000) {
        struct iovec iov[3];
        size_t total = 0;
        for (int j = 0; j < 3; j++) {
            size_t len = rnd(&seed) % 300;
            for (size_t b = 0; b < len; b++)
                part[j][b] = (unsigned char)rnd(&seed);
            iov[j] = (struct iovec){part[j], len};
            total += len;
        }
        if (sp_ring_put(&f->ring, iov, 3, total, SIZE / 2) != 0) {
            assert_int_equal(sp_ring_take(&f->ring, collect, &out), 1);
            assert_int_equal(sp_ring_put(&f->ring, iov, 3, total, SIZE / 2), 0);
        }
        for (int j = 0; j < 3; j++)
            collect(&want, part[j], iov[j].iov_len);
    }
    sp_ring_take(&f->ring, collect, &out);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.bytes, want.bytes, want.len);
    assert_true(atomic_load(&f->head) > 10 * SIZE); /* it did wrap */
    assert_int_equal(sp_ring_take(&f->ring, collect, &out), 0);
}

/* The fill limit: a write that would pass it is refused and writes
 * nothing; one that fits exactly is taken. */
static void test_limit(void **state)
{
    struct fixture *f = *state;
    unsigned char block[SIZE];
    memset(block, 0xab, sizeof block);
    struct iovec iov = {block, 1000};
    assert_int_equal(sp_ring_put(&f->ring, &iov, 1, 1000, 2048), 0);
    assert_int_equal(sp_ring_put(&f->ring, &iov, 1, 1000, 2048), 0);
    uint64_t head = atomic_load(&f->head);
    assert_int_equal(sp_ring_put(&f->ring, &iov, 1, 1000, 2048), 1);
    assert_int_equal(atomic_load(&f->head), head); /* nothing written */
    iov.iov_len = 48;
    assert_int_equal(sp_ring_put(&f->ring, &iov, 1, 48, 2048), 0); /* = 2048 */
    iov.iov_len = 1;
    assert_int_equal(sp_ring_put(&f->ring, &iov, 1, 1, 2048), 1);
    /* A limit above the ring's size is the ring's size. */
    static struct sink out;
    memset(&out, 0, sizeof out);
    sp_ring_take(&f->ring, collect, &out);
    iov = (struct iovec){block, SIZE};
    assert_int_equal(sp_ring_put(&f->ring, &iov, 1, SIZE, SIZE * 4), 0);
    iov.iov_len = 1;
    assert_int_equal(sp_ring_put(&f->ring, &iov, 1, 1, SIZE * 4), 1);
}

/* Empty parts may have a NULL base; a split at the end of the buffer
 * reaches the consumer as two pieces, in order. */
static void test_empty_parts_and_split(void **state)
{
    struct fixture *f = *state;
    atomic_store(&f->head, SIZE - 3);
    atomic_store(&f->tail, SIZE - 3);
    struct iovec iov[3] = {{NULL, 0}, {(void *)"abcdef", 6}, {NULL, 0}};
    assert_int_equal(sp_ring_put(&f->ring, iov, 3, 6, SIZE), 0);
    static struct sink out;
    memset(&out, 0, sizeof out);
    assert_int_equal(sp_ring_take(&f->ring, collect, &out), 1);
    assert_int_equal(out.calls, 2);
    assert_int_equal(out.len, 6);
    assert_memory_equal(out.bytes, "abcdef", 6);
}

/* Positions a writer scribbled on are refused: nothing handed over, the
 * tail not moved. */
static void test_scribbled_positions(void **state)
{
    struct fixture *f = *state;
    atomic_store(&f->tail, 100);
    atomic_store(&f->head, 100 + SIZE + 1);
    static struct sink out;
    memset(&out, 0, sizeof out);
    assert_int_equal(sp_ring_take(&f->ring, collect, &out), -1);
    assert_int_equal(out.calls, 0);
    assert_int_equal(atomic_load(&f->tail), 100);
    /* head behind tail is "out of range" too (unsigned distance) */
    atomic_store(&f->head, 50);
    assert_int_equal(sp_ring_take(&f->ring, collect, &out), -1);
}

/* A producer process fills the ring with numbered records while this
 * process empties it: every record arrives once, in order. */
static void test_across_processes(void **state)
{
    struct fixture *f = *state;
    const uint32_t RECORDS = (uint32_t)(200000 / test_scale());
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (uint32_t n = 0; n < RECORDS; n++) {
            uint32_t rec[3] = {n, ~n, n * 2654435761u};
            struct iovec iov = {rec, sizeof rec};
            while (sp_ring_put(&f->ring, &iov, 1, sizeof rec, SIZE / 2))
                ; /* full: the consumer will make room */
        }
        _exit(0);
    }
    static struct sink out;
    uint32_t expect = 0;
    unsigned char carry[12];
    size_t have = 0;
    int bad = 0;
    while (expect < RECORDS && !bad) {
        memset(&out, 0, sizeof out);
        if (sp_ring_take(&f->ring, collect, &out) < 0)
            bad = 1;
        for (size_t p = 0; p < out.len && !bad; p++) {
            carry[have++] = out.bytes[p];
            if (have < sizeof carry)
                continue;
            uint32_t rec[3];
            memcpy(rec, carry, sizeof rec);
            have = 0;
            if (rec[0] != expect || rec[1] != ~expect ||
                rec[2] != expect * 2654435761u)
                bad = 1;
            expect++;
        }
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_false(bad);
    assert_int_equal(expect, RECORDS);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_round_trip_across_wraps, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_limit, setup, teardown),
    cmocka_unit_test_setup_teardown(test_empty_parts_and_split, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_scribbled_positions, setup, teardown),
    cmocka_unit_test_setup_teardown(test_across_processes, setup, teardown),
};

TEST_MAIN("ring", tests)
