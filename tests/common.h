/* SPDX-License-Identifier: MIT */
/* Shared by the test suites: every behaviour suite takes the backend to run
 * on as argv[1] ("thread", "serial", ...) and meson runs it once per
 * backend, so a new backend joins every suite with one list entry. */
#ifndef SP_TEST_COMMON_H
#define SP_TEST_COMMON_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simplepar.h"

/* Whether AddressSanitizer is built in. Its allocator (GCC 12's libasan)
 * is not fork-safe: a child forked while another thread allocates can
 * deadlock in malloc. glibc's malloc is fork-safe, so only the tests that
 * fork from several threads at once skip themselves under ASan; TSan and
 * valgrind still run them. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif

static sp_backend test_backend;
static const char *test_backend_name = "thread";

static inline sp_options test_opts(void)
{
    sp_options o = {0};
    o.backend = test_backend;
    return o;
}

/* Pick the backend named by argv[1] and name the group "suite/backend";
 * NULL for an unknown backend. */
static inline const char *test_init(int argc, char **argv, const char *suite)
{
    static const struct {
        const char *name;
        sp_backend backend;
    } known[] = {
        {"thread", SP_BACKEND_THREAD},
        {"serial", SP_BACKEND_SERIAL},
        {"process", SP_BACKEND_PROCESS},
    };
    if (argc > 1) {
        size_t k;
        for (k = 0; k < sizeof known / sizeof known[0]; k++)
            if (!strcmp(argv[1], known[k].name))
                break;
        if (k == sizeof known / sizeof known[0]) {
            fprintf(stderr, "unknown backend %s\n", argv[1]);
            return NULL;
        }
        test_backend = known[k].backend;
        test_backend_name = known[k].name;
    }
    signal(SIGPIPE, SIG_IGN);
    static char name[128];
    snprintf(name, sizeof name, "%s/%s", suite, test_backend_name);
    return name;
}

/* Only cmocka's public API: cmocka_run_group_tests_name(). */
#define TEST_MAIN(suite, tests)                                                \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        const char *group = test_init(argc, argv, suite);                      \
        if (!group)                                                            \
            return 2;                                                          \
        return cmocka_run_group_tests_name(group, tests, NULL, NULL);          \
    }

/* Every duration a test uses is multiplied by this: 1 normally, more under
 * valgrind (SP_TEST_SCALE in its test setup), where a freshly forked worker
 * spends tens of milliseconds translating code before its first task. */
static inline double test_scale(void)
{
    const char *s = getenv("SP_TEST_SCALE");
    double v = s ? atof(s) : 1.0;
    return v >= 1.0 ? v : 1.0;
}

/* ms milliseconds, scaled. */
static inline unsigned test_ms(unsigned ms)
{
    return (unsigned)(ms * test_scale());
}

/* Open descriptors of this process (the leak checks count them). */
static inline int test_open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += de->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* A table of n rows that run fn(ctx, arg), keyed prefix and the row's
 * index ("w0", "w1", ...), for the tests of wide and long calls. */
#define TEST_KEY_LEN 24
typedef struct test_table {
    sp_task *t;
    char *keys; /* n keys of TEST_KEY_LEN bytes */
    size_t n;
} test_table;

static inline test_table test_table_new(size_t n, const char *prefix,
                                        sp_task_fn fn, void *arg)
{
    test_table tt = {calloc(n ? n : 1, sizeof *tt.t),
                     malloc((n ? n : 1) * TEST_KEY_LEN), n};
    assert_non_null(tt.t);
    assert_non_null(tt.keys);
    for (size_t i = 0; i < n; i++) {
        char *key = tt.keys + i * TEST_KEY_LEN;
        snprintf(key, TEST_KEY_LEN, "%s%zu", prefix, i);
        tt.t[i] = (sp_task){.key = key, .fn = fn, .arg = arg};
    }
    return tt;
}

/* Row i's key. */
static inline const char *test_key(const test_table *tt, size_t i)
{
    return tt->keys + i * TEST_KEY_LEN;
}

static inline void test_table_free(test_table *tt)
{
    free(tt->t);
    free(tt->keys);
    *tt = (test_table){0};
}

/* Sleep for ms milliseconds (tests keep these short). */
static inline void test_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts))
        ;
}

/* Wait until the task is asked to stop; give up after limit_ms. Returns 1
 * when it was asked. */
static inline int test_wait_cancel(sp_ctx *ctx, unsigned limit_ms)
{
    for (unsigned waited = 0; waited < limit_ms; waited++) {
        if (sp_cancelled(ctx))
            return 1;
        test_sleep_ms(1);
    }
    return sp_cancelled(ctx);
}

#endif
