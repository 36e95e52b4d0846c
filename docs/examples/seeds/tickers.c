/* SPDX-License-Identifier: MIT */
/* Seed 001, example 1: fetch seven tickers' daily quotes one by one, then
 * in parallel, and print the speedup (the seed sees about 3x).
 *
 *   tickers [--scale S]      S multiplies every delay (default 1) */
#include <simplepar.h>
#include <simplepar/mockapi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DAYS = 63 }; /* about three months of trading days */

static int quotes(sp_ctx *ctx, void *arg)
{
    char who[16];
    snprintf(who, sizeof who, "worker-%u", sp_ctx_worker(ctx));
    sp_mock_ohlcv q[DAYS];
    int rc = sp_mock_ticker_quotes(arg, ctx, who, sp_ctx_key(ctx), q, DAYS);
    if (rc)
        return rc;
    /* The result is the series itself, as bytes. */
    return sp_set_result(ctx, q, sizeof q);
}

static double run(sp_mock *m, sp_backend backend, const char *label)
{
    const char *const *t = sp_mock_tickers();
    sp_task tasks[16];
    size_t n = 0;
    for (; t[n]; n++)
        tasks[n] = (sp_task){.key = t[n], .fn = quotes, .arg = m};
    sp_options o = {.backend = backend};
    sp_results *res;
    if (simple_parallel(tasks, n, &o, &res)) {
        fprintf(stderr, "%s\n", sp_last_error());
        exit(1);
    }
    double secs = sp_results_elapsed(res);
    printf("%s took %.3f seconds (%zu tickers ok)\n", label, secs,
           sp_results_ok(res));
    size_t len;
    const sp_mock_ohlcv *q = sp_entry_data(sp_results_get(res, "NVDA"), &len);
    if (q && len == DAYS * sizeof *q)
        printf("  NVDA closed at %.2f on the last of %d days\n",
               q[DAYS - 1].close, DAYS);
    sp_results_free(res);
    return secs;
}

int main(int argc, char **argv)
{
    double scale = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = atof(argv[++i]);
        else {
            printf("usage: %s [--scale S]\n", argv[0]);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    sp_mock_options mo = {.time_scale = scale};
    sp_mock *m = sp_mock_new(&mo);
    if (!m) {
        fprintf(stderr, "--scale must be >= 0\n");
        return 2;
    }
    double seq = run(m, SP_BACKEND_SERIAL, "Sequential");
    double par = run(m, SP_BACKEND_THREAD, "Parallel");
    printf("Parallel is %.1fx faster than sequential\n", seq / par);
    sp_mock_free(m);
    return 0;
}
