/* SPDX-License-Identifier: MIT */
/* Worker processes' lives, seen from the parent: fork one into an empty
 * slot, kill one, reap one, and put into words how one ended. */
#define _GNU_SOURCE /* pipe2 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int set_spawn_error(struct prun *pr, int code, const char *what, int err)
{
    char buf[96];
    sp_errno_text(err, buf, sizeof buf);
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
int sp_proc_spawn(struct prun *pr, unsigned k)
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
        sp_proc_worker_main(pr, k, fds[1]);
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

void sp_proc_kill(struct pworker *w, int why)
{
    if (w->pid && w->kill_why == KILL_NONE) {
        w->kill_why = why;
        kill(w->pid, SIGKILL);
    }
}

/* Worker k's pipe ended: wait for it to become a zombie (its status is then
 * its own) and reap it. One that lives on without its pipe (a task closed
 * the descriptor) can report nothing more and is killed. */
void sp_proc_reap(struct prun *pr, unsigned k, int *have_status, int *status)
{
    struct pworker *w = &pr->pw[k];
    *have_status = 0;
    for (unsigned tries = 0;; tries++) {
        pid_t r = waitpid(w->pid, status, tries < GRACE_MS ? WNOHANG : 0);
        if (r == w->pid) {
            *have_status = 1;
            return;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) /* ECHILD: SIGCHLD ignored, or someone reaped it */
            return;
        if (tries + 1 == GRACE_MS)
            kill(w->pid, SIGKILL);
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
    struct slot *s = &pr->sh->slots[k];
    int sig = 0;
    if (have_status && WIFSIGNALED(status))
        sig = WTERMSIG(status);
    else if (!have_status)
        sig = atomic_load(&s->signo);

    switch (w->kill_why) {
    case KILL_TIMEOUT:
        snprintf(out, outlen,
                 "killed after running longer than the task_timeout of %g s",
                 pr->run->opts.task_timeout);
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
    case KILL_PROTO:
        snprintf(out, outlen,
                 "worker killed after a malformed result frame: %s",
                 w->proto_err);
        return;
    default:
        break;
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
