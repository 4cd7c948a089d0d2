#!/usr/bin/env bash
# Installs what coaphub needs (Debian 12 packages), builds it, and starts the server on SQLite:
# CoAP on UDP 5683, REST API on http://HOST:8080, data in ${COAPHUB_DATA_DIR:-~/.local/state/coaphub}.
# Any argument is passed to coaphub (see `build/coaphub --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build -j"$(nproc)" --target coaphub coaphub-cli
echo "coaphub: web UI and REST API on http://localhost:${COAPHUB_HTTP_PORT:-8080}/ (log in with the admin user printed below on first start)"
exec ./build/coaphub "$@"
