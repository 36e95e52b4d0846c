/* SPDX-License-Identifier: MIT */
/* GLib's GThreadPool as a peer of the thread backend: a pool of at most
 * `workers` threads (shared, GLib's default kind), every task pushed to it
 * by index, g_thread_pool_free() waiting for all of them. Built only when
 * meson finds glib-2.0; the harness sees SP_BENCH_HAVE_GLIB. */
#ifndef SP_GLIB_POOL_H
#define SP_GLIB_POOL_H

#include "peer.h"

/* See peer_run_fn in peer.h. */
int glib_pool_run(size_t n, unsigned workers, peer_fn fn, void *arg,
                  peer_result *out);

#endif
