/* SPDX-License-Identifier: MIT */
/* The parent's event loop, on the calling thread: fork workers on demand,
 * read their channels and rings, decode frames, answer workers that ask
 * for work, enforce the deadline and the per-task limit, notice workers
 * that ended, and report every outcome to sp_complete(). It creates no
 * thread.
 *
 * A worker's end is seen on its pidfd (or, without one, as the end of its
 * channel plus waitpid), never by waiting for a descriptor: a process the
 * task started may hold a copy of the channel for as long as it likes. What
 * the worker's death means for its task depends on the task's phase:
 * claimed but not started, the task goes back to the scheduler and runs in
 * another worker; running, it CRASHED or TIMED_OUT; sending, its result
 * arrived or is reported lost. A task never runs twice, unless its retry
 * policy asks for another attempt (sp_complete() decides): the attempt's
 * number travels with its RUN command. */
#define _DEFAULT_SOURCE /* MSG_DONTWAIT */
#include "proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Report an outcome the parent decided (the worker could not), for task i
 * that has none yet. msg is copied. */
void sp_proc_outcome(struct prun *pr, size_t i, sp_kind kind, int code,
                     uint64_t start, unsigned worker, const char *msg,
                     uint8_t signo, uint8_t exit_status)
{
    struct sp_run *run = pr->run;
    uint64_t now = sp_run_now(run);
    struct sp_outcome o = {
        .r = {.code = code,
              .t_start = start > run->t0 ? start - run->t0 : 0,
              .t_end = now > run->t0 ? now - run->t0 : 0,
              .worker = worker},
        .how = {.kind = (uint8_t)kind,
                .signo = signo,
                .exit_status = exit_status},
    };
    if (o.r.t_end < o.r.t_start)
        o.r.t_end = o.r.t_start;
    size_t len = strlen(msg) + 1;
    char *copy = sp_malloc(len);
    if (copy)
        memcpy(copy, msg, len);
    sp_outcome_set_msg(&o, copy, "worker failed");
    sp_complete(run, i, &o, &run->caller);
}

/* A worker asks for the result of a dependency of its task. */
static void on_depreq(struct prun *pr, size_t i, const char *key)
{
    size_t len = 0;
    const void *data = sp_graph_dep(pr->run, i, key, &len);
    struct sp_wire_cmd c = {.magic = SP_WIRE_CMD_MAGIC, .type = SP_CMD_DEP};
    if (data) {
        c.len = len;
        sp_proc_send(pr, pr->cur, &c, data, NULL);
        return;
    }
    const char *why = sp_last_error();
    size_t wl = strlen(why);
    char *copy = sp_malloc(wl + 1);
    c.code = SP_ENODEP;
    if (copy) {
        memcpy(copy, why, wl + 1);
        c.len = wl;
    }
    sp_proc_send(pr, pr->cur, &c, copy, copy);
}

/* A worker's task spawns a task: unpack the row, add it, answer. */
static void on_spawn(struct prun *pr, size_t i, const char *key,
                     const unsigned char *p, size_t len)
{
    struct sp_run *run = pr->run;
    sp_task t = {.key = key};
    uint64_t dlen;
    uint32_t nafter;
    sp_task_policy policy;
    int err = 0;
    memcpy(&t.fn, p, 8);
    memcpy(&t.arg, p + 8, 8);
    memcpy(&dlen, p + 16, 8);
    memcpy(&nafter, p + 24, 4);
    const char **after = NULL;
    if (dlen > len - SP_WIRE_SPAWN_FIXED || nafter > len) {
        err = sp_set_error(SP_EPROTO, "sp_spawn: a malformed request");
    } else {
        t.data = dlen ? p + SP_WIRE_SPAWN_FIXED : NULL;
        t.len = (size_t)dlen;
        const char *a = (const char *)p + SP_WIRE_SPAWN_FIXED + dlen;
        const char *end = (const char *)p + len;
        after = nafter ? sp_malloc((nafter + 1) * sizeof *after) : NULL;
        if (nafter && !after)
            err = sp_set_error(SP_ENOMEM, "sp_spawn: out of memory");
        for (uint32_t k = 0; !err && k < nafter; k++) {
            const char *z = memchr(a, 0, (size_t)(end - a));
            if (!z) {
                err = sp_set_error(SP_EPROTO, "sp_spawn: a malformed request");
                break;
            }
            after[k] = a;
            a = z + 1;
        }
        if (after && !err) {
            after[nafter] = NULL;
            t.after = after;
        }
        /* Then the task's policy, when it has one. */
        size_t rest = (size_t)(end - a);
        if (!err && rest == sizeof policy) {
            memcpy(&policy, end - rest, sizeof policy);
            t.policy = &policy;
        } else if (!err && rest) {
            err = sp_set_error(SP_EPROTO, "sp_spawn: a malformed request");
        }
    }
    if (!err)
        err = sp_graph_spawn(run, i, &t);
    free(after);
    struct sp_wire_cmd c = {
        .magic = SP_WIRE_CMD_MAGIC, .type = SP_CMD_SPAWNED, .code = err};
    char *copy = NULL;
    if (err) {
        const char *why = sp_last_error();
        size_t wl = strlen(why);
        if ((copy = sp_malloc(wl + 1)) != NULL) {
            memcpy(copy, why, wl + 1);
            c.len = wl;
        }
    } else { /* frames may now name the new task */
        uint32_t total = (uint32_t)sp_results_total(run->res);
        for (unsigned k = 0; k < pr->used; k++) {
            pr->pw[k].dec.max_index = total;
            pr->pw[k].rdec.max_index = total;
        }
    }
    sp_proc_send(pr, pr->cur, &c, copy, copy);
}

/* A complete, well-formed frame from worker pr->cur. */
static int on_frame(struct sp_wire_frame *f, void *arg)
{
    struct prun *pr = arg;
    switch (f->h.type) {
    case SP_WIRE_IDLE:
        pr->pw[pr->cur].idle = true;
        pr->pw[pr->cur].ready = true;
        return 0;
    case SP_WIRE_DEPREQ:
        on_depreq(pr, f->h.index, f->msg ? f->msg : "");
        free(f->msg);
        return 0;
    case SP_WIRE_SPAWN:
        if (f->msg && f->data)
            on_spawn(pr, f->h.index, f->msg, f->data, (size_t)f->h.data_len);
        else { /* out of memory receiving it: answer so */
            struct sp_wire_cmd c = {.magic = SP_WIRE_CMD_MAGIC,
                                    .type = SP_CMD_SPAWNED,
                                    .code = SP_ENOMEM};
            sp_proc_send(pr, pr->cur, &c, NULL, NULL);
        }
        free(f->msg);
        free(f->data);
        return 0;
    default:
        break;
    }
    size_t i = f->h.index;
    if (sp_complete_has(pr->run, i) || sp_retry_waiting(pr->run, i)) {
        /* a second outcome for one attempt */
        free(f->msg);
        free(f->data);
        return SP_EPROTO;
    }
    unsigned char *data = f->data;
    void (*release)(void *) = NULL;
    char why[160];
    int shm = 0;
    if (f->h.flags & SP_WIRE_SHM) { /* the bytes are in a memfd (shm.c) */
        bool mapped = false;
        shm = pr->cur_ring ? SP_EPROTO
                           : sp_proc_shm_map(pr, pr->cur, f->h.data_len, &data,
                                             &mapped, why, sizeof why);
        if (pr->cur_ring)
            snprintf(why, sizeof why, "a shared-memory result in the ring");
        if (shm == SP_EPROTO) {
            char msg[200];
            snprintf(msg, sizeof msg, "malformed result frame: %s", why);
            free(f->msg);
            sp_proc_outcome(pr, i, SP_KIND_CRASHED, SP_EPROTO,
                            atomic_load(&sp_proc_slot(pr, pr->cur)->started),
                            pr->cur, msg, 0, 0);
            return SP_EPROTO; /* the worker is killed: it forged a frame */
        }
        if (data && f->dropped) {
            sp_data_release(mapped ? sp_result_mapped : NULL, data,
                            (size_t)f->h.data_len);
            data = NULL;
        }
        release = data && mapped ? sp_result_mapped : NULL;
    }
    struct sp_outcome o = {
        .release = release,
        .r = {.data = data,
              .len = data ? (size_t)f->h.data_len : 0,
              .msg = f->msg,
              .code = f->h.code,
              .t_start = f->h.t_start,
              .t_end = f->h.t_end,
              .worker = pr->cur},
        .how = {.kind = f->h.kind,
                .flags =
                    (uint8_t)((f->h.flags & SP_WIRE_TASK_CODE ? SP_EF_TASK_CODE
                                                              : 0) |
                              (f->msg ? SP_EF_MSG_OWNED : 0))},
    };
    if (f->dropped) { /* we, not the task, ran out of memory */
        o.how.kind = SP_KIND_FAILED;
        o.how.flags = 0;
        o.r.code = SP_ENOMEM;
        sp_outcome_set_msg(
            &o, NULL, "the caller ran out of memory receiving this result");
    } else if (shm) { /* the caller could not map it */
        o.how.kind = SP_KIND_FAILED;
        o.how.flags = 0;
        o.r.code = shm;
        free(f->msg);
        o.r.msg = NULL;
        size_t wl = strlen(why) + 1;
        char *copy = sp_malloc(wl);
        if (copy)
            memcpy(copy, why, wl);
        sp_outcome_set_msg(&o, copy, "the caller could not map this result");
    }
    sp_complete(pr->run, i, &o, &pr->run->caller);
    return 0;
}

/* ---- commands to workers ------------------------------------------------ */

int sp_proc_send(struct prun *pr, unsigned k, const struct sp_wire_cmd *c,
                 const void *data, void *owned)
{
    struct pworker *w = &pr->pw[k];
    struct pout *o = sp_malloc(sizeof *o);
    if (!o) {
        free(owned);
        /* The worker waits for an answer it will not get: it cannot go on.
         */
        sp_proc_kill(w, KILL_ERROR);
        snprintf(pr->error_msg, sizeof pr->error_msg,
                 "out of memory answering a worker");
        return SP_ENOMEM;
    }
    sp_wire_cmd_encode(o->hdr, c);
    o->next = NULL;
    o->data = data;
    o->len = (size_t)c->len;
    o->off = 0;
    o->owned = owned;
    if (w->out_tail)
        w->out_tail->next = o;
    else
        w->out = o;
    w->out_tail = o;
    return 0;
}

void sp_proc_out_free(struct pworker *w)
{
    for (struct pout *o = w->out, *next; o; o = next) {
        next = o->next;
        free(o->owned);
        free(o);
    }
    w->out = w->out_tail = NULL;
}

void sp_proc_flush(struct prun *pr, unsigned k)
{
    struct pworker *w = &pr->pw[k];
    while (w->out && w->fd >= 0) {
        struct pout *o = w->out;
        struct iovec iov[2];
        int cnt = 0;
        if (o->off < SP_WIRE_CMD)
            iov[cnt++] = (struct iovec){o->hdr + o->off, SP_WIRE_CMD - o->off};
        size_t done_data = o->off > SP_WIRE_CMD ? o->off - SP_WIRE_CMD : 0;
        if (o->len > done_data)
            iov[cnt++] = (struct iovec){(void *)(o->data + done_data),
                                        o->len - done_data};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        ssize_t r = sendmsg(w->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                sp_proc_out_free(w); /* the worker is gone */
            return;
        }
        o->off += (size_t)r;
        if (o->off < SP_WIRE_CMD + o->len)
            return; /* the rest when the socket has room */
        w->out = o->next;
        if (!w->out)
            w->out_tail = NULL;
        free(o->owned);
        free(o);
    }
}

/* Feed bytes of worker k's channel or ring stream to its decoder; a
 * malformed frame gets its task a protocol error and the worker killed. */
void sp_proc_feed(struct prun *pr, unsigned k, struct sp_wire_dec *d,
                  const unsigned char *buf, size_t len)
{
    struct pworker *w = &pr->pw[k];
    if (w->kill_why == KILL_PROTO || !len)
        return; /* the rest of a broken stream is discarded */
    pr->cur = k;
    pr->cur_ring = d != &w->dec;
    int err = sp_wire_feed(d, buf, len, on_frame, pr);
    if (!err)
        return;
    uint32_t bad = d->bad_index;
    snprintf(w->proto_err, sizeof w->proto_err, "%s",
             err == SP_EPROTO && bad != UINT32_MAX &&
                     sp_complete_has(pr->run, bad)
                 ? "a second result for one task"
                 : d->err);
    if (bad != UINT32_MAX && !sp_complete_has(pr->run, bad)) {
        char msg[256];
        snprintf(msg, sizeof msg, "malformed result frame: %s", w->proto_err);
        sp_proc_outcome(pr, bad, SP_KIND_CRASHED, SP_EPROTO,
                        atomic_load(&sp_proc_slot(pr, k)->started), k, msg, 0,
                        0);
    }
    /* The stream is out of step: the worker cannot go on. */
    sp_proc_kill(w, KILL_PROTO);
}

struct ring_feed {
    struct prun *pr;
    unsigned k;
};

static void feed_ring_bytes(void *arg, const unsigned char *p, size_t len)
{
    struct ring_feed *rf = arg;
    sp_proc_feed(rf->pr, rf->k, &rf->pr->pw[rf->k].rdec, p, len);
}

void sp_proc_ring_take(struct prun *pr, unsigned k)
{
    struct sp_ring ring = sp_proc_ring(pr, k);
    struct ring_feed rf = {pr, k};
    if (sp_ring_take(&ring, feed_ring_bytes, &rf) < 0) {
        snprintf(pr->pw[k].proto_err, sizeof pr->pw[k].proto_err,
                 "ring positions out of range");
        sp_proc_kill(&pr->pw[k], KILL_PROTO);
    }
}

int sp_proc_drain(struct prun *pr, unsigned k, size_t budget, bool to_end)
{
    struct pworker *w = &pr->pw[k];
    while (budget && w->fd >= 0) {
        ssize_t r = sp_proc_recv(pr, k); /* read(), and memfds (shm.c) */
        if (r > 0) {
            budget -= (size_t)r < budget ? (size_t)r : budget;
            sp_proc_feed(pr, k, &w->dec, pr->buf, (size_t)r);
            if ((size_t)r < READ_BUF && !to_end)
                return 0; /* all there was; poll() tells of more */
            continue;
        }
        if (r == 0)
            return 1;
        if (errno == EINTR)
            continue;
        return errno != EAGAIN && errno != EWOULDBLOCK;
    }
    return 0;
}

void sp_proc_worker_gone(struct prun *pr, unsigned k, int have_status,
                         int status)
{
    struct pworker *w = &pr->pw[k];
    struct slot *s = sp_proc_slot(pr, k);
    /* Leftovers die with their worker. After the reap: without a pidfd the
     * end of the channel comes before the worker's exit, and the worker
     * may still be delivering its last result. A group whose members live
     * keeps its id, so the kill cannot reach anyone else. */
    sp_proc_kill_group(w);
    /* It is gone: what it sent is buffered (a process the task started may
     * write more; the budget bounds that), and what it finished is in the
     * ring. */
    sp_proc_drain(pr, k, 64 * READ_BUF, true);
    sp_fds_close(w->fd);
    sp_fds_close(w->pidfd);
    w->fd = w->pidfd = -1;
    sp_proc_shm_drop(w);
    sp_proc_out_free(w);
    sp_proc_ring_take(pr, k);
    int truncated = w->kill_why == KILL_NONE &&
                    (sp_wire_partial(&w->dec) || sp_wire_partial(&w->rdec));
    sp_wire_dec_free(&w->dec);
    sp_wire_dec_free(&w->rdec);

    uint32_t cur = atomic_load(&s->current);
    uint32_t phase = atomic_load(&s->phase);
    /* Its slot may still name an attempt whose outcome arrived (a retry of
     * it waits, or runs elsewhere): that one is accounted for. */
    if (cur && cur - 1 < sp_results_total(pr->run->res) &&
        !sp_complete_has(pr->run, cur - 1) &&
        !sp_retry_waiting(pr->run, cur - 1) &&
        atomic_load(&s->attempt) == sp_retry_attempt(pr->run, cur - 1)) {
        size_t i = cur - 1;
        if (phase == SLOT_CLAIMED) {
            /* Claimed, never started: another worker runs it (unless the
             * run stopped; then it is cancelled with the rest). */
            if (!atomic_load(pr->run->stop))
                sp_sched_push(&pr->run->sched, i, false);
        } else {
            char msg[300];
            struct sp_outcome how = {0};
            sp_proc_describe_end(pr, k, have_status, status, msg, sizeof msg,
                                 &how);
            size_t len = strlen(msg);
            if (phase == SLOT_SENDING && !atomic_load(&s->send_err))
                snprintf(msg + len, sizeof msg - len,
                         "; the task had returned, its result was lost");
            else if (truncated)
                snprintf(msg + len, sizeof msg - len,
                         "; its last result frame was truncated");
            int timed =
                w->kill_why == KILL_TIMEOUT || w->kill_why == KILL_DEADLINE;
            int code = timed                        ? SP_ETIMEDOUT
                       : w->kill_why == KILL_PROTO  ? SP_EPROTO
                       : w->kill_why == KILL_ERROR  ? SP_ESYSTEM
                       : w->kill_why == KILL_CANCEL ? SP_ECANCELED
                                                    : SP_ECRASHED;
            sp_kind kind = timed                        ? SP_KIND_TIMED_OUT
                           : w->kill_why == KILL_CANCEL ? SP_KIND_CANCELLED
                                                        : SP_KIND_CRASHED;
            sp_proc_outcome(pr, i, kind, code, atomic_load(&s->started), k, msg,
                            how.how.signo, how.how.exit_status);
        }
    }
    w->pid = 0;
    w->idle = false;
    w->ready = false;
    atomic_store(&s->attempt, 0);
    atomic_store(&s->current, 0);
    atomic_store(&s->phase, SLOT_IDLE);
}

/* A one-shot worker that died left the tasks of its span it had not
 * started (worker.c): another worker runs them, unless the run stopped
 * (then they are cancelled with the rest). Its current task, which may
 * still be in the span, is sp_proc_worker_gone()'s. */
static void hand_back_span(struct prun *pr, unsigned k)
{
    struct sp_run *run = pr->run;
    struct slot *s = sp_proc_slot(pr, k);
    uint64_t r = atomic_load(&s->range);
    atomic_store(&s->range, 0);
    uint32_t cur = atomic_load(&s->current);
    uint32_t lo = (uint32_t)r, hi = (uint32_t)(r >> 32);
    if (hi > run->sched.n_static) /* it wrote nonsense: trust none of it */
        return;
    for (uint32_t pos = lo; pos < hi && !atomic_load(run->stop); pos++) {
        size_t i = sp_sched_index_at(&run->sched, pos);
        if (cur && i == cur - 1)
            continue;
        if (!sp_complete_has(run, i) && !sp_retry_waiting(run, i))
            sp_sched_push(&run->sched, i, false);
    }
}

/* Worker k is gone (its pidfd fired), or its channel ended: reap it and
 * account for it. */
static void worker_ended(struct prun *pr, unsigned k)
{
    int status = 0, have_status = 0;
    sp_proc_reap(pr, k, &have_status, &status);
    hand_back_span(pr, k);
    sp_proc_worker_gone(pr, k, have_status, status);
    pr->alive--;
    pr->spawn_blocked = 0; /* a slot is free: forking may work again */
}

static bool heap_ready(const struct prun *pr)
{
    return atomic_load_explicit(&pr->run->sched.heap_min,
                                memory_order_relaxed) != UINT32_MAX;
}

/* Answer workers that asked for work: a ready task from the heap (table
 * order first), back to the counter while it has tasks, or leave once
 * nothing can come any more (every worker idle: none runs a task that
 * could make another ready). */
static void dispatch(struct prun *pr)
{
    struct sp_run *run = pr->run;
    bool busy = false;
    for (unsigned k = 0; k < pr->used; k++)
        busy |= pr->pw[k].pid && !pr->pw[k].idle && !pr->pw[k].kill_why;
    for (unsigned k = 0; k < pr->used; k++) {
        struct pworker *w = &pr->pw[k];
        if (!w->pid || !w->idle || w->kill_why || w->fd < 0)
            continue;
        size_t i = 0;
        struct sp_wire_cmd c = {.magic = SP_WIRE_CMD_MAGIC};
        const void *payload = NULL;
        void *owned = NULL;
        if (atomic_load(run->stop)) {
            c.type = SP_CMD_EXIT;
        } else if (sp_sched_take(&run->sched, &i)) {
            c.type = SP_CMD_RUN;
            c.index = (uint32_t)i;
            /* Which attempt: the attempts before it. */
            c.code = (int32_t)(sp_retry_handout(run, i) - 1);
            if (i >= run->n) { /* spawned: the worker needs its row */
                const sp_task *t = sp_graph_row(run, i);
                uint32_t klen = (uint32_t)strlen(t->key) + 1;
                uint64_t dlen = t->len;
                size_t pol = t->policy ? sizeof *t->policy : 0;
                size_t len = SP_WIRE_RUN_FIXED + klen + t->len + pol;
                unsigned char *p = sp_malloc(len);
                if (!p) { /* give it back; try again later */
                    sp_sched_push(&run->sched, i, false);
                    continue;
                }
                memcpy(p, &t->fn, 8);
                memcpy(p + 8, &t->arg, 8);
                memcpy(p + 16, &klen, 4);
                memcpy(p + 20, &dlen, 8);
                memcpy(p + SP_WIRE_RUN_FIXED, t->key, klen);
                if (t->len)
                    memcpy(p + SP_WIRE_RUN_FIXED + klen, t->data, t->len);
                if (pol)
                    memcpy(p + SP_WIRE_RUN_FIXED + klen + t->len, t->policy,
                           pol);
                c.len = len;
                payload = owned = p;
            }
            busy = true;
        } else if (atomic_load(&pr->sh->next) < run->sched.n_static) {
            c.type = SP_CMD_CLAIM;
            busy = true;
        } else if (busy || sp_sched_later_pending(&run->sched)) {
            continue; /* a task may still become ready */
        } else {
            c.type = SP_CMD_EXIT;
        }
        if (sp_proc_send(pr, k, &c, payload, owned) == 0)
            w->idle = false;
    }
    /* Workers yield to the heap when it holds a lower index. */
    atomic_store_explicit(
        &pr->sh->heap_min,
        atomic_load_explicit(&run->sched.heap_min, memory_order_relaxed),
        memory_order_relaxed);
}

/* A table of at most SOLO_TASKS tasks gets a second worker only once its
 * first worker has had SOLO_MS without emptying the counter: a fork costs
 * more than a few short tasks, which the first worker finishes alone
 * before a second one would have started. */
#define SOLO_TASKS 64u
#define SOLO_MS 1

/* How many workers should be forked now: while the counter has more tasks
 * than there are workers not running one (forked and not started yet, or
 * between tasks; for a small table: after SOLO_MS, *solo_ms says how long
 * is left), or one when a handed-back task has no idle worker to take it. */
static unsigned want_workers(const struct prun *pr, uint64_t t_first,
                             int *solo_ms)
{
    *solo_ms = -1;
    if (pr->spawn_blocked || atomic_load(pr->run->stop) || pr->alive >= pr->nw)
        return 0;
    uint64_t next = atomic_load(&pr->sh->next);
    if (next < pr->run->sched.n_static) {
        uint64_t now;
        if (pr->alive && pr->run->sched.n_static <= SOLO_TASKS &&
            (now = sp_now()) - t_first < SOLO_MS * 1000000u) {
            *solo_ms =
                (int)((t_first + SOLO_MS * 1000000u - now + 999999) / 1000000u);
            return 0;
        }
        uint64_t left = pr->run->sched.n_static - next;
        unsigned room = pr->nw - pr->alive, free = 0;
        for (unsigned k = 0; k < pr->used; k++)
            free += pr->pw[k].pid && !pr->pw[k].kill_why &&
                    !atomic_load_explicit(&sp_proc_slot(pr, k)->current,
                                          memory_order_relaxed);
        if (left <= free)
            return 1; /* one at a time, as when every task is claimed */
        return left - free < room ? (unsigned)(left - free) : room;
    }
    if (!heap_ready(pr))
        return 0;
    for (unsigned k = 0; k < pr->used; k++)
        if (pr->pw[k].pid && pr->pw[k].idle)
            return 0;
    return 1;
}

/* Fork up to `want` workers into the lowest empty slots, one after the
 * other, for at most SPAWN_BATCH_NS before the channels are read again (a
 * round of the loop costs time in proportion to the workers). Whether one
 * was forked. */
#define SPAWN_BATCH_NS 2000000u
static int spawn_some(struct prun *pr, unsigned want)
{
    int made = 0;
    uint64_t end = sp_now() + SPAWN_BATCH_NS;
    for (unsigned k = 0; want && k < pr->nw; k++) {
        if (pr->pw[k].pid)
            continue;
        if (sp_proc_spawn(pr, k))
            break;
        made = 1;
        if (--want && sp_now() >= end)
            break;
    }
    return made;
}

/* The time limit of the task in worker k's slot (its row's policy, else
 * the call's task_timeout), in ns; 0 = none. *own: it is the row's. */
static uint64_t slot_limit(struct prun *pr, unsigned k, bool *own)
{
    struct sp_run *run = pr->run;
    uint32_t cur = atomic_load(&sp_proc_slot(pr, k)->current);
    *own = false;
    if (!cur || cur - 1 >= sp_results_total(run->res))
        return run->task_timeout;
    const sp_task *t = sp_graph_row(run, cur - 1);
    *own = t->policy && t->policy->time_limit > 0;
    return sp_task_limit(run, t);
}

/* After a cancel handle fired: when tasks still running are killed
 * (absolute ns); 0 when the run was not cancelled. */
static uint64_t cancel_grace_end(struct sp_run *run)
{
    if (atomic_load(run->stop) != SP_STOP_CALLER)
        return 0;
    return run->t0 + atomic_load(&run->stop_ns) +
           (uint64_t)SP_CANCEL_GRACE_MS * 1000000u;
}

int sp_proc_poll_timeout(struct prun *pr, uint64_t now)
{
    struct sp_run *run = pr->run;
    uint64_t due = now + (uint64_t)SCAN_MS * 1000000u;
    if (run->deadline && atomic_load(run->stop) != SP_STOP_DEADLINE &&
        run->deadline < due)
        due = run->deadline; /* once enforced, only exits are awaited */
    uint64_t wake = sp_sched_wake_at(&run->sched); /* a retry due */
    if (wake && wake < due)
        due = wake;
    uint64_t grace = cancel_grace_end(run); /* a kill after a cancel */
    if (grace && grace < due)
        due = grace;
    for (unsigned k = 0; k < pr->used; k++) {
        if (!pr->pw[k].pid || pr->pw[k].kill_why)
            continue;
        struct slot *s = sp_proc_slot(pr, k);
        bool own;
        uint64_t limit = slot_limit(pr, k, &own);
        if (!limit)
            continue;
        /* An idle worker may start a task right now. */
        uint64_t start = atomic_load(&s->phase) == SLOT_RUNNING
                             ? atomic_load(&s->started)
                             : now;
        if (start + limit < due)
            due = start + limit;
    }
    return due <= now ? 0 : (int)((due - now + 999999) / 1000000);
}

/* The limits bound a task's callback, not the sending of its result: only
 * workers whose task is RUNNING are killed. */
void sp_proc_enforce_limits(struct prun *pr, uint64_t now)
{
    struct sp_run *run = pr->run;
    bool deadline = run->deadline && now >= run->deadline;
    if (deadline)
        sp_run_stop(run, SP_STOP_DEADLINE);
    uint64_t grace = cancel_grace_end(run);
    bool cancel = grace && now >= grace;
    for (unsigned k = 0; k < pr->used; k++) {
        struct slot *s = sp_proc_slot(pr, k);
        if (!pr->pw[k].pid || atomic_load(&s->phase) != SLOT_RUNNING)
            continue;
        if (deadline || cancel) {
            sp_proc_kill(&pr->pw[k], deadline ? KILL_DEADLINE : KILL_CANCEL);
            continue;
        }
        bool own;
        uint64_t limit = slot_limit(pr, k, &own);
        if (limit && now >= atomic_load(&s->started) + limit) {
            pr->pw[k].limit = limit;
            pr->pw[k].own_limit = own;
            sp_proc_kill(&pr->pw[k], KILL_TIMEOUT);
        }
    }
}

/* Without a pidfd a worker's exit shows as the end of its channel, unless
 * a process its task started holds a copy: then waitpid tells. */
static void poll_exits(struct prun *pr)
{
    for (unsigned k = 0; k < pr->used; k++) {
        struct pworker *w = &pr->pw[k];
        if (!w->pid || w->pidfd >= 0)
            continue;
        /* Look without reaping: worker_ended() reaps and reads the status. */
        siginfo_t si;
        memset(&si, 0, sizeof si);
        int r = waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if ((r == 0 && si.si_pid == w->pid) ||
            (r < 0 && errno == ECHILD && kill(w->pid, 0) < 0 && errno == ESRCH))
            worker_ended(pr, k);
    }
}

static void poll_failed(struct prun *pr, int err)
{
    /* The parent can no longer watch its workers: a system error, reported
     * as such on every task it touches. */
    char why[128], text[96];
    snprintf(why, sizeof why, "poll: %s",
             sp_errno_text(err, text, sizeof text));
    snprintf(pr->error_msg, sizeof pr->error_msg, "%s", why);
    sp_run_fail(pr->run, SP_ESYSTEM, why);
    for (unsigned k = 0; k < pr->used; k++)
        sp_proc_kill(&pr->pw[k], KILL_ERROR);
    for (unsigned k = 0; k < pr->used; k++)
        if (pr->pw[k].pid)
            worker_ended(pr, k);
}

nfds_t sp_proc_poll_set(struct prun *pr)
{
    nfds_t n = 0;
    for (unsigned k = 0; k < pr->used; k++) {
        struct pworker *w = &pr->pw[k];
        if (!w->pid)
            continue;
        sp_proc_flush(pr, k);
        if (w->fd >= 0) {
            pr->pfd[n] = (struct pollfd){
                .fd = w->fd,
                .events = (short)(POLLIN | (w->out ? POLLOUT : 0))};
            pr->who[n++] = k;
        }
        if (w->pidfd >= 0) {
            pr->pfd[n] = (struct pollfd){.fd = w->pidfd, .events = POLLIN};
            pr->who[n++] = k | SP_PROC_WHO_PIDFD;
        }
    }
    return n;
}

void sp_proc_poll_events(struct prun *pr, nfds_t nfds, int r,
                         void (*closed)(void *arg, unsigned k),
                         void (*ended)(void *arg, unsigned k), void *arg)
{
    for (unsigned k = 0; k < pr->used; k++)
        if (pr->pw[k].pid)
            sp_proc_ring_take(pr, k);
    for (nfds_t j = 0; r > 0 && j < nfds; j++) {
        unsigned k = pr->who[j] & ~SP_PROC_WHO_PIDFD;
        struct pworker *w = &pr->pw[k];
        short ev = pr->pfd[j].revents;
        if (!ev || !w->pid)
            continue;
        if (pr->who[j] & SP_PROC_WHO_PIDFD) {
            ended(arg, k); /* pidfd: it exited */
            continue;
        }
        if (ev & POLLOUT)
            sp_proc_flush(pr, k);
        if ((ev & ~POLLOUT) && sp_proc_drain(pr, k, 8 * READ_BUF, false)) {
            /* The channel ended: the worker is exiting or was killed.
             * With a pidfd its exit is awaited there; without one it is
             * reaped now. */
            sp_fds_close(w->fd);
            w->fd = -1;
            if (closed)
                closed(arg, k);
            if (w->pidfd < 0)
                ended(arg, k);
        }
    }
}

static void ended_cb(void *arg, unsigned k)
{
    worker_ended(arg, k);
}

void sp_proc_event_loop(struct prun *pr)
{
    struct sp_run *run = pr->run;
    uint64_t t_first = sp_now(); /* about when the first worker was forked */
    for (;;) {
        /* Retries whose delay passed. */
        sp_sched_tick(&run->sched, sp_run_now(run));
        dispatch(pr);
        /* Fork on demand, as many as the waiting tasks want (a batch at a
         * time), into the lowest empty slots. */
        int more = 0, solo_ms;
        unsigned want = want_workers(pr, t_first, &solo_ms);
        if (want)
            more = spawn_some(pr, want);
        /* No worker left: done, unless a retry waits for its delay (a
         * worker is forked for it then). */
        if (!pr->alive &&
            (atomic_load(run->stop) || !sp_sched_later_pending(&run->sched)))
            break;
        nfds_t nfds = sp_proc_poll_set(pr);
        int timeout = more ? 0 : sp_proc_poll_timeout(pr, sp_run_now(run));
        if (solo_ms >= 0 && solo_ms < timeout)
            timeout = solo_ms;
        int r = poll(pr->pfd, nfds, timeout);
        if (r < 0 && errno != EINTR && errno != EAGAIN) {
            poll_failed(pr, errno);
            continue;
        }
        sp_proc_poll_events(pr, nfds, r, NULL, ended_cb, pr);
        poll_exits(pr);
        sp_proc_enforce_limits(pr, sp_run_now(run));
    }
}
