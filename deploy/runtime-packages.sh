#!/usr/bin/env bash
# Prints the Debian packages that provide the shared libraries a binary links
# (one per line), so that the runtime image installs exactly those instead of
# a second, hand-kept list. Fails if a library belongs to no package.
#   deploy/runtime-packages.sh build/gateway/webhook-gateway
set -euo pipefail
binary="$1"
deps="$(ldd "$binary")"
if grep -q "not found" <<<"$deps"; then
  echo "runtime-packages: $binary links a library that is not installed:" >&2
  grep "not found" <<<"$deps" >&2
  exit 1
fi
# ldd prints "name => /path (addr)" for each library it resolved. Debian 12
# has merged /usr, so dpkg may know a library under its other path: ask for
# both names at once (one dpkg-query is much faster than one per library).
mapfile -t libs < <(awk '$2 == "=>" && $3 ~ /^\// {print $3}' <<<"$deps")
names() { echo "$1" "$(readlink -f "$1")" "${1/#\/usr\/lib\//\/lib\/}"; }
mapfile -t queries < <(for lib in "${libs[@]}"; do names "$lib" | tr ' ' '\n'; done)
owners="$(dpkg-query -S "${queries[@]}" 2>/dev/null || true)"
for lib in "${libs[@]}"; do
  # Lines are "package[:arch]: /path/to/file".
  pkg="$(awk -v paths="$(names "$lib")" '
    BEGIN { n = split(paths, p, " "); for (i = 1; i <= n; i++) want[p[i]] = 1 }
    $NF in want { sub(/:.*/, "", $1); print $1; exit }' <<<"$owners")"
  if [ -z "$pkg" ]; then
    echo "runtime-packages: no Debian package owns $lib" >&2
    exit 1
  fi
  echo "$pkg"
done | sort -u
