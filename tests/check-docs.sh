#!/bin/sh
# Docs check: every function the headers export (SP_API in
# include/simplepar.h, and in include/simplepar/mpi.h when it is there) is
# named in the NAME section of a man page in docs/man/ and listed in
# docs/api.md, and every page renders without warnings when groff is there.
# Usage: check-docs.sh SOURCE_ROOT
set -eu
root=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for h in "$root/include/simplepar.h" "$root/include/simplepar/mpi.h"; do
  [ ! -f "$h" ] || cat "$h"
done | grep -v '^[[:space:]]*#' | tr '\n' ' ' \
  | grep -oE 'SP_API [^;(]*\(' | grep -oE '[a-z_][a-z0-9_]*[[:space:]]*\($' \
  | tr -d ' (' | sort -u > "$tmp/declared"
# NAME sections: from ".SH NAME" to the next ".SH".
for page in "$root"/docs/man/*.3; do
  awk '/^\.SH NAME/ {on = 1; next} /^\.SH/ {on = 0} on' "$page"
done | sed 's/\\-.*//' | tr ', ' '\n\n' | grep -E '^(sp_|simple_)' \
  | sort -u > "$tmp/paged"
grep -oE '`[^`(]*\b(sp_[a-z0-9_]+|simple_parallel)\(' "$root/docs/api.md" \
  | grep -oE '(sp_[a-z0-9_]+|simple_parallel)\($' | tr -d '(' | sort -u \
  > "$tmp/listed"
status=0
missing=$(comm -23 "$tmp/declared" "$tmp/paged")
[ -z "$missing" ] || { echo "no man page names: $missing"; status=1; }
missing=$(comm -23 "$tmp/declared" "$tmp/listed")
[ -z "$missing" ] || { echo "docs/api.md lacks: $missing"; status=1; }
if command -v groff >/dev/null 2>&1; then
  for page in "$root"/docs/man/*.3; do
    out=$(groff -man -ww -z "$page" 2>&1) || true
    [ -z "$out" ] || { echo "$page: $out"; status=1; }
  done
fi
echo "$(wc -l < "$tmp/declared") functions checked against man pages and docs/api.md"
[ $status -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $status
