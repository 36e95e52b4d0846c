/* SPDX-License-Identifier: MIT */
/* Seed 000 in C: fetch every branch of a scenario from a slow API.
 *
 * The seed runs two waves on one thread pool: all branch properties, then
 * all bus lookups, so every bus waits for the slowest branch. Here the
 * fetch is a task graph: each branch task fetches its properties, then
 * spawns its two bus lookups (their terminal URIs as argument bytes) and
 * a record task that waits for the branch and both buses and assembles
 * the record from their results. A branch's buses are asked for the
 * moment its terminals are known, while other branches are still in
 * flight.
 *
 *   branch_fetch [--waves | -s|--sequential] [--compare] [--scale S]
 *                [--svg FILE] [--trace FILE]
 *
 * --waves runs the seed's two waves instead (for comparison); -s runs the
 * graph with every call one after another (the serial backend, identical
 * records); --compare runs graph, waves and sequential and prints the
 * three wall times. Live log on stderr; timeline, records (JSON) and the
 * summary on stdout. --svg writes the timeline of every API call as SVG;
 * --trace writes every task of the (first) run as a Chrome trace
 * (sp_results_write_trace()), to open in https://ui.perfetto.dev or
 * chrome://tracing. */
#include <simplepar.h>
#include <simplepar/mockapi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mode { GRAPH, WAVES, SEQUENTIAL };
static const char *const mode_name[] = {"graph", "waves", "sequential"};

/* The mock API, shared by every task (by pointer: the fetch runs on
 * threads or inline). */
static sp_mock *mock;

/* Waves: the first wave notes each branch's terminals here, by its row
 * (each task writes only its own), for the second wave to look up. */
static char wave_terminals[16][2][128];
static const char *branch_uris[16];

/* The worker's name in the live log. */
static void who_am_i(sp_ctx *ctx, char *who, size_t len)
{
    snprintf(who, len, "worker-%u", sp_ctx_worker(ctx));
}

/* A bus lookup: the terminal's URI comes as the task's argument bytes. */
static int bus_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    char who[24], terminal[128];
    size_t len;
    const char *uri = sp_ctx_data(ctx, &len);
    snprintf(terminal, sizeof terminal, "%.*s", (int)len, uri);
    who_am_i(ctx, who, sizeof who);
    sp_mock_bus bus;
    int rc = sp_mock_bus_for_terminal(mock, ctx, who, terminal, &bus);
    if (rc)
        return rc;
    return sp_set_resultf(ctx,
                          "{\"bus_name\": \"%s\", \"bus_num\": \"%s\", "
                          "\"kv\": %d}",
                          bus.bus_name, bus.bus_num, bus.kv);
}

/* A branch's properties, as the fields of its record; in graph mode it
 * then spawns its bus lookups and the task that assembles its record. */
static int branch_task(sp_ctx *ctx, void *arg)
{
    char who[24];
    who_am_i(ctx, who, sizeof who);
    sp_mock_branch b;
    int rc = sp_mock_branch_props(mock, ctx, who, sp_ctx_key(ctx), &b);
    if (rc)
        return rc;
    rc = sp_set_resultf(ctx,
                        "        \"branch_uri\": \"%s\",\n"
                        "        \"branch_name\": \"%s\",\n"
                        "        \"length\": %g,\n",
                        b.branch_uri, b.branch_name, b.length);
    if (rc)
        return rc;
    if (arg == NULL) { /* waves: the buses come in the second wave */
        size_t row = sp_ctx_index(ctx);
        snprintf(wave_terminals[row][0], sizeof wave_terminals[row][0], "%s",
                 b.terminal1_uri);
        snprintf(wave_terminals[row][1], sizeof wave_terminals[row][1], "%s",
                 b.terminal2_uri);
        return 0;
    }
    const char *terminals[2] = {b.terminal1_uri, b.terminal2_uri};
    char keys[3][160];
    for (int k = 0; k < 2; k++) {
        snprintf(keys[k], sizeof keys[k], "bus%d:%s", k + 1, sp_ctx_key(ctx));
        sp_task bus = {.key = keys[k],
                       .fn = bus_task,
                       .data = terminals[k],
                       .len = strlen(terminals[k])};
        if ((rc = sp_spawn(ctx, &bus)) != 0)
            return sp_fail(ctx, rc, "%s", sp_last_error());
    }
    snprintf(keys[2], sizeof keys[2], "record:%s", sp_ctx_key(ctx));
    const char *after[] = {sp_ctx_key(ctx), keys[0], keys[1], NULL};
    sp_task record = {.key = keys[2], .fn = (sp_task_fn)arg, .after = after};
    if ((rc = sp_spawn(ctx, &record)) != 0)
        return sp_fail(ctx, rc, "%s", sp_last_error());
    return 0;
}

/* The record of one branch, from the results of the three tasks it waits
 * for: its branch and its two buses. */
static int record_task(sp_ctx *ctx, void *arg)
{
    (void)arg;
    const char *uri = sp_ctx_key(ctx) + strlen("record:");
    char key1[160], key2[160];
    snprintf(key1, sizeof key1, "bus1:%s", uri);
    snprintf(key2, sizeof key2, "bus2:%s", uri);
    const char *props = sp_dep_result(ctx, uri, NULL);
    const char *bus1 = sp_dep_result(ctx, key1, NULL);
    const char *bus2 = sp_dep_result(ctx, key2, NULL);
    if (!props || !bus1 || !bus2)
        return sp_fail(ctx, 1, "%s", sp_last_error());
    return sp_set_resultf(ctx,
                          "    {\n%s        \"bus1\": %s,\n"
                          "        \"bus2\": %s\n    }",
                          props, bus1, bus2);
}

/* Print the records, one per branch in the branch list's order: the
 * record tasks' results (graph), or the branch's fields and its two buses
 * from the second wave (waves). Returns 0, or 1 if a task failed. */
static int print_records(const sp_results *res, const sp_results *buses,
                         const char *const *uris, int n)
{
    int failed = 0;
    const sp_results *maps[2] = {res, buses};
    for (int m = 0; m < 2; m++) {
        for (size_t i = 0; maps[m] && i < sp_results_count(maps[m]); i++) {
            const sp_entry *e = sp_results_at(maps[m], i);
            if (sp_entry_kind(e) != SP_KIND_OK) {
                failed = 1;
                fprintf(stderr, "%s: %s %s\n", sp_entry_key(e),
                        sp_kind_name(sp_entry_kind(e)), sp_entry_message(e));
            }
        }
    }
    printf("\n[\n");
    for (int i = 0; i < n && !failed; i++) {
        char key[160];
        const char *sep = i + 1 < n ? "," : "";
        if (buses) {
            const char *bus[2];
            for (int k = 0; k < 2; k++) {
                snprintf(key, sizeof key, "bus%d:%s", k + 1, uris[i]);
                bus[k] = sp_entry_str(sp_results_get(buses, key));
            }
            printf("    {\n%s        \"bus1\": %s,\n        \"bus2\": "
                   "%s\n    }%s\n",
                   sp_entry_str(sp_results_get(res, uris[i])), bus[0], bus[1],
                   sep);
        } else {
            snprintf(key, sizeof key, "record:%s", uris[i]);
            printf("%s%s\n", sp_entry_str(sp_results_get(res, key)), sep);
        }
    }
    printf("]\n");
    return failed;
}

/* The seed's second wave: every bus of every branch, on threads. */
static sp_results *second_wave(int n)
{
    sp_task t[32];
    char keys[32][160];
    for (int i = 0, m = 0; i < n; i++) {
        for (int k = 0; k < 2; k++, m++) {
            snprintf(keys[m], sizeof keys[m], "bus%d:%s", k + 1,
                     branch_uris[i]);
            t[m] = (sp_task){.key = keys[m],
                             .fn = bus_task,
                             .data = wave_terminals[i][k],
                             .len = strlen(wave_terminals[i][k])};
        }
    }
    sp_options o = {.max_workers = 2 * (unsigned)n};
    sp_results *res = NULL;
    if (simple_parallel(t, 2 * (size_t)n, &o, &res))
        fprintf(stderr, "second wave: %s\n", sp_last_error());
    return res;
}

/* One whole fetch; returns its wall time, -1 on failure. */
static double fetch(double scale, enum mode mode, const char *svg,
                    const char *trace)
{
    sp_mock_options mo = {.time_scale = scale, .log = stderr, .record = 1};
    mock = sp_mock_new(&mo);
    if (!mock)
        return -1;
    double t0 = sp_mock_clock_ms(mock);
    const char **uris = branch_uris;
    int n = sp_mock_branch_list(mock, NULL, "main", 42, uris, 16);
    if (n < 0) {
        sp_mock_free(mock);
        return -1;
    }
    sp_task t[16];
    for (int i = 0; i < n; i++)
        t[i] = (sp_task){.key = uris[i],
                         .fn = branch_task,
                         .arg = mode == WAVES ? NULL : (void *)record_task};
    /* The seed's pool: 2 workers per branch, in every parallel mode. */
    sp_options o = {.backend = mode == SEQUENTIAL ? SP_BACKEND_SERIAL
                                                  : SP_BACKEND_THREAD,
                    .max_workers = 2 * (unsigned)n};
    sp_results *res = NULL, *buses = NULL;
    if (simple_parallel(t, (size_t)n, &o, &res)) {
        fprintf(stderr, "simple_parallel: %s\n", sp_last_error());
        sp_mock_free(mock);
        return -1;
    }
    if (mode == WAVES && sp_results_ok(res) == (size_t)n)
        buses = second_wave(n);
    double elapsed = (sp_mock_clock_ms(mock) - t0) / 1e3;

    sp_mock_event ev[64];
    size_t nev = sp_mock_recorded(mock, ev, 64);
    nev = nev < 64 ? nev : 64;
    sp_mock_timeline_text(stdout, ev, nev, 60);
    if (svg) {
        FILE *f = fopen(svg, "w");
        if (!f || sp_mock_timeline_svg(f, ev, nev) || fclose(f))
            fprintf(stderr, "cannot write %s\n", svg);
    }
    /* The trace of every task of the call; a failure to write it fails
     * the run. */
    int failed = mode == WAVES && !buses;
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
    if (!failed)
        failed = print_records(res, buses, uris, n);
    printf("\nFetched %d branches in %.1fs (%s, %zu tasks)\n", n, elapsed,
           mode_name[mode],
           sp_results_count(res) + (buses ? sp_results_count(buses) : 0));
    sp_results_free(buses);
    sp_results_free(res);
    sp_mock_free(mock);
    return failed ? -1 : elapsed;
}

int main(int argc, char **argv)
{
    double scale = 0.25;
    enum mode mode = GRAPH;
    int compare = 0;
    const char *svg = NULL, *trace = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-s") || !strcmp(argv[i], "--sequential"))
            mode = SEQUENTIAL;
        else if (!strcmp(argv[i], "--waves"))
            mode = WAVES;
        else if (!strcmp(argv[i], "--compare"))
            compare = 1;
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = atof(argv[++i]);
        else if (!strcmp(argv[i], "--svg") && i + 1 < argc)
            svg = argv[++i];
        else if (!strcmp(argv[i], "--trace") && i + 1 < argc)
            trace = argv[++i];
        else {
            printf("usage: %s [--waves | -s|--sequential] [--compare] "
                   "[--scale S] [--svg FILE] [--trace FILE]\n",
                   argv[0]);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (!(scale > 0 && scale <= 10)) {
        fprintf(stderr, "--scale must be in (0, 10]\n");
        return 2;
    }
    if (!compare)
        return fetch(scale, mode, svg, trace) < 0;
    double times[3];
    for (int m = GRAPH; m <= SEQUENTIAL; m++) {
        if (m != GRAPH)
            printf("\n--- the same fetch, %s ---\n",
                   m == WAVES ? "in the seed's two waves"
                              : "every call one after another");
        times[m] = fetch(scale, (enum mode)m, m == GRAPH ? svg : NULL,
                         m == GRAPH ? trace : NULL);
        if (times[m] < 0)
            return 1;
    }
    printf("\nWall time: graph %.2fs, waves %.2fs, sequential %.2fs; the "
           "graph is %.2fx faster than the waves and %.2fx faster than "
           "sequential\n",
           times[GRAPH], times[WAVES], times[SEQUENTIAL],
           times[WAVES] / times[GRAPH], times[SEQUENTIAL] / times[GRAPH]);
    return 0;
}
