/* SPDX-License-Identifier: MIT */
/* A process pool call's batches (ppool-private.h): each idle worker the
 * call holds gets its share of the ready tasks, or half of what a slow
 * worker has not claimed; what a worker left is taken back (invariant 3
 * in ppool.c). */
#include "ppool-private.h"

#include <stdlib.h>
#include <string.h>

/* A batch holds at most this many rows, and stops growing at this many
 * bytes (a row larger than that goes alone). */
#define BATCH_ROWS 4096u
#define BATCH_BYTES (256u * 1024)
/* A worker whose task has run this long, or whose batch was sent this
 * long ago with two tasks or more unclaimed, gives half of what it has not
 * claimed to an idle worker. */
#define STEAL_NS 200000u

/* Append task i's row to batch b; false out of memory. */
static bool add_row(struct pctx *c, struct pbatch *b, uint32_t n, size_t i)
{
    struct sp_run *run = c->pr.run;
    const sp_task *t = i < run->n ? &run->tasks[i] : sp_graph_row(run, i);
    /* An index-keyed call's rows have no key: "" goes (the worker's
     * sp_ctx_key() says "" too). */
    const char *key = t->key ? t->key : "";
    uint32_t klen = (uint32_t)strlen(key) + 1;
    uint64_t dlen = t->data ? t->len : 0;
    uint32_t pol = t->policy ? (uint32_t)sizeof *t->policy : 0;
    size_t need =
        b->len + SP_PROC_ROW_FIXED + klen + (size_t)dlen + (size_t)pol;
    if (need > b->bufcap) {
        size_t cap = b->bufcap ? b->bufcap : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *nb = sp_realloc(b->buf, cap);
        if (!nb)
            return false;
        b->buf = nb;
        b->bufcap = cap;
    }
    if (n >= b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        uint32_t *ni = sp_realloc(b->idx, cap * sizeof *ni);
        if (!ni)
            return false;
        b->idx = ni;
        b->cap = cap;
    }
    b->idx[n] = (uint32_t)i;
    unsigned char *q = b->buf + b->len;
    /* Which attempt: the attempts before it, plus one (a retry's). */
    uint32_t head[3] = {(uint32_t)i, sp_retry_handout(run, i), pol};
    memcpy(q, head, sizeof head);
    q += sizeof head;
    memcpy(q, &t->fn, 8);
    memcpy(q + 8, &t->arg, 8);
    memcpy(q + 16, &klen, 4);
    memcpy(q + 20, &dlen, 8);
    memcpy(q + SP_WIRE_RUN_FIXED, key, klen);
    if (dlen)
        memcpy(q + SP_WIRE_RUN_FIXED + klen, t->data, (size_t)dlen);
    if (pol)
        memcpy(q + SP_WIRE_RUN_FIXED + klen + dlen, t->policy, pol);
    b->len = need;
    return true;
}

/* Queue batch b (n rows) for worker j: its range first, then the command. */
static void send_batch(struct pctx *c, unsigned j, uint32_t n, uint64_t now)
{
    struct sp_run *run = c->pr.run;
    struct pbatch *b = &c->b[j];
    struct sp_proc_batch head = {.rs = (uint32_t)c->rs,
                                 .wid = j,
                                 .count = n,
                                 .t0 = run->t0,
                                 .deadline = run->deadline,
                                 .task_timeout = run->task_timeout,
                                 .opts = run->opts};
    memcpy(b->buf, &head, sizeof head);
    atomic_store(&sp_proc_slot(&c->pr, j)->range, (uint64_t)n << 32);
    struct sp_wire_cmd cmd = {
        .magic = SP_WIRE_CMD_MAGIC, .type = SP_CMD_BATCH, .len = b->len};
    if (sp_proc_send(&c->pr, j, &cmd, b->buf, NULL) == 0) {
        c->pr.pw[j].idle = false;
        b->sent = now;
    }
}

/* Start a batch for worker j: its fixed part. false out of memory. */
static bool begin_batch(struct pbatch *b)
{
    _Static_assert(SP_PROC_BATCH_FIXED <= 4096, "a batch's fixed part");
    if (b->bufcap < SP_PROC_BATCH_FIXED) {
        unsigned char *nb = sp_realloc(b->buf, 4096);
        if (!nb)
            return false;
        b->buf = nb;
        b->bufcap = 4096;
    }
    b->len = SP_PROC_BATCH_FIXED;
    return true;
}

/* Worker j's batch positions nobody claimed (it is idle or dead): back to
 * the scheduler, unless the call stopped (they are then cancelled). */
void sp_ppool_reclaim(struct pctx *c, unsigned j)
{
    struct slot *s = sp_proc_slot(&c->pr, j);
    uint64_t r = atomic_load(&s->range);
    uint32_t lo, hi;
    do {
        lo = (uint32_t)r;
        hi = (uint32_t)(r >> 32);
        if (lo >= hi)
            return;
    } while (
        !atomic_compare_exchange_weak(&s->range, &r, (uint64_t)hi << 32 | hi));
    if (sp_ppool_stopped(c->pr.run))
        return;
    for (uint32_t k = lo; k < hi && k < c->b[j].cap; k++)
        if (!sp_complete_has(c->pr.run, c->b[j].idx[k]))
            sp_sched_push(&c->pr.run->sched, c->b[j].idx[k], false);
}

/* Take half of what a slow worker v has not claimed, for idle worker j. */
static bool steal(struct pctx *c, unsigned j, uint64_t now)
{
    struct prun *pr = &c->pr;
    for (unsigned v = 0; v < pr->used; v++) {
        struct pworker *pv = &pr->pw[v];
        if (v == j || !pv->pid || !pv->ready || pv->idle || pv->kill_why)
            continue;
        struct slot *s = sp_proc_slot(pr, v);
        uint64_t r = atomic_load(&s->range);
        for (;;) {
            uint32_t lo = (uint32_t)r, hi = (uint32_t)(r >> 32);
            if (lo >= hi)
                break;
            bool slow_task = atomic_load(&s->phase) == SLOT_RUNNING &&
                             now - atomic_load(&s->started) >= STEAL_NS;
            bool slow_batch = hi - lo >= 2 && now - c->b[v].sent >= STEAL_NS;
            if (!slow_task && !slow_batch)
                break;
            uint32_t mid = lo + (hi - lo) / 2;
            if (!atomic_compare_exchange_weak(&s->range, &r,
                                              (uint64_t)mid << 32 | lo))
                continue;
            /* Positions [mid, hi) of v's batch are ours now. */
            struct pbatch *b = &c->b[j];
            uint32_t n = 0;
            if (begin_batch(b))
                for (uint32_t k = mid; k < hi; k++, n++)
                    if (!add_row(c, b, n, c->b[v].idx[k]))
                        break;
            for (uint32_t k = mid + n; k < hi; k++) /* out of memory */
                sp_sched_push(&pr->run->sched, c->b[v].idx[k], false);
            if (!n)
                return false;
            send_batch(c, j, n, now);
            return true;
        }
    }
    return false;
}

/* Give every idle worker the call holds a batch: its share of the ready
 * tasks (lowest index first), or half of a slow worker's unclaimed rows. */
void sp_ppool_dispatch(struct pctx *c)
{
    struct prun *pr = &c->pr;
    struct sp_run *run = pr->run;
    if (sp_ppool_stopped(run))
        return;
    uint64_t now = sp_now();
    size_t left = sp_ppool_static_left(run), heap = run->sched.heap_len;
    size_t share = (left + c->limit - 1) / c->limit;
    size_t hshare = (heap + c->limit - 1) / c->limit;
    if (hshare > share)
        share = hshare;
    if (share < 1)
        share = 1;
    if (share > BATCH_ROWS)
        share = BATCH_ROWS;
    for (unsigned j = 0; j < pr->used; j++) {
        struct pworker *pw = &pr->pw[j];
        if (!pw->pid || !pw->ready || !pw->idle || pw->kill_why || pw->fd < 0)
            continue;
        sp_ppool_reclaim(c, j); /* a batch cut short: normally nothing */
        struct pbatch *b = &c->b[j];
        uint32_t n = 0;
        if (!begin_batch(b))
            continue;
        while (n < share && b->len < BATCH_BYTES) {
            size_t i;
            uint32_t hmin = atomic_load_explicit(&run->sched.heap_min,
                                                 memory_order_relaxed);
            bool got = false;
            if (hmin != UINT32_MAX && hmin < sp_sched_peek(&run->sched))
                got = sp_sched_take(&run->sched, &i);
            if (!got)
                got = sp_sched_claim_one(&run->sched, &i);
            if (!got) {
                /* The static list is spent: claim_one moved the cursor past
                 * its end, which sp_ppool_static_left() reads as nothing left.
                 */
                got = sp_sched_take(&run->sched, &i);
                if (!got)
                    break;
            }
            if (!add_row(c, b, n, i)) {
                sp_sched_push(&run->sched, i, false); /* later */
                break;
            }
            n++;
        }
        if (n)
            send_batch(c, j, n, now);
        else if (!steal(c, j, now))
            break; /* nothing for this worker: nor for the next */
    }
}
