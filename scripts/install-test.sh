#!/usr/bin/env bash
# Install test: install a built tree into a temporary prefix (meson install
# --destdir), then build and run out-of-tree consumers every way users will:
#  - pkg-config against the shared library, and --static against the archive;
#  - pkg-config simplepar-mpi with mpicc, when libsimplepar-mpi was built;
#  - CMake find_package(simplepar): the project in docs/examples/cmake (C on
#    the shared and the static library, C++17, the mock API shared and
#    static), and the package's rules: versions, components, and paths that
#    follow the installation when it is moved or reached through a symlink;
#  - the project as a meson subproject, for simplepar and simplepar-mockapi,
#    by dependency()'s fallback keyword and by a wrap file's [provide].
# Also checks that bin/ holds only simplepar- names, that two installed
# programs run with LD_LIBRARY_PATH (so BUILD_DIR must have the examples,
# the default), and that every exported function has an installed man
# page. Ends with "N passed, N failed".
# Usage: scripts/install-test.sh BUILD_DIR   (SP_KEEP_TMP=1 keeps the
# temporary directory for a look after a failure)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/scripts/deps.sh"
sp_ensure_deps cmake g++
build=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap '[ -n "${SP_KEEP_TMP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"' EXIT
passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

read -r version prefix bindir libdir < <(
  { meson introspect --projectinfo "$build"; echo
    meson introspect --buildoptions "$build"; } | python3 -c '
import json, sys
info, opts = [json.loads(l) for l in sys.stdin if l.strip()]
o = {x["name"]: x["value"] for x in opts}
print(info["version"], o["prefix"], o["bindir"], o["libdir"])')
under() { case $2 in /*) echo "$1$2" ;; *) echo "$1$prefix/$2" ;; esac; }
meson install -C "$build" --destdir "$tmp/dest" --quiet >/dev/null
root=$tmp/dest$prefix          # the staged prefix
lib=$(under "$tmp/dest" "$libdir")
[ -f "$lib/pkgconfig/simplepar.pc" ] || { echo "simplepar.pc was not installed in $lib/pkgconfig"; exit 1; }
export PKG_CONFIG_PATH=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$tmp/dest
cc=${CC:-cc}
cat > "$tmp/qs.expected" <<'OUT'
three      = 9
four       = 16
minus-one  ! FAILED: negative input -1
four squared is 16
OUT
qs_ok() { "$1" > "$tmp/qs.out" && diff -u "$tmp/qs.expected" "$tmp/qs.out"; }
# The libraries a program loads (no grep -q in a pipe: under pipefail the
# writer's SIGPIPE would fail the pipeline).
libs() { ldd "$1" > "$tmp/ldd.out" && cat "$tmp/ldd.out"; }
loads() { libs "$1" | grep "=> $lib/$2" >/dev/null; } # program, library file

echo "--- bin/ holds only simplepar- names"
bin=$(under "$tmp/dest" "$bindir")
names=$(ls "$bin" | tr '\n' ' ')
others=$(ls "$bin" | grep -v '^simplepar-' || true)
if [ -n "$names" ] && [ -z "$others" ]; then
  pass "bin/: $names"
else
  fail "bin/ holds other names: $names"
fi

echo "--- installed programs run with LD_LIBRARY_PATH=\$libdir"
if LD_LIBRARY_PATH=$lib "$bin/simplepar-demo" --scale 0.02 > "$tmp/demo.out" \
   && LD_LIBRARY_PATH=$lib "$bin/simplepar-branch-fetch" --scale 0.01 \
        > "$tmp/branch-fetch.out" 2>&1 \
   && grep '^Fetched ' "$tmp/branch-fetch.out" > /dev/null; then
  pass "simplepar-demo and simplepar-branch-fetch"
else
  fail "installed programs with LD_LIBRARY_PATH"
fi

echo "--- pkg-config, shared, rpath: cc quickstart.c \$(pkg-config --cflags --libs simplepar) -Wl,-rpath,..."
if $cc -std=c11 "$src/docs/examples/quickstart.c" \
     $(pkg-config --cflags --libs simplepar) \
     -Wl,-rpath,"$(pkg-config --variable=libdir simplepar)" -o "$tmp/qs" \
   && qs_ok "$tmp/qs" && loads "$tmp/qs" libsimplepar.so; then
  pass "pkg-config shared consumer runs on the installed library"
else
  fail "pkg-config shared consumer"
fi

echo "--- pkg-config, static: cc -static quickstart.c \$(pkg-config --static --cflags --libs simplepar)"
if $cc -std=c11 -static "$src/docs/examples/quickstart.c" \
     $(pkg-config --static --cflags --libs simplepar) -o "$tmp/qs-static" \
   && qs_ok "$tmp/qs-static"; then
  pass "pkg-config static consumer"
else
  fail "pkg-config static consumer"
fi

if [ -f "$lib/pkgconfig/simplepar-mpi.pc" ]; then
  echo "--- pkg-config, MPI: mpicc mpi_logcount.c \$(pkg-config --cflags --libs simplepar-mpi simplepar-mockapi)"
  # MPI programs build with their MPI's compiler wrapper, which brings
  # MPI's own flags; run as an MPI singleton (no mpiexec).
  . "$src/tests/mpi-env.sh"
  if OMPI_CC=$cc mpicc -std=c11 "$src/docs/examples/mpi_logcount.c" \
       $(pkg-config --cflags --libs simplepar-mpi simplepar-mockapi) \
       -Wl,-rpath,"$lib" -o "$tmp/mpi_logcount" \
     && "$tmp/mpi_logcount" --files 4 --lines 100 > "$tmp/mpi.out" \
     && grep 'the same as counted on rank 0 alone' "$tmp/mpi.out" >/dev/null \
     && loads "$tmp/mpi_logcount" libsimplepar-mpi.so; then
    pass "pkg-config MPI consumer runs on the installed libsimplepar-mpi"
  else
    fail "pkg-config MPI consumer"
  fi
fi

echo "--- man pages for every exported function"
man3=$(find "$tmp/dest" -type d -name man3 -print -quit)
missing=
# sp__* is the private interface of companion libraries (lib/sp-collect.h).
for fn in $(nm -D --defined-only "$lib/libsimplepar.so" \
            | awk '$2 == "T" && $3 !~ /^sp__/ { sub(/@.*/, "", $3); print $3 }'); do
  [ -e "$man3/$fn.3" ] || missing="$missing $fn"
done
if [ -z "$missing" ]; then pass "man pages"; else fail "no man page for$missing"; fi

echo "--- CMake: find_package(simplepar) in docs/examples/cmake"
cm=$tmp/cmake-consumer
if cmake -S "$src/docs/examples/cmake" -B "$cm" -DCMAKE_PREFIX_PATH="$root" \
     -DCMAKE_EXPORT_COMPILE_COMMANDS=ON > "$tmp/cmake.log" 2>&1 \
   && cmake --build "$cm" -j 2 >> "$tmp/cmake.log" 2>&1; then
  if qs_ok "$cm/quickstart" && loads "$cm/quickstart" libsimplepar.so; then
    pass "CMake C consumer, simplepar::simplepar (shared)"
  else
    fail "CMake C consumer, simplepar::simplepar"
  fi
  if qs_ok "$cm/quickstart_static" \
     && ! libs "$cm/quickstart_static" | grep libsimplepar >/dev/null; then
    pass "CMake C consumer, simplepar::simplepar_static"
  else
    fail "CMake C consumer, simplepar::simplepar_static"
  fi
  cat > "$tmp/table.expected" <<'OUT'
thread: alpha=5 beta=4 gamma=5 delta=5 epsilon!epsilon is too long (4 ok, 1 failed)
process: alpha=5 beta=4 gamma=5 delta=5 epsilon!epsilon is too long (4 ok, 1 failed)
serial: alpha=5 beta=4 gamma=5 delta=5 epsilon!epsilon is too long (4 ok, 1 failed)
OUT
  if grep -- '-std=c++17 .*table\.cpp' "$cm/compile_commands.json" >/dev/null \
     && "$cm/table_cpp" > "$tmp/table.out" \
     && diff -u "$tmp/table.expected" "$tmp/table.out"; then
    pass "CMake C++17 consumer"
  else
    fail "CMake C++17 consumer (compiled with -std=c++17, prints the table)"
  fi
  for t in tickers tickers_static; do
    if "$cm/$t" --scale 0.02 > "$tmp/$t.out" \
       && [ "$(grep -c '(7 tickers ok)' "$tmp/$t.out")" -eq 2 ]; then
      pass "CMake mock-API consumer, simplepar::${t/tickers/mockapi}"
    else
      fail "CMake mock-API consumer $t"
    fi
  done
else
  cat "$tmp/cmake.log"
  fail "CMake consumer project did not build"
fi

echo "--- CMake: versions, components, relocation"
mkdir -p "$tmp/probe"
cat > "$tmp/probe/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.10)
project(simplepar_probe C)
# -DVERSION=the project's version -DEXPECT_ROOT=where every file must be
# -DEXPECT_MPI=TRUE|FALSE (libsimplepar-mpi installed)
string(REGEX MATCH "^[0-9]+" major "${VERSION}")
math(EXPR next "${major} + 1")
set(cases "${VERSION} EXACT|1" "${major}|1" "${next}|0" "${major}.999|0"
    "COMPONENTS mockapi|1" "COMPONENTS simplepar mockapi|1"
    "COMPONENTS nosuch|0" "OPTIONAL_COMPONENTS nosuch|1")
if(NOT CMAKE_VERSION VERSION_LESS 3.19)
  list(APPEND cases "${major}...<${next}|1" "${major}...${next}|0")
endif()
if(EXPECT_MPI)
  list(APPEND cases "COMPONENTS mpi|1")
else()
  list(APPEND cases "COMPONENTS mpi|0")
endif()
set(checks 0)
foreach(case IN LISTS cases)
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 args)
  list(GET parts 1 want)
  separate_arguments(args)
  unset(simplepar_DIR CACHE)
  unset(simplepar_NOT_FOUND_MESSAGE)
  find_package(simplepar ${args} QUIET)
  if(simplepar_FOUND)
    set(got 1)
  else()
    set(got 0)
  endif()
  if(NOT got EQUAL want)
    message(FATAL_ERROR "find_package(simplepar ${args}): found ${got}, "
            "expected ${want}; ${simplepar_NOT_FOUND_MESSAGE}")
  endif()
  if(case STREQUAL "COMPONENTS mpi|0"
     AND NOT simplepar_NOT_FOUND_MESSAGE MATCHES "built without libsimplepar-mpi")
    message(FATAL_ERROR "no reason given for mpi: ${simplepar_NOT_FOUND_MESSAGE}")
  endif()
  math(EXPR checks "${checks} + 1")
endforeach()
if(NOT simplepar_VERSION STREQUAL VERSION)
  message(FATAL_ERROR "simplepar_VERSION is ${simplepar_VERSION}, not ${VERSION}")
endif()
unset(simplepar_DIR CACHE)
find_package(simplepar REQUIRED)
get_filename_component(root "${EXPECT_ROOT}" REALPATH)
set(targets simplepar simplepar_static mockapi mockapi_static)
if(EXPECT_MPI)
  list(APPEND targets mpi)
endif()
foreach(t ${targets})
  get_target_property(loc simplepar::${t} IMPORTED_LOCATION)
  get_target_property(inc simplepar::${t} INTERFACE_INCLUDE_DIRECTORIES)
  string(FIND "${loc}" "${root}/" at_lib)
  string(FIND "${inc}" "${root}/" at_inc)
  if(NOT at_lib EQUAL 0 OR NOT EXISTS "${loc}"
     OR NOT at_inc EQUAL 0 OR NOT EXISTS "${inc}/simplepar.h")
    message(FATAL_ERROR "simplepar::${t}: ${loc}, ${inc}: not in ${root}")
  endif()
  math(EXPR checks "${checks} + 1")
endforeach()
message(STATUS "probe: ${checks} checks passed")
CMAKE
probe() { # label, CMAKE_PREFIX_PATH, the prefix the files must be found in
  local dir=$tmp/probe-build-$1 mpi=FALSE
  ls "$lib"/libsimplepar-mpi.so* >/dev/null 2>&1 && mpi=TRUE
  if cmake -S "$tmp/probe" -B "$dir" -DCMAKE_PREFIX_PATH="$2" \
       -DVERSION="$version" -DEXPECT_ROOT="$3" -DEXPECT_MPI=$mpi \
       > "$dir.log" 2>&1; then
    pass "CMake package, $1: $(sed -n 's/^-- probe: //p' "$dir.log")"
  else
    cat "$dir.log"
    fail "CMake package, $1"
  fi
}
probe staged "$root" "$root"
# Moved elsewhere: the files follow the copy.
cp -a "$tmp/dest" "$tmp/moved"
probe moved "$tmp/moved$prefix" "$tmp/moved$prefix"
# Found through a symlinked directory, as /lib -> /usr/lib on a merged-/usr
# system: the prefix is where the files really are.
case $libdir in
/*) echo "(libdir is absolute: no symlinked-prefix probe)" ;;
*)
  mkdir "$tmp/sym"
  ln -s "$root/${libdir%%/*}" "$tmp/sym/${libdir%%/*}"
  probe symlinked "$tmp/sym" "$root" ;;
esac

# Two consumers: the subproject named by dependency()'s fallback keyword,
# and through a wrap file's [provide] section (the directory is there, so
# the wrap's URL is never fetched).
mkdir -p "$tmp/subproject"
(cd "$src" && tar --exclude='./build*' --exclude=./.git -cf - .) \
  | tar -xf - -C "$tmp/subproject"
consumer() { # name; meson.build on stdin
  local dir=$tmp/consumer-$1
  mkdir -p "$dir/subprojects"
  ln -s "$tmp/subproject" "$dir/subprojects/simplepar"
  cp "$src/docs/examples/quickstart.c" "$src/docs/examples/seeds/tickers.c" "$dir/"
  cat > "$dir/meson.build"
  [ "$1" != wrap ] || cat > "$dir/subprojects/simplepar.wrap" <<'WRAP'
[wrap-git]
url = https://example.invalid/simplepar.git
revision = v0.1.0

[provide]
dependency_names = simplepar, simplepar-mockapi
WRAP
  if (cd "$dir" && env -u PKG_CONFIG_PATH -u PKG_CONFIG_SYSROOT_DIR \
        meson setup b --force-fallback-for=simplepar,simplepar-mockapi \
        > "$dir.log" 2>&1 && ninja -C b >> "$dir.log" 2>&1); then
    if qs_ok "$dir/b/qs"; then
      pass "meson subproject ($1), simplepar"
    else
      fail "meson subproject ($1), simplepar"
    fi
    if "$dir/b/tickers" --scale 0.02 > "$dir.tickers" \
       && [ "$(grep -c '(7 tickers ok)' "$dir.tickers")" -eq 2 ]; then
      pass "meson subproject ($1), simplepar-mockapi"
    else
      fail "meson subproject ($1), simplepar-mockapi"
    fi
  else
    cat "$dir.log"
    fail "meson subproject consumer ($1) did not build"
  fi
}
echo "--- meson subproject: dependency('simplepar', fallback: ...)"
consumer fallback <<'MESON'
project('consumer', 'c', default_options: ['c_std=c11'])
opts = ['tests=disabled', 'bench=false', 'examples=false']
dep = dependency('simplepar', fallback: ['simplepar', 'simplepar_dep'],
                 default_options: opts)
mock = dependency('simplepar-mockapi', fallback: ['simplepar', 'mockapi_dep'])
executable('qs', 'quickstart.c', dependencies: dep)
executable('tickers', 'tickers.c', dependencies: mock)
MESON
echo "--- meson subproject: subprojects/simplepar.wrap with [provide]"
consumer wrap <<'MESON'
project('consumer', 'c', default_options: ['c_std=c11'])
opts = ['tests=disabled', 'bench=false', 'examples=false']
mock = dependency('simplepar-mockapi', default_options: opts)
dep = dependency('simplepar')
executable('qs', 'quickstart.c', dependencies: dep)
executable('tickers', 'tickers.c', dependencies: mock)
MESON

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
