#!/usr/bin/env bash
# Runs the whole unit suite built with clang under ASan+UBSan (every finding
# fatal), in ./build-fuzz, which scripts/fuzz.sh configures and whose
# instrumented library it shares (run fuzz.sh first, or this configures it).
# Usage: scripts/sanitize.sh [doctest options, e.g. -tc="vector index*"]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang++ >/dev/null || { echo "sanitize: clang++ is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
if [[ ! -f build-fuzz/CMakeCache.txt ]]; then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  CXX=clang++ cmake -S . -B build-fuzz "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DL04_FUZZ=ON \
    -DL04_BUILD_TESTS=ON -DL04_BUILD_BENCH=OFF >/dev/null
fi
cmake --build build-fuzz --parallel "$(nproc)" --target l04_unit_tests
echo "sanitize: unit suite under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  build-fuzz/bin/l04_unit_tests --no-intro=true "$@" >build-fuzz/sanitize.log 2>&1 || {
    echo "sanitize: FAILED (all output in build-fuzz/sanitize.log); the report:" >&2
    grep -v "^\[20" build-fuzz/sanitize.log | tail -60 >&2
    exit 1
  }
grep -E "^\[doctest\] (test cases|assertions)" build-fuzz/sanitize.log | sed "s/^/sanitize: /"
echo "sanitize: the unit suite passed under ASan+UBSan"
