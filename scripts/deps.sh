#!/usr/bin/env bash
# Sourced by demo.sh and test.sh: make sure the build tools are present.
# As root, installs what is missing with apt-get; otherwise prints the exact
# command to run and stops.
# Usage: sp_ensure_deps [extra Debian packages...]

sp_ensure_deps() {
  local pkgs=(meson ninja-build pkg-config gcc libc6-dev libcmocka-dev "$@")
  local missing=() p
  for p in "${pkgs[@]}"; do
    # dpkg knows what is installed; fall back to looking for the tool when
    # this is not a Debian system.
    if command -v dpkg-query >/dev/null 2>&1; then
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "simplepar: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2 || {
      echo "simplepar: apt-get install failed" >&2
      return 1
    }
  else
    echo "simplepar: missing build dependencies. Run:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
}
