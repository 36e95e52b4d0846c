/* SPDX-License-Identifier: MIT */
/* A pre-forked process pool as a peer of the process backend, as a C
 * programmer writes one by hand: a fixed set of `workers` fork()ed
 * processes pulling ranges of task indices from one shared pipe (guided
 * sizes: a range is about remaining / (4 x workers) tasks, so the last
 * ones are single tasks) and sending every outcome back over one shared
 * pipe in batches of at most PIPE_BUF bytes, which the parent reads with
 * poll(). The workers are forked at the start of each run and reaped at
 * its end, as simplepar's process backend does. No crash isolation beyond
 * the obvious: the outcomes of a worker that dies are missing
 * (PEER_NOT_RUN), and the run still ends. */
#ifndef SP_PREFORK_POOL_H
#define SP_PREFORK_POOL_H

#include "peer.h"

/* See peer_run_fn in peer.h. At most n workers are forked. fn runs in the
 * children: it sees the caller's memory as of the fork, and only the
 * outcomes travel back. */
int prefork_run(size_t n, unsigned workers, peer_fn fn, void *arg,
                peer_result *out);

#endif
