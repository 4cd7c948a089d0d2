#!/usr/bin/env bash
# Fetches Prometheus's promtool, the checker reliability.md O2 names for /metrics
# (`promtool check metrics`), without installing the prometheus package: that package would
# also install and start a Prometheus server on the machine. The Debian 12 package is
# downloaded with `apt-get download` (no root needed, the system's packages untouched) and only
# /usr/bin/promtool is kept, cached outside the clone:
#   ${COAPHUB_CACHE:-$HOME/.cache/coaphub}/promtool-VERSION/promtool
# Prints the promtool path on stdout (last line); progress goes to stderr. Exit status 0 when
# it is usable. tests/integration/test_health.sh runs it.
set -euo pipefail

cache_root=${COAPHUB_CACHE:-$HOME/.cache/coaphub}
version=$(apt-cache policy prometheus 2>/dev/null | sed -n 's/^ *Candidate: *//p')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  # No package lists (apt-get update never ran): use a cached copy if there is one.
  found=$(ls -d "$cache_root"/promtool-*/promtool 2>/dev/null | tail -n 1 || true)
  [ -n "$found" ] || { echo "promtool: no prometheus package in the apt lists" >&2; exit 1; }
  echo "$found"
  exit 0
fi
out="$cache_root/promtool-${version//[^A-Za-z0-9.+~-]/_}"
if [ -x "$out/promtool" ]; then
  echo "promtool: cached in $out" >&2
  echo "$out/promtool"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.promtool.lock"
flock 9                                   # parallel tests fetch it once
if [ ! -x "$out/promtool" ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/coaphub-promtool.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  start=$(date +%s)
  (cd "$work" && apt-get download -q "prometheus=$version" >&2 2>&1) || {
    echo "promtool: apt-get download prometheus=$version failed" >&2; exit 1; }
  dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
  mkdir -p "$out.tmp"
  install -m 0755 "$work/x/usr/bin/promtool" "$out.tmp/promtool"
  rm -rf "$out"
  mv "$out.tmp" "$out"
  echo "promtool: fetched prometheus $version in $(( $(date +%s) - start )) s, kept promtool in $out" >&2
fi
"$out/promtool" --version >&2
echo "$out/promtool"
