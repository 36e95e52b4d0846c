/* SPDX-License-Identifier: MIT */
/* Crash isolation: the same table, with one task that segfaults and one
 * that hangs, on threads and on processes. On threads the segfault takes
 * the whole program down (shown here in a child process, so this demo
 * survives to tell); on processes every other key comes back, the crash
 * as CRASHED (SIGSEGV) and the hang as TIMED_OUT.
 *
 *   crash_isolation [--scale S] */
#include <simplepar.h>
#include <simplepar/mockapi.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static sp_mock *mock;

static int work(sp_ctx *ctx, void *arg)
{
    (void)arg;
    char who[16];
    snprintf(who, sizeof who, "worker-%u", sp_ctx_worker(ctx));
    int rc = sp_mock_io(mock, ctx, who, sp_ctx_key(ctx), 0.5);
    return rc ? rc : sp_set_resultf(ctx, "%s ok", sp_ctx_key(ctx));
}

static int segfault(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    sp_mock_crash(SP_MOCK_SEGFAULT);
    return 0;
}

static int hang(sp_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    sp_mock_crash(SP_MOCK_HANG);
    return 0;
}

static sp_task table[] = {
    {.key = "job-a", .fn = work}, {.key = "segfault", .fn = segfault},
    {.key = "job-b", .fn = work}, {.key = "hang", .fn = hang},
    {.key = "job-c", .fn = work}, {.key = "job-d", .fn = work},
};
#define N (sizeof table / sizeof table[0])

static void print(const sp_results *res)
{
    for (size_t i = 0; i < sp_results_count(res); i++) {
        const sp_entry *e = sp_results_at(res, i);
        printf("  %-9s %-9s %s\n", sp_entry_key(e),
               sp_kind_name(sp_entry_kind(e)),
               sp_entry_kind(e) == SP_KIND_OK ? sp_entry_str(e)
                                              : sp_entry_message(e));
    }
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
    mock = sp_mock_new(&mo);
    if (!mock)
        return 2;

    printf("thread backend (in a child process, so we survive it):\n");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        sp_options o = {.backend = SP_BACKEND_THREAD, .task_timeout = scale};
        sp_results *res;
        if (simple_parallel(table, N, &o, &res) == 0)
            print(res);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        printf("  the whole program died of signal %d (%s): every result "
               "was lost\n",
               WTERMSIG(status),
               WTERMSIG(status) == SIGSEGV ? "SIGSEGV" : "see signal(7)");
    else
        printf("  the program exited with status %d\n", WEXITSTATUS(status));

    printf("\nprocess backend (task_timeout %.2f s):\n", scale);
    sp_options o = {
        .backend = SP_BACKEND_PROCESS, .max_workers = 3, .task_timeout = scale};
    sp_results *res;
    if (simple_parallel(table, N, &o, &res)) {
        fprintf(stderr, "%s\n", sp_last_error());
        return 1;
    }
    print(res);
    printf("  %zu ok, %zu crashed, %zu timed out: every key came back\n",
           sp_results_ok(res), sp_results_count_kind(res, SP_KIND_CRASHED),
           sp_results_count_kind(res, SP_KIND_TIMED_OUT));
    int ok = sp_results_ok(res) == 4 &&
             sp_entry_signal(sp_results_get(res, "segfault")) == SIGSEGV &&
             sp_entry_kind(sp_results_get(res, "hang")) == SP_KIND_TIMED_OUT;
    sp_results_free(res);
    sp_mock_free(mock);
    return ok ? 0 : 1;
}
