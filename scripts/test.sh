#!/usr/bin/env bash
# Installs dependencies, builds l04 with warnings as errors, and runs the whole
# test suite (unit + integration) with CTest. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DL04_WERROR=ON -DL04_BUILD_TESTS=ON -DL04_BUILD_BENCH=ON
cd build
ctest --output-on-failure --timeout 300 -j "$(nproc)"
