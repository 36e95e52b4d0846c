#!/bin/sh
# Run an MPI program on NP ranks of this one machine, as the test suite
# and the benchmark do: oversubscribed (more ranks than cores), shared
# memory between ranks and loopback for Open MPI's own wiring, allowed to
# run as root (containers, CI). SP_MPI_WRAPPER, when set, goes before the
# program on every rank (the valgrind run of the MPI tests sets it);
# SP_MPI_TIMEOUT (seconds, default 100) makes mpiexec end a job that
# hangs, every rank with it, before meson's own timeout.
# Usage: mpi-run.sh NP PROGRAM [ARGS...]
set -eu
np=$1
shift
. "$(dirname "$0")/mpi-env.sh"
# shellcheck disable=SC2086 # the wrapper is a command line
exec mpiexec -n "$np" --oversubscribe --timeout "${SP_MPI_TIMEOUT:-100}" \
  ${SP_MPI_WRAPPER:-} "$@"
