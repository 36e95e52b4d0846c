/* SPDX-License-Identifier: MIT */
/* Private to the process backend: the mapping the parent shares with its
 * workers, the parent's view of each worker, and the descriptor registry.
 *
 *   process.c  the backend's row: start, wait, finish, stop
 *   spawn.c    fork a worker into a slot, kill it with its process group,
 *              reap it, name how it ended
 *   fds.c      every descriptor the library owns, closed in each child
 *   worker.c   the child's side: claim, run, send the outcome, ask for work
 *   ring.c     the per-worker ring of frames in the shared mapping (ring.h)
 *   shm.c      large results in sealed memfds, mapped by the parent
 *   loop.c     the parent's event loop: channels, pidfds, rings, limits,
 *              commands to idle workers, outcomes
 *   forkserver.c  the single-threaded server that forks a pool's workers
 *   ppool.c    process pools: workers that outlive a call, leased by each
 *              call in turn (ppool.h); with ppool-lease.c (leasing and
 *              giving back), ppool-batch.c (a call's batches) and
 *              ppool-call.c (a call's loop), ppool-private.h between them
 *
 * A one-shot call (simple_parallel()) forks its workers and maps its own
 * shared memory; a pool call leases the pool's running workers, whose slots
 * and rings live in the pool's mapping: the functions below serve both,
 * reaching worker k's slot and ring through sp_proc_slot() and
 * sp_proc_ring().
 */
#ifndef SP_PROC_H
#define SP_PROC_H

#include "../../sp-private.h"
#include "../../sp-wire.h"
#include "ring.h"

#include "../thread/tpool.h"

#include <poll.h>
#include <sys/uio.h>

_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
               "the shared mapping needs address-free (lock-free) atomics");

/* What a worker is doing with the task in its slot. The parent decides
 * from it what a worker's death means for that task. */
enum {
    SLOT_IDLE = 0,    /* no task */
    SLOT_CLAIMED = 1, /* claimed, callback not started: may run elsewhere */
    SLOT_RUNNING = 2, /* callback running: time limits apply */
    SLOT_SENDING = 3, /* callback returned, its frame is being sent */
};

/* One worker's slot in the shared mapping. */
struct slot {
    _Alignas(64) _Atomic uint32_t current; /* task index + 1, 0 = none */
    _Atomic uint32_t phase;                /* SLOT_* */
    _Atomic uint32_t attempt;              /* of the task in current */
    _Atomic uint64_t started; /* CLOCK_MONOTONIC ns: claim, then start */
    _Atomic int signo;        /* fatal signal the worker caught, 0 = none */
    _Atomic int send_err;     /* errno of a send the task's doings broke */
    /* Pool workers: the positions of the batch the worker was given that
     * it has not claimed yet, lo | hi << 32 (the worker claims the front,
     * the parent may take back the rest). */
    _Atomic uint64_t range;
    _Atomic int setup;    /* pool workers: SETUP_* */
    _Atomic int setup_rc; /* what a failed set-up returned */
    /* The ring: bytes ever written by the worker, and ever consumed by the
     * parent; the frames in between are waiting. */
    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) _Atomic uint64_t tail;
};

/* A pool worker's set-up, as its slot tells. */
enum { SETUP_RUNNING = 0, SETUP_OK = 1, SETUP_FAILED = 2 };

/* A pool call's words shared with the workers it leases (the pool's
 * mapping holds one per worker: a call that holds workers holds one). */
struct prslot {
    _Alignas(64) _Atomic int stop; /* enum sp_stop */
};

struct shared {
    _Atomic int stop; /* enum sp_stop, shared by parent and workers */
    /* The smallest index in the parent's ready heap (UINT32_MAX = empty):
     * a worker asks the parent for work instead of claiming from the
     * counter when a lower index is ready there (table order first). */
    _Atomic uint32_t heap_min;
    _Alignas(64) _Atomic uint64_t next; /* the scheduler's static cursor */
    struct slot slots[];
    /* then one ring of RING bytes per slot */
};

#define RING (64u * 1024)
/* A task that ran at least this long reports over its channel at once. */
#define SLOW_NS 50000u
/* The parent looks at the rings at least this often (ms). */
#define SCAN_MS 2
#define READ_BUF (256 * 1024)
/* How long a worker whose channel ended may take to exit, when its exit
 * cannot be watched with a pidfd (ms). */
#define GRACE_MS 2000u
/* A result of at least this many bytes goes through a sealed memfd that
 * the caller maps (shm.c) instead of the channel. Below it a memfd's fixed
 * costs (create, seal, pass, map, unmap) are more than the channel's
 * copies; above it the socket's buffer (about 200 KiB) fills and each
 * result costs round trips. Measured on the 2-CPU machine of
 * docs/benchmarks.md when quiet (2026-11-24, a process pool, 4 results per
 * call), the memfd path took 2.3x the channel's time at 96 KiB, 1.3x at
 * 128, 0.84x at 192, 0.54x at 256 KiB, 0.29-0.39x from 384 KiB to 16 MiB
 * and 0.43-0.49x up to 256 MiB. (An earlier measurement on a loaded
 * machine had put the crossing at 32 MiB.) Peak RSS is the same either way
 * for sp_set_result_owned(): the caller holds the bytes once, the worker
 * its own buffer. */
#define SHM_MIN ((size_t)256 << 10)
/* The threshold in force: SHM_MIN; white-box tests lower it to exercise
 * the path with small results. shm.c. */
extern size_t sp_proc_shm_min;
/* Descriptors a worker's channel may have delivered ahead of the frames
 * that name them (one per frame in practice). */
#define SHM_QUEUE 4
/* Exit status of a worker whose channel the task closed or replaced. */
#define EXIT_CHANNEL 121

/* Why the parent killed a worker. */
enum {
    KILL_NONE,
    KILL_TIMEOUT,
    KILL_DEADLINE,
    KILL_PROTO,
    KILL_ERROR,
    KILL_CANCEL, /* still running SP_CANCEL_GRACE_MS after a cancel */
};

/* A command waiting to be written to a worker: its header, then `len`
 * payload bytes from `data` (borrowed from the map, or owned). */
struct pout {
    struct pout *next;
    unsigned char hdr[SP_WIRE_CMD];
    const unsigned char *data;
    size_t len, off; /* bytes of header + payload written so far: off */
    void *owned;     /* freed once written */
};

struct pworker {
    pid_t pid;      /* 0 = no worker in this slot */
    int fd;         /* parent's end of the channel; -1 once closed */
    int pidfd;      /* readable when the worker exits; -1 = none */
    int kill_why;   /* KILL_* */
    uint64_t limit; /* KILL_TIMEOUT: the limit it ran past, ns */
    bool own_limit; /* KILL_TIMEOUT: the limit is its row's time_limit */
    bool idle;      /* asked for work; waits for a command */
    bool ready;     /* pool workers: its set-up finished (it said IDLE) */
    struct pout *out, *out_tail; /* commands not yet written */
    char proto_err[160];
    struct sp_wire_dec dec;  /* the channel's byte stream */
    struct sp_wire_dec rdec; /* the ring's byte stream */
    /* Memfds received on the channel, in order, for SP_WIRE_SHM frames
     * not yet decoded (-1: one that arrived but could not be kept);
     * listed in the registry. shm.c. */
    int shm_fd[SHM_QUEUE];
    unsigned shm_n;
};

struct prun {
    struct sp_run *run;
    struct shared *sh;
    size_t sh_size;
    unsigned nslots;         /* slots in the mapping (the rings follow) */
    const unsigned *slot_of; /* worker k's slot; NULL: slot k */
    struct sp_ppool *pool;   /* a pool call's pool; NULL: one-shot */
    struct pworker *pw;
    unsigned nw;
    unsigned used;      /* slots ever used: the workers reported */
    unsigned alive;     /* workers not yet reaped */
    unsigned char *buf; /* read buffer */
    int spawn_err;      /* why the last spawn failed, 0 = none did */
    int spawn_blocked;  /* a spawn failed: retry once a worker ends */
    char spawn_msg[160];
    char error_msg[128]; /* KILL_ERROR: the system call that failed */
    unsigned cur;        /* worker whose frames are being decoded */
    bool cur_ring;       /* ... from its ring (else its channel) */
    pid_t parent;        /* for workers: the process to outlive */
    struct pollfd *pfd;  /* poll() set, two per worker */
    unsigned *who;       /* worker of each pfd entry */
};

/* Worker k's slot in the shared mapping. */
static inline struct slot *sp_proc_slot(const struct prun *pr, unsigned k)
{
    return &pr->sh->slots[pr->slot_of ? pr->slot_of[k] : k];
}

/* Worker k's ring in the shared mapping (ring.h). */
static inline struct sp_ring sp_proc_ring(const struct prun *pr, unsigned k)
{
    unsigned at = pr->slot_of ? pr->slot_of[k] : k;
    struct slot *s = &pr->sh->slots[at];
    return (struct sp_ring){
        .head = &s->head,
        .tail = &s->tail,
        .buf = (unsigned char *)&pr->sh->slots[pr->nslots] + (size_t)at * RING,
        .size = RING,
    };
}

/* A pool mapping's size for n workers: the header, n slots, n rings, n
 * call slots (struct prslot) after the rings. */
static inline size_t sp_proc_map_size(unsigned n)
{
    return sizeof(struct shared) +
           (size_t)n * (sizeof(struct slot) + RING + sizeof(struct prslot));
}

/* Call slot r of a pool mapping of n workers. */
static inline struct prslot *sp_proc_prslot(struct shared *sh, unsigned n,
                                            unsigned r)
{
    return (struct prslot *)((unsigned char *)&sh->slots[n] +
                             (size_t)n * RING) +
           r;
}

/* fds.c: the registry. Lock around creating descriptors and forking. */
void sp_fds_lock(void);
void sp_fds_unlock(void);
int sp_fds_add(int fd);   /* under the lock; -1 when it cannot be listed */
void sp_fds_del(int fd);  /* under the lock */
int sp_fds_close(int fd); /* unlist and close, taking the lock */
/* In a freshly forked child, with the lock held by the fork: close every
 * listed descriptor but keep, list only keep, release the lock. */
void sp_fds_child(int keep);

/* worker.c */
_Noreturn void sp_proc_worker_main(struct prun *pr, unsigned k, int fd);
/* What a pool worker needs, read in the fork server's copy of the pool. */
struct sp_pw_conf {
    struct shared *sh; /* the pool's mapping */
    unsigned nslots;   /* its workers */
    sp_setup_fn setup;
    sp_teardown_fn teardown;
    void *user;
};
/* A pool worker's life (ppool.c starts it through the fork server): set-up,
 * then batches of tasks until EXIT (tear-down) or the caller is gone. */
_Noreturn void sp_proc_pool_worker_main(const struct sp_pw_conf *c,
                                        unsigned index, int fd);
/* A pool batch's payload: this fixed part, then each row: its index (4),
 * its attempt (4, 1 for the first), the bytes of its policy (4: 0, or
 * sizeof(sp_task_policy)), a RUN row (SP_WIRE_RUN_FIXED, key, data), then
 * the policy. Both ends are the same program (proc.h's rule for frames). */
struct sp_proc_batch {
    uint32_t rs;    /* the call's slot (struct prslot) */
    uint32_t wid;   /* the worker's number in the call */
    uint32_t count; /* rows */
    uint32_t pad;
    uint64_t t0, deadline, task_timeout; /* the call's, ns */
    sp_options opts; /* the call's: retries, policy (pointers unused) */
};
#define SP_PROC_BATCH_FIXED sizeof(struct sp_proc_batch)
#define SP_PROC_ROW_FIXED (12 + SP_WIRE_RUN_FIXED)

/* shm.c. Worker: a sealed memfd holding len bytes of data and a NUL, or
 * -1 (send the bytes in the stream). */
int sp_proc_shm_fill(const void *data, size_t len);
/* Worker: one sendmsg() of iov passing descriptor `pass`: bytes sent (the
 * descriptor went with the first), or -1 with errno. */
ssize_t sp_proc_send_fd(int sock, const struct iovec *iov, int cnt, int pass);
/* Parent: read worker k's channel into pr->buf (as read() would), queuing
 * descriptors that came with the bytes. */
ssize_t sp_proc_recv(struct prun *pr, unsigned k);
/* Parent: map the result of an SP_WIRE_SHM frame of worker k (len bytes)
 * from its next queued descriptor. 0 with *data the bytes: the mapping
 * (*mapped; release it with sp_result_mapped), or a copy in malloc'd
 * memory where the caller could not map it (free it); else SP_EPROTO (a
 * forged or broken frame), SP_ENOMEM or SP_ESYSTEM (the caller's own
 * trouble), with why said. */
int sp_proc_shm_map(struct prun *pr, unsigned k, uint64_t len,
                    unsigned char **data, bool *mapped, char *why,
                    size_t whylen);
/* Parent: close the descriptors still queued on w. */
void sp_proc_shm_drop(struct pworker *w);

/* spawn.c */
int sp_proc_spawn(struct prun *pr, unsigned k);
void sp_proc_kill(struct pworker *w, int why);
void sp_proc_kill_group(const struct pworker *w);
void sp_proc_reap(struct prun *pr, unsigned k, int *have_status, int *status);
void sp_proc_describe_end(struct prun *pr, unsigned k, int have_status,
                          int status, char *out, size_t outlen,
                          struct sp_outcome *o);

/* loop.c */
void sp_proc_event_loop(struct prun *pr);
/* Write what is queued for worker k, as far as its socket takes it. */
void sp_proc_flush(struct prun *pr, unsigned k);
/* Read what worker k sent over its channel, at most `budget` bytes (up to
 * its end, or only what is there now); returns 1 when the channel ended or
 * is unusable. */
int sp_proc_drain(struct prun *pr, unsigned k, size_t budget, bool to_end);
/* Worker k was reaped (have_status, status: as waitpid() gave them): kill
 * what is left of its process group, take what it sent, close its
 * descriptors and account for the task in its slot. */
void sp_proc_worker_gone(struct prun *pr, unsigned k, int have_status,
                         int status);
/* Every idle thread of the shared thread pool (simple_parallel()'s
 * threads, kept for 2 s) makes each fork() dearer: the child copies its
 * stack's mappings, and glibc's fork handler writes to every other
 * thread's descriptor in the child (a copy-on-write fault per thread per
 * fork). Measured on 2 CPUs: after a call on 1,000 threads, a one-shot
 * call of 1,000 workers took 0.36-0.44 s instead of 0.09-0.13 s; with 100
 * idle threads, 1,000 sleeps on 100 workers 0.16 s instead of 0.11 s
 * (120 more page faults per fork). Ending an idle thread costs about
 * 45 us (0.047 s for 984), about what it adds to 50 forks. So a call about
 * to fork at least SHED_FORKS workers (or a pool of that many, whose fork
 * server every worker copies) first ends every idle thread but the
 * SHED_KEEP that worked last: the same calls then took 0.17-0.20 s
 * (shedding included) and 0.13-0.14 s. */
#define SHED_FORKS 48u
#define SHED_KEEP 16u
static inline void sp_proc_shed(size_t forks)
{
    if (forks >= SHED_FORKS)
        sp_tpool_shed(SHED_KEEP);
}
/* Milliseconds poll() may sleep before a limit or a ring scan is due. */
int sp_proc_poll_timeout(struct prun *pr, uint64_t now);
/* The poll set of pr's live workers, in pr->pfd (what each has queued is
 * written first, as far as its socket takes it): its channel (POLLIN, and
 * POLLOUT while output waits) and its pidfd; pr->who names the worker of
 * each entry, with SP_PROC_WHO_PIDFD set for a pidfd. Returns how many. */
#define SP_PROC_WHO_PIDFD 0x80000000u
nfds_t sp_proc_poll_set(struct prun *pr);
/* What poll() (returning r) found in that set: every live worker's ring is
 * read, then each ready channel flushed and drained. A worker whose pidfd
 * fired is gone: ended(arg, k) (it reaps). A channel that ended (the
 * worker exits or was killed) is closed and closed(arg, k) called when it
 * is not NULL; then, for a worker without a pidfd, ended(arg, k). */
void sp_proc_poll_events(struct prun *pr, nfds_t nfds, int r,
                         void (*closed)(void *arg, unsigned k),
                         void (*ended)(void *arg, unsigned k), void *arg);
/* Kill workers whose task ran past the deadline or its time limit. */
void sp_proc_enforce_limits(struct prun *pr, uint64_t now);
/* Queue a command for worker k (header, then payload): borrowed bytes, or
 * owned ones (freed once written). 0 or SP_ENOMEM. */
int sp_proc_send(struct prun *pr, unsigned k, const struct sp_wire_cmd *c,
                 const void *data, void *owned);
/* Drop what is queued for worker k (it is gone). */
void sp_proc_out_free(struct pworker *w);
void sp_proc_feed(struct prun *pr, unsigned k, struct sp_wire_dec *d,
                  const unsigned char *buf, size_t len);
void sp_proc_ring_take(struct prun *pr, unsigned k);
void sp_proc_outcome(struct prun *pr, size_t i, sp_kind kind, int code,
                     uint64_t start, unsigned worker, const char *msg,
                     uint8_t signo, uint8_t exit_status);

#endif
