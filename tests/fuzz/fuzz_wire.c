/* SPDX-License-Identifier: MIT */
/* Fuzz target: the frame decoder. The first byte chooses how the input is
 * split into reads (the decoder must not care); every frame it accepts is
 * checked against its header and freed. Must never crash, leak or accept a
 * frame that breaks the header rules. */
#include "sp-wire.h"
#include "sp-private.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(struct sp_wire_frame *f, void *arg)
{
    (void)arg;
    if (f->h.index >= 64 || f->h.t_end < f->h.t_start ||
        f->h.msg_len > SP_WIRE_MAX_MSG || f->h.kind == SP_KIND_CRASHED ||
        f->h.kind > SP_KIND_CANCELLED)
        abort(); /* the decoder let a bad header through */
    if (f->msg && strlen(f->msg) > f->h.msg_len)
        abort();
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
    data++;
    size--;
    struct sp_wire_dec d;
    sp_wire_dec_init(&d, 64);
    for (size_t off = 0; off < size; off += step) {
        size_t len = off + step < size ? step : size - off;
        if (sp_wire_feed(&d, data + off, len, check, NULL))
            break;
    }
    sp_wire_dec_free(&d);
    return 0;
}
