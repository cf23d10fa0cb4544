#!/usr/bin/env python3
"""Ingest throughput of the real gateway: durable store vs memory, one run.

Starts the binary with --store=memory, --store=disk (--durability=fsync, the
default) and --store=disk --durability=os_cache in turn, drives each with wrk
posting the spec's samples (bench/e2e/mix.lua, every webhook unique), and
prints the median of the rounds and each store's ratio to memory. The rounds
interleave the stores so that a noisy neighbour on a shared machine hurts
them alike. The issue's target: disk/fsync at least 50% of memory.

The data directory must be on the disk being measured (not a tmpfs), hence
--data_root, by default under the build directory.

  python3 bench/store/durable_vs_memory.py --build_dir build-release
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from run import SECRET, free_port, running, wait_http, wrk  # noqa: E402

STORES = [
    ("memory", ["--store=memory"]),
    ("disk/fsync", ["--store=disk", "--durability=fsync"]),
    ("disk/os_cache", ["--store=disk", "--durability=os_cache"]),
]


def measure(args, name, store_args):
    data_dir = tempfile.mkdtemp(prefix="data-", dir=args.data_root)
    port = free_port()
    gateway = [os.path.join(args.build_dir, "gateway/webhook-gateway"),
               f"--http_port={port}", f"--grpc_port={free_port()}",
               f"--data_dir={data_dir}", f"--http_threads={args.http_threads}",
               "--log_level=warning"] + store_args
    env = dict(os.environ, CONVOCORE_WORKSPACE_SECRET=SECRET)
    try:
        log = os.path.join(args.data_root, f"gateway-{name.replace('/', '-')}.log")
        with running(gateway, env=env, log=log):
            wait_http(f"http://127.0.0.1:{port}/readyz")
            return wrk(f"http://127.0.0.1:{port}/webhooks", args.seconds,
                       args.connections, threads=args.wrk_threads)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build_dir", required=True)
    ap.add_argument("--data_root", help="where data directories go (default: BUILD_DIR/bench-data)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--http_threads", type=int, default=2)
    ap.add_argument("--wrk_threads", type=int, default=1)
    args = ap.parse_args()
    args.data_root = args.data_root or os.path.join(args.build_dir, "bench-data")
    os.makedirs(args.data_root, exist_ok=True)

    rates = {name: [] for name, _ in STORES}
    for round_index in range(args.rounds):
        for name, store_args in STORES:
            result = measure(args, name, store_args)
            if result["non2xx"] or result["socket_errors"]:
                print(f"  {name}: {result['non2xx']} non-2xx, socket errors: "
                      f"{result['socket_errors'] or 'none'}", flush=True)
            rates[name].append(result["rps"])
            print(f"round {round_index + 1} {name:14} {result['rps']:10.0f} webhooks/s",
                  flush=True)

    memory = statistics.median(rates["memory"])
    print(f"\n{args.connections} connections, {args.seconds} s x {args.rounds} rounds, "
          f"--http_threads={args.http_threads}; median:")
    print(f"{'store':14} {'webhooks/s':>12} {'vs memory':>10}")
    for name, _ in STORES:
        median = statistics.median(rates[name])
        print(f"{name:14} {median:12.0f} {100 * median / memory:9.0f}%")


if __name__ == "__main__":
    main()
