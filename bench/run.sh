#!/usr/bin/env bash
# The end-to-end benchmark: builds in Release, then measures the gateway
# against nginx and a minimal Pistache handler on this machine in one run and
# prints a table (also written to bench/results/latest.md).
#
#   bench/run.sh            # the full comparison (a few minutes)
#   bench/run.sh --soak     # 10 minutes at a steady rate: RSS and loss over time
#   bench/run.sh --jetstream [--quick]  # the JetStream store (R1, R3) against
#                           # nats bench and the embedded log (bench/jetstream)
#   bench/run.sh --groups [flags]  # a consumer group of 4 acking members
#                           # against one Subscribe stream (bench/groups)
#   bench/run.sh --groups --nats [flags]  # the same on JetStream
#   bench/run.sh --help     # every option
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/buildscripts/install-deps.sh"
BUILD_DIR="$root/build-release" "$root/buildscripts/build.sh" \
  -DCMAKE_BUILD_TYPE=Release -DGATEWAY_BUILD_TESTS=OFF -DGATEWAY_BUILD_BENCH=ON
# The open-loop load generator (Go, no dependencies beyond the standard library).
(cd "$root/bench/loadgen" && GOTOOLCHAIN=local go build -o "$root/build-release/bench/loadgen" .)
if [[ "${1:-}" == --groups ]]; then
  shift
  if [[ "${1:-}" != --nats ]]; then
    exec "$root/build-release/bench/groups/consume_bench" "$@"
  fi
  shift
  # The JetStream store and groups, on a nats-server of its own (loopback, a
  # free port, a temporary store), stopped whatever happens.
  nats_dir="$(mktemp -d)"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "$root/.tools/bin/nats-server" -a 127.0.0.1 -p "$port" -js -sd "$nats_dir" \
    >"$nats_dir/log" 2>&1 &
  nats_pid=$!
  trap 'kill "$nats_pid" 2>/dev/null; wait "$nats_pid" 2>/dev/null; rm -rf "$nats_dir"' EXIT
  for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.1
  done
  "$root/build-release/bench/groups/consume_bench" --nats_url="nats://127.0.0.1:$port" "$@"
  exit
fi
if [[ "${1:-}" == --jetstream ]]; then
  shift
  exec python3 "$root/bench/jetstream/run.py" --build_dir "$root/build-release" "$@"
fi
exec python3 "$root/bench/e2e/run.py" --build_dir "$root/build-release" "$@"
