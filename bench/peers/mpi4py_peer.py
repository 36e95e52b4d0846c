#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The mpi4py peer of simplepar-bench's mpi workload: the same tasks on
mpi4py.futures.MPIPoolExecutor, timed the same way. Run under MPI with
the pool's workers as the other ranks:

    mpiexec -n 3 python3 -m mpi4py.futures mpi4py_peer.py \\
        WORKLOAD MODE N WORKERS REPS [MS]

WORKLOAD: empty (tasks that do nothing) or sleep (each sleeps MS ms).
MODE says how the tasks reach the pool:

  submit  one submit() per task, then every future's result(): the shape
          of the seeds' simple_parallel().
  map     executor.map(fn, tasks, chunksize=C), C = ceil(N / (4 x
          WORKERS)): mpi4py's batched way, the fair peer of simplepar's
          batches.

Every task's outcome is kept (an exception becomes a failed entry). The
executor is created and shut down inside each timed run, as simplepar
sets up and ends each call. After one warm-up run, prints one JSON
object: median, min, max (seconds), the checksum of the results
(computed as simplepar-bench computes it) and the chunk size (1 for
submit).
"""
import json
import statistics
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def empty(i):
    return (True, 0)


def nap(i, ms):
    time.sleep(ms / 1000.0)
    return (True, 0)


def call(job):
    """Run one task; an exception becomes its outcome."""
    fn, args = job
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - keep every outcome
        return (False, exc)


def once(workload, mode, n, workers, ms):
    jobs = [(empty, (i,)) if workload == "empty" else (nap, (i, ms))
            for i in range(n)]
    chunk = 1 if mode == "submit" else max(1, -(-n // (4 * workers)))
    t0 = time.perf_counter()
    with MPIPoolExecutor(max_workers=workers) as ex:
        if mode == "submit":
            futures = [ex.submit(call, j) for j in jobs]
            outcomes = [f.result() for f in futures]
        else:
            outcomes = list(ex.map(call, jobs, chunksize=chunk))
    dt = time.perf_counter() - t0
    checksum = sum(1 + v * 1000003 for ok, v in outcomes if ok)
    return dt, checksum, chunk


def main():
    workload, mode = sys.argv[1], sys.argv[2]
    n, workers, reps = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    ms = float(sys.argv[6]) if len(sys.argv) > 6 else 10.0
    if workload not in ("empty", "sleep") or mode not in ("submit", "map"):
        sys.exit("usage: mpi4py_peer.py empty|sleep submit|map N WORKERS "
                 "REPS [MS]")
    once(workload, mode, n, workers, ms)  # warm-up
    runs = [once(workload, mode, n, workers, ms) for _ in range(reps)]
    times = [r[0] for r in runs]
    print(json.dumps({"median": statistics.median(times), "min": min(times),
                      "max": max(times), "checksum": runs[0][1],
                      "chunksize": runs[0][2]}))


if __name__ == "__main__":
    main()
