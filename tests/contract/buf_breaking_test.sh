#!/usr/bin/env bash
# Proves that the contract's breaking-change check can fail: in copies of
# protos/, a removed field and a renumbered tag must each be reported
# against the committed baseline, and an additive change must pass. Without
# this, a check that compares the tree with itself passes for ever.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
check="$root/buildscripts/buf-breaking.sh"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
events="protos/convocore/webhooks/v1/events.proto"
passed=0
failed=0

copy() {
  rm -rf "$tmp/module"
  mkdir -p "$tmp/module"
  cp "$root/buf.yaml" "$tmp/module/"
  cp -r "$root/protos" "$tmp/module/"
}

# expect NAME breaks|passes PATTERN: runs the check on the mutated copy.
expect() {
  local name="$1" want="$2" pattern="$3" out rc=0
  out="$("$check" "$tmp/module" 2>&1)" || rc=$?
  if [ "$want" = breaks ] && [ "$rc" -ne 0 ] && grep -qE "$pattern" <<<"$out"; then
    echo "ok: $name is reported"
    passed=$((passed + 1))
  elif [ "$want" = passes ] && [ "$rc" -eq 0 ]; then
    echo "ok: $name passes"
    passed=$((passed + 1))
  else
    echo "FAIL: $name: expected the check to say it $want (exit $rc):" >&2
    echo "$out" >&2
    failed=$((failed + 1))
  fi
}

copy
expect "the unchanged contract" passes ""

copy
# Removes convo_id from every payload that has it.
sed -i '/  string convo_id = 3;/d' "$tmp/module/$events"
expect "a removed field" breaks 'Previously present field "3" with name "convo_id"'

copy
sed -i 's/  string message_content = 4;/  string message_content = 40;/' "$tmp/module/$events"
expect "a renumbered tag" breaks 'Previously present field "4" with name "message_content"'

copy
sed -i 's/  string message_content = 4;/  string message_content = 4;\n  string message_language = 41;/' "$tmp/module/$events"
expect "an added field" passes ""

echo "buf_breaking_test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
