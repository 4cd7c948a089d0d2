#!/usr/bin/env bash
# test_soak.sh — R7 soak (../shared/spec/reliability.md): a mixed CoAP / DTLS / REST load for
# SOAK_SECONDS (default 180, the CI form; 1800 for the recorded 30-minute run) while the
# server's RSS and open fds are sampled every SOAK_SAMPLE seconds; no error-level log line, fds
# within +-5 of their value after the warm-up, RSS drift below SOAK_MAX_DRIFT MiB per 10 min.
# The load and the sums are soak_load.py's (see its header); docs/RELIABILITY.md has the figures.
#
# The load (CI form; SOAK_RATE_* override): plain CoAP 100 telemetry posts/s from 8 token
# devices and 20 attribute reads/s from 4 others; DTLS 60 telemetry posts/s from 6 X.509 devices
# and 20/s from 4 PSK devices (one session each); every 15 s 2 full X.509 handshakes, 6 resumed
# ones and 2 full PSK handshakes; one X.509 device observing its shared attributes and another
# its RPC; a REST client listing devices, querying history and setting the observed attribute
# every second (a one-way RPC every 5th), logging in again (and out of the old session) every
# 30 s. That is ~200 CoAP requests/s: the rated figures (docs/BENCHMARKS.md: ~34,000 req/s at
# half peak, release build, both cores) are not what this is for. CI runs this ASan build
# beside other tests on 2 cores, so the rate is a fixed moderate one (~2 % of a core for the
# server's CoAP work in release terms; a few tens of per cent under ASan) that keeps every
# part of the server busy without disturbing the tests running beside it.
#
# Memory under ASan. ASan keeps freed blocks in a quarantine (256 MiB by default) before
# reusing them, so RSS grows by itself until the quarantine is full: at this load that would be
# the whole 3-minute window. quarantine_size_mb=8 fills it within the warm-up (use-after-free
# is still caught for the last 8 MiB freed); malloc_context_size=8 keeps the allocation stacks
# ASan stores for every block (its stack depot, never freed) small. Both are appended to
# whatever ASAN_OPTIONS the run has (later options win). The database stays at a steady size
# (--ts-ttl 60, swept every 15 s): SQLite's page caches (the writer's 64 MiB, 16 MiB per reader)
# otherwise grow with the database towards their caps, which is bounded and not a leak but
# looks like one for a long while at a low rate.
#
# Threshold. The warm-up is the first SOAK_WARMUP seconds (60 in the 3-minute form, 300 in the
# 30-minute one, as the row says); drift is the least-squares slope of RSS over the samples
# after it, scaled to MiB per 10 minutes. Over a 2-minute window the scaling multiplies by 5:
# one allocator region or one SQLite cache step (a few hundred KiB) late in the window reads as
# ~1 MiB/10 min. The row's 2 MiB per 10 min is therefore what the 3-minute CI form asserts
# under ASan too only if it holds with margin; SOAK_MAX_DRIFT (default 4 MiB per 10 min in the
# short form, 2 in runs of 20 minutes or more) is the honest bar for a 2-minute window: a real
# per-request leak of even 100 bytes at ~200 requests/s is 11 MiB per 10 min and fails it.
# shellcheck source=lib.sh
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}:quarantine_size_mb=8:malloc_context_size=8:allocator_release_to_os_interval_ms=500"
. "$(dirname "$0")/lib.sh"

need coap-client-openssl
BENCH="${COAPHUB_BENCH:-$(dirname "$COAPHUB_BIN")/coaphub-bench}"
[ -x "$BENCH" ] || fail "coaphub-bench not built at $BENCH (target coaphub-bench)"

SOAK_SECONDS=${SOAK_SECONDS:-180}
if [ "$SOAK_SECONDS" -ge 1200 ]; then
    SOAK_WARMUP=${SOAK_WARMUP:-300}; SOAK_MAX_DRIFT=${SOAK_MAX_DRIFT:-2}
else
    SOAK_WARMUP=${SOAK_WARMUP:-60}; SOAK_MAX_DRIFT=${SOAK_MAX_DRIFT:-4}
fi
SOAK_SAMPLE=${SOAK_SAMPLE:-3}
SOAK_TTL=${SOAK_TTL:-60}
# SOAK_ARGS: more soak_load.py options (device counts, handshake bursts: soak_load.py --help).
# Keep the results (samples.csv, the loads' JSON, the summary) when SOAK_KEEP names a folder.
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
    mkdir -p "$SOAK_KEEP" && cp -r "$IT_TMP/soak" "$IT_TMP/soak.json" "$SOAK_KEEP/"
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
