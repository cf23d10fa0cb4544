#!/usr/bin/env bash
# Configures and builds everything into build/ (or $BUILD_DIR).
# Extra arguments go to CMake's configure step, e.g. -DCMAKE_BUILD_TYPE=Release.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
jobs="${BUILD_JOBS:-$(nproc)}"

cmake -S "$root" -B "$build_dir" -G Ninja "$@" >/dev/null
cmake --build "$build_dir" -j "$jobs"
