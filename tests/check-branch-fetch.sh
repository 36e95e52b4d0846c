#!/bin/sh
# Seed 000's promise: the parallel and the sequential fetch print identical
# records. Usage: check-branch-fetch.sh path/to/branch_fetch
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$1" --scale 0.01 > "$tmp/par" 2>/dev/null
"$1" --scale 0.01 --sequential > "$tmp/seq" 2>/dev/null
records() { sed -n '/^\[$/,/^\]$/p' "$1"; }
records "$tmp/par" > "$tmp/par.json"
records "$tmp/seq" > "$tmp/seq.json"
[ -s "$tmp/par.json" ] || { echo "no records printed"; echo "0 passed, 1 failed"; exit 1; }
grep -q "(parallel)" "$tmp/par" && grep -q "(sequential)" "$tmp/seq"
if diff -u "$tmp/seq.json" "$tmp/par.json"; then
  echo "$(grep -c branch_uri "$tmp/par.json") records identical in both modes"
  echo "1 passed, 0 failed"
else
  echo "0 passed, 1 failed"; exit 1
fi
