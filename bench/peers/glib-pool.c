/* SPDX-License-Identifier: MIT */
#include "glib-pool.h"

#include <glib.h>
#include <stdio.h>

struct job {
    peer_fn fn;
    void *arg;
    peer_result *out;
};

/* GThreadPool refuses NULL items, so index i travels as i + 1. */
static void run_one(gpointer item, gpointer job_)
{
    const struct job *job = job_;
    size_t i = GPOINTER_TO_SIZE(item) - 1;
    long v = 0;
    int rc = job->fn(i, job->arg, &v);
    job->out[i].value = v;
    job->out[i].state = rc ? PEER_FAILED : PEER_OK;
}

int glib_pool_run(size_t n, unsigned workers, peer_fn fn, void *arg,
                  peer_result *out)
{
    struct job job = {fn, arg, out};
    GError *err = NULL;
    if (workers > G_MAXINT)
        workers = G_MAXINT;
    /* Not exclusive: threads are started as items wait, up to `workers`,
     * and shared with other pools, as most GLib programs use it. */
    GThreadPool *pool =
        g_thread_pool_new(run_one, &job, (gint)workers, FALSE, &err);
    if (!pool) {
        fprintf(stderr, "g_thread_pool_new: %s\n", err ? err->message : "?");
        g_clear_error(&err);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (!g_thread_pool_push(pool, GSIZE_TO_POINTER(i + 1), &err)) {
            /* A thread could not start; the item is queued even so, and
             * runs if any thread of the pool exists. */
            fprintf(stderr, "g_thread_pool_push: %s\n", err->message);
            g_clear_error(&err);
            if (!g_thread_pool_get_num_threads(pool)) {
                rc = -1;
                break;
            }
        }
    /* Wait for every queued item to run, then let the threads go; with no
     * thread at all, drop the queue instead of waiting forever. */
    g_thread_pool_free(pool, rc != 0, TRUE);
    return rc;
}
