/* SPDX-License-Identifier: MIT */
/* simplepar-bench, the graph workload: what a dependency costs. */
#include "bench.h"

/* ---- task graphs -------------------------------------------------------- */

/* One table of the graph workload: empty tasks, each waiting for
 * deps[i] (a NULL-terminated list, or none). */
double graph_run(sp_task *t, size_t n, sp_backend b, unsigned workers)
{
    double t0 = now_s();
    sp_options o = {.backend = b, .max_workers = workers};
    sp_results *res = NULL;
    if (simple_parallel(t, n, &o, &res) || sp_results_ok(res) != n) {
        fprintf(stderr, "graph: %s\n", res ? "a task failed" : sp_last_error());
        exit(1);
    }
    sp_results_free(res);
    return now_s() - t0;
}

int graph_empty(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return 0;
}

/* The three tables of the graph workload, n rows each. */
struct graph_tables {
    size_t n;
    char *keys;
    const char **links, **all;
    sp_task *t[3]; /* plain, chain, fan-in */
};

static void graph_tables_build(struct graph_tables *g, size_t n)
{
    g->n = n;
    g->keys = malloc(n * 16);
    g->links = malloc(2 * n * sizeof *g->links); /* the chain's lists */
    g->all = malloc(n * sizeof *g->all);         /* the fan-in's */
    for (int k = 0; k < 3; k++)
        g->t[k] = calloc(n, sizeof *g->t[k]);
    if (!g->keys || !g->links || !g->all || !g->t[0] || !g->t[1] || !g->t[2]) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    sp_task *plain = g->t[0], *chain = g->t[1], *fanin = g->t[2];
    for (size_t i = 0; i < n; i++) {
        char *k = g->keys + i * 16;
        snprintf(k, 16, "g%u", (unsigned)(i % 100000000));
        plain[i] = (sp_task){.key = k, .fn = graph_empty};
        chain[i] = plain[i];
        fanin[i] = plain[i];
        if (i) {
            g->links[2 * i] = g->keys + (i - 1) * 16;
            g->links[2 * i + 1] = NULL;
            chain[i].after = &g->links[2 * i];
        }
        if (i + 1 < n)
            g->all[i] = k;
    }
    g->all[n - 1] = NULL;
    fanin[n - 1].after = g->all;
}

static void graph_tables_free(struct graph_tables *g)
{
    for (int k = 0; k < 3; k++)
        free(g->t[k]);
    free(g->all);
    free(g->links);
    free(g->keys);
}

void bench_graph(const struct settings *s)
{
    struct graph_tables big, small;
    graph_tables_build(&big, s->tasks);
    graph_tables_build(&small, s->ptasks);
    struct {
        const char *label;
        sp_backend b;
        unsigned workers;
        struct graph_tables *g;
    } runners[] = {{"serial", SP_BACKEND_SERIAL, 1, &big},
                   {"thread", SP_BACKEND_THREAD, s->workers, &big},
                   {"process", SP_BACKEND_PROCESS, s->workers, &small}};
    enum { RUNNERS = sizeof runners / sizeof runners[0] };
    static const char *const shapes[] = {"plain", "chain", "fan-in"};
    double samples[RUNNERS][3][64];
    for (int r = -1; r < opt.reps; r++) /* r = -1: warm-up */
        for (int b = 0; b < RUNNERS; b++)
            for (int g = 0; g < 3; g++) {
                progress("graph: repetition %d/%d, %s %s", r + 1, opt.reps,
                         runners[b].label, shapes[g]);
                double dt = graph_run(runners[b].g->t[g], runners[b].g->n,
                                      runners[b].b, runners[b].workers);
                if (r >= 0)
                    samples[b][g][r] = dt;
            }
    progress(NULL);
    printf("\ngraph: empty tasks (%zu; %zu on processes) as a plain table, "
           "a chain (each after the one before) and a fan-in (the last after "
           "all the others); median of %d (min..max)\n",
           big.n, small.n, opt.reps);
    printf("  %-22s %10s %23s %10s\n", "runner", "us/task", "min..max",
           "plain");
    for (int b = 0; b < RUNNERS; b++) {
        double base = summarise(samples[b][0], opt.reps).median;
        double scale = 1e6 / (double)runners[b].g->n;
        for (int g = 0; g < 3; g++) {
            struct stats st = summarise(samples[b][g], opt.reps);
            char runner[40];
            snprintf(runner, sizeof runner, "%s-%s", runners[b].label,
                     shapes[g]);
            emit(&(struct row){.workload = "graph",
                               .runner = runner,
                               .unit = "us/task",
                               .ratio_to = "plain",
                               .best_peer = "",
                               .workers = runners[b].workers,
                               .n = runners[b].g->n,
                               .st = {st.median * scale, st.min * scale,
                                      st.max * scale},
                               .ratio = st.median / base,
                               .vs_best = -1},
                 0);
        }
    }
    printf("  target: a task with one dependency costs at most 2x a task "
           "without (the ratio column)\n");
    graph_tables_free(&big);
    graph_tables_free(&small);
}
