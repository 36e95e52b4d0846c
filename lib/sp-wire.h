/* SPDX-License-Identifier: MIT */
/* The wire format between the process backend's parent and its workers.
 *
 * Worker to parent: frames, each a fixed 48-byte header followed by the
 * message and the result bytes (or, for a large result, no bytes: they
 * come in a memfd, SP_WIRE_SHM). A RESULT frame carries one task's outcome;
 * an IDLE frame (no message, no data) says the worker found nothing to
 * claim and waits for a command; a DEPREQ frame asks for the result of
 * the dependency whose key is its message; a SPAWN frame adds a task (its
 * key as the message, the rest of the row packed as its data).
 *
 * Parent to worker: commands, each a fixed 24-byte header and `len` bytes
 * of payload: RUN task i (a spawned task's row as payload), CLAIM (go back
 * to the shared counter), EXIT, and the replies DEP (the dependency's
 * result bytes, or an error code and its message) and SPAWNED (0, or an
 * error code and its message). A process pool's workers, which outlive a
 * call, get BATCH instead of RUN and CLAIM: the rows of the tasks to run
 * (the backend's proc.h describes them); they say IDLE when set up and
 * after each batch, and leave at EXIT.
 *
 * Both ends are the same program on the same machine, so fields are in
 * host byte order; the magics catch a stream that is out of step.
 *
 * The decoder is incremental (bytes arrive in any split) and trusts
 * nothing: a malformed, truncated or oversized frame is reported, never
 * acted on, and memory grows only as bytes actually arrive. */
#ifndef SP_WIRE_H
#define SP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "simplepar.h"

#define SP_WIRE_MAGIC 0x31465053u /* "SPF1" little-endian */
#define SP_WIRE_HEADER 48
#define SP_WIRE_MAX_MSG SP_MAX_MESSAGE       /* longest message */
#define SP_WIRE_MAX_DATA ((uint64_t)1 << 40) /* largest result: 1 TiB */
/* sp_wire_header.flags: the code is the task's own number. */
#define SP_WIRE_TASK_CODE 1u
/* sp_wire_header.flags, RESULT frames: the data_len result bytes do not
 * follow in the stream; they are in a sealed memfd passed with the frame's
 * first byte (SCM_RIGHTS over the worker's channel, never the ring), which
 * the receiver maps (the process backend's shm.c). The decoder delivers
 * such a frame with data NULL and data_len the result's length. */
#define SP_WIRE_SHM 2u

/* sp_wire_header.type */
enum {
    SP_WIRE_RESULT = 0,
    SP_WIRE_IDLE = 1,
    SP_WIRE_DEPREQ = 2,
    SP_WIRE_SPAWN = 3,
};

/* A SPAWN frame's data: this fixed part, then the argument bytes, then the
 * after keys, each NUL-terminated, then the row's sp_task_policy when it
 * has one. */
#define SP_WIRE_SPAWN_FIXED 28 /* fn 8, arg 8, data_len 8, after count 4 */

/* Commands, parent to worker. */
#define SP_WIRE_CMD_MAGIC 0x31435053u /* "SPC1" little-endian */
#define SP_WIRE_CMD 24
enum {
    SP_CMD_RUN = 1,     /* index: the task; payload: a spawned row or none */
    SP_CMD_EXIT = 2,    /* leave */
    SP_CMD_CLAIM = 3,   /* claim from the shared counter again */
    SP_CMD_DEP = 4,     /* code 0: payload = result bytes; else message */
    SP_CMD_SPAWNED = 5, /* code 0, or an error code with its message */
    SP_CMD_BATCH = 6,   /* pool workers: payload = a batch of rows */
};
/* A RUN command's payload for a spawned task: this fixed part, then the
 * key (NUL-terminated), then the argument bytes, then its sp_task_policy
 * when it has one. */
#define SP_WIRE_RUN_FIXED 28 /* fn 8, arg 8, key_len 4, data_len 8 */
struct sp_wire_cmd {
    uint32_t magic;
    uint32_t type;  /* SP_CMD_* */
    uint32_t index; /* RUN: the task */
    int32_t code;   /* DEP, SPAWNED: 0 or an sp_error; RUN: the attempts
                       made before this one (retries), 0 .. SP_MAX_RETRIES */
    uint64_t len;   /* payload bytes that follow */
};
void sp_wire_cmd_encode(unsigned char *out, const struct sp_wire_cmd *c);
/* 0, or SP_EPROTO for a header that is not well-formed for max_index. */
int sp_wire_cmd_decode(struct sp_wire_cmd *c, const unsigned char *in,
                       uint32_t max_index);

struct sp_wire_header {
    uint32_t magic;
    uint32_t index;
    int32_t code;
    uint8_t kind;
    uint8_t flags; /* SP_WIRE_TASK_CODE */
    uint8_t type;  /* SP_WIRE_RESULT, SP_WIRE_IDLE */
    uint8_t pad;
    uint64_t t_start; /* ns since the call started */
    uint64_t t_end;
    uint32_t msg_len;
    uint32_t reserved;
    uint64_t data_len;
};

/* One decoded frame. msg is NUL-terminated (or NULL when msg_len is 0);
 * data is NUL-terminated (or NULL when data_len is 0). Ownership of msg and
 * data passes to the frame callback. */
struct sp_wire_frame {
    struct sp_wire_header h;
    char *msg;
    unsigned char *data;
    /* The receiver ran out of memory for this frame's message or result:
     * its bytes were read and dropped (msg and data are NULL), so the
     * stream stays in step and only this task is affected. */
    int dropped;
};

/* Owns f->msg and f->data from the call on, whatever it returns. Return 0
 * to go on, or a negative code to stop decoding with an error. */
typedef int (*sp_wire_frame_fn)(struct sp_wire_frame *f, void *arg);

struct sp_wire_dec {
    uint32_t max_index; /* frames must name an index below this */
    int state;          /* 0 header, 1 message, 2 data */
    size_t have;        /* bytes of the current part received */
    unsigned char hdr[SP_WIRE_HEADER];
    struct sp_wire_frame f;
    size_t cap;         /* bytes allocated for f.data */
    char err[160];      /* why decoding stopped */
    uint32_t bad_index; /* index named by the frame at fault, or UINT32_MAX */
    /* Resynchronise after bytes that are not a valid header (instead of
     * failing): skip to the next place a valid header starts. Set by the
     * process backend for a worker's channel, where a task may have written
     * stray bytes between the worker's frames. */
    bool resync;
    uint64_t skipped; /* stray bytes skipped so far */
};

void sp_wire_dec_init(struct sp_wire_dec *d, uint32_t max_index);
/* Free whatever a partial frame holds. */
void sp_wire_dec_free(struct sp_wire_dec *d);
/* Feed bytes; frames are delivered to fn as they complete. Returns 0, or
 * SP_EPROTO / fn's error with d->err set; after an error the decoder must
 * not be fed again. Running out of memory is not an error: the frame is
 * delivered with `dropped` set. */
int sp_wire_feed(struct sp_wire_dec *d, const void *buf, size_t len,
                 sp_wire_frame_fn fn, void *arg);
/* Whether a frame is partly received (a stream that ends here is
 * truncated). */
int sp_wire_partial(const struct sp_wire_dec *d);
/* Encode a header into out[SP_WIRE_HEADER]. */
void sp_wire_encode(unsigned char *out, const struct sp_wire_header *h);

#endif
