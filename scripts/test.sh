#!/usr/bin/env bash
# Installs every dependency, checks the layout of changed C lines (scripts/format-check.sh),
# builds coaphub with AddressSanitizer + UndefinedBehaviorSanitizer, runs every test (unit,
# fuzz-corpus replay, integration against the real daemon, the web UI in a real browser), then
# runs each libFuzzer target for a short while. Exit status 0 only if everything passed.
#   FUZZ_SECONDS=N   seconds per fuzz target (default 20; 0 skips the fuzz run)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --test
echo "== format (lines changed since .clang-format came in)"
./scripts/format-check.sh

jobs=$(nproc)
echo "== build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=address,undefined >/dev/null
cmake --build build-asan -j"$jobs"

echo "== tests"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 600

if [ "${FUZZ_SECONDS:-20}" != "0" ]; then
  echo "== fuzz (${FUZZ_SECONDS:-20}s per target)"
  ./scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
fi
echo "== all tests passed"
