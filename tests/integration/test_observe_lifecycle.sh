#!/usr/bin/env bash
# test_observe_lifecycle.sh — C4 of ../shared/spec/reliability.md (Observe lifecycle) against
# the real server: 1,000 raw-UDP observers (observe_lifecycle.py, one socket each, 20 loopback
# addresses) of 1,000 devices' shared attributes; one REST call (an OTA package assigned to
# the default profile) reaches all of them; relations end by RST, by GET Observe=1 and by a CON
# notification that is never acknowledged (the daemon runs with ACK_TIMEOUT 300 ms and
# MAX_RETRANSMIT 2 so that takes ~3 s, not ~93 s); a NON relation gets a CON after 5 NON
# notifications; one relation per device and kind (a new one replaces the old: 2.02); 64
# relations per source address when so configured (the 65th answered without Observe, counted
# in /metrics).
# Then the daemon is restarted under libfaketime (Debian faketime, scripts/install-deps.sh) and
# its clocks (monotonic and wall) moved forward 25 hours: a NON relation's next notification is
# CON (RFC 7641 §4.5: at least one CON a day). The 24-bit Observe wrap is a unit test
# (test_coap_observe), as is the 24-hour boundary to the millisecond.
. "$(dirname "$0")/lib.sh"
need python3

ACK_MS=300
RETX=2
# The per-address cap is off by default (a fleet behind one NAT observes from one address):
# the test sets the reliability plan's target. The raw observers read each notification as one
# datagram, so the amplification guard (C6, test_coap_amplification: a notification to an
# address not yet verified is Block2 block 0 when larger than 3x the registration) is off here.
DAEMON_ARGS=(--ack-timeout-ms "$ACK_MS" --max-retransmit "$RETX" --coap-observers-per-address 64
             --coap-amplification-factor 0 --log-level info)
daemon_start
login

head -c 4096 /dev/urandom >"$IT_TMP/fw.bin"
t0=$(date +%s.%N)
timeout 120 python3 "$IT_DIR/observe_lifecycle.py" --coap-port "$COAP_PORT" \
    --http-port "$HTTP_PORT" --jwt "$JWT" --devices 1000 --addrs 20 \
    --ack-timeout-ms "$ACK_MS" --max-retransmit "$RETX" --image "$IT_TMP/fw.bin" \
    >"$IT_TMP/c4.out" 2>&1
rc=$?
t1=$(date +%s.%N)
sed 's/^/  /' "$IT_TMP/c4.out" >&2
[ "$rc" = 0 ] || fail "observe_lifecycle.py exited $rc"
grep -qx ok "$IT_TMP/c4.out" || fail "observe_lifecycle.py did not finish"
log "client run $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"

# The server's own view: every relation that ended is gone, the refusal is counted.
metrics=$(curl -s --max-time 5 "$BASE_URL/metrics")
grep -E '^coaphub_(observe_relations|coap_observe_refused_total|coap_con_timeouts_total|coap_resets_total)' \
    <<<"$metrics" >&2
daemon_stop

# --- the 24-hour rule on the real server, its clocks moved by libfaketime --------------------
FT_LIB=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
[ -r "$FT_LIB" ] || fail "libfaketime missing: apt-get install faketime (scripts/install-deps.sh --test)"
echo "+0" >"$IT_TMP/faketime"
# Only the daemon runs faked (curl and the client keep the real time). ASan wants to be the
# first library loaded; libfaketime in LD_PRELOAD comes before it, which is harmless here.
{
    echo '#!/bin/sh'
    echo "export LD_PRELOAD=$FT_LIB FAKETIME_TIMESTAMP_FILE=$IT_TMP/faketime FAKETIME_NO_CACHE=1"
    echo "export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
    echo "exec \"$COAPHUB_BIN\" \"\$@\""
} >"$IT_TMP/coaphub-faked"
chmod +x "$IT_TMP/coaphub-faked"
COAPHUB_BIN=$IT_TMP/coaphub-faked daemon_start
login
timeout 60 python3 "$IT_DIR/observe_lifecycle.py" --coap-port "$COAP_PORT" \
    --http-port "$HTTP_PORT" --jwt "$JWT" --ack-timeout-ms "$ACK_MS" --max-retransmit "$RETX" \
    --faketime-file "$IT_TMP/faketime" --user "$ADMIN_USER" --password "$ADMIN_PASSWORD" \
    >"$IT_TMP/c4-day.out" 2>&1
rc=$?
sed 's/^/  /' "$IT_TMP/c4-day.out" >&2
[ "$rc" = 0 ] && grep -qx ok "$IT_TMP/c4-day.out" || fail "24-hour phase failed (exit $rc)"
it_pass
