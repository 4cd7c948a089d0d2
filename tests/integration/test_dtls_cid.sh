#!/usr/bin/env bash
# test_dtls_cid.sh — DTLS Connection ID (RFC 9146, issue #16 point 2) against a peer we did not
# write: mbedTLS 3.6.6 from Debian 13's source package, built with RFC 9146 CID by
# scripts/mbedtls-cid.sh (cached outside the clone; a fresh build costs a few minutes).
#  1. with --dtls-cid-length 6: mbedTLS's ssl_client2 (dtls=1 cid=1, PSK) negotiates a 6-byte
#     CID, and a one-way ssl_client2 resumes its session with CID (reconnect=1); our cid_device (mbedTLS too) posts telemetry through a relay that rebinds its source
#     port mid-session, then posts again on the same session: both points stored under the
#     device, no second handshake, one address change counted; a forged CID record from a third
#     address (right CID, wrong tag) moves nothing; the same with a device that has a CID of
#     its own (so our records, OpenSSL's Finished included, carry it);
#  2. with --dtls-cid-length 0: CID is refused (ssl_client2 says so) and a device without CID
#     loses its session at the rebinding as before: no answer until it does a new handshake.
# Skips (exit 77, reported by ctest as skipped) only when mbedTLS cannot be fetched or built.
. "$(dirname "$0")/lib.sh"
need python3; need cc; need jq

MBED=$("$COAPHUB_SRC/scripts/mbedtls-cid.sh" 2>"$IT_TMP/mbedtls.log" | tail -n 1) || MBED=""
if [ -z "$MBED" ] || [ ! -x "$MBED/bin/ssl_client2" ]; then
    tail -n 20 "$IT_TMP/mbedtls.log" >&2
    log "SKIP: the mbedTLS 3.6.6 test peer could not be fetched or built (scripts/mbedtls-cid.sh)"
    trap - EXIT   # nothing started yet; lib.sh's cleanup would report a failure
    rm -rf "$IT_TMP"
    exit 77
fi
log "mbedTLS test peer: $MBED ($(cat "$MBED/.complete" 2>/dev/null))"
cc -std=c11 -D_DEFAULT_SOURCE -O1 -Wall -Wextra -Werror -I"$MBED/include" \
    "$IT_DIR/cid_device.c" -o "$IT_TMP/cid_device" \
    "$MBED/lib/libmbedtls.a" "$MBED/lib/libmbedx509.a" "$MBED/lib/libmbedcrypto.a" ||
    fail "cannot build cid_device against mbedTLS"

metric() { curl -s --max-time 5 "$BASE_URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
HS_OK='coaphub_dtls_handshakes_total{result="ok"}'
values() { ts_history "$1" "$2" | jq -r '.[].value' | tr '\n' ' '; }

KEY_HEX=00112233445566778899aabbccddeeff
ID="cid-sensor-$RANDOM"
set_psk() { # set_psk DEVICE_ID
    local cur body
    cur=$(rest GET "/api/device/$1/credentials")
    body=$(jq -c '.credentialsType="PSK" | .credentialsId="'"$ID"'" | .credentialsValue="'"$KEY_HEX"'"' <<<"$cur")
    rest POST /api/device/credentials "$body" >/dev/null
    assert_eq "$(http_code)" 200 "PSK credentials saved"
}
client2() { # client2 OUTFILE: ssl_client2 with CID asked, PSK-AES128-CCM8, one request
    timeout 30 "$MBED/bin/ssl_client2" server_addr=127.0.0.1 server_port="$COAPS_PORT" dtls=1 \
        cid=1 psk="$KEY_HEX" psk_identity="$ID" force_ciphersuite=TLS-PSK-WITH-AES-128-CCM-8 \
        read_timeout=2000 exchanges=1 >"$1" 2>&1
}
# through_relay TAG CID REHANDSHAKE JSON1 JSON2: runs cid_device through rebind_relay.py;
# leaves the device's output in TAG.out, its status in DEV_RC, the relay's stats in TAG.json.
through_relay() {
    local tag=$1
    rm -f "$tag.port" "$tag.trigger" "$tag.json"
    python3 "$IT_DIR/rebind_relay.py" "$COAPS_PORT" "$tag.trigger" "$tag.port" "$tag.json" 60 &
    local relay=$!
    IT_PIDS+=("$relay")
    local i
    for i in $(seq 1 50); do [ -s "$tag.port" ] && break; sleep 0.1; done
    [ -s "$tag.port" ] || fail "relay did not start"
    DEV_RC=0
    timeout 60 "$IT_TMP/cid_device" 127.0.0.1 "$(cat "$tag.port")" "$ID" "$KEY_HEX" "$2" \
        "$tag.trigger" "$3" "$4" "$5" >"$tag.out" 2>&1 || DEV_RC=$?
    wait "$relay"
    sed "s/^/  $tag: /" "$tag.out" >&2
    [ -s "$tag.json" ] || fail "relay wrote no stats"
}

cd "$IT_TMP" || fail "no tmp dir"
export COAPHUB_DTLS_CID_LENGTH=6
daemon_start
login
device_create cid-dev "cidTok$RANDOM$RANDOM"
A=$DEV_ID
set_psk "$A"

# ---- 1a. ssl_client2: a CID handshake ---------------------------------------------------------
client2 c2.out
grep -q 'Use of Connection ID has been negotiated' c2.out || { cat c2.out >&2; fail "ssl_client2: no CID"; }
grep -q 'Peer CID (length 6 Bytes)' c2.out || { cat c2.out >&2; fail "ssl_client2: CID not 6 bytes"; }
log "ok: ssl_client2 negotiated a 6-byte CID"
# A certificate-less client (one-way DTLS) that resumes its session: in a resumption the client's
# CID Finished follows our Finished, and the keys come from the resumed master secret.
R0=$(metric 'coaphub_dtls_handshakes_total{result="resumed"}')
C0=$(metric coaphub_dtls_cid_records_total)
timeout 30 "$MBED/bin/ssl_client2" server_addr=127.0.0.1 server_port="$COAPS_PORT" dtls=1 cid=1 \
    auth_mode=none reconnect=1 read_timeout=2000 exchanges=1 >c2r.out 2>&1 ||
    { cat c2r.out >&2; fail "ssl_client2 reconnect failed"; }
grep -q 'Reconnecting with saved session... ok' c2r.out || { cat c2r.out >&2; fail "no resumption"; }
assert_eq "$(grep -c 'Read from server' c2r.out)" 2 "answers on the full and the resumed session"
assert_eq "$(metric 'coaphub_dtls_handshakes_total{result="resumed"}')" "$((R0 + 1))" "one resumption"
# Finished, request and close_notify of each session came as CID records.
assert_eq "$(metric coaphub_dtls_cid_records_total)" "$((C0 + 6))" "CID records of both sessions"
# The same client with a CID of its own: our Finished (OpenSSL's, rewritten) and our answers
# carry it, in the full and in the resumed handshake (mbedTLS drops records without it).
timeout 30 "$MBED/bin/ssl_client2" server_addr=127.0.0.1 server_port="$COAPS_PORT" dtls=1 cid=1 \
    cid_val=a1b2c3 auth_mode=none reconnect=1 read_timeout=2000 exchanges=1 >c2o.out 2>&1 ||
    { cat c2o.out >&2; fail "ssl_client2 with its own CID failed"; }
assert_eq "$(grep -c 'Read from server' c2o.out)" 2 "answers carrying the client's CID"
assert_eq "$(metric coaphub_dtls_cid_address_changes_total)" 0 "no address change yet"

# ---- 1b/c. our mbedTLS device through a rebinding relay -----------------------------------------
HS0=$(metric "$HS_OK")
CH0=$(metric coaphub_dtls_cid_address_changes_total)
MAC0=$(metric 'coaphub_dtls_records_rejected_total{reason="mac"}')
# A forged CID record (the device's CID, a wrong tag) from a third address while the device is
# between its two posts: it must move nothing.
cat >forge.py <<'PY'
import socket, sys
port, cid = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
body = bytes(40)
rec = bytes([25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 0x40]) + cid + len(body).to_bytes(2, "big") + body
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.sendto(rec, ("127.0.0.1", port))
PY
rm -f forged.sent
( for i in $(seq 1 300); do [ -e cid.trigger ] && break; sleep 0.1; done
  cid=$(grep -o "6 bytes: [0-9a-f]*" cid.out 2>/dev/null | awk '{print $3}')
  [ -n "$cid" ] && python3 forge.py "$COAPS_PORT" "$cid" && echo "$cid" >forged.sent
) &
FORGER=$!
IT_PIDS+=("$FORGER")
through_relay cid 1 0 '{"t":1}' '{"t":2}'
wait "$FORGER" 2>/dev/null
assert_eq "$DEV_RC" 0 "the CID device got both 2.01s"
grep -q 'connection id in use' cid.out || fail "cid_device: no CID negotiated"
assert_eq "$(jq '.ports | length' cid.json)" 2 "the relay rebound its server-facing port"
[ "$(jq .to_server_after_rebind cid.json)" -ge 1 ] || fail "nothing went out after the rebinding"
[ "$(jq .from_server_after_rebind cid.json)" -ge 1 ] || fail "no answer reached the new address"
assert_eq "$(values "$A" t)" "1 2 " "both points stored under the same device"
assert_eq "$(metric "$HS_OK")" "$((HS0 + 1))" "one handshake for both posts (none after the rebinding)"
assert_eq "$(metric coaphub_dtls_cid_address_changes_total)" "$((CH0 + 1))" "one address change"
[ -s forged.sent ] || fail "the forged CID record was not sent"
[ "$(metric 'coaphub_dtls_records_rejected_total{reason="mac"}')" -gt "$MAC0" ] || {
    curl -s "$BASE_URL/metrics" | grep -E '^coaphub_dtls' >&2
    fail "the forged CID record was not rejected"
}
[ "$(metric coaphub_dtls_cid_records_total)" -ge 4 ] || fail "CID records not counted"
grep -q 'session moved there (connection id)' "$IT_LOG" || fail "no move in the log"
log "ok: rebinding with CID: same session, same device, 1 handshake, 1 address change"

# The same with a device that has a CID of its own: our records to it (the handshake's Finished,
# rewritten from OpenSSL's, and every answer) carry it; mbedTLS drops any that would not.
HS0=$(metric "$HS_OK")
through_relay owncid c0ffee01 0 '{"t":11}' '{"t":12}'
assert_eq "$DEV_RC" 0 "the device with its own CID got both 2.01s"
assert_eq "$(values "$A" t)" "1 2 11 12 " "its points stored under the same device"
assert_eq "$(metric "$HS_OK")" "$((HS0 + 1))" "one handshake (none after the rebinding)"
assert_eq "$(metric coaphub_dtls_cid_address_changes_total)" "$((CH0 + 2))" "its address change"
log "ok: a device with a CID of its own keeps its session across the rebinding too"
daemon_stop

# ---- 2. CID off: nothing changes --------------------------------------------------------------
export COAPHUB_DTLS_CID_LENGTH=0
daemon_start
login
client2 c2off.out
grep -q 'Use of Connection ID was rejected by the server' c2off.out ||
    { cat c2off.out >&2; fail "ssl_client2: CID not refused with --dtls-cid-length 0"; }
grep -q 'Read from server' c2off.out || { cat c2off.out >&2; fail "ssl_client2 without CID: no answer"; }
log "ok: --dtls-cid-length 0: CID refused, the handshake as before"
HS0=$(metric "$HS_OK")
through_relay nocid 1 1 '{"t":3}' '{"t":4}'
assert_eq "$DEV_RC" 0 "the device without CID got its 2.01s (after a new handshake)"
grep -q 'connection id not in use' nocid.out || fail "CID used although off"
grep -q 'post 2 (same session, after the rebinding): no 2.01' nocid.out ||
    fail "without CID the old session still answered after the rebinding"
grep -q 'post 2 (new handshake): 2.01' nocid.out || fail "no 2.01 after the new handshake"
assert_eq "$(metric "$HS_OK")" "$((HS0 + 2))" "without CID the rebinding costs a handshake"
assert_eq "$(metric coaphub_dtls_cid_address_changes_total)" 0 "no address change without CID"
assert_eq "$(values "$A" t)" "1 2 11 12 3 4 " "all points under the same device (in time order)"
log "ok: rebinding without CID: the old behaviour (new handshake)"
it_pass
