/* SPDX-License-Identifier: MIT */
/* Private to the process backend: a fork server, the single-threaded
 * process that forks a process pool's workers (forkserver.c).
 *
 * A worker forked from a multi-threaded caller inherits every lock another
 * thread held at the fork (an allocator's, a mutex, OpenSSL's) locked, with
 * no thread left to release it, and may hang on it forever. A pool
 * therefore forks a server once, when it is created (ideally before the
 * program starts other threads), and asks it for every worker later: the
 * server is a copy of the caller as it was at that moment and never runs
 * another thread, so what it forks inherits no lock held elsewhere. This is
 * Python's forkserver start method without the exec. */
#ifndef SP_FORKSERVER_H
#define SP_FORKSERVER_H

#include <sys/types.h>

struct sp_forkserver;

/* What a worker forked by the server runs. Never returns (ends with
 * _exit(); if it returns, the worker calls _exit(0)). index: as passed to
 * sp_forkserver_fork(); channel: the worker's end of its socket to the
 * caller (close-on-exec, listed in the worker's descriptor registry, so
 * process-backend calls made in the worker close it in their own workers).
 * It runs with the signal mask of the thread that called
 * sp_forkserver_start() and the caller's SIGCHLD disposition of that
 * moment, in its own process group, killed (SIGKILL) when the server ends
 * on Linux. Its memory is the server's: what the caller allocated after
 * sp_forkserver_start() is not there, and stdio buffers hold whatever the
 * caller's other threads had buffered but not flushed then, so it should
 * end with _exit(), not exit(). */
typedef void (*sp_fs_main_fn)(void *arg, unsigned index, int channel);

/* One worker as the caller sees it. The caller owns both descriptors and
 * closes them with sp_fds_close(). */
struct sp_fs_worker {
    pid_t pid;
    int fd;    /* the caller's end of the worker's channel: a SOCK_STREAM
                  AF_UNIX socket, close-on-exec, blocking, listed in the
                  descriptor registry (fds.c) */
    int pidfd; /* a pidfd for the worker (close-on-exec, listed), or -1
                  where the kernel has none */
};

/* Fork the server now, from the calling process. Each worker it forks
 * later runs main(arg, index, channel); main and arg must be valid in the
 * server, which is a copy of the caller as it is at this call. The caller's
 * stdio is flushed first. 0, or SP_EPIPE / SP_EFORK / SP_ENOMEM with
 * sp_last_error() set (nothing left behind). */
int sp_forkserver_start(struct sp_forkserver **out, sp_fs_main_fn main,
                        void *arg);

/* Ask the server for a new worker. Thread-safe (any number of caller
 * threads; requests are served one at a time, each in about the time of a
 * fork). 0 and *w filled, or SP_EFORK (the server's fork failed, or it has
 * SP_MAX_WORKERS workers not reaped yet: the message has the errno text),
 * SP_EPIPE (no socket / descriptors in the server), SP_ENOMEM (the caller
 * could not list the received descriptors; the worker was killed and
 * reaped) or SP_ESYSTEM (the server is gone: it died or was killed; every
 * later call fails so too) with sp_last_error() set. */
int sp_forkserver_fork(struct sp_forkserver *fs, unsigned index,
                       struct sp_fs_worker *w);

/* Wait for worker pid to end and give its wait status (as waitpid()).
 * The caller kills the worker first, or has seen its channel close. The
 * server reaps only when asked, so pid (and its process group id) stays
 * reserved until this call: the caller may kill(-pid, SIGKILL) safely
 * before. Thread-safe; the server is never blocked by a worker that has
 * not ended yet (the caller waits on a pidfd for it, or polls), so other
 * threads' requests go on meanwhile. 0, or SP_ESYSTEM with the message set
 * (the server is gone, or pid is not one of its unreaped workers). */
int sp_forkserver_reap(struct sp_forkserver *fs, pid_t pid, int *status);

/* Whether worker pid has ended, without waiting: 1 and *status (as
 * waitpid() gives it) when it has, and it is reaped; 0 when it still runs;
 * or SP_ESYSTEM as sp_forkserver_reap(). For callers without pidfds, whose
 * only other sign of a worker's end is its channel's, which a process the
 * worker started may keep open. Thread-safe. */
int sp_forkserver_poll(struct sp_forkserver *fs, pid_t pid, int *status);

/* The server's own pid (for tests and messages). */
pid_t sp_forkserver_pid(const struct sp_forkserver *fs);

/* End the server: every worker it forked and did not reap yet is killed
 * (SIGKILL to its process group) and reaped, the server exits and is
 * reaped by the caller (it is the caller's child), its socket is closed.
 * Nothing is left behind: no process, no zombie, no descriptor. The
 * workers' descriptors in struct sp_fs_worker stay the caller's to close.
 * Not concurrently with other calls on fs. NULL is a no-op. */
void sp_forkserver_stop(struct sp_forkserver *fs);

#endif
