#!/usr/bin/env bash
# Prints the Debian packages that provide the shared libraries a binary links
# (one per line), so that the runtime image installs exactly those instead of
# a second, hand-kept list. Fails if a library belongs to no package.
#   deploy/runtime-packages.sh build/gateway/webhook-gateway
set -euo pipefail
binary="$1"
# ldd prints "name => /path (addr)" for each library it resolved.
libs="$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3}')"
if ldd "$binary" | grep -q "not found"; then
  echo "runtime-packages: $binary links a library that is not installed" >&2
  exit 1
fi
for lib in $libs; do
  # Debian 12 has merged /usr: dpkg may know the library under either path.
  owner="$(dpkg-query -S "$lib" 2>/dev/null || dpkg-query -S "$(readlink -f "$lib")" 2>/dev/null)" || {
    echo "runtime-packages: no Debian package owns $lib" >&2
    exit 1
  }
  echo "${owner%%:*}"
done | sort -u
