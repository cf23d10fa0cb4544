#!/usr/bin/env bash
# Fuzzes the translator for a bounded time: builds its libFuzzer target with
# clang (AddressSanitizer and UBSan, every finding fatal) in its own build
# directory, seeds it with the spec's samples and runs it for FUZZ_SECONDS
# (default 60). Exits non-zero on any finding (crash, leak, undefined
# behaviour, a broken promise of the translator); the reproducer is written
# under the build directory's fuzz-artifacts/ and printed.
#
#   buildscripts/fuzz.sh                  # about a minute
#   FUZZ_SECONDS=600 buildscripts/fuzz.sh # longer
#   build-fuzz/tests/gateway/core/translator_fuzz CRASH_FILE   # replay one
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build_dir="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${FUZZ_SECONDS:-60}"
jobs="${BUILD_JOBS:-$(nproc)}"

cmake -S "$root" -B "$build_dir" -G Ninja \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DGATEWAY_FUZZ=ON >/dev/null
cmake --build "$build_dir" --target translator_fuzz -j "$jobs"

# New inputs go to the first directory, kept between runs; the samples are
# read-only seeds.
corpus="$build_dir/fuzz-corpus"
artifacts="$build_dir/fuzz-artifacts"
mkdir -p "$corpus" "$artifacts"
echo "== fuzz translator for ${seconds}s"
"$build_dir/tests/gateway/core/translator_fuzz" \
  -max_total_time="$seconds" \
  -max_len=65536 \
  -timeout=10 \
  -rss_limit_mb=2048 \
  -print_final_stats=1 \
  -dict="$root/tests/gateway/core/translator_fuzz.dict" \
  -artifact_prefix="$artifacts/" \
  "$corpus" "$root/tests/testdata/samples"
echo "fuzz translator: no finding in ${seconds}s"
