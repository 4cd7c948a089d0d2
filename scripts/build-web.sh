#!/usr/bin/env bash
# build-web.sh — fetches the web UI's npm packages (web/package-lock.json) and copies the
# files the UI loads at run time into web/vendor/ (generated, git-ignored), from where the
# build embeds them into the coaphub binary (src/web). Run it before cmake --build; running
# it again is cheap. Needs node + npm (Debian: nodejs npm).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WEB="$ROOT/web"
command -v npm >/dev/null || { echo "build-web: npm not found (apt-get install nodejs npm)" >&2; exit 1; }
cd "$WEB"
# npm ci installs exactly the lockfile; skip it when node_modules already matches.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
mkdir -p vendor
for f in uPlot.iife.min.js uPlot.min.css; do
    src="node_modules/uplot/dist/$f"
    [ -f "$src" ] || { echo "build-web: missing $src" >&2; exit 1; }
    cmp -s "$src" "vendor/$f" || cp "$src" "vendor/$f"
done
cp node_modules/uplot/LICENSE vendor/uPlot.LICENSE.txt 2>/dev/null || true
echo "build-web: web/vendor ready ($(ls vendor | tr '\n' ' '))"
