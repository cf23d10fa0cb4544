#!/usr/bin/env bash
# Checks the contract in protos/ for changes that would break generated
# clients, against a git ref (default: HEAD, i.e. the uncommitted change).
# Run it before changing a .proto, e.g. `buildscripts/buf-breaking.sh main`
# on a branch. Rule set: FILE (see buf.yaml).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
ref="${1:-HEAD}"
cd "$root"
if ! git rev-parse --verify -q "$ref^{commit}" >/dev/null; then
  echo "buf-breaking: no commit $ref to compare with; nothing to check"
  exit 0
fi
if ! git cat-file -e "$ref:buf.yaml" 2>/dev/null; then
  echo "buf-breaking: $ref predates the contract; nothing to check"
  exit 0
fi
"$here/node_modules/.bin/buf" breaking --against "$root/.git#ref=$ref"
echo "buf breaking against $ref: no breaking change"
