#!/usr/bin/env bash
# Installs every build, run and test dependency of coaphub from Debian 12 packages.
# Idempotent; safe to run on a fresh machine (runs apt-get update first) and as root or via sudo.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

RUNTIME_PKGS=(
  build-essential cmake pkg-config git
  libssl-dev libsqlite3-dev libmicrohttpd-dev libjansson-dev libcrypt-dev libinih-dev
  libcurl4-openssl-dev libpq-dev
  openssl sqlite3 curl
)
TEST_PKGS=(
  libcmocka-dev clang libclang-rt-14-dev llvm clang-format
  libcoap3-bin gnutls-bin jq python3 python3-cryptography
  chromium
  postgresql-15 postgresql-client-15
  iproute2 nftables
  zzuf
  faketime
)
# zzuf: the live malformed flood (reliability R5, test_malformed_flood) mutates valid CoAP
# requests and DTLS ClientHellos with it.
# faketime: libfaketime moves the clocks of the real server forward 25 hours (test_observe_lifecycle:
# RFC 7641's CON notification at least once a day).
# iproute2, nftables: reliability tests that make a lossy link in a network namespace of their
# own (ip netns, a veth pair, nft numgen drops inside the namespace; test_coap_loss).
# postgresql-15: the tests start a throwaway cluster of their own (scripts/pg-test-server.sh,
# as the `postgres` user this package creates). The package may also create and start a "main"
# cluster on port 5432; the tests never use it.
# The build installs the web UI's npm packages (CMake runs npm ci), so node and npm are build
# tools; the machine image may bring its own newer Node.js (then Debian's would conflict), so
# Debian's are installed only when none is there.
if ! command -v npm >/dev/null 2>&1; then RUNTIME_PKGS+=(nodejs npm); fi

want=("${RUNTIME_PKGS[@]}")
if [ "${1:-}" = "--test" ]; then want+=("${TEST_PKGS[@]}"); fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# coaphub requires OpenSSL >= 3.0.22 (DTLS fixes the compact record layer relies on; issue #5).
# Debian 12 ships it as a security update, so an older installed copy is upgraded in place.
OPENSSL_MIN=3.0.22
have_ssl=$(dpkg-query -W -f='${Version}' libssl-dev 2>/dev/null || true)
if [ -n "$have_ssl" ] && ! dpkg --compare-versions "$have_ssl" ge "$OPENSSL_MIN"; then
  echo "install-deps: libssl-dev $have_ssl is older than $OPENSSL_MIN; upgrading"
  missing+=(libssl-dev libssl3 openssl)
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#want[@]} packages already installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
