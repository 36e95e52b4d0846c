#!/bin/sh
# ABI check: the shared library exports exactly the functions the header
# declares with SP_API, and the linker version script lists the same set.
# Usage: check-exports.sh libsimplepar.so simplepar.h simplepar.map
set -eu
lib=$1 header=$2 map=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' \
  | sort > "$tmp/exported"
grep -v '^[[:space:]]*#' "$header" | tr '\n' ' ' | grep -oE 'SP_API [^;(]*\(' \
  | grep -oE '[a-z_][a-z0-9_]*[[:space:]]*\($' | tr -d ' (' | sort > "$tmp/declared"
grep -oE '^[[:space:]]+(sp_[a-z0-9_]+|simple_parallel);' "$map" | tr -d ' \t;' \
  | sort > "$tmp/mapped"
status=0
if ! diff -u "$tmp/declared" "$tmp/exported"; then
  echo "exports differ from the header's SP_API declarations" >&2; status=1
fi
if ! diff -u "$tmp/declared" "$tmp/mapped"; then
  echo "version script differs from the header" >&2; status=1
fi
[ -s "$tmp/declared" ] || { echo "no declarations found" >&2; status=1; }
major=$(awk '/#define SP_VERSION_MAJOR/ {print $3}' "$header")
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
if [ "$soname" != "libsimplepar.so.$major" ]; then
  echo "soname $soname does not follow SP_VERSION_MAJOR $major" >&2; status=1
fi
echo "$(wc -l < "$tmp/exported") symbols checked"
[ $status -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $status
