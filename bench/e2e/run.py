#!/usr/bin/env python3
"""End-to-end benchmark of the webhook gateway against baselines, in one run.

Everything runs on loopback on this machine: wrk drives HTTP load with the
spec's samples (bench/e2e/mix.lua), bench_subscriber receives the gRPC stream
and measures end-to-end latency from the gateway's receive_time to delivery.
Because the machine is shared and noisy, every figure of the gateway is also
given as a ratio to nginx (the HTTP ceiling) and to a do-nothing Pistache
handler (the framework's ceiling) measured in the same run.

Started by bench/run.sh, which builds in Release first.
"""

import argparse
import contextlib
import glob
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "tests/testdata/samples/*.json")))
MIX = os.path.join(ROOT, "bench/e2e/mix.lua")
SECRET = "your_workspace_secret"  # the spec's samples carry this one


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, deadline_s=30):
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready")


def proc_stats(pid):
    """RSS now, peak RSS (KiB) and CPU seconds used so far by `pid`."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return rss, hwm, cpu


# Linux's scheduler shares the CPU fairly between sessions (autogroups)
# before threads. By default every process of a run stays in this script's
# session, so the CPU is shared thread by thread, as when the commands run
# from one shell. With --isolate each server gets a session of its own: it is
# then held to about an equal share against the load generator (about one of
# the two cores), which favours a single-threaded server such as the
# Pistache baseline over the gateway's several threads (see docs/benchmarks.md).
ISOLATE = False


class Proc:
    """A child process that is always stopped, whatever happens."""

    def __init__(self, args, env=None, stdout=subprocess.DEVNULL, log=None):
        self.log = open(log, "w") if log else subprocess.DEVNULL
        self.p = subprocess.Popen(args, env=env, stdout=stdout, stderr=self.log,
                                  start_new_session=ISOLATE)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self.log is not subprocess.DEVNULL:
            self.log.close()


@contextlib.contextmanager
def running(*args, **kwargs):
    proc = Proc(*args, **kwargs)
    try:
        yield proc
    finally:
        proc.stop()


def wrk(url, seconds, connections, mode="plain", threads=1):
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-s", MIX, url, "--", mode] + SAMPLES,
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "requests": total, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(1) if errors else "", "raw": out}


LOADGEN = "bench/loadgen"  # under the build directory; bench/run.sh builds it


def loadgen_command(build_dir, url, seconds, rate):
    m = re.match(r"http://([^/]+)(/.*)", url)
    return [os.path.join(build_dir, LOADGEN), f"-addr={m.group(1)}", f"-path={m.group(2)}",
            f"-rate={rate}", f"-duration={seconds}s", "-connections=256"] + SAMPLES


def loadgen(build_dir, url, seconds, rate):
    """Offers exactly `rate` webhooks/s for `seconds` (open loop: sent on
    schedule whatever the response times, unlike wrk's paced mode), from
    bench/loadgen."""
    out = subprocess.run(loadgen_command(build_dir, url, seconds, rate),
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    return {"rps": r["offered_per_s"], "requests": r["offered"], "non2xx": r["non2xx"],
            "socket_errors": f"{r['errors']} ({r.get('first_error', '')})" if r["errors"] else "",
            "raw": out}


def metric_sum(metrics_text, name, **labels):
    """Sums the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in metrics_text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r'^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def histogram_quantile(metrics_text, name, q):
    """The q-quantile of histogram `name` (no labels), interpolated within
    its bucket as Prometheus's histogram_quantile() does; None if empty."""
    buckets = []
    for m in re.finditer(r'^' + re.escape(name) + r'_bucket\{le="([^"]+)"\}\s+(\S+)$',
                         metrics_text, re.M):
        buckets.append((float(m.group(1)), float(m.group(2))))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(
                count - lower_count, 1e-9)
        lower_bound, lower_count = bound, count
    return None


def store_writes(metrics_text):
    """The group commits of a run: their p50 and p99 duration in seconds
    and the mean webhooks per commit."""
    count = metric_sum(metrics_text, "gateway_store_append_events_count")
    return {
        "p50_s": histogram_quantile(metrics_text, "gateway_store_append_seconds", 0.5),
        "p99_s": histogram_quantile(metrics_text, "gateway_store_append_seconds", 0.99),
        "events_per_write": metric_sum(metrics_text, "gateway_store_append_events_sum")
        / max(count, 1),
    }


class Gateway:
    """The real binary on free ports, with a fresh data directory."""

    def __init__(self, build_dir, workdir, store, threads):
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix="data-", dir=workdir)
        env = dict(os.environ, CONVOCORE_WORKSPACE_SECRET=SECRET)
        args = [os.path.join(build_dir, "gateway/webhook-gateway"),
                f"--http_port={self.http_port}", f"--grpc_port={self.grpc_port}",
                f"--store={store}", f"--data_dir={self.data_dir}",
                f"--http_threads={threads}", "--log_level=warning"]
        self.proc = Proc(args, env=env, log=os.path.join(workdir, f"gateway-{store}.log"))
        wait_http(f"http://127.0.0.1:{self.http_port}/readyz")
        self.url = f"http://127.0.0.1:{self.http_port}/webhooks"

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics") as r:
            return r.read().decode()

    def accepted(self):
        return int(metric_sum(self.metrics(), "gateway_webhooks_total", outcome="accepted"))

    def stop(self):
        self.proc.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class Subscribers:
    def __init__(self, build_dir, workdir, grpc_port, streams, events_per_response, expect=0):
        ready = os.path.join(workdir, f"ready-{streams}-{time.time_ns()}")
        self.out = tempfile.TemporaryFile(mode="w+")
        self.proc = Proc([os.path.join(build_dir, "bench/e2e/bench_subscriber"),
                          f"--target=127.0.0.1:{grpc_port}", f"--streams={streams}",
                          f"--channels={min(streams, 4)}", f"--expect={expect}",
                          "--idle_exit_ms=3000", f"--ready_file={ready}",
                          f"--max_events_per_response={events_per_response}"],
                         stdout=self.out)
        end = time.time() + 30
        while not os.path.exists(ready):
            if time.time() > end or self.proc.p.poll() is not None:
                raise RuntimeError("subscribers did not connect")
            time.sleep(0.02)

    def result(self, timeout=120):
        self.proc.p.wait(timeout)
        self.out.seek(0)
        return json.loads(self.out.read())


def measure_nginx(args, workdir):
    port = free_port()
    conf = os.path.join(workdir, "nginx.conf")
    with open(os.path.join(ROOT, "bench/e2e/nginx.conf.in")) as f:
        text = f.read().replace("@PORT@", str(port)).replace("@DIR@", workdir)
    with open(conf, "w") as f:
        f.write(text)
    with running(["nginx", "-c", conf, "-p", workdir]):
        wait_http(f"http://127.0.0.1:{port}/")
        return wrk(f"http://127.0.0.1:{port}/webhooks", args.seconds, args.connections)


@contextlib.contextmanager
def pistache_baseline(args):
    """The minimal Pistache handler, running; yields its URL. It stays up (idle)
    between measurements so that each gateway run can be compared with one
    taken just before it."""
    base = os.path.join(args.build_dir, "bench/e2e/bench_pistache_baseline")
    out = tempfile.TemporaryFile(mode="w+")
    with running([base, "--port=0", f"--threads={args.http_threads}"], stdout=out):
        end = time.time() + 10
        port = None
        while port is None and time.time() < end:
            out.seek(0)
            text = out.read().strip()
            port = int(text) if text else None
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}/webhooks"


def run_gateway_load(args, workdir, store, streams, mode="plain", rate=0,
                     events_per_response=None):
    """One load run through the gateway with `streams` subscribers: wrk as
    fast as possible (closed loop, args.connections), or with `rate`
    bench/loadgen offering exactly that many webhooks/s (open loop).
    Subscribers ask for args.events_per_response unless told otherwise."""
    if events_per_response is None:
        events_per_response = args.events_per_response
    gw = Gateway(args.build_dir, workdir, store, args.http_threads)
    try:
        subs = Subscribers(args.build_dir, workdir, gw.grpc_port, streams, events_per_response)
        before = gw.accepted()
        _, _, cpu0 = proc_stats(gw.proc.p.pid)
        if rate:
            load = loadgen(args.build_dir, gw.url, args.seconds, rate)
        else:
            load = wrk(gw.url, args.seconds, args.connections, mode)
        rss, hwm, cpu1 = proc_stats(gw.proc.p.pid)
        metrics_text = gw.metrics()
        accepted = int(metric_sum(metrics_text, "gateway_webhooks_total", outcome="accepted"))
        sub = subs.result()
        return {
            "store": store, "streams": streams, "mode": mode, "wrk": load,
            "events_per_response": events_per_response,
            "accepted": accepted, "accepted_per_s": (accepted - before) / args.seconds,
            "subscriber": sub,
            "lost": max(0, accepted * streams - sub["events_total"]),
            "rss_kib": rss, "peak_rss_kib": hwm,
            "cpu_ms_per_1000": (cpu1 - cpu0) * 1e6 / max(1, accepted - before),
            "store_writes": store_writes(metrics_text),
        }
    finally:
        gw.stop()


def soak(args, workdir):
    gw = Gateway(args.build_dir, workdir, args.store, args.http_threads)
    rows = []
    try:
        subs = Subscribers(args.build_dir, workdir, gw.grpc_port, 1, args.events_per_response)
        load = subprocess.Popen(
            loadgen_command(args.build_dir, gw.url, args.soak_seconds, args.soak_rate),
            stdout=subprocess.PIPE, text=True)
        start = time.time()
        while load.poll() is None:
            time.sleep(min(10, args.soak_seconds / 20))
            rss, hwm, cpu = proc_stats(gw.proc.p.pid)
            rows.append((time.time() - start, rss, hwm, gw.accepted()))
            print(f"  t={rows[-1][0]:6.0f}s rss={rss / 1024:6.1f} MiB peak={hwm / 1024:6.1f} MiB "
                  f"accepted={rows[-1][3]}", flush=True)
        accepted = gw.accepted()
        sub = subs.result()
        return {"rows": rows, "accepted": accepted, "delivered": sub["events_total"],
                "lost": max(0, accepted - sub["events_total"]), "latency": sub["latency_us"]}
    finally:
        gw.stop()


def median_p99(runs, store):
    p99 = sorted(r["subscriber"]["latency_us"]["p99"] for r in runs if r["store"] == store)
    return p99[len(p99) // 2]


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.platform()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build_dir", required=True)
    ap.add_argument("--seconds", type=int, default=10, help="duration of each load run")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--http_threads", type=int, default=2, help="Pistache threads (gateway and baseline)")
    ap.add_argument("--store", default="disk", help="store for the soak")
    ap.add_argument("--soak", action="store_true", help="run the soak instead of the comparison")
    ap.add_argument("--soak_seconds", type=int, default=600)
    ap.add_argument("--soak_rate", type=int, default=5000, help="webhooks per second during the soak")
    ap.add_argument("--fanout_rate", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=2,
                    help="rounds of the full-load comparison with Pistache")
    ap.add_argument("--latency_rates", type=lambda t: [int(x) for x in t.split(",") if x],
                    default=[5000, 10000, 15000],
                    help="comma-separated fixed rates for the latency sweep")
    ap.add_argument("--events_per_response", type=int, default=100,
                    help="the subscribers' max_events_per_response (the Go and Python "
                         "helpers' default); the comparison also runs once with 1")
    ap.add_argument("--isolate", action="store_true",
                    help="give each server a session (scheduler autogroup) of its own")
    args = ap.parse_args()
    global ISOLATE
    ISOLATE = args.isolate

    workdir = tempfile.mkdtemp(prefix="gateway-bench-")
    out_dir = os.path.join(ROOT, "bench/results")
    os.makedirs(out_dir, exist_ok=True)
    lines = [f"Machine: {machine()}", f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             "Scheduling: " + ("each server in a session of its own (--isolate)" if args.isolate
                               else "one session, CPU shared thread by thread"), ""]
    try:
        if args.soak:
            print(f"soak: {args.soak_seconds}s at {args.soak_rate}/s, store={args.store}", flush=True)
            r = soak(args, workdir)
            rss = [row[1] for row in r["rows"]]
            half = rss[len(rss) // 2:] or rss
            lines += [
                f"Soak: {args.soak_seconds} s at {args.soak_rate} webhooks/s offered, store={args.store}",
                "",
                "| accepted | accepted/s | delivered | lost | RSS first | RSS min..max (second half) | peak RSS | p99 latency |",
                "|---|---|---|---|---|---|---|---|",
                f"| {r['accepted']} | {r['accepted'] / args.soak_seconds:,.0f} | {r['delivered']} | {r['lost']} "
                f"| {rss[0] / 1024:.1f} MiB "
                f"| {min(half) / 1024:.1f}..{max(half) / 1024:.1f} MiB | {r['rows'][-1][2] / 1024:.1f} MiB "
                f"| {r['latency']['p99'] / 1000:.2f} ms |",
            ]
        else:
            print("ceiling: nginx", flush=True)
            nginx = measure_nginx(args, workdir)["rps"]
            # This machine is shared and its speed drifts from minute to
            # minute: each gateway run is compared with the minimal Pistache
            # handler measured just before it, under the same load.
            runs = []
            with pistache_baseline(args) as pistache_url:
                for rep in range(args.repeat):
                    for store in ("memory", "disk"):
                        for mode in ("plain", "keepalive"):
                            print(f"[{rep + 1}/{args.repeat}] Pistache, then the gateway at full "
                                  f"load: store={store}, {mode}, 1 subscriber", flush=True)
                            base = wrk(pistache_url, args.seconds, args.connections, mode)["rps"]
                            r = run_gateway_load(args, workdir, store, 1, mode)
                            r["pistache_rps"] = base
                            runs.append(r)
                # What batches are worth: the same with one event per response.
                print("Pistache, then the gateway at full load: store=memory, plain, "
                      "1 subscriber, one event per response", flush=True)
                base = wrk(pistache_url, args.seconds, args.connections, "plain")["rps"]
                single = run_gateway_load(args, workdir, "memory", 1, "plain", events_per_response=1)
                single["pistache_rps"] = base
            bases = sorted(r["pistache_rps"] for r in runs)
            pist = bases[len(bases) // 2]
            # Latency at half the throughput target (70% of the framework's
            # ceiling), offered at an exact rate.
            half_rate = round(pist * 0.7 / 2)
            # The tail moves most from run to run on this machine: measured
            # args.repeat + 1 times per store, each run reported and the
            # median p99 taken.
            half = []
            for rep in range(args.repeat + 1):
                for store in ("memory", "disk"):
                    print(f"[{rep + 1}/{args.repeat + 1}] latency at {half_rate}/s offered, "
                          f"store={store}", flush=True)
                    half.append(run_gateway_load(args, workdir, store, 1, "plain", half_rate))
            # Where the tail stays short: the same at lower fixed rates.
            sweep = []
            for rate in args.latency_rates:
                for store in ("memory", "disk"):
                    print(f"latency at {rate}/s offered, store={store}", flush=True)
                    sweep.append(run_gateway_load(args, workdir, store, 1, "plain", rate))
            fan = []
            for streams in (1, 10, 100):
                print(f"fan-out: {streams} subscribers at ~{args.fanout_rate}/s", flush=True)
                fan.append(run_gateway_load(args, workdir, "disk", streams, "plain", args.fanout_rate))
            print(f"fan-out: 100 subscribers at ~{args.fanout_rate}/s, one event per response",
                  flush=True)
            fan.append(run_gateway_load(args, workdir, "disk", 100, "plain", args.fanout_rate,
                                        events_per_response=1))

            lines += [
                f"Baselines ({args.seconds} s each, wrk {args.connections} connections, "
                f"{args.http_threads} server threads): nginx {nginx:,.0f} req/s; "
                f"minimal Pistache handler {bases[0]:,.0f}..{bases[-1]:,.0f} req/s "
                f"(median {pist:,.0f}; measured before each full-load run, which is "
                f"compared with it). Subscribers ask for up to "
                f"{args.events_per_response} events per response unless the row says otherwise.",
                "",
                "| run | accepted/s | vs Pistache | vs nginx | lost | cut off | e2e p50 | p99 | p99.9 | peak RSS | CPU ms / 1000 events |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            def row(name, r):
                lat = r["subscriber"]["latency_us"]
                base = r.get("pistache_rps", pist)
                return (f"| {name} | {r['accepted_per_s']:,.0f} | {r['accepted_per_s'] / base:.0%} "
                        f"| {r['accepted_per_s'] / nginx:.0%} | {r['lost']} | {r['subscriber']['cut_off']} "
                        f"| {lat['p50'] / 1000:.2f} ms | {lat['p99'] / 1000:.2f} ms | {lat['p999'] / 1000:.2f} ms "
                        f"| {r['peak_rss_kib'] / 1024:.1f} MiB | {r['cpu_ms_per_1000']:.1f} |")
            for r in runs:
                conn = "Connection: keep-alive" if r["mode"] == "keepalive" else "no Connection header"
                lines.append(row(f"full load, store={r['store']}, {conn}, 1 subscriber", r))
            lines.append(row("full load, store=memory, no Connection header, 1 subscriber, "
                             "one event per response", single))
            for r in half:
                lines.append(row(f"{half_rate:,}/s offered (half of 70% of Pistache's rate), "
                                 f"store={r['store']}", r))
            def per_response(r):
                return ", one event per response" if r["events_per_response"] <= 1 else ""
            for r in fan:
                lines.append(row(f"{r['streams']} subscribers at {args.fanout_rate:,}/s offered, "
                                 f"store=disk{per_response(r)}", r))
            lines += ["", f"End-to-end p99 at {half_rate:,}/s offered, median of "
                      f"{args.repeat + 1} runs: "
                      + "; ".join(
                          f"store={store} {median_p99(half, store) / 1000:.2f} ms"
                          for store in ("memory", "disk")) + "."]
            lines += ["", "End-to-end latency by offered rate (one subscriber):", "",
                      "| offered/s | store | e2e p50 | p99 | p99.9 | CPU ms / 1000 events "
                      "| store write p50 | p99 | webhooks per write |",
                      "|---|---|---|---|---|---|---|---|---|"]
            def ms(seconds):
                return "-" if seconds is None else f"{seconds * 1000:.2f} ms"
            for r in half + sweep:
                lat = r["subscriber"]["latency_us"]
                w = r["store_writes"]
                lines.append(f"| {r['wrk']['rps']:,.0f} | {r['store']} | {lat['p50'] / 1000:.2f} ms "
                             f"| {lat['p99'] / 1000:.2f} ms | {lat['p999'] / 1000:.2f} ms "
                             f"| {r['cpu_ms_per_1000']:.1f} | {ms(w['p50_s'])} | {ms(w['p99_s'])} "
                             f"| {w['events_per_write']:.1f} |")
            lines += ["", "A store write is one group commit: with store=disk, one write and "
                      "one fsync that every webhook in it waits for before its 200 and before "
                      "any subscriber sees it (gateway_store_append_seconds)."]
            lines += ["", "| subscribers | events per response | offered/s | accepted/s "
                      "| deliveries/s | lost | cut off | e2e p50 | p99 |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for r in fan:
                s = r["subscriber"]
                lat = s["latency_us"]
                epr = "one" if r["events_per_response"] <= 1 else f"up to {r['events_per_response']}"
                lines.append(f"| {r['streams']} | {epr} | {r['wrk']['rps']:,.0f} "
                             f"| {r['accepted_per_s']:,.0f} | {s['deliveries_per_s']:,.0f} | {r['lost']} "
                             f"| {s['cut_off']} | {lat['p50'] / 1000:.2f} ms | {lat['p99'] / 1000:.2f} ms |")
        text = "\n".join(lines) + "\n"
        print()
        print(text)
        with open(os.path.join(out_dir, "latest.md"), "w") as f:
            f.write(text)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
