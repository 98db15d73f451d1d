#!/usr/bin/env bash
# Installs dependencies, builds l04 with warnings as errors, runs the fuzz
# targets briefly, runs the unit suite under ASan+UBSan, and runs the whole
# test suite (unit + integration) with CTest. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DL04_WERROR=ON -DL04_BUILD_TESTS=ON -DL04_BUILD_BENCH=ON
# Every parser and loader of untrusted input under libFuzzer (ASan+UBSan),
# 20 s each on its seed corpus (fuzz/corpus/) to keep CI under 30 minutes on
# 2 cores; 10 minutes each by hand:
# scripts/fuzz.sh 600. Before CTest, so that CTest's summary closes the run.
scripts/fuzz.sh "${L04_FUZZ_SECONDS:-20}"
# The unit suite again, built with clang under ASan+UBSan (sharing the fuzz
# build's instrumented library): memory errors and undefined behaviour fail CI.
scripts/sanitize.sh
cd build
ctest --output-on-failure --timeout 300 -j "$(nproc)"
