#!/usr/bin/env bash
# The main job: build simplepar and run the demo on its default settings.
# Extra arguments go to the demo (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
sp_ensure_deps

build=build-release
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release -Dtests=disabled \
    > "$build.setup.log" 2>&1 || { cat "$build.setup.log"; exit 1; }
fi
ninja -C "$build" --quiet
exec "$build/docs/examples/simplepar-demo" "$@"
