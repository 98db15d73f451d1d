#!/usr/bin/env bash
# Builds a Debian-style .deb (everything under /usr) in build-deb/:
#   scripts/package.sh && sudo apt install ./build-deb/l04_*_amd64.deb
# The package holds l04ctl, l04d, share/l04/models.toml, the man pages,
# bash/zsh/fish completions and the systemd user units; its Depends come from
# the runtime libraries (dpkg-shlibdeps) plus libcurl4 (loaded at run time).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build-deb -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DL04_BUILD_TESTS=OFF -DL04_BUILD_BENCH=OFF
cmake --build build-deb --parallel "$(nproc)"
(cd build-deb && cpack -G DEB)
ls -l build-deb/*.deb
