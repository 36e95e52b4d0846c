#!/usr/bin/env bash
# Install test: install a built tree into a temporary prefix, then build and
# run out-of-tree consumers the ways users will: pkg-config against the
# shared library, pkg-config --static against the static one, and the
# project as a meson subproject. Also checks that every exported function
# has an installed man page.
# Usage: scripts/install-test.sh BUILD_DIR
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --destdir "$tmp/dest" --quiet >/dev/null
pc=$(find "$tmp/dest" -name simplepar.pc -print -quit)
[ -n "$pc" ] || { echo "simplepar.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$tmp/dest
libdir=$(dirname "$(dirname "$pc")")
cc=${CC:-cc}
ok=0

echo "--- shared: cc quickstart.c \$(pkg-config --cflags --libs simplepar)"
$cc -std=c11 "$src/docs/examples/quickstart.c" \
  $(pkg-config --cflags --libs simplepar) -Wl,-rpath,"$libdir" -o "$tmp/qs"
"$tmp/qs" | grep -qx "four squared is 16" && ok=$((ok + 1))
ldd "$tmp/qs" | grep -q "$libdir/libsimplepar.so" || {
  echo "the shared consumer did not load the installed library"; exit 1; }

echo "--- static: cc -static quickstart.c \$(pkg-config --static --cflags --libs simplepar)"
$cc -std=c11 -static "$src/docs/examples/quickstart.c" \
  $(pkg-config --static --cflags --libs simplepar) -o "$tmp/qs-static"
"$tmp/qs-static" | grep -qx "four squared is 16" && ok=$((ok + 1))

echo "--- man pages for every exported function"
man3=$(find "$tmp/dest" -type d -name man3 -print -quit)
for fn in $(nm -D --defined-only "$libdir/libsimplepar.so" \
            | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }'); do
  [ -e "$man3/$fn.3" ] || { echo "no man page for $fn"; exit 1; }
done
ok=$((ok + 1))

echo "--- meson subproject"
mkdir -p "$tmp/consumer/subprojects/simplepar"
(cd "$src" && tar --exclude='./build*' --exclude=./.git -cf - .) \
  | tar -xf - -C "$tmp/consumer/subprojects/simplepar"
cp "$src/docs/examples/quickstart.c" "$tmp/consumer/"
cat > "$tmp/consumer/meson.build" <<'MESON'
project('consumer', 'c', default_options: ['c_std=c11'])
dep = dependency('simplepar', fallback: ['simplepar', 'simplepar_dep'],
                 default_options: ['tests=disabled', 'bench=false',
                                   'examples=false'])
executable('qs', 'quickstart.c', dependencies: dep)
MESON
(cd "$tmp/consumer" && env -u PKG_CONFIG_PATH -u PKG_CONFIG_SYSROOT_DIR \
   meson setup b --force-fallback-for=simplepar >/dev/null && ninja -C b --quiet)
"$tmp/consumer/b/qs" | grep -qx "four squared is 16" && ok=$((ok + 1))

echo "$ok passed, $((4 - ok)) failed"
[ $ok -eq 4 ]
