/* SPDX-License-Identifier: MIT */
/* The dependency graph while the call runs: releasing tasks as the tasks
 * they wait for end, dooming them when one did not end OK, tasks spawned
 * by running tasks, and the dependency results a task reads.
 *
 * A task's pending count holds its unmet dependencies; the top bit
 * (SP_DEP_DOOMED) marks it doomed. It is pushed into the scheduler's heap
 * exactly once: by whoever takes the count from 1 to 0 (ready), or by
 * whoever sets the doomed bit first (the scheduler then records it SKIPPED
 * instead of handing it out). The table's edges are fixed (table.c); a
 * spawned task may wait for any task of the call, finished or not: for a
 * dependency that has not ended, an edge is kept under the graph's lock
 * and the dependency's entry is marked SP_EF_WAITED. sp_complete()
 * publishes an entry's outcome with one atomic exchange, so exactly one of
 * the two sees the other: the spawner finds the dependency done and
 * releases the edge itself, or the completion finds the mark and releases
 * the waiting tasks under the lock.
 *
 * A call made by a companion library (sp__parallel(), lib/sp-collect.h)
 * runs tasks whose dependencies were met elsewhere: its dependency results
 * and spawns go to the library's hooks (run->local) instead. */
#include "sp-collect.h"
#include "sp-private.h"

#include <stdio.h>
#include <string.h>

#define KEY_SHOWN 64

int sp_graph_init(struct sp_run *run)
{
    struct sp_graph *g = &run->graph;
    g->free_edge = SP_NO_EDGE;
    int rc = pthread_mutex_init(&g->lock, NULL);
    if (rc)
        return sp_set_error_errno(SP_ETHREAD, rc,
                                  "cannot initialise the graph's lock");
    g->lock_ready = true;
    return 0;
}

void sp_graph_free(struct sp_graph *g)
{
    if (g->lock_ready)
        pthread_mutex_destroy(&g->lock);
    free(g->succ_off);
    free(g->succ);
    free(g->dep_off);
    free(g->deps);
    free((void *)g->pending);
    free(g->cause);
    free(g->ready);
    free(g->dyn_head);
    free(g->edges);
    memset(g, 0, sizeof *g);
    g->free_edge = SP_NO_EDGE;
}

const sp_task *sp_graph_row(const struct sp_run *run, size_t i)
{
    if (i < run->n)
        return &run->tasks[i];
    return &sp_xtask_at(run->res, i - run->n)->row;
}

static _Atomic uint32_t *pending_of(struct sp_run *run, size_t i)
{
    if (i < run->n)
        return &run->graph.pending[i];
    return &sp_xtask_at(run->res, i - run->n)->pending;
}

static uint32_t *cause_of(struct sp_run *run, size_t i)
{
    if (i < run->n)
        return &run->graph.cause[i];
    return &sp_xtask_at(run->res, i - run->n)->cause;
}

/* Its dependencies, in 'after' order. */
static const uint32_t *deps_of(const struct sp_run *run, size_t i)
{
    if (i < run->n)
        return run->graph.deps ? run->graph.deps + run->graph.dep_off[i] : NULL;
    return sp_xtask_at(run->res, i - run->n)->deps;
}

/* One of task j's dependencies ended OK. When that made j ready and the
 * completing worker (t) will claim next, it takes j itself unless a lower
 * index is ready in the heap: a chain costs no heap operation per task. */
static void satisfy(struct sp_run *run, size_t j, bool claims_next,
                    struct sp_tally *t)
{
    if (atomic_fetch_sub_explicit(pending_of(run, j), 1,
                                  memory_order_acq_rel) != 1)
        return;
    if (t && t->claims && !t->handoff &&
        atomic_load_explicit(&run->sched.heap_min, memory_order_relaxed) > j) {
        t->handoff = (uint32_t)j + 1;
        return;
    }
    sp_sched_push(&run->sched, j, claims_next);
}

/* Task j's dependency `cause` did not end OK: j will never run. */
static void doom(struct sp_run *run, size_t j, size_t cause, bool claims_next)
{
    _Atomic uint32_t *p = pending_of(run, j);
    uint32_t old =
        atomic_fetch_or_explicit(p, SP_DEP_DOOMED, memory_order_acq_rel);
    if (old & SP_DEP_DOOMED)
        return; /* another dependency doomed it first */
    *cause_of(run, j) = (uint32_t)cause;
    sp_sched_push(&run->sched, j, claims_next);
}

bool sp_graph_doomed(const struct sp_run *run, size_t i, uint32_t *cause)
{
    if (i < run->n && !run->graph.pending)
        return false; /* the table has no dependencies */
    if (!(atomic_load_explicit(pending_of((struct sp_run *)run, i),
                               memory_order_acquire) &
          SP_DEP_DOOMED))
        return false;
    *cause = *cause_of((struct sp_run *)run, i);
    return true;
}

static uint32_t *dyn_head_of(struct sp_run *run, size_t d)
{
    if (d >= run->n)
        return &sp_xtask_at(run->res, d - run->n)->dyn_head;
    return &run->graph.dyn_head[d];
}

void sp_graph_release(struct sp_run *run, size_t i, unsigned kind,
                      unsigned old_flags, struct sp_tally *t)
{
    struct sp_graph *g = &run->graph;
    bool ok = kind == SP_KIND_OK;
    if (i < run->n && g->succ_off) {
        for (uint32_t p = g->succ_off[i]; p < g->succ_off[i + 1]; p++) {
            if (ok)
                satisfy(run, g->succ[p], true, t);
            else
                doom(run, g->succ[p], i, true);
        }
    }
    if (!(old_flags & SP_EF_WAITED))
        return;
    /* Spawned tasks that wait for it: their edges are under the lock. */
    pthread_mutex_lock(&g->lock);
    uint32_t *head = dyn_head_of(run, i);
    for (uint32_t e = *head, next; e != SP_NO_EDGE; e = next) {
        next = g->edges[e].next;
        if (ok)
            satisfy(run, g->edges[e].succ, true, t);
        else
            doom(run, g->edges[e].succ, i, true);
        g->edges[e].next = g->free_edge; /* recycle */
        g->free_edge = e;
    }
    *head = SP_NO_EDGE;
    pthread_mutex_unlock(&g->lock);
}

/* ---- spawning ----------------------------------------------------------- */

/* Room for `more` edges (under the lock). */
static int reserve_edges(struct sp_graph *g, size_t more)
{
    size_t free_count = 0;
    for (uint32_t e = g->free_edge; e != SP_NO_EDGE && free_count < more;
         e = g->edges[e].next)
        free_count++;
    if (free_count >= more || g->nedges + more - free_count <= g->edges_cap)
        return 0;
    size_t cap = g->edges_cap ? g->edges_cap : 64;
    while (cap < g->nedges + more)
        cap *= 2;
    struct sp_dyn_edge *e = sp_realloc(g->edges, cap * sizeof *e);
    if (!e)
        return SP_ENOMEM;
    g->edges = e;
    g->edges_cap = cap;
    return 0;
}

static uint32_t new_edge(struct sp_graph *g)
{
    if (g->free_edge != SP_NO_EDGE) {
        uint32_t e = g->free_edge;
        g->free_edge = g->edges[e].next;
        return e;
    }
    return (uint32_t)g->nedges++;
}

int sp_graph_check_row(const sp_task *t)
{
    if (!t)
        return sp_set_error(SP_EINVAL, "sp_spawn: the task is NULL");
    if (!t->key || !t->key[0])
        return sp_set_error(SP_ENOKEY, "sp_spawn: the task has %s key",
                            t->key ? "an empty" : "a NULL");
    if (!t->fn)
        return sp_set_error(SP_ENOFN,
                            "sp_spawn: task \"%.*s\" has a NULL "
                            "callback",
                            KEY_SHOWN, t->key);
    if (!t->data && t->len)
        return sp_set_error(SP_EINVAL,
                            "sp_spawn: task \"%.*s\" has len %zu but no data",
                            KEY_SHOWN, t->key, t->len);
    for (size_t r = 0; r < sizeof t->reserved / sizeof t->reserved[0]; r++)
        if (t->reserved[r])
            return sp_set_error(SP_ENOTSUP,
                                "sp_spawn: task \"%.*s\" sets reserved field "
                                "%zu; it must be zero",
                                KEY_SHOWN, t->key, r);
    if (t->policy) {
        char who[128];
        snprintf(who, sizeof who, "sp_spawn: task \"%.*s\"", KEY_SHOWN, t->key);
        return sp_table_policy_error(t->policy, who);
    }
    return 0;
}

/* Copy the row's policy, key, data and after list into one allocation
 * (the policy first: it and the pointers after it stay aligned). */
static int copy_row(struct sp_xtask *x, const sp_task *t, size_t nafter)
{
    size_t klen = strlen(t->key) + 1, alen = 0;
    for (size_t k = 0; k < nafter; k++)
        alen += strlen(t->after[k]) + 1;
    size_t ptrs = t->after ? (nafter + 1) * sizeof(char *) : 0;
    size_t pol = t->policy ? sizeof *t->policy : 0;
    unsigned char *p = sp_malloc(pol + ptrs + klen + t->len + alen + 1);
    if (!p)
        return SP_ENOMEM;
    x->copy = p;
    sp_task_policy *policy = NULL;
    if (pol) {
        policy = (sp_task_policy *)(void *)p;
        memcpy(policy, t->policy, sizeof *policy);
        p += pol;
    }
    const char **after = (const char **)(void *)p;
    char *key = (char *)p + ptrs;
    memcpy(key, t->key, klen);
    unsigned char *data = (unsigned char *)key + klen;
    if (t->len)
        memcpy(data, t->data, t->len);
    char *s = (char *)data + t->len;
    for (size_t k = 0; k < nafter; k++) {
        size_t l = strlen(t->after[k]) + 1;
        memcpy(s, t->after[k], l);
        after[k] = s;
        s += l;
    }
    if (t->after)
        after[nafter] = NULL;
    x->row = (sp_task){.key = key,
                       .fn = t->fn,
                       .arg = t->arg,
                       .after = t->after ? after : NULL,
                       .data = t->len ? data : NULL,
                       .len = t->len,
                       .policy = policy};
    x->e.key = key;
    return 0;
}

/* The part of sp_spawn() under the lock: check the key and the after list,
 * store the task, index its key, and attach it to its dependencies. The
 * count keeps one extra "guard" unit, dropped by the caller. */
static int spawn_locked(struct sp_run *run, const sp_task *t, size_t *out)
{
    struct sp_graph *g = &run->graph;
    sp_results *res = run->res;
    size_t total = sp_results_total(res), nafter = 0;
    if (total >= SP_MAX_TASKS)
        return sp_set_error(SP_ETOOMANY,
                            "sp_spawn: the call has %zu tasks, "
                            "the most there can be",
                            total);
    size_t dup = sp_results_find(res, t->key, strlen(t->key));
    if (dup != SIZE_MAX)
        return sp_set_error(SP_EDUPKEY,
                            "sp_spawn: key \"%.*s\" is already in the call "
                            "(index %zu)",
                            KEY_SHOWN, t->key, dup);
    for (; t->after && t->after[nafter]; nafter++) {
        const char *k = t->after[nafter];
        if (!strcmp(k, t->key))
            return sp_set_error(SP_ECYCLE,
                                "sp_spawn: task \"%.*s\" depends on itself",
                                KEY_SHOWN, t->key);
        if (sp_results_find(res, k, strlen(k)) == SIZE_MAX)
            return sp_set_error(SP_EDEPKEY,
                                "sp_spawn: task \"%.*s\" depends on \"%.*s\", "
                                "which is not in the call",
                                KEY_SHOWN, t->key, KEY_SHOWN, k);
    }
    /* Every allocation before anything is published. */
    if (!g->dyn_head && run->n && nafter) {
        g->dyn_head = sp_malloc(run->n * sizeof *g->dyn_head);
        if (!g->dyn_head)
            goto oom;
        memset(g->dyn_head, 0xff, run->n * sizeof *g->dyn_head);
    }
    if (reserve_edges(g, nafter) || sp_sched_reserve(&run->sched, total + 1) ||
        sp_complete_reserve(run, total + 1))
        goto oom;
    struct sp_xtask *x = sp_results_xtask_new(res, total - run->n);
    if (!x)
        goto oom;
    memset(x, 0, sizeof *x);
    x->deps = nafter ? sp_malloc(nafter * sizeof *x->deps) : NULL;
    if ((nafter && !x->deps) || copy_row(x, t, nafter)) {
        free(x->deps);
        x->deps = NULL;
        goto oom;
    }
    x->e.index = (uint32_t)total;
    atomic_init(&x->e.how, 0);
    x->ndeps = (uint32_t)nafter;
    x->dyn_head = SP_NO_EDGE;
    atomic_init(&x->pending, (uint32_t)nafter + 1); /* + the guard */
    for (size_t k = 0; k < nafter; k++)
        x->deps[k] =
            (uint32_t)sp_results_find(res, t->after[k], strlen(t->after[k]));
    if (sp_results_index_add(res, total)) {
        free(x->copy);
        free(x->deps);
        memset(x, 0, sizeof *x);
        goto oom;
    }
    atomic_store_explicit(&res->xt.count, total - run->n + 1,
                          memory_order_release);
    /* Attach to each dependency; one that has ended is settled at once. */
    for (size_t k = 0; k < nafter; k++) {
        size_t d = x->deps[k];
        sp_entry *de = sp_entry_at(res, d);
        uint32_t old = atomic_fetch_or_explicit(
            &de->how, (uint32_t)SP_EF_WAITED << 8, memory_order_acq_rel);
        struct sp_how h = sp_how_unpack(old);
        if (h.flags & SP_EF_DONE) {
            if (h.kind == SP_KIND_OK)
                satisfy(run, total, false, NULL);
            else
                doom(run, total, d, false);
            continue;
        }
        uint32_t e = new_edge(g);
        uint32_t *head = dyn_head_of(run, d);
        g->edges[e] =
            (struct sp_dyn_edge){.succ = (uint32_t)total, .next = *head};
        *head = e;
    }
    *out = total;
    return 0;
oom:
    return sp_set_error(SP_ENOMEM, "sp_spawn: out of memory adding \"%.*s\"",
                        KEY_SHOWN, t->key);
}

int sp_graph_spawn(struct sp_run *run, size_t spawner, const sp_task *t)
{
    int err = sp_graph_check_row(t);
    if (err)
        return err;
    if (run->local)
        return run->local->spawn(run->local->user, spawner, t);
    size_t j = 0;
    pthread_mutex_lock(&run->graph.lock);
    err = spawn_locked(run, t, &j);
    pthread_mutex_unlock(&run->graph.lock);
    if (!err) /* drop the guard: ready now unless it waits for something */
        satisfy(run, j, false, NULL);
    return err;
}

const void *sp_graph_dep_at(const struct sp_run *run, size_t i, size_t k,
                            size_t *len)
{
    const sp_entry *e = sp_entry_at(run->res, deps_of(run, i)[k]);
    if (len)
        *len = e->r.data ? e->r.len : 0;
    return e->r.data ? (const void *)e->r.data : "";
}

const void *sp_graph_dep(struct sp_run *run, size_t i, const char *key,
                         size_t *len)
{
    if (run->local) {
        size_t got = 0;
        const void *d = run->local->dep(run->local->user, i, key, &got);
        if (len)
            *len = d ? got : 0;
        return d;
    }
    const sp_task *row = sp_graph_row(run, i);
    const uint32_t *deps = deps_of(run, i);
    for (size_t k = 0; key && deps && row->after && row->after[k]; k++)
        if (!strcmp(row->after[k], key))
            return sp_graph_dep_at(run, i, k, len);
    if (len)
        *len = 0;
    sp_set_error(SP_ENODEP,
                 "sp_dep_result: \"%.*s\" is not a dependency of task "
                 "\"%.*s\"",
                 KEY_SHOWN, key ? key : "(null)", KEY_SHOWN, row->key);
    return NULL;
}
