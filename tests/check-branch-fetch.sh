#!/bin/sh
# Seed 000's promise: the graph, the two waves and the sequential fetch
# print identical records. Usage: check-branch-fetch.sh path/to/branch_fetch
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$1" --scale 0.01 > "$tmp/par" 2>/dev/null
"$1" --scale 0.01 --waves > "$tmp/wav" 2>/dev/null
"$1" --scale 0.01 --sequential > "$tmp/seq" 2>/dev/null
records() { sed -n '/^\[$/,/^\]$/p' "$1"; }
records "$tmp/par" > "$tmp/par.json"
records "$tmp/wav" > "$tmp/wav.json"
records "$tmp/seq" > "$tmp/seq.json"
[ -s "$tmp/par.json" ] || { echo "no records printed"; echo "0 passed, 1 failed"; exit 1; }
grep -q "(graph," "$tmp/par" && grep -q "(waves," "$tmp/wav" \
  && grep -q "(sequential," "$tmp/seq"
if diff -u "$tmp/seq.json" "$tmp/par.json" && diff -u "$tmp/seq.json" "$tmp/wav.json"; then
  echo "$(grep -c branch_uri "$tmp/par.json") records identical in all three modes"
  echo "1 passed, 0 failed"
else
  echo "0 passed, 1 failed"; exit 1
fi
