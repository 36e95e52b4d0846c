/* SPDX-License-Identifier: MIT */
/* Retries, part of the completion path (complete.c calls here before it
 * records anything): whether a failed attempt is tried again under its
 * row's policy and the run's state, when (the delay and its backoff), what
 * the run keeps of the task meanwhile (struct sp_try: every failed attempt
 * without its result, and the last one whole), and the story its entry
 * gets from its last attempt (struct sp_story: each earlier attempt as an
 * entry of its own, which sp_entry_attempt() gives). */
#include "sp-private.h"

#include <string.h>

/* A row's retry rule: its policy's fields, the call's where they are 0. */
struct rule {
    unsigned retries, on;
    int backoff;
    double delay, delay_max;
};

static void rule_of(const struct sp_run *run, const sp_task *t, struct rule *r)
{
    const sp_options *o = &run->opts;
    const sp_task_policy *p = t->policy;
    r->retries = p && p->retries ? p->retries : o->retries;
    if (r->retries == SP_NO_RETRIES)
        r->retries = 0;
    r->on = p && p->retry_on ? p->retry_on
            : o->retry_on    ? o->retry_on
                             : SP_RETRY_ALL;
    r->backoff =
        p && p->retry_backoff ? (int)p->retry_backoff : (int)o->retry_backoff;
    r->delay = p && p->retry_delay > 0 ? p->retry_delay : o->retry_delay;
    r->delay_max =
        p && p->retry_delay_max > 0 ? p->retry_delay_max : o->retry_delay_max;
}

bool sp_retry_wanted(const struct sp_run *run, const sp_task *t,
                     unsigned attempt, int kind)
{
    if (kind != SP_KIND_FAILED && kind != SP_KIND_CRASHED &&
        kind != SP_KIND_TIMED_OUT)
        return false; /* OK, CANCELLED and SKIPPED are never retried */
    struct rule r;
    rule_of(run, t, &r);
    return attempt <= r.retries && ((r.on >> kind) & 1u);
}

/* The delay before the attempt after `attempt`, in ns. */
static uint64_t delay_after(const struct rule *r, unsigned attempt)
{
    double d = r->delay;
    if (r->backoff == SP_BACKOFF_DOUBLING)
        for (unsigned k = 1; k < attempt && d < SP_MAX_SECONDS; k++)
            d *= 2;
    if (r->delay_max > 0 && d > r->delay_max)
        d = r->delay_max;
    if (d > SP_MAX_SECONDS)
        d = SP_MAX_SECONDS;
    return (uint64_t)(d * 1e9);
}

unsigned sp_retry_attempt(struct sp_run *run, size_t i)
{
    struct sp_try **slot = sp_retry_slot(run, i);
    return slot && *slot ? (*slot)->attempts + 1 : 1;
}

unsigned sp_retry_handout(struct sp_run *run, size_t i)
{
    struct sp_try **slot = sp_retry_slot(run, i);
    if (!slot || !*slot)
        return 1;
    (*slot)->waiting = false;
    return (*slot)->attempts + 1;
}

bool sp_retry_waiting(struct sp_run *run, size_t i)
{
    struct sp_try **slot = sp_retry_slot(run, i);
    return slot && *slot && (*slot)->waiting;
}

/* The last attempt of rec (it failed, and another follows) joins the
 * earlier ones, without its result. Out of memory it is dropped, and so is
 * every later one: the story keeps attempts 1 .. k, and
 * sp_entry_attempt() gives NULL for the rest. */
static void keep_tried(struct sp_try *rec)
{
    struct sp_outcome *l = &rec->last;
    /* rec->last is attempt rec->attempts: it goes to past[attempts - 1],
     * unless one before it was lost (the kept ones stay 1, 2, ...). */
    if (rec->npast + 1 != rec->attempts) {
        sp_outcome_free(l);
        return;
    }
    if (rec->npast == rec->cap) {
        uint32_t cap = rec->cap ? 2 * rec->cap : 2;
        struct sp_tried *p = sp_realloc(rec->past, cap * sizeof *p);
        if (!p) {
            sp_outcome_free(l);
            return;
        }
        rec->past = p;
        rec->cap = cap;
    }
    if (l->r.data)
        sp_data_release(l->release, l->r.data, l->r.len);
    struct sp_tried *t = &rec->past[rec->npast++];
    t->r = l->r;
    t->r.data = NULL;
    t->r.len = 0;
    t->how = l->how;
    t->how.flags &= SP_EF_TASK_CODE | SP_EF_MSG_OWNED;
    *l = (struct sp_outcome){0};
}

/* Free rec's earlier attempts and rec. */
static void free_tried(struct sp_try *rec)
{
    for (uint32_t k = 0; k < rec->npast; k++)
        if (rec->past[k].how.flags & SP_EF_MSG_OWNED)
            free((void *)rec->past[k].r.msg);
    free(rec->past);
    free(rec);
}

/* Attempt `attempt` of task i failed with *o: try it again if its policy
 * says so and the run may still start it in time. Then the outcome is
 * kept in the task's record (true); otherwise nothing is touched (false). */
bool sp_retry(struct sp_run *run, size_t i, struct sp_outcome *o,
              struct sp_tally *t)
{
    struct sp_try **slot = sp_retry_slot(run, i);
    if (!slot)
        return false;
    const sp_task *row = sp_graph_row(run, i);
    struct sp_try *rec = *slot;
    unsigned attempt = rec ? rec->attempts + 1 : 1;
    if (!sp_retry_wanted(run, row, attempt, o->how.kind))
        return false;
    struct rule r;
    rule_of(run, row, &r);
    uint64_t now = sp_run_now(run), delay = delay_after(&r, attempt);
    /* No attempt starts after a stop or the deadline. */
    if (!sp_run_may_start(run, now) ||
        (run->deadline && now + delay >= run->deadline))
        return false;
    /* Room for it in the heap, and in `later` to wait there first. */
    size_t total = sp_results_total(run->res);
    if (!sp_sched_reserve_quiet(&run->sched, total) ||
        (delay && !sp_sched_reserve_later(&run->sched, total)))
        return false; /* out of memory: this attempt is the last */
    if (!rec) {
        if (!(rec = sp_calloc(1, sizeof *rec)))
            return false;
        *slot = rec;
    }
    if (attempt > 1)
        keep_tried(rec);
    rec->last = *o;
    *o = (struct sp_outcome){0};
    rec->attempts = attempt;
    rec->waiting = true;
    if (delay)
        sp_sched_push_later(&run->sched, i, now + delay);
    else
        sp_sched_push(&run->sched, i, t->claims);
    return true;
}

/* The last attempt *o of task i, which had a retry record: the entry gets
 * the story of all its attempts (when there was more than one), and the
 * record is freed. *o is the record's own last attempt (pending), or the
 * attempt after it. */
void sp_retry_story(struct sp_run *run, size_t i, struct sp_try **slot,
                    struct sp_outcome *o, bool pending)
{
    struct sp_try *rec = *slot;
    *slot = NULL;
    unsigned attempts = pending ? rec->attempts : rec->attempts + 1;
    if (!pending)
        keep_tried(rec); /* the record's last attempt is an earlier one */
    sp_outcome_free(&rec->last);
    if (attempts > 1)
        sp_retry_set_story(o, sp_entry_at(run->res, i), attempts, rec->past,
                           rec->npast);
    free_tried(rec);
}

void sp_retry_set_story(struct sp_outcome *o, const sp_entry *e,
                        unsigned attempts, const struct sp_tried *past,
                        unsigned npast)
{
    const char *msg = o->r.msg ? o->r.msg : "";
    size_t ml = strlen(msg) + 1;
    if (npast > attempts - 1)
        npast = attempts - 1;
    size_t at = sizeof(struct sp_story) + ml, align = _Alignof(struct sp_past);
    at = (at + align - 1) / align * align;
    size_t size = at + (size_t)npast * sizeof(struct sp_past);
    for (unsigned k = 0; k < npast; k++)
        size += strlen(past[k].r.msg ? past[k].r.msg : "") + 1;
    struct sp_story *st = sp_malloc(size);
    if (!st) /* out of memory, the entry is the last attempt alone */
        return;
    st->attempts = attempts;
    st->npast = npast;
    struct sp_past *views = (struct sp_past *)(void *)((char *)st + at);
    st->past = views;
    memcpy(st->text, msg, ml);
    char *text = (char *)(views + npast);
    for (unsigned k = 0; k < npast; k++) {
        const char *m = past[k].r.msg ? past[k].r.msg : "";
        size_t len = strlen(m) + 1;
        memcpy(text, m, len);
        struct sp_how how = past[k].how;
        how.flags =
            (uint8_t)((how.flags & SP_EF_TASK_CODE) | SP_EF_DONE | SP_EF_PAST);
        views[k].e.key = e->key;
        views[k].e.index = e->index;
        views[k].e.r = past[k].r;
        views[k].e.r.data = NULL;
        views[k].e.r.len = 0;
        views[k].e.r.msg = text;
        atomic_init(&views[k].e.how, sp_how_pack(how));
        views[k].n = k + 1;
        views[k].story = st;
        text += len;
    }
    sp_outcome_set_msg(o, NULL, NULL);
    o->r.msg = st->text;
    o->how.flags |= SP_EF_STORY;
}
