#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the C++ suites
# (ctest), buf lint, the breaking-change check of the contract against its
# committed v1 baseline and the proof that the check can fail, clang's
# thread-safety analysis of our code (build.sh --thread-safety: the whole
# tree compiled with -Wthread-safety -Werror), the hub, gRPC and HTTP suites
# under ThreadSanitizer (tsan.sh), the bounded fuzz run of the translator, and
# the tests of clients/, examples/ and deploy/ (test-clients.sh). Exits
# non-zero if anything fails.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build_dir="${BUILD_DIR:-$root/build}"

"$here/install-deps.sh"
BUILD_DIR="$build_dir" "$here/build.sh"

echo "== buf lint"
(cd "$root" && "$here/node_modules/.bin/buf" lint)
echo "buf lint: clean"
"$here/buf-breaking.sh"
"$root/tests/contract/buf_breaking_test.sh"

# Every gateway the suites start leaves its log here; none may hold a
# credential the tests use (tests/support/test_credentials.txt).
CONVOCORE_TEST_LOG_DIR="$(mktemp -d)"
export CONVOCORE_TEST_LOG_DIR
trap 'rm -rf "$CONVOCORE_TEST_LOG_DIR"' EXIT

echo "== ctest"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" --timeout 300

echo "== thread-safety analysis (clang -Wthread-safety -Werror)"
BUILD_DIR="${THREAD_SAFETY_BUILD_DIR:-$root/build-thread-safety}" \
  "$here/build.sh" --thread-safety
echo "thread-safety analysis: clean"

"$here/tsan.sh"

"$here/fuzz.sh"

echo "== clients, examples and deploy"
BUILD_DIR="$build_dir" "$here/test-clients.sh"

echo "== no credential in any gateway log of this run"
logs=$(find "$CONVOCORE_TEST_LOG_DIR" -type f | wc -l)
if [ "$logs" -lt 20 ]; then
  echo "only $logs gateway logs were kept: the check would prove nothing" >&2
  exit 1
fi
if grep -rlF -f "$root/tests/support/test_credentials.txt" "$CONVOCORE_TEST_LOG_DIR"; then
  echo "a credential appears in the gateway logs above" >&2
  exit 1
fi
echo "no credential in $logs gateway logs"
