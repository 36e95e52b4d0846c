#!/bin/sh
# What happens when a whole rank dies, as docs/mpi.md says: a task crashes
# rank 2 itself (its local backend is threads, so nothing isolates the
# crash), Open MPI 4.1 ends the whole job, mpiexec exits non-zero and says
# which rank died of which signal, and no rank returns from the call.
# Usage: check-mpi-rank-death.sh MPI_RUN TEST_MPI
set -u
out=$(SP_MPI_TIMEOUT=60 "$1" 3 "$2" rank-death 2>&1)
rc=$?
status=0
[ $rc -ne 0 ] || { echo "mpiexec exited 0 after a rank died"; status=1; }
case $out in
*"exited on signal 11"*) ;;
*) echo "no 'exited on signal 11' from mpiexec"; status=1 ;;
esac
case $out in
*"sp_mpi_parallel returned"*) echo "a rank returned from the call"; status=1 ;;
esac
case $out in
*"time limit for job execution has been reached"*)
  echo "the job hung until mpiexec's time limit"; status=1 ;;
esac
printf '%s\n' "$out" | grep -E "exited on signal|Primary job" || true
[ $status -eq 0 ] && echo "1 passed, 0 failed" || { printf '%s\n' "$out"; echo "0 passed, 1 failed"; }
exit $status
