#!/usr/bin/env python3
"""The JetStream store against its ceilings, side by side in one run.

On loopback on this machine: a JetStream cluster of one node (R1) and of
three (R3), every node with `sync_interval: always` as the store requires.
For each, in alternating rounds (A B A B, so that the machine's drift hits
both alike):

  * the gateway with --store=jetstream at full load (wrk, the spec's samples,
    args.connections connections) with one subscriber that must receive every
    accepted event;
  * `nats bench js pub` (natscli, the engine's reference client) publishing
    the same bytes the gateway publishes (one of its own stored events, with
    a Nats-Msg-Id as the gateway sets), acknowledged per message: `async`
    with a window of args.connections outstanding publishes (what the
    gateway's connections keep in flight) and `sync` with
    args.connections clients, each waiting for every PubAck.

Then the embedded log (--store=disk) at full load, and the latency from
receipt to subscriber at fixed rates for R1, R3 and disk. Prints a table and
writes it to bench/results/jetstream.md.

Started by bench/run.sh --jetstream, which builds in Release first.
"""

import argparse
import base64
import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
import run as e2e  # noqa: E402  (the e2e benchmark's helpers: wrk, loadgen, subscribers)

ROOT = e2e.ROOT
TOOLS = os.path.join(ROOT, ".tools/bin")
STREAM = "CONVOCORE_EVENTS"


def tool(name):
    path = os.path.join(TOOLS, name)
    if not os.path.exists(path):
        raise SystemExit(f"{path} is missing: run buildscripts/install-deps.sh")
    return path


class Cluster:
    """`size` nats-server nodes on free loopback ports, always stopped."""

    def __init__(self, workdir, size):
        self.dir = tempfile.mkdtemp(prefix=f"nats{size}-", dir=workdir)
        clients = [e2e.free_port() for _ in range(size)]
        routes = [e2e.free_port() for _ in range(size)]
        self.url = ",".join(f"nats://127.0.0.1:{p}" for p in clients)
        self.procs = []
        for k in range(size):
            conf = os.path.join(self.dir, f"n{k}.conf")
            cluster = ""
            if size > 1:
                peers = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
                cluster = (f"cluster {{ name: bench, listen: 127.0.0.1:{routes[k]}, "
                           f"routes: [{peers}] }}")
            with open(conf, "w") as f:
                f.write(f"server_name: n{k}\nlisten: 127.0.0.1:{clients[k]}\n"
                        f"jetstream {{ store_dir: {self.dir}/d{k}, sync_interval: always }}\n"
                        f"{cluster}\n")
            self.procs.append(e2e.Proc([tool("nats-server"), "-c", conf],
                                       log=os.path.join(self.dir, f"n{k}.log")))
        self.replicas = size
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self):
        end = time.time() + 60
        while True:  # ready when JetStream answers (a meta leader exists)
            r = self.nats("stream", "ls", "--json", check=False, timeout=10)
            if r.returncode == 0:
                return
            if time.time() > end:
                raise RuntimeError(f"JetStream on {self.url} did not start: {r.stderr}")
            time.sleep(0.2)

    def nats(self, *args, check=True, timeout=600):
        return subprocess.run([tool("nats"), "-s", self.url, *args], capture_output=True,
                              text=True, check=check, timeout=timeout)

    def cpu(self):
        """CPU seconds the servers have used so far, all nodes together."""
        return sum(e2e.proc_stats(p.p.pid)[2] for p in self.procs)

    def stop(self):
        for p in self.procs:
            p.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def cluster(workdir, size):
    c = Cluster(workdir, size)
    try:
        yield c
    finally:
        c.stop()


class JetStreamGateway(e2e.Gateway):
    """The real binary with --store=jetstream on `nats`, or with the
    embedded log when `nats` is None."""

    def __init__(self, args, workdir, nats=None):
        self.http_port = e2e.free_port()
        self.grpc_port = e2e.free_port()
        self.data_dir = tempfile.mkdtemp(prefix="data-", dir=workdir)
        store = ["--store=disk", f"--data_dir={self.data_dir}"]
        if nats is not None:
            store = ["--store=jetstream", f"--nats_url={nats.url}",
                     f"--nats_replicas={nats.replicas}"]
        env = dict(os.environ, CONVOCORE_WORKSPACE_SECRET=e2e.SECRET)
        self.proc = e2e.Proc(
            [os.path.join(args.build_dir, "gateway/webhook-gateway"),
             f"--http_port={self.http_port}", f"--grpc_port={self.grpc_port}",
             f"--http_threads={args.http_threads}", "--log_level=warning"] + store,
            env=env, log=os.path.join(workdir, "gateway.log"))
        e2e.wait_http(f"http://127.0.0.1:{self.http_port}/readyz", 60)
        self.url = f"http://127.0.0.1:{self.http_port}/webhooks"


def gateway_run(args, workdir, nats, rate=0):
    """One run with one subscriber: wrk at full load, or bench/loadgen at
    exactly `rate` webhooks/s. `nats` None means the embedded log."""
    gw = JetStreamGateway(args, workdir, nats)
    try:
        subs = e2e.Subscribers(args.build_dir, workdir, gw.grpc_port, 1,
                               args.events_per_response)
        before = gw.accepted()
        _, _, cpu0 = e2e.proc_stats(gw.proc.p.pid)
        servers0 = nats.cpu() if nats else 0.0
        client0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if rate:
            load = e2e.loadgen(args.build_dir, gw.url, args.seconds, rate)
        else:
            load = e2e.wrk(gw.url, args.seconds, args.connections)
        _, hwm, cpu1 = e2e.proc_stats(gw.proc.p.pid)
        servers1 = nats.cpu() if nats else 0.0
        client1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_cpu = (client1.ru_utime + client1.ru_stime) - (client0.ru_utime + client0.ru_stime)
        metrics = gw.metrics()
        accepted = int(e2e.metric_sum(metrics, "gateway_webhooks_total", outcome="accepted"))
        sub = subs.result()
        return {
            "load": load, "accepted": accepted,
            "accepted_per_s": (accepted - before) / args.seconds,
            "delivered": sub["events_total"], "lost": max(0, accepted - sub["events_total"]),
            "latency_us": sub["latency_us"], "peak_rss_kib": hwm,
            "cpu_ms_per_1000": (cpu1 - cpu0) * 1e6 / max(1, accepted - before),
            "servers_cpu_ms_per_1000": (servers1 - servers0) * 1e6 / max(1, accepted - before),
            "load_cpu_ms_per_1000": load_cpu * 1e6 / max(1, accepted - before),
            "publish_p50_s": e2e.histogram_quantile(metrics, "gateway_jetstream_publish_seconds", 0.5),
            "publish_p99_s": e2e.histogram_quantile(metrics, "gateway_jetstream_publish_seconds", 0.99),
            "publish_failures": e2e.metric_sum(metrics, "gateway_jetstream_publish_failures_total"),
        }
    finally:
        gw.stop()


def gateway_payload(nats, workdir):
    """One event as the gateway stored it, of the stream's mean size: the
    bytes `nats bench` publishes."""
    info = json.loads(nats.nats("stream", "info", STREAM, "--json").stdout)
    last = info["state"]["last_seq"]
    payloads = []
    for seq in sorted({1 + k * (last - 1) // 39 for k in range(40)}):
        got = json.loads(nats.nats("stream", "get", STREAM, str(seq), "--json").stdout)
        payloads.append(base64.b64decode(got["data"]))
    mean = sum(map(len, payloads)) / len(payloads)
    chosen = min(payloads, key=lambda p: abs(len(p) - mean))
    path = os.path.join(workdir, "payload.bin")
    with open(path, "wb") as f:
        f.write(chosen)
    return path, len(chosen), mean


def nats_bench(args, nats, payload, mode):
    """`nats bench js pub` on a fresh file stream of the cluster's replica
    count, every message with a Nats-Msg-Id; returns messages/s."""
    stream = f"bench{time.time_ns()}"
    if mode == "async":
        shape = ["async", f"--batch={args.connections}", "--clients=1"]
    else:
        shape = ["sync", f"--clients={args.connections}"]
    servers0 = nats.cpu()
    client0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = nats.nats("bench", "js", "pub", *shape, "bench.subject", "--create", "--dedup",
                  f"--stream={stream}", f"--replicas={nats.replicas}", "--storage=file",
                  f"--payload={payload}", f"--msgs={args.nats_msgs}", "--no-progress")
    client1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    servers1 = nats.cpu()
    nats.nats("stream", "rm", stream, "-f", check=False)
    client_cpu = (client1.ru_utime + client1.ru_stime) - (client0.ru_utime + client0.ru_stime)
    # One client prints "... publisher stats: N msgs/sec ...", several print
    # theirs and then "... aggregated stats: N msgs/sec".
    stats = [line for line in r.stdout.splitlines() if "stats:" in line and "msgs/sec" in line]
    if not stats:
        raise RuntimeError(f"nats bench printed no rate:\n{r.stdout}\n{r.stderr}")
    m = re.search(r"stats: ([\d,.]+) msgs/sec", stats[-1])
    return {"rate": float(m.group(1).replace(",", "")), "summary": stats[-1].strip(),
            "client_cpu_ms_per_1000": client_cpu * 1e6 / args.nats_msgs,
            "servers_cpu_ms_per_1000": (servers1 - servers0) * 1e6 / args.nats_msgs}


def server_version():
    return subprocess.run([tool("nats-server"), "--version"], capture_output=True,
                          text=True).stdout.strip()


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build_dir", required=True)
    ap.add_argument("--seconds", type=int, default=10, help="duration of each gateway run")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--http_threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="A B rounds per cluster size")
    ap.add_argument("--nats_msgs", type=int, default=50000, help="messages per nats bench run")
    ap.add_argument("--latency_rates", type=lambda t: [int(x) for x in t.split(",") if x],
                    default=[1000, 2000])
    ap.add_argument("--events_per_response", type=int, default=100)
    ap.add_argument("--quick", action="store_true",
                    help="one round, 3 s runs, 10000 messages: checks the script")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.nats_msgs, args.latency_rates = 1, 3, 10000, [1000]

    workdir = tempfile.mkdtemp(prefix="jetstream-bench-")
    lines = [f"Machine: {e2e.machine()}",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"{server_version()}, "
             f"every node with sync_interval: always; gateway runs {args.seconds} s, wrk "
             f"{args.connections} connections, {args.http_threads} HTTP threads, one subscriber; "
             f"nats bench {args.nats_msgs} messages per run.", ""]
    results = {}
    try:
        for size in (1, 3):
            with cluster(workdir, size) as nats:
                gw_runs, async_runs, sync_runs = [], [], []
                payload = None
                for rnd in range(args.rounds):
                    print(f"R{size} [{rnd + 1}/{args.rounds}] gateway at full load", flush=True)
                    gw_runs.append(gateway_run(args, workdir, nats))
                    if payload is None:
                        payload, size_bytes, mean = gateway_payload(nats, workdir)
                    print(f"R{size} [{rnd + 1}/{args.rounds}] nats bench async, then sync "
                          f"({size_bytes} B payload)", flush=True)
                    async_runs.append(nats_bench(args, nats, payload, "async"))
                    sync_runs.append(nats_bench(args, nats, payload, "sync"))
                latency = []
                for rate in args.latency_rates:
                    print(f"R{size} latency at {rate}/s offered", flush=True)
                    latency.append((rate, gateway_run(args, workdir, nats, rate)))
                results[size] = {"gateway": gw_runs, "async": async_runs, "sync": sync_runs,
                                 "latency": latency, "payload": (size_bytes, mean)}
        disk = []
        for rnd in range(args.rounds):
            print(f"disk [{rnd + 1}/{args.rounds}] gateway at full load", flush=True)
            disk.append(gateway_run(args, workdir, None))
        disk_latency = []
        for rate in args.latency_rates:
            print(f"disk latency at {rate}/s offered", flush=True)
            disk_latency.append((rate, gateway_run(args, workdir, None, rate)))

        def ms(seconds):
            return "-" if seconds is None else f"{seconds * 1000:.2f} ms"

        lines += ["| store | gateway accepted/s (each round) | lost | nats bench async "
                  "| nats bench sync | gateway / async (median) | gateway / sync (median) "
                  "| PubAck p50 | p99 | CPU ms / 1000 |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for size in (1, 3):
            r = results[size]
            gw = [x["accepted_per_s"] for x in r["gateway"]]
            asy = [x["rate"] for x in r["async"]]
            syn = [x["rate"] for x in r["sync"]]
            last = r["gateway"][-1]
            lines.append(
                f"| jetstream R{size} | {', '.join(f'{v:,.0f}' for v in gw)} "
                f"| {sum(x['lost'] for x in r['gateway'])} "
                f"| {', '.join(f'{v:,.0f}' for v in asy)} | {', '.join(f'{v:,.0f}' for v in syn)} "
                f"| {median([g / a for g, a in zip(gw, asy)]):.0%} "
                f"| {median([g / s for g, s in zip(gw, syn)]):.0%} "
                f"| {ms(last['publish_p50_s'])} | {ms(last['publish_p99_s'])} "
                f"| {last['cpu_ms_per_1000']:.1f} |")
        disk_rates = ", ".join(f"{x['accepted_per_s']:,.0f}" for x in disk)
        lines.append(f"| disk | {disk_rates} "
                     f"| {sum(x['lost'] for x in disk)} | - | - | - | - | - | - "
                     f"| {disk[-1]['cpu_ms_per_1000']:.1f} |")
        lines += ["", "Where the CPU goes (ms per 1000 messages, medians; the machine has 2 cores "
                  "for everything): the load generator (wrk, for the gateway), the publisher "
                  "(the gateway process, or the nats CLI) and the NATS servers, all nodes together.", "",
                  "| store | wrk | gateway | servers under the gateway | nats bench async client "
                  "| servers under it | nats bench sync client | servers under it |",
                  "|---|---|---|---|---|---|---|---|"]
        for size in (1, 3):
            r = results[size]
            def med(runs, key):
                return median([x[key] for x in runs])
            lines.append(
                f"| jetstream R{size} | {med(r['gateway'], 'load_cpu_ms_per_1000'):.1f} "
                f"| {med(r['gateway'], 'cpu_ms_per_1000'):.1f} "
                f"| {med(r['gateway'], 'servers_cpu_ms_per_1000'):.1f} "
                f"| {med(r['async'], 'client_cpu_ms_per_1000'):.1f} "
                f"| {med(r['async'], 'servers_cpu_ms_per_1000'):.1f} "
                f"| {med(r['sync'], 'client_cpu_ms_per_1000'):.1f} "
                f"| {med(r['sync'], 'servers_cpu_ms_per_1000'):.1f} |")
        size_bytes, mean = results[1]["payload"]
        lines += ["", f"nats bench publishes one of the gateway's stored events ({size_bytes} B; "
                  f"the mean of 40 spread over the stream is {mean:.0f} B) with a Nats-Msg-Id: async "
                  f"keeps {args.connections} publishes in flight from one client, sync has "
                  f"{args.connections} clients each waiting for its PubAck.", "",
                  "Receipt to subscriber (the gateway's receive_time to the subscriber's clock), "
                  "one subscriber, open loop at a fixed rate:", "",
                  "| store | offered/s | accepted/s | lost | p50 | p99 | p99.9 | PubAck p50 | p99 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        rows = [(f"jetstream R{s}", rate, run) for s in (1, 3) for rate, run in results[s]["latency"]]
        rows += [("disk", rate, run) for rate, run in disk_latency]
        for name, rate, run in rows:
            lat = run["latency_us"]
            lines.append(f"| {name} | {rate:,} | {run['accepted_per_s']:,.0f} | {run['lost']} "
                         f"| {lat['p50'] / 1000:.2f} ms | {lat['p99'] / 1000:.2f} ms "
                         f"| {lat['p999'] / 1000:.2f} ms | {ms(run['publish_p50_s'])} "
                         f"| {ms(run['publish_p99_s'])} |")
        text = "\n".join(lines) + "\n"
        print()
        print(text)
        out_dir = os.path.join(ROOT, "bench/results")
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "jetstream.md"), "w") as f:
            f.write(text)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
