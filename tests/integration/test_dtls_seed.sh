#!/usr/bin/env bash
# test_dtls_seed.sh — issue #3's seed flow, verbatim, against a freshly started daemon: a device
# makes its own self-signed P-256 certificate with the openssl CLI, the operator registers it
# over REST, and coap-client-openssl / coap-client-gnutls post telemetry over DTLS 1.2 with it
# (spec §6.1–§6.4). Also: the shared-attribute observation over DTLS, an access token over
# one-way DTLS, an unregistered certificate without a token (4.01), a registered certificate
# with another device's token in the path (written as the certificate's device), credential
# change ending live sessions, and the generated server certificate trusted with -R.
. "$(dirname "$0")/lib.sh"
need openssl; need coap-client-openssl; need coap-client-gnutls

# ---- helpers (DTLS flavour of lib.sh's coap/coap_expect) -------------------------------------

# coaps CLIENT METHOD PATH [PAYLOAD] [-- extra args]: coap-client-CLIENT over DTLS; sets
# COAP_CODE ("none" without a response) and COAP_BODY like lib.sh's coap.
coaps() {
    local client=$1 method=$2 path=$3; shift 3
    local args=(-v 7 -B 10 -o "$IT_TMP/coaps.body" -m "$method")
    if [ $# -ge 1 ] && [ "$1" != -- ]; then args+=(-t application/json -e "$1"); shift; fi
    [ "${1-}" = -- ] && shift
    rm -f "$IT_TMP/coaps.body"
    timeout 20 "coap-client-$client" "${args[@]}" "$@" "coaps://127.0.0.1:$COAPS_PORT$path" \
        >"$IT_TMP/coaps.log" 2>&1
    COAP_CODE=$(grep -Eo 'process incoming [0-9]\.[0-9]{2} response' "$IT_TMP/coaps.log" \
        | tail -n 1 | awk '{print $3}')
    [ -n "$COAP_CODE" ] || COAP_CODE=none
    COAP_BODY=""
    [ -f "$IT_TMP/coaps.body" ] && COAP_BODY=$(cat "$IT_TMP/coaps.body")
    return 0
}
coaps_expect() {
    local want=$1; shift
    coaps "$@"
    [ "$COAP_CODE" = "$want" ] || {
        tail -n 25 "$IT_TMP/coaps.log" >&2
        fail "coaps $1 $2 $3: expected $want, got $COAP_CODE"
    }
    log "ok: coaps($1) $2 $3 -> $want"
}
# values DEVICE_ID KEY -> the stored values of KEY, oldest first, one per line
values() { ts_history "$1" "$2" | jq -r '.[].value'; }

cd "$IT_TMP" || fail "no tmp dir"
daemon_start
login
grep -q "coap-client-openssl -R .*dtls-server-cert.pem" "$IT_LOG" \
    || fail "first start did not print how to trust the generated server certificate"
SERVER_CERT="$IT_DATA/dtls-server-cert.pem"
[ -f "$SERVER_CERT" ] || fail "no generated server certificate in the data dir"
assert_eq "$(stat -c %a "$IT_DATA/dtls-server-key.pem")" 600 "server key file mode"

# ---- the seed, verbatim (plus the port) ---------------------------------------------------------
openssl ecparam -out key.pem -name secp256r1 -genkey
openssl req -new -key key.pem -x509 -nodes -days 365 -out cert.pem -subj "/CN=thermo-1"
device_create thermo-1 "thermoTok$RANDOM$RANDOM"
A=$DEV_ID
register_cert "$A" cert.pem

timeout 20 coap-client-openssl -v 9 -c cert.pem -j key.pem -m POST -t "application/json" \
    -e '{"temperature":43}' "coaps://127.0.0.1:$COAPS_PORT/api/v1/telemetry" >seed.log 2>&1
grep -Eq 'process incoming 2\.01 response' seed.log || { tail -n 30 seed.log >&2; fail "seed POST not 2.01"; }
log "ok: seed command (coap-client-openssl) -> 2.01"
assert_eq "$(values "$A" temperature | tr '\n' ' ')" "43 " "telemetry read back over REST"

# The same with the GnuTLS build of libcoap.
coaps_expect 2.01 gnutls POST /api/v1/telemetry '{"temperature":44}' -- -c cert.pem -j key.pem
assert_eq "$(values "$A" temperature | tr '\n' ' ')" "43 44 " "gnutls telemetry read back"

# Trusting the generated server certificate (-R) works for both clients.
coaps_expect 2.01 openssl POST /api/v1/telemetry '{"temperature":45}' -- -c cert.pem -j key.pem \
    -R "$SERVER_CERT"
coaps_expect 2.01 gnutls POST /api/v1/telemetry '{"temperature":46}' -- -c cert.pem -j key.pem \
    -R "$SERVER_CERT"

# ---- shared-attribute observation over DTLS (the seed's second command, shortened) -------------
ATTR="/api/plugins/telemetry/DEVICE/$A"
rest POST "$ATTR/attributes/SHARED_SCOPE" '{"mode":"eco"}' >/dev/null
assert_eq "$(http_code)" 200 "initial shared attribute"
OBS="$IT_TMP/obs.out"
timeout 40 coap-client-openssl -v 7 -c cert.pem -j key.pem -m get -s 25 -B 30 -o "$OBS" \
    "coaps://127.0.0.1:$COAPS_PORT/api/v1/attributes" >"$OBS.log" 2>&1 &
IT_PIDS+=("$!")
wait_for_file_match "$OBS.log" 'process incoming 2\.05 response' 15 || fail "no observe registration"
wait_for_file_match "$OBS" '"mode": ?"eco"' 5 || fail "observe: no current shared attributes"
rest POST "$ATTR/attributes/SHARED_SCOPE" '{"target":22}' >/dev/null
wait_for_file_match "$OBS" '"target": ?22' 10 || fail "observe over DTLS: no notification"
log "ok: shared attribute update pushed over DTLS"

# ---- identity rules ------------------------------------------------------------------------------
# Access token over one-way DTLS (no client certificate).
device_create token-dev "tokDev$RANDOM$RANDOM"
B=$DEV_ID
B_TOKEN=$(rest GET "/api/device/$B/credentials" | jq -r .credentialsId)
coaps_expect 2.01 openssl POST "/api/v1/$B_TOKEN/telemetry" '{"humidity":50}'
coaps_expect 2.01 gnutls POST "/api/v1/$B_TOKEN/telemetry" '{"humidity":51}'
assert_eq "$(values "$B" humidity | tr '\n' ' ')" "50 51 " "token telemetry over one-way DTLS"

# No certificate and no token: 4.01.
coaps_expect 4.01 openssl POST /api/v1/telemetry '{"humidity":1}'
# An unregistered certificate without a token: the handshake completes, the request is 4.01.
openssl ecparam -out key2.pem -name secp256r1 -genkey
openssl req -new -key key2.pem -x509 -nodes -days 365 -out cert2.pem -subj "/CN=stranger"
coaps_expect 4.01 openssl POST /api/v1/telemetry '{"humidity":2}' -- -c cert2.pem -j key2.pem
# ... but with a token it works (the token identifies the device).
coaps_expect 2.01 openssl POST "/api/v1/$B_TOKEN/telemetry" '{"humidity":52}' -- \
    -c cert2.pem -j key2.pem

# Device A's certificate with device B's token in the path: never written as B.
coaps "openssl" POST "/api/v1/$B_TOKEN/telemetry" '{"humidity":99}' -- -c cert.pem -j key.pem
log "A's certificate + B's token -> $COAP_CODE"
values "$B" humidity | grep -qx 99 && fail "A's certificate wrote into device B"
log "ok: nothing written as B"
[ "$COAP_CODE" = 2.01 ] && { values "$A" humidity | grep -qx 99 || fail "2.01 but not stored as A"; }
log "ok: a registered certificate wins over the token in the path"

# ---- credential change ends the device's sessions ------------------------------------------------
openssl ecparam -out key3.pem -name secp256r1 -genkey
openssl req -new -key key3.pem -x509 -nodes -days 365 -out cert3.pem -subj "/CN=thermo-1b"
register_cert "$A" cert3.pem
wait_for_file_match "$IT_LOG" 'dtls.*closed 1 session\(s\) of device' 10 \
    || fail "the certificate change did not end the device's live DTLS session"
log "ok: credential change closed the live session"
coaps_expect 4.01 openssl POST /api/v1/telemetry '{"temperature":47}' -- -c cert.pem -j key.pem
coaps_expect 2.01 openssl POST /api/v1/telemetry '{"temperature":48}' -- -c cert3.pem -j key3.pem
assert_eq "$(values "$A" temperature | tr '\n' ' ')" "43 44 45 46 48 " "only the new certificate writes"

it_pass
