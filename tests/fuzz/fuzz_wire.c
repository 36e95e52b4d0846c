/* SPDX-License-Identifier: MIT */
/* Fuzz target: the frame decoder. The first byte chooses how the input is
 * split into reads (the decoder must not care) and, with its top bit,
 * whether the decoder resynchronises after stray bytes (as on a worker's
 * channel) or stops at the first bad header; every frame it accepts is
 * checked against its header and freed. Must never crash, leak or accept a
 * frame that breaks the header rules, and must account for every byte. */
#include "sp-wire.h"
#include "sp-private.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(struct sp_wire_frame *f, void *arg)
{
    size_t *consumed = arg;
    /* A shared-memory frame's data is in its memfd, not in the stream. */
    size_t in_stream = f->h.flags & SP_WIRE_SHM ? 0 : (size_t)f->h.data_len;
    *consumed += SP_WIRE_HEADER + f->h.msg_len + in_stream;
    if (f->h.type == SP_WIRE_IDLE) {
        if (f->msg || f->data || f->h.index || f->h.msg_len || f->h.data_len)
            abort();
        return 0;
    }
    if (f->h.type == SP_WIRE_DEPREQ || f->h.type == SP_WIRE_SPAWN) {
        if (f->h.index >= 64 || !f->h.msg_len ||
            f->h.msg_len > SP_WIRE_MAX_MSG ||
            (f->h.type == SP_WIRE_DEPREQ && f->h.data_len) ||
            (f->h.type == SP_WIRE_SPAWN && f->h.data_len < SP_WIRE_SPAWN_FIXED))
            abort();
        free(f->msg);
        free(f->data);
        return 0;
    }
    if (f->h.type != SP_WIRE_RESULT || f->h.index >= 64 ||
        f->h.t_end < f->h.t_start || f->h.msg_len > SP_WIRE_MAX_MSG ||
        f->h.kind == SP_KIND_CRASHED || f->h.kind > SP_KIND_CANCELLED)
        abort(); /* the decoder let a bad header through */
    if (f->msg && strlen(f->msg) > f->h.msg_len)
        abort();
    if ((f->h.flags & SP_WIRE_SHM) && (f->data || !f->h.data_len))
        abort(); /* its bytes cannot have come from the stream */
    if (f->data && f->data[f->h.data_len] != 0)
        abort();
    free(f->msg);
    free(f->data);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    size_t step = (size_t)data[0] % 64 + 1;
    int resync = data[0] & 0x80;
    data++;
    size--;
    struct sp_wire_dec d;
    sp_wire_dec_init(&d, 64);
    d.resync = resync != 0;
    size_t consumed = 0, off = 0;
    int failed = 0;
    for (; off < size; off += step) {
        size_t len = off + step < size ? step : size - off;
        if (sp_wire_feed(&d, data + off, len, check, &consumed)) {
            failed = 1;
            break;
        }
    }
    /* Resynchronising, nothing fails on bad headers, and every byte is a
     * frame's, skipped, or the part of a frame still being received. */
    if (resync && !failed) {
        size_t pending = d.state == 0 ? d.have
                         : d.state == 1
                             ? SP_WIRE_HEADER + d.have
                             : SP_WIRE_HEADER + d.f.h.msg_len + d.have;
        if (consumed + d.skipped + pending != size)
            abort();
    }
    sp_wire_dec_free(&d);
    return 0;
}
