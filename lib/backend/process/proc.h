/* SPDX-License-Identifier: MIT */
/* Private to the process backend: the mapping the parent shares with its
 * workers, and the parent's view of each worker.
 *
 *   process.c  the backend's row: start, wait, finish, stop
 *   spawn.c    fork a worker into a slot, kill it, reap it, name its end
 *   worker.c   the child's side: claim, run, send the outcome, crash report
 *   ring.c     the per-worker ring of frames in the shared mapping (ring.h)
 *   loop.c     the parent's event loop: pipes, rings, limits, outcomes
 */
#ifndef SP_PROC_H
#define SP_PROC_H

#include "../../sp-private.h"
#include "../../sp-wire.h"
#include "ring.h"

#include <poll.h>
#include <sys/uio.h>

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
    _Alignas(64) _Atomic uint64_t next; /* the scheduler's static cursor */
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
enum { KILL_NONE, KILL_TIMEOUT, KILL_DEADLINE, KILL_PROTO, KILL_ERROR };

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
    char error_msg[128]; /* KILL_ERROR: the system call that failed */
    unsigned cur;        /* worker whose frames are being decoded */
    struct pollfd *pfd;  /* poll() set, one per worker */
    unsigned *who;       /* worker of each pfd entry */
};

/* Worker k's ring in the shared mapping (ring.h). */
static inline struct sp_ring sp_proc_ring(const struct prun *pr, unsigned k)
{
    struct slot *s = &pr->sh->slots[k];
    return (struct sp_ring){
        .head = &s->head,
        .tail = &s->tail,
        .buf = (unsigned char *)&pr->sh->slots[pr->nw] + (size_t)k * RING,
        .size = RING,
    };
}
/* loop.c: take the frames waiting in worker k's ring. */
void sp_proc_ring_take(struct prun *pr, unsigned k);

/* worker.c */
_Noreturn void sp_proc_worker_main(struct prun *pr, unsigned k, int wfd);

/* spawn.c */
int sp_proc_spawn(struct prun *pr, unsigned k);
void sp_proc_kill(struct pworker *w, int why);
void sp_proc_reap(struct prun *pr, unsigned k, int *have_status, int *status);
void sp_proc_describe_end(struct prun *pr, unsigned k, int have_status,
                          int status, char *out, size_t outlen,
                          struct sp_outcome *o);

/* loop.c */
void sp_proc_event_loop(struct prun *pr);
void sp_proc_feed(struct prun *pr, unsigned k, struct sp_wire_dec *d,
                  const unsigned char *buf, size_t len);
void sp_proc_outcome(struct prun *pr, size_t i, sp_kind kind, int code,
                     uint64_t start, unsigned worker, const char *msg,
                     uint8_t signo, uint8_t exit_status);

#endif
