/* SPDX-License-Identifier: MIT */
/* The parent's event loop, on the calling thread: fork workers on demand,
 * read their pipes and rings, decode frames, enforce the deadline and the
 * per-task limit, notice workers that ended, and report every outcome to
 * sp_complete(). It creates no thread. */
#include "proc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Report an outcome the parent decided (the worker could not), for task i
 * that has none yet. msg is copied. */
void sp_proc_outcome(struct prun *pr, size_t i, sp_kind kind, int code,
                     uint64_t start, unsigned worker, const char *msg,
                     uint8_t signo, uint8_t exit_status)
{
    struct sp_run *run = pr->run;
    uint64_t now = sp_now();
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
    pr->have[i] = 1;
    sp_complete(run, i, &o, &run->caller);
}

/* A complete, well-formed frame from worker pr->cur. */
static int on_frame(struct sp_wire_frame *f, void *arg)
{
    struct prun *pr = arg;
    size_t i = f->h.index;
    if (pr->have[i]) { /* a second outcome for one task */
        free(f->msg);
        free(f->data);
        return SP_EPROTO;
    }
    struct sp_outcome o = {
        .r = {.data = f->data,
              .len = f->data ? (size_t)f->h.data_len : 0,
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
    o.r.msg = f->msg;
    if (f->dropped) { /* we, not the task, ran out of memory */
        o.how.kind = SP_KIND_FAILED;
        o.how.flags = 0;
        o.r.code = SP_ENOMEM;
        sp_outcome_set_msg(
            &o, NULL, "the caller ran out of memory receiving this result");
    }
    pr->have[i] = 1;
    sp_complete(pr->run, i, &o, &pr->run->caller);
    return 0;
}

/* Feed bytes of worker k's pipe or ring stream to its decoder; a malformed
 * frame gets its task a protocol error and the worker killed. */
void sp_proc_feed(struct prun *pr, unsigned k, struct sp_wire_dec *d,
                  const unsigned char *buf, size_t len)
{
    struct pworker *w = &pr->pw[k];
    if (w->kill_why == KILL_PROTO || !len)
        return; /* the rest of a broken stream is discarded */
    pr->cur = k;
    int err = sp_wire_feed(d, buf, len, on_frame, pr);
    if (!err)
        return;
    uint32_t bad = d->bad_index;
    snprintf(w->proto_err, sizeof w->proto_err, "%s",
             err == SP_EPROTO && bad != UINT32_MAX && pr->have[bad]
                 ? "a second result for one task"
                 : d->err);
    if (bad != UINT32_MAX && !pr->have[bad]) {
        char msg[256];
        snprintf(msg, sizeof msg, "malformed result frame: %s", w->proto_err);
        sp_proc_outcome(pr, bad, SP_KIND_CRASHED, SP_EPROTO,
                        atomic_load(&pr->sh->slots[k].started), k, msg, 0, 0);
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

/* Read what worker k sent over its pipe; returns 1 when the pipe ended. */
static int drain(struct prun *pr, unsigned k)
{
    struct pworker *w = &pr->pw[k];
    size_t budget = 8 * READ_BUF; /* then let the other workers in */
    while (budget) {
        ssize_t r = read(w->fd, pr->buf, READ_BUF);
        if (r > 0) {
            budget -= (size_t)r < budget ? (size_t)r : budget;
            sp_proc_feed(pr, k, &w->dec, pr->buf, (size_t)r);
            continue;
        }
        if (r == 0)
            return 1;
        if (errno == EINTR)
            continue;
        return errno != EAGAIN && errno != EWOULDBLOCK; /* else: unreadable */
    }
    return 0;
}

/* Worker k's pipe is at end of file (or unusable): reap it, take what is
 * left in its ring, and account for the task it was running. */
static void worker_ended(struct prun *pr, unsigned k)
{
    struct pworker *w = &pr->pw[k];
    struct slot *s = &pr->sh->slots[k];

    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    int status = 0, have_status = 0;
    sp_proc_reap(pr, k, &have_status, &status);
    /* It is gone: whatever it finished is in the ring. */
    sp_proc_ring_take(pr, k);
    int truncated = w->kill_why == KILL_NONE &&
                    (sp_wire_partial(&w->dec) || sp_wire_partial(&w->rdec));
    sp_wire_dec_free(&w->dec);
    sp_wire_dec_free(&w->rdec);

    uint32_t cur = atomic_load(&s->current);
    if (cur && !pr->have[cur - 1]) {
        char msg[256];
        struct sp_outcome how = {0};
        sp_proc_describe_end(pr, k, have_status, status, msg, sizeof msg, &how);
        if (truncated) {
            size_t len = strlen(msg);
            snprintf(msg + len, sizeof msg - len,
                     "; its last result frame was truncated");
        }
        int timed = w->kill_why == KILL_TIMEOUT || w->kill_why == KILL_DEADLINE;
        int code = timed                       ? SP_ETIMEDOUT
                   : w->kill_why == KILL_PROTO ? SP_EPROTO
                   : w->kill_why == KILL_ERROR ? SP_ESYSTEM
                                               : SP_ECRASHED;
        sp_proc_outcome(pr, cur - 1,
                        timed ? SP_KIND_TIMED_OUT : SP_KIND_CRASHED, code,
                        atomic_load(&s->started), k, msg, how.how.signo,
                        how.how.exit_status);
    }
    w->pid = 0;
    atomic_store(&s->current, 0);
    pr->spawn_blocked = 0; /* a slot is free: forking may work again */
}

static unsigned alive_count(const struct prun *pr)
{
    unsigned alive = 0;
    for (unsigned k = 0; k < pr->used; k++)
        alive += pr->pw[k].pid != 0;
    return alive;
}

/* Whether another worker should be forked now. */
static int want_worker(const struct prun *pr)
{
    return !pr->spawn_blocked && !atomic_load(pr->run->stop) &&
           atomic_load(&pr->sh->next) < pr->run->n;
}

/* Milliseconds poll() may sleep before a deadline, a time limit or a ring
 * scan is due. */
static int poll_timeout(struct prun *pr, uint64_t now)
{
    struct sp_run *run = pr->run;
    uint64_t due = now + (uint64_t)SCAN_MS * 1000000u;
    if (run->deadline && atomic_load(run->stop) != SP_STOP_DEADLINE &&
        run->deadline < due)
        due = run->deadline; /* once enforced, only exits are awaited */
    if (run->task_timeout) {
        for (unsigned k = 0; k < pr->used; k++) {
            if (!pr->pw[k].pid || pr->pw[k].kill_why)
                continue;
            struct slot *s = &pr->sh->slots[k];
            /* An idle worker may start a task right now. */
            uint64_t start =
                atomic_load(&s->current) ? atomic_load(&s->started) : now;
            if (start + run->task_timeout < due)
                due = start + run->task_timeout;
        }
    }
    return due <= now ? 0 : (int)((due - now + 999999) / 1000000);
}

static void kill_all(struct prun *pr, int why)
{
    for (unsigned k = 0; k < pr->used; k++)
        sp_proc_kill(&pr->pw[k], why);
}

static void enforce_limits(struct prun *pr, uint64_t now)
{
    struct sp_run *run = pr->run;
    if (run->deadline && now >= run->deadline) {
        sp_run_stop(run, SP_STOP_DEADLINE);
        kill_all(pr, KILL_DEADLINE);
        return;
    }
    if (!run->task_timeout)
        return;
    for (unsigned k = 0; k < pr->used; k++) {
        struct slot *s = &pr->sh->slots[k];
        if (pr->pw[k].pid && atomic_load(&s->current) &&
            now >= atomic_load(&s->started) + run->task_timeout)
            sp_proc_kill(&pr->pw[k], KILL_TIMEOUT);
    }
}

void sp_proc_event_loop(struct prun *pr)
{
    struct pollfd *pfd = pr->pfd;
    unsigned *who = pr->who;
    for (;;) {
        /* Fork on demand: one more while unclaimed tasks remain, into the
         * lowest empty slot. */
        int more = 0;
        if (want_worker(pr)) {
            for (unsigned k = 0; k < pr->nw; k++) {
                if (!pr->pw[k].pid) {
                    more = sp_proc_spawn(pr, k) == 0;
                    break;
                }
            }
        }
        if (!alive_count(pr))
            break;
        nfds_t nfds = 0;
        for (unsigned k = 0; k < pr->used; k++) {
            if (!pr->pw[k].pid)
                continue;
            pfd[nfds] = (struct pollfd){.fd = pr->pw[k].fd, .events = POLLIN};
            who[nfds++] = k;
        }
        int r = poll(pfd, nfds, more ? 0 : poll_timeout(pr, sp_now()));
        if (r < 0 && errno != EINTR && errno != EAGAIN) {
            /* The parent can no longer watch its workers: a system error,
             * reported as such on every task it touches. */
            char why[128], text[96];
            snprintf(why, sizeof why, "poll: %s",
                     sp_errno_text(errno, text, sizeof text));
            snprintf(pr->error_msg, sizeof pr->error_msg, "%s", why);
            sp_run_fail(pr->run, SP_ESYSTEM, why);
            kill_all(pr, KILL_ERROR);
            for (unsigned k = 0; k < pr->used; k++) {
                if (pr->pw[k].pid) {
                    drain(pr, k); /* what is already there */
                    worker_ended(pr, k);
                }
            }
            continue;
        }
        for (unsigned k = 0; k < pr->used; k++)
            if (pr->pw[k].pid)
                sp_proc_ring_take(pr, k);
        for (nfds_t j = 0; r > 0 && j < nfds; j++) {
            if (pfd[j].revents && drain(pr, who[j]))
                worker_ended(pr, who[j]);
        }
        enforce_limits(pr, sp_now());
    }
}
