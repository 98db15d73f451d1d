#!/usr/bin/env bash
# Installs dependencies, builds l04 with warnings as errors, runs the fuzz
# targets briefly, runs the unit and integration suites under ASan+UBSan, and
# runs the whole test suite (unit + integration) with CTest. CI runs exactly
# this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DL04_WERROR=ON -DL04_BUILD_TESTS=ON -DL04_BUILD_BENCH=ON
# Every parser and loader of untrusted input under libFuzzer (ASan+UBSan),
# 12 s each on its seed corpus (fuzz/corpus/) to keep CI under 30 minutes on
# 2 cores; 10 minutes each by hand: scripts/fuzz.sh 600.
scripts/fuzz.sh "${L04_FUZZ_SECONDS:-12}"
# The unit and integration suites again, built with clang under ASan+UBSan
# (sharing the fuzz build's instrumented library; l04d and l04ctl
# instrumented too): memory errors, leaks and undefined behaviour fail CI.
# (ThreadSanitizer: scripts/sanitize.sh --tsan, by hand.)
scripts/sanitize.sh
# Last, so that CTest's summary closes the run.
cd build
ctest --output-on-failure --timeout 300 -j "$(nproc)"
