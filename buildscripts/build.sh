#!/usr/bin/env bash
# Configures and builds one variant of the tree, each in its own directory:
#
#   buildscripts/build.sh                  # g++, everything, into build/
#   buildscripts/build.sh --thread-safety  # clang -Wthread-safety -Werror,
#                                          # everything, unoptimised, no debug
#                                          # info, into build-thread-safety/
#
# $BUILD_DIR overrides the directory, $BUILD_JOBS the parallelism. Further
# arguments go to CMake's configure step, e.g. -DCMAKE_BUILD_TYPE=Release.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${BUILD_JOBS:-$(nproc)}"

variant=default
case "${1:-}" in
  --thread-safety)
    variant="${1#--}"
    shift
    ;;
esac

targets=()
case "$variant" in
  default)
    build_dir="${BUILD_DIR:-$root/build}"
    config=()
    ;;
  thread-safety)
    # Only the analysis matters here: -O0 without -g compiles and links
    # fastest. The tests are linked too (cheap), so that every annotated
    # header is compiled in every file that includes it.
    build_dir="${BUILD_DIR:-$root/build-thread-safety}"
    config=(-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug
      -DCMAKE_CXX_FLAGS_DEBUG=-O0 -DGATEWAY_THREAD_SAFETY=ON)
    ;;
esac

cmake -S "$root" -B "$build_dir" -G Ninja "${config[@]}" "$@" >/dev/null
if [ ${#targets[@]} -gt 0 ]; then
  cmake --build "$build_dir" -j "$jobs" --target "${targets[@]}"
else
  cmake --build "$build_dir" -j "$jobs"
fi
