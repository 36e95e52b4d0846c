/* SPDX-License-Identifier: MIT */
/* The worker's side of the process backend, in the forked child: claim the
 * next task from the shared counter (or, once it is exhausted, ask the
 * parent for one), publish it and its phase in the slot, run it, and send
 * its outcome back as a frame: over the ring when the task was short, over
 * the channel otherwise.
 *
 * The worker holds one descriptor of the library's, its channel (fds.c
 * closed the rest after the fork). Before each use of the channel it
 * checks that the task did not close or replace it; if it did, the worker
 * records why in its slot and leaves with EXIT_CHANNEL, and the parent
 * reports the task that broke it and gives the others a fresh worker. A
 * fatal signal is recorded in the slot before the worker dies of it, for
 * parents that cannot read exit statuses. */
#define _DEFAULT_SOURCE /* sendmsg flags, struct iovec */
#include "proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

/* The channel and what it was when the worker started. */
struct channel {
    int fd;
    dev_t dev;
    ino_t ino;
};

/* Still our socket? A task may have closed the descriptor or put another
 * file on its number (dup2). */
static bool channel_intact(const struct channel *ch)
{
    struct stat st;
    return fstat(ch->fd, &st) == 0 && st.st_dev == ch->dev &&
           st.st_ino == ch->ino;
}

static _Noreturn void channel_broken(struct slot *s, int err)
{
    atomic_store(&s->send_err, err ? err : EBADF);
    _exit(EXIT_CHANNEL);
}

/* 0, or the errno of the failed send. */
static int send_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
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

/* Send task i's outcome: into the ring when the task was short and the
 * ring has room (no system call; the ring also survives the worker), over
 * the channel otherwise. Exits when the channel is broken. */
static void send_result(struct prun *pr, unsigned k, const struct channel *ch,
                        const struct sp_outcome *o, size_t i)
{
    unsigned char hdr[SP_WIRE_HEADER];
    const char *msg = o->r.msg;
    size_t msg_len = msg ? strlen(msg) : 0;
    if (msg_len > SP_WIRE_MAX_MSG)
        msg_len = SP_WIRE_MAX_MSG; /* sp_fail() keeps within it anyway */
    struct sp_wire_header h = {
        .magic = SP_WIRE_MAGIC,
        .index = (uint32_t)i,
        .code = o->r.code,
        .kind = o->how.kind,
        .flags = o->how.flags & SP_EF_TASK_CODE ? SP_WIRE_TASK_CODE : 0,
        .type = SP_WIRE_RESULT,
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
    struct sp_ring ring = sp_proc_ring(pr, k);
    if (o->r.t_end - o->r.t_start < SLOW_NS && total <= RING / 4 &&
        sp_ring_put(&ring, iov, 3, total, RING / 2) == 0)
        return;
    struct slot *s = &pr->sh->slots[k];
    if (!channel_intact(ch)) {
        /* The task broke the channel. A frame that fits the ring still gets
         * through (the parent reads a dead worker's ring to the end); the
         * worker cannot go on either way. */
        if (total <= RING)
            sp_ring_put(&ring, iov, 3, total, RING);
        channel_broken(s, EBADF);
    }
    int err = send_all(ch->fd, iov, 3);
    if (err)
        channel_broken(s, err);
}

/* Ask the parent for work. true: run *i; false: leave. */
static bool ask(struct prun *pr, unsigned k, const struct channel *ch,
                size_t *i)
{
    struct slot *s = &pr->sh->slots[k];
    if (!channel_intact(ch))
        channel_broken(s, EBADF);
    unsigned char hdr[SP_WIRE_HEADER];
    sp_wire_encode(hdr, &(struct sp_wire_header){.magic = SP_WIRE_MAGIC,
                                                 .type = SP_WIRE_IDLE});
    struct iovec iov = {hdr, sizeof hdr};
    int err = send_all(ch->fd, &iov, 1);
    if (err)
        channel_broken(s, err);
    unsigned char in[SP_WIRE_CMD];
    for (size_t got = 0; got < sizeof in;) {
        ssize_t r = read(ch->fd, in + got, sizeof in - got);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        _exit(0); /* the parent is gone: nothing to report to */
    }
    struct sp_wire_cmd c;
    if (sp_wire_cmd_decode(&c, in, (uint32_t)pr->run->n))
        channel_broken(s, EPROTO);
    *i = c.index;
    return c.type == SP_CMD_RUN;
}

/* Run task i. false when the run stopped before it could start. */
static bool run_task(struct prun *pr, unsigned k, const struct channel *ch,
                     size_t i)
{
    struct sp_run *run = pr->run;
    struct slot *s = &pr->sh->slots[k];
    uint64_t now = sp_now();
    atomic_store(&s->started, now);
    atomic_store(&s->current, (uint32_t)i + 1);
    atomic_store(&s->phase, SLOT_CLAIMED);
    if (!sp_run_may_start(run, now)) {
        atomic_store(&s->phase, SLOT_IDLE);
        atomic_store(&s->current, 0);
        return false; /* never started: the parent cancels it */
    }
    atomic_store(&s->phase, SLOT_RUNNING);
    struct sp_outcome o;
    sp_task_exec(run, i, k, now, &o);
    atomic_store(&s->phase, SLOT_SENDING);
    /* Fail-fast takes effect here at once; the parent records the outcome
     * when the frame arrives. */
    if (sp_complete_stops(run, o.how.kind))
        sp_run_stop(run, SP_STOP_FAILFAST);
    send_result(pr, k, ch, &o, i);
    sp_outcome_free(&o);
    atomic_store(&s->phase, SLOT_IDLE);
    atomic_store(&s->current, 0);
    return true;
}

_Noreturn void sp_proc_worker_main(struct prun *pr, unsigned k, int fd)
{
    struct sp_run *run = pr->run;
    struct slot *s = &pr->sh->slots[k];
    struct channel ch = {.fd = fd};
    struct stat st;
    if (fstat(fd, &st) == 0) {
        ch.dev = st.st_dev;
        ch.ino = st.st_ino;
    }
    install_crash_handlers(s);
    run->stop = &pr->sh->stop;

    size_t i;
    for (;;) {
        if (!sp_sched_claim_one(&run->sched, &i) && !ask(pr, k, &ch, &i))
            break;
        if (!run_task(pr, k, &ch, i))
            break;
    }
    fflush(NULL); /* what tasks printed in this worker */
    _exit(0);
}
