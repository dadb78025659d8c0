#!/usr/bin/env python3
"""The seed article's strategy, measured for comparison: a per-flag GetParameter behind a 60 s
in-process cache, in Python with boto3, against a moto server. Written for this benchmark.

Measures a cache hit and a cache miss (one GetParameter to moto) per read of a boolean flag, and
counts SSM calls for the cost model. Writes target/ssm-flags-bench/seed_strategy.json.
Run through `make bench` (which passes --moto-port of a server it started), or standalone.
"""
import argparse
import json
import statistics
import subprocess
import socket
import sys
import time
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "ssm-flags-bench" / "seed_strategy.json"
TTL = 60.0


class SeedCache:
    """Per-flag TTL cache in front of GetParameter, as the seed article's Python example does."""

    def __init__(self, client, prefix, ttl=TTL, clock=time.monotonic):
        self.client, self.prefix, self.ttl, self.clock = client, prefix, ttl, clock
        self.cache, self.calls = {}, 0

    def get(self, name):
        key = f"{self.prefix}/{name}"
        now = self.clock()
        hit = self.cache.get(key)
        if hit is not None and now - hit[1] < self.ttl:
            return hit[0]
        self.calls += 1
        raw = self.client.get_parameter(Name=key)["Parameter"]["Value"]
        value = raw.strip().lower() == "true" if raw.strip().lower() in ("true", "false") else json.loads(raw)
        self.cache[key] = (value, now)
        return value


class CountingClient:
    """Stands in for SSM in the cost model: answers instantly and counts calls by operation."""

    def __init__(self, flags):
        self.flags, self.calls = flags, {"GetParameter": 0, "GetParametersByPath": 0}

    def get_parameter(self, Name):
        self.calls["GetParameter"] += 1
        return {"Parameter": {"Value": "true"}}

    def get_parameters_by_path_pages(self):
        pages = -(-self.flags // 10)
        self.calls["GetParametersByPath"] += pages


def cost_model(invocations=10_000, minutes=10, environments=5, flags_total=30, flags_read=3, max_age=60.0):
    """SSM calls for one workload under three strategies, with a virtual clock.

    Invocations arrive evenly over `minutes`, spread round-robin over `environments` (warm
    execution environments); each reads `flags_read` of the `flags_total` flags under the path.
    - naive: a GetParameter per flag read;
    - seed: the article's per-flag TTL cache (TTL = max_age) per environment;
    - ssm-flags: per environment, GetParametersByPath over every page at init, then again at the
      first INVOKE that finds the snapshot older than max_age (the extension's RefreshPolicy).
    """
    step = minutes * 60.0 / invocations
    now = [0.0]
    naive = CountingClient(flags_total)
    seeds = [SeedCache(CountingClient(flags_total), "/p", ttl=max_age, clock=lambda: now[0])
             for _ in range(environments)]
    ours = [CountingClient(flags_total) for _ in range(environments)]
    last_fetch = [None] * environments
    for i in range(invocations):
        now[0] = i * step
        env = i % environments
        if last_fetch[env] is None or now[0] - last_fetch[env] >= max_age:
            ours[env].get_parameters_by_path_pages()
            last_fetch[env] = now[0]
        for f in range(flags_read):
            naive.get_parameter(Name=f"/p/flag-{f}")
            seeds[env].get(f"flag-{f}")
    return {
        "workload": {"invocations": invocations, "minutes": minutes, "environments": environments,
                     "flags_total": flags_total, "flags_read": flags_read, "max_age_s": max_age},
        "naive_calls": naive.calls["GetParameter"],
        "seed_calls": sum(c.client.calls["GetParameter"] for c in seeds),
        "ssm_flags_calls": sum(c.calls["GetParametersByPath"] for c in ours),
    }


def timed(fn, n):
    """Median and MAD of n timings, in nanoseconds per call (batches of 100 for short calls)."""
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        for _ in range(100):
            fn()
        samples.append((time.perf_counter_ns() - start) / 100)
    med = statistics.median(samples)
    return med, statistics.median(abs(s - med) for s in samples)


def start_moto():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(ROOT / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).status == 200:
                return proc, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto did not start")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--moto-port", type=int)
    args = parser.parse_args()
    proc = None
    port = args.moto_port
    if port is None:
        proc, port = start_moto()
    try:
        client = boto3.client("ssm", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        prefix = "/bench/seed/features"
        client.put_parameter(Name=f"{prefix}/dark-mode", Value="true", Type="String", Overwrite=True)
        cache = SeedCache(client, prefix)
        cache.get("dark-mode")
        hit, hit_mad = timed(lambda: cache.get("dark-mode"), 200)
        miss_cache = SeedCache(client, prefix, ttl=-1.0)  # every read misses
        miss, miss_mad = timed(lambda: miss_cache.get("dark-mode"), 10)
        result = {"hit_ns": hit, "hit_mad_ns": hit_mad, "miss_ns": miss, "miss_mad_ns": miss_mad,
                  "python": sys.version.split()[0], "boto3": boto3.__version__,
                  "cost": [cost_model(flags_read=3), cost_model(flags_read=30)]}
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(result, indent=2))
        print(json.dumps(result))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
