#!/usr/bin/env python3
"""What each inference endpoint costs beside /v1/chat/completions, in one run.

Starts its own l04d (build/bin/l04d, a temporary state directory, loopback
TCP on a free port, the offline mock provider), then sends rounds of
requests over one keep-alive connection. A round interleaves the endpoints,
so machine noise falls on all of them alike. Every request bypasses the cache
and carries a new prompt, so each one goes through the whole pipeline. Prints
p50/p99 client latency per endpoint and the ratio of its p50 to chat's p50.

  bench/endpoints_bench.py [rounds]      (default 400; stops l04d at the end)

Only 127.0.0.1 is contacted; the daemon is stopped by its PID.
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_l04d(tmp):
    state, run = os.path.join(tmp, "state"), os.path.join(tmp, "run")
    os.makedirs(state, mode=0o700)
    os.makedirs(run, mode=0o700)
    # Rate limits stay on (the stage is part of every request), high enough
    # never to reject.
    env = dict(os.environ, L04_STATE_DIR=state, L04_RUNTIME_DIR=run, L04_SHARE_DIR=os.path.join(ROOT, "share"),
               L04_RATE_LIMIT_REQUESTS_PER_MINUTE="100000000", L04_RATE_LIMIT_TOKENS_PER_MINUTE="1000000000000")
    for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        env.pop(k, None)
    log = open(os.path.join(tmp, "l04d.log"), "w+")
    proc = subprocess.Popen([os.path.join(ROOT, "build/bin/l04d"), "--foreground", "--listen", "127.0.0.1:0"],
                            env=env, stdout=log, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline:
        log.seek(0)
        text = log.read()
        m = re.search(r"port ([0-9]+)\)", text)
        if " ready on " in text and m:
            return proc, int(m.group(1))
        time.sleep(0.05)
    proc.kill()
    sys.exit("l04d did not start; see " + log.name)


def bodies(i):
    msg = [{"role": "user", "content": f"benchmark prompt number {i}"}]
    nocache = {"cache": "bypass"}
    return {
        "chat": ("/v1/chat/completions", {"model": "mock", "messages": msg, "l04": nocache}),
        "completions (spec)": ("/v1/completions", {"model": "mock", "messages": msg, "l04": nocache,
                                                   "routing": {"strategy": "balanced"}}),
        "completions (legacy)": ("/v1/completions", {"model": "mock", "prompt": msg[0]["content"], "l04": nocache}),
        "responses": ("/v1/responses", {"model": "mock", "input": msg[0]["content"], "store": False,
                                        "l04": nocache}),
        "responses (stored)": ("/v1/responses", {"model": "mock", "input": msg[0]["content"], "l04": nocache}),
        "embeddings": ("/v1/embeddings", {"model": "mock-embed", "input": msg[0]["content"],
                                          "l04": {"cache": "bypass"}}),
    }


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    tmp = tempfile.mkdtemp(prefix="l04-endpoints-bench-")
    proc, port = start_l04d(tmp)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        times = {}
        for i in range(rounds + 20):
            for name, (path, body) in bodies(i).items():
                data = json.dumps(body)
                t0 = time.perf_counter()
                conn.request("POST", path, data, {"Content-Type": "application/json"})
                r = conn.getresponse()
                payload = r.read()
                dt = (time.perf_counter() - t0) * 1e6
                if r.status != 200:
                    sys.exit(f"{name}: HTTP {r.status}: {payload[:300]!r}")
                if i >= 20:  # the first rounds warm up
                    times.setdefault(name, []).append(dt)
        base = pct(times["chat"], 50)
        print(f"l04d on 127.0.0.1:{port}, mock provider, cache bypassed, {rounds} interleaved rounds, 1 connection")
        print(f"{'endpoint':<22}{'p50 us':>10}{'p99 us':>10}{'p50 / chat':>12}")
        for name, v in times.items():
            print(f"{name:<22}{pct(v, 50):>10.0f}{pct(v, 99):>10.0f}{pct(v, 50) / base:>12.2f}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
