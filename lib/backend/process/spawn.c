/* SPDX-License-Identifier: MIT */
/* Worker processes' lives, seen from the parent: fork one into an empty
 * slot, kill it and the processes it started, reap it, and put into words
 * how it ended.
 *
 * Each worker leads its own process group, so whatever a task starts
 * (without leaving the group on purpose, e.g. with setsid()) is killed
 * with the group when the worker ends: killed for a time limit, a
 * deadline, a malformed frame, or at its normal exit. A worker also dies
 * with its caller: on Linux the kernel sends it SIGKILL when the thread
 * that forked it ends (PR_SET_PDEATHSIG); elsewhere it leaves when its
 * channel to the parent closes. The parent watches each worker's exit
 * through a pidfd where the kernel has them, so it never waits on a
 * descriptor some other process holds. */
#define _GNU_SOURCE /* SOCK_CLOEXEC, SYS_pidfd_open, prctl */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

static int set_spawn_error(struct prun *pr, int code, const char *what, int err)
{
    char buf[96];
    sp_errno_text(err, buf, sizeof buf);
    snprintf(pr->spawn_msg, sizeof pr->spawn_msg, "%s: %s", what, buf);
    pr->spawn_err = code;
    pr->spawn_blocked = 1;
    return code;
}

/* A pidfd for pid, listed in the registry, or -1 (no kernel support, or
 * no descriptor left: exits are then seen by channel EOF and waitpid). */
static int open_pidfd(pid_t pid)
{
    int fd = -1;
#ifdef SYS_pidfd_open
    sp_fds_lock();
    fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0 && sp_fds_add(fd)) {
        close(fd);
        fd = -1;
    }
    sp_fds_unlock();
#else
    (void)pid;
#endif
    return fd;
}

/* In the child, right after the fork: only the channel is left of the
 * library's descriptors; its own process group; death with the caller. */
static void child_setup(struct prun *pr, int fd)
{
    sp_fds_child(fd);
    setpgid(0, 0);
#if defined(__linux__)
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != pr->parent)
        _exit(0); /* the caller ended before the line above took hold */
#else
    (void)pr;
#endif
}

/* Fork a worker into the empty slot k. 0, or SP_EPIPE / SP_EFORK /
 * SP_ENOMEM with pr->spawn_msg saying why. */
int sp_proc_spawn(struct prun *pr, unsigned k)
{
    struct pworker *w = &pr->pw[k];
    struct slot *s = sp_proc_slot(pr, k);
    atomic_store(&s->current, 0);
    atomic_store(&s->attempt, 0);
    atomic_store(&s->phase, SLOT_IDLE);
    atomic_store(&s->range, 0);
    atomic_store(&s->signo, 0);
    atomic_store(&s->send_err, 0);
    atomic_store(&s->head, 0);
    atomic_store(&s->tail, 0);

    int sv[2];
    sp_fds_lock();
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        int err = errno;
        sp_fds_unlock();
        return set_spawn_error(pr, SP_EPIPE, "socketpair", err);
    }
    if (sp_fds_add(sv[0]) || sp_fds_add(sv[1])) {
        sp_fds_del(sv[0]);
        close(sv[0]);
        close(sv[1]);
        sp_fds_unlock();
        return set_spawn_error(pr, SP_ENOMEM,
                               "cannot list the worker's descriptors", ENOMEM);
    }
    fflush(NULL); /* nothing buffered is printed twice */
    pid_t pid = sp_fork();
    if (pid == 0) {
        child_setup(pr, sv[1]);
        sp_proc_worker_main(pr, k, sv[1]);
    }
    int err = errno;
    sp_fds_del(sv[1]);
    close(sv[1]);
    if (pid < 0) {
        sp_fds_del(sv[0]);
        close(sv[0]);
        sp_fds_unlock();
        return set_spawn_error(pr, SP_EFORK, "fork", err);
    }
    setpgid(pid, pid); /* as the child does: no kill can miss the group */
    sp_fds_unlock();

    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    w->pid = pid;
    w->fd = sv[0];
    w->pidfd = open_pidfd(pid);
    w->kill_why = KILL_NONE;
    w->idle = false;
    w->proto_err[0] = 0;
    /* Frames may name every task the call has now, spawned ones included
     * (a worker forked after a spawn may be the one that runs it). */
    uint32_t total = (uint32_t)sp_results_total(pr->run->res);
    sp_wire_dec_init(&w->dec, total);
    w->dec.resync = true; /* stray bytes a task wrote are skipped */
    sp_wire_dec_init(&w->rdec, total);
    if (k + 1 > pr->used)
        pr->used = k + 1;
    pr->alive++;
    return 0;
}

/* SIGKILL to the worker's process group: the worker (alive or a zombie
 * that keeps the group's id reserved) and what its tasks started in it. */
void sp_proc_kill_group(const struct pworker *w)
{
    if (w->pid > 0)
        kill(-w->pid, SIGKILL);
}

void sp_proc_kill(struct pworker *w, int why)
{
    if (!w->pid || w->kill_why != KILL_NONE)
        return;
    w->kill_why = why;
#ifdef SYS_pidfd_send_signal
    if (w->pidfd >= 0 &&
        syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0) == 0) {
        sp_proc_kill_group(w);
        return;
    }
#endif
    kill(w->pid, SIGKILL);
    sp_proc_kill_group(w);
}

/* Reap worker k. With a pidfd the worker has exited already; without one,
 * its channel ended and it is given GRACE_MS to exit, then killed. */
void sp_proc_reap(struct prun *pr, unsigned k, int *have_status, int *status)
{
    struct pworker *w = &pr->pw[k];
    *have_status = 0;
    for (unsigned tries = 0;; tries++) {
        int flags = w->pidfd >= 0 || tries >= GRACE_MS ? 0 : WNOHANG;
        pid_t r = waitpid(w->pid, status, flags);
        if (r == w->pid) {
            *have_status = 1;
            return;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) /* ECHILD: SIGCHLD ignored, or someone reaped it */
            return;
        if (tries + 1 == GRACE_MS)
            sp_proc_kill(w, w->kill_why ? w->kill_why : KILL_ERROR);
        else
            nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

static const char *signal_name(int sig)
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {
        {SIGSEGV, "SIGSEGV"}, {SIGBUS, "SIGBUS"},   {SIGILL, "SIGILL"},
        {SIGFPE, "SIGFPE"},   {SIGABRT, "SIGABRT"}, {SIGTRAP, "SIGTRAP"},
        {SIGSYS, "SIGSYS"},   {SIGKILL, "SIGKILL"}, {SIGTERM, "SIGTERM"},
        {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGHUP, "SIGHUP"},
        {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGUSR1, "SIGUSR1"},
        {SIGUSR2, "SIGUSR2"}, {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"},
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (names[k].sig == sig)
            return names[k].name;
    return "a signal";
}

/* Describe how worker k ended; fills the signal / exit status of o. */
void sp_proc_describe_end(struct prun *pr, unsigned k, int have_status,
                          int status, char *out, size_t outlen,
                          struct sp_outcome *o)
{
    struct pworker *w = &pr->pw[k];
    struct slot *s = sp_proc_slot(pr, k);
    int sig = 0;
    if (have_status && WIFSIGNALED(status))
        sig = WTERMSIG(status);
    else if (!have_status)
        sig = atomic_load(&s->signo);

    switch (w->kill_why) {
    case KILL_TIMEOUT:
        snprintf(out, outlen, "killed after running longer than %s of %g s",
                 w->own_limit ? "its time_limit" : "the task_timeout",
                 (double)w->limit / 1e9);
        return;
    case KILL_DEADLINE:
        snprintf(out, outlen, "killed: still running at the deadline of %g s",
                 pr->run->opts.deadline);
        return;
    case KILL_ERROR:
        snprintf(out, outlen,
                 "killed: the caller could no longer watch its workers (%s)",
                 pr->error_msg);
        return;
    case KILL_CANCEL:
        snprintf(out, outlen,
                 "killed: cancelled by the caller, still running %u ms later",
                 SP_CANCEL_GRACE_MS);
        return;
    case KILL_PROTO:
        snprintf(out, outlen,
                 "worker killed after a malformed result frame: %s",
                 w->proto_err);
        return;
    default:
        break;
    }
    int send_err = atomic_load(&s->send_err);
    if (have_status && WIFEXITED(status) &&
        WEXITSTATUS(status) == EXIT_CHANNEL && send_err &&
        atomic_load(&s->phase) == SLOT_SENDING) {
        char text[96];
        snprintf(out, outlen,
                 "the task closed or replaced its worker's channel to the "
                 "caller (%s); its result could not be sent",
                 sp_errno_text(send_err, text, sizeof text));
        return;
    }
    if (sig) {
        snprintf(out, outlen, "killed by %s (signal %d)", signal_name(sig),
                 sig);
        o->how.signo = (uint8_t)sig;
    } else if (have_status && WIFEXITED(status)) {
        snprintf(out, outlen, "worker exited with status %d inside the task",
                 WEXITSTATUS(status));
        o->how.signo = SP_EXITED;
        o->how.exit_status = (uint8_t)WEXITSTATUS(status);
    } else {
        snprintf(out, outlen,
                 "worker died; its exit status is unavailable "
                 "(SIGCHLD ignored or reaped elsewhere)");
    }
}
