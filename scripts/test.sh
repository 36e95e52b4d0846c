#!/usr/bin/env bash
# Build simplepar and pass every test: the format check, gcc and clang with
# -Werror, the install test (pkg-config, CMake and meson-subproject
# consumers of an installation in a temporary prefix), then the
# suites again under ASan+UBSan, TSan and valgrind, then the libFuzzer
# targets for a bounded time. Exits non-zero on the first failure. Build
# trees go to build-test-*/ (reused when present).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
# clang's sanitizer runtimes are a separate package on Debian 12; python3
# runs tests/check-trace.py, which reads the trace and SVG exports back with
# real JSON and XML parsers; cmake builds the install test's CMake consumers;
# libglib2.0-dev lets the benchmark's smoke test run its GLib peer;
# Open MPI (libopenmpi-dev, and openmpi-bin for mpiexec) builds
# libsimplepar-mpi and runs its tests on 3 ranks.
sp_ensure_deps clang libclang-rt-14-dev valgrind clang-format g++ python3 cmake \
  libglib2.0-dev libopenmpi-dev openmpi-bin

jobs=$(nproc 2>/dev/null || echo 2)

echo "=== format: clang-format --dry-run on every C file"
if git rev-parse --git-dir >/dev/null 2>&1; then
  git ls-files '*.c' '*.h' '*.cpp' '*.hpp' | xargs clang-format --dry-run -Werror
else
  find lib include tests bench docs -name '*.[ch]' -o -name '*.[ch]pp' \
    | xargs clang-format --dry-run -Werror
fi
passed=0 failed=0

run() { # name, then meson setup arguments
  local name=$1; shift
  local dir=build-test-$name
  echo "=== $name: $*"
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" --werror "$@" > "$dir.setup.log" 2>&1 \
      || { cat "$dir.setup.log"; return 1; }
  elif ! grep -q libsimplepar-mpi "$dir/build.ninja"; then
    # Configured before Open MPI was installed: look for MPI again.
    meson setup --reconfigure "$dir" > "$dir.setup.log" 2>&1 \
      || { cat "$dir.setup.log"; return 1; }
  fi
  ninja -C "$dir" --quiet
  local log=$dir.test.log status=0
  meson test -C "$dir" --print-errorlogs --num-processes "$jobs" \
    ${SP_TEST_SETUP:+--setup "$SP_TEST_SETUP"} 2>&1 | tee "$log" || status=1
  if [ $status -eq 0 ] && [ -n "${SP_TEST_MPI_SETUP:-}" ]; then
    # The MPI tests under mpiexec, every rank wrapped (mpivalgrind).
    meson test -C "$dir" --print-errorlogs --num-processes 1 \
      --setup "$SP_TEST_MPI_SETUP" --suite mpi 2>&1 | tee -a "$log" || status=1
  fi
  passed=$((passed + $(awk '/^Ok:/ {s += $2} END {print s + 0}' "$log")))
  failed=$((failed + $(awk '/^(Fail|Timeout):/ {s += $2} END {print s + 0}' "$log")))
  if [ $status -ne 0 ]; then
    echo "$passed passed, $failed failed"
    return 1
  fi
}

run gcc-O2   -Dbuildtype=debugoptimized
echo "=== install: meson install --destdir; pkg-config, CMake and subproject consumers"
log=build-test-install.test.log
if ./scripts/install-test.sh build-test-gcc-O2 2>&1 | tee "$log"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "$passed passed, $failed failed"
  exit 1
fi
run gcc-O0   -Dbuildtype=debug
CC=clang CXX=clang++ run clang-O2 -Dbuildtype=debugoptimized
run asan-ubsan -Dbuildtype=debug -Db_sanitize=address,undefined \
  -Db_lundef=false -Dc_args=-fno-sanitize-recover=all \
  -Dcpp_args=-fno-sanitize-recover=all
CC=clang CXX=clang++ run tsan -Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false
SP_TEST_SETUP=valgrind SP_TEST_MPI_SETUP=mpivalgrind run valgrind -Dbuildtype=debug

# Fuzzing: each libFuzzer target for SP_FUZZ_SECONDS (default 60) from a
# copy of its seed corpus, under ASan and UBSan.
secs=${SP_FUZZ_SECONDS:-60}
echo "=== fuzz: ${secs} s per target"
dir=build-test-fuzz
if [ ! -f "$dir/build.ninja" ]; then
  CC=clang meson setup "$dir" --werror -Dfuzzing=true -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbench=false \
    -Dexamples=false > "$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; exit 1; }
fi
ninja -C "$dir" --quiet
for target in wire table; do
  corpus=$(mktemp -d)
  cp tests/fuzz/corpus/$target/* "$corpus/"
  if "$dir/tests/fuzz/fuzz-$target" -max_total_time="$secs" \
       -print_final_stats=1 "$corpus" > "$dir.$target.log" 2>&1; then
    passed=$((passed + 1))
    echo "fuzz-$target: $(awk '/number_of_executed_units/ {print $NF}' \
      "$dir.$target.log" | tr -d ' ') inputs, no failure"
  else
    failed=$((failed + 1))
    tail -40 "$dir.$target.log"
    echo "$passed passed, $failed failed"
    exit 1
  fi
  rm -rf "$corpus"
done
echo "=== all test configurations passed"
echo "$passed passed, $failed failed"
