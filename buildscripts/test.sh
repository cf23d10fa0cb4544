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
