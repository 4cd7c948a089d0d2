#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for N seconds (default
# 40) starting from its checked-in corpus, as many at once as there are cores (each target is
# one process on one core, so two cores run the 14 targets' 40 s in the wall time of 20 s
# each one after the other). New finds go to build-fuzz/new-corpus/TARGET; a crash fails the
# run and leaves its reproducer in build-fuzz/. To fold the finds into the repository's
# corpus (minimised: only inputs that add coverage), run
#   (cd build-fuzz && ./fuzz_T -merge=1 ../tests/fuzz/corpus/T new-corpus/T)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-40}
jobs=${FUZZ_JOBS:-$(nproc)}
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DBUILD_FUZZERS=ON \
  -DSANITIZE=address,undefined -DBUILD_TESTING=ON >/dev/null
targets=$(sed -n 's/.*coaphub_fuzz_target(NAME \([a-z0-9_]*\).*/\1/p' tests/fuzz/*.cmake)
for t in $targets; do cmake --build build-fuzz -j"$(nproc)" --target "fuzz_$t"; done
mkdir -p build-fuzz/logs

# One target; its output is printed when it ends, so parallel runs do not interleave.
run_one() {
  local t=$1 secs=$2 rc=0
  mkdir -p "build-fuzz/new-corpus/$t"
  (cd build-fuzz && ASAN_OPTIONS=detect_leaks=1 "./fuzz_$t" -max_total_time="$secs" \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "new-corpus/$t" "../tests/fuzz/corpus/$t" >"logs/$t.log" 2>&1) || rc=$?
  echo "-- fuzz_$t for ${secs}s: exit $rc, $(sed -n 's/^stat::number_of_executed_units: *//p' \
      "build-fuzz/logs/$t.log") executions"
  [ "$rc" = 0 ] || tail -n 40 "build-fuzz/logs/$t.log"
  return "$rc"
}
export -f run_one
# shellcheck disable=SC2086
printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c 'run_one "$1" "$2"' _ {} "$secs"
