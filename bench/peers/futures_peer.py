#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Python peer of simplepar-bench: the same workloads on
concurrent.futures (standard library only), timed the same way.

    futures_peer.py WORKLOAD EXECUTOR MODE N WORKERS REPS [ARG]

WORKLOAD: overhead (empty tasks), io (each sleeps ARG ms), cpu (count
"/api/v1/login" in N files log0.log.. in directory ARG), calls (N calls
of ARG empty tasks each; MODE reused only). EXECUTOR: thread or process.
MODE says how the tasks reach the pool:

  submit  one submit() per task, then every future's result(): the shape
          of the seed's simple_parallel(), and what most Python code does.
  batch   the batch peer of simplepar's one call: chunks of C tasks
          (C = ceil(N / (4 x WORKERS)), multiprocessing's default), with
          ProcessPoolExecutor.map(fn, tasks, chunksize=C) on processes and,
          since ThreadPoolExecutor.map ignores chunksize, map() over the
          chunks on threads.
  reused  the peer of simplepar's pools: one executor, made once before
          the warm-up and outside every timing, serves all N calls; a call
          is ARG submit()s of the empty function, then wait() for all of
          them and each result().

In every mode every task's outcome is kept (an exception becomes a failed
entry; nothing stops the rest), as simplepar keeps every key. In submit
and batch modes the pool is created and shut down inside each timed run,
as simplepar starts and ends its workers inside each call. Prints one JSON
object: median, min, max (seconds for one run: all N tasks, or all N
calls), the checksum of the results (computed as simplepar-bench computes
it: one per OK task) and the chunk size (1 for submit and reused).
"""
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, wait


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


def call(job):
    """Run one task; its exception becomes its outcome instead of ending
    the batch (executor.map alone would raise at the first failure)."""
    fn, args = job
    try:
        return (True, fn(*args))
    except Exception as exc:  # noqa: BLE001 - keep every outcome
        return (False, exc)


def call_chunk(chunk):
    return [call(job) for job in chunk]


def timed(run, reps):
    """A warm-up, then reps timed runs; the times and the last outcomes."""
    run()
    times, results = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        results = run()
        times.append(time.perf_counter() - t0)
    return times, results


def report(times, results, chunksize):
    checksum = 0
    for ok, value in results:
        checksum += 1 if ok else 0
        checksum += (value or 0) * 1000003 if ok and isinstance(value, int) else 0
    print(json.dumps({"median": statistics.median(times), "min": min(times),
                      "max": max(times), "checksum": checksum,
                      "chunksize": chunksize}))


def reused(pool_class, calls, per_call, workers, reps):
    """N calls of per_call empty tasks on one executor made beforehand."""
    with pool_class(max_workers=workers) as pool:

        def run():
            results = []
            for _ in range(calls):
                futures = [pool.submit(empty) for _ in range(per_call)]
                wait(futures)
                for fut in futures:
                    try:
                        results.append((True, fut.result()))
                    except Exception as exc:  # noqa: BLE001 - keep every key
                        results.append((False, exc))
            return results

        times, results = timed(run, reps)
    report(times, results, 1)


def main():
    workload, executor, mode, n, workers, reps = sys.argv[1:7]
    arg = sys.argv[7] if len(sys.argv) > 7 else ""
    n, workers, reps = int(n), int(workers), int(reps)
    if executor not in ("thread", "process") or mode not in (
        "submit", "batch", "reused"
    ):
        sys.exit(f"unknown executor {executor} or mode {mode}")
    pool_class = ThreadPoolExecutor if executor == "thread" else ProcessPoolExecutor
    if (workload == "calls") != (mode == "reused"):
        sys.exit("the calls workload runs in mode reused, and only it")
    if workload == "calls":
        reused(pool_class, n, int(arg or 8), workers, reps)
        return
    if workload == "overhead":
        jobs = [(empty, ())] * n
    elif workload == "io":
        jobs = [(nap, (int(arg),))] * n
    elif workload == "cpu":
        jobs = [(count, (f"{arg}/log{i}.log",)) for i in range(n)]
    else:
        sys.exit(f"unknown workload {workload}")
    chunksize, extra = divmod(n, 4 * workers)
    chunksize = max(1, chunksize + (1 if extra else 0)) if mode == "batch" else 1

    def run_submit():
        # simple_parallel's shape: submit all, collect every result by key.
        results = {}
        with pool_class(max_workers=workers) as pool:
            futures = {pool.submit(fn, *a): i for i, (fn, a) in enumerate(jobs)}
            for fut, i in futures.items():
                try:
                    results[i] = (True, fut.result())
                except Exception as exc:  # noqa: BLE001 - keep every key
                    results[i] = (False, exc)
        return list(results.values())

    def run_batch():
        with pool_class(max_workers=workers) as pool:
            if executor == "process":
                return list(pool.map(call, jobs, chunksize=chunksize))
            chunks = [jobs[k : k + chunksize] for k in range(0, n, chunksize)]
            return [r for part in pool.map(call_chunk, chunks) for r in part]

    run = run_submit if mode == "submit" else run_batch
    times, results = timed(run, reps)
    report(times, results, chunksize)


if __name__ == "__main__":
    main()
