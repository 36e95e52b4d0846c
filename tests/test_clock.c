/* SPDX-License-Identifier: MIT */
/* The run clock (lib/clock.c), on its own: where the kernel keeps time
 * with the CPU's time-stamp counter (clock.c reads its clocksource), a
 * run anchored 50 ms or more after the process's first one gets a rate,
 * and its readings agree with CLOCK_MONOTONIC read around them and never
 * go back, on this thread and on another. Elsewhere every reading is
 * CLOCK_MONOTONIC's. White-box: links the core archive. */
#include "common.h"

#include "sp-private.h"

#include <pthread.h>

/* Whether runs may read the counter here (clock.c's own answer). */
static bool kernel_tsc(void)
{
#if SP_HAVE_TSC
    return sp_clock_kernel_tsc();
#else
    return false;
#endif
}

/* Readings of c between two of CLOCK_MONOTONIC, for about 20 ms: each
 * within slack_ns of the interval, none before the one before. */
static void *agree(void *arg)
{
    const struct sp_clock *c = arg;
    uint64_t slack = (uint64_t)(2000 * test_scale()), prev = 0;
    uint64_t until = sp_now() + 20000000u;
    for (unsigned k = 0;; k++) {
        uint64_t a = sp_now(), t = sp_clock_now(c), b = sp_now();
        if (t + slack < a || t > b + slack)
            fail_msg("reading %u: %llu outside [%llu, %llu]", k,
                     (unsigned long long)t, (unsigned long long)a,
                     (unsigned long long)b);
        if (t < prev)
            fail_msg("reading %u went back by %llu ns", k,
                     (unsigned long long)(prev - t));
        prev = t;
        if (b >= until)
            break;
    }
    return NULL;
}

static void test_run_clock(void **state)
{
    (void)state;
    struct sp_clock first, later;
    sp_clock_start(&first); /* the process's first anchor */
    /* A rate needs 50 ms and pairs of readings tight enough for 1 ppm
     * (a few tries: a preemption spoils one). */
    for (int k = 0; k < 20; k++) {
        test_sleep_ms(60);
        sp_clock_start(&later);
        if (later.mult)
            break;
    }
    if (SP_HAVE_TSC && kernel_tsc() && test_scale() == 1)
        assert_true(later.mult != 0); /* valgrind's reads are looser */
    else if (!SP_HAVE_TSC || !kernel_tsc())
        assert_int_equal(later.mult, 0);
    agree(&later);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, agree, &later), 0);
    pthread_join(t, NULL);
    /* A sleep of 30 ms measured on it: at least 30 ms, and no more than
     * CLOCK_MONOTONIC saw around it. */
    uint64_t slack = (uint64_t)(2000 * test_scale());
    uint64_t a = sp_now(), s = sp_clock_now(&later);
    test_sleep_ms(30);
    uint64_t d = sp_clock_now(&later) - s, outside = sp_now() - a;
    if (d + slack < 30000000u || d > outside + slack)
        fail_msg("30 ms measured as %llu ns (%llu ns from outside)",
                 (unsigned long long)d, (unsigned long long)outside);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_run_clock),
};

TEST_MAIN("clock", tests)
