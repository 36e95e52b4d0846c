#!/bin/sh
# ABI check of libsimplepar-mpi: it exports exactly the functions
# include/simplepar/mpi.h declares with SP_API, all sp_mpi_*, and its
# soname follows the core's major version.
# Usage: check-mpi-exports.sh libsimplepar-mpi.so mpi.h simplepar.h
set -eu
lib=$1 header=$2 core=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' \
  | sort > "$tmp/exported"
grep -v '^[[:space:]]*#' "$header" | tr '\n' ' ' | grep -oE 'SP_API [^;(]*\(' \
  | grep -oE '[a-z_][a-z0-9_]*[[:space:]]*\($' | tr -d ' (' | sort \
  > "$tmp/declared"
status=0
diff -u "$tmp/declared" "$tmp/exported" \
  || { echo "exports differ from the header's SP_API declarations"; status=1; }
! grep -v '^sp_mpi_' "$tmp/declared" \
  || { echo "a declared function is not named sp_mpi_*"; status=1; }
major=$(awk '/#define SP_VERSION_MAJOR/ {print $3}' "$core")
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[ "$soname" = "libsimplepar-mpi.so.$major" ] \
  || { echo "soname $soname does not follow SP_VERSION_MAJOR $major"; status=1; }
echo "$(wc -l < "$tmp/exported") symbols checked"
[ $status -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $status
