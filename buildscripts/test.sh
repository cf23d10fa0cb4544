#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the C++ suites
# (ctest), buf lint, the breaking-change check of the contract against its
# committed v1 baseline and the proof that the check can fail, the
# bounded fuzz run of the translator, and the tests of clients/, examples/ and
# deploy/ (test-clients.sh). Exits non-zero if anything fails.
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

"$here/fuzz.sh"

echo "== clients, examples and deploy"
BUILD_DIR="$build_dir" "$here/test-clients.sh"
