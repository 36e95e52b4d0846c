/* A pool: workers started once, each with its own state from an
 * initializer (here a lookup table standing in for a connection or a
 * loaded model), used by many calls. */
#include <simplepar.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static atomic_int opened, closed;

static int open_table(unsigned worker, void *user, void **state)
{
    (void)worker;
    int *squares = malloc(100 * sizeof *squares); /* the costly set-up */
    if (!squares)
        return -1;
    for (int k = 0; k < 100; k++)
        squares[k] = k * k;
    *state = squares;
    atomic_fetch_add(&opened, 1);
    (void)user;
    return 0;
}

static void close_table(unsigned worker, void *user, void *state)
{
    (void)worker, (void)user;
    free(state);
    atomic_fetch_add(&closed, 1);
}

static int square(sp_ctx *ctx, void *arg)
{
    const int *squares = sp_ctx_worker_state(ctx);
    return sp_set_resultf(ctx, "%d", squares[*(const int *)arg]);
}

int main(void)
{
    sp_pool_options po = {
        .max_workers = 4, .setup = open_table, .teardown = close_table};
    sp_pool *pool;
    if (sp_pool_create(&po, &pool) != 0) {
        fprintf(stderr, "sp_pool_create: %s\n", sp_last_error());
        return 1;
    }
    static int in[] = {3, 4, 5};
    sp_task tasks[] = {{.key = "three", .fn = square, .arg = &in[0]},
                       {.key = "four", .fn = square, .arg = &in[1]},
                       {.key = "five", .fn = square, .arg = &in[2]}};
    long sum = 0;
    for (int round = 0; round < 1000; round++) { /* microseconds each */
        sp_results *res;
        if (sp_pool_run(pool, tasks, 3, NULL, &res) != 0) {
            fprintf(stderr, "sp_pool_run: %s\n", sp_last_error());
            return 1;
        }
        for (size_t i = 0; i < sp_results_count(res); i++)
            sum += atol(sp_entry_str(sp_results_at(res, i)));
        sp_results_free(res);
    }
    sp_pool_free(pool);
    printf("1000 rounds, sum %ld\n", sum);
    printf("set-ups %d, tear-downs %d\n", atomic_load(&opened),
           atomic_load(&closed));
    return 0;
}
