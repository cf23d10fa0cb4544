#!/usr/bin/env bash
# Configures and builds one variant of the tree, each in its own directory:
#
#   buildscripts/build.sh                  # g++, everything, into build/
#   buildscripts/build.sh --thread-safety  # clang -Wthread-safety -Werror,
#                                          # everything, unoptimised, no debug
#                                          # info, into build-thread-safety/
#   buildscripts/build.sh --tsan           # clang ThreadSanitizer, only the
#                                          # hub, gRPC and HTTP tests, into
#                                          # build-tsan/ (buildscripts/tsan.sh)
#
# $BUILD_DIR overrides the directory, $BUILD_JOBS the parallelism. Further
# arguments go to CMake's configure step, e.g. -DCMAKE_BUILD_TYPE=Release.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${BUILD_JOBS:-$(nproc)}"

variant=default
case "${1:-}" in
  --thread-safety | --tsan)
    variant="${1#--}"
    shift
    ;;
esac

# The targets of the TSan build: the suites whose code runs on many threads
# (tests/services/hub, tests/services/groups, tests/services/grpc,
# tests/gateway/http), and the JetStream consumer groups.
tsan_targets=(event_filter_test in_memory_event_store_test event_hub_test
  subscribe_request_test event_hub_replicate_test event_stream_service_test
  consume_service_test consumer_group_test
  grpc_tls_test
  gateway_http_test
  jetstream_groups_test)

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
  tsan)
    # -O1 -g: TSan's recommendation, readable stacks at a bearable speed.
    build_dir="${BUILD_DIR:-$root/build-tsan}"
    config=(-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo
      "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" -DGATEWAY_TSAN=ON
      -DGATEWAY_BUILD_BENCH=OFF)
    targets=("${tsan_targets[@]}")
    ;;
esac

cmake -S "$root" -B "$build_dir" -G Ninja "${config[@]}" "$@" >/dev/null
if [ ${#targets[@]} -gt 0 ]; then
  cmake --build "$build_dir" -j "$jobs" --target "${targets[@]}"
else
  cmake --build "$build_dir" -j "$jobs"
fi
