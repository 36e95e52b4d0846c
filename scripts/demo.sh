#!/usr/bin/env bash
# The main job: build simplepar and run the branch-fetch demo (seed 000) on
# its default settings; it writes the timeline also as timeline.svg.
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
# Seed 000's branch fetch as a task graph (each branch task spawns its bus
# fetches): live log, timeline and records, then the same fetch in two
# waves and sequentially, and the three wall times. Arguments go to the
# program (--scale S, --svg FILE, --trace FILE, --help).
exec "$build/docs/examples/branch_fetch" --compare --svg timeline.svg "$@"
