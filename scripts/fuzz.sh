#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for N seconds
# (default 20) starting from its checked-in corpus. New finds go to build-fuzz/new-corpus/;
# a crash fails the run and leaves its reproducer in build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DBUILD_FUZZERS=ON \
  -DSANITIZE=address,undefined -DBUILD_TESTING=ON >/dev/null
targets=$(sed -n 's/.*coaphub_fuzz_target(NAME \([a-z0-9_]*\).*/\1/p' tests/fuzz/*.cmake)
for t in $targets; do cmake --build build-fuzz -j"$(nproc)" --target "fuzz_$t"; done
for t in $targets; do
  mkdir -p "build-fuzz/new-corpus/$t"
  echo "-- fuzz_$t for ${secs}s"
  (cd build-fuzz && ASAN_OPTIONS=detect_leaks=1 "./fuzz_$t" -max_total_time="$secs" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "new-corpus/$t" "../tests/fuzz/corpus/$t" 2>&1 | tail -n 12)
done
