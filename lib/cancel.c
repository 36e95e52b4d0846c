/* SPDX-License-Identifier: MIT */
/* Cancel handles: one flag a program fires from any thread or a signal
 * handler. Firing is one lock-free atomic store and nothing else, so it
 * is async-signal-safe; the calls that hold the handle notice it
 * themselves (sp_run_cancel_fired()): at every claim, in sp_cancelled(),
 * and whenever whoever waits for a run looks at it (at least every
 * SP_CANCEL_POLL_MS while a handle is watched). */
#include "sp-private.h"

_Static_assert(ATOMIC_INT_LOCK_FREE == 2,
               "firing a cancel handle must be async-signal-safe");

SP_API int sp_cancel_create(sp_cancel **out)
{
    SP_CHECK(out, SP_EINVAL, "the 'out' argument is NULL");
    *out = sp_calloc(1, sizeof **out);
    SP_CHECK(*out, SP_ENOMEM, "cannot allocate a cancel handle");
    atomic_init(&(*out)->fired, 0);
    return 0;
}

SP_API void sp_cancel_fire(sp_cancel *c)
{
    if (c)
        atomic_store_explicit(&c->fired, 1, memory_order_release);
}

SP_API int sp_cancel_fired(const sp_cancel *c)
{
    return c ? atomic_load_explicit((_Atomic int *)&c->fired,
                                    memory_order_acquire)
             : 0;
}

SP_API void sp_cancel_reset(sp_cancel *c)
{
    if (c)
        atomic_store_explicit(&c->fired, 0, memory_order_release);
}

SP_API void sp_cancel_free(sp_cancel *c)
{
    free(c);
}
