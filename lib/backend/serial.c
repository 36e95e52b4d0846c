/* SPDX-License-Identifier: MIT */
/* The serial backend: every task inline, in ready order (table order for a
 * plain table), on the calling thread. The debugging mode (a breakpoint in
 * any task just works) and the baseline of every benchmark. */
#include "sp-private.h"

static unsigned serial_workers(const sp_options *opts, size_t n)
{
    (void)opts;
    (void)n;
    return 1;
}

static int serial_start(struct sp_run *run)
{
    run->workers_used = 1;
    sp_sched_open(&run->sched, 0);
    run->sched.claims[0].tally = &run->caller;
    run->caller.claims = true;
    return 0;
}

/* The whole run happens here: one claiming worker, the calling thread. */
static void serial_wait(struct sp_run *run)
{
    uint64_t now = sp_run_now(run);
    size_t i;
    for (;;) {
        while (sp_sched_claim(&run->sched, 0, &now, &i)) {
            struct sp_outcome o;
            now = sp_task_exec(run, i, 0, now, &o);
            sp_complete(run, i, &o, &run->caller);
        }
        if (!sp_sched_idle(&run->sched, 0))
            break;
    }
}

static void serial_finish(struct sp_run *run)
{
    (void)run;
}

const struct sp_backend_ops sp_backend_serial = {
    .name = "serial",
    .workers = serial_workers,
    .start = serial_start,
    .wait = serial_wait,
    .finish = serial_finish,
    .stop = NULL, /* nothing sleeps: the loop sees the stop itself */
};
