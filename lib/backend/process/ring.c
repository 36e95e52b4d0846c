/* SPDX-License-Identifier: MIT */
/* The ring: one per worker in the shared mapping, carrying the frames of
 * short tasks so a run of tiny tasks costs no system call per task. The
 * worker appends at `head`, the parent consumes up to it and moves `tail`;
 * both count bytes and only grow, so head - tail is what waits. The ring
 * outlives the worker: what a crashed worker finished is still there. The
 * reader trusts nothing in it: positions are range-checked, and the frames
 * go through the same decoder as the pipe's. */
#include "ring.h"

#include <string.h>

int sp_ring_put(const struct sp_ring *r, const struct iovec *iov, int cnt,
                size_t total, size_t limit)
{
    uint64_t head = atomic_load_explicit(r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(r->tail, memory_order_acquire);
    if (limit > r->size)
        limit = r->size;
    if (head - tail > limit || total > limit - (size_t)(head - tail))
        return 1;
    for (int j = 0; j < cnt; j++) {
        if (!iov[j].iov_len)
            continue; /* an empty part may have a NULL base */
        size_t len = iov[j].iov_len, at = (size_t)(head % r->size);
        size_t first = r->size - at < len ? r->size - at : len;
        memcpy(r->buf + at, iov[j].iov_base, first);
        memcpy(r->buf, (const unsigned char *)iov[j].iov_base + first,
               len - first);
        head += len;
    }
    atomic_store_explicit(r->head, head, memory_order_release);
    return 0;
}

int sp_ring_take(const struct sp_ring *r, sp_ring_fn fn, void *arg)
{
    uint64_t head = atomic_load_explicit(r->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(r->tail, memory_order_relaxed);
    if (head == tail)
        return 0;
    if (head - tail > r->size) /* a writer that scribbled on the positions */
        return -1;
    size_t at = (size_t)(tail % r->size), len = (size_t)(head - tail);
    size_t first = r->size - at < len ? r->size - at : len;
    fn(arg, r->buf + at, first);
    if (len > first)
        fn(arg, r->buf, len - first);
    atomic_store_explicit(r->tail, head, memory_order_release);
    return 1;
}
