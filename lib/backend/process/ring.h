/* SPDX-License-Identifier: MIT */
/* A single-producer, single-consumer byte ring in memory shared between
 * two processes (ring.c). Private to the process backend and its unit test
 * (tests/test_ring.c). */
#ifndef SP_RING_H
#define SP_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct sp_ring {
    _Atomic uint64_t *head; /* bytes ever written (the producer's) */
    _Atomic uint64_t *tail; /* bytes ever consumed (the consumer's) */
    unsigned char *buf;
    size_t size;
};

/* Producer: append the cnt parts of iov (total bytes) if the ring then
 * holds at most `limit` bytes. 0 = appended, 1 = no room (nothing
 * written). */
int sp_ring_put(const struct sp_ring *r, const struct iovec *iov, int cnt,
                size_t total, size_t limit);

/* Consumer: hand every waiting byte to fn (in one or two pieces, in order)
 * and consume them. 0 = nothing waited, 1 = bytes handed over, -1 = the
 * positions are out of range (the producer scribbled on them; nothing is
 * handed over). */
typedef void (*sp_ring_fn)(void *arg, const unsigned char *p, size_t len);
int sp_ring_take(const struct sp_ring *r, sp_ring_fn fn, void *arg);

#endif
