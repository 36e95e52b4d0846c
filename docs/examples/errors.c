/* SPDX-License-Identifier: MIT */
/* What a call that fails up front tells you: the code, its name and
 * description, and sp_last_error()'s message naming the offending row. No
 * callback has run and no map was made. The README, the guide and the man
 * pages quote these messages; the test suite checks every quote against
 * this program's output (tests/check-doc-examples.sh).
 * Build: cc errors.c $(pkg-config --cflags --libs simplepar) */
#include <simplepar.h>
#include <stdatomic.h>
#include <stdio.h>

static atomic_int calls;

static int noop(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    atomic_fetch_add(&calls, 1);
    return 0;
}

/* Runs a table that must be rejected; 0 when it was. */
static int expect_rejected(const char *what, const sp_task *tasks, size_t n)
{
    sp_results *res = NULL;
    int rc = simple_parallel(tasks, n, NULL, &res);
    printf("%s: simple_parallel() returned %s (%s)\n", what, sp_err_name(rc),
           sp_strerror(rc));
    if (rc == 0) {
        sp_results_free(res);
        return 1;
    }
    puts(sp_last_error());
    printf("callbacks run: %d, map: %s\n", atomic_load(&calls),
           res ? "made" : "none");
    return 0;
}

int main(void)
{
    sp_task dup[] = {
        {.key = "a", .fn = noop},
        {.key = "b", .fn = noop},
        {.key = "c", .fn = noop},
        {.key = "b", .fn = noop},
    };
    sp_task no_fn[] = {
        {.key = "ok", .fn = noop},
        {.key = "noop", .fn = NULL},
    };
    int bad = expect_rejected("duplicate key", dup, 4);
    bad += expect_rejected("NULL callback", no_fn, 2);
    return bad ? 1 : 0;
}
