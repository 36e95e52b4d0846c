#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The asyncio peer of simplepar-bench's seed002 workload (standard
library only).

    asyncio_peer.py N MS

Runs asyncio.gather() of N coroutines that each await asyncio.sleep(MS
ms), once, in this fresh interpreter, and prints one JSON object: the
wall time of asyncio.run() (seconds), the process's peak RSS
(ru_maxrss, KiB) and how many coroutines ended without an exception
(every outcome is kept: return_exceptions=True). The harness starts one
interpreter per repetition, so each peak is that run's own.
"""
import asyncio
import json
import resource
import sys
import time


async def main(n, seconds):
    outcomes = await asyncio.gather(
        *(asyncio.sleep(seconds) for _ in range(n)), return_exceptions=True
    )
    return sum(1 for o in outcomes if not isinstance(o, BaseException))


def run():
    n, ms = int(sys.argv[1]), float(sys.argv[2])
    t0 = time.perf_counter()
    ok = asyncio.run(main(n, ms / 1000.0))
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"wall": wall, "peak_rss_kib": rss, "ok": ok}))


if __name__ == "__main__":
    run()
