/* SPDX-License-Identifier: MIT */
/* The thread backend's default worker count on two kinds of table, one
 * simple_parallel() call each with default options (docs/benchmarks.md,
 * "Default worker count"):
 *   cpu: zlib level 6 of N in-memory 1 MiB buffers (default N = 200);
 *   io:  N tasks that sleep 10 ms (default N = 1,000).
 * Usage: simplepar-defaults-probe cpu|io [MAX_WORKERS [N]]. Prints the
 * wall time, the peak RSS and the workers the call used. Run it against
 * two builds side by side (LD_LIBRARY_PATH) to compare defaults. */
#define _DEFAULT_SOURCE
#include <simplepar.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <zlib.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int compress_one(sp_ctx *ctx, void *arg)
{
    static const char alphabet[] = "abcdefgh\n /api/v1/login 200";
    size_t n = (size_t)1 << 20;
    unsigned char *in = malloc(n);
    uLongf out_len = compressBound(n);
    unsigned char *out = malloc(out_len);
    if (!in || !out) {
        free(in);
        free(out);
        return sp_fail(ctx, 1, "out of memory");
    }
    unsigned seed = (unsigned)(size_t)arg * 2654435761u;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        in[i] = (unsigned char)alphabet[(seed >> 16) % (sizeof alphabet - 1)];
    }
    int rc = compress2(out, &out_len, in, n, 6);
    free(in);
    free(out);
    if (rc != Z_OK)
        return sp_fail(ctx, 1, "zlib error %d", rc);
    return sp_set_resultf(ctx, "%lu", (unsigned long)out_len);
}

static int sleep_10ms(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "cpu") && strcmp(argv[1], "io"))) {
        fprintf(stderr, "usage: %s cpu|io [MAX_WORKERS [N]]\n", argv[0]);
        return 2;
    }
    int cpu = !strcmp(argv[1], "cpu");
    unsigned workers = argc > 2 ? (unsigned)atoi(argv[2]) : 0;
    size_t n = argc > 3 ? (size_t)atol(argv[3]) : cpu ? 200 : 1000;
    sp_task *t = calloc(n, sizeof *t);
    char(*keys)[24] = calloc(n, sizeof *keys);
    if (!t || !keys)
        return 1;
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], sizeof keys[i], "t%zu", i);
        t[i] = (sp_task){.key = keys[i],
                         .fn = cpu ? compress_one : sleep_10ms,
                         .arg = (void *)i};
    }
    sp_options o = {.max_workers = workers};
    sp_results *res;
    double t0 = now();
    if (simple_parallel(t, n, &o, &res)) {
        fprintf(stderr, "%s\n", sp_last_error());
        return 1;
    }
    double wall = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s max_workers=%u: %.3f s, peak RSS %.1f MiB, %u workers, "
           "%zu/%zu OK\n",
           argv[1], workers, wall, (double)ru.ru_maxrss / 1024.0,
           sp_results_workers(res), sp_results_ok(res), n);
    int bad = sp_results_ok(res) != n;
    sp_results_free(res);
    free(t);
    free(keys);
    return bad;
}
