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
  libgtest-dev libgmock-dev libbenchmark-dev libcurl4-openssl-dev
  clang libclang-rt-14-dev
  curl procps
  wrk nginx-light   # bench/run.sh: load generator and the HTTP baseline
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

# buf, pinned by buildscripts/package-lock.json.
if [ ! -x "$here/node_modules/.bin/buf" ]; then
  echo "install-deps: installing buf from npm"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
