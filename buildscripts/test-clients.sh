#!/usr/bin/env bash
# Runs the tests of clients/, examples/ and deploy/ (test.sh calls it after
# ctest; run it alone once install-deps.sh and build.sh have run):
#   - the committed client stubs match protos/ (tests/clients/check_generated.sh)
#   - go vet and go test of the Go client, go vet of the Go example and of
#     bench/loadgen
#   - pytest, in a fresh virtual environment where clients/python is installed
#     the way users install it: the Python client's tests, the deploy/
#     manifests against the binary, and the end-to-end run of both examples
#     and grpcurl against the real gateway ($BUILD_DIR/gateway/webhook-gateway)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build_dir="${BUILD_DIR:-$root/build}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:--buildvcs=false}"

echo "== client stubs"
"$root/tests/clients/check_generated.sh"

echo "== go (clients/go, examples/go)"
(cd "$root/clients/go" && go vet ./... && go test -count=1 ./...)
(cd "$root/examples/go" && go vet ./... && go build -o "$tmp/subscribe-go" ./subscribe \
  && go build -o "$tmp/consume-go" ./consume)
# The benchmark's load generator is not run here, but must not rot.
(cd "$root/bench/loadgen" && go vet ./... && go build -o "$tmp/loadgen" .)

echo "== pytest (tests/clients)"
# A copy, so that the build leaves nothing in the work tree; --no-deps and
# --system-site-packages: grpcio and protobuf come pinned from install-deps.sh.
cp -r "$root/clients/python" "$tmp/python-client"
python3 -m venv --system-site-packages --without-pip "$tmp/venv"
python3 -m pip --python "$tmp/venv/bin/python" install -q --disable-pip-version-check \
  --root-user-action=ignore --no-build-isolation --no-deps "$tmp/python-client"
# From $tmp, so that nothing but the installed package provides `convocore`.
cd "$tmp"
WEBHOOK_GATEWAY_BIN="$build_dir/gateway/webhook-gateway" \
  SUBSCRIBE_GO_BIN="$tmp/subscribe-go" \
  CONSUME_GO_BIN="$tmp/consume-go" \
  GRPCURL_BIN="$root/.tools/bin/grpcurl" \
  PYTHONDONTWRITEBYTECODE=1 \
  "$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider "$root/tests/clients"
