#!/usr/bin/env bash
# test_malformed_flood.sh — reliability R5, live malformed flood against the running ASan
# build (malformed_flood.py does the sending, classifying and matching; see its docstring):
#
# Phase A: 100,000 datagrams at the plain CoAP port — the coap_pdu fuzz corpus (whole inputs
#   and their [length][bytes] pieces), zzuf-mutated and truncated ThingsBoard requests
#   (tokens no device has), version != 1, other protocols' datagrams, random bytes — and 5,000
#   at the DTLS port (mutated and cut ClientHellos, records without a session, random bytes).
#   Every reply is matched to its datagram: nothing answers non-CoAP or version != 1
#   (RFC 7252 §11.5), an unparseable CON gets exactly one RST (or 4.00) no larger than
#   itself, every CON request exactly one ACK, no reply exceeds 3x its request; the DTLS
#   port sends nothing but HelloVerifyRequests no larger than the datagram. VmRSS grows
#   < 5 % from the end of a 10,000-datagram warm-up (2,000 of the DTLS ones in it) to the end.
# Phase B: 20,000 zzuf-mutated and truncated requests with the real device's token, which
#   reach the payload parsers, the store, Block1, claiming and attributes: the same reply
#   rules, except that the reply/request ratio is recorded, not asserted (an attributes GET
#   returns what the device stored; reliability.md C6 bounds that), and RSS is recorded only
#   (accepted points grow SQLite's page cache, the key cache and the latest values: bounded,
#   but not in 20,000 datagrams).
# Throughout: a real device (coap-client-notls) gets 2.01 during both phases and its points
# are stored; no sanitizer report; a clean exit on SIGTERM.
#
# Steady state after the warm-up needs the bounded tables full: the dedup table is capped at
# 2,000 entries here (default 100,000: a 100,000-datagram test never fills it within its
# 247 s lifetime, and its growth is the cap's cost, not a leak), and ASan's quarantine of freed
# memory (256 MiB by default, so an ASan build's RSS grows with every allocation until it is
# full, leak or not) at 4 MiB, which the warm-up fills; a use-after-free of anything among the
# last 4 MiB freed is still caught.
#
# Bounded: the sender stops after 310 s whatever happens (normally ~15 s under ASan); each
# window of 100 datagrams waits at most 5 s for its answers. The nightly form sends more:
# FLOOD_COUNT=1000000 (time limits and sockets scale with it); IT_SEED=N repeats a run.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}:quarantine_size_mb=4"
. "$(dirname "$0")/lib.sh"
need zzuf

DAEMON_ARGS=(--coap-dedup-entries 2000)
daemon_start
login
device_create "flood-1" floodTok1
D=$DEV_ID
coap_expect 2.01 post /api/v1/floodTok1/telemetry '{"before":1}'

seed=${IT_SEED:-$RANDOM}
count=${FLOOD_COUNT:-100000}   # the nightly form: FLOOD_COUNT=1000000 (~2 min)
read -ra flood_args <<<"${FLOOD_ARGS:-}"   # by hand: e.g. FLOOD_ARGS="--window 50"
log "flood seed $seed (rerun with IT_SEED=$seed)"
out=$(timeout $(( count / 400 + 120 )) python3 "$IT_DIR/malformed_flood.py" --coap-port "$COAP_PORT" \
    --dtls-port "$COAPS_PORT" --pid "$DAEMON_PID" --token floodTok1 --seed "$seed" \
    --count "$count" --sockets $(( count / 6000 + 1 )) --seconds $(( count / 400 + 60 )) \
    --auth-max-ratio 3 --corpus "$COAPHUB_SRC/tests/fuzz/corpus/coap_pdu" ${flood_args[@]+"${flood_args[@]}"}) || {
    log "result: $out"
    fail "flood rules broken (see FAIL lines above)"
}
log "result: $out"
j() { jq -c "$1" <<<"$out"; }
m() { curl -s --max-time 5 "$BASE_URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
log "phase A datagrams by class: $(j .a.classes)  by origin: $(j .a.origins)"
log "phase A replies by type and code: $(j .a.replies)"
log "phase A largest reply/request: $(j .a.max_ratio) ($(j .a.max_ratio_request))"
log "DTLS: $(j .dtls)"
log "RSS: start $(j .rss_start_kb) kB, after warm-up $(j .a.rss_warmup_kb) kB, after phase A" \
    "and DTLS $(j .rss_end_kb) kB ($(j .rss_growth_pct) %), every 10,000: $(j .a.rss_trace_kb)"
log "phase B (device's token) classes $(j .b.classes) replies $(j .b.replies)"
log "phase B largest reply/request: $(j .b.max_ratio) ($(j .b.max_ratio_request));" \
    "RSS after phase B $(j .rss_after_b_kb) kB"
log "seconds: phase A $(j .a.seconds), DTLS $(j .dtls.seconds), phase B $(j .b.seconds)," \
    "total $(j .seconds); dedup entries $(m coaphub_coap_dedup_entries)," \
    "evicted $(m coaphub_coap_dedup_evicted_total); malformed $(m coaphub_coap_malformed_total)"

assert_eq "$(j .a.sent)" "$count" "$count datagrams sent to the CoAP port (phase A)"
assert_eq "$(j .dtls.sent)" 5000 "5,000 datagrams sent to the DTLS port"
assert_eq "$(j .b.sent)" 20000 "20,000 mutated requests of the real device (phase B)"
assert_eq "$(j '.failures | length')" 0 "every reply as RFC 7252 requires"
assert_eq "$(j '[.a.probes[], .b.probes[] | select(. == "2.01")] | length')" 5 \
    "real device served 2.01 during the flood"
kill -0 "$DAEMON_PID" 2>/dev/null || fail "daemon died under the flood"
awk -v g="$(j .rss_growth_pct)" 'BEGIN { exit !(g < 5) }' ||
    fail "RSS grew $(j .rss_growth_pct) % after the warm-up (limit 5 %)"
log "ok: RSS growth $(j .rss_growth_pct) % < 5 %"
check_sanitizers

coap_expect 2.01 post /api/v1/floodTok1/telemetry '{"after":1}'
probes=$(jq -c '[(.flood_probe // [] | length), (.after // [] | length)]' \
    < <(rest GET "/api/plugins/telemetry/DEVICE/$D/values/timeseries?keys=flood_probe,after&limit=100&startTs=0&endTs=$(( $(date +%s) * 1000 + 600000 ))"))
assert_eq "$probes" "[5,1]" "the device's points from during and after the flood are stored"

it_pass
