#!/usr/bin/env bash
# Builds mbedTLS 3.6.6 (Debian 13's source package) with RFC 9146 DTLS Connection ID, as the
# test peer of coaphub's CID support (tests/integration/test_dtls_cid.sh). Debian 12's TLS
# libraries have no RFC 9146 and we do not want to write the peer we test against.
#
# The source comes from the Debian mirror this machine already uses, through apt-get source with
# a private sources list and private list/cache directories: the system's apt state and its
# installed packages are never touched. The build (libraries + programs/ssl/ssl_client2) is
# cached outside the clone, so later runs cost nothing:
#   ${COAPHUB_CACHE:-$HOME/.cache/coaphub}/mbedtls-3.6.6/{include,lib,bin/ssl_client2}
# Prints the cache directory on stdout (last line); progress and timings go to stderr.
# Exit status 0 when the cache is usable.
#   --install-deps   installs the packages this needs (dpkg-dev, cmake, python3) first
set -euo pipefail

VERSION=3.6.6
SUITE=trixie
cache_root=${COAPHUB_CACHE:-$HOME/.cache/coaphub}
out="$cache_root/mbedtls-$VERSION"

if [ "${1:-}" = "--install-deps" ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  missing=()
  for p in dpkg-dev cmake python3 build-essential; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "mbedtls-cid: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q >&2
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  fi
fi

cached() { [ -x "$out/bin/ssl_client2" ] && [ -f "$out/lib/libmbedtls.a" ] && [ -f "$out/.complete" ]; }
if cached; then
  echo "mbedtls-cid: cached build in $out" >&2
  echo "$out"
  exit 0
fi

mkdir -p "$cache_root" 2>/dev/null && [ -w "$cache_root" ] ||
  { echo "mbedtls-cid: cannot write the cache directory $cache_root" >&2; exit 1; }
# One build at a time (the SQLite and PostgreSQL runs of the test may start together): the
# second waits for the first and then finds the cache.
exec 9>"$cache_root/.mbedtls-$VERSION.lock"
flock 9
if cached; then
  echo "mbedtls-cid: cached build in $out (made while we waited)" >&2
  echo "$out"
  exit 0
fi
start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/mbedtls-cid.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/src"
# The mirror of the system's own sources (deb822 or one-line format).
mirror=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ' || true)
mirror=${mirror:-http://deb.debian.org/debian}
echo "deb-src ${mirror%/} $SUITE main" >"$work/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
  -o "Dir::State::status=/dev/null" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root" -q)
echo "mbedtls-cid: fetching mbedtls $VERSION source from ${mirror%/} ($SUITE)" >&2
apt-get "${apt_opts[@]}" update >&2
(cd "$work/src" && apt-get "${apt_opts[@]}" source "mbedtls" >&2)
srcdir=$(find "$work/src" -maxdepth 1 -type d -name "mbedtls-$VERSION*" | head -n 1)
[ -n "$srcdir" ] || { echo "mbedtls-cid: no mbedtls-$VERSION source (is $SUITE still at $VERSION?)" >&2; exit 1; }
fetched=$(date +%s)

# RFC 9146 CID (not the draft's extension 53 form): on by default in 3.6, checked here.
cfg="$srcdir/include/mbedtls/mbedtls_config.h"
grep -q '^#define MBEDTLS_SSL_DTLS_CONNECTION_ID$' "$cfg" || \
  sed -i 's|^//#define MBEDTLS_SSL_DTLS_CONNECTION_ID$|#define MBEDTLS_SSL_DTLS_CONNECTION_ID|' "$cfg"
sed -i 's|^#define MBEDTLS_SSL_DTLS_CONNECTION_ID_COMPAT .*|#define MBEDTLS_SSL_DTLS_CONNECTION_ID_COMPAT 0|' "$cfg"
grep -q '^#define MBEDTLS_SSL_DTLS_CONNECTION_ID$' "$cfg"
grep -q '^#define MBEDTLS_SSL_DTLS_CONNECTION_ID_COMPAT 0' "$cfg"

jobs=$(nproc)
cmake -S "$srcdir" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DENABLE_TESTING=OFF \
  -DENABLE_PROGRAMS=ON -DUSE_SHARED_MBEDTLS_LIBRARY=OFF -DUSE_STATIC_MBEDTLS_LIBRARY=ON \
  -DMBEDTLS_FATAL_WARNINGS=OFF >&2
cmake --build "$work/build" -j"$jobs" --target mbedtls mbedx509 mbedcrypto ssl_client2 >&2

rm -rf "$out.tmp"
mkdir -p "$out.tmp/lib" "$out.tmp/bin"
cp -r "$srcdir/include" "$out.tmp/include"
find "$work/build/library" -name 'libmbed*.a' -exec cp {} "$out.tmp/lib/" \;
cp "$work/build/programs/ssl/ssl_client2" "$out.tmp/bin/"
end=$(date +%s)
echo "fetch $((fetched - start)) s, build $((end - fetched)) s (nproc $jobs)" >"$out.tmp/.complete"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "mbedtls-cid: fresh build: fetch $((fetched - start)) s, build $((end - fetched)) s on $jobs CPUs; cached in $out" >&2
echo "$out"
