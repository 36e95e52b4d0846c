/* SPDX-License-Identifier: MIT */
/* The run clock: where a task's start and end come from.
 *
 * Every task reads the clock once (its end is the next task's start), and
 * clock_gettime(CLOCK_MONOTONIC) costs 16-17 ns here, as much as the rest
 * of an empty task's bookkeeping on threads. The vDSO computes it from the
 * CPU's time-stamp counter anyway; reading the counter ourselves costs 9.
 * So where the kernel itself keeps time with the counter (its clocksource
 * is "tsc": the counter runs at a constant rate and agrees across CPUs),
 * a run reads the counter and scales it to CLOCK_MONOTONIC nanoseconds:
 * anchored at the run's start (one clock_gettime and one counter reading
 * side by side), at a rate measured against CLOCK_MONOTONIC over the time
 * since this process's first call. A rate needs CAL_MIN_NS of that, and
 * pairs of readings tight enough for an error under 1 ppm: until then, for
 * a run whose own pair is loose (the thread was preempted between the
 * reads, or runs under valgrind), and wherever the counter is not the
 * kernel's clock, runs read CLOCK_MONOTONIC as before (mult 0).
 *
 * Within a run every timestamp comes from the same clock, so a task never
 * seems to start before what it depends on ended. Against CLOCK_MONOTONIC
 * read elsewhere, the run clock is off by the rate's error times the
 * time since the run started, under 1 us per second of the run, plus
 * half its pair's spread (under 0.4 us). */
#define _GNU_SOURCE
#include "sp-private.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define CAL_MIN_NS 50000000u
/* A pair of readings looser than this (the counter's ticks between its
 * two reads around CLOCK_MONOTONIC; about 0.7 us at 3 GHz) anchors
 * nothing: the run reads CLOCK_MONOTONIC. */
#define GOOD_TICKS 2048u

#if SP_HAVE_TSC
/* Whether the kernel keeps time with the counter: 1, 0, or -1 not looked
 * yet (a forked child inherits the answer: same machine, same clock). */
static _Atomic int tsc_ok = -1;
/* The first anchor of this process (set once: state 0 none, 1 being set,
 * 2 set) and the rate, ns per tick in 32.32 fixed point (0: none yet). */
static _Atomic int anchor_state;
static uint64_t anchor_ns, anchor_tsc, anchor_w;
static _Atomic uint64_t rate;

bool sp_clock_kernel_tsc(void)
{
    int ok = atomic_load_explicit(&tsc_ok, memory_order_relaxed);
    if (ok >= 0)
        return ok;
    char name[32] = "";
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/"
                    "current_clocksource",
                    "re");
    if (f) {
        if (!fgets(name, sizeof name, f))
            name[0] = 0;
        fclose(f);
    }
    ok = strcmp(name, "tsc\n") == 0;
    atomic_store_explicit(&tsc_ok, ok, memory_order_relaxed);
    return ok;
}

/* Both clocks side by side: the counter before and after CLOCK_MONOTONIC,
 * the counter's midpoint paired with it; the best of up to three tries (a
 * preemption between the reads spoils one). *w: the ticks between the two
 * counter reads, the pair's uncertainty. */
static void read_pair(uint64_t *ns, uint64_t *tsc, uint64_t *w)
{
    *w = UINT64_MAX;
    for (int k = 0; k < 3 && *w > GOOD_TICKS / 4; k++) {
        uint64_t a = sp_tsc(), n = sp_now(), b = sp_tsc();
        if (b >= a && b - a < *w) {
            *w = b - a;
            *ns = n;
            *tsc = a + (b - a) / 2;
        }
    }
}
#endif

void sp_clock_start(struct sp_clock *c)
{
    c->tsc0 = 0;
    c->mult = 0;
#if SP_HAVE_TSC
    uint64_t w;
    if (!sp_clock_kernel_tsc()) {
        c->ns0 = sp_now();
        return;
    }
    read_pair(&c->ns0, &c->tsc0, &w);
    if (w == UINT64_MAX) /* the counter went back: no pair */
        c->ns0 = sp_now();
    if (w > GOOD_TICKS) /* too loose to anchor this run or a rate */
        return;
    int st = atomic_load_explicit(&anchor_state, memory_order_acquire);
    if (st == 0) {
        int none = 0;
        if (atomic_compare_exchange_strong(&anchor_state, &none, 1)) {
            anchor_ns = c->ns0;
            anchor_tsc = c->tsc0;
            anchor_w = w;
            atomic_store_explicit(&anchor_state, 2, memory_order_release);
        }
        return;
    }
    if (st != 2)
        return; /* another thread is setting it this very moment */
    uint64_t dns = c->ns0 - anchor_ns, dtsc = c->tsc0 - anchor_tsc;
    uint64_t m = 0;
    /* A rate once the two pairs' uncertainty is at most 1 ppm of the
     * interval: the run clock then strays from CLOCK_MONOTONIC by less than
     * 1 us a second of the run. Measured afresh at every run: the longer
     * the interval, the smaller the error, and CLOCK_MONOTONIC's own
     * adjustments (NTP) are followed on average. */
    if (c->tsc0 > anchor_tsc && dns >= CAL_MIN_NS &&
        (anchor_w + w) / 2 <= dtsc / 1000000u) { /* each +- w / 2 */
        m = (uint64_t)((double)dns / (double)dtsc * 4294967296.0);
        atomic_store_explicit(&rate, m, memory_order_relaxed);
    } else
        m = atomic_load_explicit(&rate, memory_order_relaxed);
    c->mult = m;
#else
    c->ns0 = sp_now();
#endif
}
