/* SPDX-License-Identifier: MIT */
/* The process backend: forked workers with crash isolation and hard time
 * limits.
 *
 * Workers are forked from the calling thread after validation and inherit
 * the task table through fork, so callbacks and arguments need no
 * serialisation. They claim task indices one at a time from a counter in a
 * shared anonymous mapping (a slow task holds up only itself), publish in
 * their slot of that mapping which task they are running, and send each
 * outcome back as a frame (lib/wire.c). A task that took a while, or a
 * large result, goes over the worker's own pipe at once; the frames of
 * short tasks go into the worker's ring in the shared mapping, so a run of
 * tiny tasks costs no system call per task. The ring outlives the worker:
 * a crash loses nothing that was finished.
 *
 * The parent multiplexes the pipes with poll() on the calling thread,
 * looks at the rings at least every SCAN_MS, and creates no thread.
 * Workers are forked on demand, up to max_workers, while unclaimed tasks
 * remain: a fork costs 100+ µs, and a worker that would find no task is
 * never forked. A worker that dies (signal, exit(), SIGKILL from outside)
 * is reaped with waitpid(); the task its slot names comes back CRASHED
 * with the signal or exit status, and a new worker takes its place while
 * work remains. A task over its time limit, or running at the deadline, is
 * killed with SIGKILL and comes back TIMED_OUT. Every child is reaped
 * before the call returns; every descriptor is close-on-exec and closed.
 */
#define _GNU_SOURCE /* pipe2, MAP_ANONYMOUS */
#include "sp-private.h"
#include "sp-wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
               "the shared mapping needs address-free (lock-free) atomics");

/* One worker's slot in the shared mapping. */
struct slot {
    _Alignas(64) _Atomic uint32_t current; /* task index + 1, 0 = idle */
    _Atomic uint64_t started;              /* CLOCK_MONOTONIC ns */
    _Atomic int signo;    /* fatal signal the worker caught, 0 = none */
    _Atomic int finished; /* left its loop and is exiting normally */
    /* The ring: bytes ever written by the worker, and ever consumed by the
     * parent; the frames in between are waiting. */
    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) _Atomic uint64_t tail;
};

struct shared {
    _Atomic int stop;  /* enum sp_stop, shared by parent and workers */
    _Atomic int retry; /* a later round: skip tasks that have an outcome */
    _Alignas(64) _Atomic unsigned long long next; /* first unclaimed */
    struct slot slots[];
    /* then one ring of RING bytes per slot, then one byte per task: its
     * outcome is known (written by the parent only) */
};

#define RING (64u * 1024)
/* A task that ran at least this long reports over its pipe at once. */
#define SLOW_NS 50000u
/* The parent looks at the rings at least this often (ms). */
#define SCAN_MS 2
#define READ_BUF (256 * 1024)
/* How long a worker whose pipe ended may take to finish exiting (ms). */
#define GRACE_MS 2000u

/* Why the parent killed a worker. */
enum { KILL_NONE, KILL_TIMEOUT, KILL_DEADLINE, KILL_PROTO };

struct pworker {
    pid_t pid; /* 0 = no worker in this slot */
    int fd;    /* read end of its result pipe */
    int kill_why;
    char proto_err[160];
    struct sp_wire_dec dec;  /* the pipe's byte stream */
    struct sp_wire_dec rdec; /* the ring's byte stream */
};

struct prun {
    struct sp_run *run;
    struct shared *sh;
    size_t sh_size;
    struct pworker *pw;
    unsigned nw;
    unsigned used;       /* slots ever used: the workers reported */
    unsigned char *have; /* per task: outcome known (in the mapping) */
    unsigned char *buf;  /* read buffer */
    int spawn_err;       /* why the last spawn failed, 0 = none did */
    int spawn_blocked;   /* a spawn failed: retry once a worker ends */
    char spawn_msg[128];
    unsigned cur;       /* worker whose frames are being decoded */
    pid_t parent;       /* for workers: the process to outlive */
    struct pollfd *pfd; /* poll() set, one per worker */
    unsigned *who;      /* worker of each pfd entry */
};

static unsigned char *ring_of(const struct prun *pr, unsigned k)
{
    return (unsigned char *)&pr->sh->slots[pr->nw] + (size_t)k * RING;
}

/* ---- the worker side ---------------------------------------------------- */

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

/* Append one frame to worker k's ring if it leaves the ring at most half
 * full; otherwise return 1 and the frame goes over the pipe, which also
 * wakes the parent to empty the ring. */
static int ring_frame(struct prun *pr, unsigned k, const struct iovec *iov,
                      int cnt, size_t total)
{
    struct slot *s = &pr->sh->slots[k];
    unsigned char *ring = ring_of(pr, k);
    uint64_t head = atomic_load_explicit(&s->head, memory_order_relaxed);
    if (head + total - atomic_load_explicit(&s->tail, memory_order_acquire) >
        RING / 2)
        return 1;
    for (int j = 0; j < cnt; j++) {
        if (!iov[j].iov_len)
            continue; /* an empty part may have a NULL base */
        size_t len = iov[j].iov_len, at = (size_t)(head % RING);
        size_t first = RING - at < len ? RING - at : len;
        memcpy(ring + at, iov[j].iov_base, first);
        memcpy(ring, (const unsigned char *)iov[j].iov_base + first,
               len - first);
        head += len;
    }
    atomic_store_explicit(&s->head, head, memory_order_release);
    return 0;
}

static int send_frame(struct prun *pr, unsigned k, int fd, const sp_entry *e,
                      size_t i)
{
    unsigned char hdr[SP_WIRE_HEADER];
    size_t msg_len = e->msg ? strlen(e->msg) : 0;
    if (msg_len > SP_WIRE_MAX_MSG)
        msg_len = SP_WIRE_MAX_MSG; /* long messages are cut, not lost */
    struct sp_wire_header h = {
        .magic = SP_WIRE_MAGIC,
        .index = (uint32_t)i,
        .code = e->code,
        .kind = e->kind,
        .t_start = e->t_start,
        .t_end = e->t_end,
        .msg_len = (uint32_t)msg_len,
        .data_len = e->data ? e->len : 0,
    };
    sp_wire_encode(hdr, &h);
    struct iovec iov[3] = {
        {hdr, sizeof hdr},
        {(void *)e->msg, msg_len},
        {e->data, (size_t)h.data_len},
    };
    size_t total = sizeof hdr + msg_len + (size_t)h.data_len;
    if (e->t_end - e->t_start < SLOW_NS && total <= RING / 4 &&
        ring_frame(pr, k, iov, 3, total) == 0)
        return 0;
    return write_all(fd, iov, 3);
}

static _Noreturn void worker_main(struct prun *pr, unsigned k, int wfd)
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

    for (;;) {
        unsigned long long i = atomic_fetch_add(&sh->next, 1);
        if (i >= run->n)
            break;
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
        /* The outcome goes into a scratch entry (writing the map's would
         * copy its pages), is sent, and is freed again. */
        sp_entry e = {0};
        sp_task_exec(run, (size_t)i, k, now, &e);
        if (send_frame(pr, k, wfd, &e, (size_t)i))
            _exit(3); /* the parent is gone or the pipe is broken */
        free(e.data);
        if (e.msg_owned)
            free((void *)e.msg);
        atomic_store(&s->current, 0);
    }
    atomic_store(&s->finished, 1);
    fflush(NULL); /* what tasks printed in this worker */
    _exit(0);
}

/* ---- the parent side ---------------------------------------------------- */

static int set_spawn_error(struct prun *pr, int code, const char *what, int err)
{
    char buf[96] = "";
    strerror_r(err, buf, sizeof buf);
    snprintf(pr->spawn_msg, sizeof pr->spawn_msg, "%s: %s", what, buf);
    pr->spawn_err = code;
    return code;
}

static int make_pipe(int fds[2])
{
#ifdef O_CLOEXEC
    if (pipe2(fds, O_CLOEXEC) == 0)
        return 0;
    if (errno != ENOSYS)
        return -1;
#endif
    if (pipe(fds))
        return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
}

/* Fork a worker into the empty slot k. 0, or SP_EPIPE / SP_EFORK. */
static int spawn(struct prun *pr, unsigned k)
{
    struct pworker *w = &pr->pw[k];
    struct slot *s = &pr->sh->slots[k];
    int fds[2];
    if (make_pipe(fds)) {
        pr->spawn_blocked = 1;
        return set_spawn_error(pr, SP_EPIPE, "pipe", errno);
    }
    atomic_store(&s->current, 0);
    atomic_store(&s->signo, 0);
    atomic_store(&s->finished, 0);
    atomic_store(&s->head, 0);
    atomic_store(&s->tail, 0);

    fflush(NULL); /* nothing buffered is printed twice */
    pid_t pid = sp_fork();
    if (pid < 0) {
        int err = errno;
        close(fds[0]);
        close(fds[1]);
        pr->spawn_blocked = 1;
        return set_spawn_error(pr, SP_EFORK, "fork", err);
    }
    if (pid == 0) {
        close(fds[0]);
        worker_main(pr, k, fds[1]);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    w->pid = pid;
    w->fd = fds[0];
    w->kill_why = KILL_NONE;
    w->proto_err[0] = 0;
    sp_wire_dec_init(&w->dec, (uint32_t)pr->run->n);
    sp_wire_dec_init(&w->rdec, (uint32_t)pr->run->n);
    if (k + 1 > pr->used)
        pr->used = k + 1;
    return 0;
}

static void deliver_done(struct prun *pr, size_t i)
{
    struct sp_run *run = pr->run;
    sp_entry *e = &run->res->entries[i];
    pr->have[i] = 1;
    run->res->counts[e->kind]++;
    if (e->kind != SP_KIND_OK && e->kind != SP_KIND_CANCELLED &&
        run->opts.on_error == SP_FAIL_FAST)
        sp_run_stop(run, SP_STOP_FAILFAST);
    if (run->opts.on_done && run->opts.on_done(e, run->opts.on_done_arg))
        sp_run_stop(run, SP_STOP_CALLBACK);
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
    sp_entry *e = &pr->run->res->entries[i];
    if (f->dropped) { /* we, not the task, ran out of memory */
        e->kind = SP_KIND_FAILED;
        e->code = SP_ENOMEM;
        e->t_start = f->h.t_start;
        e->t_end = f->h.t_end;
        e->worker = pr->cur;
        e->msg = "the caller ran out of memory receiving this result";
        e->msg_owned = 0;
        deliver_done(pr, i);
        return 0;
    }
    e->kind = f->h.kind;
    e->code = f->h.code;
    e->t_start = f->h.t_start;
    e->t_end = f->h.t_end;
    e->worker = pr->cur;
    e->data = f->data;
    e->len = f->data ? (size_t)f->h.data_len : 0;
    e->msg = f->msg;
    e->msg_owned = f->msg != NULL;
    if (f->data || f->msg)
        sp_results_note_owned(pr->run->res);
    deliver_done(pr, i);
    return 0;
}

static void set_owned_msg(struct sp_run *run, sp_entry *e, const char *text)
{
    size_t len = strlen(text) + 1;
    char *m = sp_malloc(len);
    if (m) {
        memcpy(m, text, len);
        sp_results_note_owned(run->res);
    }
    e->msg = m ? m : "worker failed";
    e->msg_owned = m != NULL;
}

/* Give task i, which had no outcome, one decided by the parent. */
static void parent_outcome(struct prun *pr, size_t i, sp_kind kind, int code,
                           uint64_t start, unsigned worker, const char *msg)
{
    struct sp_run *run = pr->run;
    sp_entry *e = &run->res->entries[i];
    uint64_t now = sp_now();
    free(e->data);
    e->data = NULL;
    e->len = 0;
    e->kind = (uint8_t)kind;
    e->code = code;
    e->t_start = start > run->t0 ? start - run->t0 : 0;
    e->t_end = now > run->t0 ? now - run->t0 : 0;
    if (e->t_end < e->t_start)
        e->t_end = e->t_start;
    e->worker = worker;
    set_owned_msg(run, e, msg);
    deliver_done(pr, i);
}

static void kill_worker(struct pworker *w, int why)
{
    if (w->pid && w->kill_why == KILL_NONE) {
        w->kill_why = why;
        kill(w->pid, SIGKILL);
    }
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGILL:
        return "SIGILL";
    case SIGFPE:
        return "SIGFPE";
    case SIGABRT:
        return "SIGABRT";
    case SIGTRAP:
        return "SIGTRAP";
    case SIGSYS:
        return "SIGSYS";
    case SIGKILL:
        return "SIGKILL";
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGQUIT:
        return "SIGQUIT";
    case SIGHUP:
        return "SIGHUP";
    case SIGPIPE:
        return "SIGPIPE";
    case SIGALRM:
        return "SIGALRM";
    case SIGUSR1:
        return "SIGUSR1";
    case SIGUSR2:
        return "SIGUSR2";
    case SIGXCPU:
        return "SIGXCPU";
    case SIGXFSZ:
        return "SIGXFSZ";
    default:
        return "a signal";
    }
}

/* Describe how a worker ended; fills signo / exit status of e. */
static void describe_end(struct prun *pr, unsigned k, int have_status,
                         int status, char *out, size_t outlen, sp_entry *e)
{
    struct pworker *w = &pr->pw[k];
    struct slot *s = &pr->sh->slots[k];
    int sig = 0;
    if (have_status && WIFSIGNALED(status))
        sig = WTERMSIG(status);
    else if (!have_status)
        sig = atomic_load(&s->signo);

    switch (w->kill_why) {
    case KILL_TIMEOUT:
        snprintf(out, outlen,
                 "killed after running longer than the "
                 "task_timeout of %g s",
                 pr->run->opts.task_timeout);
        return;
    case KILL_DEADLINE:
        snprintf(out, outlen, "killed: still running at the deadline of %g s",
                 pr->run->opts.deadline);
        return;
    case KILL_PROTO:
        snprintf(out, outlen,
                 "worker killed after a malformed result "
                 "frame: %s",
                 w->proto_err);
        return;
    default:
        break;
    }
    if (sig) {
        snprintf(out, outlen, "killed by %s (signal %d)", signal_name(sig),
                 sig);
        e->signo = (uint8_t)sig;
    } else if (have_status && WIFEXITED(status)) {
        snprintf(out, outlen, "worker exited with status %d inside the task",
                 WEXITSTATUS(status));
        e->signo = SP_EXITED;
        e->exit_status = (uint8_t)WEXITSTATUS(status);
    } else {
        snprintf(out, outlen,
                 "worker died; its exit status is unavailable "
                 "(SIGCHLD ignored or reaped elsewhere)");
    }
}

/* Feed bytes of worker k's pipe or ring stream to its decoder; a malformed
 * frame gets its task a protocol error and the worker killed. */
static void feed(struct prun *pr, unsigned k, struct sp_wire_dec *d,
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
        parent_outcome(pr, bad, SP_KIND_CRASHED, SP_EPROTO,
                       atomic_load(&pr->sh->slots[k].started), k, msg);
    }
    /* The stream is out of step: the worker cannot go on. */
    kill_worker(w, KILL_PROTO);
}

/* Take the frames waiting in worker k's ring. */
static void scan_ring(struct prun *pr, unsigned k)
{
    struct slot *s = &pr->sh->slots[k];
    uint64_t head = atomic_load_explicit(&s->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&s->tail, memory_order_relaxed);
    if (head == tail)
        return;
    if (head - tail > RING) { /* a worker that scribbled on its slot */
        snprintf(pr->pw[k].proto_err, sizeof pr->pw[k].proto_err,
                 "ring positions out of range");
        kill_worker(&pr->pw[k], KILL_PROTO);
        return;
    }
    const unsigned char *ring = ring_of(pr, k);
    size_t at = (size_t)(tail % RING), len = (size_t)(head - tail);
    size_t first = RING - at < len ? RING - at : len;
    feed(pr, k, &pr->pw[k].rdec, ring + at, first);
    feed(pr, k, &pr->pw[k].rdec, ring, len - first);
    atomic_store_explicit(&s->tail, head, memory_order_release);
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
            feed(pr, k, &w->dec, pr->buf, (size_t)r);
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

/* Worker k's pipe is at end of file (or unusable): take what is left in
 * its ring, reap it, and account for the task it was running. */
static void worker_ended(struct prun *pr, unsigned k)
{
    struct pworker *w = &pr->pw[k];
    struct slot *s = &pr->sh->slots[k];
    struct sp_run *run = pr->run;

    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;

    /* End of file usually means the worker is exiting; give it a moment to
     * become a zombie so its status is its own. One that lives on without
     * its pipe (a task closed the descriptor) can report nothing more and
     * is killed. */
    int status = 0, have_status = 0;
    for (unsigned tries = 0;; tries++) {
        pid_t r = waitpid(w->pid, &status, tries < GRACE_MS ? WNOHANG : 0);
        if (r == w->pid) {
            have_status = 1;
            break;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) /* ECHILD: SIGCHLD ignored, or someone reaped it */
            break;
        if (tries + 1 == GRACE_MS)
            kill(w->pid, SIGKILL);
        else
            nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    /* It is gone: whatever it finished is in the ring. */
    scan_ring(pr, k);
    int truncated = w->kill_why == KILL_NONE &&
                    (sp_wire_partial(&w->dec) || sp_wire_partial(&w->rdec));
    sp_wire_dec_free(&w->dec);
    sp_wire_dec_free(&w->rdec);

    uint32_t cur = atomic_load(&s->current);
    if (cur && !pr->have[cur - 1]) {
        size_t i = cur - 1;
        sp_entry *e = &run->res->entries[i];
        char msg[256];
        e->signo = 0;
        describe_end(pr, k, have_status, status, msg, sizeof msg, e);
        if (truncated) {
            size_t len = strlen(msg);
            snprintf(msg + len, sizeof msg - len,
                     "; its last result frame was truncated");
        }
        int timed = w->kill_why == KILL_TIMEOUT || w->kill_why == KILL_DEADLINE;
        parent_outcome(pr, i, timed ? SP_KIND_TIMED_OUT : SP_KIND_CRASHED,
                       timed                       ? SP_ETIMEDOUT
                       : w->kill_why == KILL_PROTO ? SP_EPROTO
                                                   : SP_ECRASHED,
                       atomic_load(&s->started), k, msg);
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

static void enforce_limits(struct prun *pr, uint64_t now)
{
    struct sp_run *run = pr->run;
    if (run->deadline && now >= run->deadline) {
        sp_run_stop(run, SP_STOP_DEADLINE);
        for (unsigned k = 0; k < pr->used; k++)
            kill_worker(&pr->pw[k], KILL_DEADLINE);
        return;
    }
    if (!run->task_timeout)
        return;
    for (unsigned k = 0; k < pr->used; k++) {
        struct slot *s = &pr->sh->slots[k];
        if (pr->pw[k].pid && atomic_load(&s->current) &&
            now >= atomic_load(&s->started) + run->task_timeout)
            kill_worker(&pr->pw[k], KILL_TIMEOUT);
    }
}

static void event_loop(struct prun *pr)
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
                    more = spawn(pr, k) == 0;
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
            sp_run_stop(pr->run, SP_STOP_DEADLINE);
            for (unsigned k = 0; k < pr->used; k++)
                kill_worker(&pr->pw[k], KILL_DEADLINE);
        }
        for (unsigned k = 0; k < pr->used; k++)
            if (pr->pw[k].pid)
                scan_ring(pr, k);
        for (nfds_t j = 0; r > 0 && j < nfds; j++) {
            if (pfd[j].revents && drain(pr, who[j]))
                worker_ended(pr, who[j]);
        }
        enforce_limits(pr, sp_now());
    }
}

static size_t missing(const struct prun *pr)
{
    size_t left = 0;
    for (size_t i = 0; i < pr->run->n; i++)
        left += !pr->have[i];
    return left;
}

static int process_run(struct sp_run *run)
{
    struct prun pr = {.run = run, .nw = run->workers, .parent = getpid()};
    int err = 0;

    pr.sh_size =
        sizeof *pr.sh + (size_t)pr.nw * (sizeof(struct slot) + RING) + run->n;
    void *m = mmap(NULL, pr.sh_size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pr.pw = sp_calloc(pr.nw, sizeof *pr.pw);
    pr.buf = sp_malloc(READ_BUF);
    pr.pfd = sp_calloc(pr.nw, sizeof *pr.pfd);
    pr.who = sp_calloc(pr.nw, sizeof *pr.who);
    if (m == MAP_FAILED || !pr.pw || !pr.buf || !pr.pfd || !pr.who) {
        err =
            sp_set_error(SP_ENOMEM, "cannot set up %u worker processes", pr.nw);
        goto out;
    }
    pr.sh = m;
    pr.have = ring_of(&pr, pr.nw); /* zero, like all of a new mapping */
    atomic_init(&pr.sh->stop, atomic_load(run->stop));
    atomic_init(&pr.sh->next, 0);
    for (unsigned k = 0; k < pr.nw; k++)
        pr.pw[k].fd = -1;
    /* From here on the parent and every worker share one stop flag. */
    run->stop = &pr.sh->stop;

    if (spawn(&pr, 0)) { /* not even one worker: nothing has run */
        err = sp_set_error(pr.spawn_err, "%s", pr.spawn_msg);
        goto out;
    }
    event_loop(&pr);
    /* A worker killed between claiming a task and starting it (a kill from
     * outside, or after a malformed frame) leaves that task without an
     * outcome. Run such tasks again, in further rounds, while rounds make
     * progress. */
    for (size_t left = missing(&pr); left && !atomic_load(run->stop);) {
        atomic_store(&pr.sh->retry, 1);
        atomic_store(&pr.sh->next, 0);
        pr.spawn_blocked = 0;
        event_loop(&pr);
        size_t now_left = missing(&pr);
        if (now_left == left)
            break;
        left = now_left;
    }
    run->res->workers = pr.used;

    /* Every task without an outcome never started. */
    for (size_t i = 0; i < run->n; i++) {
        if (pr.have[i])
            continue;
        if (!atomic_load(run->stop) && pr.spawn_err) {
            char msg[200];
            snprintf(msg, sizeof msg, "not started: no worker left: %s",
                     pr.spawn_msg);
            parent_outcome(&pr, i, SP_KIND_CANCELLED, pr.spawn_err, 0,
                           SP_NO_WORKER, msg);
            run->res->entries[i].t_start = run->res->entries[i].t_end;
            continue;
        }
        sp_task_cancel(run, i, sp_now());
        deliver_done(&pr, i);
    }
out:
    if (pr.sh)
        run->stop_local = atomic_load(&pr.sh->stop);
    run->stop = &run->stop_local;
    if (m != MAP_FAILED)
        munmap(m, pr.sh_size);
    free(pr.pw);
    free(pr.buf);
    free(pr.pfd);
    free(pr.who);
    return err;
}

const struct sp_backend_ops sp_backend_process = {
    .name = "process",
    .run = process_run,
};
