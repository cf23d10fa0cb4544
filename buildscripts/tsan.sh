#!/usr/bin/env bash
# Runs the hub, groups, gRPC service, HTTP and JetStream-groups suites under
# ThreadSanitizer, bounded in time: builds them with clang -fsanitize=thread into build-tsan/ (or
# $TSAN_BUILD_DIR; buildscripts/build.sh --tsan) and runs them with ctest, each
# test at most TSAN_TEST_TIMEOUT seconds (default 120) and the whole run at
# most TSAN_RUN_TIMEOUT (default 600). Exits non-zero on any report of a race,
# a lock-order inversion or another TSan finding in our code (TSan fails the
# test), and on a timeout.
#
# Debian's gRPC, protobuf, Abseil and Pistache are not built with TSan.
# tests/support/tsan/ holds what makes that work without hiding our races:
# absl_sync_annotations.cc makes absl::Mutex visible to TSan, ignorelist.txt
# leaves gRPC's header code uninstrumented as the rest of gRPC is, and
# suppressions.txt suppresses the reports that lie wholly inside those
# libraries, each with its reason.
#
#   buildscripts/tsan.sh
#   TSAN_OPTIONS=... build-tsan/tests/services/hub/event_hub_test  # one suite
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build_dir="${TSAN_BUILD_DIR:-$root/build-tsan}"
test_timeout="${TSAN_TEST_TIMEOUT:-120}"
run_timeout="${TSAN_RUN_TIMEOUT:-600}"

BUILD_DIR="$build_dir" "$here/build.sh" --tsan

# second_deadlock_stack: both stacks of a lock-order inversion.
# ignore_noninstrumented_modules: the libc calls (memcpy, free, ...) that the
# uninstrumented libraries make are not checked either, as their own
# accesses are not; gRPC orders them with synchronisation TSan cannot see.
tsan_options=(
  "suppressions=$root/tests/support/tsan/suppressions.txt"
  second_deadlock_stack=1
  ignore_noninstrumented_modules=1
)
export TSAN_OPTIONS="${tsan_options[*]} ${TSAN_OPTIONS:-}"
echo "== ThreadSanitizer: hub, groups, gRPC service, HTTP and JetStream groups"
# A suite, or a suite and the tests of it the TSan build has (name regex).
suites=(tests/services/hub tests/services/groups tests/services/grpc
  tests/gateway/http "tests/services/jetstream:^JetStreamGroupsTest\.")
timeout --kill-after=30 "$run_timeout" bash -c '
  set -euo pipefail
  build_dir="$1" test_timeout="$2"
  shift 2
  for suite in "$@"; do
    dir="${suite%%:*}"
    filter=()
    [[ "$suite" == *:* ]] && filter=(-R "${suite#*:}")
    ctest --test-dir "$build_dir/$dir" --output-on-failure \
      -j "$(nproc)" --timeout "$test_timeout" "${filter[@]}"
  done' _ "$build_dir" "$test_timeout" "${suites[@]}"
echo "ThreadSanitizer: no finding"
