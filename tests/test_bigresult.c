/* SPDX-License-Identifier: MIT */
/* Large results: bytes intact and NUL-terminated through
 * sp_set_result_owned() and sp_set_result(), one or several at once, on
 * every backend and in pools; on the process backend they come through a
 * sealed memfd the caller maps (lib/backend/process/shm.c): the entry's
 * bytes are that mapping, gone after sp_results_free(); a worker that dies
 * after making its memfd, or forges a shared-memory frame, costs its own
 * task only (CRASHED), without a hang or a leaked descriptor; without
 * memfds the bytes come through the channel as before. */
#define _GNU_SOURCE /* memfd_create, MFD_*, F_ADD_SEALS, SCM_RIGHTS */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/process/proc.h"
#include "sp-private.h"
#include "sp-wire.h"

/* The tests lower the memfd threshold (proc.h's SHM_MIN) to SHM_AT, so
 * that results of a few MiB take that path and the suite stays fast;
 * default_threshold checks the shipped value. */
#define SHM_AT ((size_t)1 << 20)
#define BIG ((size_t)8 << 20) /* 8 MiB: far above SHM_AT */

/* ---- the memfd hook, over the library's weak one ------------------------ */

/* What the next sp_memfd() calls do, in any process (shared mapping). */
enum { MEMFD_REAL = 0, MEMFD_EMFILE = 1, MEMFD_DIE = 2 };
static _Atomic int *memfd_mode;

int sp_memfd(void)
{
    int mode = memfd_mode ? atomic_load(memfd_mode) : MEMFD_REAL;
    if (mode == MEMFD_EMFILE) {
        errno = EMFILE;
        return -1;
    }
    int fd = memfd_create("simplepar-result", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mode == MEMFD_DIE && fd >= 0)
        raise(SIGKILL); /* the worker dies holding its memfd */
    return fd;
}

/* Whether the caller's mapping of a result fails (as when it is out of
 * mappings: vm.max_map_count), over the library's weak sp_mmap(). */
static bool mmap_fails;

void *sp_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (mmap_fails) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return mmap(addr, len, prot, flags, fd, off);
}

static int setup(void **state)
{
    (void)state;
    if (!memfd_mode) {
        void *m = mmap(NULL, sizeof *memfd_mode, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        assert_true(m != MAP_FAILED);
        memfd_mode = m;
    }
    atomic_store(memfd_mode, MEMFD_REAL);
    mmap_fails = false;
    sp_proc_shm_min = SHM_AT;
    return 0;
}

/* ---- tasks -------------------------------------------------------------- */

/* Byte j of the result of task `seed`. */
static unsigned char pattern(size_t seed, size_t j)
{
    return (unsigned char)(seed * 31 + j * 7 + (j >> 12));
}

struct big {
    size_t len;
    size_t seed;
    int copy; /* sp_set_result() instead of sp_set_result_owned() */
    int die;  /* the task makes the memfd hook kill its worker */
};

static int big_task(sp_ctx *ctx, void *arg)
{
    const struct big *b = arg;
    unsigned char *p = malloc(b->len + 1);
    if (!p)
        return sp_fail(ctx, 1, "out of memory");
    for (size_t j = 0; j < b->len; j++)
        p[j] = pattern(b->seed, j);
    if (b->die)
        atomic_store(memfd_mode, MEMFD_DIE);
    if (b->copy) {
        int rc = sp_set_result(ctx, p, b->len);
        free(p);
        return rc;
    }
    return sp_set_result_owned(ctx, p, b->len, NULL);
}

static void check_bytes(const sp_entry *e, const struct big *b)
{
    assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
    size_t len = 0;
    const unsigned char *d = sp_entry_data(e, &len);
    assert_non_null(d);
    assert_int_equal(len, b->len);
    size_t bad = SIZE_MAX;
    for (size_t j = 0; j < len && bad == SIZE_MAX; j++)
        if (d[j] != pattern(b->seed, j))
            bad = j;
    assert_int_equal(bad, SIZE_MAX);
    assert_int_equal(d[len], 0); /* the NUL after the last byte */
}

/* Whether p lies in a memfd mapping of this process named like the
 * library's, as /proc/self/maps tells. */
static bool in_memfd_mapping(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    uintptr_t a = (uintptr_t)p;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi)
            found = strstr(line, "memfd:simplepar-result") != NULL;
    }
    fclose(f);
    return found;
}

/* Run tasks on the suite's backend: a plain call, or a call of a pool of
 * that backend. */
static int run(const sp_task *t, size_t n, unsigned workers, bool pool,
               sp_results **res)
{
    sp_options o = test_opts();
    o.max_workers = workers;
    if (!pool)
        return simple_parallel(t, n, &o, res);
    sp_pool_options po = {.backend = test_backend, .max_workers = workers};
    sp_pool *p = NULL;
    int rc = sp_pool_create(&po, &p);
    if (rc)
        return rc;
    rc = sp_pool_run(p, t, n, NULL, res);
    sp_pool_free(p);
    return rc;
}

/* ---- one large result --------------------------------------------------- */

static void one_big(bool copy, bool pool)
{
    int fds = test_open_fds();
    struct big b = {.len = BIG, .seed = 3, .copy = copy};
    sp_task t = {.key = "big", .fn = big_task, .arg = &b};
    sp_results *res = NULL;
    assert_int_equal(run(&t, 1, 1, pool, &res), 0);
    const sp_entry *e = sp_results_get(res, "big");
    check_bytes(e, &b);
    const void *d = sp_entry_data(e, NULL);
    if (test_backend == SP_BACKEND_PROCESS) {
        /* No copy in the caller: the entry's bytes are the worker's
         * memfd, mapped; freeing the map unmaps it. */
        assert_true(in_memfd_mapping(d));
        sp_results_free(res);
        assert_false(in_memfd_mapping(d));
    } else {
        assert_false(in_memfd_mapping(d));
        sp_results_free(res);
    }
    assert_int_equal(test_open_fds(), fds);
}

static void big_owned(void **state)
{
    (void)state;
    one_big(false, false);
}

static void big_copied(void **state)
{
    (void)state;
    one_big(true, false);
}

static void big_owned_pool(void **state)
{
    (void)state;
    one_big(false, true);
}

static void big_copied_pool(void **state)
{
    (void)state;
    one_big(true, true);
}

/* ---- several at once, large and small ----------------------------------- */

static void several(bool pool)
{
    int fds = test_open_fds();
    enum { N = 8 };
    static const size_t lens[N] = {3 << 20, 0,       16,         SHM_AT - 1,
                                   SHM_AT,  5 << 20, 100 * 1024, 3 << 20};
    struct big b[N];
    sp_task t[N];
    char keys[N][8];
    for (size_t k = 0; k < N; k++) {
        b[k] = (struct big){.len = lens[k], .seed = k, .copy = (int)(k & 1)};
        snprintf(keys[k], sizeof keys[k], "r%zu", k);
        t[k] = (sp_task){.key = keys[k], .fn = big_task, .arg = &b[k]};
    }
    sp_results *res = NULL;
    assert_int_equal(run(t, N, 3, pool, &res), 0);
    for (size_t k = 0; k < N; k++) {
        const sp_entry *e = sp_results_get(res, keys[k]);
        if (!b[k].len) { /* an empty result */
            assert_int_equal(sp_entry_kind(e), SP_KIND_OK);
            assert_string_equal(sp_entry_str(e), "");
            continue;
        }
        check_bytes(e, &b[k]);
        /* Below the threshold: malloc'd bytes, as before. */
        bool mapped = test_backend == SP_BACKEND_PROCESS && b[k].len >= SHM_AT;
        assert_int_equal(in_memfd_mapping(sp_entry_data(e, NULL)), mapped);
    }
    sp_results_free(res);
    assert_int_equal(test_open_fds(), fds);
}

static void several_big(void **state)
{
    (void)state;
    several(false);
}

static void several_big_pool(void **state)
{
    (void)state;
    several(true);
}

/* A large result a dependent task reads (through the parent, on the
 * process backend). */
static int read_dep(sp_ctx *ctx, void *arg)
{
    const struct big *b = arg;
    size_t len = 0;
    const unsigned char *d = sp_dep_result(ctx, "big", &len);
    if (!d || len != b->len || d[len] != 0)
        return sp_fail(ctx, 1, "dependency: %zu bytes", len);
    for (size_t j = 0; j < len; j++)
        if (d[j] != pattern(b->seed, j))
            return sp_fail(ctx, 2, "dependency: byte %zu differs", j);
    return sp_set_result_str(ctx, "same");
}

static void big_dependency(void **state)
{
    (void)state;
    struct big b = {.len = 2 * SHM_AT, .seed = 9};
    static const char *after[] = {"big", NULL};
    sp_task t[2] = {
        {.key = "big", .fn = big_task, .arg = &b},
        {.key = "reader", .fn = read_dep, .arg = &b, .after = after}};
    sp_results *res = NULL;
    assert_int_equal(run(t, 2, 2, false, &res), 0);
    check_bytes(sp_results_get(res, "big"), &b);
    assert_string_equal(sp_entry_str(sp_results_get(res, "reader")), "same");
    sp_results_free(res);
}

/* The shipped threshold: below it a result comes through the channel
 * (malloc'd in the caller), from it on through a memfd. */
static void default_threshold(void **state)
{
    (void)state;
    sp_proc_shm_min = SHM_MIN;
    struct big b[2] = {{.len = SHM_MIN - 1, .seed = 4},
                       {.len = SHM_MIN, .seed = 6}};
    sp_task t[2] = {{.key = "below", .fn = big_task, .arg = &b[0]},
                    {.key = "at", .fn = big_task, .arg = &b[1]}};
    sp_results *res = NULL;
    assert_int_equal(run(t, 2, 2, false, &res), 0);
    const sp_entry *below = sp_results_get(res, "below");
    const sp_entry *at = sp_results_get(res, "at");
    check_bytes(below, &b[0]);
    check_bytes(at, &b[1]);
    assert_false(in_memfd_mapping(sp_entry_data(below, NULL)));
    assert_int_equal(in_memfd_mapping(sp_entry_data(at, NULL)),
                     test_backend == SP_BACKEND_PROCESS);
    sp_results_free(res);
}

/* ---- the process backend's failure paths -------------------------------- */

/* Two results of len bytes (one owned, one copied) come back intact, not
 * in a memfd mapping, and no descriptor is left open: what a call must
 * give when the memfd path fails on either side. */
static void two_results_not_mapped(size_t len)
{
    int fds = test_open_fds();
    struct big b[2] = {{.len = len, .seed = 5},
                       {.len = len, .seed = 7, .copy = 1}};
    sp_task t[2] = {{.key = "owned", .fn = big_task, .arg = &b[0]},
                    {.key = "copied", .fn = big_task, .arg = &b[1]}};
    sp_results *res = NULL;
    assert_int_equal(run(t, 2, 2, false, &res), 0);
    for (int k = 0; k < 2; k++) {
        const sp_entry *e = sp_results_get(res, t[k].key);
        check_bytes(e, &b[k]);
        assert_false(in_memfd_mapping(sp_entry_data(e, NULL)));
    }
    sp_results_free(res);
    assert_int_equal(test_open_fds(), fds);
}

/* No memfd (EMFILE, as with too many descriptors open): the bytes come
 * through the channel, intact. */
static void no_memfd_falls_back(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip();
    atomic_store(memfd_mode, MEMFD_EMFILE);
    two_results_not_mapped(BIG);
}

/* The caller cannot map the memfds (out of mappings): it reads them into
 * memory of its own. */
static void unmappable_memfd_is_read(void **state)
{
    (void)state;
    if (test_backend != SP_BACKEND_PROCESS)
        skip();
    mmap_fails = true;
    two_results_not_mapped(2 * SHM_AT);
    mmap_fails = false;
}

/* A worker killed right after making its memfd: that task is CRASHED
 * under its key, the others are OK, no descriptor is left. */
static void dies_holding_memfd(bool pool)
{
    if (test_backend != SP_BACKEND_PROCESS)
        skip();
    int fds = test_open_fds();
    enum { N = 4 };
    struct big b[N];
    sp_task t[N];
    char keys[N][8];
    for (size_t k = 0; k < N; k++) {
        /* One-shot: it dies making the memfd that sends its owned
         * buffer; pool: making the one sp_set_result() keeps its bytes
         * in, while the task runs. */
        b[k] = (struct big){
            .len = 2 * SHM_AT, .seed = k, .die = k == 1, .copy = pool};
        snprintf(keys[k], sizeof keys[k], "t%zu", k);
        t[k] = (sp_task){.key = keys[k], .fn = big_task, .arg = &b[k]};
    }
    /* One worker: t0 sends its result, then t1 makes the hook kill the
     * worker as it makes its memfd. */
    sp_results *res = NULL;
    assert_int_equal(run(t, 2, 1, pool, &res), 0);
    const sp_entry *e = sp_results_get(res, "t1");
    assert_int_equal(sp_entry_kind(e), SP_KIND_CRASHED);
    assert_int_equal(sp_entry_code(e), SP_ECRASHED);
    assert_int_equal(sp_entry_signal(e), SIGKILL);
    check_bytes(sp_results_get(res, "t0"), &b[0]);
    sp_results_free(res);
    /* And the next call works, with memfds again. */
    atomic_store(memfd_mode, MEMFD_REAL);
    res = NULL;
    assert_int_equal(run(t + 2, 2, 2, pool, &res), 0);
    check_bytes(sp_results_get(res, "t2"), &b[2]);
    check_bytes(sp_results_get(res, "t3"), &b[3]);
    sp_results_free(res);
    assert_int_equal(test_open_fds(), fds);
}

static void crash_with_memfd(void **state)
{
    (void)state;
    dies_holding_memfd(false);
}

static void crash_with_memfd_pool(void **state)
{
    (void)state;
    dies_holding_memfd(true);
}

/* A task that forges a shared-memory frame on its worker's channel. */
enum { FORGE_UNSEALED = 0, FORGE_NO_FD = 1, FORGE_SHORT = 2 };

static int find_channel(void)
{
    for (int fd = 3; fd < 1024; fd++) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
            return fd;
    }
    return -1;
}

static int forge_task(sp_ctx *ctx, void *arg)
{
    int how = *(const int *)arg;
    int ch = find_channel();
    if (ch < 0)
        return sp_fail(ctx, 1, "no channel found");
    size_t len = 4096;
    int mfd = memfd_create("forged", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0 || ftruncate(mfd, (off_t)len + (how == FORGE_SHORT ? 0 : 1)))
        return sp_fail(ctx, 2, "memfd");
    if (how == FORGE_SHORT)
        fcntl(mfd, F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
    unsigned char hdr[SP_WIRE_HEADER];
    sp_wire_encode(hdr, &(struct sp_wire_header){
                            .magic = SP_WIRE_MAGIC,
                            .index = (uint32_t)sp_ctx_index(ctx),
                            .type = SP_WIRE_RESULT,
                            .flags = SP_WIRE_SHM,
                            .data_len = len,
                        });
    struct iovec iov = {hdr, sizeof hdr};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (how != FORGE_NO_FD) {
        m.msg_control = u.buf;
        m.msg_controllen = sizeof u.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &mfd, sizeof mfd);
    }
    if (sendmsg(ch, &m, MSG_NOSIGNAL) != (ssize_t)sizeof hdr)
        return sp_fail(ctx, 3, "sendmsg");
    close(mfd);
    test_sleep_ms(test_ms(2000)); /* the parent kills the worker first */
    return sp_set_result_str(ctx, "not reached");
}

static void forged(int how)
{
    if (test_backend != SP_BACKEND_PROCESS)
        skip();
    int fds = test_open_fds();
    struct big b = {.len = 2 * SHM_AT, .seed = 1};
    sp_task t[2] = {{.key = "forger", .fn = forge_task, .arg = &how},
                    {.key = "honest", .fn = big_task, .arg = &b}};
    sp_results *res = NULL;
    assert_int_equal(run(t, 2, 2, false, &res), 0);
    const sp_entry *e = sp_results_get(res, "forger");
    assert_int_equal(sp_entry_kind(e), SP_KIND_CRASHED);
    assert_int_equal(sp_entry_code(e), SP_EPROTO);
    assert_non_null(strstr(sp_entry_message(e), "malformed result frame"));
    check_bytes(sp_results_get(res, "honest"), &b);
    sp_results_free(res);
    assert_int_equal(test_open_fds(), fds);
}

static void forged_unsealed(void **state)
{
    (void)state;
    forged(FORGE_UNSEALED);
}

static void forged_without_fd(void **state)
{
    (void)state;
    forged(FORGE_NO_FD);
}

static void forged_short(void **state)
{
    (void)state;
    forged(FORGE_SHORT);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(big_owned, setup),
    cmocka_unit_test_setup(big_copied, setup),
    cmocka_unit_test_setup(big_owned_pool, setup),
    cmocka_unit_test_setup(big_copied_pool, setup),
    cmocka_unit_test_setup(several_big, setup),
    cmocka_unit_test_setup(several_big_pool, setup),
    cmocka_unit_test_setup(big_dependency, setup),
    cmocka_unit_test_setup(default_threshold, setup),
    cmocka_unit_test_setup(no_memfd_falls_back, setup),
    cmocka_unit_test_setup(unmappable_memfd_is_read, setup),
    cmocka_unit_test_setup(crash_with_memfd, setup),
    cmocka_unit_test_setup(crash_with_memfd_pool, setup),
    cmocka_unit_test_setup(forged_unsealed, setup),
    cmocka_unit_test_setup(forged_without_fd, setup),
    cmocka_unit_test_setup(forged_short, setup),
};

TEST_MAIN("bigresult", tests)
