/* SPDX-License-Identifier: MIT */
/* The serial backend: every task inline, in input order, on the calling
 * thread. The debugging mode (a breakpoint in any task just works) and the
 * baseline of every benchmark. */
#include "sp-private.h"

static int serial_run(struct sp_run *run)
{
    sp_done_fn on_done = run->opts.on_done;
    uint64_t now = sp_now();

    run->res->workers = 1;
    for (size_t i = 0; i < run->n; i++) {
        if (sp_run_may_start(run, now))
            now = sp_task_exec(run, i, 0, now, &run->res->entries[i]);
        else
            sp_task_cancel(run, i, now);
        run->res->counts[run->res->entries[i].kind]++;
        if (on_done && on_done(&run->res->entries[i], run->opts.on_done_arg))
            sp_run_stop(run, SP_STOP_CALLBACK);
    }
    return 0;
}

const struct sp_backend_ops sp_backend_serial = {
    .name = "serial",
    .run = serial_run,
};
