#!/usr/bin/env bash
# Installs everything the build, the gateway and the tests need on Debian 12,
# and nothing else. Idempotent: a second run installs nothing and is quick.
# Every package comes from Debian, npm (buf), PyPI (Python clients) or the
# Go module proxy (Go clients and tools).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Build, run and test dependencies (C++ side and system tools).
apt_packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libpistache-dev rapidjson-dev libxxhash-dev
  libssl-dev         # gateway/core: SHA-256 digests of the workspace secrets
  openssl            # tests: certificates for the gRPC TLS suites
  libnats-dev        # --store=jetstream: the NATS C client (cnats 3.4)
  libgtest-dev libgmock-dev libbenchmark-dev libcurl4-openssl-dev
  clang libclang-rt-14-dev
  curl procps
  wrk nginx-light   # bench/run.sh: load generator and the HTTP baseline
  python3-venv       # the metrics tests' venv (prometheus_client), below
)
# The machine may carry its own Node.js (whose npm conflicts with Debian's);
# only bring Debian's when there is none.
command -v npm >/dev/null 2>&1 || apt_packages+=(nodejs npm)

missing=()
for p in "${apt_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo_if_needed apt-get update -q
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The metrics tests check /metrics with prometheus_client's own parser
# (tests/gateway/metrics/check_exposition.py), from PyPI into a venv of
# Debian's python3 at buildscripts/.venv (ignored by git): it works whatever
# python3 is first on PATH and leaves the system's alone (PEP 668).
prometheus_pin="prometheus-client==0.21.1"
venv="$here/.venv"
if ! "$venv/bin/python3" -c "import importlib.metadata as m, sys
sys.exit(m.version('prometheus-client') != '${prometheus_pin#*==}')" 2>/dev/null; then
  echo "install-deps: installing $prometheus_pin into buildscripts/.venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python3" -m pip install -q --disable-pip-version-check "$prometheus_pin"
fi

# buf, pinned by buildscripts/package-lock.json.
if [ ! -x "$here/node_modules/.bin/buf" ]; then
  echo "install-deps: installing buf from npm"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

# Client tooling (clients/, examples/, deploy/ tests): the stub generators and
# grpcurl from the Go module proxy into .tools/bin (ignored by git), and
# grpcio-tools and the Python test tools from PyPI with the python3 on PATH.
# Pinned; a tool is installed only when missing or at another version.
# Skipped where there is no Go or pip (e.g. the deploy/ image, which only
# builds and runs the gateway).
go_tools=(
  google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
  google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
  github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4
  # The JetStream tests' cluster and bench/jetstream's baseline: Debian's
  # nats-server 2.9 lacks sync_interval, which our promise needs.
  github.com/nats-io/nats-server/v2@v2.15.2
  github.com/nats-io/natscli/nats@v0.5.0
)
python_tools=(grpcio-tools==1.85.1 googleapis-common-protos==1.76.0 pytest==9.2.0 PyYAML==6.0.3)
if command -v go >/dev/null 2>&1; then
  for t in "${go_tools[@]}"; do
    path="${t%@*}"
    # `go install` names a module's binary after the path without its major
    # version suffix (nats-server/v2 installs nats-server).
    [[ "$path" =~ /v[0-9]+$ ]] && path="${path%/v*}"
    bin="$root/.tools/bin/$(basename "$path")"
    if ! go version -m "$bin" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]].*[[:space:]]${t#*@}([[:space:]]|$)"; then
      echo "install-deps: installing $t"
      GOBIN="$root/.tools/bin" GOTOOLCHAIN=local go install "$t"
    fi
  done
else
  echo "install-deps: no Go toolchain; skipping the Go client tools" >&2
fi
# Debian's own python3 refuses global installs (PEP 668): tools go only into
# a python3 that is ours to change (pyenv's on our machines).
py_own="$(python3 -c 'import os, sysconfig
print(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))' 2>/dev/null || true)"
if [ "$py_own" = True ] && python3 -m pip --version >/dev/null 2>&1; then
  missing_py="$(python3 - "${python_tools[@]}" <<'PY'
import importlib.metadata as md
import sys
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        have = None
    if have != want:
        print(pin)
PY
)"
  if [ -n "$missing_py" ]; then
    echo "install-deps: installing" $missing_py
    # shellcheck disable=SC2086 # one pin per word
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore $missing_py
  fi
else
  echo "install-deps: no pip of our own for python3; skipping the Python client tools" >&2
fi
