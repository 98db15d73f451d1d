#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) into ./build-fuzz and runs
# each for SECONDS (default 30) on a working copy of its seed corpus in
# fuzz/corpus/<target>/ (new inputs stay in build-fuzz/, not in the repo).
# A crash, leak, sanitizer report or timeout fails the script; the input is
# left in build-fuzz/findings/.
# Usage: scripts/fuzz.sh [SECONDS] [target ...]   (targets: sse ndjson http_head
#        http1_response chat_request registry settings index batch)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(sse ndjson http_head http1_response chat_request registry settings index batch)
command -v clang++ >/dev/null || { echo "fuzz: clang++ is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
CXX=clang++ cmake -S . -B build-fuzz "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DL04_FUZZ=ON \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG" \
  -DL04_BUILD_TESTS=ON -DL04_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz --parallel "$(nproc)" --target "${targets[@]/#/fuzz_}"
mkdir -p build-fuzz/findings
for t in "${targets[@]}"; do
  work="build-fuzz/corpus/$t"
  mkdir -p "$work"
  cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  if [[ "$t" == index && -z "$(ls -A fuzz/corpus/index 2>/dev/null)" ]]; then
    L04_FUZZ_WRITE_SEEDS="$work" "build-fuzz/bin/fuzz_$t" || true
  fi
  echo "fuzz: $t for ${seconds}s"
  "build-fuzz/bin/fuzz_$t" "$work" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="build-fuzz/findings/$t-" -print_final_stats=1 2>"build-fuzz/$t.log" || {
      echo "fuzz: $t FAILED; see build-fuzz/$t.log and build-fuzz/findings/" >&2
      tail -40 "build-fuzz/$t.log" >&2
      exit 1
    }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "build-fuzz/$t.log" | sed "s/^/fuzz: $t /"
done
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s without a finding"
