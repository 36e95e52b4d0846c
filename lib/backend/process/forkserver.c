/* SPDX-License-Identifier: MIT */
/* The fork server (forkserver.h): a single-threaded child of the caller
 * that forks workers on request, so that a worker never inherits a lock
 * that one of the caller's other threads held at the fork.
 *
 * The server is forked with every signal blocked and, since the caller may
 * already run other threads then, makes only async-signal-safe calls from
 * then on: no malloc, no stdio, no locks but the registry's atomic flag.
 * It serves fixed-size requests on one AF_UNIX stream socket, one at a
 * time, in order:
 *
 *   FORK index  socketpair, fork; reply pid, with the caller's end of the
 *               worker's channel and a pidfd for the worker (SCM_RIGHTS)
 *   REAP pid    waitpid(WNOHANG): the status, or "still running" with a
 *               pidfd the caller waits on before asking again; so the
 *               server never blocks on a worker
 *
 * and ends at EOF on that socket (the caller stopped it or died): it kills
 * every worker not reaped yet with its process group, reaps them, exits.
 * The caller's side serialises request and reply with a mutex, and tells a
 * dead server (EOF, or its pidfd) from a slow one, so no call hangs. */
#define _GNU_SOURCE /* SOCK_CLOEXEC, MSG_CMSG_CLOEXEC, SYS_pidfd_open */
#include "forkserver.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#ifdef SOCK_CLOEXEC
#define FS_SOCK_TYPE (SOCK_STREAM | SOCK_CLOEXEC)
#define FS_CLOEXEC(fd) ((void)(fd))
#else
#define FS_SOCK_TYPE SOCK_STREAM
#define FS_CLOEXEC(fd) ((void)fcntl((fd), F_SETFD, FD_CLOEXEC))
#endif
#ifdef MSG_CMSG_CLOEXEC
#define FS_RECV_FLAGS (MSG_DONTWAIT | MSG_CMSG_CLOEXEC)
#define FS_RECV_CLOEXEC(fd) ((void)(fd))
#else
#define FS_RECV_FLAGS MSG_DONTWAIT
#define FS_RECV_CLOEXEC(fd) ((void)fcntl((fd), F_SETFD, FD_CLOEXEC))
#endif

/* Workers forked and not reaped yet, at most, per server. */
#define FS_MAX_LIVE SP_MAX_WORKERS
/* How long sp_forkserver_stop() lets the server end its workers and exit
 * before it kills the server (ms). */
#define FS_STOP_GRACE_MS 10000

enum { OP_FORK = 1, OP_REAP = 2 };
/* Where a FORK failed in the server. */
enum { AT_NONE, AT_SOCKET, AT_FORK, AT_FULL };

struct fs_req {
    uint32_t op;    /* OP_* */
    uint32_t index; /* FORK: the worker's index; REAP: 1 = no pidfd back */
    int32_t pid;    /* REAP: the worker */
};

struct fs_rep {
    int32_t err;    /* errno in the server; 0 = done */
    int32_t at;     /* FORK: AT_* where err happened */
    int32_t pid;    /* FORK: the new worker */
    int32_t ended;  /* REAP: 1 = reaped, status set; 0 = still running */
    int32_t status; /* REAP: its wait status */
    int32_t nfds;   /* descriptors attached, in this order: FORK channel,
                       pidfd; REAP (still running) pidfd */
};

struct sp_forkserver {
    pthread_mutex_t lock; /* one request and its reply at a time */
    bool gone;            /* the server is gone (under lock) */
    int sock;             /* the caller's end, listed, close-on-exec */
    int pidfd;            /* the server's pidfd, listed, or -1 */
    pid_t pid;
    pid_t *live; /* used in the server's copy: its unreaped workers */
};

/* ---- the server: async-signal-safe calls only ------------------------- */

struct server {
    int sock;
    pid_t self;
    sp_fs_main_fn main;
    void *arg;
    sigset_t mask;         /* the caller's, given back to each worker */
    struct sigaction chld; /* the caller's SIGCHLD disposition, likewise */
    pid_t *live;
    unsigned nlive;
};

static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    return -1;
#endif
}

static int make_pair(int sv[2])
{
    if (socketpair(AF_UNIX, FS_SOCK_TYPE, 0, sv))
        return -1;
    FS_CLOEXEC(sv[0]);
    FS_CLOEXEC(sv[1]);
    return 0;
}

/* In the new worker: only its channel is left of the library's
 * descriptors (the registry lists just the server's socket here), its own
 * process group, death with the server, the caller's signal state. */
static _Noreturn void worker(const struct server *s, const int sv[2],
                             unsigned index)
{
    sp_fds_lock(); /* free: the server has one thread */
    sp_fds_child(sv[1]);
    close(sv[0]);
    setpgid(0, 0);
#if defined(__linux__)
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != s->self)
        _exit(0); /* the server ended before the line above took hold */
#endif
    sigaction(SIGCHLD, &s->chld, NULL);
    sigprocmask(SIG_SETMASK, &s->mask, NULL);
    s->main(s->arg, index, sv[1]);
    _exit(0);
}

static void serve_fork(struct server *s, unsigned index, struct fs_rep *r,
                       int fds[2])
{
    int sv[2];
    if (s->nlive >= FS_MAX_LIVE) {
        r->err = EAGAIN;
        r->at = AT_FULL;
        return;
    }
    if (make_pair(sv)) {
        r->err = errno;
        r->at = AT_SOCKET;
        return;
    }
    pid_t pid = sp_fork();
    if (pid == 0)
        worker(s, sv, index);
    int err = errno;
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        r->err = err;
        r->at = AT_FORK;
        return;
    }
    setpgid(pid, pid); /* as the worker does: no kill can miss the group */
    s->live[s->nlive++] = pid;
    r->pid = pid;
    fds[0] = sv[0];
    fds[1] = pidfd_of(pid); /* before any reap: pid is still ours */
    r->nfds = fds[1] >= 0 ? 2 : 1;
}

static void serve_reap(struct server *s, pid_t pid, bool want_pidfd,
                       struct fs_rep *r, int fds[2])
{
    unsigned k = 0;
    while (k < s->nlive && s->live[k] != pid)
        k++;
    if (k == s->nlive) {
        r->err = ECHILD;
        return;
    }
    int status = 0;
    pid_t got;
    do
        got = waitpid(pid, &status, WNOHANG);
    while (got < 0 && errno == EINTR);
    if (got == 0) { /* still running: the caller waits, not the server */
        fds[0] = want_pidfd ? pidfd_of(pid) : -1;
        r->nfds = fds[0] >= 0;
        return;
    }
    if (got < 0)
        r->err = errno;
    else {
        r->ended = 1;
        r->status = status;
    }
    s->live[k] = s->live[--s->nlive];
}

static void put_reply(int sock, struct fs_rep *r, const int fds[2])
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } cm;
    struct iovec iov = {r, sizeof *r};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (r->nfds > 0) {
        memset(&cm, 0, sizeof cm);
        m.msg_control = cm.buf;
        m.msg_controllen = CMSG_SPACE((size_t)r->nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)r->nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)r->nfds * sizeof(int));
    }
    size_t off = 0;
    while (off < sizeof *r) {
        iov = (struct iovec){(char *)r + off, sizeof *r - off};
        ssize_t n = sendmsg(sock, &m, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the caller is gone: the next read sees EOF */
        off += (size_t)n;
        m.msg_control = NULL; /* the descriptors went with the first byte */
        m.msg_controllen = 0;
    }
}

static int get_request(int sock, struct fs_req *q)
{
    size_t off = 0;
    while (off < sizeof *q) {
        ssize_t n = recv(sock, (char *)q + off, sizeof *q - off, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/* The caller held the registry's lock across the fork and blocked every
 * signal in its thread, so the server starts with all of them blocked. */
static _Noreturn void server_main(int sock, sp_fs_main_fn main, void *arg,
                                  const sigset_t *mask, pid_t *live)
{
    sp_fds_child(sock); /* every library descriptor but sock is closed */
    setpgid(0, 0);      /* the caller's terminal signals do not reach us */
    struct server s = {.sock = sock,
                       .self = getpid(),
                       .main = main,
                       .arg = arg,
                       .mask = *mask,
                       .live = live};
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL; /* SIG_IGN would reap behind waitpid's back */
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, &dfl, &s.chld);

    struct fs_req q;
    while (get_request(sock, &q) == 0) {
        struct fs_rep r = {0};
        int fds[2] = {-1, -1};
        if (q.op == OP_FORK)
            serve_fork(&s, q.index, &r, fds);
        else if (q.op == OP_REAP)
            serve_reap(&s, (pid_t)q.pid, q.index == 0, &r, fds);
        else
            break;
        put_reply(sock, &r, fds);
        for (int k = 0; k < 2; k++)
            if (fds[k] >= 0)
                close(fds[k]);
    }
    for (unsigned k = 0; k < s.nlive; k++) {
        kill(-s.live[k], SIGKILL);
        kill(s.live[k], SIGKILL);
    }
    for (unsigned k = 0; k < s.nlive; k++)
        while (waitpid(s.live[k], NULL, 0) < 0 && errno == EINTR)
            ;
    _exit(0);
}

/* ---- the caller's side -------------------------------------------------- */

static int gone(struct sp_forkserver *fs)
{
    if (!fs->gone && fs->pidfd >= 0) /* let it end, to say how it ended */
        poll(&(struct pollfd){fs->pidfd, POLLIN, 0}, 1, 100);
    fs->gone = true;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)fs->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        si.si_pid == fs->pid)
        return sp_set_error(
            SP_ESYSTEM, "the fork server (pid %d) is gone: %s %d", (int)fs->pid,
            si.si_code == CLD_EXITED ? "it exited with status"
                                     : "killed by signal",
            si.si_status);
    return sp_set_error(SP_ESYSTEM, "the fork server (pid %d) is gone",
                        (int)fs->pid);
}

/* Under the registry's lock: list the descriptors a reply carries, in
 * fds[] by position; one that cannot be listed is closed and left -1. */
static void take_fds(struct msghdr *m, int fds[2])
{
    int pos = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t k = 0; k < n; k++, pos++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + k * sizeof fd, sizeof fd);
            FS_RECV_CLOEXEC(fd);
            if (pos < 2 && sp_fds_add(fd) == 0)
                fds[pos] = fd;
            else
                close(fd);
        }
    }
}

/* Send q and read its reply, under fs->lock. 0, or SP_ESYSTEM. */
static int transact(struct sp_forkserver *fs, const struct fs_req *q,
                    struct fs_rep *r, int fds[2])
{
    fds[0] = fds[1] = -1;
    if (fs->gone)
        return gone(fs);
    for (size_t off = 0; off < sizeof *q;) {
        ssize_t n = send(fs->sock, (const char *)q + off, sizeof *q - off,
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return gone(fs);
        off += (size_t)n;
    }
    for (size_t off = 0; off < sizeof *r;) {
        struct pollfd p[2] = {{fs->sock, POLLIN, 0}, {fs->pidfd, POLLIN, 0}};
        if (poll(p, fs->pidfd >= 0 ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return sp_set_error_errno(SP_ESYSTEM, errno, "fork server: poll");
        }
        if (!p[0].revents) {
            if (p[1].revents) /* it died without a word */
                return gone(fs);
            continue;
        }
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(2 * sizeof(int))];
        } cm;
        struct iovec iov = {(char *)r + off, sizeof *r - off};
        struct msghdr m = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = cm.buf,
                           .msg_controllen = sizeof cm.buf};
        /* Listed before the lock is let go: no fork of another thread can
         * inherit them unlisted. */
        sp_fds_lock();
        ssize_t n = recvmsg(fs->sock, &m, FS_RECV_FLAGS);
        int err = errno;
        if (n > 0 && m.msg_controllen > 0)
            take_fds(&m, fds);
        sp_fds_unlock();
        if (n < 0 && (err == EINTR || err == EAGAIN || err == EWOULDBLOCK))
            continue;
        if (n <= 0)
            return gone(fs);
        off += (size_t)n;
    }
    return 0;
}

static int request(struct sp_forkserver *fs, const struct fs_req *q,
                   struct fs_rep *r, int fds[2])
{
    pthread_mutex_lock(&fs->lock);
    int rc = transact(fs, q, r, fds);
    pthread_mutex_unlock(&fs->lock);
    if (rc)
        for (int k = 0; k < 2; k++)
            sp_fds_close(fds[k]);
    return rc;
}

/* One REAP request: 1 and *status when pid was reaped, 0 when it still
 * runs (*pidfd: one to wait on, or -1; want_pidfd: ask for one), or
 * SP_ESYSTEM. */
static int reap_once(struct sp_forkserver *fs, pid_t pid, bool want_pidfd,
                     int *status, int *pidfd)
{
    struct fs_req q = {
        .op = OP_REAP, .index = want_pidfd ? 0 : 1, .pid = (int32_t)pid};
    struct fs_rep r;
    int fds[2];
    *pidfd = -1;
    int rc = request(fs, &q, &r, fds);
    if (rc)
        return rc;
    sp_fds_close(fds[1]);
    if (r.err) {
        sp_fds_close(fds[0]);
        return sp_set_error_errno(
            SP_ESYSTEM, r.err, "fork server: cannot reap worker %d", (int)pid);
    }
    if (r.ended) {
        sp_fds_close(fds[0]);
        *status = r.status;
        return 1;
    }
    *pidfd = fds[0];
    return 0;
}

int sp_forkserver_poll(struct sp_forkserver *fs, pid_t pid, int *status)
{
    int pidfd;
    return reap_once(fs, pid, false, status, &pidfd);
}

int sp_forkserver_reap(struct sp_forkserver *fs, pid_t pid, int *status)
{
    struct timespec nap = {0, 50000}; /* no pidfds: 50 µs doubling to 10 ms */
    for (;;) {
        int pidfd;
        int rc = reap_once(fs, pid, true, status, &pidfd);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return 0;
        if (pidfd >= 0) { /* readable once it has ended, or the server */
            struct pollfd p[2] = {{pidfd, POLLIN, 0}, {fs->pidfd, POLLIN, 0}};
            while (poll(p, fs->pidfd >= 0 ? 2 : 1, -1) < 0 && errno == EINTR)
                ;
            sp_fds_close(pidfd);
        } else {
            nanosleep(&nap, NULL);
            nap.tv_nsec *= 2;
            if (nap.tv_nsec > 10000000)
                nap.tv_nsec = 10000000;
        }
    }
}

int sp_forkserver_fork(struct sp_forkserver *fs, unsigned index,
                       struct sp_fs_worker *w)
{
    struct fs_req q = {.op = OP_FORK, .index = index};
    struct fs_rep r;
    int fds[2];
    int rc = request(fs, &q, &r, fds);
    if (rc)
        return rc;
    if (r.err) {
        sp_fds_close(fds[0]);
        sp_fds_close(fds[1]);
        return sp_set_error_errno(
            r.at == AT_SOCKET ? SP_EPIPE : SP_EFORK, r.err, "fork server: %s",
            r.at == AT_SOCKET ? "socketpair"
            : r.at == AT_FULL ? "too many workers not reaped"
                              : "fork");
    }
    if (fds[0] < 0) { /* the channel could not be listed: no worker */
        sp_fds_close(fds[1]);
        kill(-(pid_t)r.pid, SIGKILL);
        kill((pid_t)r.pid, SIGKILL);
        int status;
        rc = sp_forkserver_reap(fs, (pid_t)r.pid, &status);
        return rc ? rc
                  : sp_set_error(SP_ENOMEM, "fork server: cannot list the "
                                            "worker's channel");
    }
    w->pid = (pid_t)r.pid;
    w->fd = fds[0];
    w->pidfd = fds[1]; /* -1: no pidfds, or it could not be listed */
    return 0;
}

pid_t sp_forkserver_pid(const struct sp_forkserver *fs)
{
    return fs->pid;
}

/* A pidfd for the server, listed, or -1. */
static int listed_pidfd(pid_t pid)
{
    sp_fds_lock();
    int fd = pidfd_of(pid);
    if (fd >= 0 && sp_fds_add(fd)) {
        close(fd);
        fd = -1;
    }
    sp_fds_unlock();
    return fd;
}

int sp_forkserver_start(struct sp_forkserver **out, sp_fs_main_fn main,
                        void *arg)
{
    *out = NULL;
    struct sp_forkserver *fs = sp_calloc(1, sizeof *fs);
    pid_t *live = fs ? sp_calloc(FS_MAX_LIVE, sizeof *live) : NULL;
    if (!live || pthread_mutex_init(&fs->lock, NULL)) {
        free(live);
        free(fs);
        return sp_set_error(SP_ENOMEM, "fork server: out of memory");
    }
    fs->live = live;

    fflush(NULL); /* nothing buffered is printed twice */
    int sv[2];
    sp_fds_lock();
    if (make_pair(sv)) {
        int err = errno;
        sp_fds_unlock();
        pthread_mutex_destroy(&fs->lock);
        free(live);
        free(fs);
        return sp_set_error_errno(SP_EPIPE, err, "fork server: socketpair");
    }
    int rc = 0, err = 0;
    pid_t pid = -1;
    if (sp_fds_add(sv[0]) || sp_fds_add(sv[1])) {
        rc = sp_set_error(SP_ENOMEM, "fork server: cannot list its socket");
    } else {
        /* Blocked in the server from its first instruction: no handler of
         * the caller's runs there, even before it blocks them itself. */
        sigset_t all, mask;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &mask);
        pid = sp_fork();
        if (pid == 0) {
            /* The server never uses the caller's handle: drop its copy,
             * which nothing in the server points to (a leak checker in a
             * worker that calls exit() would report it). */
            free(fs);
            server_main(sv[1], main, arg, &mask, live);
        }
        err = errno;
        pthread_sigmask(SIG_SETMASK, &mask, NULL);
    }
    sp_fds_del(sv[1]);
    close(sv[1]);
    if (pid < 0) {
        sp_fds_del(sv[0]);
        close(sv[0]);
        sp_fds_unlock();
        pthread_mutex_destroy(&fs->lock);
        free(live);
        free(fs);
        return rc ? rc : sp_set_error_errno(SP_EFORK, err, "fork server: fork");
    }
    setpgid(pid, pid); /* as the server does, before anyone can signal it */
    sp_fds_unlock();
    fs->sock = sv[0];
    fs->pid = pid;
    fs->pidfd = listed_pidfd(pid);
    *out = fs;
    return 0;
}

/* Wait up to ms for the server to end and reap it: true when it is gone
 * (reaped, or reaped by the kernel because SIGCHLD is ignored). */
static bool await_server(struct sp_forkserver *fs, unsigned ms)
{
    uint64_t end = sp_now() + (uint64_t)ms * 1000000u;
    for (;;) {
        pid_t r = waitpid(fs->pid, NULL, WNOHANG);
        if (r == fs->pid || (r < 0 && errno != EINTR))
            return true; /* ECHILD: SIGCHLD is ignored, the kernel reaped */
        uint64_t now = sp_now();
        if (r == 0 && now >= end)
            return false;
        if (r == 0 && fs->pidfd >= 0)
            poll(&(struct pollfd){fs->pidfd, POLLIN, 0}, 1,
                 (int)((end - now) / 1000000u) + 1);
        else if (r == 0)
            poll(NULL, 0, 1);
    }
}

void sp_forkserver_stop(struct sp_forkserver *fs)
{
    if (!fs)
        return;
    /* EOF for the server even if some process forked by the user holds a
     * copy of this end. */
    shutdown(fs->sock, SHUT_RDWR);
    sp_fds_close(fs->sock);
    if (!await_server(fs, FS_STOP_GRACE_MS)) {
        kill(fs->pid, SIGKILL); /* its workers die with it (Linux) */
        while (!await_server(fs, FS_STOP_GRACE_MS))
            ;
    }
    sp_fds_close(fs->pidfd);
    pthread_mutex_destroy(&fs->lock);
    free(fs->live);
    free(fs);
}
