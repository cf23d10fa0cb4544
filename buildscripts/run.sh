#!/usr/bin/env bash
# First try: installs what is missing, builds, and runs the gateway with working
# defaults (HTTP on :8080, gRPC on :50051, data in the repository's data/).
# Unless a secret is configured, it uses the spec's sample secret "your_workspace_secret" so that
# the spec's samples can be posted as they are. Never use that secret in
# production. Extra arguments are passed to the gateway.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"

"$here/install-deps.sh"
BUILD_DIR="${BUILD_DIR:-$root/build}" "$here/build.sh"

if [ -z "${CONVOCORE_WORKSPACE_SECRET:-}" ] && [ -z "${GATEWAY_WORKSPACE_SECRET_FILE:-}" ] &&
  [[ " $* " != *" --workspace_secret_file"* ]]; then
  echo "run.sh: no secret configured; using the spec's sample secret \"your_workspace_secret\"" >&2
  export CONVOCORE_WORKSPACE_SECRET=your_workspace_secret
fi
# The durable log goes to the repository's data/ (ignored by git) wherever
# run.sh is started from; GATEWAY_DATA_DIR or --data_dir choose another.
export GATEWAY_DATA_DIR="${GATEWAY_DATA_DIR:-$root/data}"
exec "${BUILD_DIR:-$root/build}/gateway/webhook-gateway" "$@"
