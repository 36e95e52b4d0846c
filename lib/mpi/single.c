/* SPDX-License-Identifier: MIT */
/* sp_mpi_parallel() on a communicator of one rank (an MPI singleton: a
 * program started without mpiexec): rank 0 runs every task itself, in
 * local calls on its own backend, through the same run as on many ranks.
 * The run decides retries: a retried task goes into a later local call
 * (with its attempt's number), so a table with retries runs in calls of
 * about 1/8 of what is left; while only retries wait for their delay,
 * rank 0 sleeps until the first is due. */
#include "sp-mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Every task runs on rank 0's local backend, and each outcome is recorded
 * in the run as the local call reports it (so on_done sees tasks in
 * completion order, and a stop takes effect at once). The run hands out
 * only tasks whose dependencies ended OK, and the local call reads their
 * results from the run's map. */
struct single {
    sp__run *r;
    const sp_task *tasks;
    const uint32_t *idx;     /* local index -> task index */
    const unsigned *attempt; /* local index -> its attempt */
    int64_t shift;           /* ns from the run's start to the local call's */
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
    w.attempt =
        (w.flags & ENTRY_NOT_STARTED) ? 0 : s->attempt[sp_entry_index(e)];
    if (!((w.flags & ENTRY_NOT_STARTED) && sp__run_stopped(s->r))) {
        sp__outcome o;
        wire_to_outcome(&w, 0, &o, NULL);
        sp__run_record(s->r, idx, &o);
    }
    return sp__run_stopped(s->r);
}

/* Sleep until `due` (seconds of the run), at most SP_CANCEL_POLL_MS, so a
 * cancel handle is seen in time. */
static void nap_until(sp__run *r, double due)
{
    double left = due - sp__run_now(r), most = SP_CANCEL_POLL_MS / 1e3;
    if (left <= 0)
        return;
    if (left > most)
        left = most;
    struct timespec ts = {(time_t)left,
                          (long)((left - (double)(time_t)left) * 1e9) + 1};
    nanosleep(&ts, NULL);
}

int sp_mpi_single(struct mpi_call *c, sp__run *r)
{
    size_t cap = c->n ? c->n : 1;
    uint32_t *idx = malloc(cap * sizeof *idx);
    sp_task *rows = malloc(cap * sizeof *rows);
    sp_task_policy *pols = malloc(cap * sizeof *pols);
    unsigned *att = malloc(cap * sizeof *att);
    if (!idx || !rows || !pols || !att) {
        free(idx);
        free(rows);
        free(pols);
        free(att);
        sp__run_fail(r, SP_ENOMEM, "out of memory for the rank's batch");
        return 0;
    }
    size_t handed = 0;
    for (;;) {
        size_t count = 0, i, most = c->batch;
        if (!most && c->retries) {
            /* A retry waits for the local call before it to end: calls of
             * about 1/8 of what is left (guided, as rank 0 sizes batches
             * for other ranks), at least one task per worker. */
            size_t left = c->n > handed ? c->n - handed : 0;
            most = left / 8 > c->wstart[0] ? left / 8 : c->wstart[0];
        }
        int got = 0;
        while ((!most || count < most) && count < c->n &&
               (got = sp__run_next(r, &i)) == 1) {
            idx[count] = (uint32_t)i;
            att[count] = c->retries ? sp__run_attempt(r, i, NULL) : 1;
            /* dependencies and retries are the run's */
            sp_mpi_local_row(&c->tasks[i], &rows[count], &pols[count]);
            rows[count].data = c->tasks[i].data;
            rows[count].len = c->tasks[i].len;
            count++;
        }
        handed += count;
        if (!count) {
            double due = got == 0 ? sp__run_due(r) : 0;
            if (due <= 0)
                break;
            nap_until(r, due); /* only retries wait, for their delay */
            continue;
        }
        int64_t left = -1; /* no deadline */
        if (sp__run_deadline(r) > 0) {
            double s_left = sp__run_deadline(r) - sp__run_now(r);
            left = s_left > 0 ? (int64_t)(s_left * 1e9) : 0;
        }
        sp_options lo;
        if (sp_mpi_local_opts(c, left, &lo))
            break; /* the deadline passed: the run cancels the rest */
        struct single s = {
            .r = r, .tasks = c->tasks, .idx = idx, .attempt = att};
        lo.on_done = single_done;
        lo.on_done_arg = &s;
        /* The run applies fail-fast to last attempts only, and
         * single_done() passes its stop on. */
        if (c->retries)
            lo.on_error = SP_POLICY_COLLECT_ALL;
        s.shift = (int64_t)(sp__run_now(r) * 1e9);
        sp_results *lres = NULL;
        sp__local hooks = {.dep = single_dep,
                           .spawn = sp_mpi_no_spawn,
                           .user = &s,
                           .attempt = att};
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
    free(pols);
    free(att);
    return 0;
}
