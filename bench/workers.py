#!/usr/bin/env python3
"""N worker processes of one environment, each running "invocations" that read a flag, the way
Python runs on Lambda Managed Instances (several worker processes per environment). Two designs:

  cache      each process reads the whole path from SSM with boto3 and keeps it for --ttl seconds
             (Powertools' parameters utility: a cache per process)
  extension  each process asks the ssm-flags extension on 127.0.0.1 for the flag (one shared
             agent per environment; SSM calls do not depend on the number of processes)

Prints one JSON line: {"mode", "workers", "invocations", "seconds"}. The harness counts the SSM
calls at a proxy in front of moto (extension/benches/hosts.rs).
"""
import argparse
import json
import multiprocessing as mp
import time
import urllib.request


def cache_worker(args, results):
    import boto3  # imported per process, as each Lambda worker process does

    ssm = boto3.client("ssm", endpoint_url=args.endpoint, region_name=args.region)
    paginator = ssm.get_paginator("get_parameters_by_path")
    cache, fetched_at, invocations = None, 0.0, 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        if cache is None or time.monotonic() - fetched_at >= args.ttl:
            cache = {}
            for page in paginator.paginate(Path=args.path, Recursive=True, WithDecryption=True):
                for parameter in page["Parameters"]:
                    cache[parameter["Name"]] = parameter["Value"]
            fetched_at = time.monotonic()
        _enabled = cache.get(f"{args.path}/dark-mode") == "true"
        invocations += 1
        time.sleep(args.interval)
    results.put(invocations)


def extension_worker(args, results):
    url = f"http://127.0.0.1:{args.flags_port}/v1/flags/dark-mode"
    headers = {"X-SSM-Flags-Token": args.token}
    invocations = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as answer:
            _enabled = json.load(answer)["enabled"]
        invocations += 1
        time.sleep(args.interval)
    results.put(invocations)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["cache", "extension"], required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.05, help="pause between invocations")
    parser.add_argument("--ttl", type=float, default=2.0, help="cache mode: seconds a fetch is kept")
    parser.add_argument("--path", default="/bench/hosts/features")
    parser.add_argument("--endpoint", help="cache mode: the SSM endpoint URL")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--flags-port", type=int, help="extension mode: the local API port")
    parser.add_argument("--token", help="extension mode: the local API token")
    args = parser.parse_args()
    target = cache_worker if args.mode == "cache" else extension_worker
    results = mp.Queue()
    started = time.monotonic()
    processes = [mp.Process(target=target, args=(args, results)) for _ in range(args.workers)]
    for process in processes:
        process.start()
    invocations = sum(results.get(timeout=args.seconds + 120) for _ in processes)
    for process in processes:
        process.join()
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise SystemExit(f"worker processes failed: exit codes {failed}")
    print(json.dumps({"mode": args.mode, "workers": args.workers, "invocations": invocations,
                      "seconds": round(time.monotonic() - started, 2)}))


if __name__ == "__main__":
    main()
