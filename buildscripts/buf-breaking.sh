#!/usr/bin/env bash
# Checks the contract in protos/ against the committed v1 baseline image
# (protos/baseline/v1.binpb): after v1 the contract changes only additively,
# so any change that would break a generated client or a stored event fails
# here. Rule set: FILE (see buf.yaml), the strictest: renames break too.
#
#   buildscripts/buf-breaking.sh            # protos/ against the baseline
#   buildscripts/buf-breaking.sh DIR        # DIR (a copy of the repo's
#                                           # buf.yaml and protos/) instead
#
# The baseline changes only with a new major version of the contract
# (`buf build --exclude-source-info -o protos/baseline/v2.binpb` beside a v2
# package), never to make this check pass.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
module_root="${1:-$root}"
baseline="$root/protos/baseline/v1.binpb"
cd "$module_root"
"$here/node_modules/.bin/buf" breaking --against "$baseline"
echo "buf breaking against protos/baseline/v1.binpb: no breaking change"
