/* SPDX-License-Identifier: MIT */
/*
 * Private header of libsimplepar-mpi: the wire format between ranks and
 * what the entry point (mpi.c), rank 0's scheduler (root.c) and the other
 * ranks' loop (worker.c) share.
 *
 *   mpi.c     sp_mpi_parallel(): the handshake (every rank's checks,
 *             rank 0's validation broadcast) and the call's course
 *   single.c  a communicator of one rank: rank 0 runs every task itself
 *   map.c     the copy of the map for every rank (map_everywhere)
 *   root.c    rank 0: batches out, replies in, outcomes recorded through
 *             the core's caller-driven run (lib/sp-collect.h)
 *   worker.c  every other rank: batches in, a local call on the local
 *             backend, replies out
 *   args.c    the argument stream of a batch: argument bytes and the
 *             results of the tasks' dependencies
 *   codec.c   the byte layout of replies and entries
 *
 * Messages (all on a duplicate of the caller's communicator, little-endian
 * fixed-width fields, never a pointer):
 *
 *   rank 0 -> rank w, TAG_WORK, in order:
 *     BATCH  u32 type, u32 batch id, u32 count, u32 flags,
 *            i64 rank 0's clock at sending (ns since the call began),
 *            i64 time left until the deadline (ns; -1 = no deadline),
 *            count x u32 task index,
 *            with flags & BATCH_RETRY: count x u32 attempt (1 = the
 *            first; what sp_ctx_attempt() gives the task), then count x
 *            u32 retry_on (the outcomes, bits 1 << sp_kind, after which
 *            rank 0 would try that attempt again; 0 = it is the last),
 *            with flags & BATCH_ARGS: u64 length of the argument stream.
 *     END    u32 type: nothing more for this rank in this call.
 *   rank 0 -> rank w, TAG_ARGS, right after a batch with BATCH_ARGS (set
 *     when one of its tasks has argument bytes or dependencies): the
 *     argument stream, in messages of CHUNK bytes (the last one shorter),
 *     then each of its large blobs (above INLINE_MAX bytes) in CHUNK
 *     messages of its own, in stream order. The stream, for each task of
 *     the batch in order: a blob (its sp_task.data bytes, rank 0's), u32
 *     its number of dependencies (sp_task.after entries), and one blob per
 *     dependency in 'after' order (the result bytes it ended OK with). A
 *     blob: u64 length, then, up to INLINE_MAX, the bytes and a NUL.
 *   rank 0 -> rank w, TAG_STOP: u32 type. The run stopped: start nothing
 *     more (sent at most once, always before END).
 *   rank w -> rank 0, one reply per batch, in the order the batches came:
 *     TAG_REPLY frames of at most FRAME_MAX bytes: u32 type, u32 batch
 *     id, u32 entry count, u32 flags (REPLY_LAST: the reply's last frame;
 *     REPLY_DROPPED: the batch was not run), then the entries. An entry
 *     whose result bytes are above INLINE_MAX is the last of its frame,
 *     and its bytes follow as TAG_DATA messages of CHUNK bytes (the last
 *     one shorter), received straight into the result's buffer. No single
 *     message is ever above FRAME_MAX (4 MiB), far below INT_MAX.
 *   entry: u32 index, u8 kind, u8 flags (ENTRY_*), u8 signal, u8 exit
 *     status, i32 code, u32 worker (rank-local), i64 start, i64 end (ns,
 *     rank 0's clock), u32 message length, u32 attempt, u64 data length,
 *     message bytes, with ENTRY_STORY the earlier attempts (u32 count, at
 *     most attempt - 1; then each: u8 kind, u8 flags (ENTRY_TASK_CODE,
 *     ENTRY_EXITED), u8 signal, u8 exit status, i32 code, u32 worker
 *     (global), u32 message length, i64 start, i64 end, message bytes),
 *     data bytes when inline. A message is followed by a NUL when it is
 *     not empty. attempt: in a reply, the attempt the batch named (0 =
 *     never started); in the map, the entry's attempts.
 *
 * The same entry layout carries the finished map from rank 0 to every
 * rank (sp_mpi_options.map_everywhere), in broadcast frames; only there
 * do entries have a story (ENTRY_STORY: more than one attempt).
 *
 * Retries are rank 0's: its run decides them and hands a task out again
 * (to any rank) with the attempt's number; the ranks' local calls never
 * retry (their options and rows carry no retries, mpi.c strips them).
 */
#ifndef SP_MPI_PRIVATE_H
#define SP_MPI_PRIVATE_H

#include "simplepar/mpi.h"
#include "sp-collect.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    TAG_WORK = 1,  /* rank 0 -> w: BATCH, END */
    TAG_STOP = 2,  /* rank 0 -> w: STOP */
    TAG_REPLY = 3, /* w -> rank 0: reply frames */
    TAG_DATA = 4,  /* w -> rank 0: result bytes above INLINE_MAX */
    TAG_ARGS = 5,  /* rank 0 -> w: a batch's argument stream */
};

enum { MSG_BATCH = 0x53504231, MSG_END = 0x5350454e, MSG_STOP = 0x53505354 };
enum { MSG_REPLY = 0x53505250, MSG_MAP = 0x5350414d };

enum { BATCH_ARGS = 1, BATCH_RETRY = 2 };
enum { REPLY_LAST = 1, REPLY_DROPPED = 2 };
enum {
    ENTRY_TASK_CODE = 1,   /* code is the task's own number */
    ENTRY_NOT_STARTED = 2, /* never started on its rank */
    ENTRY_HAS_DATA = 4,    /* the task stored bytes (maybe 0 of them) */
    ENTRY_OUT_OF_LINE = 8, /* the bytes follow in TAG_DATA chunks */
    ENTRY_EXITED = 16,     /* CRASHED by exit: exit status is valid */
    ENTRY_STORY = 32,      /* the earlier attempts follow the message */
};

#define FRAME_MAX ((size_t)4 << 20)   /* largest message of any kind */
#define CHUNK ((size_t)4 << 20)       /* result bytes per TAG_DATA message */
#define INLINE_MAX ((size_t)64 << 10) /* larger result bytes go apart */
#define BATCH_HEAD 32                 /* bytes before a batch's indices */
#define FRAME_HEAD 16                 /* bytes before a frame's entries */
#define ENTRY_HEAD 48                 /* bytes before an entry's message */
#define PAST_HEAD                                                              \
    32                       /* bytes before an earlier attempt's              \
                                message */
#define AUTO_BATCH_MAX 4096u /* automatic batches stay below */
/* Longest message carried (the core keeps SP_MAX_MESSAGE bytes and a
 * "..."), so an entry always fits one frame with its inline bytes. */
#define MSG_MAX ((size_t)2 << 20)

/* Little-endian fixed-width fields. */
static inline void put_u32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}
static inline void put_u64(unsigned char *p, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}
static inline uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int k = 3; k >= 0; k--)
        v = v << 8 | p[k];
    return v;
}
static inline uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = v << 8 | p[k];
    return v;
}

/* One entry as it travels. */
struct wire_entry {
    uint32_t index;
    uint8_t kind, flags, signo, exit_status;
    int32_t code;
    uint32_t worker;
    int64_t start, end; /* ns, rank 0's clock */
    const char *msg;
    uint32_t msg_len;
    const void *data;
    uint64_t data_len;
    uint32_t attempt; /* see the entry's layout above */
    /* ENTRY_STORY: npast earlier attempts. Written from the local entry
     * `story` (sp_entry_attempt()); read at past_raw, in the frame. */
    uint32_t npast;
    const sp_entry *story;
    int64_t story_shift; /* added to its times (ns), as to the entry's */
    const unsigned char *past_raw;
};

/* codec.c: the bytes an entry takes inline in a frame. */
size_t wire_entry_size(const struct wire_entry *e);
/* Write e at p (wire_entry_size() bytes); its data inline unless
 * ENTRY_OUT_OF_LINE is set. */
void wire_entry_put(unsigned char *p, const struct wire_entry *e);
/* Read an entry from [p, end): its size, or 0 when malformed. msg and data
 * point into the frame. */
size_t wire_entry_get(const unsigned char *p, const unsigned char *end,
                      struct wire_entry *e);
void wire_frame_head(unsigned char *p, uint32_t type, uint32_t id,
                     uint32_t count, uint32_t flags);

/* A rank's local entry (of a simple_parallel() map) as a wire entry:
 * times moved onto rank 0's clock by adding `shift_ns` to the local ns
 * since the local call began; its attempts and earlier attempts as the
 * entry tells them (a local call's entry: 1 or 0, no story). The entry
 * must outlive w. */
void wire_from_entry(const sp_entry *le, uint32_t index, int64_t shift_ns,
                     struct wire_entry *w);
/* A wire entry as an outcome for sp__run_record(); worker_base is added
 * to a started entry's worker. With ENTRY_STORY and past not NULL (room
 * for SP_MAX_RETRIES), o->past points to the earlier attempts, decoded
 * there (their messages point into the frame). */
void wire_to_outcome(const struct wire_entry *w, uint32_t worker_base,
                     sp__outcome *o, sp__outcome *past);

/* args.c, rank 0: whether a row needs the argument stream. */
bool args_needed(const sp_task *t);
/* Where args_write() puts the stream: put() appends bytes to it, big()
 * sends a large blob after it (from where it lies, which stays valid until
 * the run ends). Both return 0 or an error code with the message set. */
struct args_sink {
    int (*put)(void *user, const void *p, size_t n);
    int (*big)(void *user, const void *p, size_t n);
    void *user;
};
/* Write the argument stream of the batch of count tasks idx, from rank
 * 0's table and run, then its large blobs: 0, or the first error a sink
 * function returned. */
int args_write(const sp_task *tasks, sp__run *r, const uint32_t *idx,
               uint32_t count, const struct args_sink *s);

/* args.c, the other ranks: one batch's arguments as received. */
struct args_blob {
    const unsigned char *p; /* NUL-terminated */
    size_t len;
};
struct args {
    unsigned char *stream; /* the stream, len bytes (room for cap) */
    size_t len, cap;
    struct args_blob *blobs; /* per task: its data, then its dependencies */
    size_t blobs_cap;
    size_t *off; /* count + 1: task k's blobs start at off[k] */
    size_t off_cap;
    unsigned char **big; /* the large blobs' own buffers */
    size_t nbig, big_cap;
    uint32_t count; /* tasks; 0 until a stream was read whole */
};
/* Receive the argument stream of a batch of count tasks (len bytes) and
 * its large blobs: 0, or an error with the message set (SP_ESYSTEM: MPI
 * failed; SP_ENOMEM, SP_EPROTO: the messages were taken as far as they
 * could be, the batch cannot run). scratch: CHUNK bytes. */
int args_read(struct args *a, MPI_Comm comm, unsigned char *scratch,
              uint32_t count, uint64_t len);
/* Task k's argument bytes (NULL when none). */
const void *args_data(const struct args *a, uint32_t k, size_t *len);
/* sp_dep_result() for task k of the batch, whose row is row (this rank's
 * copy, the same as rank 0's by the handshake's hash). */
const void *args_dep(const struct args *a, const sp_task *row, uint32_t k,
                     const char *key, size_t *len);
void args_free(struct args *a);

/* mpi.c: row src as a rank's local call runs it: no dependencies (rank
 * 0's run met them), no argument bytes (they come from rank 0), and no
 * retries (rank 0 decides them): a policy is copied to *pol with retries
 * SP_NO_RETRIES, the rest of it (time_limit) kept. */
void sp_mpi_local_row(const sp_task *src, sp_task *row, sp_task_policy *pol);
/* mpi.c: sp_spawn() in a task of sp_mpi_parallel(): refused. */
int sp_mpi_no_spawn(void *user, size_t i, const sp_task *task);
/* mpi.c: the message of sp_last_error() without its "SP_NAME: " prefix,
 * which sp__set_error() adds again (on another rank, or with a prefix). */
const char *sp_mpi_bare_error(int code);

/* What the handshake settles, the same on every rank. */
struct mpi_call {
    MPI_Comm comm; /* the duplicate */
    int rank, size;
    const sp_task *tasks;
    size_t n;
    sp_options local; /* this rank's options for its local calls */
    uint32_t *wbase;  /* per rank: its first global worker index */
    uint32_t *wcap;   /* per rank: its most local workers (0 for rank 0) */
    unsigned workers; /* total */
    /* Rank 0: per rank, the local workers it starts a call with (what its
     * batches are sized for), and their total. */
    uint32_t *wstart;
    uint64_t wstart_total;
    unsigned batch;     /* rank 0's sp_mpi_options */
    unsigned inflight;  /* idem */
    bool stoppable;     /* fail-fast or on_done: ranks poll for STOP */
    bool retries;       /* rank 0: a task of the table may be retried */
    unsigned char *buf; /* FRAME_MAX bytes for messages (>= 2 ranks) */
};

/* root.c: rank 0's part of a run on >= 2 ranks; r is the run that
 * sp__run_begin() started. Returns 0, or SP_ESYSTEM when MPI failed (the
 * outcomes it could not collect are recorded as lost). */
int sp_mpi_root(struct mpi_call *c, sp__run *r);
/* worker.c: a rank's part (rank >= 1) until END; 0 or SP_ESYSTEM. */
int sp_mpi_worker(struct mpi_call *c);
/* worker.c: the options of a local call whose deadline is `left_ns` away
 * (-1 = none): 0, or -1 when the deadline has passed (run nothing). */
int sp_mpi_local_opts(const struct mpi_call *c, int64_t left_ns, sp_options *o);

/* single.c: rank 0's part of a run on a communicator of one rank; r is
 * the run sp__run_begin() started. Always 0: every key ends in r. */
int sp_mpi_single(struct mpi_call *c, sp__run *r);
/* map.c: rank 0 broadcasts its finished map (buf: FRAME_MAX bytes); every
 * other rank receives it into the run r (begun for the copy; NULL when
 * that failed with the error rc) and ends it into *out. 0 or an error. */
int sp_mpi_send_map(MPI_Comm comm, unsigned char *buf, const sp_results *res);
int sp_mpi_recv_map(struct mpi_call *c, sp__run *r, int rc, sp_results **out);

/* mpi.c: set sp_last_error() for a failed MPI call; returns SP_ESYSTEM. */
int sp_mpi_error(const char *call, int err);
/* Nanoseconds of CLOCK_MONOTONIC. */
int64_t sp_mpi_clock(void);

#endif /* SP_MPI_PRIVATE_H */
