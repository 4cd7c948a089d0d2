#!/usr/bin/env bash
# Installs every dependency, checks the layout of changed C lines (scripts/format-check.sh),
# builds coaphub with AddressSanitizer + UndefinedBehaviorSanitizer, runs every test (unit,
# fuzz-corpus replay, integration against the real daemon, the web UI in a real browser), then
# runs each libFuzzer target to 1 M executions. Exit status 0 only if everything passed.
# The store's unit tests and the integration tests run twice, on SQLite and on PostgreSQL 15
# (ctest labels sqlite and postgresql): a throwaway PostgreSQL cluster is started for the run
# (scripts/pg-test-server.sh, in a temporary directory, on a free port of 127.0.0.1) and
# stopped on exit.
# The fuzz targets (scripts/fuzz.sh) are built and run beside the tests at idle priority
# (chrt --idle): most tests wait on sockets and timers and leave about half of the 2 cores
# unused, and a SCHED_IDLE process gets only that, so the tests keep their timing. When the
# tests end the fuzzers get the whole machine, for FUZZ_SECONDS x targets / cores at most.
#   FUZZ_SECONDS=N   that budget in seconds per target (default 40: 14 targets on 2 cores get
#                    280 s after the tests; each target runs to 1 M executions or the end of
#                    the budget; 0 skips the fuzz run)
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
fuzz_dir=$(mktemp -d "${TMPDIR:-/tmp}/coaphub-fuzz-run.XXXXXX")
fuzz_pid=
stop_fuzz() { # the whole process group fuzz.sh leads (its fuzzers too)
  [ -z "$fuzz_pid" ] || kill -- -"$fuzz_pid" 2>/dev/null || true
}
trap 'stop_fuzz; ./scripts/pg-test-server.sh stop "$pg_dir"; rm -rf "$fuzz_dir"' EXIT
trap 'exit 130' INT TERM
./scripts/pg-test-server.sh start "$pg_dir"
# shellcheck source=/dev/null
. "$pg_dir/env"   # exports COAPHUB_TEST_PG, which the tests' PostgreSQL runs connect to

if [ "${FUZZ_SECONDS:-40}" != "0" ]; then
  echo "== fuzz targets: built and run at idle priority beside the tests (report after them)"
  # setsid: its own process group, so stop_fuzz reaches every fuzzer it started.
  FUZZ_AFTER="$fuzz_dir/tests-done" setsid chrt --idle 0 \
    ./scripts/fuzz.sh "${FUZZ_SECONDS:-40}" >"$fuzz_dir/fuzz.log" 2>&1 &
  fuzz_pid=$!
fi

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

if [ -n "$fuzz_pid" ]; then
  touch "$fuzz_dir/tests-done"
  echo "== fuzz (each target to 1 M executions; begun beside the tests, at most" \
    "${FUZZ_SECONDS:-40} s per target on average from now)"
  rc=0
  wait "$fuzz_pid" || rc=$?
  fuzz_pid=
  cat "$fuzz_dir/fuzz.log"
  [ "$rc" = 0 ] || exit "$rc"
fi
echo "== all tests passed"
