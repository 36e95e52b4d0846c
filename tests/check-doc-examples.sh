#!/bin/sh
# Docs check: what README.md and docs/*.md show of the example programs is
# what the programs are and print, so the docs cannot drift from the
# library.
#  - "<!-- source: FILE -->" on the line before a fenced block: the block is
#    FILE (a path from the source root) without its leading comment,
#    whitespace aside.
#  - "<!-- output: NAME -->" before a fenced block: the block is exactly
#    what the program NAME (one of the PROGRAM arguments) prints.
#  - Every error message the program "errors" prints ("SP_EXXX: text") is
#    quoted exactly wherever README.md, docs/*.md or docs/man/*.3 quote its
#    text or another message of the same code (so the docs use the same
#    instance everywhere); each is quoted somewhere, and README.md quotes at
#    least one.
# Usage: check-doc-examples.sh SOURCE_ROOT PROGRAM...
set -eu
root=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for p in "$@"; do echo "$p"; done > "$tmp/programs"
failed=0 passed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
pass() { passed=$((passed + 1)); }
program() { # the PROGRAM argument named $1
  while IFS= read -r p; do
    [ "$(basename "$p")" = "$1" ] && { echo "$p"; return 0; }
  done < "$tmp/programs"
  return 1
}

# Marked blocks: a line "kind arg" in $tmp/marks.N, the block in
# $tmp/block.N.
n=0
for doc in "$root/README.md" "$root"/docs/*.md; do
  name=${doc#"$root"/}
  awk -v dir="$tmp" -v doc="$name" -v start="$n" '
    BEGIN { n = start }
    /^<!-- (source|output): [^ ]+ -->$/ {
      mark = $2 " " $3; sub(/:/, "", mark); want = 1; next }
    want && /^```/ { want = 0; inblock = 1; n++
      print doc, mark > (dir "/marks." n); close(dir "/marks." n)
      printf "" > (dir "/block." n); next }
    want && !/^[[:space:]]*$/ {
      print doc ": a marker is not followed by a fenced block"; exit 1 }
    inblock && /^```/ { inblock = 0; close(dir "/block." n); next }
    inblock { print > (dir "/block." n) }
    END { print n > (dir "/count") }
  ' "$doc" || { fail "$name: malformed marker"; continue; }
  n=$(cat "$tmp/count")
done
i=0
while [ $i -lt "$n" ]; do
  i=$((i + 1))
  read -r doc kind arg < "$tmp/marks.$i"
  case $kind in
  source)
    # The file from its first preprocessor line on, against the block.
    sed -n '/^#/,$p' "$root/$arg" | tr -d ' \t\n' > "$tmp/want"
    tr -d ' \t\n' < "$tmp/block.$i" > "$tmp/got"
    if cmp -s "$tmp/want" "$tmp/got"; then pass
    else fail "$doc: the code block differs from $arg"; fi ;;
  output)
    if ! prog=$(program "$arg"); then
      fail "$doc: shows the output of $arg, which this test does not run"
      continue
    fi
    if ! "$prog" > "$tmp/out" 2> "$tmp/err"; then
      cat "$tmp/err"
      fail "$doc: $arg failed"
    elif diff -u "$tmp/block.$i" "$tmp/out"; then pass
    else fail "$doc: the output shown for $arg is not what it prints"; fi ;;
  esac
done
[ "$n" -gt 0 ] || fail "no marked example blocks in README.md or docs/*.md"

# Error messages. Quotes: inline code in Markdown (fenced blocks and
# markers left out, lines joined as Markdown joins them), and quoted
# arguments of .I/.IR/.B/.BR in the man pages.
if prog=$(program errors); then
  before=$failed
  "$prog" > "$tmp/errors.out" || fail "errors exited with $?"
  grep -E '^SP_E[A-Z]+: ' "$tmp/errors.out" > "$tmp/messages" \
    || fail "errors printed no SP_E... message"
  for doc in "$root/README.md" "$root"/docs/*.md "$root"/docs/man/*.3; do
    q=$tmp/quotes.$(basename "$doc")
    case $doc in
    *.3)
      sed -n 's/^\.[IB]R* "\([^"]*\)".*/\1/p' "$doc" | sed 's/\\(dq/"/g' > "$q" ;;
    *)
      awk '/^```/ { fence = !fence; next } !fence && !/^<!--/' "$doc" \
        | tr '\n' ' ' | sed 's/  */ /g' | grep -o '`[^`]*`' | tr -d '`' \
        > "$q" || true ;;
    esac
  done
  while IFS= read -r msg; do
    name=${msg%%: *} text=${msg#*: }
    found=0
    for q in "$tmp"/quotes.*; do
      while IFS= read -r quote; do
        case $quote in
        *"$text"* | "$name: "*)
          found=$((found + 1))
          [ "$quote" = "$msg" ] \
            || fail "${q##*/quotes.} quotes '$quote'; the library prints '$msg'" ;;
        esac
      done < "$q"
    done
    [ $found -gt 0 ] || fail "no doc quotes '$msg'"
  done < "$tmp/messages"
  grep -qxFf "$tmp/messages" "$tmp/quotes.README.md" \
    || fail "README.md quotes none of the messages errors prints"
  [ $failed -gt "$before" ] || pass
else
  fail "no errors program given"
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
