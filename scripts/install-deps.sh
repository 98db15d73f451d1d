#!/usr/bin/env bash
# Installs l04's build and test dependencies from Debian 12 packages.
# Idempotent and non-interactive: installs only what is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache
  libcli11-dev nlohmann-json3-dev libsqlite3-dev libhnswlib-dev libspdlog-dev
  doctest-dev libcurl4-openssl-dev libtomlplusplus-dev
  libedit-dev                # l04ctl chat: line editing and history
  libboost-context-dev       # l04d: connections served on fibers
  curl python3
  clang libclang-rt-14-dev   # libFuzzer targets (scripts/fuzz.sh)
)
if [[ "${L04_WITH_PROMTOOL:-1}" == 1 ]]; then packages+=(prometheus); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
