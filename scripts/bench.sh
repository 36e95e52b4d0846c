#!/usr/bin/env bash
# Build the release tree (build-release/, shared with demo.sh) with every
# benchmark peer this machine can have, then run simplepar-bench with the
# given arguments (none: the default workloads; --help explains them).
# Installs what is missing: the build tools, GLib for the GThreadPool peer,
# python3 for the concurrent.futures peers, Open MPI (libopenmpi-dev,
# openmpi-bin) for libsimplepar-mpi and the mpi workload's MPI farm peer,
# and python3-mpi4py for its mpi4py.futures peer. OpenMP comes with gcc; with
# CC=clang it needs libomp-dev, and without it that peer is not built.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
sp_ensure_deps libglib2.0-dev python3 libopenmpi-dev openmpi-bin python3-mpi4py

build=build-release
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release -Dtests=disabled \
    > "$build.setup.log" 2>&1 || { cat "$build.setup.log"; exit 1; }
elif ! grep -q '"name": "glib-2.0"' "$build/meson-info/intro-dependencies.json" \
     || ! grep -q libsimplepar-mpi "$build/build.ninja"; then
  # Configured before GLib or Open MPI was installed: look for the peers'
  # libraries again.
  meson setup --reconfigure "$build" > "$build.setup.log" 2>&1 \
    || { cat "$build.setup.log"; exit 1; }
fi
ninja -C "$build" --quiet >&2  # stdout is the benchmark's alone
exec "$build/bench/simplepar-bench" "$@"
