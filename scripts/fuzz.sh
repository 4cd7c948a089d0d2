#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan, -O1: cmake/Fuzz.cmake) and runs every
# target at once from its checked-in corpus until it has executed FUZZ_RUNS inputs (default
# 1,000,000, as reliability.md R1-R3 ask) or the run's deadline comes.
#
#   scripts/fuzz.sh [SECS]
#
# SECS (default 40) is the average time per target the run may take: the deadline is
# SECS x targets / cores seconds of wall time (40 x 14 / 2 = 280 s) after the start or, with
# FUZZ_AFTER=FILE, after FILE appears. scripts/test.sh uses the latter: it starts this script
# at idle priority (chrt --idle) before the ctests, so the fuzzers take only the CPU time the
# tests leave (most of them wait on sockets and timers: about half of 2 cores), and touches
# FILE when the tests end; from then on the fuzzers have the machine, for SECS x targets /
# cores seconds at most.
#
# Why all at once and not two at a time: each target needs a different CPU time to reach
# FUZZ_RUNS (2 to 450 CPU seconds, docs/RELIABILITY.md R1-R3); run together, the scheduler
# shares the CPU among those still running, so the cheap ones finish early and leave it to the
# costly ones, with no share to guess in advance. Peak memory is ~14 x 0.5 GB.
#
# At the deadline the targets still running are asked to stop (SIGUSR1: libFuzzer ends after
# the input it is running, with its final statistics and its leak check; SIGINT is not used, as
# libFuzzer's SIGINT handler can deadlock in ASan's allocator); such a target is reported with
# its count, not failed. A target that has not stopped a minute later is killed and fails. A
# crash, sanitizer report, leak or per-input timeout fails the run and leaves its reproducer in
# build-fuzz/. The per-input timeout is FUZZ_UNIT_TIMEOUT (60 s): libFuzzer measures it in wall
# time, and at idle priority a fuzzer can get almost no CPU while the tests take both cores.
# Each target's own libFuzzer flags (-max_len, with the reason) come from its
# tests/fuzz/<name>.cmake (FUZZ_ARGS, written to build-fuzz/fuzz_<name>.args).
#
# New finds go to build-fuzz/new-corpus/TARGET. FUZZ_MERGE=1 folds them into the repository's
# corpus at the end (minimised: only inputs that add coverage), as
#   (cd build-fuzz && ./fuzz_T -merge=1 ../tests/fuzz/corpus/T new-corpus/T)
# FUZZ_BUILD_DIR (default build-fuzz) names another build folder; FUZZ_MAX_SECONDS (3600) caps
# every target whatever the deadline.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-40}
b=${FUZZ_BUILD_DIR:-build-fuzz}
root=$(pwd)
runs=${FUZZ_RUNS:-1000000}
max_secs=${FUZZ_MAX_SECONDS:-3600}
unit_timeout=${FUZZ_UNIT_TIMEOUT:-60}
after=${FUZZ_AFTER:-}
CC=clang cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Debug -DBUILD_FUZZERS=ON \
  -DSANITIZE=address,undefined -DBUILD_TESTING=ON >/dev/null
targets=$(sed -n 's/.*coaphub_fuzz_target(NAME \([a-z0-9_]*\).*/\1/p' tests/fuzz/*.cmake)
# shellcheck disable=SC2046,SC2086
cmake --build "$b" -j"$(nproc)" --target $(printf 'fuzz_%s ' $targets) >/dev/null
rm -rf "$b/logs"
mkdir -p "$b/logs"
n=$(wc -w <<<"$targets")
budget=$((secs * n / $(nproc)))
start=$(date +%s)
echo "== fuzz: $n targets at once, each to $runs executions; the run ends $budget s after" \
  "${after:-its start}${after:+ appears} (load before: $(cut -d' ' -f1-3 /proc/loadavg))"

# One target, in the background: its pid goes to logs/T.pid, and at its end logs/T.result holds
# "exit-status wall-seconds cpu-seconds" (CPU as the shell's `times` counts its children).
run_one() {
  local t=$1 args=() rc=0 t0 t1
  [ -f "$b/fuzz_$t.args" ] && read -r -a args <"$b/fuzz_$t.args"
  mkdir -p "$b/new-corpus/$t"
  cd "$b"
  t0=$(date +%s.%N)
  ASAN_OPTIONS=detect_leaks=1 "./fuzz_$t" -runs="$runs" -max_total_time="$max_secs" \
    -timeout="$unit_timeout" -rss_limit_mb=2048 -print_final_stats=1 "${args[@]}" \
    "new-corpus/$t" "$root/tests/fuzz/corpus/$t" >"logs/$t.log" 2>&1 &
  echo $! >"logs/$t.pid"
  wait $! || rc=$?
  t1=$(date +%s.%N)
  times >"logs/$t.times" # not in a pipe: a forked pipeline would count no children
  echo "$rc $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") $(awk 'NR == 2 {
    split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.1f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' \
    "logs/$t.times")" >"logs/$t.tmp" && mv "logs/$t.tmp" "logs/$t.result"
}
for t in $targets; do
  run_one "$t" &
done

# The deadline: budget seconds after the start, or after FILE appears (FUZZ_AFTER).
deadline() {
  if [ -z "$after" ]; then
    echo $((start + budget))
  elif [ -e "$after" ]; then
    echo $(($(stat -c %Y "$after") + budget))
  else
    echo 0
  fi
}
interrupted=0
while :; do
  running=0
  for t in $targets; do [ -f "$b/logs/$t.result" ] || running=$((running + 1)); done
  [ "$running" -gt 0 ] || break
  d=$(deadline)
  if [ "$interrupted" = 0 ] && [ "$d" -gt 0 ] && [ "$(date +%s)" -ge "$d" ]; then
    interrupted=$(date +%s)
    for t in $targets; do
      [ -f "$b/logs/$t.result" ] || kill -USR1 "$(cat "$b/logs/$t.pid")" 2>/dev/null || true
    done
  elif [ "$interrupted" != 0 ] && [ "$(date +%s)" -ge $((interrupted + 60)) ]; then
    for t in $targets; do # one that did not stop within a minute of SIGUSR1
      [ -f "$b/logs/$t.result" ] || kill -KILL "$(cat "$b/logs/$t.pid")" 2>/dev/null || true
    done
  fi
  sleep 1
done
wait

rc=0
for t in $targets; do
  read -r trc real cpu <"$b/logs/$t.result"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$b/logs/$t.log")
  verdict="reached $runs"
  if [ "$trc" != 0 ]; then
    verdict="FAILED (exit $trc)"
    rc=1
  elif [ "${execs:-0}" -lt "$runs" ] && grep -q 'exiting as requested' "$b/logs/$t.log"; then
    verdict="stopped by the deadline before $runs"
  elif [ "${execs:-0}" -lt "$runs" ]; then
    verdict="stopped by FUZZ_MAX_SECONDS before $runs"
  fi
  printf -- '-- fuzz_%-15s %9s executions in %6s s wall, %6s s CPU: %s\n' \
    "$t" "${execs:-?}" "$real" "$cpu" "$verdict"
  [ "$verdict" = "${verdict#FAILED}" ] || tail -n 40 "$b/logs/$t.log"
done
echo "== fuzz: done in $(($(date +%s) - start)) s wall (load after:" \
  "$(cut -d' ' -f1-3 /proc/loadavg)); exit $rc"

if [ "${FUZZ_MERGE:-0}" = 1 ]; then
  for t in $targets; do
    (cd "$b" && ASAN_OPTIONS=detect_leaks=1 "./fuzz_$t" -merge=1 \
      "$root/tests/fuzz/corpus/$t" "new-corpus/$t" >"logs/$t.merge.log" 2>&1)
    echo "-- merged fuzz_$t: $(grep -o 'MERGE-OUTER: [0-9]* new files.*' \
      "$b/logs/$t.merge.log")"
  done
fi
exit "$rc"
