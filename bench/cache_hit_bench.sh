#!/usr/bin/env bash
# A cache hit over TCP beside a bare proxy hop, in one run: wrk against l04d
# answering an exact cache hit, alternated with wrk against the shared
# harness's nginx proxy (../shared/bench/examples/nginx-proxy.conf) in front
# of its instant nginx upstream. Issue 16's goal: hits ≥ 0.8 × the proxy.
#
#   bench/cache_hit_bench.sh [l04d binary ...]     (default: build/bin/l04d)
#
# Several binaries (e.g. before and after a change) each get their own l04d
# and state, on ports 9001, 9002, ..., measured in turn in every round
# after the proxy. Environment: CONNS (16), DURATION (5 s), REPEATS (2),
# THREADS (2), CACHE (on; off: every request goes to the upstream, the
# proxy's own job, for profiling the pipeline beside it). Needs nginx, libnginx-mod-http-echo and wrk (Debian); talks
# only to 127.0.0.1 (upstream 18080, proxy 9000, l04d 9001...) and stops
# what it started, by PID. l04d runs with its defaults except: the
# cache on (exact hits; semantic off, as a hit on the exact key never
# reaches it), rate limits on and far away (10^8 requests, 10^11 tokens per
# minute), state in a temp dir.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bins=("$@")
((${#bins[@]})) || bins=("$here/build/bin/l04d")
shared=${SHARED_BENCH:-$here/../shared/bench}
CONNS=${CONNS:-16} DURATION=${DURATION:-5} REPEATS=${REPEATS:-2} THREADS=${THREADS:-2} CACHE=${CACHE:-on}
[[ $CACHE == on || $CACHE == off ]] || { echo "cache_hit_bench: CACHE is on or off" >&2; exit 2; }
cache_enabled=$([[ $CACHE == on ]] && echo true || echo false)
for tool in nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "cache_hit_bench: needs $tool (apt-get install nginx libnginx-mod-http-echo wrk curl)" >&2; exit 2; }
done
ports=()
for i in "${!bins[@]}"; do
  [[ -x ${bins[$i]} ]] || { echo "cache_hit_bench: no l04d at ${bins[$i]}" >&2; exit 2; }
  ports+=($((9001 + i)))
done
for port in 18080 9000 "${ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "cache_hit_bench: 127.0.0.1:$port is taken" >&2; exit 2; fi
done

work=$(mktemp -d /tmp/l04-cache-hit-bench-XXXXXX)
cp -r "$shared"/. "$work"/
mkdir -p "$work/.run/nginx-tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "cache_hit_bench: nothing listens on 127.0.0.1:$1" >&2
  exit 1
}

nginx -p "$work/" -c "$work/nginx.conf" -e "$work/.run/error.log" -g 'daemon off;' &
pids+=($!)
nginx -p "$work/" -c "$work/examples/nginx-proxy.conf" -e "$work/.run/proxy-error.log" &
pids+=($!)
wait_port 18080
wait_port 9000
body="$work/fixtures/chat_request.json"
l04d_pids=()
for i in "${!bins[@]}"; do
  mkdir -m 700 "$work/state$i" "$work/rt$i"
  L04_STATE_DIR="$work/state$i" L04_RUNTIME_DIR="$work/rt$i" OPENAI_API_KEY=sk-bench-not-a-key \
    OPENAI_BASE_URL=http://127.0.0.1:18080/v1 L04_CACHE_ENABLED=$cache_enabled L04_CACHE_SEMANTIC=false \
    L04_RATE_LIMIT_REQUESTS_PER_MINUTE=100000000 L04_RATE_LIMIT_TOKENS_PER_MINUTE=100000000000 \
    L04_QUEUE_PROVIDER_CONCURRENCY=1000 L04_LOG_LEVEL=warn L04_IDLE_TIMEOUT=0 \
    "${bins[$i]}" --foreground --listen "127.0.0.1:${ports[$i]}" 2>"$work/.run/l04d$i.log" &
  l04d_pids+=($!)
  pids+=($!)
  wait_port "${ports[$i]}"
  url="http://127.0.0.1:${ports[$i]}/v1/chat/completions"
  # The first request is a miss that fills the cache; the second must be a hit.
  curl -sf -o /dev/null -H 'Content-Type: application/json' --data-binary @"$body" "$url"
  hit=$(curl -sf -D - -o /dev/null -H 'Content-Type: application/json' --data-binary @"$body" "$url" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "x-l04-cache-hit" {print $2}')
  [[ $CACHE == off || $hit == exact* ]] || { echo "cache_hit_bench: ${bins[$i]}: the repeat was not an exact hit (x-l04-cache-hit: '$hit')" >&2; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
clk=$(getconf CLK_TCK)
run_wrk() {  # url -> "req/s"
  BENCH_BODY_FILE="$body" BENCH_EXPECT=chat.completion \
    wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s "$work/post.lua" "$1" |
    awk '/^Requests\/sec:/ {print $2} /Non-2xx|bad_body":[1-9]/ {print "ERRORS: " $0 > "/dev/stderr"}'
}
echo "cache_hit_bench: $(date -u '+%Y-%m-%d %H:%M UTC'), wrk -t$THREADS -c$CONNS -d${DURATION}s, load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in "${!bins[@]}"; do echo "  l04d #$((i + 1)): ${bins[$i]}"; done
echo
echo "| round | what | req/s | ratio to the proxy | CPU µs per request |"
echo "|---:|---|---:|---:|---:|"
for r in $(seq 1 "$REPEATS"); do
  proxy=$(run_wrk http://127.0.0.1:9000/v1/chat/completions)
  printf '| %d | nginx proxy (to the upstream) | %.0f | 1.00 | |\n' "$r" "$proxy"
  for i in "${!bins[@]}"; do
    c0=$(cpu_ticks "${l04d_pids[$i]}")
    l04=$(run_wrk "http://127.0.0.1:${ports[$i]}/v1/chat/completions")
    c1=$(cpu_ticks "${l04d_pids[$i]}")
    awk -v r="$r" -v n="$((i + 1))" -v p="$proxy" -v l="$l04" -v dc=$((c1 - c0)) -v hz="$clk" -v d="$DURATION" \
      -v what="$([[ $CACHE == on ]] && echo "exact cache hits" || echo "cache off, to the upstream")" \
      'BEGIN { printf "| %d | l04d #%d, %s | %.0f | %.2f | %.0f |\n", r, n, what, l, l / p, dc / hz * 1e6 / (l * d) }'
  done
done
echo
for i in "${!bins[@]}"; do
  echo "l04d #$((i + 1)) cache stats after the run:"
  L04_STATE_DIR="$work/state$i" L04_RUNTIME_DIR="$work/rt$i" "$(dirname "${bins[$i]}")/l04ctl" cache stats 2>&1 | sed -n '3,5p'
done
