#!/usr/bin/env bash
# test_dtls_state.sh — DTLS state-machine negatives (reliability D4). dtls_state_client.py
# builds DTLS 1.2 records itself and plays scripted sequences against the real server:
# ChangeCipherSpec or Finished before the key exchange, application data in epoch 0,
# Finished without CertificateVerify, an empty Certificate, a renegotiating ClientHello on an
# established session, ClientHellos with invalid versions or someone else's cookie (TinyDTLS
# #74), records in wrong epochs (TinyDTLS #13), reordered / duplicated / changed flights, and
# a ClientHello retransmitted mid-handshake, plaintext (unauthenticated) alerts on a session
# and a client restart on the same port, a fragment announcing a 100 KB message (over
# --dtls-max-client-chain-bytes: the handshake fails at once); and, for reliability D10,
# sessions ended by the client's close_notify and by a fatal alert. Each sequence asserts its
# own outcome (no handshake completes where it must not, an alert or silence, a retransmitted
# hello does not restart the handshake) and prints one line with what happened. Then this
# script checks: only the telemetry of sequences that were meant to succeed is stored, the
# handshakes in progress and the sessions are back to their baseline (no leak), and a real
# device (coap-client-openssl) is still served by the same server, which exits cleanly.
. "$(dirname "$0")/lib.sh"
need openssl; need coap-client-openssl

cd "$IT_TMP" || fail "no tmp dir"
PY_CRYPTO=python3
if ! python3 -c 'import cryptography' 2>/dev/null && [ -x /usr/bin/python3 ]; then
    PY_CRYPTO=/usr/bin/python3
fi
"$PY_CRYPTO" -c 'import cryptography' 2>/dev/null \
    || fail "python3-cryptography missing (scripts/install-deps.sh --test installs it)"

# Failed and abandoned handshakes leave the table after 3 s without progress, so the
# baseline check below does not wait for the 10 s default.
DAEMON_ARGS=(--dtls-handshake-stall-ms 3000)
daemon_start
login
metric() { curl -s --max-time 5 "$BASE_URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

for n in dev other; do
    openssl ecparam -out $n.key -name prime256v1 -genkey 2>/dev/null
    openssl req -new -key $n.key -x509 -nodes -days 30 -out $n.pem -subj "/CN=d4-$n" 2>/dev/null
done
device_create d4-dev "d4Tok$RANDOM$RANDOM"
register_cert "$DEV_ID" dev.pem

HIP0=$(metric coaphub_dtls_handshakes_in_progress)
SESS0=$(metric coaphub_dtls_sessions)
OK0=$(metric 'coaphub_dtls_handshakes_total{result="ok"}')
FAILED0=$(metric 'coaphub_dtls_handshakes_total{result="failed"}')

rc=0
timeout 120 "$PY_CRYPTO" "$COAPHUB_SRC/tests/integration/dtls_state_client.py" "$COAPS_PORT" \
    "$BASE_URL/metrics" dev.pem dev.key other.pem other.key >state.out 2>state.err || rc=$?
while read -r line; do log "$line"; done <state.out
[ -s state.err ] && cat state.err >&2
grep -q '^sent ' state.out || fail "the scripted client did not finish (rc $rc)"
if [ "$rc" != 0 ]; then
    grep -a -E '\[dtls\]' "$IT_LOG" | tail -n 40 >&2
    fail "$(grep -c ': FAIL' state.out) sequence(s) failed (rc $rc)"
fi
[ "$(grep -c "^seq .*: PASS" state.out)" -ge 13 ] || fail "fewer than 13 sequences ran"

# Telemetry: exactly the keys of the sequences meant to succeed, once each.
read -r -a STORED <<<"$(sed -n 's/^stored //p' state.out)"
read -r -a SENT <<<"$(sed -n 's/^sent //p' state.out)"
for k in "${SENT[@]}"; do
    want=0
    for s in "${STORED[@]}"; do [ "$s" = "$k" ] && want=1; done
    assert_eq "$(ts_history "$DEV_ID" "$k" | jq length)" "$want" "points stored under $k"
done
log "ok: ${#STORED[@]} keys stored as meant, $(( ${#SENT[@]} - ${#STORED[@]} )) never stored"

# No leak: handshakes in progress and sessions back to their baseline (the stalled ones go
# after 3 s without progress; the sessions that completed were closed with close_notify).
for _ in $(seq 50); do
    [ "$(metric coaphub_dtls_handshakes_in_progress)" = "$HIP0" ] &&
        [ "$(metric coaphub_dtls_sessions)" = "$SESS0" ] && break
    sleep 0.2
done
assert_eq "$(metric coaphub_dtls_handshakes_in_progress)" "$HIP0" "DTLS handshakes in progress"
assert_eq "$(metric coaphub_dtls_sessions)" "$SESS0" "DTLS sessions"
OK1=$(metric 'coaphub_dtls_handshakes_total{result="ok"}')
FAILED1=$(metric 'coaphub_dtls_handshakes_total{result="failed"}')
STALLED=$(metric 'coaphub_dtls_handshakes_total{result="stalled"}')
log "figures: handshakes ok +$((OK1 - OK0)), failed +$((FAILED1 - FAILED0)), stalled $STALLED;" \
    "in progress $HIP0 -> $(metric coaphub_dtls_handshakes_in_progress)," \
    "sessions $SESS0 -> $(metric coaphub_dtls_sessions)"

# The same server still serves a real device.
timeout 20 coap-client-openssl -v 7 -B 10 -c dev.pem -j dev.key -m POST -t application/json \
    -e '{"d4_real":1}' "coaps://127.0.0.1:$COAPS_PORT/api/v1/telemetry" >client.log 2>&1
grep -q 'process incoming 2\.01 response' client.log \
    || { tail -n 20 client.log >&2; fail "a real device was not served after the sequences"; }
assert_eq "$(ts_history "$DEV_ID" d4_real | jq length)" 1 "the real device's point"
log "ok: a coap-client-openssl device still gets 2.01"
it_pass
