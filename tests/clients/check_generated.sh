#!/usr/bin/env bash
# Fails if the committed client stubs differ from what buildscripts/gen-clients.sh
# generates from protos/ now: a .proto changed without regenerating, or a
# generated file was edited by hand. The fix is in the message.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$root/buildscripts/gen-clients.sh" "$tmp" >/dev/null
status=0
for dir in clients/go/convocore/webhooks/v1 clients/python/src/convocore/webhooks/v1; do
  if ! diff -r -x __pycache__ "$root/$dir" "$tmp/$dir" >"$tmp/diff"; then
    echo "FAIL: $dir differs from the stubs generated from protos/:" >&2
    head -40 "$tmp/diff" >&2
    status=1
  fi
done
if [ "$status" -ne 0 ]; then
  echo "Run buildscripts/gen-clients.sh and commit the result." >&2
  exit 1
fi
echo "generated client stubs: up to date"
