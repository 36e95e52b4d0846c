/* SPDX-License-Identifier: MIT */
/* The worker's side of the process backend, in the forked child: claim the
 * next task from the shared counter, publish it in the slot, run it, and
 * send its outcome back as a frame (over the ring when it was short, the
 * pipe otherwise). A fatal signal is recorded in the slot before the worker
 * dies of it, for parents that cannot read exit statuses. */
#define _DEFAULT_SOURCE /* struct iovec users, writev */
#include "proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* Written only in a forked worker, before any signal can use it: the slot
 * its crash handler reports to. Never touched in the caller's process. */
static struct slot *crash_slot;

static void on_fatal_signal(int sig)
{
    if (crash_slot)
        atomic_store(&crash_slot->signo, sig);
    /* SA_RESETHAND restored the default action and SA_NODEFER lets it be
     * delivered now: the worker dies of the same signal. */
    raise(sig);
}

static void install_crash_handlers(struct slot *s)
{
    static const int fatal[] = {SIGSEGV, SIGBUS,  SIGILL, SIGFPE,
                                SIGABRT, SIGTRAP, SIGSYS};
    crash_slot = s;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t k = 0; k < sizeof fatal / sizeof fatal[0]; k++) {
        struct sigaction old;
        /* Keep a task's own choice to ignore a signal. */
        if (sigaction(fatal[k], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        sigaction(fatal[k], &sa, NULL);
    }
}

static int write_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t w = writev(fd, iov, cnt);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t left = (size_t)w;
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

static int send_frame(struct prun *pr, unsigned k, int fd,
                      const struct sp_outcome *o, size_t i)
{
    unsigned char hdr[SP_WIRE_HEADER];
    const char *msg = o->r.msg;
    size_t msg_len = msg ? strlen(msg) : 0;
    if (msg_len > SP_WIRE_MAX_MSG)
        msg_len = SP_WIRE_MAX_MSG; /* long messages are cut, not lost */
    struct sp_wire_header h = {
        .magic = SP_WIRE_MAGIC,
        .index = (uint32_t)i,
        .code = o->r.code,
        .kind = o->how.kind,
        .flags = o->how.flags & SP_EF_TASK_CODE ? SP_WIRE_TASK_CODE : 0,
        .t_start = o->r.t_start,
        .t_end = o->r.t_end,
        .msg_len = (uint32_t)msg_len,
        .data_len = o->r.data ? o->r.len : 0,
    };
    sp_wire_encode(hdr, &h);
    struct iovec iov[3] = {
        {hdr, sizeof hdr},
        {(void *)msg, msg_len},
        {o->r.data, (size_t)h.data_len},
    };
    size_t total = sizeof hdr + msg_len + (size_t)h.data_len;
    /* Short tasks' frames go into the ring while it is at most half full;
     * otherwise over the pipe, which also wakes the parent to empty it. */
    struct sp_ring ring = sp_proc_ring(pr, k);
    if (o->r.t_end - o->r.t_start < SLOW_NS && total <= RING / 4 &&
        sp_ring_put(&ring, iov, 3, total, RING / 2) == 0)
        return 0;
    return write_all(fd, iov, 3);
}

_Noreturn void sp_proc_worker_main(struct prun *pr, unsigned k, int wfd)
{
    struct sp_run *run = pr->run;
    struct shared *sh = pr->sh;
    struct slot *s = &sh->slots[k];

    /* Of the pipes this run made, only our own write end stays open. */
    for (unsigned j = 0; j < pr->used; j++)
        if (pr->pw[j].pid && pr->pw[j].fd >= 0)
            close(pr->pw[j].fd);
    install_crash_handlers(s);
    run->stop = &sh->stop;

    size_t i;
    while (sp_sched_claim_one(&run->sched, &i)) {
        if (atomic_load_explicit(&sh->retry, memory_order_relaxed) &&
            pr->have[i])
            continue; /* done in an earlier round */
        uint64_t now = sp_now();
        atomic_store(&s->started, now);
        atomic_store(&s->current, (uint32_t)i + 1);
        if (!sp_run_may_start(run, now)) {
            atomic_store(&s->current, 0);
            break; /* the parent reports it cancelled */
        }
        struct sp_outcome o;
        sp_task_exec(run, i, k, now, &o);
        /* Fail-fast takes effect here at once; the parent records the
         * outcome when the frame arrives. */
        if (sp_complete_stops(run, o.how.kind))
            sp_run_stop(run, SP_STOP_FAILFAST);
        if (send_frame(pr, k, wfd, &o, i))
            _exit(3); /* the parent is gone or the pipe is broken */
        sp_outcome_free(&o);
        atomic_store(&s->current, 0);
    }
    atomic_store(&s->finished, 1);
    fflush(NULL); /* what tasks printed in this worker */
    _exit(0);
}
