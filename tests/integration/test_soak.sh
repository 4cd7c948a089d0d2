#!/usr/bin/env bash
# test_soak.sh — R7 soak (../shared/spec/reliability.md): a mixed CoAP / DTLS / REST load for
# SOAK_SECONDS (default 180, the CI form; 1800 for the recorded 30-minute run) while the
# server's RSS and open fds are sampled every SOAK_SAMPLE seconds. Pass: no error-level log line,
# fds within +-5 of their value after the warm-up, RSS drift below SOAK_MAX_DRIFT MiB per 10 min,
# every load part answered without errors. The load, its phases and the sums are
# soak_load.py's (see its header); docs/RELIABILITY.md has the figures.
#
# The recorded 30-minute run (release build, docs/RELIABILITY.md R7), by hand:
#   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release && cmake --build build-rel \
#       --target coaphub coaphub-cli coaphub-bench
#   COAPHUB_BIN=build-rel/coaphub SOAK_SECONDS=1800 SOAK_SAMPLE=5 SOAK_KEEP=/tmp/soak-30min \
#   SOAK_RATE_PLAIN=5000 SOAK_RATE_ATTR=2000 SOAK_RATE_X509=2500 SOAK_RATE_PSK=500 \
#   SOAK_ARGS="--plain-devices 100 --x509-devices 20 --psk-devices 10 --window 4 --segment 60 --quiet 10" \
#       bash tests/integration/test_soak.sh
# (50 % of the rated load on a quiet machine: SOAK_RATE_PLAIN=17000 SOAK_RATE_X509=15000 and
# more devices; the rates are coaphub-bench's open-loop --rate, requests/s in total.)
#
# The load (CI form; SOAK_RATE_* and SOAK_ARGS change it): segments of 20 s, each followed by 4 s
# without requests; in a segment plain CoAP 100 telemetry posts/s from 8 token devices and 320
# attribute reads/s from 8 others, DTLS 60 telemetry posts/s from 6 X.509 devices and 20/s from
# 4 PSK devices (a session per device and segment), every 15 s 2 full X.509 handshakes, 6
# resumed ones and 2 full PSK handshakes; a REST round every second (device list, history,
# latest values, a shared attribute update that notifies an observing X.509 device, every 5th
# round a one-way RPC to another observing device; a new login and a logout of the old session
# every 30 s). ~500 CoAP requests/s, not "50 % of rated load": the rated figures
# (docs/BENCHMARKS.md, ~34,000 requests/s at half peak) are release-build figures with both
# cores to the server; CI runs this ASan build beside other tests on 2 cores, so the rate is a
# fixed moderate one (the server uses ~10 % of a core under ASan) that keeps every part of the
# server busy without disturbing its neighbours. Before the load the CoAP deduplication table
# is filled to its cap (soak_load.py prefill(): 105,000 reads in ~10 s) and the 420 plain
# requests/s keep it there: otherwise it grows for EXCHANGE_LIFETIME (247 s) and looks exactly
# like a leak for longer than this whole test.
#
# RSS is judged at the quiet points (the end of each 4 s pause): the store's writer keeps its
# SQLite page cache (up to 64 MiB) while batches come and hands it back once 200 ms pass
# without one (src/store/writer.c), so under load RSS measures that cache, at rest the server.
# The database stays at a steady size (--ts-ttl 60, swept every 15 s).
#
# Memory under ASan (what CI builds). ASan keeps freed blocks in a quarantine (256 MiB by
# default, plus 1 MiB per thread) before reusing them, so RSS climbs by itself: with an 8 MiB
# quarantine the 3-minute form still measured 20.6 MiB per 10 min, with none 5-7.5. The soak
# therefore runs without quarantine (quarantine_size_mb=0, thread_local_quarantine_size_kb=0:
# use-after-free of a block not yet reused is still reported, and the rest of the suite keeps
# the quarantine), lets ASan's allocator hand free pages back (allocator_release_to_os_interval_ms)
# and keeps its stored allocation stacks short (malloc_context_size=8). SOAK_ASAN_OPTIONS
# replaces these; they are appended to the run's ASAN_OPTIONS (later options win).
#
# Threshold. The warm-up is the first SOAK_WARMUP seconds (60 in the 3-minute form, 300 in
# runs of 20 minutes or more, as the row says); the drift is the Theil-Sen slope (median of the
# pairwise slopes) of the quiet samples after it, in MiB per 10 minutes. In the 3-minute form
# that is 5-6 samples over ~2 minutes, and the scaling multiplies by 5: one 64 KiB allocator
# region or one SQLite cache step at the last sample reads as several MiB per 10 min. Bounded
# caches also fill during the window (the DTLS session store keeps ~1 KB per full handshake up
# to 20,480 sessions, src/dtls/endpoint.c; OpenSSL's own cache 256; ~0.7 full handshakes/s
# here) and ASan's size classes each grow to their own high-water mark. Measured with these
# options, beside other tests (load average 6-12): 7.5, 6.1 and 6.1 MiB per 10 min (earlier
# runs, least squares: 5.3, once 14.3). So the short form asserts 16 MiB per 10 min, and runs of 20 minutes or more
# the row's 2. What 16 still catches: a leak of two allocations per request (under ASan every
# block costs at least 32 bytes: at ~490 requests/s that is >= 18 MiB per 10 min on its own),
# anything of ~60 bytes or more per request, and any leak of a few KB per handshake or REST
# request; LeakSanitizer at exit (lib.sh) catches what is no longer referenced at all. One
# leaked 32-byte block per request (~9 MiB per 10 min) is below what 2 minutes can tell apart
# from the noise: that is the 30-minute run's job.
SOAK_ASAN_OPTIONS=${SOAK_ASAN_OPTIONS:-quarantine_size_mb=0:thread_local_quarantine_size_kb=0:malloc_context_size=8:allocator_release_to_os_interval_ms=500}
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}:$SOAK_ASAN_OPTIONS"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

need coap-client-openssl
BENCH="${COAPHUB_BENCH:-$(dirname "$COAPHUB_BIN")/coaphub-bench}"
[ -x "$BENCH" ] || fail "coaphub-bench not built at $BENCH (target coaphub-bench)"

SOAK_SECONDS=${SOAK_SECONDS:-180}
if [ "$SOAK_SECONDS" -ge 1200 ]; then
    SOAK_WARMUP=${SOAK_WARMUP:-300}; SOAK_MAX_DRIFT=${SOAK_MAX_DRIFT:-2}
else
    SOAK_WARMUP=${SOAK_WARMUP:-60}; SOAK_MAX_DRIFT=${SOAK_MAX_DRIFT:-16}
fi
SOAK_SAMPLE=${SOAK_SAMPLE:-3}
SOAK_TTL=${SOAK_TTL:-60}
# SOAK_ARGS: more soak_load.py options (device counts, handshake bursts: soak_load.py --help).
# Keep the results (samples.csv, the loads' JSON, the summary, the daemon's log) when SOAK_KEEP
# names a folder.
SOAK_KEEP=${SOAK_KEEP:-}

# info, not the suite's debug: a debug line per request would make the log, not the server,
# the thing measured. Error-level lines are what the row counts.
DAEMON_ARGS=(--log-level info --ts-ttl "$SOAK_TTL" --ttl-interval 15000)
daemon_start
export COAPHUB_BENCH_USER="$ADMIN_USER" COAPHUB_BENCH_PASSWORD="$ADMIN_PASSWORD"

log "soak: ${SOAK_SECONDS} s, warm-up ${SOAK_WARMUP} s, drift bar ${SOAK_MAX_DRIFT} MiB/10 min"
rc=0
# shellcheck disable=SC2086  # SOAK_ARGS is split into options on purpose
timeout $(( SOAK_SECONDS + 420 )) python3 "$IT_DIR/soak_load.py" --bench "$BENCH" \
    --pid "$DAEMON_PID" --coap-port "$COAP_PORT" --coaps-port "$COAPS_PORT" \
    --base-url "$BASE_URL" --work "$IT_TMP/soak" --log "$IT_LOG" \
    --seconds "$SOAK_SECONDS" --warmup "$SOAK_WARMUP" --sample "$SOAK_SAMPLE" \
    --max-drift "$SOAK_MAX_DRIFT" --fd-tolerance 5 \
    ${SOAK_RATE_PLAIN:+--rate-plain "$SOAK_RATE_PLAIN"} \
    ${SOAK_RATE_ATTR:+--rate-attr "$SOAK_RATE_ATTR"} \
    ${SOAK_RATE_X509:+--rate-x509 "$SOAK_RATE_X509"} \
    ${SOAK_RATE_PSK:+--rate-psk "$SOAK_RATE_PSK"} ${SOAK_ARGS:-} \
    >"$IT_TMP/soak.json" || rc=$?
cat "$IT_TMP/soak.json" >&2
if [ -n "$SOAK_KEEP" ]; then
    mkdir -p "$SOAK_KEEP" && cp -r "$IT_TMP/soak" "$IT_TMP/soak.json" "$IT_LOG" "$SOAK_KEEP/"
fi
[ "$rc" -ne 2 ] || fail "soak load could not be set up"
summary=$(tail -n 1 "$IT_TMP/soak.json")
[ -n "$summary" ] || fail "soak_load.py gave no summary (rc $rc)"
log "RSS at the warm-up $(jq .rss.warm_kb <<<"$summary") kB, at the end $(jq .rss.end_kb <<<"$summary") kB"
assert_match "$(jq -r '.rss.drift_mib_per_10min' <<<"$summary")" '^-?[0-9.]+$' "RSS drift measured"
log "drift $(jq .rss.drift_mib_per_10min <<<"$summary") MiB/10 min; fds $(jq -c .fds <<<"$summary")"
assert_eq "$(jq .error_lines <<<"$summary")" 0 "no error-level log line during the soak"
assert_eq "$(jq .pass <<<"$summary")" true "soak criteria (soak_load.py names any that failed)"
assert_eq "$rc" 0 "soak_load.py exit status"

it_pass
