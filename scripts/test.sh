#!/usr/bin/env bash
# Installs dependencies, builds l04 with warnings as errors, runs the fuzz
# targets briefly, runs the unit and integration suites under ASan+UBSan, and
# runs the whole test suite (unit + integration) with CTest. CI runs exactly
# this.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each stage's wall time on stderr, so a slow CI run says where it went.
started=$SECONDS
stage() { echo "test.sh: [$(( (SECONDS - started) / 60 ))m$(( (SECONDS - started) % 60 ))s] $*" >&2; }
stage "installing dependencies"
scripts/install-deps.sh
# -g1 (line tables and function names: enough for backtraces) instead of
# RelWithDebInfo's full -g: the same code at -O2, ~20% less compile time.
stage "building with GCC (-Werror)"
scripts/build.sh -DL04_WERROR=ON -DL04_BUILD_TESTS=ON -DL04_BUILD_BENCH=ON "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG"
# Every parser and loader of untrusted input under libFuzzer (ASan+UBSan),
# 12 s each on its seed corpus (fuzz/corpus/) to keep CI under 30 minutes on
# 2 cores; 10 minutes each by hand: scripts/fuzz.sh 600.
stage "clang ASan+UBSan build of the library and fuzz targets, then fuzzing"
scripts/fuzz.sh "${L04_FUZZ_SECONDS:-12}"
# The unit and integration suites again, built with clang under ASan+UBSan
# (sharing the fuzz build's instrumented library; l04d and l04ctl
# instrumented too): memory errors, leaks and undefined behaviour fail CI.
# (ThreadSanitizer: scripts/sanitize.sh --tsan, by hand.)
stage "ASan+UBSan build of the test programs and binaries, then both suites under it"
scripts/sanitize.sh
# Last, so that CTest's summary closes the run.
stage "unit and integration suites"
cd build
ctest --output-on-failure --timeout 300 -j "$(nproc)"
