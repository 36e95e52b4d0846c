#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Python peer of simplepar-bench: the same workloads on
concurrent.futures (standard library only), timed the same way.

    futures_peer.py WORKLOAD EXECUTOR N WORKERS REPS [ARG]

WORKLOAD: overhead (empty tasks), io (each sleeps ARG ms), cpu (count
"/api/v1/login" in N files log0.log.. in directory ARG). EXECUTOR: thread
or process. Prints one JSON object: median, min, max (seconds) and the
checksum of the results, computed as simplepar-bench computes it.
"""
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor


def empty():
    return None


def nap(ms):
    time.sleep(ms / 1000.0)
    return None


def count(path):
    n = 0
    with open(path, "r") as f:
        for line in f:
            if "/api/v1/login" in line:
                n += 1
    return n


def main():
    workload, executor, n, workers, reps = sys.argv[1:6]
    arg = sys.argv[6] if len(sys.argv) > 6 else ""
    n, workers, reps = int(n), int(workers), int(reps)
    pool_class = ThreadPoolExecutor if executor == "thread" else ProcessPoolExecutor
    if workload == "overhead":
        jobs = [(empty, ())] * n
    elif workload == "io":
        jobs = [(nap, (int(arg),))] * n
    else:
        jobs = [(count, (f"{arg}/log{i}.log",)) for i in range(n)]

    def run():
        # simple_parallel's shape: submit all, collect every result by key.
        results = {}
        with pool_class(max_workers=workers) as pool:
            futures = {pool.submit(fn, *a): i for i, (fn, a) in enumerate(jobs)}
            for fut, i in futures.items():
                try:
                    results[i] = (True, fut.result())
                except Exception as exc:  # noqa: BLE001 - keep every key
                    results[i] = (False, exc)
        return results

    run()  # warm-up
    times, results = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        results = run()
        times.append(time.perf_counter() - t0)
    checksum = 0
    for ok, value in results.values():
        checksum += 1 if ok else 0
        checksum += (value or 0) * 1000003 if ok and isinstance(value, int) else 0
    print(json.dumps({"median": statistics.median(times), "min": min(times),
                      "max": max(times), "checksum": checksum}))


if __name__ == "__main__":
    main()
