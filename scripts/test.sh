#!/usr/bin/env bash
# Installs every dependency, checks the layout of changed C lines (scripts/format-check.sh),
# builds coaphub with AddressSanitizer + UndefinedBehaviorSanitizer, runs every test (unit,
# fuzz-corpus replay, integration against the real daemon, the web UI in a real browser), then
# runs each libFuzzer target for a short while. Exit status 0 only if everything passed.
# The store's unit tests and the integration tests run twice, on SQLite and on PostgreSQL 15
# (ctest labels sqlite and postgresql): a throwaway PostgreSQL cluster is started for the run
# (scripts/pg-test-server.sh, in a temporary directory, on a free port of 127.0.0.1) and
# stopped on exit.
#   FUZZ_SECONDS=N   the fuzz run's wall budget in seconds per target (default 40: 14 targets on 2 cores
#                    get 280 s; each runs to 1 M executions or its share; 0 skips the fuzz run)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --test
echo "== format (lines changed since .clang-format came in)"
./scripts/format-check.sh

jobs=$(nproc)
echo "== build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=address,undefined >/dev/null
cmake --build build-asan -j"$jobs"

echo "== mbedTLS 3.6.6 with RFC 9146 CID, the test peer of test_dtls_cid (cached outside the clone)"
# A fresh machine fetches Debian 13's source and builds it once (a few minutes on 2 cores);
# later runs find it in ${COAPHUB_CACHE:-~/.cache/coaphub}. If it cannot be made, the test says
# so and is skipped; nothing else depends on it.
./scripts/mbedtls-cid.sh >/dev/null || echo "warning: the mbedTLS test peer could not be built; test_dtls_cid will be skipped"

echo "== promtool, the /metrics linter of test_health (only that binary, cached outside the clone)"
./scripts/promtool.sh >/dev/null || echo "warning: promtool could not be fetched; test_health skips its promtool check"

echo "== PostgreSQL test cluster"
pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/coaphub-pg.XXXXXX")
trap './scripts/pg-test-server.sh stop "$pg_dir"' EXIT
trap 'exit 130' INT TERM
./scripts/pg-test-server.sh start "$pg_dir"
# shellcheck source=/dev/null
. "$pg_dir/env"   # exports COAPHUB_TEST_PG, which the tests' PostgreSQL runs connect to

echo "== tests (store and integration tests on SQLite and on PostgreSQL)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 600 || {
  rc=$?
  echo "== last lines of the PostgreSQL test cluster's log"
  tail -n 40 "$pg_dir/server.log" || true
  exit "$rc"
}
./scripts/pg-test-server.sh stop "$pg_dir"

if [ "${FUZZ_SECONDS:-40}" != "0" ]; then
  echo "== fuzz (each target to 1 M executions within ${FUZZ_SECONDS:-40} s per target on average)"
  ./scripts/fuzz.sh "${FUZZ_SECONDS:-40}"
fi
echo "== all tests passed"
