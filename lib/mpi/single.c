/* SPDX-License-Identifier: MIT */
/* sp_mpi_parallel() on a communicator of one rank (an MPI singleton: a
 * program started without mpiexec): rank 0 runs every task itself, in
 * local calls on its own backend, through the same run as on many ranks. */
#include "sp-mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every task runs on rank 0's local backend, and each outcome is recorded
 * in the run as the local call reports it (so on_done sees tasks in
 * completion order, and a stop takes effect at once). The run hands out
 * only tasks whose dependencies ended OK, and the local call reads their
 * results from the run's map. */
struct single {
    sp__run *r;
    const sp_task *tasks;
    const uint32_t *idx; /* local index -> task index */
    int64_t shift;       /* ns from the run's start to the local call's */
};

static const void *single_dep(void *user, size_t i, const char *key,
                              size_t *len)
{
    const struct single *s = user;
    const sp_task *row = &s->tasks[s->idx[i]];
    for (size_t k = 0; key && row->after && row->after[k]; k++)
        if (!strcmp(row->after[k], key))
            return sp__run_dep_at(s->r, s->idx[i], k, len);
    sp__set_error(SP_ENODEP,
                  "sp_dep_result: \"%.64s\" is not a dependency of task "
                  "\"%.64s\"",
                  key ? key : "(null)", row->key);
    return NULL;
}

static int single_done(const sp_entry *e, void *arg)
{
    struct single *s = arg;
    uint32_t idx = s->idx[sp_entry_index(e)];
    struct wire_entry w;
    wire_from_entry(e, idx, s->shift, &w);
    if (!((w.flags & ENTRY_NOT_STARTED) && sp__run_stopped(s->r))) {
        sp__outcome o;
        wire_to_outcome(&w, 0, &o);
        sp__run_record(s->r, idx, &o);
    }
    return sp__run_stopped(s->r);
}

int sp_mpi_single(struct mpi_call *c, sp__run *r)
{
    uint32_t *idx = malloc((c->n ? c->n : 1) * sizeof *idx);
    sp_task *rows = malloc((c->n ? c->n : 1) * sizeof *rows);
    if (!idx || !rows) {
        free(idx);
        free(rows);
        sp__run_fail(r, SP_ENOMEM, "out of memory for the rank's batch");
        return 0;
    }
    for (;;) {
        size_t count = 0, i;
        while ((!c->batch || count < c->batch) && count < c->n &&
               sp__run_next(r, &i) == 1) {
            idx[count] = (uint32_t)i;
            rows[count] = c->tasks[i];
            rows[count].after = NULL; /* dependencies are the run's */
            count++;
        }
        if (!count)
            break;
        int64_t left = -1; /* no deadline */
        if (sp__run_deadline(r) > 0) {
            double s_left = sp__run_deadline(r) - sp__run_now(r);
            left = s_left > 0 ? (int64_t)(s_left * 1e9) : 0;
        }
        sp_options lo;
        if (sp_mpi_local_opts(c, left, &lo))
            break; /* the deadline passed: the run cancels the rest */
        struct single s = {.r = r, .tasks = c->tasks, .idx = idx};
        lo.on_done = single_done;
        lo.on_done_arg = &s;
        s.shift = (int64_t)(sp__run_now(r) * 1e9);
        sp_results *lres = NULL;
        sp__local hooks = {
            .dep = single_dep, .spawn = sp_mpi_no_spawn, .user = &s};
        int rc = sp__parallel(rows, count, &lo, &hooks, &lres);
        sp_results_free(lres);
        if (rc) {
            char msg[512];
            snprintf(msg, sizeof msg, "rank 0: %s", sp_mpi_bare_error(rc));
            sp__run_fail(r, rc, msg);
            break;
        }
    }
    free(idx);
    free(rows);
    return 0;
}
