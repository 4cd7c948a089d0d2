#!/usr/bin/env bash
# run.sh — runs the browser tests: npm deps from web/package-lock.json (npm ci, if missing),
# Debian's chromium (never a downloaded browser), the UI served by the daemon ($COAPHUB_BIN) or,
# without it, by serve.mjs's mock. Screenshots: $COAPHUB_BUILD/browser-artifacts/.
# Extra arguments go to node --test (e.g. --test-name-pattern=login).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
: "${COAPHUB_BUILD:=$ROOT/build-asan}"
export ARTIFACTS="$COAPHUB_BUILD/browser-artifacts"
mkdir -p "$ARTIFACTS"

CHROMIUM=${CHROMIUM:-$(command -v chromium || true)}
if [ -z "$CHROMIUM" ]; then
    echo "run.sh: chromium not found (Debian package 'chromium'; scripts/install-deps.sh --test)" >&2
    exit 1
fi
export CHROMIUM
command -v node >/dev/null || { echo "run.sh: node not found" >&2; exit 1; }
# The build installs web/node_modules (src/web/CMakeLists.txt); without a build (serve.mjs's
# mock, which serves uPlot from there too) we install it here.
if [ ! -d "$ROOT/web/node_modules/playwright-core" ]; then
    (cd "$ROOT/web" && npm ci --no-audit --no-fund --loglevel=error)
fi

cd "$HERE"
exec node --test --test-concurrency=1 "$@" ui.test.mjs
