#!/usr/bin/env bash
# Quick start: install dependencies, build, and run a prompt end to end through
# l04d (started automatically) with the offline mock provider: a streamed
# answer, the same prompt again from the cache, `cache stats` and `health`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DL04_BUILD_TESTS=OFF -DL04_BUILD_BENCH=OFF   # just l04ctl and l04d: faster
l04ctl=build/bin/l04ctl
prompt="Explain in one sentence what an LLM gateway does."

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step "echo \"$prompt\" | l04ctl -v prompt -m mock -o chunk_delay_ms=60 --refresh"
echo "$prompt" | "$l04ctl" -v prompt -m mock -o chunk_delay_ms=60 --refresh

step "echo \"$prompt\" | l04ctl -v prompt -m mock -o chunk_delay_ms=60      # again: from the cache"
echo "$prompt" | "$l04ctl" -v prompt -m mock -o chunk_delay_ms=60

step "l04ctl cache stats"
"$l04ctl" cache stats

step "l04ctl health"
"$l04ctl" health || true   # degraded/unhealthy is expected without API keys

printf '\nl04d keeps running in the background (it exits after 10 idle minutes);\n'
printf 'stop it now with: %s daemon stop\n' "$l04ctl"
