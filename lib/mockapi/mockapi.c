/* SPDX-License-Identifier: MIT */
/* The mock API: simulated slow calls with seeded latencies, failure and
 * crash injection, the seeds' data, live logging and call recording. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include "simplepar/mockapi.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct recorded {
    char *lane, *label;
    double start, end;
};

struct sp_mock {
    sp_mock_options o;
    struct timespec t0;
    pthread_mutex_t lock; /* guards rec */
    struct recorded *rec;
    size_t nrec, caprec;
};

static double since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) +
           (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

SP_API sp_mock *sp_mock_new(const sp_mock_options *opts)
{
    static const sp_mock_options defaults;
    if (!opts)
        opts = &defaults;
    if (!(opts->time_scale >= 0) || !isfinite(opts->time_scale) ||
        !(opts->fail_probability >= 0 && opts->fail_probability <= 1)) {
        errno = EINVAL;
        return NULL;
    }
    for (size_t i = 0; i < sizeof opts->reserved; i++)
        if (opts->reserved[i]) {
            errno = EINVAL;
            return NULL;
        }
    sp_mock *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->o = *opts;
    if (m->o.time_scale == 0)
        m->o.time_scale = 1.0;
    if (m->o.seed == 0)
        m->o.seed = 22;
    pthread_mutex_init(&m->lock, NULL);
    clock_gettime(CLOCK_MONOTONIC, &m->t0);
    return m;
}

SP_API void sp_mock_free(sp_mock *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nrec; i++) {
        free(m->rec[i].lane);
        free(m->rec[i].label);
    }
    free(m->rec);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

SP_API double sp_mock_clock_ms(const sp_mock *m)
{
    return m ? since(&m->t0) * 1e3 : 0.0;
}

/* splitmix64 over (seed, label, stream): a pure function, no shared state. */
static double draw(const sp_mock *m, const char *label, uint64_t stream)
{
    uint64_t h = 1469598103934665603u;
    for (const char *p = label; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    uint64_t z = m->o.seed ^ h ^ (stream * 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0; /* [0, 1) */
}

static void logline(const sp_mock *m, const char *who, const char *verb,
                    const char *label, double secs, int approx)
{
    if (!m->o.log)
        return;
    char line[256];
    int n = snprintf(line, sizeof line, "%7.0f ms | %-10s | ",
                     sp_mock_clock_ms(m), who ? who : "main");
    if (n > 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, "%-5s %s (%s%.1fs)\n", verb,
                 label, approx ? "~" : "", secs);
    /* One call per line, flushed: whole lines from any worker or process. */
    fputs(line, m->o.log);
    fflush(m->o.log);
}

static void record(sp_mock *m, const char *who, const char *label, double start,
                   double end)
{
    if (!m->o.record)
        return;
    pthread_mutex_lock(&m->lock);
    if (m->nrec == m->caprec) {
        size_t cap = m->caprec ? m->caprec * 2 : 64;
        struct recorded *r = realloc(m->rec, cap * sizeof *r);
        if (!r) {
            pthread_mutex_unlock(&m->lock);
            return;
        }
        m->rec = r;
        m->caprec = cap;
    }
    char *lane = strdup(who ? who : "main"), *lab = strdup(label);
    if (lane && lab)
        m->rec[m->nrec++] = (struct recorded){lane, lab, start, end};
    else {
        free(lane);
        free(lab);
    }
    pthread_mutex_unlock(&m->lock);
}

static int fails(const sp_mock *m, const char *label, const char *input)
{
    if (m->o.fail_inputs)
        for (const char *const *f = m->o.fail_inputs; *f; f++)
            if (input && !strcmp(*f, input))
                return 1;
    return m->o.fail_probability > 0 &&
           draw(m, label, 2) < m->o.fail_probability;
}

/* Sleep secs, in slices, giving up when the task is asked to stop. */
static int nap(sp_ctx *ctx, double secs)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    double s = floor(secs);
    until.tv_sec += (time_t)s;
    until.tv_nsec += (long)((secs - s) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    for (;;) {
        if (ctx && sp_cancelled(ctx))
            return SP_ECANCELED;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double left = (double)(until.tv_sec - now.tv_sec) +
                      (double)(until.tv_nsec - now.tv_nsec) / 1e9;
        if (left <= 0)
            return 0;
        double slice = ctx && left > 0.01 ? 0.01 : left;
        struct timespec ts = {(time_t)slice,
                              (long)((slice - floor(slice)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static int call(sp_mock *m, sp_ctx *ctx, const char *who, const char *label,
                const char *input, double lo, double hi)
{
    double delay = (lo + (hi - lo) * draw(m, label, 1)) * m->o.time_scale;
    double start = since(&m->t0);
    logline(m, who, "START", label, delay, 1);
    int rc = nap(ctx, delay);
    double end = since(&m->t0);
    logline(m, who, rc ? "STOP" : "DONE", label, end - start, 0);
    record(m, who, label, start, end);
    if (rc)
        return sp_fail(ctx, rc, "cancelled while waiting");
    if (fails(m, label, input))
        return sp_fail(ctx, SP_ETASK, "timed out");
    return 0;
}

SP_API int sp_mock_io(sp_mock *m, sp_ctx *ctx, const char *who,
                      const char *label, double max_delay)
{
    if (!m || !label || !(max_delay >= 0))
        return sp_fail(ctx, SP_EINVAL, "sp_mock_io: bad arguments");
    double lo = max_delay < 0.5 ? max_delay : 0.5;
    return call(m, ctx, who, label, label, lo, max_delay);
}

SP_API void sp_mock_crash(sp_mock_crash_kind kind)
{
    switch (kind) {
    case SP_MOCK_SEGFAULT: {
        volatile uintptr_t addr = 64; /* nothing is mapped there */
        *(volatile int *)addr = 1;
        break;
    }
    case SP_MOCK_ABORT:
        abort();
    default:
        break;
    }
    for (;;)
        pause();
}

/* --- seed 000 ------------------------------------------------------------- */

static const struct {
    sp_mock_branch b;
    sp_mock_bus bus1, bus2;
} branches[] = {
    {{"100", "Sol - Luna", 42, "501", "502"},
     {"SOL", "5201", 138},
     {"LUNA", "5202", 138}},
    {{"101", "Sol - Mars", 3.14, "501", "503"},
     {"SOL", "5201", 138},
     {"MARS", "5203", 138}},
    {{"103", "Ceres - Mars", 4.20, "504", "503"},
     {"CERES", "5204", 138},
     {"MARS", "5203", 138}},
};
#define N_BRANCHES (sizeof branches / sizeof branches[0])

SP_API int sp_mock_branch_list(sp_mock *m, sp_ctx *ctx, const char *who,
                               int scenario, const char **uris, size_t max)
{
    char label[64];
    snprintf(label, sizeof label, "branch_list(scenario=%d)", scenario);
    int rc = call(m, ctx, who, label, label, 0.5, 1.0);
    if (rc)
        return rc;
    for (size_t i = 0; i < N_BRANCHES && i < max; i++)
        uris[i] = branches[i].b.branch_uri;
    return (int)N_BRANCHES;
}

SP_API int sp_mock_branch_props(sp_mock *m, sp_ctx *ctx, const char *who,
                                const char *uri, sp_mock_branch *out)
{
    char label[64];
    snprintf(label, sizeof label, "props(%s)", uri ? uri : "?");
    for (size_t i = 0; uri && i < N_BRANCHES; i++) {
        if (strcmp(branches[i].b.branch_uri, uri))
            continue;
        int rc = call(m, ctx, who, label, uri, 0.5, 2.0);
        if (!rc)
            *out = branches[i].b;
        return rc;
    }
    return sp_fail(ctx, SP_EINVAL, "no branch %s", uri ? uri : "NULL");
}

SP_API int sp_mock_bus_for_terminal(sp_mock *m, sp_ctx *ctx, const char *who,
                                    const char *terminal_uri, sp_mock_bus *out)
{
    char label[64];
    snprintf(label, sizeof label, "bus@term(%s)",
             terminal_uri ? terminal_uri : "?");
    for (size_t i = 0; terminal_uri && i < N_BRANCHES; i++) {
        const sp_mock_bus *bus = NULL;
        if (!strcmp(branches[i].b.terminal1_uri, terminal_uri))
            bus = &branches[i].bus1;
        else if (!strcmp(branches[i].b.terminal2_uri, terminal_uri))
            bus = &branches[i].bus2;
        if (!bus)
            continue;
        int rc = call(m, ctx, who, label, terminal_uri, 0.5, 3.5);
        if (!rc)
            *out = *bus;
        return rc;
    }
    return sp_fail(ctx, SP_EINVAL, "no terminal %s",
                   terminal_uri ? terminal_uri : "NULL");
}

/* --- seed 001 ------------------------------------------------------------- */

static const char *const tickers[] = {"AAPL", "GOOG", "NFLX", "TSLA",
                                      "META", "AMZN", "NVDA", NULL};

SP_API const char *const *sp_mock_tickers(void)
{
    return tickers;
}

SP_API int sp_mock_ticker_quotes(sp_mock *m, sp_ctx *ctx, const char *who,
                                 const char *ticker, sp_mock_ohlcv *out,
                                 size_t days)
{
    size_t k = 0;
    while (tickers[k] && (!ticker || strcmp(tickers[k], ticker)))
        k++;
    if (!tickers[k])
        return sp_fail(ctx, SP_EINVAL, "no ticker %s",
                       ticker ? ticker : "NULL");
    char label[32];
    snprintf(label, sizeof label, "quotes(%s)", ticker);
    int rc = call(m, ctx, who, label, ticker, 0.1, 0.5);
    if (rc)
        return rc;
    /* A random walk fixed by the ticker: the same series every run. */
    double price = 50 + 400 * draw(m, ticker, 10);
    for (size_t d = 0; d < days; d++) {
        char day[48];
        snprintf(day, sizeof day, "%s/%zu", ticker, d);
        double move = (draw(m, day, 11) - 0.5) * 0.04 * price;
        double open = price, close = price + move;
        double hi =
            (open > close ? open : close) * (1 + 0.01 * draw(m, day, 12));
        double lo =
            (open < close ? open : close) * (1 - 0.01 * draw(m, day, 13));
        out[d] = (sp_mock_ohlcv){open, hi, lo, close,
                                 (long long)(1e6 + 9e6 * draw(m, day, 14))};
        price = close;
    }
    return 0;
}

/* --- seed 004 ------------------------------------------------------------- */

SP_API int sp_mock_download(sp_mock *m, sp_ctx *ctx, const char *who,
                            const char *url, char *out, size_t outlen)
{
    if (!url || !out || !outlen)
        return sp_fail(ctx, SP_EINVAL, "download: bad arguments");
    char label[160];
    snprintf(label, sizeof label, "download(%.120s)", url);
    int rc = call(m, ctx, who, label, url, 0.1, 0.6);
    if (rc)
        return rc;
    size_t len = strlen(url);
    if (len && url[len - 1] == '7')
        return sp_fail(ctx, SP_ETASK, "timed out");
    snprintf(out, outlen, "%s: 200 OK (%zu bytes)", url, len);
    return 0;
}

/* --- seed 001, example 2: log files --------------------------------------- */

SP_API void sp_mock_log_path(const char *dir, size_t i, char *out,
                             size_t outlen)
{
    snprintf(out, outlen, "%s/log%zu.log", dir, i);
}

SP_API char *sp_mock_write_logs(size_t files, size_t lines,
                                unsigned long long seed)
{
    static const char *const endpoints[] = {"/api/v1/login", "/api/v1/users",
                                            "/api/v1/products",
                                            "/api/v1/orders", "/api/v1/cart"};
    static const int status[] = {200, 400, 500};
    const char *tmp = getenv("TMPDIR");
    size_t len = strlen(tmp ? tmp : "/tmp") + 32;
    char *dir = malloc(len);
    if (!dir)
        return NULL;
    snprintf(dir, len, "%s/simplepar-logs-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        free(dir);
        return NULL;
    }
    uint64_t x = seed ? seed : 22;
    char path[4096];
    for (size_t f = 0; f < files; f++) {
        sp_mock_log_path(dir, f, path, sizeof path);
        FILE *out = fopen(path, "w");
        if (!out) {
            sp_mock_remove_logs(dir, f);
            return NULL;
        }
        for (size_t l = 0; l < lines; l++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            fprintf(out, "2026-11-22T03:%02zu:%02zu.%06zu %s %d\n",
                    (l / 60) % 60, l % 60, (l * 7919) % 1000000,
                    endpoints[x % 5], status[(x >> 8) % 3]);
        }
        if (fclose(out)) {
            sp_mock_remove_logs(dir, f + 1);
            return NULL;
        }
    }
    return dir;
}

SP_API void sp_mock_remove_logs(char *dir, size_t files)
{
    if (!dir)
        return;
    char path[4096];
    for (size_t f = 0; f < files; f++) {
        sp_mock_log_path(dir, f, path, sizeof path);
        unlink(path);
    }
    rmdir(dir);
    free(dir);
}

SP_API long sp_mock_count_lines(const char *path, const char *needle)
{
    FILE *in = fopen(path, "r");
    if (!in)
        return -1;
    char line[4096];
    long count = 0;
    while (fgets(line, sizeof line, in))
        count += strstr(line, needle) != NULL;
    fclose(in);
    return count;
}

SP_API size_t sp_mock_recorded(sp_mock *m, sp_mock_event *out, size_t max)
{
    if (!m)
        return 0;
    pthread_mutex_lock(&m->lock);
    size_t n = m->nrec;
    for (size_t i = 0; i < n && i < max; i++)
        out[i] = (sp_mock_event){m->rec[i].lane, m->rec[i].label,
                                 m->rec[i].start, m->rec[i].end};
    pthread_mutex_unlock(&m->lock);
    return n;
}
