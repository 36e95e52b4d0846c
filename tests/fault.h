/* SPDX-License-Identifier: MIT */
#ifndef SP_TEST_FAULT_H
#define SP_TEST_FAULT_H
#include "sp-private.h"

/* Countdowns: the Nth call of that kind fails; 0 = never. They live in a
 * shared mapping, so forked workers count against the same numbers. */
struct fi_counters {
    _Atomic long alloc, thread, fork;
    _Atomic long fired;   /* injected failures so far */
    _Atomic long started; /* tasks the test saw start, in any process */
};
extern struct fi_counters *fi;

/* Map the counters; call once before any run. */
void fi_init(void);
#endif
