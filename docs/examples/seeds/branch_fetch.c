/* SPDX-License-Identifier: MIT */
/* Seed 000 in C: fetch every branch of a scenario from a slow API.
 *
 * The seed runs two waves on one thread pool: all branch properties, then
 * all bus lookups. Here each branch is one task that fetches its
 * properties and then runs its two bus lookups as a nested parallel call,
 * so a branch's buses are asked for the moment its terminals are known,
 * without waiting for the slowest branch of a wave.
 *
 *   branch_fetch [-s|--sequential] [--compare] [--scale S] [--svg FILE]
 *                [--trace FILE]
 *
 * -s runs every call one after another (the serial backend, same tasks,
 * identical records); --compare runs both and prints the speedup. Live log
 * on stderr; timeline, records (JSON) and the summary on stdout. --svg
 * writes the timeline of every API call as SVG; --trace writes the branch
 * tasks of the (first) run as a Chrome trace (sp_results_write_trace()),
 * to open in https://ui.perfetto.dev or chrome://tracing. */
#include <simplepar.h>
#include <simplepar/mockapi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ctx {
    sp_mock *mock;
    sp_backend backend;
};

struct bus_job {
    struct ctx *c;
    const char *terminal;
    unsigned outer;
};

static int bus_task(sp_ctx *ctx, void *arg)
{
    struct bus_job *j = arg;
    char who[24];
    snprintf(who, sizeof who, "worker-%u.%u", j->outer, sp_ctx_worker(ctx));
    sp_mock_bus bus;
    int rc = sp_mock_bus_for_terminal(j->c->mock, ctx, who, j->terminal, &bus);
    if (rc)
        return rc;
    return sp_set_resultf(ctx,
                          "{\"bus_name\": \"%s\", \"bus_num\": \"%s\", "
                          "\"kv\": %d}",
                          bus.bus_name, bus.bus_num, bus.kv);
}

/* One branch: its properties, then both of its buses at once. */
static int branch_task(sp_ctx *ctx, void *arg)
{
    struct ctx *c = arg;
    char who[24];
    snprintf(who, sizeof who, "worker-%u", sp_ctx_worker(ctx));
    sp_mock_branch b;
    int rc = sp_mock_branch_props(c->mock, ctx, who, sp_ctx_key(ctx), &b);
    if (rc)
        return rc;
    struct bus_job jobs[2] = {{c, b.terminal1_uri, sp_ctx_worker(ctx)},
                              {c, b.terminal2_uri, sp_ctx_worker(ctx)}};
    sp_task t[2] = {{.key = "bus1", .fn = bus_task, .arg = &jobs[0]},
                    {.key = "bus2", .fn = bus_task, .arg = &jobs[1]}};
    sp_options o = {.backend = c->backend};
    sp_results *res;
    if ((rc = simple_parallel(t, 2, &o, &res)) != 0)
        return sp_fail(ctx, rc, "%s", sp_last_error());
    for (int k = 0; k < 2; k++) {
        const sp_entry *e = sp_results_at(res, (size_t)k);
        if (sp_entry_kind(e) != SP_KIND_OK) {
            rc = sp_fail(ctx, sp_entry_code(e), "%s: %s", sp_entry_key(e),
                         sp_entry_message(e));
            sp_results_free(res);
            return rc;
        }
    }
    rc = sp_set_resultf(ctx,
                        "    {\n        \"branch_uri\": \"%s\",\n"
                        "        \"branch_name\": \"%s\",\n"
                        "        \"length\": %g,\n        \"bus1\": %s,\n"
                        "        \"bus2\": %s\n    }",
                        b.branch_uri, b.branch_name, b.length,
                        sp_entry_str(sp_results_at(res, 0)),
                        sp_entry_str(sp_results_at(res, 1)));
    sp_results_free(res);
    return rc;
}

/* One whole fetch; returns its wall time, -1 on failure. */
static double fetch(double scale, int sequential, const char *svg,
                    const char *trace)
{
    sp_mock_options mo = {.time_scale = scale, .log = stderr, .record = 1};
    struct ctx c = {sp_mock_new(&mo),
                    sequential ? SP_BACKEND_SERIAL : SP_BACKEND_THREAD};
    if (!c.mock)
        return -1;
    double t0 = sp_mock_clock_ms(c.mock);
    const char *uris[16];
    int n = sp_mock_branch_list(c.mock, NULL, "main", 42, uris, 16);
    if (n < 0) {
        sp_mock_free(c.mock);
        return -1;
    }
    sp_task t[16];
    for (int i = 0; i < n; i++)
        t[i] = (sp_task){.key = uris[i], .fn = branch_task, .arg = &c};
    sp_options o = {.backend = c.backend};
    sp_results *res;
    if (simple_parallel(t, (size_t)n, &o, &res)) {
        fprintf(stderr, "simple_parallel: %s\n", sp_last_error());
        sp_mock_free(c.mock);
        return -1;
    }
    double elapsed = (sp_mock_clock_ms(c.mock) - t0) / 1e3;

    sp_mock_event ev[64];
    size_t nev = sp_mock_recorded(c.mock, ev, 64);
    nev = nev < 64 ? nev : 64;
    sp_mock_timeline_text(stdout, ev, nev, 60);
    if (svg) {
        FILE *f = fopen(svg, "w");
        if (!f || sp_mock_timeline_svg(f, ev, nev) || fclose(f))
            fprintf(stderr, "cannot write %s\n", svg);
    }
    /* The trace of the branch tasks; a failure to write it fails the run. */
    int failed = 0;
    if (trace) {
        FILE *f = fopen(trace, "w");
        if (!f || sp_results_write_trace(res, f)) {
            fprintf(stderr, "cannot write %s: %s\n", trace,
                    f ? sp_last_error() : "fopen failed");
            failed = 1;
        }
        if (f && fclose(f)) {
            perror(trace);
            failed = 1;
        }
    }
    /* The records, in the branch list's order (sorted by uri). */
    printf("\n[\n");
    for (int i = 0; i < n; i++) {
        const sp_entry *e = sp_results_at(res, (size_t)i);
        if (sp_entry_kind(e) == SP_KIND_OK)
            printf("%s%s\n", sp_entry_str(e), i + 1 < n ? "," : "");
        else {
            failed = 1;
            fprintf(stderr, "%s: %s\n", sp_entry_key(e), sp_entry_message(e));
        }
    }
    printf("]\n\nFetched %d branches in %.1fs (%s)\n", n, elapsed,
           sequential ? "sequential" : "parallel");
    sp_results_free(res);
    sp_mock_free(c.mock);
    return failed ? -1 : elapsed;
}

int main(int argc, char **argv)
{
    double scale = 0.25;
    int sequential = 0, compare = 0;
    const char *svg = NULL, *trace = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-s") || !strcmp(argv[i], "--sequential"))
            sequential = 1;
        else if (!strcmp(argv[i], "--compare"))
            compare = 1;
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = atof(argv[++i]);
        else if (!strcmp(argv[i], "--svg") && i + 1 < argc)
            svg = argv[++i];
        else if (!strcmp(argv[i], "--trace") && i + 1 < argc)
            trace = argv[++i];
        else {
            printf("usage: %s [-s|--sequential] [--compare] [--scale S] "
                   "[--svg FILE] [--trace FILE]\n",
                   argv[0]);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (!(scale > 0 && scale <= 10)) {
        fprintf(stderr, "--scale must be in (0, 10]\n");
        return 2;
    }
    double first = fetch(scale, sequential && !compare, svg, trace);
    if (first < 0)
        return 1;
    if (compare) {
        printf("\n--- the same fetch, every call one after another ---\n");
        double seq = fetch(scale, 1, NULL, NULL);
        if (seq < 0)
            return 1;
        printf("\nSpeedup of parallel over sequential: %.2fx\n", seq / first);
    }
    return 0;
}
