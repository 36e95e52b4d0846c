#!/bin/sh
# ABI check: the shared library exports exactly the functions the public
# header declares with SP_API, plus the private interface for companion
# libraries (sp__*, declared with SP_PRIVATE_API in lib/sp-collect.h, in the
# version node SIMPLEPAR_PRIVATE_0); the linker version script lists the
# same sets; the soname follows the header's major version.
# Usage: check-exports.sh libsimplepar.so simplepar.h simplepar.map sp-collect.h
set -eu
lib=$1 header=$2 map=$3 private=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' \
  | sort > "$tmp/exported"
declared() { # header macro
  grep -v '^[[:space:]]*#' "$1" | tr '\n' ' ' | grep -oE "$2 [^;(]*\(" \
    | grep -oE '[a-z_][a-z0-9_]*[[:space:]]*\($' | tr -d ' (' | sort
}
declared "$header" SP_API > "$tmp/declared"
declared "$private" SP_PRIVATE_API > "$tmp/declared-private"
grep -oE '^[[:space:]]+(sp_[a-z0-9][a-z0-9_]*|simple_parallel);' "$map" \
  | tr -d ' \t;' | sort > "$tmp/mapped"
grep -oE '^[[:space:]]+sp__[a-z0-9_]+;' "$map" | tr -d ' \t;' | sort \
  > "$tmp/mapped-private"
grep -v '^sp__' "$tmp/exported" > "$tmp/exported-public" || true
grep '^sp__' "$tmp/exported" > "$tmp/exported-private" || true
status=0
if ! diff -u "$tmp/declared" "$tmp/exported-public"; then
  echo "exports differ from the header's SP_API declarations" >&2; status=1
fi
if ! diff -u "$tmp/declared" "$tmp/mapped"; then
  echo "version script differs from the header" >&2; status=1
fi
if ! diff -u "$tmp/declared-private" "$tmp/exported-private"; then
  echo "private exports differ from lib/sp-collect.h" >&2; status=1
fi
if ! diff -u "$tmp/declared-private" "$tmp/mapped-private"; then
  echo "the version script's private node differs from lib/sp-collect.h" >&2
  status=1
fi
if nm -D --defined-only "$lib" | awk '$2 == "T" && $3 ~ /^sp__/ && $3 !~ /@SIMPLEPAR_PRIVATE_0$/' \
   | grep -q .; then
  echo "a private symbol is not in the SIMPLEPAR_PRIVATE_0 node" >&2; status=1
fi
[ -s "$tmp/declared" ] || { echo "no declarations found" >&2; status=1; }
major=$(awk '/#define SP_VERSION_MAJOR/ {print $3}' "$header")
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
if [ "$soname" != "libsimplepar.so.$major" ]; then
  echo "soname $soname does not follow SP_VERSION_MAJOR $major" >&2; status=1
fi
echo "$(wc -l < "$tmp/exported-public") public and $(wc -l < "$tmp/exported-private") private symbols checked"
[ $status -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $status
