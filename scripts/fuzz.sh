#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan, -O1: cmake/Fuzz.cmake) and runs each
# from its checked-in corpus until it has executed FUZZ_RUNS inputs (default 1,000,000, as
# reliability.md R1-R3 ask) or reached its time cap, as many targets at once as there are cores.
#
#   scripts/fuzz.sh [SECS]
#
# SECS (default 40, scripts/test.sh's FUZZ_SECONDS) is the average time per target the run may
# take: the whole run gets SECS x targets / jobs seconds of wall time (CI: 40 x 14 / 2 = 280 s).
# Targets start cheapest first (CPU time to FUZZ_RUNS, the order below); each is capped at an
# even share of the time left among the targets not yet started, so the ones that finish early
# leave their share to the costly ones at the end (at least FUZZ_MIN_SECONDS, 15; at most
# FUZZ_MAX_SECONDS, 4 x SECS, and never past the deadline). A crash, sanitizer report, leak or
# timeout fails the run and leaves its reproducer in build-fuzz/; a target that hits its cap
# before FUZZ_RUNS is reported, not failed. Each target's own libFuzzer flags (-max_len, with
# the reason) come from its tests/fuzz/<name>.cmake (FUZZ_ARGS, written to
# build-fuzz/fuzz_<name>.args).
#
# New finds go to build-fuzz/new-corpus/TARGET. FUZZ_MERGE=1 folds them into the repository's
# corpus at the end (minimised: only inputs that add coverage), as
#   (cd build-fuzz && ./fuzz_T -merge=1 ../tests/fuzz/corpus/T new-corpus/T)
# FUZZ_BUILD_DIR (default build-fuzz) names another build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-40}
b=${FUZZ_BUILD_DIR:-build-fuzz}
root=$(pwd)
jobs=${FUZZ_JOBS:-$(nproc)}
runs=${FUZZ_RUNS:-1000000}
min_secs=${FUZZ_MIN_SECONDS:-15}
max_secs=${FUZZ_MAX_SECONDS:-$((4 * secs))}
CC=clang cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Debug -DBUILD_FUZZERS=ON \
  -DSANITIZE=address,undefined -DBUILD_TESTING=ON >/dev/null
all=$(sed -n 's/.*coaphub_fuzz_target(NAME \([a-z0-9_]*\).*/\1/p' tests/fuzz/*.cmake)
# shellcheck disable=SC2046,SC2086
cmake --build "$b" -j"$(nproc)" --target $(printf 'fuzz_%s ' $all) >/dev/null
rm -rf "$b/logs"
mkdir -p "$b/logs"
: >"$b/logs/started"

# Cheapest first: CPU seconds to 1 M executions under ASan + UBSan -O1 from the merged corpus,
# measured 2026-12-07 (docs/RELIABILITY.md R1-R3). Targets not named here (new ones) go
# first, unmeasured; their cap still bounds them.
order="uri_route web_asset provision_json power_settings rest_json dtls_saved jwt dtls_compact
       multipart coap_pdu dtls_cid payload_json pem_import dtls_record"
targets=$(for t in $all; do grep -qw "$t" <<<"$order" || echo "$t"; done
  for t in $order; do grep -qw "$t" <<<"$all" && echo "$t"; done)
n=$(wc -w <<<"$targets")
start=$(date +%s)
deadline=$((start + secs * n / jobs))
echo "== fuzz: $n targets, $jobs at a time, each to $runs executions or its cap; wall budget" \
  "$((secs * n / jobs)) s (load before: $(cut -d' ' -f1-3 /proc/loadavg))"

# One target; its report is printed when it ends, so parallel runs do not interleave.
# shellcheck disable=SC2317 # run by xargs through bash -c
run_one() {
  local t=$1 rc=0 cap args=() left started
  # An even share of the wall time left among the targets not yet started (this one
  # included), never past the deadline: the cheap targets stop at FUZZ_RUNS long before their
  # share, and what they leave goes to the costly ones at the end.
  started=$(wc -l <"$b/logs/started")
  echo "$t" >>"$b/logs/started"
  left=$((n - started))
  [ "$left" -ge 1 ] || left=1
  cap=$((deadline - $(date +%s)))
  [ $((cap * jobs / left)) -ge "$cap" ] || cap=$((cap * jobs / left))
  [ "$cap" -ge "$min_secs" ] || cap=$min_secs
  [ "$cap" -le "$max_secs" ] || cap=$max_secs
  [ -f "$b/fuzz_$t.args" ] && read -r -a args <"$b/fuzz_$t.args"
  mkdir -p "$b/new-corpus/$t"
  local TIMEFORMAT='%R %U %S'
  { time (cd "$b" && ASAN_OPTIONS=detect_leaks=1 "./fuzz_$t" -runs="$runs" \
      -max_total_time="$cap" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "${args[@]}" "new-corpus/$t" "$root/tests/fuzz/corpus/$t" >"logs/$t.log" 2>&1) \
      || rc=$?; } 2>"$b/logs/$t.time"
  local execs real user sys
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$b/logs/$t.log")
  read -r real user sys <"$b/logs/$t.time"
  local verdict="reached $runs"
  [ "${execs:-0}" -ge "$runs" ] || verdict="CAP HIT before $runs"
  [ "$rc" = 0 ] || verdict="FAILED (exit $rc)"
  printf -- '-- fuzz_%-15s %9s executions in %6s s wall (%s s CPU user+sys, cap %s s): %s\n' \
    "$t" "${execs:-?}" "$real" "$(awk "BEGIN{print $user + $sys}")" "$cap" "$verdict"
  [ "$rc" = 0 ] || tail -n 40 "$b/logs/$t.log"
  return "$rc"
}
export -f run_one
export deadline min_secs max_secs runs b root n jobs
rc=0
# shellcheck disable=SC2086,SC2016
printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {} || rc=$?
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
