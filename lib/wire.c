/* SPDX-License-Identifier: MIT */
/* The worker-to-parent wire format: encoder and incremental decoder. */
#include "sp-wire.h"
#include "sp-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sp_wire_encode(unsigned char *out, const struct sp_wire_header *h)
{
    memcpy(out, &h->magic, 4);
    memcpy(out + 4, &h->index, 4);
    memcpy(out + 8, &h->code, 4);
    out[12] = h->kind;
    out[13] = h->flags;
    out[14] = h->type;
    out[15] = 0;
    memcpy(out + 16, &h->t_start, 8);
    memcpy(out + 24, &h->t_end, 8);
    memcpy(out + 32, &h->msg_len, 4);
    memcpy(out + 36, &h->reserved, 4);
    memcpy(out + 40, &h->data_len, 8);
}

static void decode_header(struct sp_wire_header *h, const unsigned char *in)
{
    memcpy(&h->magic, in, 4);
    memcpy(&h->index, in + 4, 4);
    memcpy(&h->code, in + 8, 4);
    h->kind = in[12];
    h->flags = in[13];
    h->type = in[14];
    h->pad = in[15];
    memcpy(&h->t_start, in + 16, 8);
    memcpy(&h->t_end, in + 24, 8);
    memcpy(&h->msg_len, in + 32, 4);
    memcpy(&h->reserved, in + 36, 4);
    memcpy(&h->data_len, in + 40, 8);
}

void sp_wire_dec_init(struct sp_wire_dec *d, uint32_t max_index)
{
    memset(d, 0, sizeof *d);
    d->max_index = max_index;
    d->bad_index = UINT32_MAX;
}

void sp_wire_dec_free(struct sp_wire_dec *d)
{
    free(d->f.msg);
    free(d->f.data);
    d->f.msg = NULL;
    d->f.data = NULL;
    d->cap = 0;
}

int sp_wire_partial(const struct sp_wire_dec *d)
{
    return d->state != 0 || d->have != 0;
}

static int fail(struct sp_wire_dec *d, int code, const char *what)
{
    snprintf(d->err, sizeof d->err, "%s", what);
    return code;
}

/* Check a complete header; on success allocate the message. */
static int check_header(struct sp_wire_dec *d)
{
    struct sp_wire_header *h = &d->f.h;
    decode_header(h, d->hdr);
    if (h->magic != SP_WIRE_MAGIC)
        return fail(d, SP_EPROTO, "bad frame magic");
    if (h->type == SP_WIRE_IDLE) {
        if (h->index || h->code || h->kind || h->flags || h->pad ||
            h->reserved || h->t_start || h->t_end || h->msg_len || h->data_len)
            return fail(d, SP_EPROTO, "idle frame with a payload");
        return 0;
    }
    if (h->type == SP_WIRE_DEPREQ || h->type == SP_WIRE_SPAWN) {
        if (h->index >= d->max_index)
            return fail(d, SP_EPROTO, "request names a task out of range");
        if (h->code || h->kind || h->flags || h->pad || h->reserved ||
            h->t_start || h->t_end || !h->msg_len ||
            h->msg_len > SP_WIRE_MAX_MSG ||
            (h->type == SP_WIRE_DEPREQ ? h->data_len != 0
                                       : h->data_len < SP_WIRE_SPAWN_FIXED ||
                                             h->data_len > SP_WIRE_MAX_DATA))
            return fail(d, SP_EPROTO, "malformed request frame");
    } else if (h->type != SP_WIRE_RESULT) {
        return fail(d, SP_EPROTO, "frame of an unknown type");
    }
    if (h->type != SP_WIRE_RESULT)
        goto allocate;
    if (h->index >= d->max_index)
        return fail(d, SP_EPROTO, "frame names a task index out of range");
    d->bad_index = h->index;
    if (h->kind == SP_KIND_CRASHED || h->kind > SP_KIND_CANCELLED)
        return fail(d, SP_EPROTO, "frame has an invalid result kind");
    if ((h->kind == SP_KIND_OK) != (h->code == 0))
        return fail(d, SP_EPROTO, "frame's code does not match its kind");
    if ((h->flags & ~(SP_WIRE_TASK_CODE | SP_WIRE_SHM)) || h->pad ||
        h->reserved)
        return fail(d, SP_EPROTO, "frame has non-zero reserved bytes");
    if (h->t_end < h->t_start)
        return fail(d, SP_EPROTO, "frame ends before it starts");
    if (h->msg_len > SP_WIRE_MAX_MSG)
        return fail(d, SP_EPROTO, "frame message is oversized");
    if (h->data_len > SP_WIRE_MAX_DATA || h->data_len >= SIZE_MAX)
        return fail(d, SP_EPROTO, "frame result is oversized");
    if ((h->flags & SP_WIRE_SHM) && !h->data_len)
        return fail(d, SP_EPROTO, "shared-memory frame without a result");
allocate:
    if (h->msg_len) {
        d->f.msg = sp_malloc((size_t)h->msg_len + 1);
        if (!d->f.msg)
            d->f.dropped = 1; /* read the frame, keep nothing */
        else
            d->f.msg[h->msg_len] = 0;
    }
    return 0;
}

static void drop(struct sp_wire_dec *d)
{
    free(d->f.msg);
    free(d->f.data);
    d->f.msg = NULL;
    d->f.data = NULL;
    d->cap = 0;
    d->f.dropped = 1;
}

/* The bytes of a frame's data that follow its message in the stream: none
 * when they come in shared memory. */
static uint64_t stream_data(const struct sp_wire_header *h)
{
    return h->flags & SP_WIRE_SHM ? 0 : h->data_len;
}

/* Make room for at least `need` data bytes, growing geometrically so a
 * lying header costs nothing until its bytes really arrive; out of memory,
 * the frame is dropped. */
static void grow(struct sp_wire_dec *d, size_t need)
{
    if (need <= d->cap)
        return;
    size_t total = (size_t)d->f.h.data_len + 1;
    size_t cap = d->cap ? d->cap : 64 * 1024;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > total)
        cap = total;
    unsigned char *p = sp_realloc(d->f.data, cap);
    if (!p) {
        drop(d);
        return;
    }
    d->f.data = p;
    d->cap = cap;
}

/* Resynchronising: the header buffer holds no valid header. Keep what may
 * be the start of one (from the next byte that could begin the magic) and
 * count the rest as stray bytes. */
static void skip_to_magic(struct sp_wire_dec *d)
{
    static const uint32_t magic = SP_WIRE_MAGIC;
    unsigned char m[4];
    memcpy(m, &magic, 4);
    size_t j = 1;
    for (; j < d->have; j++) {
        size_t n = d->have - j < 4 ? d->have - j : 4;
        if (memcmp(d->hdr + j, m, n) == 0)
            break;
    }
    memmove(d->hdr, d->hdr + j, d->have - j);
    d->have -= j;
    d->skipped += j;
    d->bad_index = UINT32_MAX;
    d->err[0] = 0;
}

int sp_wire_feed(struct sp_wire_dec *d, const void *buf, size_t len,
                 sp_wire_frame_fn fn, void *arg)
{
    const unsigned char *p = buf;
    while (len) {
        size_t take;
        int err;
        switch (d->state) {
        case 0:
            take = SP_WIRE_HEADER - d->have;
            take = take < len ? take : len;
            memcpy(d->hdr + d->have, p, take);
            d->have += take;
            if (d->have < SP_WIRE_HEADER)
                break;
            if ((err = check_header(d)) != 0) {
                if (!d->resync)
                    return err;
                skip_to_magic(d);
                break;
            }
            d->have = 0;
            d->state = 1;
            break;
        case 1:
            take = d->f.h.msg_len - d->have;
            take = take < len ? take : len;
            if (!d->f.dropped)
                memcpy(d->f.msg + d->have, p, take);
            d->have += take;
            if (d->have == d->f.h.msg_len) {
                d->have = 0;
                d->state = 2;
            }
            break;
        default:
            take = (size_t)stream_data(&d->f.h) - d->have;
            take = take < len ? take : len;
            if (take) {
                if (!d->f.dropped)
                    grow(d, d->have + take + 1);
                if (!d->f.dropped)
                    memcpy(d->f.data + d->have, p, take);
                d->have += take;
            }
            break;
        }
        p += take;
        len -= take;
        /* A frame is complete once its data is in (also for empty data,
         * which needs no further byte). */
        if (d->state == 1 && d->f.h.msg_len == 0) {
            d->state = 2;
        }
        if (d->state == 2 && d->have == stream_data(&d->f.h)) {
            if (d->f.dropped)
                drop(d);
            if (d->f.data)
                d->f.data[d->have] = 0;
            struct sp_wire_frame f = d->f;
            memset(&d->f, 0, sizeof d->f);
            d->cap = 0;
            d->have = 0;
            d->state = 0;
            d->bad_index = UINT32_MAX;
            if ((err = fn(&f, arg)) != 0)
                return fail(d, err, "frame rejected by the receiver");
        }
    }
    return 0;
}

void sp_wire_cmd_encode(unsigned char *out, const struct sp_wire_cmd *c)
{
    memcpy(out, &c->magic, 4);
    memcpy(out + 4, &c->type, 4);
    memcpy(out + 8, &c->index, 4);
    memcpy(out + 12, &c->code, 4);
    memcpy(out + 16, &c->len, 8);
}

int sp_wire_cmd_decode(struct sp_wire_cmd *c, const unsigned char *in,
                       uint32_t max_index)
{
    memcpy(&c->magic, in, 4);
    memcpy(&c->type, in + 4, 4);
    memcpy(&c->index, in + 8, 4);
    memcpy(&c->code, in + 12, 4);
    memcpy(&c->len, in + 16, 8);
    if (c->magic != SP_WIRE_CMD_MAGIC || c->len > SP_WIRE_MAX_DATA)
        return SP_EPROTO;
    switch (c->type) {
    case SP_CMD_RUN: /* code: the attempts made before this one */
        return c->index < max_index && c->code >= 0 &&
                       c->code <= (int32_t)SP_MAX_RETRIES
                   ? 0
                   : SP_EPROTO;
    case SP_CMD_EXIT:
    case SP_CMD_CLAIM:
        return c->index || c->code || c->len ? SP_EPROTO : 0;
    case SP_CMD_BATCH:
        return c->index || c->code || !c->len ? SP_EPROTO : 0;
    case SP_CMD_DEP:
    case SP_CMD_SPAWNED:
        return c->index ? SP_EPROTO : 0;
    default:
        return SP_EPROTO;
    }
}
